"""Download the acts from their official sources (``retrieval/sources.yaml``) and ingest them into the corpus dir.

* Official: EUR-Lex HTML by CELEX number, NIST PDFs from nvlpubs.nist.gov.
* Mirror: with ``base_url`` (``--base-url`` or ``$GUARDRAILS_FETCH_BASE``) each source is read from
  ``<base_url>/<mirror path>`` instead: a folder laid out like ``shared/data/corpus`` served over HTTP (tests use a
  loopback server; air-gapped installs an internal one).
* Checksums: a pinned ``sha256`` (sources.yaml) must match or the download is rejected; it also applies to a mirror
  that serves the same artefact (one mirror path of the source's own format). An unpinned source gets its sha256
  recorded on first fetch in ``<corpus>/fetch.lock.json`` (and reported, so that it can be pinned); a later fetch
  that differs from the record is reported as changed, not rejected (EUR-Lex pages are rendered on request).
* Offline: a clear :class:`~mad_guardrails.core.errors.CorpusError` (``could not reach <host>: you are offline? …``) that
  points to ``mad-guardrails corpus add FILE --doc ID``.

Downloads land in ``<corpus>/sources/<doc>/``; the units go to ``<corpus>/<doc>.units.jsonl`` (+ manifest).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from mad_guardrails.core.errors import CorpusError
from mad_guardrails.retrieval.ingest.base import ActInfo, load_catalog

ENV_BASE = "GUARDRAILS_FETCH_BASE"
_EXT = {"eurlex_html": "html", "pdf": "pdf", "jsonl": "jsonl", "markdown": "md", "text": "txt"}
OFFLINE_FIX = "use `mad-guardrails corpus add FILE --doc ID` with a copy of the act"


class Download(BaseModel):
    url: str
    file: str
    sha256: str
    bytes: int
    checksum: str = Field(description="'verified' (pinned, matched) | 'recorded' (first fetch) | 'unchanged' | "
                                      "'changed' (differs from the recorded one; not pinned)")


class FetchResult(BaseModel):
    doc: str
    title: str
    downloads: list[Download]
    units: int
    top_units: int
    corpus_dir: str
    units_sha256: str


class _Planned(BaseModel):
    url: str
    filename: str
    expected_sha256: str | None
    format: str | None  # None = sniff


def base_url_from_env(base_url: str | None = None) -> str | None:
    """``base_url`` if given, else ``$GUARDRAILS_FETCH_BASE``, else None (official sources)."""
    b = base_url if base_url is not None else os.environ.get(ENV_BASE)
    if b is None or not b.strip():
        return None
    return b.strip()


def plan(info: ActInfo, base_url: str | None) -> list[_Planned]:
    """The downloads for one act: official URLs, or mirror URLs under ``base_url``."""
    out: list[_Planned] = []
    for src in info.sources:
        if base_url is None:
            out.append(_Planned(url=src.url, filename=f"{info.doc}-{src.name}.{_EXT[src.format]}",
                                expected_sha256=src.sha256, format=src.format))
            continue
        if not src.mirror:
            raise CorpusError(f"no mirror path for {info.doc} ({src.name})", where="retrieval/sources.yaml",
                              fix=f"add `mirror:` to that source, fetch without --base-url, or {OFFLINE_FIX}")
        same_artefact = len(src.mirror) == 1 and _ext_format(src.mirror[0]) == src.format
        for rel in src.mirror:
            url = base_url.rstrip("/") + "/" + rel.lstrip("/")
            out.append(_Planned(url=url, filename=Path(rel).name,
                                expected_sha256=src.sha256 if same_artefact else None, format=None))
    return out


def _ext_format(path: str) -> str | None:
    ext = Path(path).suffix.lower()
    return {".html": "eurlex_html", ".htm": "eurlex_html", ".pdf": "pdf", ".jsonl": "jsonl", ".md": "markdown",
            ".txt": "text"}.get(ext)


def _host(url: str) -> str:
    p = urlparse(url)
    return p.netloc or url


def download(url: str, dest: Path, *, expected_sha256: str | None = None, timeout: float = 60.0,
             progress=None) -> tuple[str, int]:
    """Stream ``url`` to ``dest`` (atomically); returns ``(sha256, bytes)``. Raises CorpusError when offline, on HTTP
    errors, on an empty body or a checksum mismatch (the partial file is removed)."""
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    size = 0
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
                          follow_redirects=True, headers={"User-Agent": "mad-guardrails corpus fetch"}) as r:
            if r.status_code >= 400:
                raise CorpusError(f"HTTP {r.status_code} {r.reason_phrase}", where=url,
                                  fix="check the URL in retrieval/sources.yaml (or the mirror path), or "
                                  + OFFLINE_FIX)
            total = int(r.headers.get("content-length") or 0) or None
            task = progress.add_task(f"download {dest.name}", total=total) if progress is not None else None
            with tmp.open("wb") as f:
                for chunk in r.iter_bytes(1 << 16):
                    f.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                    if task is not None:
                        progress.update(task, advance=len(chunk))
    except CorpusError:
        tmp.unlink(missing_ok=True)
        raise
    except httpx.TimeoutException as e:
        tmp.unlink(missing_ok=True)
        raise CorpusError(f"could not reach {_host(url)}: you are offline? use `mad-guardrails corpus add FILE --doc ID` "
                          f"with a local copy of the act (timed out after {timeout:g} s)", where=url) from e
    except httpx.TransportError as e:  # connect errors, DNS, refused, reset
        tmp.unlink(missing_ok=True)
        raise CorpusError(f"could not reach {_host(url)}: you are offline? use `mad-guardrails corpus add FILE --doc ID` "
                          f"with a local copy of the act ({type(e).__name__})", where=url) from e
    if size == 0:
        tmp.unlink(missing_ok=True)
        raise CorpusError("the server sent an empty body", where=url, fix="retry later, or " + OFFLINE_FIX)
    digest = h.hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        tmp.unlink(missing_ok=True)
        raise CorpusError(
            f"checksum mismatch: expected sha256 {expected_sha256}, got {digest} ({size} bytes)", where=url,
            fix="the file is not the pinned version (changed upstream, tampered or truncated). If the publisher "
            "re-issued it, review it and update sha256 in retrieval/sources.yaml; otherwise retry or "
            + OFFLINE_FIX)
    os.replace(tmp, dest)
    return digest, size


def _read_lock(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorpusError(f"the fetch lock file is unreadable ({e})", where=str(path),
                          fix="delete it; checksums are recorded again on the next fetch") from e


def fetch_act(doc: str, *, corpus_dir: str | Path | None = None, base_url: str | None = None,
              timeout: float = 60.0, progress: bool = True, catalog_path: str | Path | None = None) -> FetchResult:
    """Download one act (official or mirror), ingest it and save it into the corpus dir."""
    from mad_guardrails.core.paths import corpus_dir as default_corpus_dir
    from mad_guardrails.core.progress import make_progress
    from mad_guardrails.retrieval.chunking import expand
    from mad_guardrails.retrieval.corpus import Corpus
    from mad_guardrails.retrieval.ingest import load_file
    from mad_guardrails.retrieval.ingest.base import check_unique

    acts = load_catalog(catalog_path)
    if doc not in acts:
        raise CorpusError(f"unknown act {doc!r}", fix=f"use one of: {', '.join(acts)} (or 'all')")
    info = acts[doc]
    base = base_url_from_env(base_url)
    out_dir = Path(corpus_dir) if corpus_dir is not None else default_corpus_dir()
    src_dir = out_dir / "sources" / doc
    lock_path = out_dir / "fetch.lock.json"
    lock = _read_lock(lock_path)
    downloads: list[Download] = []
    files: list[tuple[Path, str | None]] = []
    with make_progress(disable=not progress, transient=True) as bar:
        for p in plan(info, base):
            dest = src_dir / p.filename
            digest, size = download(p.url, dest, expected_sha256=p.expected_sha256, timeout=timeout, progress=bar)
            prev = (lock.get(p.url) or {}).get("sha256")
            if p.expected_sha256 is not None:
                state = "verified"
            elif prev is None:
                state = "recorded"
            else:
                state = "unchanged" if prev == digest else "changed"
            lock[p.url] = {"sha256": digest, "bytes": size, "doc": doc,
                           "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            downloads.append(Download(url=p.url, file=str(dest), sha256=digest, bytes=size, checksum=state))
            files.append((dest, p.format))
    units = []
    for path, fmt in files:
        units.extend(load_file(path, doc, fmt))
    units = check_unique(expand(units), str(src_dir))
    c = Corpus()
    c.add_act(doc, units, source=[d.url for d in downloads], sha256={Path(d.file).name: d.sha256 for d in downloads})
    c.save(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = lock_path.with_name(lock_path.name + ".tmp")
    tmp.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, lock_path)
    m = c.manifest(doc)
    return FetchResult(doc=doc, title=info.title, downloads=downloads, units=len(units),
                       top_units=sum(m.top_counts.values()), corpus_dir=str(out_dir), units_sha256=m.units_sha256)


def fetch_names(name: str, *, base_url: str | None = None, catalog_path: str | Path | None = None) -> list[str]:
    """The acts ``name`` stands for: one id, or 'all' (with a mirror: only acts that have mirror paths)."""
    acts = load_catalog(catalog_path)
    if name != "all":
        if name not in acts:
            raise CorpusError(f"unknown act {name!r}", fix=f"use one of: {', '.join(acts)} (or 'all')")
        return [name]
    base = base_url_from_env(base_url)
    return [d for d, info in acts.items() if info.sources and (base is None or all(s.mirror for s in info.sources))]
