"""The ingested corpus: the Units of one or more acts, their hierarchy, passages to index, and its on-disk form.

On disk (``mad_guardrails.core.paths.corpus_dir()`` by default) a corpus is one ``<doc>.units.jsonl`` per act (one
``Unit.model_dump_json()`` per line, sub-units right after their parent) plus ``<doc>.manifest.json`` (title,
source files and their sha256, counts, hash of the units).

    >>> from mad_guardrails.core.paths import shared_corpus
    >>> root = shared_corpus()
    >>> c = load_corpus(root / "nis2") if root else None
    >>> (c is None) or c.get("nis2:art_23.4.a").text.startswith("(a) without undue delay")
    True
    >>> (c is None) or c.root_of("nis2:art_23.4.a").id == "nis2:art_23"
    True
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from mad_guardrails.core.errors import CorpusError
from mad_guardrails.core.hashing import file_sha256
from mad_guardrails.core.records import write_models
from mad_guardrails.core.units import Unit
from mad_guardrails.retrieval.chunking import SUBUNIT_KINDS, Passage, make_passages

__all__ = ["ActManifest", "Corpus", "Passage", "TOP_KINDS", "load_corpus"]

#: kinds of the structural units that loaders make (sub-units are paragraphs / points / annex sections)
TOP_KINDS = ("article", "recital", "annex", "framework_element", "section", "text", "policy_rule")
_CONTAINER_KINDS = ("article", "annex", "recital", "paragraph", "point")
FORMAT_VERSION = 1


class ActManifest(BaseModel):
    """``<doc>.manifest.json``: what an ingested act is and where it came from."""

    doc: str
    title: str
    short: str = ""
    published: date | None = None
    source: list[str] = Field(default_factory=list, description="files (or URLs) the units were read from")
    sha256: dict[str, str] = Field(default_factory=dict, description="sha256 of each source file")
    counts: dict[str, int] = Field(default_factory=dict, description="units by kind (all units)")
    top_counts: dict[str, int] = Field(default_factory=dict, description="top-level units by kind")
    units_sha256: str = ""
    format_version: int = FORMAT_VERSION


class Corpus:
    """Units of one or more acts, in document order.

    >>> u = Unit(id="d:art_1", doc="d", kind="article", text="1. Hi.\\n\\n2. Bye.", heading="Article 1")
    >>> c = Corpus.from_units([u])
    >>> [x.id for x in c.children("d:art_1")]
    ['d:art_1.1', 'd:art_1.2']
    """

    def __init__(self) -> None:
        self._units: dict[str, Unit] = {}
        self._by_doc: dict[str, list[str]] = defaultdict(list)
        self._manifests: dict[str, ActManifest] = {}
        self._children: dict[str, list[str]] | None = None
        self._hash: str | None = None

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_units(cls, units: Iterable[Unit], *, subunits: bool = True) -> Corpus:
        """A corpus of ``units``; ``subunits`` adds paragraphs/points of articles and annexes that lack them."""
        from mad_guardrails.retrieval.chunking import split_unit

        units = list(units)
        if subunits:
            has_kids = {u.parent for u in units if u.parent}
            units = [x for u in units for x in ([u] + (split_unit(u) if u.id not in has_kids else []))]
        c = cls()
        by_doc: dict[str, list[Unit]] = defaultdict(list)
        for u in units:
            by_doc[u.doc].append(u)
        for doc, us in by_doc.items():
            c.add_act(doc, us)
        return c

    def add_act(self, doc: str, units: Sequence[Unit], *, source: Sequence[str] = (),
                sha256: dict[str, str] | None = None, replace: bool = True) -> None:
        """Add (or replace) the units of one act; ``source``/``sha256`` go into its manifest."""
        if doc in self._by_doc:
            if not replace:
                raise CorpusError(f"act {doc!r} is already in the corpus", fix="remove it first or replace it")
            for uid in self._by_doc.pop(doc):
                self._units.pop(uid, None)
        ids: list[str] = []
        for u in units:
            if u.doc != doc:
                raise CorpusError(f"unit {u.id} belongs to {u.doc!r}, not {doc!r}", fix="ingest acts separately")
            if u.id in self._units:
                raise CorpusError(f"unit id {u.id!r} occurs twice", where=doc,
                                  fix="each article/recital/annex/element must appear once; remove the duplicate")
            self._units[u.id] = u
            ids.append(u.id)
        self._by_doc[doc] = ids
        self._children = None
        self._hash = None
        from mad_guardrails.retrieval.ingest.base import act_info

        info = act_info(doc)
        self._manifests[doc] = ActManifest(
            doc=doc, title=info.title, short=info.short, published=info.published, source=list(source),
            sha256=dict(sha256 or {}), counts=self._count(ids, top=False), top_counts=self._count(ids, top=True),
            units_sha256=self._doc_hash(doc),
        )

    def remove_act(self, doc: str) -> None:
        for uid in self._by_doc.pop(doc, []):
            self._units.pop(uid, None)
        self._manifests.pop(doc, None)
        self._children = None
        self._hash = None

    # ------------------------------------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._units

    def __iter__(self):
        return iter(self.units())

    def get(self, unit_id: str) -> Unit | None:
        return self._units.get(unit_id)

    def docs(self) -> list[str]:
        return [d for d, ids in self._by_doc.items() if ids]

    def manifest(self, doc: str) -> ActManifest:
        return self._manifests[doc]

    def units(self, doc: str | None = None, kinds: Iterable[str] | str | None = None) -> list[Unit]:
        """Units in document order, optionally of one act and/or of some kinds."""
        if isinstance(kinds, str):
            kinds = (kinds,)
        kinds = set(kinds) if kinds is not None else None
        docs = [doc] if doc is not None else list(self._by_doc)
        out = []
        for d in docs:
            for uid in self._by_doc.get(d, ()):
                u = self._units[uid]
                if kinds is None or u.kind in kinds:
                    out.append(u)
        return out

    def _child_index(self) -> dict[str, list[str]]:
        if self._children is None:
            idx: dict[str, list[str]] = defaultdict(list)
            for ids in self._by_doc.values():
                for uid in ids:
                    p = self._units[uid].parent
                    if p is not None:
                        idx[p].append(uid)
            self._children = idx
        return self._children

    def children(self, unit_id: str) -> list[Unit]:
        """Direct children (paragraphs of an article, points of a paragraph, categories of a function ...)."""
        return [self._units[c] for c in self._child_index().get(unit_id, ())]

    def descendants(self, unit_id: str) -> list[Unit]:
        out, todo = [], list(reversed(self.children(unit_id)))
        while todo:
            u = todo.pop()
            out.append(u)
            todo.extend(reversed(self.children(u.id)))
        return out

    def parent(self, unit_id: str) -> Unit | None:
        u = self._units.get(unit_id)
        return self._units.get(u.parent) if u is not None and u.parent else None

    def ancestors(self, unit_id: str) -> list[Unit]:
        """Parent, grand-parent, ... (nearest first)."""
        out: list[Unit] = []
        cur = self.parent(unit_id)
        while cur is not None and len(out) < 32:
            out.append(cur)
            cur = self.parent(cur.id)
        return out

    def root_of(self, unit_id: str) -> Unit | None:
        """The top of the parent chain (``art_5`` for ``art_5.1.c``; ``GV`` for ``GV.OC-01``); None if unknown."""
        u = self._units.get(unit_id)
        if u is None:
            return None
        anc = self.ancestors(unit_id)
        return anc[-1] if anc else u

    def is_top(self, u: Unit) -> bool:
        """A structural unit (made by a loader) rather than a paragraph/point sub-unit."""
        if u.kind in SUBUNIT_KINDS:
            return False
        if u.parent is None:
            return True
        p = self._units.get(u.parent)
        return p is None or p.kind not in _CONTAINER_KINDS

    def top_units(self, doc: str | None = None) -> list[Unit]:
        """Articles, recitals, annexes, framework elements, prose sections (not their paragraphs/points)."""
        return [u for u in self.units(doc) if self.is_top(u)]

    def passages(self, max_words: int = 180, *, min_words: int = 25, doc: str | None = None) -> list[Passage]:
        """Units to index (see :mod:`mad_guardrails.retrieval.chunking` for the policy): each passage cites a real unit id and its
        ``text`` is a verbatim slice of that unit's text."""
        from mad_guardrails.retrieval.ingest import short_name

        return list(make_passages(self.top_units(doc), self.children, short_name, max_words=max_words,
                                  min_words=min_words))

    # ------------------------------------------------------------------------------------------------- stats
    def _count(self, ids: Iterable[str], *, top: bool) -> dict[str, int]:
        c: Counter[str] = Counter()
        for uid in ids:
            u = self._units[uid]
            if not top or self.is_top(u):
                c[u.kind] += 1
        return dict(sorted(c.items()))

    def counts(self, doc: str | None = None, *, top: bool = False) -> dict[str, int]:
        ids = [u.id for u in self.units(doc)]
        return self._count(ids, top=top)

    def _doc_hash(self, doc: str) -> str:
        h = hashlib.sha256()
        for uid in self._by_doc.get(doc, ()):
            h.update(self._units[uid].model_dump_json().encode())
            h.update(b"\n")
        return h.hexdigest()

    def hash(self) -> str:
        """Stable content hash (sha256 hex) over all acts (sorted by doc id) and their units in order."""
        if self._hash is None:
            h = hashlib.sha256()
            for doc in sorted(self.docs()):
                h.update(doc.encode() + b"\0" + self._doc_hash(doc).encode() + b"\n")
            self._hash = h.hexdigest()
        return self._hash

    # ---------------------------------------------------------------------------------------------- on disk
    def save(self, directory: str | Path) -> Path:
        """Write ``<dir>/<doc>.units.jsonl`` + ``<dir>/<doc>.manifest.json`` for every act (other acts already in
        ``dir`` are left alone)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for doc in self.docs():
            write_models((self._units[uid] for uid in self._by_doc[doc]), d / f"{doc}.units.jsonl", atomic=True)
            m = self._manifests[doc].model_copy(update={"units_sha256": self._doc_hash(doc)})
            mtmp = d / f".{doc}.manifest.json.tmp"
            mtmp.write_text(m.model_dump_json(indent=2) + "\n", encoding="utf-8")
            os.replace(mtmp, d / f"{doc}.manifest.json")
        return d

    @classmethod
    def load(cls, directory: str | Path, docs: Iterable[str] | None = None) -> Corpus:
        """Read a directory written by :meth:`save` (all acts, or only ``docs``)."""
        d = Path(directory)
        files = sorted(d.glob("*.units.jsonl"))
        if docs is not None:
            wanted = set(docs)
            files = [f for f in files if f.name[: -len(".units.jsonl")] in wanted]
        if not files:
            raise CorpusError("no ingested acts here (no *.units.jsonl)", where=str(d),
                              fix="run `mad-guardrails corpus fetch all` or `mad-guardrails corpus add FILE --doc ID`")
        c = cls()
        for f in files:
            doc = f.name[: -len(".units.jsonl")]
            units = []
            with f.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        units.append(Unit.model_validate_json(line))
                    except ValidationError as e:
                        raise CorpusError(f"line {n} is not a saved Unit ({e.errors()[0]['msg']})", where=f"{f}:{n}",
                                          fix="re-ingest the act: `mad-guardrails corpus add SOURCE --doc "
                                          f"{doc}`") from None
            man = None
            mpath = d / f"{doc}.manifest.json"
            if mpath.exists():
                try:
                    man = ActManifest.model_validate_json(mpath.read_text(encoding="utf-8"))
                except (ValidationError, ValueError) as e:
                    raise CorpusError(f"manifest is invalid ({e})", where=str(mpath),
                                      fix="delete it and re-ingest the act") from None
            c.add_act(doc, units, source=man.source if man else [f.name], sha256=man.sha256 if man else {})
            if man is not None and man.units_sha256 and man.units_sha256 != c._manifests[doc].units_sha256:
                raise CorpusError("units file does not match its manifest hash (edited or truncated)",
                                  where=str(f), fix=f"re-ingest the act: `mad-guardrails corpus add SOURCE --doc {doc}`")
        return c


def _is_saved_corpus(d: Path) -> bool:
    return any(d.glob("*.units.jsonl"))


def load_corpus(path: str | Path | None = None, *, docs: Iterable[str] | None = None, progress: bool = False
                ) -> Corpus:
    """Load a corpus from ``path`` (default: ``mad_guardrails.core.paths.corpus_dir()``), auto-detecting its shape:

    * a directory written by :meth:`Corpus.save` (``*.units.jsonl``);
    * a directory laid out like ``shared/data/corpus`` (one folder per act: its ``*_units.jsonl`` /
      ``*_core.jsonl`` are the canonical structure; NIST AI RMF / AI 600-1 prose comes from their Markdown);
    * one act folder of that layout, or a single file (any supported format; act id from its name).
    """
    from mad_guardrails.core.paths import corpus_dir
    from mad_guardrails.retrieval.ingest import (
        act_files,
        act_folders,
        infer_doc,
        ingest_act_dir,
        ingest_file,
    )

    p = Path(path) if path is not None else corpus_dir()
    if not p.exists():
        raise CorpusError("no such file or folder", where=str(p),
                          fix="pass an existing corpus folder, or build one: `mad-guardrails corpus fetch all`")
    wanted = set(docs) if docs is not None else None
    if p.is_file():
        if p.name.endswith(".units.jsonl"):
            return Corpus.load(p.parent, docs=[p.name[: -len(".units.jsonl")]])
        units = ingest_file(p)
        c = Corpus()
        c.add_act(units[0].doc, units, source=[p.name], sha256={p.name: file_sha256(p)})
        return c
    if _is_saved_corpus(p):
        return Corpus.load(p, docs=docs)
    folders = [p] if act_files(p, infer_doc(p) or p.name) else act_folders(p)
    if wanted is not None:
        folders = [f for f in folders if f.name in wanted]
    if not folders:
        raise CorpusError("neither an ingested corpus (*.units.jsonl) nor a folder of acts", where=str(p),
                          fix="pass a folder like shared/data/corpus (one sub-folder per act) or one made by "
                          "`mad-guardrails corpus add`")
    c = Corpus()
    from mad_guardrails.core.progress import make_progress

    with make_progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("ingesting acts", total=len(folders))
        for folder in folders:
            doc = folder.name if folder != p else (infer_doc(p) or p.name)
            units, shas = ingest_act_dir(folder, doc)
            c.add_act(doc, units, source=sorted(shas), sha256=shas)
            bar.advance(task)
    return c


def manifest_json(c: Corpus) -> str:
    """All manifests as one JSON document (for ``mad-guardrails corpus list --json``)."""
    return json.dumps([json.loads(c.manifest(d).model_dump_json()) for d in c.docs()], indent=2)
