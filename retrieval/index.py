"""The regulatory index on disk: FAISS (dense, inner product on normalised vectors) + BM25 + passages + manifest.

Folder layout (``$GUARDRAILS_HOME/index/<profile>/`` by default)::

    index.faiss      FAISS index; row i is line i of passages.jsonl
    passages.jsonl   {"unit_id","doc","heading","text","embed_text"} per row
    bm25/            bm25s index of the same rows + tokenizer.json
    manifest.json    embedder fingerprint, corpus hash, counts, faiss version, index type, relevance calibration,
                     sha256 of every file: index.faiss, passages.jsonl and each file of bm25/ (``bm25/<name>``)

:meth:`RegIndex.load` refuses (with :class:`~mad_guardrails.core.errors.IndexError_` saying what to run) an index that is
missing, was built with another embedder, or whose files do not match their checksums. An index built before every
file had a checksum (manifest schema 1: no BM25 checksums) is refused too, with the fix: rebuild it with
``mad-guardrails index build`` (fail closed: unchecked files are never trusted).

Index type ``auto``: exact ``Flat`` below 20k vectors, ``HNSW`` (M=32) up to 1M, ``IVF-PQ`` beyond.

    >>> idx = RegIndex.build(passages, embedder, "/tmp/idx")        # doctest: +SKIP
    >>> idx = RegIndex.load("/tmp/idx", embedder); idx.search(embedder.encode_queries(["..."]), 5)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mad_guardrails.core.errors import ConfigError, IndexError_
from mad_guardrails.core.hashing import file_sha256
from mad_guardrails.core.records import write_models
from mad_guardrails.retrieval.relevance import RelevanceCalibration

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
PASSAGES_FILE = "passages.jsonl"
MANIFEST_FILE = "manifest.json"
BM25_DIR = "bm25"
SCHEMA_VERSION = 2  # 2: sha256 of every file, BM25 included
FLAT_MAX = 20_000
HNSW_MAX = 1_000_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128

IndexType = Literal["flat", "hnsw", "ivfpq"]
#: Embedder fingerprint fields that must match between the index and the loading embedder.
FINGERPRINT_KEYS = (
    "model_id", "revision", "adapter", "dim", "truncate_dim", "normalize", "pooling", "query_prompt",
    "passage_prompt", "max_seq_length",
)


class PassageLike(Protocol):
    """What the index needs of a passage (``mad_guardrails.retrieval.chunking.Passage`` has it; passage_id/kind optional)."""

    unit_id: str
    doc: str
    heading: str
    text: str
    embed_text: str


class IndexedPassage(BaseModel):
    """One row of ``passages.jsonl``: what a FAISS row points at."""

    model_config = ConfigDict(frozen=True)

    unit_id: str
    doc: str
    heading: str = ""
    text: str
    embed_text: str = ""
    passage_id: str = Field(default="", description="unique row id ('<unit id>' or '<unit id>#<n>'); '' = unit_id")
    kind: str = ""
    top_id: str = Field(default="", description="the structural unit (article / recital / annex / framework "
                        "element) the passage belongs to; '' = unit_id")

    @property
    def top(self) -> str:
        return self.top_id or self.unit_id

    @property
    def pid(self) -> str:
        return self.passage_id or self.unit_id

    @property
    def index_text(self) -> str:
        """What was embedded / BM25-indexed (``embed_text``, or heading + text when the corpus gave none)."""
        return self.embed_text or (f"{self.heading}\n{self.text}" if self.heading else self.text)

    @classmethod
    def of(cls, p: PassageLike | dict, top_of: Callable[[str], str | None] | None = None) -> IndexedPassage:
        get = p.get if isinstance(p, dict) else (lambda k, d=None: getattr(p, k, d))
        unit_id = get("unit_id")
        top = get("top_id", "") or (top_of(unit_id) if top_of is not None else "") or ""
        return cls(
            unit_id=unit_id, doc=get("doc"), heading=get("heading", "") or "", text=get("text"),
            embed_text=get("embed_text", "") or "", passage_id=get("passage_id", "") or "",
            kind=get("kind", "") or "", top_id=top if top != unit_id else "",
        )


class IndexManifest(BaseModel):
    """``manifest.json``: how the index was built and what it needs to be used."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    embedder: dict[str, Any]
    corpus_hash: str | None = None
    passages_hash: str
    unit_count: int = Field(description="passages (= FAISS rows)")
    distinct_units: int
    docs: dict[str, int] = Field(default_factory=dict, description="passages per doc")
    dim: int
    index_type: IndexType
    index_params: dict[str, Any] = Field(default_factory=dict)
    faiss_version: str
    created: str
    build_seconds: float | None = None
    encode_seconds: float | None = None
    files: dict[str, str] = Field(default_factory=dict, description="sha256 of index.faiss / passages.jsonl / "
                                  "bm25/<file>")
    bm25: dict[str, Any] | None = None
    relevance: RelevanceCalibration | None = None


