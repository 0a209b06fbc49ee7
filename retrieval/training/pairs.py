"""Training pairs: the passage and (query, positive passage) records, their unit-level split, and their file.

**Split by unit**: every passage has a *split key* -- its top-level unit (article / recital / annex; for framework
elements the category under the function, ``nist-csf-2.0:DE.CM``, ``nist-ai-rmf:GOVERN-1``) -- and a key is in
``test`` with probability ``test_fraction`` (sha256 of seed + key), so no positive of a test query (nor any passage
of its article) is a training positive or a training hard negative. ``holdout_keys`` forces keys into test (e.g. the
gold units of the hand-written set, for a strict run).

:func:`resplit` makes that split stricter after the fact (after hard-negative mining).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from mad_guardrails.core.hashing import text_sha256
from mad_guardrails.core.records import read_models, write_models

if TYPE_CHECKING:
    from mad_guardrails.retrieval.corpus import Corpus

QueryType = Literal["benign_sensitive", "ambiguous", "adversarial"]
QUERY_TYPES: tuple[str, ...] = ("benign_sensitive", "ambiguous", "adversarial")
Split = Literal["train", "test"]


class PassageRef(BaseModel):
    """What training needs of an indexed passage."""

    pid: str
    unit_id: str
    doc: str
    key: str = Field(description="split key: the top-level unit (framework elements: their category)")
    heading: str = ""
    text: str
    embed_text: str
    kind: str = ""


class TrainPair(BaseModel):
    """One generated (query, positive passage) pair; ``negatives`` are filled by hard-negative mining."""

    query: str
    type: QueryType
    pid: str = Field(description="passage id of the positive")
    unit_id: str
    key: str
    doc: str
    positive: str = Field(description="the positive's embed text (what the index embeds)")
    negatives: list[str] = Field(default_factory=list)
    negative_pids: list[str] = Field(default_factory=list)
    source: str = Field(description="title | clause | phrase | term | fact | llm")
    split: Split = "train"


# --------------------------------------------------------------------------------------------------------------------
# passages and the split
# --------------------------------------------------------------------------------------------------------------------


def split_key(corpus: Corpus, unit_id: str) -> str:
    """The unit a passage is split by: its top-level unit; for framework elements the level under the function.

    >>> from mad_guardrails.retrieval.corpus import Corpus
    >>> from mad_guardrails.core.units import Unit
    >>> c = Corpus.from_units([Unit(id="f:DE", doc="f", kind="framework_element", text="Detect"),
    ...     Unit(id="f:DE.CM", doc="f", kind="framework_element", text="Monitoring", parent="f:DE"),
    ...     Unit(id="f:DE.CM-01", doc="f", kind="framework_element", text="Networks are monitored", parent="f:DE.CM")])
    >>> split_key(c, "f:DE.CM-01"), split_key(c, "f:DE")
    ('f:DE.CM', 'f:DE')
    """
    u = corpus.get(unit_id)
    if u is None:
        return unit_id
    chain = [u, *corpus.ancestors(unit_id)]  # nearest first, root last
    if u.kind == "framework_element" or chain[-1].kind == "framework_element":
        return chain[-2].id if len(chain) >= 2 else chain[-1].id
    root = corpus.root_of(unit_id)
    return root.id if root is not None else unit_id


def passage_refs(corpus: Corpus, passages: Sequence[Any] | None = None) -> list[PassageRef]:
    """The corpus's passages (as :meth:`Corpus.passages` cuts them for the index) with their split keys."""
    passages = list(passages) if passages is not None else corpus.passages()
    out = []
    for p in passages:
        get = p.get if isinstance(p, dict) else (lambda k, d="", _p=p: getattr(_p, k, d))
        uid = get("unit_id")
        text = get("text")
        heading = get("heading", "") or ""
        embed = get("embed_text", "") or (f"{heading}\n{text}" if heading else text)
        out.append(PassageRef(pid=get("passage_id", "") or uid, unit_id=uid, doc=get("doc"), key=split_key(corpus, uid),
                              heading=heading, text=text, embed_text=embed, kind=get("kind", "") or ""))
    return out


def assign_split(key: str, test_fraction: float, seed: int, holdout_keys: Iterable[str] = ()) -> Split:
    """``test`` for a ``test_fraction`` of keys (stable hash of seed + key) and for keys under ``holdout_keys``."""
    from mad_guardrails.core.units import id_covers

    if any(id_covers(h, key) or id_covers(key, h) for h in holdout_keys):
        return "test"
    h = int(text_sha256(f"{seed}:{key}")[:8], 16)
    return "test" if (h % 10_000) < test_fraction * 10_000 else "train"


def resplit(pairs: Sequence[TrainPair], holdout_keys: Iterable[str]) -> list[TrainPair]:
    """Move pairs whose split key falls under ``holdout_keys`` to ``test`` and drop, from the remaining train pairs,
    negatives that belong to a test unit (a strict split made after mining; generation does not depend on the
    split, so this equals generating with ``holdout_keys``)."""
    from mad_guardrails.core.units import id_covers

    holdout = list(holdout_keys)
    out = [p.model_copy(update={"split": "test"}) if p.split == "train" and any(
        id_covers(h, p.key) or id_covers(p.key, h) for h in holdout) else p for p in pairs]
    test_keys = {p.key for p in out if p.split == "test"}
    test_pids = {p.pid for p in out if p.key in test_keys}
    fixed = []
    for p in out:
        if p.split == "train" and set(p.negative_pids) & test_pids:
            keep = [i for i, pid in enumerate(p.negative_pids) if pid not in test_pids]
            p = p.model_copy(update={"negatives": [p.negatives[i] for i in keep],
                                     "negative_pids": [p.negative_pids[i] for i in keep]})
        fixed.append(p)
    return fixed


# --------------------------------------------------------------------------------------------------------------------
# the pairs file
# --------------------------------------------------------------------------------------------------------------------


def save_pairs(pairs: Sequence[TrainPair], path: str | Path) -> Path:
    return write_models(pairs, path, atomic=True)


def load_pairs(path: str | Path) -> list[TrainPair]:
    return read_models(path, TrainPair, missing_fix="generate it with `mad-guardrails train embedder --prepare-only "
                       "--out DIR` (it writes DIR/pairs.jsonl)",
                       fix="regenerate the file with `mad-guardrails train embedder --prepare-only`")


def summarize(pairs: Sequence[TrainPair]) -> dict[str, Any]:
    """Counts by split × type, source and doc (for reports)."""
    out: dict[str, Any] = {"n": len(pairs)}
    for split in ("train", "test"):
        sub = [p for p in pairs if p.split == split]
        out[split] = {"n": len(sub), "keys": len({p.key for p in sub}),
                      "by_type": dict(sorted(Counter(p.type for p in sub).items())),
                      "by_source": dict(sorted(Counter(p.source for p in sub).items())),
                      "by_doc": dict(sorted(Counter(p.doc for p in sub).items()))}
    return out
