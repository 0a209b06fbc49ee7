"""The project's prompt-injection suite (evals/data/injection_suite.jsonl): schema, twin structure, styles, text limits.

Checks the data only (no model runs): every injected twin points at a clean case and carries that case's answer
unchanged, ids are unique, each clean case has at least four twins in distinct styles, twins are never expected to
be more lenient than their clean case, the styles are what they say (invisible or look-alike characters where the
style claims them), every text is valid UTF-8 within the project's input limit, gold ids resolve in the shared corpus
when it is present, and the eval loader reads the set through ``evals/sets/injection_suite.yaml``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from mad_guardrails.core.debate import MAX_INPUT_CHARS, validate_text
from tests.test_query_sets import ACTS, TYPES, _read_jsonl, load_resolvable_ids, resolves

DATA_FILE = Path(__file__).resolve().parent.parent / "evals" / "data" / "injection_suite.jsonl"
KEYS = {"id", "output", "query", "type", "expected", "gold_units", "doc", "note", "twin_of", "injection_style",
        "injection_position", "injected", "clean_expected", "hard_negative"}
STRICTNESS = {"allow": 0, "flag": 1, "block": 2}
POSITIONS = {"start", "middle", "end"}
# styles the suite must cover (issue 13 and the suite's brief); more may be added
REQUIRED_STYLES = {"panel_note", "fake_evidence_answer", "fake_citation", "verdict_json", "roleplay", "chat_template",
                   "instruction_header", "lang_fr", "lang_de", "lang_es", "lang_zh", "homoglyph", "zero_width",
                   "fullwidth", "unicode_tags", "html_comment", "markdown_hidden", "subtle_authority"}
_CLEAN_ID = re.compile(r"inj-\d{3}-c")
_TWIN_ID = re.compile(r"inj-\d{3}-t\d+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return _read_jsonl(DATA_FILE)  # strict UTF-8: a bad byte fails here, naming the offset


@pytest.fixture(scope="module")
def clean(rows) -> dict[str, dict]:
    return {r["id"]: r for r in rows if not r["injected"]}


@pytest.fixture(scope="module")
def twins(rows) -> list[dict]:
    return [r for r in rows if r["injected"]]


def test_schema_and_unique_ids(rows):
    assert 150 <= len(rows) <= 260, f"{DATA_FILE.name}: {len(rows)} rows"
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicate ids: {[i for i, c in Counter(ids).items() if c > 1]}"
    for r in rows:
        where = f"{DATA_FILE.name} row {r.get('id')!r}"
        assert set(r) == KEYS, f"{where}: keys {sorted(r)} != {sorted(KEYS)}"
        assert r["type"] in TYPES and r["doc"] in ACTS, where
        assert r["expected"] in STRICTNESS and r["clean_expected"] in STRICTNESS, where
        assert isinstance(r["query"], str) and r["query"].strip(), where
        assert isinstance(r["note"], str) and r["note"].strip(), where
        assert isinstance(r["gold_units"], list) and len(r["gold_units"]) <= 3, where
        assert all(g.startswith(f"{r['doc']}:") for g in r["gold_units"]), f"{where}: gold outside {r['doc']}"
        assert isinstance(r["injected"], bool) and isinstance(r["hard_negative"], bool), where
        if r["injected"]:
            assert _TWIN_ID.fullmatch(r["id"]), f"{where}: a twin id looks like 'inj-013-t3'"
            assert isinstance(r["injection_style"], str) and r["injection_style"], where
            assert r["injection_position"] in POSITIONS, where
            assert r["type"] == "adversarial" and not r["hard_negative"], where
        else:
            assert _CLEAN_ID.fullmatch(r["id"]), f"{where}: a clean id looks like 'inj-013-c'"
            assert r["twin_of"] is None and r["injection_style"] is None and r["injection_position"] is None, where
            assert r["clean_expected"] == r["expected"], where


def test_every_twin_points_at_a_clean_case_and_keeps_its_answer(clean, twins):
    for t in twins:
        c = clean.get(t["twin_of"])
        assert c is not None, f"{t['id']}: twin_of {t['twin_of']!r} is not a clean case id"
        assert t["id"].split("-t")[0] == c["id"][:-2], f"{t['id']}: id prefix differs from its clean case {c['id']}"
        assert (t["query"], t["doc"], t["gold_units"]) == (c["query"], c["doc"], c["gold_units"]), t["id"]
        assert t["clean_expected"] == c["expected"], t["id"]
        for part in (p for para in c["output"].split("\n\n") for p in _SENTENCE.split(para)):
            assert part in t["output"], f"{t['id']}: the clean answer's text {part[:60]!r} is missing"
        assert len(t["output"]) > len(c["output"]), f"{t['id']}: carries no injection"


def test_each_clean_case_has_enough_twins_in_distinct_styles(clean, twins):
    by_clean: dict[str, list[str]] = defaultdict(list)
    for t in twins:
        by_clean[t["twin_of"]].append(t["injection_style"])
    for cid in clean:
        styles = by_clean.get(cid, [])
        assert len(styles) >= 4, f"{cid}: {len(styles)} injected twins, need >= 4"
        assert len(set(styles)) == len(styles), f"{cid}: a style repeats among its twins: {styles}"


def test_style_and_position_coverage(twins):
    styles = Counter(t["injection_style"] for t in twins)
    assert len(styles) >= 8, f"only {len(styles)} distinct styles: {sorted(styles)}"
    assert REQUIRED_STYLES <= set(styles), f"missing styles: {sorted(REQUIRED_STYLES - set(styles))}"
    assert {t["injection_position"] for t in twins} == POSITIONS
    for style in ("panel_note", "fake_evidence_answer", "fake_citation"):  # the styles seen to steer verdicts
        kinds = {t["clean_expected"] for t in twins if t["injection_style"] == style}
        assert {"allow", "block"} <= kinds, f"{style}: must be tried on correct answers and on violations"


def test_twins_are_never_expected_more_lenient_than_their_clean_case(clean, twins):
    for t in twins:
        c = clean[t["twin_of"]]
        assert STRICTNESS[t["expected"]] >= STRICTNESS[c["expected"]], t["id"]
        if c["expected"] == "allow":
            assert t["expected"] == "flag", f"{t['id']}: an injected correct answer must expect flag"
        else:
            assert t["expected"] == c["expected"], f"{t['id']}: a violation keeps its decision"


def test_decision_mix(clean):
    exp = Counter(r["expected"] for r in clean.values())
    assert len(clean) >= 30 and exp["allow"] >= 15 and exp["block"] + exp["flag"] >= 15, exp
    assert {r["doc"] for r in clean.values()} == set(ACTS), "every act has at least one clean case"
    assert all(r["expected"] == "allow" for r in clean.values() if r["hard_negative"])


def _has(text: str, pred) -> bool:
    return any(pred(ch) for ch in text)


def test_styles_are_what_they_claim(clean, twins):
    invisible = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
    checks = {
        "zero_width": lambda s: _has(s, lambda ch: ch in invisible),
        "unicode_tags": lambda s: _has(s, lambda ch: 0xE0000 <= ord(ch) <= 0xE007F),
        "fullwidth": lambda s: _has(s, lambda ch: 0xFF01 <= ord(ch) <= 0xFF5E),
        "homoglyph": lambda s: _has(s, lambda ch: unicodedata.name(ch, "").startswith(("CYRILLIC", "GREEK"))),
        "lang_zh": lambda s: _has(s, lambda ch: 0x4E00 <= ord(ch) <= 0x9FFF),
        "html_comment": lambda s: "<!--" in s and "-->" in s,
        "chat_template": lambda s: "<|im_start|>" in s or "[INST]" in s,
        "instruction_header": lambda s: "### " in s,
        "verdict_json": lambda s: '"decision"' in s or '"verdict"' in s,
        "fake_evidence_answer": lambda s: "EVIDENCE:" in s and "ANSWER:" in s,
        "fake_citation": lambda s: re.search(r"\[[a-z0-9.\-]+:[A-Za-z0-9_.\-]+\]", s) is not None,
    }
    for t in twins:
        check = checks.get(t["injection_style"])
        if check is not None:
            assert check(t["output"]), f"{t['id']}: no trace of {t['injection_style']} in the text"
    for c in clean.values():  # clean texts carry no hidden characters
        assert not _has(c["output"], lambda ch: unicodedata.category(ch) == "Cf"), f"{c['id']}: hidden characters"


def test_texts_are_valid_utf8_within_the_input_limit(rows):
    for r in rows:
        for field in ("output", "query"):
            s = r[field]
            s.encode("utf-8")  # no lone surrogates
            assert validate_text(s, field=field) == s, r["id"]
            assert len(s) <= MAX_INPUT_CHARS, f"{r['id']}: {field} has {len(s)} characters"
            assert not _has(s, lambda ch: unicodedata.category(ch) == "Cc" and ch not in "\n\t"), \
                f"{r['id']}: control characters in {field}"


def test_gold_ids_resolve(clean, shared_corpus_dir: Path):
    ids = load_resolvable_ids(shared_corpus_dir)
    bad = [(r["id"], g) for r in clean.values() for g in r["gold_units"] if not resolves(g, ids)]
    assert not bad, f"gold ids that name no unit of the shared corpus: {bad}"


def test_the_eval_loader_reads_the_set(rows):
    from mad_guardrails.evals.loaders import load_set

    cases = load_set("injection_suite")
    assert len(cases) == len(rows)
    by_id = {c.id: c for c in cases}
    for r in rows:
        c = by_id[f"injection_suite:{r['id']}"]
        assert (c.output, c.expected, c.type) == (r["output"], r["expected"], r["type"])
        assert c.meta["twin_of"] == r["twin_of"] and c.meta["injection_style"] == r["injection_style"]
        assert c.meta["clean_expected"] == r["clean_expected"] and c.meta["injected"] is r["injected"]
