"""The eval harness: stratified seeded sampling, resumable runs (SIGKILL included), the files it writes, and the
refusal to mix configurations. The guardrail here runs over the scripted agents of ``tests/fixtures/surfaces.py``
(control flow only); the screening baseline is real code on the same parts. The end-to-end run on the real offline
profile is in ``test_eval_e2e.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mad_guardrails.core.errors import ConfigError
from mad_guardrails.core.paths import PROJECT_ROOT
from mad_guardrails.evals.harness import RESULTS_FILE, EvalOptions, RecordStore, run_eval, sample_cases
from mad_guardrails.evals.loaders import EvalCase, load_set
from mad_guardrails.evals.metrics import CaseRecord


def _cases() -> list[EvalCase]:
    out = []
    for s in ("a", "b"):
        for t, e, n in (("adversarial", "block", 30), ("adversarial", "allow", 5), ("benign_sensitive", "allow", 8),
                        ("ambiguous", "flag", 3), ("ambiguous", "allow", 2)):
            out += [EvalCase(id=f"{s}:{t}-{e}-{i}", set=s, output="x", type=t, expected=e) for i in range(n)]
    return out


def test_sampling_is_stratified_seeded_and_covers_groups():
    cases = _cases()
    s1 = sample_cases(cases, 24, seed=7)
    assert len(s1) == 24 and len({c.id for c in s1}) == 24
    # ambiguous has only 10 cases in all: it gets 8 (= 24 // 3) and the other types share the rest evenly
    assert Counter(c.type for c in s1) == {"ambiguous": 8, "benign_sensitive": 8, "adversarial": 8}
    # round-robin over (set, expected): every group of every type is represented
    assert {(c.set, c.type, c.expected) for c in s1} == {(c.set, c.type, c.expected) for c in cases}
    assert [c.id for c in sample_cases(cases, 24, seed=7)] == [c.id for c in s1]  # reproducible
    assert [c.id for c in sample_cases(cases, 24, seed=8)] != [c.id for c in s1]
    # a small type gives its remainder away
    few = sample_cases(cases, 40, seed=0)
    assert Counter(c.type for c in few) == {"ambiguous": 10, "benign_sensitive": 15, "adversarial": 15}
    # interleaved: the first three cases already cover the three types (a killed run is still stratified)
    assert {c.type for c in s1[:3]} == {"adversarial", "benign_sensitive", "ambiguous"}
    assert sample_cases(cases, None, 0) == cases and sample_cases(cases, 0, 0) == []


def test_record_store_repairs_a_cut_line_and_later_lines_win(tmp_path: Path):
    p = tmp_path / RESULTS_FILE
    r1 = CaseRecord(system="s", case_id="c1", set="t", type="adversarial", expected="block", decision=None,
                    error="crash: x")
    r2 = r1.model_copy(update={"decision": "block", "error": None})
    p.write_text(r1.model_dump_json() + "\n" + r2.model_dump_json() + "\n" + '{"system": "s", "case_', encoding="utf-8")
    st = RecordStore(p)
    recs = st.load()
    assert st.dropped == 1 and recs[("s", "c1")].decision == "block"
    assert p.read_text(encoding="utf-8").endswith("\n")
    st.append(r1.model_copy(update={"case_id": "c2"}))
    st.close()
    assert len(RecordStore(p).load()) == 2


_CHILD = """
import sys
from tests.fixtures.surfaces import make_components
from mad_guardrails.guardrails.config import GuardrailConfig
from mad_guardrails.guardrails.guardrail import Guardrail
from mad_guardrails.evals.baselines import EvalResources
from mad_guardrails.evals.harness import EvalOptions, run_eval
g = Guardrail(GuardrailConfig(profile="surfaces-test", timeout_s=60), components=make_components(delay=0.15))
run_eval(EvalOptions(sets=["regulatory_cases"], systems=["mad", "screening"], limit=12, seed=3, out=sys.argv[1],
                     concurrency=1, chunk=4, progress=False), resources=EvalResources(guardrail=g))
