"""Policy packs: built-in coverage, loader (errors with file:line, duplicates, user packs), validation, as_units,
CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mad_guardrails.policies.loader import BUILTIN_DIR, PolicyError, load_packs, read_pack_file
from mad_guardrails.policies.provisions import JsonlProvisions, split_article
from mad_guardrails.policies.validate import validate_sources

RULE = """\
  - id: {id}
    title: {title}
    summary: A test rule.
    kind: obligation
    provisions: [nis2:art_21.1]
    severity: {severity}
    default_action: flag
    applies_from: 2024-10-18
    triggers: [test trigger]
    examples:
      - {{label: violates, text: bad}}
      - {{label: respects, text: good}}
"""


def write_pack(d: Path, name: str, rules: list[dict], pack_id: str | None = None, extra: str = "") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    body = "".join(RULE.format(**{"title": "Test rule", "severity": "medium", **r}) for r in rules)
    text = f"id: {pack_id or name}\ntitle: Test pack\nact: nis2\n{extra}rules:\n{body}" if rules else \
        f"id: {pack_id or name}\ntitle: Test pack\nact: nis2\n{extra}"
    p = d / f"{name}.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def builtin():
    return load_packs(["builtin"])


# ------------------------------------------------------------------------------------------------ built-in packs
def test_builtin_packs_cover_the_eight_acts_and_sp1270(builtin):
    assert set(builtin.acts()) == {"eu-ai-act", "nis2", "dora", "gdpr", "cra", "nist-ai-rmf", "nist-ai-600-1",
                                   "nist-csf-2.0", "nist-sp-1270"}
    ids = [r.id for r in builtin.all_rules]
    assert len(ids) == len(set(ids))
    for r in builtin.rules:
        assert {e.label for e in r.examples} >= {"violates", "respects"}, r.id
        assert r.triggers and r.applies_from, r.id
        assert r.id.startswith(r.act + "."), r.id


def test_every_art5_prohibition_is_its_own_rule(builtin):
    owners = {}
    for point in "abcdefgh":
        pid = f"eu-ai-act:art_5.1.{point}"
        hits = [r.id for r in builtin.by_act("eu-ai-act") if pid in r.provisions and r.kind == "prohibition"]
        assert len(hits) == 1, (pid, hits)
        owners[point] = hits[0]
    assert len(set(owners.values())) == 8


def test_required_articles_are_covered(builtin):
    by_act: dict[str, set[str]] = {}
    for r in builtin.rules:
        for p in r.provisions:
            doc, local = p.split(":", 1)
            by_act.setdefault(doc, set()).add(local.split(".")[0])
    assert {"art_6", "anx_iii", "art_9", "art_10", "art_11", "art_12", "art_13", "art_14", "art_15", "art_16",
            "art_17", "art_26", "art_27", "art_43", "art_49", "art_50", "art_53", "art_55",
            "art_73"} <= by_act["eu-ai-act"]
    assert {"art_20", "art_21", "art_23"} <= by_act["nis2"]
    assert {"art_13", "art_14", "anx_i"} <= by_act["cra"]
    assert {"art_5", "art_6", "art_18", "art_19", "art_28", "art_29", "art_30"} <= by_act["dora"]
    assert {"art_5", "art_6", "art_9", "art_22", "art_33", "art_34", "art_35"} <= by_act["gdpr"]
    assert {f"risk_{i}" for i in range(1, 13)} <= by_act["nist-ai-600-1"]
    csf_cats = {"GV.OC", "GV.RM", "GV.RR", "GV.PO", "GV.OV", "GV.SC", "ID.AM", "ID.RA", "ID.IM", "PR.AA", "PR.AT",
                "PR.DS", "PR.PS", "PR.IR", "DE.CM", "DE.AE", "RS.MA", "RS.AN", "RS.CO", "RS.MI", "RC.RP", "RC.CO"}
    assert csf_cats <= {p.split(":", 1)[1] for r in builtin.by_act("nist-csf-2.0") for p in r.provisions}
    rmf_cats = {f"{f}-{i}" for f, n in (("GOVERN", 6), ("MAP", 5), ("MEASURE", 4), ("MANAGE", 4))
                for i in range(1, n + 1)}
    assert rmf_cats <= {p.split(":", 1)[1] for r in builtin.by_act("nist-ai-rmf") for p in r.provisions}


@pytest.mark.parametrize("rule_id,facts", [
    ("nis2.art23.incident_reporting", {(24, "hours"), (72, "hours"), (1, "months")}),
    ("eu-ai-act.art73.serious_incident_reporting", {(15, "days"), (2, "days"), (10, "days")}),
    ("cra.art14.exploited_vulnerability_reporting", {(24, "hours"), (72, "hours"), (14, "days")}),
    ("cra.art14.severe_incident_reporting", {(24, "hours"), (72, "hours"), (1, "months")}),
    ("gdpr.art33.breach_notification_authority", {(72, "hours")}),
])
def test_deadline_key_facts(builtin, rule_id, facts):
    r = builtin.get(rule_id)
    assert {(f.value, f.unit) for f in r.key_facts} == facts
    assert all(f.terms and f.quote and f.provision in r.provisions for f in r.key_facts)


def test_application_dates(builtin):
    def dates(rule_id):
        return {f.value for f in builtin.get(rule_id).key_facts}

    assert dates("eu-ai-act.timeline") == {"2025-02-02", "2025-08-02", "2026-08-02", "2027-08-02"}
    assert dates("cra.timeline") >= {"2026-09-11", "2027-12-11"}
    assert "2025-01-17" in dates("dora.timeline") and "2018-05-25" in dates("gdpr.timeline")
    assert "2024-10-18" in dates("nis2.timeline")
    assert str(builtin.get("eu-ai-act.art5.social_scoring").applies_from) == "2025-02-02"
    assert str(builtin.get("eu-ai-act.art53.gpai_provider_obligations").applies_from) == "2025-08-02"
    assert str(builtin.get("eu-ai-act.art26.deployer_obligations").applies_from) == "2026-08-02"


def test_key_fact_scope_keeps_acts_apart(builtin):
    cra_text = "Under the CRA, for an actively exploited vulnerability the final report is due within 14 days."
    in_scope = {r.id for r, f in builtin.key_facts_in_scope(cra_text) if "final report" in f.terms}
    assert "cra.art14.exploited_vulnerability_reporting" in in_scope
    assert "nis2.art23.incident_reporting" not in in_scope


def test_sp1270_pack_is_marked_unverifiable(builtin):
    pack = next(p for p in builtin.packs if p.act == "nist-sp-1270")
    assert pack.unverifiable_offline and "offline" in pack.unverifiable_reason
    names = {r.id for r in builtin.by_act("nist-sp-1270")}
    assert {"nist-sp-1270.systemic_bias", "nist-sp-1270.statistical_computational_bias",
            "nist-sp-1270.human_cognitive_bias"} <= names


# ------------------------------------------------------------------------------------------------ as_units
def test_as_units_ids_and_text(builtin):
    units = builtin.as_units()
    assert len(units) == len(builtin.rules)
    u = next(u for u in units if u.id == "policy:nis2.art23.incident_reporting")
    assert u.doc == "policy" and u.kind == "policy_rule" and u.local_id == "nis2.art23.incident_reporting"
    assert "24 hours" in u.text and "nis2:art_23.4.a" in u.text and "breaks this rule" in u.text
    assert builtin.get("policy:nis2.art23.incident_reporting") is not None


# ------------------------------------------------------------------------------------------------ loader errors
def test_schema_error_names_file_line_rule_and_fix(tmp_path):
    p = write_pack(tmp_path, "bad", [{"id": "nis2.test.one"}, {"id": "nis2.test.two", "severity": "extreme"}])
    line = next(i for i, ln in enumerate(p.read_text().splitlines(), 1) if "severity: extreme" in ln)
    with pytest.raises(PolicyError) as e:
        load_packs([str(tmp_path)])
    msg = str(e.value)
    assert msg.startswith(f"{p}:{line}: rule nis2.test.two: field 'severity'")
    assert "Fix: use one of the allowed values" in msg and "'critical'" in msg


def test_unknown_field_and_bad_date_are_located(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(textwrap.dedent("""\
        id: p
        title: P
        act: nis2
        rules:
          - id: nis2.x.y
            title: T
            summary: S
            kind: obligation
            provisions: [nis2:art_21.1]
            applies_from: 18 October 2024
            severty: high
        """))
    parsed = read_pack_file(p)
    got = {(pr.line, pr.rule_id) for pr in parsed.problems}
    assert (10, "nis2.x.y") in got and (11, "nis2.x.y") in got
    texts = " ".join(str(pr) for pr in parsed.problems)
    assert "YYYY-MM-DD" in texts and "'severty'" in texts


def test_yaml_syntax_error_has_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("id: x\ntitle: X\nact: nis2\nrules:\n  - id: a.b\n    title: [unclosed\n    summary: s\n")
    with pytest.raises(PolicyError) as e:
        load_packs([str(p)])
    assert str(e.value).startswith(f"{p}:") and "not valid YAML" in str(e.value) and "Fix:" in str(e.value)


def test_duplicate_id_within_a_source_is_an_error(tmp_path):
    write_pack(tmp_path, "a", [{"id": "nis2.dup.rule"}])
    b = write_pack(tmp_path, "b", [{"id": "nis2.dup.rule"}])
    with pytest.raises(PolicyError) as e:
        load_packs([str(tmp_path)])
    assert "duplicate id" in str(e.value) and str(b) in str(e.value) and "a.yaml" in str(e.value)
    rep = validate_sources([str(tmp_path)], corpus=False)
    assert any("duplicate id" in p.message for p in rep.errors)


# ------------------------------------------------------------------------------------------------ user packs
def test_user_pack_adds_disables_and_overrides(tmp_path, builtin):
    user = tmp_path / "mine"
    write_pack(user, "company", [
        {"id": "acme.internal.no_customer_names", "title": "No customer names in outputs"},
        {"id": "nis2.art23.incident_reporting", "title": "Our stricter incident rule", "severity": "critical"},
    ], pack_id="acme", extra="disable: [gdpr.art83.fines, nist-csf-2.0.core]\n")
    ps = load_packs(["builtin", str(user)])
    assert ps.get("acme.internal.no_customer_names") is not None
    over = ps.get("nis2.art23.incident_reporting")
    assert over.title == "Our stricter incident rule" and over.pack == "acme" and over.severity == "critical"
    assert ps.origins[over.id].file.endswith("company.yaml") and ps.replaced[over.id][0].pack == "nis2"
    assert ps.get("gdpr.art83.fines") is None and ps.get("gdpr.art83.fines", include_disabled=True) is not None
    assert ps.get("nist-csf-2.0.core.structure") is None  # disabled by id prefix
    assert "policy:gdpr.art83.fines" not in {u.id for u in ps.as_units()}
    assert len(ps.rules) == len(builtin.rules) + 1 - 2
    packs = {p.id: p for p in ps}  # iterating a PolicySet yields the packs as in force
    assert "nis2.art23.incident_reporting" not in {r.id for r in packs["nis2"].rules}
    assert {r.id for r in packs["acme"].rules} == {"acme.internal.no_customer_names", "nis2.art23.incident_reporting"}


def test_disabled_and_overrides_arguments(builtin):
    ps = load_packs(["builtin"], disabled=["nist-sp-1270", "gdpr.timeline"],
                    overrides={"dora.art6.ict_risk_management_framework": {"default_action": "block"}})
    assert not ps.by_act("nist-sp-1270") and ps.get("gdpr.timeline") is None
    assert ps.get("dora.art6.ict_risk_management_framework").default_action == "block"
    with pytest.raises(PolicyError, match="cannot disable 'nis2.no.such'"):
        load_packs(["builtin"], disabled=["nis2.no.such"])
    with pytest.raises(PolicyError, match="override of rule"):
        load_packs(["builtin"], overrides={"gdpr.timeline": {"severity": "huge"}})
    with pytest.raises(PolicyError, match="cannot override"):
        load_packs(["builtin"], overrides={"gdpr.timeline": {"colour": "red"}})


def test_user_pack_disable_of_unknown_id_is_an_error(tmp_path):
    p = write_pack(tmp_path, "offpack", [], pack_id="offpack", extra="disable: [nis2.not.a.rule]\n")
    with pytest.raises(PolicyError) as e:
        load_packs(["builtin", str(p)])
    assert f"{p}:4" in str(e.value) and "Fix:" in str(e.value)


# ------------------------------------------------------------------------------------------------ validation
def test_builtin_packs_validate_clean_against_shared_corpus(shared_corpus_dir):
    rep = validate_sources(["builtin"], corpus=shared_corpus_dir)
    assert rep.errors == [], "\n".join(map(str, rep.errors))
    assert rep.warnings == [], "\n".join(map(str, rep.warnings))
    assert rep.checked_provisions > 300 and rep.checked_quotes > 40
    assert rep.unverifiable and all(":" in p.message and "nist-sp-1270:" in p.message for p in rep.unverifiable)


def test_validate_reports_missing_provision_and_non_verbatim_quote(tmp_path, shared_corpus_dir):
    p = tmp_path / "q.yaml"
    p.write_text(textwrap.dedent("""\
        id: q
        title: Q
        act: nis2
        rules:
          - id: nis2.q.rule
            title: T
            summary: S
            kind: reporting_deadline
            provisions: [nis2:art_23.4.a, nis2:art_23.99]
            applies_from: 2024-10-18
            triggers: [x]
            key_facts:
              - name: early warning
                value: 24
                unit: hours
                provision: nis2:art_23.4.a
                quote: "within 48 hours of becoming aware"
                terms: [early warning]
              - name: elsewhere
                value: 72
                unit: hours
                provision: nis2:art_23.4.b
                terms: [incident notification]
            examples:
              - {label: violates, text: a}
              - {label: respects, text: b}
        """))
    rep = validate_sources([str(p)], corpus=shared_corpus_dir)
    errs = {(e.line, e.message.split(" ")[0]) for e in rep.errors}
    msgs = [str(e) for e in rep.errors]
    assert any(s.startswith(f"{p}:9: rule nis2.q.rule: provision nis2:art_23.99 does not exist") for s in msgs), msgs
    assert any(s.startswith(f"{p}:17: rule nis2.q.rule: quote of key fact 'early warning' is not verbatim")
               and "within 24 hours of becoming aware" in s for s in msgs), msgs
    assert any(e.line == 22 and "do not list" in e.message for e in rep.errors), errs


def test_cli_validate_exit_codes(tmp_path):
    from typer.testing import CliRunner

    from mad_guardrails.guardrails.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["policies", "validate", "--no-corpus", "-q"])
    assert ok.exit_code == 0, ok.output
    write_pack(tmp_path, "bad", [{"id": "nis2.a.b", "severity": "extreme"}])
    bad = runner.invoke(app, ["policies", "validate", str(tmp_path), "--no-corpus"])
    assert bad.exit_code == 1
    assert "bad.yaml:" in bad.output and "rule nis2.a.b" in bad.output and "Fix:" in bad.output
    shown = runner.invoke(app, ["policies", "show", "gdpr.art33.breach_notification_authority", "--json"])
    assert shown.exit_code == 0 and '"value": 72' in shown.output
    listed = runner.invoke(app, ["policies", "list", "--act", "cra", "--json"])
    assert listed.exit_code == 0 and "cra.art14.exploited_vulnerability_reporting" in listed.output


# ------------------------------------------------------------------------------------------------ provisions
def test_split_article_points_subpoints_and_parts():
    text = "1. Intro:\n(a) first;\n(b) second with:\n(i) one;\n(ii) two;\n(c) third.\nClosing words.\n2. Next."
    parts = split_article(text)
    assert set(parts) == {"1", "1.a", "1.b", "1.b.i", "1.b.ii", "1.c", "2"}
    assert "Closing words." in parts["1"] and "Closing words." not in parts["1.c"]
    annex = "Part I Props\n(1) Designed well.\n(2) Products shall:\n(a) x;\n(b) y;\nPart II Handling\n(1) SBOM;"
    p2 = split_article(annex)
    assert {"part_i.1", "part_i.2.a", "part_ii.1"} <= set(p2)
    eight = "1. List:\n" + "".join(f"({c}) item {c};\n" for c in "abcdefgh")
    p3 = split_article(eight + "  (i) sub of h;\n(i) ninth item;\n")  # indentation decides '(i)' after '(h)'
    assert p3["1.h.i"] == "(i) sub of h;" and p3["1.i"] == "(i) ninth item;" and "sub of h" in p3["1.h"]


def test_jsonl_provisions_agree_with_the_id_scheme(shared_corpus_dir):
    src = JsonlProvisions(shared_corpus_dir)
    assert "24 hours" in src.text("nis2:art_23.4.a")
    assert src.text("eu-ai-act:anx_iii.5.b").startswith("(b) AI systems intended to be used to evaluate the credit")
    assert src.text("cra:anx_i.part_ii.1").startswith("(1) identify and document vulnerabilities")
    assert src.text("nist-ai-rmf:GOVERN-1.1") and src.text("nist-ai-600-1:risk_12")
    assert src.text("eu-ai-act:art_5.1.i") is None


def test_builtin_dir_holds_one_pack_per_act():
    stems = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))
    assert stems == ["cra", "dora", "eu-ai-act", "gdpr", "nis2", "nist-ai-600-1", "nist-ai-rmf", "nist-csf-2.0",
                     "nist-sp-1270"]
