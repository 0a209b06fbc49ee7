"""What lets ``audit --engine ray`` run without holding its rows or results (guardrails/audit/streaming.py): the input
read afresh block by block with the same rows as ``read_rows``, and the results file kept as ids with the local
store's rules (repair on open, first row per id, input order at the end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mad_guardrails.core.errors import InputError
from mad_guardrails.core.paths import PROJECT_ROOT
from mad_guardrails.guardrails.audit.reader import read_rows
from mad_guardrails.guardrails.audit.runner import ResultRow, ResultStore
from mad_guardrails.guardrails.audit.streaming import IdStore, ResultFile, RowSource

EXAMPLES = PROJECT_ROOT / "examples" / "audit_small.jsonl"


def _dump(rows) -> list[str]:
    return [r.model_dump_json() for r in rows]


def test_a_row_source_gives_read_rows_rows_on_every_pass(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = RowSource(EXAMPLES)
    assert _dump(src) == _dump(read_rows(EXAMPLES)) == _dump(src)  # re-read, the same rows
    assert len(src) == len(read_rows(EXAMPLES))
    assert [r.id for r in RowSource(EXAMPLES, limit=3)] == [r.id for r in read_rows(EXAMPLES, limit=3)]
    p = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(10_000)] + ["r3"],
                             "output": [f"text {i}" for i in range(10_001)]}), p, row_group_size=1000)
    assert _dump(RowSource(p)) == _dump(read_rows(p))  # several record batches; the late duplicate id still caught
    assert [r.id for r in RowSource(p)][-1] == "r3#line10001"
    (tmp_path / "empty.jsonl").write_bytes(b"\n\n")
    with pytest.raises(InputError, match="no rows"):
        RowSource(tmp_path / "empty.jsonl")
    with pytest.raises(InputError, match="not found"):
        RowSource(tmp_path / "nope.jsonl")


def _row(i: str, decision: str = "error", infra: bool = False) -> ResultRow:
    return ResultRow(id=i, status="error", error=f"line 1: {'the check raised OSError' if infra else 'bad'}: x")


def test_the_id_store_keeps_the_local_stores_rules(tmp_path):
    """Partial last line, unreadable line and a second row for an id are dropped on open, as ResultStore does;
    finalize writes input order, one row per input id, and drops ids not in the input."""
    lines = [_row("b").model_dump_json(), "not json", _row("a", infra=True).model_dump_json(),
             _row("b").model_dump_json(), _row("stale").model_dump_json()]
    raw = ("\n".join(lines) + "\n" + '{"id": "c", "sta').encode()
    for store_cls, name in ((IdStore, "ids"), (ResultStore, "rows")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "v.jsonl").write_bytes(raw)
        store = store_cls(tmp_path / name / "v.jsonl")
        assert list(store.load()) == ["b", "a", "stale"]
        assert len(store.repaired) == 3
    ids = IdStore(tmp_path / "ids" / "v.jsonl")
    assert ids.load()["a"].infra_fault and not ids.rows["b"].infra_fault and ids.repaired == []  # already repaired
    assert (tmp_path / "ids" / "v.jsonl").read_bytes() == (tmp_path / "rows" / "v.jsonl").read_bytes()
    assert ids.drop(["a", "zzz"]) == 1 and "a" not in ids.rows
    ids.append(_row("c"))
    ids.append(_row("a"))
    ids.append(_row("c"))  # a second row for an id is ignored
    assert ids.finalize(iter(["a", "b", "c", "d"])) == 3
    ids.close()
    assert [json.loads(x)["id"] for x in (tmp_path / "ids" / "v.jsonl").read_text().splitlines()] == ["a", "b", "c"]
    rows = ResultFile(tmp_path / "ids" / "v.jsonl", 3)
    assert [r.id for r in rows] == ["a", "b", "c"] and len(rows) == 3
    assert rows[1].id == "b" and rows[-1].id == "c" and [r.id for r in rows[:2]] == ["a", "b"]


def test_finalize_leaves_a_file_already_in_input_order_alone(tmp_path: Path):
    p = tmp_path / "v.jsonl"
    store = IdStore(p)
    for i in ("x", "y"):
        store.append(_row(i))
    store.close()
    before = p.stat().st_ino
    assert store.finalize(["x", "y"]) == 2 and p.stat().st_ino == before
