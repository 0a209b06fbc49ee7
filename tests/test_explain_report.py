"""The audit report shows what was verified: only confirmed quotes as quotations (✓), the debate with ✓/✗ per quote,
a rules column for flags, rows that filter / sort / search (one inline script, nothing loaded) and link to their case
cards, charts that fit a phone, infra-fault counts; the Markdown report neutralises HTML, links and images that come
from checked or model text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from mad_guardrails.core.debate import Argument, Claim, Quote
from mad_guardrails.core.verdict import Verdict, Violation
from mad_guardrails.guardrails.audit.report import render_html, render_markdown, summarize
from mad_guardrails.guardrails.audit.runner import ResultRow

EVIL = "See ![x](https://e.vil/p.png) and [click](https://e.vil/a) <img src=x onerror=alert(1)> www.e.vil"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _rows() -> list[ResultRow]:
    good = Quote(doc_id="nis2:art_23.4.a", text="in any event within 24 hours", verified=True)
    bad = Quote(doc_id="gdpr:art_5.1.e", text="The data subject must be provided with the least restrictive terms",
                verified=False)
    turn = Argument(role="prosecutor", round=1, stance="violation", confidence=0.8, claims=[
        Claim(text="The deadline is wrong.", quotes=[good], rule_id="nis2.early_warning"),
        Claim(text="Storage limitation is broken.", quotes=[bad])])
    flag = Verdict(decision="flag", path="debate", rationale="Flagged for review: allow against the debate.",
                   transcript=[turn], confidence=0.6)
    block = Verdict(decision="block", path="fast_block", rationale=EVIL, confidence=0.9, violations=[
        Violation(rule_id="nis2.early_warning", provisions=["nis2:art_23.4.a"], severity="high", verified=True,
                  quotes=[good], explanation=EVIL)])
    block_bad = Verdict(decision="flag", path="debate", confidence=0.5, violations=[
        Violation(rule_id="gdpr.storage", provisions=["gdpr:art_5.1.e"], severity="medium", verified=False,
                  quotes=[bad])])
    return [ResultRow(id="flag/1", status="ok", output="We have 72 hours.", verdict=flag.model_dump(mode="json")),
            ResultRow(id="block-1", status="ok", output=EVIL, verdict=block.model_dump(mode="json")),
            ResultRow(id="unverified", status="ok", output="x", verdict=block_bad.model_dump(mode="json")),
            ResultRow(id="broken", status="error", error="line 4: the check raised OSError: connection refused")]


def test_report_rows_filter_sort_link_to_cards_and_show_only_verified_quotes():
    rows = _rows()
    s = summarize(rows, title="t", input_path="in.jsonl", out_dir="out")
    html = render_html(s, rows)
    p = _Tags()
    p.feed(html)
    scripts = [a for t, a in p.tags if t == "script"]
    assert len(scripts) == 1 and not scripts[0].get("src")  # one inline script, nothing loaded
    assert not any(k in ("src", "href") and str(v).startswith(("http", "//")) for _, a in p.tags for k, v in a.items())
    ids = {a.get("id") for _, a in p.tags}
    for r in rows:  # every row links to its case card
        anchor = "case-" + re.sub(r"[^0-9A-Za-z_-]", "_", r.id)
        assert f'href="#{anchor}"' in html and anchor in ids, r.id
    assert {a.get("data-filter") for t, a in p.tags if t == "select"} == {"decision", "act", "rule", "path"}
    assert any(a.get("data-sort") == "conf" for _, a in p.tags) and 'id="q"' in html
    flag_row = next(a for t, a in p.tags if t == "tr" and a.get("data-id") == "flag/1")
    assert flag_row["data-rules"] == "~nis2.early_warning"  # a flag's rules column: what the debate argued
    assert "“in any event within 24 hours” <span class=\"ok\">✓</span>" in html
    assert "The data subject must be provided" not in html  # the unverified quote is marked ✗, never shown
    assert "✗ [gdpr:art_5.1.e]" in html
    assert "&lt;img src=x onerror" in html and "<img src=x" not in html
    assert "max-width: 640px" in html and "svg.chart { max-width" in html  # narrow screens
    if s.faults:  # the audit-faults counter is present: its infra count is on the page
        assert "infra faults" in html and s.faults.get("infra") == 1


def test_markdown_report_neutralises_links_images_and_html_from_checked_text():
    rows = _rows()
    s = summarize(rows, title="t", input_path="in.jsonl", out_dir="out")
    md = render_markdown(s, rows)
    assert "![x](" not in md and "[click](" not in md and "<img" not in md
    assert "https://" not in md and "www.e.vil" not in md  # no autolinks either
    assert '`[nis2:art_23.4.a]` "in any event within 24 hours" ✓' in md
    assert "The data subject must be provided" not in md
