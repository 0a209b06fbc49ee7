"""The coordinator: reads evidence + rules + case + debate and decides under the quote-first EVIDENCE/ANSWER contract.

Flow of :meth:`Coordinator.decide` (never raises):

1. render ``prompts/coordinator.j2`` (with the verifier's ``feedback`` when this is a repair round) and ask the model —
   in ``mode="auto"`` (default) as free text, the format the RAFT coordinator adapter is trained on;
2. parse it (:func:`mad_guardrails.agents.parsing.parse_coordinator`, which reads both the text contract and JSON);
   in ``mode="grammar"`` the text is constrained by :func:`mad_guardrails.agents.grammar.contract_grammar` (quotes only sentences of
   the evidence shown, cites only rules shown) when the backend supports grammars, else it is asked as in ``auto``;
3. if it is malformed, ONE repair attempt: the answer and the parse error go back to the model (``prompts/repair.j2``);
   in ``auto`` mode that retry is constrained by the JSON schema of :func:`coordinator_schema`, so its format holds;
4. still malformed, or a backend error → ``output=None`` and ``error`` set (the orchestrator turns that into a
   fail-closed flag). Backend errors start with ``"BackendError"`` so the orchestrator does not ask again.

    >>> import asyncio
    >>> from mad_guardrails.agents.backends.fake import FakeBackend
    >>> from mad_guardrails.core.debate import Case
    >>> b = FakeBackend(["no idea", {"evidence": [], "decision": "flag", "violations": [], "rationale": "unsure",
    ...                  "confidence": 0.3}])
    >>> res = asyncio.run(Coordinator(b, "coordinator").decide(Case(output="x"), [], [], []))
    >>> res.output.decision, res.repaired, res.calls
    ('flag', True, 2)
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, Field

from mad_guardrails.agents.backends.base import LLMBackend, LLMResponse, TokenUsage, error_reason
from mad_guardrails.agents.grammar import contract_grammar
from mad_guardrails.agents.parsing import ParseError, parse_coordinator
from mad_guardrails.agents.prompting import DEFAULT_EVIDENCE_CHARS, coordinator_messages, repair_messages
from mad_guardrails.core.debate import Argument, Case, CoordinatorOutput
from mad_guardrails.core.errors import GuardrailError
from mad_guardrails.core.units import Evidence
from mad_guardrails.policies.schema import Rule

log = logging.getLogger(__name__)

Mode = Literal["auto", "text", "json", "grammar"]


class CoordinatorResult(BaseModel):
    output: CoordinatorOutput | None = None
    error: str | None = None
    repaired: bool = False
    usage: TokenUsage = Field(default_factory=TokenUsage)
    calls: int = 0
    raw: str = ""
    latency_s: float = 0.0


def coordinator_schema(evidence_ids: list[str], rule_ids: list[str], *, max_quotes: int = 3,
                       max_violations: int = 3, max_chars: int = 200) -> dict:
    """JSON schema of the coordinator's answer, quote-first (``evidence`` is the first property). Ids are enums of
    what was shown; strings are bounded so that a small model reaches ``decision`` within its token budget (serve
    with the ``guidance`` structured-output backend: see :func:`mad_guardrails.agents.debater.turn_schema`)."""
    doc_id = {"type": "string", "enum": sorted(set(evidence_ids))} if evidence_ids else {"type": "string"}
    quote = {"type": "object", "properties": {"doc_id": doc_id,
                                              "text": {"type": "string", "minLength": 1,
                                                       "maxLength": max_chars}},
             "required": ["doc_id", "text"], "additionalProperties": False}
    rule = {"type": "string", "enum": sorted(set(rule_ids))} if rule_ids else {"type": "string"}
    violation = {"type": "object", "properties": {
        "rule_id": rule,
        "provisions": {"type": "array", "items": doc_id, "maxItems": 4},
        "severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
        "explanation": {"type": "string", "maxLength": max_chars},
    }, "required": ["rule_id", "provisions", "severity", "explanation"], "additionalProperties": False}
    return {"title": "coordinator_answer", "type": "object", "properties": {
        "evidence": {"type": "array", "items": quote, "maxItems": max_quotes},
        "decision": {"type": "string", "enum": ["allow", "flag", "block"]},
        "violations": {"type": "array", "items": violation, "maxItems": max_violations},
        "rationale": {"type": "string", "maxLength": max_chars + 100},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    }, "required": ["evidence", "decision", "violations", "rationale", "confidence"], "additionalProperties": False}


class Coordinator:
    """``mode``: ``auto`` (text first, JSON-constrained repair), ``text`` (both attempts free text), ``json``
    (both constrained) or ``grammar`` (text under the contract grammar, JSON-constrained repair). ``template``:
    ``coordinator`` or ``judge_single`` (the single-agent baseline)."""

    def __init__(self, backend: LLMBackend, model: str, *, mode: Mode = "auto", template: str = "coordinator",
                 max_repairs: int = 1, evidence_chars: int | None = DEFAULT_EVIDENCE_CHARS,
                 max_tokens: int | None = None):
        self.backend = backend
        self.model = model
        self.mode = mode
        self.template = template
        self.max_repairs = max_repairs
        self.evidence_chars = evidence_chars
        self.max_tokens = max_tokens
        self._warned_grammar = False

    def messages(self, case: Case, evidence: list[Evidence], rules: list[Rule], transcript: list[Argument],
                 feedback: list[str] | None = None) -> list[dict]:
        return coordinator_messages(case, evidence, rules, transcript if self.template == "coordinator" else [],
                                    feedback, template=self.template, evidence_chars=self.evidence_chars)

    async def decide(self, case: Case, evidence: list[Evidence], rules: list[Rule], transcript: list[Argument],
                     feedback: list[str] | None = None) -> CoordinatorResult:
        res = CoordinatorResult()
        try:
            msgs = self.messages(case, evidence, rules, transcript, feedback)
        except Exception as e:  # noqa: BLE001
            res.error = f"prompt: {type(e).__name__}: {e}"
            return res
        schema = coordinator_schema([e.unit_id for e in evidence], [r.id for r in rules])
        attempt_schema = schema if self.mode == "json" else None
        grammar = self._grammar(evidence, rules) if self.mode == "grammar" else None
        for attempt in range(1 + max(0, self.max_repairs)):
            resp = await self._call(res, msgs, attempt_schema, grammar if attempt == 0 else None)
            if resp is None:
                return res
            try:
                res.output = parse_coordinator(resp.parsed if resp.parsed is not None else resp.text)
                res.output.raw = resp.text
                res.error = None
                res.repaired = attempt > 0
                return res
            except ParseError as e:
                hint = " (the answer was cut at max_tokens)" if resp.finish_reason == "length" else ""
                res.error = f"unparseable: {e}{hint}"
                log.info("coordinator answer unreadable (attempt %d): %s", attempt + 1, res.error)
                repair_mode = "text" if self.mode == "text" else "json"
                msgs = repair_messages(msgs, resp.text, str(e) + hint, mode=repair_mode)
                attempt_schema = schema if repair_mode == "json" else None
        res.output = None
        return res

    def _grammar(self, evidence: list[Evidence], rules: list[Rule]) -> str | None:
        """The contract grammar for what is shown, or None (backend without grammars, nothing quotable): then the
        first attempt is free text, as in ``auto``."""
        if not getattr(self.backend, "supports_grammar", False):
            if not self._warned_grammar:
                log.warning("coordinator mode 'grammar': the %s backend has no grammars; answering as in 'auto'",
                            getattr(self.backend, "name", "?"))
                self._warned_grammar = True
            return None
        try:
            return contract_grammar(evidence, [r.id for r in rules], evidence_chars=self.evidence_chars)
        except ValueError:
            return None

    async def _call(self, res: CoordinatorResult, msgs: list[dict], schema: dict | None,
                    grammar: str | None = None) -> LLMResponse | None:
        res.calls += 1
        try:
            resp = await self.backend.chat(msgs, model=self.model, json_schema=schema, max_tokens=self.max_tokens,
                                           grammar=grammar)
        except GuardrailError as e:
            res.error = f"BackendError ({error_reason(e)}): {e}"
            return None
        except Exception as e:  # noqa: BLE001
            res.error = f"BackendError (backend): {type(e).__name__}: {e}"
            return None
        res.usage = res.usage + resp.usage
        res.latency_s += resp.latency_s
        res.raw = resp.text
        return resp


def single_judge(backend: LLMBackend, model: str, **kw) -> Coordinator:
    """The single-agent judge baseline for evals (``prompts/judge_single.j2``; no debate transcript)."""
    return Coordinator(backend, model, template="judge_single", **kw)