def corpus_top_of(corpus) -> Callable[[str], str | None]:
    """``unit_id → id of its nearest structural ancestor-or-self`` (article, recital, annex, framework element)."""

    def top_of(unit_id: str) -> str | None:
        u = corpus.get(unit_id)
        if u is None:
            return None
        if corpus.is_top(u):
            return u.id
        for a in corpus.ancestors(unit_id):
            if corpus.is_top(a):
                return a.id
        return None

    return top_of


def choose_index_type(n: int, requested: str = "auto") -> IndexType:
    """``auto`` → flat (< 20k), hnsw (≤ 1M), ivfpq (beyond); ``ivf`` is accepted for ``ivfpq``.

    >>> choose_index_type(5_000), choose_index_type(50_000), choose_index_type(2_000_000), choose_index_type(10, "ivf")
    ('flat', 'hnsw', 'ivfpq', 'ivfpq')
    """
    if requested in ("flat", "hnsw", "ivfpq"):
        return requested  # type: ignore[return-value]
    if requested == "ivf":
        return "ivfpq"
    if requested != "auto":
        raise ConfigError(f"unknown index_type {requested!r}", where="retrieval.index_type",
                          fix="use auto, flat, hnsw or ivf")
    if n < FLAT_MAX:
        return "flat"
    if n <= HNSW_MAX:
        return "hnsw"
    return "ivfpq"