"""


def _opts(out: Path, **kw) -> EvalOptions:
    base = dict(sets=["regulatory_cases"], systems=["mad", "screening"], limit=12, seed=3, out=out, concurrency=3,
                progress=False)
    return EvalOptions(**(base | kw))


def test_sigkill_then_resume_gives_one_record_per_system_and_case(tmp_path: Path, surfaces_units):
    from mad_guardrails.evals.baselines import EvalResources
    from mad_guardrails.guardrails.config import GuardrailConfig
    from mad_guardrails.guardrails.guardrail import Guardrail
    from tests.fixtures.surfaces import make_components

    out = tmp_path / "run"
    results = out / RESULTS_FILE
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(out)], cwd=PROJECT_ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if results.exists() and results.read_bytes().count(b"\n") >= 10:  # chunk 1 done by both systems
                break
            if child.poll() is not None:
                pytest.fail(f"the eval child ended early: {child.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        else:
            pytest.fail("the eval child wrote no results within 120 s")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    before = [ln for ln in results.read_bytes().split(b"\n")[:-1] if ln.strip()]
    done_before = {CaseRecord.model_validate_json(ln).key for ln in before}
    assert 10 <= len(done_before) < 24, "the kill should land in the middle of the run"
    with open(results, "ab") as f:  # as if the kill had cut a line in half
        f.write(b'{"system": "mad", "case_id": "regulatory_cases:r0')

    g = Guardrail(GuardrailConfig(profile="surfaces-test", timeout_s=60), components=make_components())
    try:
        # --report-only on the stopped run: nothing runs; metrics cover the cases every system finished
        partial = run_eval(_opts(out, report_only=True), resources=EvalResources(guardrail=g))
        complete = {cid for s, cid in done_before if all((x, cid) in done_before for x in ("mad", "screening"))}
        meta = json.loads((out / "metrics.json").read_text())["meta"]
        assert meta["n_cases"] == len(complete) and meta["n_sampled"] == 12
        assert 4 <= len(complete) < 12 and meta["notes"][0].startswith(f"partial run: {len(complete)} of 12")
        assert {r.case_id for r in partial.records} == complete
        assert results.read_bytes().count(b"\n") == len(before)  # the cut line was dropped, nothing was added
        res = run_eval(_opts(out), resources=EvalResources(guardrail=g))
    finally:
        g.close()
    lines = [ln for ln in results.read_bytes().split(b"\n") if ln.strip()]
    recs = [CaseRecord.model_validate_json(ln) for ln in lines]
    keys = [r.key for r in recs]
    assert len(keys) == len(set(keys)) == 24  # 12 cases × 2 systems, each exactly once
    assert lines[:len(before)] == before      # what was done before the kill was kept, not re-run
    assert all(r.decision is not None for r in recs)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["runs"] == 3 and manifest["finished"] and len(manifest["case_ids"]) == 12
    expected_ids = [c.id for c in sample_cases(load_set("regulatory_cases"), 12, 3)]
    assert manifest["case_ids"] == expected_ids and {r.case_id for r in recs} == set(expected_ids)

    # a third run does nothing new and reproduces the metrics
    g = Guardrail(GuardrailConfig(profile="surfaces-test", timeout_s=60), components=make_components())
    try:
        again = run_eval(_opts(out), resources=EvalResources(guardrail=g))
    finally:
        g.close()
    assert results.read_bytes().count(b"\n") == 24
    assert again.metrics == res.metrics


def test_outputs_and_metrics_of_a_small_run(tmp_path: Path, surfaces_units):
    from mad_guardrails.evals.baselines import EvalResources
    from mad_guardrails.guardrails.config import GuardrailConfig
    from mad_guardrails.guardrails.guardrail import Guardrail
    from tests.fixtures.surfaces import make_components

    g = Guardrail(GuardrailConfig(profile="surfaces-test", timeout_s=60), components=make_components())
    try:
        res = run_eval(_opts(tmp_path / "o", limit=9), resources=EvalResources(guardrail=g))
    finally:
        g.close()
    out = tmp_path / "o"
    for f in ("results.jsonl", "metrics.json", "metrics.md", "run.json"):
        assert (out / f).is_file(), f
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots and all(p.endswith((".svg", ".png")) for p in plots)
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["metrics"]) == {"mad", "screening"}
    for s in ("mad", "screening"):
        assert m["metrics"][s]["overall"]["n"] == 9
        assert {"benign_sensitive", "ambiguous", "adversarial"} <= set(m["metrics"][s])
    # the screening baseline makes no LLM call; the scripted debate does (3 debaters × rounds + coordinator)
    assert m["metrics"]["screening"]["overall"]["llm_calls"] == 0
    scr = [r for r in res.records if r.system == "screening"]
    assert all(r.llm_calls == 0 and r.prompt_tokens == 0 for r in scr)
    mad_debated = [r for r in res.records if r.system == "mad" and r.path == "debate"]
    assert mad_debated and all(r.llm_calls >= 4 for r in mad_debated)
    md = (out / "metrics.md").read_text()
    assert "| mad | overall |" in md and "| screening | overall |" in md and "Paired comparison" in md
    # the number check blocks a wrong NIS2 deadline for every system, without any LLM call
    r031 = {r.system: r for r in res.records if r.case_id == "regulatory_cases:r031"}
    if r031:
        assert {r.decision for r in r031.values()} == {"block"} and {r.path for r in r031.values()} == {"fast_block"}


def test_resuming_with_another_config_is_refused(tmp_path: Path, surfaces_units):
    from mad_guardrails.evals.baselines import EvalResources
    from mad_guardrails.guardrails.config import GuardrailConfig
    from mad_guardrails.guardrails.guardrail import Guardrail
    from tests.fixtures.surfaces import make_components

    out = tmp_path / "o"
    for timeout, should_fail in ((60, False), (61, True)):
        g = Guardrail(GuardrailConfig(profile="surfaces-test", timeout_s=timeout), components=make_components())
        try:
            if should_fail:
                with pytest.raises(ConfigError, match="another configuration.*another --out"):
                    run_eval(_opts(out, limit=3, systems=["screening"]), resources=EvalResources(guardrail=g))
            else:
                run_eval(_opts(out, limit=3, systems=["screening"]), resources=EvalResources(guardrail=g))
        finally:
            g.close()


def test_unknown_system_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown system.*mad, single, majority, noretrieval, screening"):
        run_eval(_opts(tmp_path, systems=["mad", "debate2"]))


def test_cli_lists_sets_and_names_a_bad_set():
    from typer.testing import CliRunner

    from mad_guardrails.guardrails.cli import app

    r = CliRunner().invoke(app, ["eval", "--list", "regulatory_cases", "golden68"])
    assert r.exit_code == 0, r.output
    assert "regulatory_cases" in r.output and "golden68" in r.output and "45" in r.output
    r = CliRunner().invoke(app, ["eval", "no_such_set", "--limit", "2"])
    assert r.exit_code != 0
    assert "unknown eval set 'no_such_set'" in str(r.exception) + r.output


class _DeadCoordinator:
    """A coordinator whose server is gone (what the real Coordinator returns on a refused connection)."""

    async def decide(self, case, evidence, rules, transcript, feedback=None):
        from types import SimpleNamespace

        return SimpleNamespace(output=None, calls=1, usage=None,
                               error="BackendError (connection): openai backend: cannot connect")


def test_a_dead_llm_server_stops_the_run_and_retry_errors_finishes_it(tmp_path: Path, surfaces_units):
    import dataclasses

    from mad_guardrails.evals.baselines import EvalResources
    from mad_guardrails.evals.harness import MAX_INFRA_STREAK, BackendDown
    from mad_guardrails.guardrails.config import GuardrailConfig
    from mad_guardrails.guardrails.guardrail import Guardrail
    from tests.fixtures.surfaces import make_components

    out = tmp_path / "o"
    # only cases that reach the coordinator (not the fast paths) can meet the dead server
    opts = _opts(out, systems=["mad"], limit=None, sets=[str(_debated_set(tmp_path))], concurrency=1)
    cfg = GuardrailConfig(profile="surfaces-test", timeout_s=60)
    g = Guardrail(cfg, components=dataclasses.replace(make_components(), coordinator=_DeadCoordinator()))
    try:
        with pytest.raises(BackendDown, match="could not reach the LLM server.*--retry-errors"):
            run_eval(opts, resources=EvalResources(guardrail=g))
    finally:
        g.close()
    recs = RecordStore(out / RESULTS_FILE).load()
    assert len(recs) == MAX_INFRA_STREAK and all(r.error.startswith("infrastructure: ") for r in recs.values())
    g = Guardrail(cfg, components=make_components())
    try:
        res = run_eval(opts.model_copy(update={"retry_errors": True}), resources=EvalResources(guardrail=g))
    finally:
        g.close()
    assert len(res.records) == 6 and all(r.error is None and r.decision for r in res.records)


def _debated_set(tmp_path: Path) -> Path:
    """Six regulatory_cases rows the scripted parts send to the debate (they mention the tiny corpus' topics)."""
    p = tmp_path / "debated.yaml"
    p.write_text("""
name: debated
path: package:data/regulatory_cases.jsonl
columns: {id: id, output: output, query: query}
filters: [{field: id, in: [r001, r002, r003, r005, r017, r033]}]
type_column: type
expected_column: expected
type_rules: [{type: ambiguous}]
expected_rules: [{expected: flag}]
""", encoding="utf-8")
    return p
