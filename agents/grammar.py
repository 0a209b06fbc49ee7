"""The coordinator's quote-first contract as a grammar: an answer that can only quote sentences of the documents shown.

:func:`contract_grammar` writes the EVIDENCE/ANSWER contract of ``prompts/coordinator.j2`` as a Lark grammar (the
llguidance dialect that vLLM's ``guidance`` structured-output backend compiles; pass it as
``backend.chat(..., grammar=g)``, which the openai backend sends as ``{"structured_outputs": {"grammar": g}}``):
1..``max_quotes`` EVIDENCE lines, each a shown document id and one of that document's sentences, verbatim; ``allow``
with no violation, or ``flag`` / ``block`` with none or one violation of a shown rule on a shown document; a one-line
rationale; a confidence. Under it every quote is verbatim and every citation valid *by construction*; what the model
still decides — which sentence, the decision, the rule, the rationale — is its own, and the verifier still checks it.

Used by the coordinator's ``grammar`` mode (``llm.coordinator_mode: grammar``) and by the self-distillation teacher
(``mad-guardrails train coordinator sample --constrained``), where SmolLM2-135M asked plainly almost never answers in the
contract.

    >>> from mad_guardrails.core.units import Evidence
    >>> ev = [Evidence(unit_id="gdpr:art_33.1", doc="gdpr", rank=1, score=1,
    ...                text="1. The controller shall notify the breach not later than 72 hours after.")]
    >>> g = contract_grammar(ev, ["gdpr.breach"])
    >>> grammar_accepts(g, 'EVIDENCE:\\n[gdpr:art_33.1] "The controller shall notify the breach not later than 72 hours '
    ...                    'after."\\nANSWER:\\ndecision: allow\\nviolations: none\\nrationale: It matches the article.\\n'
    ...                    'confidence: 0.8')
    True
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from mad_guardrails.agents.prompting import DEFAULT_EVIDENCE_CHARS
from mad_guardrails.core.units import Evidence

#: sentences offered per document (the first ones: openings carry the operative words)
MAX_SENTENCES = 12

_SENT_RE = re.compile(r"[^\n]+?(?:[.;:](?=\s)|$)", re.MULTILINE)
_ENUM_RE = re.compile(r"^\s*(?:\(?[0-9a-z]{1,4}\)|\d+\.)\s+")


def sentences(text: str, *, max_words: int = 40, min_words: int = 4) -> list[str]:
    """The sentences (or clauses ending in ``.;:``) of ``text`` with at least ``min_words`` words, without a leading
    point/paragraph number, cut after ``max_words`` words — each a verbatim substring of ``text``.

    >>> sentences("1. Member States shall ensure that entities notify. (a) without undue delay, within 24 hours;")
    ['Member States shall ensure that entities notify.', 'without undue delay, within 24 hours']
    """
    out: list[str] = []
    for m in _SENT_RE.finditer(text):
        sent = m.group(0).strip()
        sent = sent[_ENUM_RE.match(sent).end():] if _ENUM_RE.match(sent) else sent
        words = list(re.finditer(r"\S+", sent))
        if len(words) < min_words:
            continue
        if len(words) > max_words:
            sent = sent[: words[max_words - 1].end()]
        out.append(sent.rstrip(",;: "))
    return out


def _lit(s: str) -> str:
    """A Lark string literal for ``s`` (JSON escaping: quotes, backslashes and control characters)."""
    return json.dumps(s, ensure_ascii=False)


def _alt(options: Sequence[str]) -> str:
    return " | ".join(_lit(o) for o in options)


def quotable(evidence: Sequence[Evidence], *, evidence_chars: int | None = DEFAULT_EVIDENCE_CHARS,
             max_sentences: int = MAX_SENTENCES) -> dict[str, list[str]]:
    """Per shown document, the sentences an answer may quote (from the text as the prompt shows it)."""
    out: dict[str, list[str]] = {}
    for e in evidence:
        text = e.text[:evidence_chars] if evidence_chars else e.text
        sents = [s for s in sentences(text) if '"' not in s][:max_sentences]
        if sents and e.unit_id not in out:
            out[e.unit_id] = sents
    return out


def contract_grammar(evidence: Sequence[Evidence], rule_ids: Sequence[str], *, max_quotes: int = 2,
                     evidence_chars: int | None = DEFAULT_EVIDENCE_CHARS, max_sentences: int = MAX_SENTENCES) -> str:
    """The Lark grammar of a contract answer quoting only ``evidence`` and citing only ``rule_ids`` (see the module
    docstring; with no rule shown, no violation can be written). Raises ``ValueError`` when no document has a
    quotable sentence."""
    docs = quotable(evidence, evidence_chars=evidence_chars, max_sentences=max_sentences)
    if not docs:
        raise ValueError("no quotable sentence in the documents shown")
    lines = []
    quote_rules = []
    for n, (uid, sents) in enumerate(docs.items()):
        lines.append(f'q{n}: {_lit(f"[{uid}] ")} "\\"" ({_alt(sents)}) "\\"\\n"')
        quote_rules.append(f"q{n}")
    quotes = " ".join(["quote"] + ["quote?"] * (max_quotes - 1))
    return "\n".join([
        f'start: "EVIDENCE:\\n" {quotes} "ANSWER:\\n" answer',
        f"quote: {' | '.join(quote_rules)}",
        *lines,
        'answer: "decision: allow\\nviolations: none\\n" tail',
        '      | "decision: " ("flag" | "block") "\\n" violations tail',
        ('violations: "violations: none\\n" | "violations:\\n- rule: " rule " | provisions: " doc " | severity: " '
         'severity " | explanation: " EXPLANATION "\\n"') if rule_ids else 'violations: "violations: none\\n"',
        f"rule: {_alt(list(rule_ids))}" if rule_ids else "",
        f"doc: {_alt(list(docs))}",
        'severity: "low" | "medium" | "high" | "critical"',
        'tail: "rationale: " RATIONALE "\\nconfidence: " CONFIDENCE',
        "EXPLANATION: /[A-Za-z][^\\n|]{10,160}/",
        "RATIONALE: /[A-Za-z][^\\n]{15,240}/",
        'CONFIDENCE: /0\\.[1-9]/ | "1.0"',
    ]) + "\n"


def grammar_accepts(grammar: str, text: str) -> bool:
    """Whether ``text`` is a complete answer under ``grammar`` (llguidance, the library behind vLLM's ``guidance``
    backend, over bytes). Raises ``ImportError`` when llguidance is not installed (it comes with vLLM)."""
    from llguidance import LLMatcher, LLTokenizer, grammar_from

    m = LLMatcher(LLTokenizer("byte"), grammar_from("lark", grammar))
    return bool(m.consume_tokens(list(text.encode("utf-8")))) and m.is_accepting()


def grammar_error(grammar: str) -> str | None:
    """llguidance's complaint about ``grammar`` (None when it compiles)."""
    from llguidance import LLMatcher, grammar_from

    return LLMatcher.validate_grammar(grammar_from("lark", grammar)) or None
