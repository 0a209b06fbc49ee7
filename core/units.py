"""The citable unit and the retrieved evidence: the two types every other folder speaks.

A :class:`Unit` is one article / recital / annex / framework element of an act, or one paragraph or point of it.
Its id is ``<doc>:<unit>``; paragraphs and points extend the id of their article with dots (``art_5.1.c``), so a
verdict can cite the exact point. Hierarchy is carried by ``parent`` (framework ids such as ``GV.OC-01`` contain dots
of their own, so never parse the hierarchy out of the id)::

    >>> u = Unit(id="eu-ai-act:art_5.1.c", doc="eu-ai-act", kind="point", parent="eu-ai-act:art_5.1",
    ...          heading="Article 5 — Prohibited AI practices", text="(c) the placing on the market ...")
    >>> u.local_id
    'art_5.1.c'
    >>> split_unit_id("nist-csf-2.0:GV.OC-01")
    ('nist-csf-2.0', 'GV.OC-01')
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The eight acts the project knows by default (folder names of the corpus), plus policy packs as a pseudo-act.
DOC_IDS: tuple[str, ...] = (
    "eu-ai-act",
    "nis2",
    "dora",
    "gdpr",
    "cra",
    "nist-ai-rmf",
    "nist-csf-2.0",
    "nist-ai-600-1",
    "nist-sp-1270",
)

UnitKind = Literal[
    "article", "recital", "annex", "paragraph", "point", "section", "framework_element", "policy_rule", "text"
]


def split_unit_id(unit_id: str) -> tuple[str, str]:
    """Split ``"eu-ai-act:art_5.1.c"`` into ``("eu-ai-act", "art_5.1.c")``; raises ValueError on a malformed id."""
    doc, sep, local = unit_id.partition(":")
    if not sep or not doc or not local:
        raise ValueError(f"unit id {unit_id!r} is not of the form '<doc>:<unit>' (e.g. 'eu-ai-act:art_5.1.c')")
    return doc, local


class Unit(BaseModel):
    """One citable piece of a regulatory text (or of a policy pack)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="'<doc>:<unit>', e.g. 'eu-ai-act:art_5.1.c', 'nis2:art_23', 'nist-csf-2.0:GV.OC-01'")
    doc: str = Field(description="act id, e.g. 'eu-ai-act'")
    kind: UnitKind
    parent: str | None = Field(default=None, description="id of the enclosing unit, None for top-level units")
    heading: str = ""
    text: str
    act_title: str = ""
    chapter: str | None = None
    section: str | None = None
    number: str | None = None
    source_file: str | None = None
    published: date | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        split_unit_id(v)
        return v

    @property
    def local_id(self) -> str:
        return split_unit_id(self.id)[1]


def id_covers(gold: str, retrieved: str) -> bool:
    """True when ``retrieved`` is ``gold`` or one of its paragraphs/points (``art_5`` covers ``art_5.1.c``), or one
    of its framework sub-elements (``nist-csf-2.0:RS.CO`` covers ``RS.CO-02``; ``nist-ai-rmf:GOVERN`` covers
    ``GOVERN-1``).

    >>> id_covers("eu-ai-act:art_5", "eu-ai-act:art_5.1.c"), id_covers("eu-ai-act:art_5", "eu-ai-act:art_50")
    (True, False)
    >>> id_covers("nist-csf-2.0:RS.CO", "nist-csf-2.0:RS.CO-02")
    True
    """
    return retrieved == gold or retrieved.startswith(gold + ".") or retrieved.startswith(gold + "-")


class Evidence(BaseModel):
    """A retrieved unit (or chunk of one) with its scores and rank, as the agents see it: ``[unit_id] text``."""

    unit_id: str
    doc: str
    heading: str = ""
    text: str
    rank: int = Field(ge=1)
    score: float = Field(description="fused score used for ranking")
    dense: float | None = None
    bm25: float | None = None
    relevance: float | None = Field(default=None, description="relevance-filter score, None when no filter ran")
    source: Literal["regulation", "policy"] = "regulation"
    kind: Literal["clause", "rule"] = Field(default="clause", description="a regulation unit, or a policy-pack rule "
                                            "passage (ranked apart from the clauses, returned beside them)")
    passage_id: str = Field(default="", description="index row id of the passage ('' = unit_id)")
    rerank: float | None = Field(default=None, description="reranker P(relevant), None when no reranker ran")
    cites: list[str] = Field(default_factory=list, description="for a rule: the units it cites (its provisions)")

    @property
    def pid(self) -> str:
        return self.passage_id or self.unit_id

    def render(self) -> str:
        """The ``[doc_id] text`` block the prompts and the coordinator contract use."""
        return f"[{self.unit_id}] {self.text}"
