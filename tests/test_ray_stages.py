"""The two stages of ``audit --engine ray`` called in process (no cluster; the scripted parts of
tests/fixtures/surfaces.py): the settle stage defers exactly the rows whose graph reaches the debate, and the two
stages together give the local engine's results row for row."""

from __future__ import annotations

import json

from mad_guardrails.core.paths import PROJECT_ROOT
from mad_guardrails.guardrails.audit.ray_engine import DebateStage, SettleStage
from mad_guardrails.guardrails.audit.reader import read_rows
from mad_guardrails.guardrails.audit.runner import AuditRunner, ResultRow
from mad_guardrails.guardrails.config import GuardrailConfig
from mad_guardrails.guardrails.guardrail import Guardrail
from tests.fixtures.surfaces import make_components

FACTORY = "tests.fixtures.surfaces:scripted_components"


def test_the_stages_defer_the_debated_rows_and_match_the_local_engine(surfaces_units, tmp_path):
    src = PROJECT_ROOT / "examples" / "audit_small.jsonl"
    rows = read_rows(src)
    cfg = GuardrailConfig(profile="surfaces-test", timeout_s=60)
    batch = {"row": [r.model_dump_json() for r in rows]}
    settled = SettleStage(cfg.model_dump_json(), "balanced", components=FACTORY)(batch)
    final = DebateStage(cfg.model_dump_json(), "balanced", components=FACTORY)(settled)
    ray_rows = [ResultRow.model_validate_json(r) for r in final["result"]]

    local = AuditRunner(cfg, tmp_path / "out", progress=False).run(
        rows, src, lambda: Guardrail(cfg, components=make_components())).rows
    assert [r.id for r in ray_rows] == [r.id for r in local]
    assert [(r.status, r.decision) for r in ray_rows] == [(r.status, r.decision) for r in local]
    pending = {rows[i].id for i, r in enumerate(settled["result"]) if not r}
    debated = {r.id for r in local if r.verdict and r.verdict["path"] == "debate"}
    assert pending == debated and pending  # deferred exactly the rows the local engine debated
    for r in settled["result"]:  # what the settle stage settled made no LLM call
        if r:
            v = json.loads(r)["verdict"]
            assert v is None or not v["transcript"]


def test_parquet_input_is_read_row_by_row_like_jsonl(tmp_path):
    """Parquet, the format large audits come in, for both engines: the same validation per row (a missing output, a
    duplicate id become error rows; other columns become metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mad_guardrails.core.errors import InputError

    p = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "a"], "output": ["NIS2 gives 72 hours.", None, "x"],
                             "team": ["t", "u", "v"]}), p)
    rows = read_rows(p)
    assert [(r.id, r.ok, r.line, r.metadata) for r in rows] == [
        ("a", True, 1, {"team": "t"}), ("b", False, 2, {"team": "u"}), ("a#line3", False, 3, {"team": "v"})]
    assert "'output' is missing" in rows[1].error and "duplicate id" in rows[2].error
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    try:
        read_rows(tmp_path / "bad.parquet")
    except InputError as e:
        assert "not a readable Parquet file" in str(e)
    else:
        raise AssertionError("a broken Parquet file must be refused")
