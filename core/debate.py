"""Typed agent turns: quotes, claims, arguments and the coordinator's decision.

Every claim an agent makes carries quotes of the evidence it relies on, each with the ``[doc_id]`` it was shown::

    >>> q = Quote(doc_id="nis2:art_23.4.a", text="without undue delay and in any event within 24 hours")
    >>> arg = Argument(role="prosecutor", round=1, stance="violation", confidence=0.8,
    ...                claims=[Claim(text="The output says 72 hours for the early warning.", quotes=[q])])
    >>> arg.quotes()[0].doc_id
    'nis2:art_23.4.a'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from mad_guardrails.core.errors import InputError

Decision = Literal["allow", "flag", "block"]
Stance = Literal["violation", "compliant", "uncertain"]


#: The one input limit (characters of the checked output, and of the query), enforced once where text comes in
#: (:func:`validate_text`); long outputs are retrieved for window by window, never refused further down.
MAX_INPUT_CHARS = 20_000
_UNDECODED = re.compile("[\ud800-\udfff]")


def validate_text(value: object, max_chars: int = MAX_INPUT_CHARS, *, field: str = "output") -> str:
    """The text to check, or an :class:`InputError` that says what to fix (bytes are decoded as UTF-8).

    >>> validate_text("  ")
    Traceback (most recent call last):
    ...
    mad_guardrails.core.errors.InputError: output is empty Fix: pass the AI output to check (a non-empty string)
    """
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{field} is not valid UTF-8 (byte {e.start}: {bytes(value)[e.start:e.start + 4]!r})",
                             fix="decode the text to str first, or re-encode it as UTF-8") from e
    if not isinstance(value, str):
        raise InputError(f"{field} must be a string, got {type(value).__name__}", fix="pass the AI output as text")
    bad = _UNDECODED.search(value)
    if bad:  # bytes that were not UTF-8, smuggled in by surrogateescape (stdin, argv, file names)
        at = len(value[:bad.start()].encode("utf-8", "surrogateescape"))
        ch = bad.group(0)
        raw = ch.encode("utf-8", "surrogateescape" if "\udc80" <= ch <= "\udcff" else "surrogatepass")
        raise InputError(f"{field} is not valid UTF-8 (byte {at}: {raw!r} is not a character)",
                         fix="re-encode the text as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")
    if "\x00" in value:
        raise InputError(f"{field} contains NUL bytes: this looks like binary data, not text",
                         fix="pass the decoded text of the AI output")
    if not value.strip():
        raise InputError(f"{field} is empty", fix="pass the AI output to check (a non-empty string)")
    if len(value) > max_chars:
        raise InputError(f"{field} has {len(value):,} characters; the limit is {max_chars:,}",
                         fix="split the text into parts and check each, or raise max_input_chars in the config")
    return value


class Case(BaseModel):
    """What is under check: the AI output (untrusted data), the question that produced it, optional context, and
    questions/facts a person interjected during the debate (the console)."""

    output: str
    query: str | None = None
    context: str | None = None
    interjections: list[str] = Field(default_factory=list)
    claim_checks: list[str] = Field(default_factory=list, description="the verifier's per-claim results (claim, "
                                    "entailed / contradicted / not settled, the deciding clause), shown to the agents")


class Quote(BaseModel):
    """A verbatim quote from one evidence unit, cited by the id shown in the prompt's ``[doc_id]`` block."""

    doc_id: str = Field(description="the unit id exactly as shown in brackets, e.g. 'eu-ai-act:art_5.1.c'")
    text: str = Field(description="verbatim text copied from that unit")
    verified: bool | None = Field(default=None, description="set by the guardrail: whether the text is in the unit "
                                  "it cites (strict or content verbatim); None = not checked")


class Claim(BaseModel):
    text: str
    quotes: list[Quote] = Field(default_factory=list)
    rule_id: str | None = Field(default=None, description="policy rule the claim is about, if any")


class Argument(BaseModel):
    """One agent turn in the debate."""

    role: str
    round: int = Field(ge=1)
    stance: Stance
    claims: list[Claim] = Field(default_factory=list)
    confidence: float = Field(ge=0.0, le=1.0, default=0.5)
    responds_to: list[str] = Field(default_factory=list, description="roles whose arguments this turn answers")
    raw: str | None = Field(default=None, description="the model's raw text, kept for the transcript")
    error: str | None = Field(default=None, description="set when the turn failed (backend error, unparseable)")

    def quotes(self) -> list[Quote]:
        return [q for c in self.claims for q in c.quotes]


class ProposedViolation(BaseModel):
    rule_id: str
    provisions: list[str] = Field(default_factory=list, description="unit ids")
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    explanation: str = ""
    quotes: list[Quote] = Field(default_factory=list)


class CoordinatorOutput(BaseModel):
    """What the coordinator returns under the quote-first EVIDENCE/ANSWER contract."""

    evidence: list[Quote] = Field(default_factory=list, description="EVIDENCE: verbatim quotes, first")
    decision: Decision
    violations: list[ProposedViolation] = Field(default_factory=list)
    rationale: str = ""
    confidence: float = Field(ge=0.0, le=1.0, default=0.5)
    raw: str | None = None


def clean_id(unit_id: str) -> str:
    """The cited id without the brackets / whitespace a model may have copied with it (``"[nis2:art_23] "``)."""
    return unit_id.strip().strip("[]").strip()


def dedupe_quotes(quotes: Iterable[Quote]) -> list[Quote]:
    """Quotes in first-seen order, one per (cited id, text)."""
    seen, out = set(), []
    for q in quotes:
        k = (clean_id(q.doc_id), q.text.strip())
        if k not in seen:
            seen.add(k)
            out.append(q)
    return out
