"""`mad_guardrails.retrieval.fetch` against a loopback HTTP server serving copies of shared-corpus files (no internet)."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mad_guardrails.core.errors import CorpusError
from mad_guardrails.retrieval.corpus import Corpus
from mad_guardrails.retrieval.fetch import ENV_BASE, base_url_from_env, download, fetch_act, fetch_names, plan
from mad_guardrails.retrieval.ingest.base import catalog
from tests.fixtures.corpus import QuietHandler as _Quiet


@pytest.fixture(scope="module")
def mirror(corpus_mirror):
    return corpus_mirror


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_catalog_has_the_eight_acts_with_official_sources():
    acts = catalog()
    for doc in ("eu-ai-act", "nis2", "dora", "gdpr", "cra", "nist-csf-2.0", "nist-ai-rmf", "nist-ai-600-1"):
        assert acts[doc].sources and acts[doc].title and acts[doc].published
    assert acts["eu-ai-act"].sources[0].url == \
        "https://eur-lex.europa.eu/legal-content/EN/TXT/HTML/?uri=CELEX:32024R1689"
    assert acts["nis2"].sources[0].url.endswith("CELEX:32022L2555")
    assert acts["nist-csf-2.0"].sources[0].url == "https://nvlpubs.nist.gov/nistpubs/CSWP/NIST.CSWP.29.pdf"
    assert acts["nist-sp-1270"].sources[0].url.endswith("NIST.SP.1270.pdf")
    assert acts["nist-ai-600-1"].sources[0].url.endswith("NIST.AI.600-1.pdf")


def test_plan_official_and_mirror():
    info = catalog()["nist-csf-2.0"]
    official = plan(info, None)
    assert [p.url for p in official] == [info.sources[0].url]
    assert official[0].expected_sha256 == info.sources[0].sha256 and official[0].format == "pdf"
    mirrored = plan(info, "http://127.0.0.1:9/base/")
    assert mirrored[0].url == "http://127.0.0.1:9/base/nist-csf-2.0/NIST.CSWP.29.pdf"
    assert mirrored[0].expected_sha256 == info.sources[0].sha256  # same artefact: the pin applies
    rmf = plan(catalog()["nist-ai-rmf"], "http://m/")
    assert [p.filename for p in rmf] == ["nist_ai_rmf_1.0_core.jsonl", "nist_ai_100-1_ai_rmf_1.0.md"]
    assert all(p.expected_sha256 is None for p in rmf)
    with pytest.raises(CorpusError, match="no mirror path for nist-sp-1270"):
        plan(catalog()["nist-sp-1270"], "http://m/")


def test_base_url_from_env(monkeypatch):
    monkeypatch.delenv(ENV_BASE, raising=False)
    assert base_url_from_env(None) is None
    monkeypatch.setenv(ENV_BASE, "http://mirror/")
    assert base_url_from_env(None) == "http://mirror/"
    assert base_url_from_env("http://cli/") == "http://cli/"
    assert "nist-sp-1270" not in fetch_names("all")  # no mirror path for it
    monkeypatch.delenv(ENV_BASE)
    assert "nist-sp-1270" in fetch_names("all")
    with pytest.raises(CorpusError, match="unknown act 'nope'"):
        fetch_names("nope")


def test_fetch_pdf_from_mirror_verifies_the_pinned_checksum(mirror, tmp_path):
    base, _ = mirror
    r = fetch_act("nist-csf-2.0", corpus_dir=tmp_path, base_url=base, progress=False)
    assert [d.checksum for d in r.downloads] == ["verified"]
    c = Corpus.load(tmp_path)
    fe = c.units("nist-csf-2.0", kinds="framework_element")
    assert Counter(len(c.ancestors(u.id)) for u in fe) == {0: 6, 1: 22, 2: 106}
    assert c.get("nist-csf-2.0:sec_3.1") is not None
    assert (tmp_path / "sources" / "nist-csf-2.0" / "NIST.CSWP.29.pdf").exists()
    m = c.manifest("nist-csf-2.0")
    assert m.source == [base + "nist-csf-2.0/NIST.CSWP.29.pdf"]
    assert m.sha256["NIST.CSWP.29.pdf"] == r.downloads[0].sha256


def test_fetch_html_and_record_checksum_then_unchanged(mirror, tmp_path):
    base, _ = mirror
    r = fetch_act("eu-ai-act", corpus_dir=tmp_path, base_url=base, progress=False)
    assert r.downloads[0].checksum == "recorded" and r.top_units == 306
    lock = json.loads((tmp_path / "fetch.lock.json").read_text(encoding="utf-8"))
    assert lock[r.downloads[0].url]["sha256"] == r.downloads[0].sha256
    c = Corpus.load(tmp_path)
    assert c.get("eu-ai-act:art_5.1.c").text.startswith("(c)")
    assert c.manifest("eu-ai-act").top_counts == {"annex": 13, "article": 113, "recital": 180}
    again = fetch_act("eu-ai-act", corpus_dir=tmp_path, base_url=base, progress=False)
    assert again.downloads[0].checksum == "unchanged" and again.units_sha256 == r.units_sha256


def test_fetch_with_env_base_and_multi_file_mirror(mirror, tmp_path, monkeypatch):
    base, _ = mirror
    monkeypatch.setenv(ENV_BASE, base)
    r = fetch_act("nist-ai-600-1", corpus_dir=tmp_path, progress=False)
    assert len(r.downloads) == 3
    c = Corpus.load(tmp_path)
    assert c.get("nist-ai-600-1:GV-1.1-001") and c.get("nist-ai-600-1:risk_12") and c.get("nist-ai-600-1:sec_2.1")


def test_checksum_mismatch_is_rejected(mirror, tmp_path_factory, tmp_path):
    _, root = mirror
    bad_root = tmp_path_factory.mktemp("bad_mirror")
    (bad_root / "nist-csf-2.0").mkdir()
    data = bytearray((root / "nist-csf-2.0" / "NIST.CSWP.29.pdf").read_bytes())
    data[-10] ^= 0xFF  # one flipped byte
    (bad_root / "nist-csf-2.0" / "NIST.CSWP.29.pdf").write_bytes(bytes(data))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(bad_root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(CorpusError) as ei:
            fetch_act("nist-csf-2.0", corpus_dir=tmp_path, base_url=f"http://127.0.0.1:{server.server_address[1]}/",
                      progress=False)
    finally:
        server.shutdown()
        server.server_close()
    msg = str(ei.value)
    assert "checksum mismatch" in msg and catalog()["nist-csf-2.0"].sources[0].sha256 in msg
    assert not list(tmp_path.rglob("*.pdf*")) and not list(tmp_path.glob("*.units.jsonl"))


def test_unreachable_host_fails_fast_with_offline_hint(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/"
    t = time.monotonic()
    with pytest.raises(CorpusError) as ei:
        fetch_act("eu-ai-act", corpus_dir=tmp_path, base_url=url, timeout=5, progress=False)
    assert time.monotonic() - t < 5
    msg = str(ei.value)
    assert "could not reach 127.0.0.1" in msg and "you are offline?" in msg
    assert "mad-guardrails corpus add FILE --doc ID" in msg


def test_http_error_and_timeout(mirror, tmp_path):
    base, _ = mirror
    with pytest.raises(CorpusError, match="HTTP 404"):
        download(base + "nope/missing.pdf", tmp_path / "x.pdf", progress=None)
    assert not (tmp_path / "x.pdf").exists()
    srv = socket.socket()  # accepts the connection, never answers
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        t = time.monotonic()
        with pytest.raises(CorpusError, match="timed out"):
            download(f"http://127.0.0.1:{srv.getsockname()[1]}/x", tmp_path / "y", timeout=0.5)
        assert time.monotonic() - t < 5
    finally:
        srv.close()


def test_pinned_checksum_checked_by_download(mirror, tmp_path):
    base, root = mirror
    url = base + "nis2/nis2_directive_2022-2555_units.jsonl"
    with pytest.raises(CorpusError, match="checksum mismatch"):
        download(url, tmp_path / "n.jsonl", expected_sha256="0" * 64)
    import hashlib

    good = hashlib.sha256((root / "nis2" / "nis2_directive_2022-2555_units.jsonl").read_bytes()).hexdigest()
    digest, size = download(url, tmp_path / "n.jsonl", expected_sha256=good)
    assert digest == good and size == (tmp_path / "n.jsonl").stat().st_size


def test_fetched_units_equal_the_shared_ingest(mirror, tmp_path, shared_units_corpus):
    base, _ = mirror
    fetch_act("nis2", corpus_dir=tmp_path, base_url=base, progress=False)
    got = Corpus.load(tmp_path)
    assert [u.id for u in got.units("nis2")] == [u.id for u in shared_units_corpus.units("nis2")]
    assert got.units("nis2") == shared_units_corpus.units("nis2")


def test_mirror_layout_paths_exist_in_the_shared_corpus(shared_corpus_dir):
    for doc, info in catalog().items():
        for src in info.sources:
            for rel in src.mirror:
                assert (Path(shared_corpus_dir) / rel).exists(), f"{doc}: mirror path {rel} is not in the corpus"
