"""One debating agent: renders its role's prompt, asks the backend for a JSON turn, returns a typed Argument.

``turn`` never raises: a backend failure or an unreadable answer gives an Argument with ``error`` set, stance
``uncertain`` and confidence 0, so the debate (and the fail-closed verdict) goes on. From round 2 the prompt shows the
earlier rounds and asks the agent to answer the others; ``responds_to`` names the roles it was shown.

    >>> import asyncio
    >>> from mad_guardrails.agents.backends.fake import FakeBackend
    >>> from mad_guardrails.agents.roles import load_roles
    >>> from mad_guardrails.core.debate import Case
    >>> d = Debater(load_roles()[0], FakeBackend(['{"stance": "violation", "claims": [], "confidence": 0.7}']), "m")
    >>> arg, _ = asyncio.run(d.turn(Case(output="x"), [], [], [], 1))
    >>> arg.stance, arg.error
    ('violation', None)
"""

from __future__ import annotations

import logging

from mad_guardrails.agents.backends.base import LLMBackend, LLMResponse, error_reason
from mad_guardrails.agents.parsing import ParseError, parse_turn
from mad_guardrails.agents.prompting import DEFAULT_EVIDENCE_CHARS, debater_messages
from mad_guardrails.agents.roles import RoleSpec
from mad_guardrails.core.debate import Argument, Case
from mad_guardrails.core.errors import GuardrailError
from mad_guardrails.core.units import Evidence
from mad_guardrails.policies.schema import Rule

log = logging.getLogger(__name__)

MAX_CLAIMS = 3
MAX_QUOTES = 2
#: characters per claim / quote: a bounded string always closes, so a small model cannot spend its whole token budget
#: inside one field (cheap with the llguidance backend; xgrammar expands length bounds into large grammars)
MAX_TEXT_CHARS = 200


def turn_schema(evidence_ids: list[str], rule_ids: list[str], *, max_claims: int = MAX_CLAIMS,
                max_quotes: int = MAX_QUOTES, max_chars: int = MAX_TEXT_CHARS,
                quotable: dict[str, list[str]] | None = None) -> dict:
    """JSON schema of one turn: citations constrained to the ids actually shown (an enum), lists and strings bounded.

    With ``quotable`` (shown id -> its sentences, :func:`~mad_guardrails.agents.grammar.quotable`) a quote can only be
    one of the sentences of the document it cites, cut to ``max_chars`` at a word: the coordinator grammar's
    constraint, in the schema, so a debater's quote is verbatim by construction (the verifier still checks it).

        >>> s = turn_schema(["nis2:art_23.4.a"], [], quotable={"nis2:art_23.4.a": ["in any event within 24 hours"]})
        >>> s["properties"]["claims"]["items"]["properties"]["quotes"]["items"]["anyOf"][0]["properties"]["text"]
        {'enum': ['in any event within 24 hours']}

    Serve it with the ``guidance`` structured-output backend (``--structured-outputs-config
    '{"backend": "guidance", "disable_any_whitespace": true}'``): llguidance compiles this schema in ~2 ms, xgrammar
    needs ~6 s (the length bounds) for every new set of ids, i.e. every case."""
    choices = {uid: _cut_all(sents, max_chars) for uid, sents in (quotable or {}).items() if uid in evidence_ids}
    choices = {uid: c for uid, c in choices.items() if c}
    if choices:
        quote = {"anyOf": [{"type": "object", "properties": {"doc_id": {"const": uid}, "text": {"enum": c}},
                            "required": ["doc_id", "text"], "additionalProperties": False}
                           for uid, c in choices.items()]}
        quotes = {"type": "array", "items": quote, "maxItems": max_quotes}
    elif evidence_ids:
        quote = {"type": "object", "properties": {
            "doc_id": {"type": "string", "enum": sorted(set(evidence_ids))},
            "text": {"type": "string", "minLength": 1, "maxLength": max_chars},
        }, "required": ["doc_id", "text"], "additionalProperties": False}
        quotes = {"type": "array", "items": quote, "maxItems": max_quotes}
    else:
        quotes = {"type": "array", "maxItems": 0}
    rule = ({"anyOf": [{"type": "string", "enum": sorted(set(rule_ids))}, {"type": "null"}]} if rule_ids
            else {"type": "null"})
    claim = {"type": "object", "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": max_chars},
        "quotes": quotes,
        "rule_id": rule,
    }, "required": ["text", "quotes", "rule_id"], "additionalProperties": False}
    return {"title": "debate_turn", "type": "object", "properties": {
        "stance": {"type": "string", "enum": ["violation", "compliant", "uncertain"]},
        "claims": {"type": "array", "items": claim, "maxItems": max_claims},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    }, "required": ["stance", "claims", "confidence"], "additionalProperties": False}


