"""The claims of a checked output and what the clauses say of each: the types the verifier fills in, the graph
routes on, and the verdict shows (spans point back into the output).

    >>> c = OutputClaim(index=0, text="The early warning is due within 72 hours.", start=0, end=41, regulatory=True)
    >>> ClaimCheck(claim=c, label="neutral").line()
    '"The early warning is due within 72 hours.": neutral (entailed 0.00, contradicted 0.00)'
    >>> print(ClaimCheck(claim=c, label="neutral", entailed=0.98, note="scope widened").line())
    "The early warning is due within 72 hours.": neutral (entailed 0.98, contradicted 0.00) — not settled: scope widened
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from mad_guardrails.core.debate import Quote

ClaimLabel = Literal["entailed", "contradicted", "neutral"]


class OutputClaim(BaseModel):
    """One atomic claim of the checked output: its text, where it is (``output[start:end] == text``) and whether it
    states regulatory content (only those drive a decision)."""

    index: int
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    regulatory: bool
    reason: str = Field(default="", description="why a claim is not regulatory (greeting, hedge, question ...)")
    context: str = Field(default="", description="the claim as a sentence of its own when it shares the subject and "
                                                 "verb of the clause before it (that clause's stem + the text); "
                                                 "empty when the text already stands alone")

    @property
    def stated(self) -> str:
        """What the claim says, as a sentence a verifier can read: ``context`` or ``text``."""
        return self.context or self.text

    @property
    def readings(self) -> tuple[str, ...]:
        """The texts a restatement may match: the claim as written and, for a list item, as a sentence of its own."""
        return (self.text, self.context) if self.context else (self.text,)


class ClaimCheck(BaseModel):
    """What the clauses say of one claim."""

    claim: OutputClaim
    label: ClaimLabel
    entailed: float = Field(0.0, description="best P(entailed) over the sentences scored")
    contradicted: float = Field(0.0, description="best P(contradicted) over the sentences scored")
    support: Quote | None = Field(default=None, description="the sentence that best entails the claim")
    against: Quote | None = Field(default=None, description="the sentence that best contradicts the claim")
    pairs: int = Field(0, description="sentences scored")
    basis: str = Field("", description="how the label was reached: 'model', 'model + number' (a checked "
                                       "difference confirmed the model), 'restatement' (near word-for-word)")
    note: str = Field("", description="why a model's label was not taken (an unconfirmed contradiction ...)")

    def line(self) -> str:
        """One line for prompts, explanations and reports."""
        q = self.support if self.label == "entailed" else self.against if self.label == "contradicted" else None
        cite = f' — [{q.doc_id}] "{q.text}"' if q else ""
        why = f" — not settled: {self.note}" if self.label == "neutral" and self.note else ""
        how = "restates the clause; model: " if self.basis == "restatement" else ""  # the model's reading did not decide
        return (f'"{self.claim.text}": {self.label} ({how}entailed {self.entailed:.2f}, contradicted '
                f"{self.contradicted:.2f}){cite}{why}")
