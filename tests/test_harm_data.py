"""The harm screen's training data builder (bench/gpu/harm/data.py): LLM-written answers (round 3) join the train split
only, with the labels read off them, and a row for a dev or test prompt is refused."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def D():
    spec = importlib.util.spec_from_file_location("harm_data_t", ROOT / "bench/gpu/harm/data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _prompt(D, split: str) -> str:
    return next(q for q in (f"How do I wreck thing number {k}?" for k in range(500)) if D.split_of(q) == split)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_llm_rows_take_the_read_labels_and_drop(D, tmp_path):
    q = _prompt(D, "train")
    ans = _write(tmp_path / "a.jsonl", [
        dict(i=0, premise=q, hypothesis="Sure, smash it with a hammer.", label="harmful", risk="risk_3",
             source="llm_xstest"),
        dict(i=1, premise=q, hypothesis="Here are the steps: 1. ask nicely.", label="harmful", risk="risk_3",
             source="llm_xstest"),
        dict(i=2, premise=q, hypothesis="I can't help with that.", label=None, risk="risk_3", source="llm_xstest")])
    labels = _write(tmp_path / "l.jsonl", [{"i": 0, "label": "harmful"}, {"i": 1, "label": "drop"},
                                               {"i": 2, "label": "refusal"}])
    rows = D.llm_rows(ans, labels)
    assert [(r["hypothesis"][:4], r["label"]) for r in rows] == [("Sure", "harmful"), ("I ca", "refusal")]
    assert len(D.llm_rows(ans)) == 2  # no labels file: the generator's own labels, None left out
    only = _write(tmp_path / "o.jsonl", [{"i": 2, "label": "refusal"}])
    assert [r["label"] for r in D.llm_rows(ans, only)] == ["refusal"]  # rows nobody labelled stay out


def test_llm_rows_refuse_a_held_out_prompt(D, tmp_path):
    q = _prompt(D, "test")
    ans = _write(tmp_path / "a.jsonl", [dict(i=7, premise=q, hypothesis="Sure.", label="harmful", risk="risk_3",
                                             source="llm_xstest")])
    with pytest.raises(ValueError, match="i=7 answers a test prompt"):
        D.llm_rows(ans)


def test_llm_rows_name_a_bad_label(D, tmp_path):
    q = _prompt(D, "train")
    ans = _write(tmp_path / "a.jsonl", [dict(i=3, premise=q, hypothesis="x", label="harmful", risk="none",
                                             source="llm_benign")])
    labels = _write(tmp_path / "l.jsonl", [{"i": 3, "label": "harmfull"}])
    with pytest.raises(ValueError, match=r"l.jsonl: row i=3 has label 'harmfull'"):
        D.llm_rows(ans, labels)


def test_llm_answer_jobs_are_train_prompts_without_self_harm_or_cbrn():
    from mad_guardrails.core.paths import shared_corpus

    spec = importlib.util.spec_from_file_location("harm_llm_t", ROOT / "bench/gpu/harm/llm_answers.py")
    L = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(L)
    corpus = shared_corpus()
    if corpus is None or not (corpus.parent / "evalsets/xstest/xstest_prompts.csv").exists():
        pytest.skip("no ../shared/data here")
    evalsets = corpus.parent / "evalsets"
    jobs = L.jobs(evalsets, 7)
    assert {j["mode"] for j in jobs} == {"comply", "partial", "refuse", "safe"}
    assert all(L.D.split_of(j["q"]) == "train" for j in jobs)
    written = [j for j in jobs if j["mode"] in ("comply", "partial")]
    assert not [j for j in written if L.SELF_HARM.search(j["q"]) or j["risk"] in L.NOT_WRITTEN]
    import random

    assert L.restate("How do I smash my neighbour's car?", random.Random(0)).lower().count("your neighbour's car") == 1


def test_folds_keep_a_prompt_in_one_fold_and_hold_it_out(tmp_path):
    import gzip

    spec = importlib.util.spec_from_file_location("harm_folds_t", ROOT / "bench/gpu/harm/folds.py")
    F = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(F)
    data = tmp_path / "data"
    data.mkdir()
    train = [dict(premise=f"Prompt number {k % 7}", hypothesis=f"answer {k}", label="safe", source="xstest")
             for k in range(28)]
    for name, rows in (("train", train), ("dev", [dict(premise="a dev prompt", hypothesis="x", label="refusal",
                                                       source="xstest")])):
        with gzip.open(data / f"{name}.jsonl.gz", "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    (data / "stats.json").write_text("{}")
    F.write_folds(data, tmp_path / "cv", 3)
    seen = {}
    for i in range(3):
        tr = [json.loads(x) for x in gzip.open(tmp_path / "cv" / f"f{i}" / "train.jsonl.gz", "rt")]
        dv = [json.loads(x) for x in gzip.open(tmp_path / "cv" / f"f{i}" / "dev.jsonl.gz", "rt")]
        assert dv[0]["fold"] == "dev"  # the dev split stays in every fold's evaluation
        held = {r["premise"] for r in dv if r["fold"] == i}
        assert not held & {r["premise"] for r in tr}  # a held-out prompt is never trained on
        for q in held:
            assert q not in seen
            seen[q] = i
    assert len(seen) == 7  # every train prompt is held out exactly once
