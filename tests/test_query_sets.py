"""The hand-written query sets in evals/data: schema, balance, and (when the shared corpus is present) gold resolution.

Gold ids follow the project's unit id scheme (see evals/data/README.md). The resolver below is deliberately light: it
reads the shared JSONL files directly with ``json`` so the query sets can be checked without the ingest code.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "evals" / "data"
REG_FILE = DATA / "regulatory_queries.jsonl"
OFF_FILE = DATA / "offtopic_queries.jsonl"

ACTS = ("eu-ai-act", "nis2", "dora", "gdpr", "cra", "nist-ai-rmf", "nist-csf-2.0", "nist-ai-600-1")
EU_ACTS = ("eu-ai-act", "nis2", "dora", "gdpr", "cra")
TYPES = {"benign_sensitive", "ambiguous", "adversarial"}
STYLES = {"colloquial", "formal"}
REG_KEYS = {"id", "query", "type", "gold", "doc", "style", "note"}

# EU unit ids: art_N / rct_N / anx_<roman lowercase>, optionally followed by .paragraph[.point[.subpoint]]
_EU_ID = re.compile(r"^(?P<top>(?:art|rct)_\d+|anx_[ivxlc]+)(?:\.[0-9a-z]+){0,3}$")


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:  # pragma: no cover - message for the person editing the file
            raise AssertionError(f"{path}:{n}: not valid JSON ({e}); fix that line") from e
    return rows


@pytest.fixture(scope="module")
def reg_rows() -> list[dict]:
    return _read_jsonl(REG_FILE)


@pytest.fixture(scope="module")
def off_rows() -> list[dict]:
    return _read_jsonl(OFF_FILE)


# --------------------------------------------------------------------------------------------- light gold resolver


def _eu_top_ids(corpus: Path, doc: str) -> set[str]:
    files = sorted((corpus / doc).glob("*_units.jsonl"))
    assert files, f"no *_units.jsonl under {corpus / doc}"
    ids = set()
    for f in files:
        for r in _read_jsonl(f):
            uid = r["unit_id"]
            # the shared JSONL spells annexes in upper case (anx_III); the project's id scheme uses lower case
            ids.add(uid.lower() if uid.lower().startswith("anx_") else uid)
    return ids


def load_resolvable_ids(corpus: Path) -> dict[str, set[str]]:
    """Top-level unit ids per act, as the id scheme names them."""
    out = {doc: _eu_top_ids(corpus, doc) for doc in EU_ACTS}
    out["nist-ai-rmf"] = {
        r["id"].replace(" ", "-") for r in _read_jsonl(corpus / "nist-ai-rmf" / "nist_ai_rmf_1.0_core.jsonl")
    }
    out["nist-csf-2.0"] = {r["id"] for r in _read_jsonl(corpus / "nist-csf-2.0" / "nist_csf_2.0_core.jsonl")}
    risks = _read_jsonl(corpus / "nist-ai-600-1" / "nist_ai_600-1_gai_risks.jsonl")
    actions = _read_jsonl(corpus / "nist-ai-600-1" / "nist_ai_600-1_suggested_actions.jsonl")
    out["nist-ai-600-1"] = {f"risk_{i}" for i in range(1, len(risks) + 1)} | {a["action_id"] for a in actions}
    return out


def resolves(gold: str, ids: dict[str, set[str]]) -> bool:
    """True when ``gold`` names a unit of the shared corpus; paragraph/point golds resolve to their article."""
    doc, _, local = gold.partition(":")
    if doc not in ids or not local:
        return False
    if doc in EU_ACTS:
        m = _EU_ID.match(local)
        return bool(m) and m.group("top") in ids[doc]
    return local in ids[doc]


@pytest.fixture(scope="module")
def resolvable(shared_corpus_dir: Path) -> dict[str, set[str]]:
    return load_resolvable_ids(shared_corpus_dir)


# --------------------------------------------------------------------------------------------- regulatory queries


def test_regulatory_schema_and_ids(reg_rows):
    assert len(reg_rows) >= 150, f"{REG_FILE.name}: only {len(reg_rows)} queries, need >= 150"
    for r in reg_rows:
        where = f"{REG_FILE.name} row {r.get('id')!r}"
        assert set(r) == REG_KEYS, f"{where}: keys {sorted(r)} != {sorted(REG_KEYS)}"
        assert re.fullmatch(r"q\d{3,}", r["id"]), f"{where}: id must look like 'q001'"
        assert isinstance(r["query"], str) and len(r["query"].strip()) >= 10, f"{where}: query too short"
        assert r["type"] in TYPES, f"{where}: type {r['type']!r} not in {sorted(TYPES)}"
        assert r["style"] in STYLES, f"{where}: style {r['style']!r} not in {sorted(STYLES)}"
        assert r["doc"] in ACTS, f"{where}: doc {r['doc']!r} not in {ACTS}"
        assert isinstance(r["note"], str) and r["note"].strip(), f"{where}: note must explain the gold"
        assert isinstance(r["gold"], list) and 1 <= len(r["gold"]) <= 3, f"{where}: gold must list 1-3 unit ids"
        assert len(set(r["gold"])) == len(r["gold"]), f"{where}: duplicate gold ids"
        for g in r["gold"]:
            assert g.startswith(r["doc"] + ":"), f"{where}: gold {g!r} is not a unit of doc {r['doc']!r}"
    ids = [r["id"] for r in reg_rows]
    dup_ids = [i for i, c in Counter(ids).items() if c > 1]
    assert not dup_ids, f"{REG_FILE.name}: duplicate ids {dup_ids}"
    dup_q = [q for q, c in Counter(r["query"].strip().lower() for r in reg_rows).items() if c > 1]
    assert not dup_q, f"{REG_FILE.name}: duplicate queries {dup_q}"


def test_regulatory_coverage_and_balance(reg_rows):
    per_act = Counter(r["doc"] for r in reg_rows)
    thin = {a: per_act.get(a, 0) for a in ACTS if per_act.get(a, 0) < 12}
    assert not thin, f"{REG_FILE.name}: acts with fewer than 12 queries: {thin}"
    n = len(reg_rows)
    colloquial = sum(r["style"] == "colloquial" for r in reg_rows) / n
    assert colloquial >= 0.45, f"{REG_FILE.name}: only {colloquial:.0%} colloquial queries, need >= 45%"
    # target mix 35 / 30 / 35 %; allow a generous band so small edits don't break the test
    shares = {t: sum(r["type"] == t for r in reg_rows) / n for t in TYPES}
    off = {t: f"{s:.0%}" for t, s in shares.items() if not 0.20 <= s <= 0.45}
    assert not off, f"{REG_FILE.name}: type shares outside 20-45%: {off}"


def test_every_gold_resolves_in_shared_corpus(reg_rows, resolvable):
    missing = [(r["id"], g) for r in reg_rows for g in r["gold"] if not resolves(g, resolvable)]
    assert not missing, f"{REG_FILE.name}: gold ids not found in the shared corpus: {missing}"


def test_resolver_rejects_unknown_units(resolvable):
    # the resolver must be able to say no, otherwise the test above proves nothing
    for bad in ("eu-ai-act:art_114", "eu-ai-act:anx_xiv", "cra:rct_1", "gdpr:art_5x", "nist-ai-600-1:risk_13",
                "nist-ai-600-1:GV-9.9-001", "nist-ai-rmf:GOVERN 1.1", "nist-csf-2.0:GV.XX-01", "nist-sp-1270:sec_1",
                "eu-ai-act", "dora:anx_i"):
        assert not resolves(bad, resolvable), bad
    for good in ("eu-ai-act:art_5", "eu-ai-act:art_5.1.c.ii", "eu-ai-act:anx_iii.1.a", "nis2:rct_1", "dora:art_19.4",
                 "nist-ai-rmf:MAP-2", "nist-csf-2.0:GV.SC", "nist-ai-600-1:risk_12", "nist-ai-600-1:GV-1.1-001"):
        assert resolves(good, resolvable), good


# --------------------------------------------------------------------------------------------- off-topic queries


def test_offtopic_schema(off_rows, reg_rows):
    assert len(off_rows) >= 40, f"{OFF_FILE.name}: only {len(off_rows)} queries, need >= 40"
    for r in off_rows:
        where = f"{OFF_FILE.name} row {r.get('id')!r}"
        assert set(r) == {"id", "query", "type"}, f"{where}: keys {sorted(r)} != ['id', 'query', 'type']"
        assert re.fullmatch(r"o\d{3,}", r["id"]), f"{where}: id must look like 'o001'"
        assert r["type"] == "offtopic", f"{where}: type must be 'offtopic'"
        assert isinstance(r["query"], str) and len(r["query"].strip()) >= 5, f"{where}: query too short"
    ids = [r["id"] for r in off_rows]
    assert len(set(ids)) == len(ids), f"{OFF_FILE.name}: duplicate ids"
    queries = {r["query"].strip().lower() for r in off_rows}
    assert len(queries) == len(off_rows), f"{OFF_FILE.name}: duplicate queries"
    assert not queries & {r["query"].strip().lower() for r in reg_rows}, "a query appears in both sets"