def _pq_m(dim: int) -> int:
    """Largest number of PQ sub-quantisers ≤ 64 that divides ``dim`` with ≥ 4 dims each."""
    for m in range(min(64, dim // 4), 0, -1):
        if dim % m == 0:
            return m
    return 1


def make_faiss_index(vectors: np.ndarray, index_type: IndexType) -> tuple[Any, dict[str, Any]]:
    """A trained, filled CPU FAISS index over ``vectors`` (inner product) and its parameters."""
    import faiss

    n, dim = vectors.shape
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
        params: dict[str, Any] = {}
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        params = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH}
    else:
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        m = _pq_m(dim)
        nbits = int(max(4, min(8, math.floor(math.log2(max(n // 39, 16))))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        sample = vectors if n <= 200_000 else vectors[np.random.default_rng(0).choice(n, 200_000, replace=False)]
        index.train(sample)
        index.nprobe = min(nlist, 16)
        params = {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": index.nprobe}
    index.add(vectors)
    return index, params


def gpu_available() -> bool:
    try:
        import faiss

        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # noqa: BLE001
        return False


def _maybe_to_gpu(index: Any, use_gpu: str, index_type: str) -> tuple[Any, bool]:
    """Move a CPU index to all GPUs when faiss has GPU support (``use_gpu`` auto/always); HNSW stays on CPU."""
    if use_gpu == "never":
        return index, False
    if not gpu_available():
        if use_gpu == "always":
            raise ConfigError(
                "use_gpu is 'always' but faiss has no GPU support here (faiss-cpu, or no CUDA device)",
                where="retrieval.use_gpu", fix="install faiss-gpu-cu12 on a GPU machine, or set use_gpu: auto",
            )
        return index, False
    import faiss

    if index_type == "hnsw":
        log.info("HNSW indices have no FAISS GPU implementation: searching on CPU")
        return index, False
    try:
        return faiss.index_cpu_to_all_gpus(index), True
    except Exception as e:  # noqa: BLE001
        if use_gpu == "always":
            raise ConfigError(f"could not move the index to GPU ({e})", where="retrieval.use_gpu",
                              fix="set use_gpu: auto or never") from e
        log.warning("could not move the FAISS index to GPU (%s): searching on CPU", e)
        return index, False


def passages_hash(rows: list[IndexedPassage]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(r.model_dump_json().encode())
        h.update(b"\n")
    return h.hexdigest()


def fingerprint_mismatch(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the fingerprint fields that differ (``[]`` = compatible)."""
    return [k for k in FINGERPRINT_KEYS if stored.get(k) != current.get(k)]


class RegIndex:
    """A loaded (or freshly built) index: FAISS + BM25 + passages + manifest."""

    def __init__(self, directory: Path, faiss_index: Any, passages: list[IndexedPassage], manifest: IndexManifest,
                 bm25=None, *, on_gpu: bool = False, cpu_index: Any = None):
        self.dir = Path(directory)
        self.faiss = faiss_index
        self.cpu_index = cpu_index if cpu_index is not None else faiss_index
        self.passages = passages
        self.manifest = manifest
        self.bm25 = bm25
        self.on_gpu = on_gpu
        self._by_unit: dict[str, list[int]] | None = None
        self._direct_map = False

    def __len__(self) -> int:
        return len(self.passages)

    # -- build / load -------------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        passages: Iterable[PassageLike | dict],
        embedder,
        directory: str | Path,
        index_type: str = "auto",
        *,
        use_gpu: str = "auto",
        bm25: bool = True,
        bm25_stemming: bool = True,
        corpus_hash: str | None = None,
        relevance: RelevanceCalibration | None = None,
        progress: bool = True,
        top_of: Callable[[str], str | None] | None = None,
    ) -> RegIndex:
        """Embed ``passages`` with ``embedder`` and write a complete index folder to ``directory``.

        ``top_of(unit_id)`` names the structural unit a passage belongs to (:func:`corpus_top_of` gives it for a
        :class:`~mad_guardrails.retrieval.corpus.Corpus`); the retriever uses it to spread results over articles."""
        import faiss

        t0 = time.perf_counter()
        rows = [IndexedPassage.of(p, top_of) for p in passages]
        if not rows:
            raise IndexError_("no passages to index", where=str(directory),
                              fix="check the corpus folder (run `mad-guardrails corpus fetch` or pass --corpus DIR)")
        texts = [r.index_text for r in rows]
        t_enc = time.perf_counter()
        vectors = embedder.encode_passages(texts, progress=progress)
        encode_s = time.perf_counter() - t_enc
        kind = choose_index_type(len(rows), index_type)
        cpu_index, params = make_faiss_index(vectors, kind)
        bm = None
        if bm25:
            from mad_guardrails.retrieval.bm25 import BM25Index

            bm = BM25Index.build(texts, stemming=bm25_stemming)

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(cpu_index, str(directory / INDEX_FILE))
        write_models(rows, directory / PASSAGES_FILE)
        if bm is not None:
            bm.save(directory / BM25_DIR)
        fp = embedder.fingerprint()
        manifest = IndexManifest(
            embedder=fp,
            corpus_hash=corpus_hash,
            passages_hash=passages_hash(rows),
            unit_count=len(rows),
            distinct_units=len({r.unit_id for r in rows}),
            docs=dict(Counter(r.doc for r in rows)),
            dim=int(vectors.shape[1]),
            index_type=kind,
            index_params=params,
            faiss_version=faiss.__version__,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            encode_seconds=round(encode_s, 3),
            files={INDEX_FILE: file_sha256(directory / INDEX_FILE),
                   PASSAGES_FILE: file_sha256(directory / PASSAGES_FILE),
                   **_bm25_files(directory / BM25_DIR, BM25_DIR, bm is not None)},
            bm25=({**bm.tokenizer.to_dict(), "dir": BM25_DIR} if bm is not None else None),
            relevance=relevance,
        )
        manifest.build_seconds = round(time.perf_counter() - t0, 3)
        _write_manifest(directory, manifest)
        index, on_gpu = _maybe_to_gpu(cpu_index, use_gpu, kind)
        return cls(directory, index, rows, manifest, bm, on_gpu=on_gpu, cpu_index=cpu_index)

    @classmethod
    def load(cls, directory: str | Path, embedder=None, *, use_gpu: str = "auto", verify: bool = True) -> RegIndex:
        """Open an index folder; refuses a missing / foreign-embedder / corrupted index with the fix to apply.

        ``embedder=None`` skips the fingerprint check (for ``mad-guardrails index info``)."""
        import faiss

        directory = Path(directory).expanduser()
        mpath = directory / MANIFEST_FILE
        if not directory.is_dir() or not mpath.exists():
            raise IndexError_(
                "no index here (folder or manifest.json missing)", where=str(directory),
                fix="run `mad-guardrails index build` (or pass --index DIR of an existing index)",
            )
        try:
            manifest = IndexManifest.model_validate_json(mpath.read_text(encoding="utf-8"))
        except Exception as e:  # noqa: BLE001
            raise IndexError_(f"manifest.json is unreadable ({type(e).__name__})", where=str(mpath),
                              fix="rebuild the index: `mad-guardrails index build`") from e
        if embedder is not None:
            current = embedder.fingerprint()
            diff = fingerprint_mismatch(manifest.embedder, current)
            if diff:
                detail = ", ".join(f"{k}: index={manifest.embedder.get(k)!r} vs now={current.get(k)!r}" for k in diff)
                raise IndexError_(
                    f"the index was built with embedder {manifest.embedder.get('model_id')!r} but the configured "
                    f"embedder is {current.get('model_id')!r} (differs in {detail})",
                    where=str(directory),
                    fix="rebuild the index with this embedder (`mad-guardrails index build`), or configure the embedder "
                    "the index was built with (mad_guardrails.retrieval.embedder in the profile)",
                )
        if verify and (manifest.schema_version < SCHEMA_VERSION
                       or not {INDEX_FILE, PASSAGES_FILE} <= set(manifest.files)):
            raise IndexError_(
                f"the index was built before every index file carried a checksum (manifest schema "
                f"{manifest.schema_version}, this version needs {SCHEMA_VERSION}); unchecked files are not trusted",
                where=str(directory), fix="rebuild it with `mad-guardrails index build` (same --profile / --index)")
        for name in (INDEX_FILE, PASSAGES_FILE):
            path = directory / name
            if not path.exists():
                raise IndexError_(f"{name} is missing", where=str(directory),
                                  fix="the index is incomplete: rebuild it with `mad-guardrails index build`")
            if verify and file_sha256(path) != manifest.files[name]:
                raise IndexError_(
                    f"{name} does not match the checksum in manifest.json (corrupted or modified)",
                    where=str(path), fix="rebuild the index: `mad-guardrails index build`",
                )
        try:
            cpu_index = faiss.read_index(str(directory / INDEX_FILE))
        except Exception as e:  # noqa: BLE001
            raise IndexError_(f"FAISS cannot read {INDEX_FILE} ({str(e).splitlines()[0][:200]})",
                              where=str(directory), fix="the file is corrupted: rebuild with `mad-guardrails index build`"
                              ) from e
        rows = []
        with open(directory / PASSAGES_FILE, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    rows.append(IndexedPassage.model_validate_json(line))
        if cpu_index.ntotal != len(rows) or cpu_index.d != manifest.dim:
            raise IndexError_(
                f"{INDEX_FILE} holds {cpu_index.ntotal} vectors of dim {cpu_index.d} but passages.jsonl has "
                f"{len(rows)} rows / manifest dim {manifest.dim}", where=str(directory),
                fix="rebuild the index: `mad-guardrails index build`",
            )
        if manifest.index_type == "hnsw":
            cpu_index.hnsw.efSearch = max(cpu_index.hnsw.efSearch, HNSW_EF_SEARCH)
        bm = None
        if manifest.bm25 is not None:
            from mad_guardrails.retrieval.bm25 import BM25Index

            sub = manifest.bm25.get("dir", BM25_DIR)
            expected = {k[len(sub) + 1:]: v for k, v in manifest.files.items() if k.startswith(sub + "/")}
            try:
                bm = BM25Index.load(directory / sub, expected=expected if verify else None)
            except IndexError_:
                raise
            except Exception as e:  # noqa: BLE001
                raise IndexError_(f"the BM25 index cannot be read ({type(e).__name__}: {e})", where=str(directory),
                                  fix="rebuild the index: `mad-guardrails index build`") from e
            if bm.num_docs != len(rows):
                raise IndexError_(f"the BM25 index holds {bm.num_docs} rows but passages.jsonl {len(rows)}",
                                  where=str(directory), fix="rebuild the index: `mad-guardrails index build`")
        index, on_gpu = _maybe_to_gpu(cpu_index, use_gpu, manifest.index_type)
        return cls(directory, index, rows, manifest, bm, on_gpu=on_gpu, cpu_index=cpu_index)

    # -- manifest updates ---------------------------------------------------------------------------------------
    def set_relevance(self, calibration: RelevanceCalibration | None) -> None:
        """Store a relevance calibration in the manifest (the vectors are untouched)."""
        self.manifest.relevance = calibration
        _write_manifest(self.dir, self.manifest)

    # -- search -------------------------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Inner-product search: ``(scores, rows)`` of shape (n_queries, k); missing hits have row -1."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.shape[1] != self.manifest.dim:
            raise IndexError_(f"query vectors have dim {q.shape[1]}, the index {self.manifest.dim}",
                              where=str(self.dir), fix="use the embedder the index was built with")
        k = max(1, min(k, len(self.passages)))
        scores, rows = self.faiss.search(q, k)
        return scores, rows

    def vectors(self, rows: Iterable[int]) -> np.ndarray:
        """The stored vectors of some rows (exact for flat/HNSW, PQ-approximate for IVF-PQ)."""
        rows = [int(r) for r in rows]
        if not rows:
            return np.zeros((0, self.manifest.dim), dtype=np.float32)
        if self.manifest.index_type == "ivfpq" and not self._direct_map:
            import faiss

            faiss.extract_index_ivf(self.cpu_index).make_direct_map()
            self._direct_map = True
        return np.stack([self.cpu_index.reconstruct(r) for r in rows]).astype(np.float32)

    def rows_of(self, unit_id: str) -> list[int]:
        """Rows whose passage has exactly this unit id (several when a long unit was chunked)."""
        if self._by_unit is None:
            by: dict[str, list[int]] = {}
            for i, p in enumerate(self.passages):
                by.setdefault(p.unit_id, []).append(i)
            self._by_unit = by
        return self._by_unit.get(unit_id, [])

    def info(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "dir": str(self.dir), "embedder": m.embedder.get("model_id"), "revision": m.embedder.get("revision"),
            "adapter": m.embedder.get("adapter"), "dim": m.dim, "index_type": m.index_type,
            "passages": m.unit_count, "units": m.distinct_units, "docs": m.docs, "faiss": m.faiss_version,
            "created": m.created, "corpus_hash": (m.corpus_hash or "")[:16] or None,
            "bm25": bool(m.bm25), "relevance_threshold": m.relevance.threshold if m.relevance else None,
            "relevance_calibrated": m.relevance.calibrated if m.relevance else False, "on_gpu": self.on_gpu,
        }


def _bm25_files(directory: Path, prefix: str, present: bool) -> dict[str, str]:
    """``{"bm25/<file>": sha256}`` of the saved BM25 folder (empty when the index has no BM25 part)."""
    if not present:
        return {}
    from mad_guardrails.retrieval.bm25 import checksums

    return {f"{prefix}/{name}": digest for name, digest in checksums(directory).items()}


def _write_manifest(directory: Path, manifest: IndexManifest) -> None:
    tmp = directory / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    tmp.replace(directory / MANIFEST_FILE)
