"""The six evaluation axes of the seed coordinator on hand-made answers (exact numbers), ROUGE-L, the shipping rule,
and the CLI hook."""

from __future__ import annotations

import pytest

from mad_guardrails.agents.training.evaluate import Prediction, adapter_wins, evaluate, markdown_table
from mad_guardrails.agents.training.raft import RaftItem
from mad_guardrails.agents.training.rouge import best_rouge_l, lcs_length, rouge_l
from mad_guardrails.core.debate import Case
from mad_guardrails.core.units import Evidence
from mad_guardrails.verifier import Verifier

UNITS = {
    "d:art_1.1": "The provider shall keep the logs for six months after the incident.",
    "d:art_2.1": "Member States shall designate one authority for the supervision of this act.",
    "e:art_3.1": "The register shall be public and kept up to date by the agency.",
}
VERIFIER = Verifier(lookup=UNITS.get, known=lambda i: i in UNITS)


def _item(iid: str, oracle: str, shown: list[str], present: bool = True) -> RaftItem:
    ev = [Evidence(unit_id=u, doc=u.split(":")[0], text=UNITS[u], rank=n, score=1.0) for n, u in enumerate(shown, 1)]
    return RaftItem(id=iid, case=Case(output="some output"), rule_ids=[], evidence=ev, oracle_ids=[oracle],
                    oracle_present=present, expected="allow", gold=[UNITS[oracle]])


NORMAL = [_item("i1", "d:art_1.1", ["d:art_1.1", "d:art_2.1"]), _item("i2", "d:art_2.1", ["d:art_2.1", "e:art_3.1"]),
          _item("i3", "e:art_3.1", ["e:art_3.1", "d:art_1.1"]), _item("i4", "d:art_1.1", ["d:art_1.1", "e:art_3.1"])]
STRESS = [_item("i1", "d:art_1.1", ["d:art_2.1", "e:art_3.1"], present=False),
          _item("i2", "d:art_2.1", ["d:art_2.1", "e:art_3.1"])]


def _ans(quotes: list[tuple[str, str]], decision: str = "allow") -> str:
    ev = "\n".join(f'[{u}] "{q}"' for u, q in quotes)
    return f"EVIDENCE:\n{ev}\nANSWER:\ndecision: {decision}\nviolations: none\nrationale: ok.\nconfidence: 0.6"


BASE = {
    "normal": {"i1": _ans([("d:art_1.1", "keep the logs for six months")]),
               "i2": _ans([("d:art_2.1", "designate one authority for the supervision"),
                           ("d:art_2.1", "Member states shall designate one authority")]),  # 2nd: case near-miss
               "i3": "no idea",
               "i4": _ans([("e:art_3.1", "keep the logs for six months")], "flag")},  # right words, wrong id
    "stress": {"i1": _ans([("e:art_3.1", "kept up to date by the agency")], "flag"),
               "i2": _ans([("d:art_2.1", "Member states shall designate one authority")])},
}
ADAPTER = {
    "normal": {"i1": _ans([("d:art_1.1", "keep the logs for six months")]),
               "i2": _ans([("d:art_2.1", "designate one authority for the supervision")]),
               "i3": _ans([("e:art_3.1", "The register shall be public")]),
               "i4": _ans([("d:art_1.1", "the logs for six months after the incident")])},
    "stress": {"i1": _ans([("e:art_3.1", "kept up to date by the agency")], "flag"),
               "i2": _ans([("d:art_2.1", "Member States shall designate one authority")])},
}


def _preds(label: str, answers: dict) -> dict[str, list[Prediction]]:
    return {c: [Prediction(item_id=i, model=label, condition=c, text=t) for i, t in a.items()]
            for c, a in answers.items()}


def _report(adapter=ADAPTER):
    return evaluate({"normal": NORMAL, "stress": STRESS}, {"base": _preds("base", BASE),
                                                          "adapter": _preds("adapter", adapter)}, VERIFIER)


def test_rouge_l_is_lcs_based():
    assert lcs_length("a b c d e".split(), "a c e x".split()) == 3
    s = rouge_l("keep the logs for six months", UNITS["d:art_1.1"])
    assert (s.precision, s.recall) == (1.0, 0.5) and s.f == pytest.approx(2 / 3)
    assert rouge_l("Designate ONE authority!", "designate one authority").f == 1.0
    assert best_rouge_l("x y", ["a b", "x y z w"]).f == pytest.approx(2 / 3)


def test_six_axes_exact_numbers():
    rep = _report()
    b, a = rep.models["base"], rep.models["adapter"]
    # base: i1 exact; i2 one exact + one case near-miss; i3 unparseable; i4 a correct quote under the wrong id
    assert b.strict_verbatim == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-4)
    assert b.content_verbatim == pytest.approx((1 + 1 + 0) / 3, abs=1e-4)
    assert b.citation_validity == pytest.approx((1 + 1 + 0) / 3, abs=1e-4)
    assert b.rouge_l_030 == 0.75  # i1 0.67, i2 0.5, i3 0, i4 0.67 (ROUGE reads the words, not the id)
    assert b.false_refusals == 0.25
    assert b.strict_verbatim_stress == 0.5
    assert (b.parse_rate, b.answered, b.oracle_quoted, b.decision_accuracy) == (0.75, 0.75, 0.5, 0.5)
    assert (b.n_normal, b.n_stress) == (4, 2)
    assert (a.strict_verbatim, a.content_verbatim, a.citation_validity) == (1.0, 1.0, 1.0)
    assert (a.rouge_l_030, a.false_refusals, a.strict_verbatim_stress) == (1.0, 0.0, 1.0)
    assert rep.per_item["base"]["normal"][3]["citation"] == 0.0
    table = markdown_table(rep)
    assert "| strict_verbatim | 0.500 | 1.000 |" in table and "| false_refusals | 0.250 | 0.000 |" in table


def test_shipping_rule():
    wins, why = adapter_wins(_report())
    assert wins, why
    refuses = {"normal": {**ADAPTER["normal"], "i1": "EVIDENCE:\nnone\nANSWER:\ndecision: flag\nviolations: none\n"
                          "rationale: no evidence.\nconfidence: 0.1", "i2": "??"}, "stress": ADAPTER["stress"]}
    wins, why = adapter_wins(_report(refuses))
    assert not wins and any("false refusals" in w for w in why)
    same = adapter_wins(evaluate({"normal": NORMAL, "stress": STRESS},
                                 {"base": _preds("base", BASE), "adapter": _preds("adapter", BASE)}, VERIFIER))
    assert same[0] is False and "no gain on strict verbatim or citation validity" in same[1]


def test_missing_prediction_counts_as_a_failed_answer():
    rep = evaluate({"normal": NORMAL, "stress": []}, {"m": {"normal": _preds("m", BASE)["normal"][:1]}}, VERIFIER)
    m = rep.models["m"]
    assert m.false_refusals == 0.75 and m.strict_verbatim == 1.0 and m.strict_verbatim_stress is None


def test_cli_hook_registers_the_coordinator_group(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mad_guardrails.guardrails.commands.train_coordinator import register_coordinator

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """root"""

    register_coordinator(app)
    r = CliRunner().invoke(app, ["coordinator", "--help"])
    assert r.exit_code == 0
    for cmd in ("build", "sample", "select", "fit", "predict", "eval", "run"):
        assert cmd in r.output
