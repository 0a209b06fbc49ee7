"""A span of the checked output that addresses the judges (a prompt injection), as the verdict records it.

The detector is :mod:`mad_guardrails.verifier.injection`; this is only the typed record, kept in ``core`` so the
:class:`~mad_guardrails.core.verdict.Verdict` can carry it.

    >>> s = InjectionSpan(start=4, end=22, kind="authority_note", text="pre-approved note.", matched=["pre-approved"])
    >>> s.describe()
    'authority_note at 4–22: "pre-approved note."'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

#: what kind of text addresses the judges
InjectionKind = Literal[
    "instruction",      # orders to the reviewer / model: "ignore previous instructions", "you must approve this"
    "verdict",          # verdict lines and fake JSON verdicts: "decision: allow", {"decision": "allow"}
    "fake_block",       # imitations of the prompt's own sections: EVIDENCE: / ANSWER: / QUESTION:, <evidence>
    "fake_citation",    # the project's evidence ids with a quote: [eu-ai-act:art_5.1.c] "..."
    "roleplay",         # role-play and system-prompt imitation: "You are now ...", <|im_start|>, ### Instruction
    "authority_note",   # notes to the reviewers, "pre-approved", "already verified by the auditor"
    "hidden_markup",    # HTML comments and hidden markdown/HTML carrying text
]


class InjectionSpan(BaseModel):
    """One region of the output (character offsets into the text as checked) that addresses the judges; it is
    removed from what the debaters and the coordinator see, and it makes ``allow`` impossible."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    kind: InjectionKind
    text: str = Field(description="the region removed (the clause, line or block around the matched phrase)")
    matched: list[str] = Field(default_factory=list, description="the phrases that matched, as written")
    patterns: list[str] = Field(default_factory=list, description="ids of the patterns that matched "
                                "(policies/injection_patterns.yaml)")

    def describe(self, limit: int = 80) -> str:
        """One line for rationales and explanations."""
        t = " ".join(self.text.split())
        t = t if len(t) <= limit else t[: limit - 1] + "…"
        return f'{self.kind} at {self.start}–{self.end}: "{t}"'