def _cut_all(sents: list[str], max_chars: int) -> list[str]:
    """Each sentence cut to ``max_chars`` at a word boundary (a prefix stays a verbatim substring), deduplicated."""
    out: list[str] = []
    for s in sents:
        if len(s) > max_chars:
            s = s[:max_chars].rsplit(" ", 1)[0].rstrip(",;: ")
        if s and s not in out:
            out.append(s)
    return out


class Debater:
    def __init__(self, role: RoleSpec, backend: LLMBackend, model: str, *, structured: bool = True,
                 evidence_chars: int | None = DEFAULT_EVIDENCE_CHARS, max_tokens: int | None = None,
                 max_claims: int = MAX_CLAIMS, max_quotes: int = MAX_QUOTES, max_chars: int = MAX_TEXT_CHARS,
                 quote_sentences: bool = True):
        self.role = role
        self.backend = backend
        self.model = model
        self.structured = structured
        self.evidence_chars = evidence_chars
        self.max_tokens = max_tokens
        self.max_claims, self.max_quotes, self.max_chars = max_claims, max_quotes, max_chars
        #: quotes limited to the shown documents' sentences (the coordinator grammar's constraint, in the schema)
        self.quote_sentences = quote_sentences

    def messages(self, case: Case, evidence: list[Evidence], rules: list[Rule], transcript: list[Argument],
                 round: int) -> list[dict]:
        return debater_messages(self.role, case, evidence, rules, transcript, round,
                                evidence_chars=self.evidence_chars, max_claims=self.max_claims)

    async def turn(self, case: Case, evidence: list[Evidence], rules: list[Rule], transcript: list[Argument],
                   round: int) -> tuple[Argument, LLMResponse | None]:
        name = self.role.name
        others = sorted({a.role for a in transcript if a.role != name and a.round < round and not a.error})

        def failed(msg: str, raw: str | None = None) -> Argument:
            log.warning("%s round %d: %s", name, round, msg)
            return Argument(role=name, round=round, stance="uncertain", confidence=0.0, error=msg, raw=raw,
                            responds_to=others)

        try:
            msgs = self.messages(case, evidence, rules, transcript, round)
            shown = None
            if self.structured and self.quote_sentences:
                from mad_guardrails.agents.grammar import quotable

                shown = quotable(evidence, evidence_chars=self.evidence_chars)
            schema = (turn_schema([e.unit_id for e in evidence], [r.id for r in rules], max_claims=self.max_claims,
                                  max_quotes=self.max_quotes, max_chars=self.max_chars, quotable=shown)
                      if self.structured else None)
        except Exception as e:  # noqa: BLE001 - a template error must not take the debate down
            return failed(f"prompt: {type(e).__name__}: {e}"), None
        try:
            resp = await self.backend.chat(msgs, model=self.model, json_schema=schema, max_tokens=self.max_tokens)
        except GuardrailError as e:
            return failed(f"BackendError ({error_reason(e)}): {e}"), None
        except Exception as e:  # noqa: BLE001
            return failed(f"BackendError (backend): {type(e).__name__}: {e}"), None
        try:
            data = parse_turn(resp.parsed if resp.parsed is not None else resp.text)
        except ParseError as e:
            hint = " (the answer was cut at max_tokens)" if resp.finish_reason == "length" else ""
            return failed(f"unparseable: {e}{hint}", raw=resp.text), resp
        return Argument(role=name, round=round, raw=resp.text, responds_to=others, **data), resp
