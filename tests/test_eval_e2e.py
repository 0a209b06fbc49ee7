"""End to end: ``mad-guardrails eval`` on the real offline profile (SmolLM2-135M on the session's vLLM CPU server, the
real index, packs and verifier), every system, a few cases. Asserts what must hold whatever the tiny model says:
one record per (system, case), no harness error, the deterministic number check blocking a wrong NIS2 deadline in
every system (they share the graph's fast paths), cost accounting (screening makes no LLM call; a judge at most a few
per case), and the output files. What the model decides on the other cases is reported, not asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

SET_YAML = """
name: e2e_cases
path: package:data/regulatory_cases.jsonl
columns: {id: id, output: output, query: query, gold_rules: gold_rules}
filters: [{field: id, in: [r031, r001]}]
type_column: type
expected_column: expected
type_rules: [{type: ambiguous}]
expected_rules: [{expected: flag}]
"""


@pytest.fixture()
def offline_resources(vllm_server, real_small_index_dir, offline_embedder_config):
    """The offline profile, pointed at the session's vLLM server (no second server) and the tests' small real
    index (the full corpus index takes many minutes to build on a CPU)."""
    from mad_guardrails.evals.baselines import EvalResources
    from mad_guardrails.guardrails.config import GuardrailConfig
    from tests.fixtures.llm_server import offline_profile_on

    # the small index is built with the tests' base embedder (no domain adapter): configure that one
    data = offline_profile_on(vllm_server, index_dir=real_small_index_dir,
                              embedder=offline_embedder_config.model_dump(mode="json"))
    data["llm"].update(serve=None, max_tokens=96, timeout_s=600)
    data["timeout_s"] = 900.0
    res = EvalResources(GuardrailConfig.model_validate(data))
    yield res
    res.close()


def test_eval_all_systems_on_the_offline_profile(tmp_path: Path, offline_resources):
    from mad_guardrails.evals.harness import EvalOptions, run_eval

    set_file = tmp_path / "e2e_cases.yaml"
    set_file.write_text(SET_YAML, encoding="utf-8")
    out = tmp_path / "out"
    res = run_eval(EvalOptions(sets=[str(set_file)], systems=["mad", "single", "majority", "noretrieval", "screening"],
                               limit=None, seed=0, out=out, concurrency=2, majority_n=2, progress=False),
                   resources=offline_resources)
    recs = {(r.system, r.case_id): r for r in res.records}
    assert len(recs) == 10 and all(r.error is None and r.decision for r in recs.values())
    for s in ("mad", "single", "majority", "noretrieval", "screening"):
        wrong = recs[(s, "e2e_cases:r031")]  # "NIS2 gives you 72 hours to send the early warning"
        assert (wrong.decision, wrong.path, wrong.llm_calls) == ("block", "fast_block", 0), s
    assert all(recs[("screening", c)].llm_calls == 0 for c in ("e2e_cases:r001", "e2e_cases:r031"))
    for c in ("e2e_cases:r001",):
        single, maj = recs[("single", c)], recs[("majority", c)]
        if single.path == "debate":
            assert 1 <= single.llm_calls <= 4  # one judge call (+ format repair) (+ verifier repair round)
        if maj.path == "debate":
            assert maj.extra["n_judges"] == 2 and maj.llm_calls >= 2
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["metrics"]) == {"mad", "single", "majority", "noretrieval", "screening"}
    assert m["meta"]["majority_n"] == 2 and (out / "metrics.md").is_file() and any((out / "plots").iterdir())
