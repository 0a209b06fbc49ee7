"""The trainers on tiny data (the bundled MiniLM, a few steps on CPU): the loss falls, checkpoints resume, and the
artefacts load back -- the embedder adapter into :class:`mad_guardrails.retrieval.embedder.Embedder`, the relevance head into the
retrieval relevance filter, predicting 0/1."""

from __future__ import annotations

import numpy as np
import pytest

from mad_guardrails.retrieval.training.pairs import TrainPair, passage_refs

pytest.importorskip("datasets")
pytest.importorskip("peft")

QUERIES = {  # unit id -> a question it answers (written for the test)
    "nis2:art_23": "How fast do we have to warn the CSIRT about a serious hack?",
    "nis2:art_21": "Do we need multi-factor login and encryption under NIS2?",
    "gdpr:art_33": "Our customer database leaked. How long until we must tell the regulator?",
    "gdpr:art_17": "Can I make a company delete the data they hold about me?",
    "dora:art_28": "What must a bank do about risks from its cloud vendors?",
    "eu-ai-act:art_50": "Does our chatbot need to say that it is an AI?",
    "cra:art_14": "Who must be told when hackers exploit a bug in our smart device?",
    "nist-csf-2.0:DE.CM-01": "Should we watch our network traffic for attacks?",
}
OFFTOPIC = ["How long do I bake banana bread?", "Who won the chess world championship in 2013?",
            "What is a good name for a hamster?", "How do I tune a guitar by ear?"]


def _pairs(tiny_corpus) -> list[TrainPair]:
    refs = {r.pid: r for r in passage_refs(tiny_corpus)}
    ids = list(QUERIES)
    out = []
    for i, uid in enumerate(ids):
        r, n = refs[uid], refs[ids[(i + 3) % len(ids)]]
        out.append(TrainPair(query=QUERIES[uid], type="benign_sensitive", pid=r.pid, unit_id=r.unit_id, key=r.key,
                             doc=r.doc, positive=r.embed_text, negatives=[n.embed_text], negative_pids=[n.pid],
                             source="test"))
    return out


def _margin(emb, pairs) -> float:
    q = emb.encode_queries([p.query for p in pairs])
    pos = emb.encode_passages([p.positive for p in pairs], progress=False)
    neg = emb.encode_passages([p.negatives[0] for p in pairs], progress=False)
    return float(np.mean((q * pos).sum(1) - (q * neg).sum(1)))


def test_embedder_lora_training_loss_falls_resumes_and_adapter_loads(tmp_path, tiny_corpus):
    from mad_guardrails.retrieval.embedder import Embedder
    from mad_guardrails.retrieval.training.embedder_trainer import resolve_config, train_embedder

    pairs = _pairs(tiny_corpus)
    cfg = resolve_config("cpu-small", dict(max_steps=6, batch_size=8, lr=3e-3, max_seq_length=48, save_steps=3,
                                           logging_steps=1, warmup_ratio=0.0, seed=7))
    res = train_embedder(pairs, cfg, tmp_path, progress=False)
    assert res.steps == 6 and res.n_train == len(pairs)
    losses = [loss for _, loss in res.losses]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    files = {f.name for f in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size < 5_000_000  # LoRA only

    base = Embedder.load(max_seq_length=48)
    adapted = Embedder.load(adapter=res.adapter_dir, max_seq_length=48)
    assert adapted.fingerprint()["adapter"] and adapted.fingerprint() != base.fingerprint()
    assert adapted.encode_queries(["x"]).shape == (1, 384)
    assert _margin(adapted, pairs) > _margin(base, pairs)  # it learned the training pairs

    # resume: a longer run continues from the last checkpoint instead of starting over
    cfg2 = cfg.model_copy(update={"max_steps": 8})
    res2 = train_embedder(pairs, cfg2, tmp_path, resume=True, progress=False)
    assert res2.resumed_from and res2.resumed_from.endswith("checkpoint-6") and res2.steps == 8
    assert res2.losses[:6] == res.losses[:6]

    # --init-adapter: training continues from a trained adapter's weights, not from a fresh LoRA
    cont = train_embedder(pairs, cfg.model_copy(update={"max_steps": 1, "init_adapter": res.adapter_dir}),
                          tmp_path / "continued", progress=False)
    assert cont.losses[0][1] < res.losses[0][1]


def test_relevance_head_trains_and_predicts_zero_or_one(tmp_path, tiny_corpus):
    from mad_guardrails.core.units import Evidence
    from mad_guardrails.retrieval.config import RetrievalConfig
    from mad_guardrails.retrieval.relevance import RelevanceFilter
    from mad_guardrails.retrieval.relevance_head import HeadScorer, RelevanceHead
    from mad_guardrails.retrieval.training.relevance_trainer import (
        RelevanceTrainConfig,
        build_relevance_data,
        train_relevance,
    )

    pairs = _pairs(tiny_corpus)
    refs = passage_refs(tiny_corpus)
    cfg = RelevanceTrainConfig(max_steps=10, batch_size=16, lr=2e-3, max_length=64, warmup_ratio=0.0,
                               logging_steps=2, save_steps=5, offtopic_k=2, offtopic_random=1,
                               cross_domain_per_pair=0.0, seed=3)
    rows = build_relevance_data(pairs, refs, OFFTOPIC, [[0, 1]] * len(OFFTOPIC), cfg)
    assert {e.kind for e in rows} == {"positive", "near_miss", "offtopic"}
    assert all(e.weight == cfg.offtopic_weight for e in rows if e.kind == "offtopic")
    res = train_relevance(rows, cfg, tmp_path, progress=False)
    losses = [loss for _, loss in res.losses]
    assert res.steps == 10 and losses[-1] < losses[0], losses

    head = RelevanceHead.load(res.head_dir)
    preds = head.predict([(e.query, e.passage) for e in rows])
    assert set(preds) <= {0, 1}
    acc = np.mean([p == e.label for p, e in zip(preds, rows)])
    assert acc >= 0.7, acc

    # plugged into the retrieval relevance filter through the config
    filt = RelevanceFilter.from_config(
        RetrievalConfig(relevance_filter="cross-encoder", relevance_model=res.head_dir), None)
    assert isinstance(filt.scorer, HeadScorer)
    ev = [Evidence(unit_id=r.unit_id, doc=r.doc, heading=r.heading, text=r.text, rank=i + 1, score=1.0)
          for i, r in enumerate(refs[:2])]
    scored = filt.score(OFFTOPIC[0], ev)
    assert all(0.0 <= e.relevance <= 1.0 for e in scored)

    # resume from the step-5 checkpoint reproduces the uninterrupted run's loss curve
    res2 = train_relevance(rows, cfg.model_copy(update={"max_steps": 12}), tmp_path, resume=True, progress=False)
    assert res2.resumed_from.endswith("step-5") and res2.steps == 12
    assert res2.losses[:2] == res.losses[:2]
