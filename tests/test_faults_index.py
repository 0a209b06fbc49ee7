"""Index corruption: every file of the index carries a sha256 in manifest.json (BM25 included) and a damaged,
missing, extra or unchecked file is refused at load with the fix (``mad-guardrails index build``).
Test ids ``fault-index-<name>`` are counted by ``bench/fault_counts.py``."""

from __future__ import annotations

import json
import shutil

import pytest

from mad_guardrails.core.errors import IndexError_
from mad_guardrails.retrieval.index import RegIndex
from tests.fault_server import record


def _copy(src, tmp_path):
    d = tmp_path / "idx"
    shutil.copytree(src, d)
    return d


def _bm25_file(d, suffix=".npy"):
    return next(p for p in sorted((d / "bm25").iterdir()) if p.name.endswith(suffix))


def _overwrite_64_bytes(d):
    f = _bm25_file(d)
    data = bytearray(f.read_bytes())
    data[-64:] = b"\x7f" * 64  # huge float scores: loaded silently before the checksums
    f.write_bytes(bytes(data))
    return "does not match the checksum"


def _delete_bm25_file(d):
    _bm25_file(d).unlink()
    return "is missing"


def _extra_bm25_file(d):
    (d / "bm25" / "extra.npy").write_bytes(b"\x00" * 16)
    return "does not list"


def _edit_tokenizer(d):
    p = d / "bm25" / "tokenizer.json"
    p.write_text(p.read_text().replace('"english"', '"porter"'))
    return "tokenizer.json does not match"


def _schema_1_manifest(d):
    """An index written before this change: schema 1, no BM25 checksums."""
    m = json.loads((d / "manifest.json").read_text())
    m["schema_version"] = 1
    m["files"] = {k: v for k, v in m["files"].items() if not k.startswith("bm25/")}
    (d / "manifest.json").write_text(json.dumps(m))
    return "before every index file carried a checksum"


def _no_checksums(d):
    m = json.loads((d / "manifest.json").read_text())
    m["files"] = {}
    (d / "manifest.json").write_text(json.dumps(m))
    return "checksum"


def _bm25_checksums_dropped(d):
    m = json.loads((d / "manifest.json").read_text())
    m["files"] = {k: v for k, v in m["files"].items() if not k.startswith("bm25/")}
    (d / "manifest.json").write_text(json.dumps(m))
    return "no checksums"


def _flip_faiss_byte(d):
    data = bytearray((d / "index.faiss").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "index.faiss").write_bytes(bytes(data))
    return "index.faiss does not match"


def _edit_passage(d):
    p = d / "passages.jsonl"
    p.write_text(p.read_text().replace("prohibited", "allowed", 1))
    return "passages.jsonl does not match"


def _broken_manifest(d):
    (d / "manifest.json").write_text("{not json")
    return "manifest.json is unreadable"


CORRUPTIONS = {f.__name__.lstrip("_"): f for f in (
    _overwrite_64_bytes, _delete_bm25_file, _extra_bm25_file, _edit_tokenizer, _schema_1_manifest, _no_checksums,
    _bm25_checksums_dropped, _flip_faiss_byte, _edit_passage, _broken_manifest)}


@pytest.mark.parametrize("name", [pytest.param(n, id=f"fault-index-{n}") for n in CORRUPTIONS])
def test_damaged_index_is_refused_with_the_fix(small_index_dir, minilm_embedder, tmp_path, name):
    d = _copy(small_index_dir, tmp_path)
    RegIndex.load(d, minilm_embedder, use_gpu="never")  # intact: loads
    words = CORRUPTIONS[name](d)
    with pytest.raises(IndexError_) as e:
        RegIndex.load(d, minilm_embedder, use_gpu="never")
    assert words in str(e.value) and "mad-guardrails index build" in str(e.value), str(e.value)
    record("fault", f"index-{name}", survived=True)


def test_new_index_lists_every_file(small_index_dir):
    m = json.loads((small_index_dir / "manifest.json").read_text())
    on_disk = {str(p.relative_to(small_index_dir)) for p in small_index_dir.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert m["schema_version"] >= 2 and set(m["files"]) == on_disk


def test_index_info_still_reads_an_old_index(small_index_dir, tmp_path):
    """``index info`` (verify=False) shows what an old index is, so the user sees what to rebuild."""
    d = _copy(small_index_dir, tmp_path)
    _schema_1_manifest(d)
    assert RegIndex.load(d, None, use_gpu="never", verify=False).info()["passages"] > 0
