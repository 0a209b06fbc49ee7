"""Lexical retrieval: BM25 (``bm25s``) over the same passages as the dense index, persisted beside it.

Tokens: lower-cased ``[a-z0-9]+`` runs, English stopwords dropped, optionally Snowball-stemmed (PyStemmer). The
tokeniser settings are saved with the index so queries are tokenised exactly like the passages were. Every file
of the folder has a sha256 (:func:`checksums`, kept in the index manifest); :meth:`BM25Index.load` given them refuses
a folder whose files do not match (an overwritten score file would otherwise load silently and skew retrieval).

    >>> bm = BM25Index.build(["Prohibited AI practices: social scoring", "Incident reporting within 24 hours"])
    >>> bm.search("which AI practices are prohibited?", k=1)[0].tolist()
    [0]
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"[a-z0-9]+")
#: A compact English stopword list (function words only: domain words such as 'shall' or 'article' stay).
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves s t don""".split()
)
SETTINGS_FILE = "tokenizer.json"


def checksums(directory: Path) -> dict[str, str]:
    """``{file name: sha256}`` of every file of a saved BM25 folder."""
    from mad_guardrails.core.hashing import file_sha256

    return {p.name: file_sha256(p) for p in sorted(Path(directory).iterdir()) if p.is_file()}


def verify_checksums(directory: Path, expected: dict[str, str]) -> None:
    """Raise :class:`~mad_guardrails.core.errors.IndexError_` unless the folder's files are exactly ``expected``."""
    from mad_guardrails.core.errors import IndexError_

    fix = "rebuild the index: `mad-guardrails index build`"
    if not expected:
        raise IndexError_("the BM25 files have no checksums (the index was built before they were recorded)",
                          where=str(directory), fix=fix)
    actual = checksums(directory) if Path(directory).is_dir() else {}
    for name, digest in sorted(expected.items()):
        if name not in actual:
            raise IndexError_(f"BM25 file {name} is missing", where=str(directory), fix=fix)
        if actual[name] != digest:
            raise IndexError_(f"BM25 file {name} does not match the checksum in manifest.json (corrupted or "
                              "modified)", where=str(Path(directory) / name), fix=fix)
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise IndexError_(f"BM25 folder holds file(s) the manifest does not list: {', '.join(extra)}",
                          where=str(directory), fix=fix)


@dataclass(frozen=True)
class Tokenizer:
    """Regex + stopwords + optional Snowball stemmer; ``stemmer`` is a Snowball language name or None."""

    stemmer: str | None = "english"
    stopwords: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "_stem", _make_stemmer(self.stemmer))

    def __call__(self, text: str) -> list[str]:
        toks = TOKEN_RE.findall(text.lower())
        if self.stopwords:
            toks = [t for t in toks if t not in STOPWORDS]
        stem = getattr(self, "_stem")
        return stem(toks) if stem is not None else toks

    def to_dict(self) -> dict:
        return {"stemmer": self.stemmer, "stopwords": self.stopwords, "pattern": TOKEN_RE.pattern}


def _make_stemmer(name: str | None):
    if not name:
        return None
    try:
        import Stemmer  # PyStemmer

        return Stemmer.Stemmer(name).stemWords
    except ImportError:
        pass
    try:
        import snowballstemmer

        return snowballstemmer.stemmer(name).stemWords
    except ImportError:
        return None


def stemming_available() -> bool:
    return _make_stemmer("english") is not None


class BM25Index:
    """A bm25s index over a list of texts (row i = passage i of the dense index)."""

    def __init__(self, retriever, tokenizer: Tokenizer, num_docs: int):
        self._bm25 = retriever
        self.tokenizer = tokenizer
        self.num_docs = num_docs

    @classmethod
    def build(cls, texts: list[str], *, stemming: bool = True, k1: float = 1.5, b: float = 0.75) -> BM25Index:
        import bm25s

        if stemming and not stemming_available():
            log.warning("BM25 stemming requested but neither PyStemmer nor snowballstemmer is installed: unstemmed")
            stemming = False
        tok = Tokenizer(stemmer="english" if stemming else None)
        corpus_tokens = [tok(t) or [""] for t in texts]
        retriever = bm25s.BM25(k1=k1, b=b)
        retriever.index(corpus_tokens, show_progress=False)
        return cls(retriever, tok, len(texts))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for ``query`` (zeros when no query token is in the vocabulary)."""
        ids = self._bm25.get_tokens_ids(self.tokenizer(query))
        if not ids:
            return np.zeros(self.num_docs, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)

    def search(self, query: str, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, scores)`` of the top ``k`` passages with a positive score, best first."""
        return top_k(self.scores(query), k)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._bm25.save(str(directory), show_progress=False)
        (directory / SETTINGS_FILE).write_text(
            json.dumps({**self.tokenizer.to_dict(), "num_docs": self.num_docs}, indent=1), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path, *, expected: dict[str, str] | None = None) -> BM25Index:
        """Open a saved folder; with ``expected`` (``{file: sha256}``) its files are verified first."""
        import bm25s

        directory = Path(directory)
        if expected is not None:
            verify_checksums(directory, expected)
        settings = json.loads((directory / SETTINGS_FILE).read_text(encoding="utf-8"))
        if settings.get("stemmer") and _make_stemmer(settings["stemmer"]) is None:
            from mad_guardrails.core.errors import IndexError_

            raise IndexError_(
                "the BM25 index was built with stemming but PyStemmer is not installed here",
                where=str(directory), fix="pip install PyStemmer, or rebuild with `mad-guardrails index build`",
            )
        retriever = bm25s.BM25.load(str(directory), mmap=False)
        tok = Tokenizer(stemmer=settings.get("stemmer"), stopwords=settings.get("stopwords", True))
        return cls(retriever, tok, int(settings["num_docs"]))


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest positive entries of ``scores``, best first (ties: lower index)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.lexsort((idx, -scores[idx]))]
    keep = scores[idx] > 0
    return idx[keep].astype(np.int64), scores[idx][keep].astype(np.float32)
