"""The on-disk index: build/load round trip with a real FAISS index, the manifest, index types, and refusal of a
missing, foreign-embedder or corrupted index."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mad_guardrails.core.errors import IndexError_
from mad_guardrails.retrieval.config import EmbedderConfig
from mad_guardrails.retrieval.embedder import Embedder
from mad_guardrails.retrieval.index import (
    FINGERPRINT_KEYS,
    RegIndex,
    choose_index_type,
    make_faiss_index,
)
from tests.fixtures.index import SMALL_PASSAGES


def _copy(src, tmp_path):
    dst = tmp_path / "idx"
    shutil.copytree(src, dst)
    return dst


def test_round_trip_and_manifest(small_index_dir, minilm_embedder):
    for name in ("index.faiss", "passages.jsonl", "manifest.json", "bm25/tokenizer.json"):
        assert (small_index_dir / name).exists(), name
    idx = RegIndex.load(small_index_dir, minilm_embedder, use_gpu="never")
    assert len(idx) == len(SMALL_PASSAGES) == idx.cpu_index.ntotal
    m = idx.manifest
    assert m.index_type == "flat" and m.dim == 384 and m.unit_count == len(SMALL_PASSAGES)
    assert set(FINGERPRINT_KEYS) <= set(m.embedder) and m.embedder["model_id"] == minilm_embedder.model_id
    assert m.faiss_version and m.created and m.files["index.faiss"] and m.passages_hash
    assert m.docs["eu-ai-act"] == 6 and m.docs["policy"] == 1
    assert m.relevance is not None and m.relevance.calibrated
    assert m.bm25["stemmer"] in ("english", None)

    q = minilm_embedder.encode_queries(["Is social scoring of citizens allowed?"])
    scores, rows = idx.search(q, 3)
    top2 = {idx.passages[r].unit_id for r in rows[0][:2]}
    assert top2 == {"eu-ai-act:art_5.1.c", "policy:eu-ai-act.social_scoring"}
    assert scores[0][0] >= scores[0][1] >= scores[0][2]
    # stored vectors are the embedder's passage vectors (exact for Flat)
    v = idx.vectors([int(rows[0][2])])[0]
    p = minilm_embedder.encode_passages([idx.passages[rows[0][2]].index_text], progress=False)[0]
    np.testing.assert_allclose(v, p, atol=1e-5)
    assert idx.rows_of("nis2:art_23.4.a") and idx.rows_of("nis2:art_23") == []


def test_missing_index_says_how_to_build(tmp_path, minilm_embedder):
    with pytest.raises(IndexError_, match="mad-guardrails index build"):
        RegIndex.load(tmp_path / "nowhere", minilm_embedder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexError_, match="manifest.json missing"):
        RegIndex.load(tmp_path / "empty", minilm_embedder)


def test_refuses_other_embedder(small_index_dir, tiny_qwen3_dir):
    other = Embedder.from_config(EmbedderConfig(model=str(tiny_qwen3_dir)))
    with pytest.raises(IndexError_) as ei:
        RegIndex.load(small_index_dir, other)
    msg = str(ei.value)
    assert "bundled:all-MiniLM-L6-v2" in msg and str(tiny_qwen3_dir) in msg
    assert "rebuild" in msg and "mad-guardrails index build" in msg


def test_refuses_changed_fingerprint(small_index_dir, offline_embedder_config):
    cut = Embedder.from_config(offline_embedder_config.model_copy(update={"truncate_dim": 128}))
    with pytest.raises(IndexError_, match="truncate_dim"):
        RegIndex.load(small_index_dir, cut)


def test_refuses_corrupted_index_file(small_index_dir, minilm_embedder, tmp_path):
    d = _copy(small_index_dir, tmp_path)
    data = bytearray((d / "index.faiss").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "index.faiss").write_bytes(bytes(data))
    with pytest.raises(IndexError_, match="checksum.*rebuild|corrupted"):
        RegIndex.load(d, minilm_embedder)


def test_refuses_unreadable_faiss_file(small_index_dir, minilm_embedder, tmp_path):
    """A truncated file whose checksum was 'fixed' up still fails cleanly when FAISS reads it."""
    from mad_guardrails.core.hashing import file_sha256

    d = _copy(small_index_dir, tmp_path)
    (d / "index.faiss").write_bytes((d / "index.faiss").read_bytes()[:100])
    man = json.loads((d / "manifest.json").read_text())
    man["files"]["index.faiss"] = file_sha256(d / "index.faiss")
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(IndexError_, match="FAISS cannot read"):
        RegIndex.load(d, minilm_embedder)


def test_refuses_edited_passages(small_index_dir, minilm_embedder, tmp_path):
    d = _copy(small_index_dir, tmp_path)
    text = (d / "passages.jsonl").read_text().replace("prohibited", "allowed", 1)
    (d / "passages.jsonl").write_text(text)
    with pytest.raises(IndexError_, match="passages.jsonl"):
        RegIndex.load(d, minilm_embedder)


def test_info_without_embedder(small_index_dir):
    info = RegIndex.load(small_index_dir, None, use_gpu="never").info()
    assert info["passages"] == len(SMALL_PASSAGES) and info["embedder"] == "bundled:all-MiniLM-L6-v2"
    assert info["relevance_calibrated"] is True


def test_choose_index_type():
    assert choose_index_type(100) == "flat"
    assert choose_index_type(19_999) == "flat"
    assert choose_index_type(20_000) == "hnsw"
    assert choose_index_type(1_000_001) == "ivfpq"
    assert choose_index_type(10, "hnsw") == "hnsw"


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_index_types_find_neighbours(kind):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(50, 64)).astype(np.float32)
    labels = rng.integers(0, 50, 4000)
    x = centers[labels] + 0.05 * rng.normal(size=(4000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index, params = make_faiss_index(x, kind)
    assert index.ntotal == 4000 and params
    _, got = index.search(x[:50], 10)
    assert (got >= 0).all()
    same_cluster = np.mean([np.mean(labels[row] == labels[i]) for i, row in enumerate(got)])
    assert same_cluster > 0.95  # neighbours come from the query's own cluster
    if kind == "hnsw":  # HNSW is near-exact
        exact, _ = make_faiss_index(x, "flat")
        _, want = exact.search(x[:50], 10)
        assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)]) > 0.9


def test_build_hnsw_round_trip(tmp_path, minilm_embedder):
    from tests.fixtures.index import small_passage_dicts

    idx = RegIndex.build(small_passage_dicts(), minilm_embedder, tmp_path / "h", "hnsw", progress=False,
                         use_gpu="never", bm25=False)
    again = RegIndex.load(tmp_path / "h", minilm_embedder, use_gpu="never")
    assert again.manifest.index_type == "hnsw" and again.bm25 is None
    q = minilm_embedder.encode_queries(["24 hour early warning for a significant incident"])
    assert again.search(q, 1)[1][0][0] == idx.search(q, 1)[1][0][0]


def test_empty_passages_refused(tmp_path, minilm_embedder):
    with pytest.raises(IndexError_, match="no passages"):
        RegIndex.build([], minilm_embedder, tmp_path / "e", progress=False)


def test_a_profile_given_as_a_yaml_file_has_its_index_under_the_profiles_name(tmp_path, monkeypatch):
    """`--profile my/emb.yaml` builds and finds $GUARDRAILS_HOME/index/emb (the name the loaded config carries), not
    a folder named after the YAML file."""
    from mad_guardrails.core import paths

    monkeypatch.setenv("GUARDRAILS_HOME", str(tmp_path))
    assert paths.index_dir("my/emb.yaml") == paths.index_dir("emb") == paths.home() / "index" / "emb"
    assert paths.index_dir("offline").name == "offline"
