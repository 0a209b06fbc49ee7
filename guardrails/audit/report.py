"""Audit reports: ``summary.json``, a self-contained ``report.html`` and ``report.md`` for pull requests.

The HTML loads nothing: CSS and one small script are inline (filter the rows by decision, act, rule and path, search,
sort; without the script the table simply shows every row), the charts are SVG drawn here in Python and fit a phone's
width (labels above the bars). Each row links to its case card. Only quotes the verifier confirmed are shown as
quotations (✓); the Markdown report neutralises HTML, links and images that come from checked or model text.
Template: ``prompts/report.html.j2``.

    >>> svg = svg_stacked_bars("Decisions", [("nis2", {"block": 2, "allow": 1})], DECISION_SERIES)
    >>> svg.startswith("<svg") and "nis2" in svg and "block: 2" in svg
    True
"""

from __future__ import annotations

import html
import json
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mad_guardrails.core.records import read_models
from mad_guardrails.core.verdict import CheckResult, Verdict, cite_quote, hide_unverified, transcript_lines
from mad_guardrails.guardrails.audit.runner import ResultRow, atomic_write

DECISIONS = ("allow", "flag", "block", "error")
DECISION_COLORS = {"allow": "#2e7d32", "flag": "#e0a100", "block": "#c62828", "error": "#7b1fa2"}
DECISION_SERIES = [(d, DECISION_COLORS[d]) for d in DECISIONS]
SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
DECISION_RANK = {"allow": 0, "error": 1, "flag": 2, "block": 3}
NO_EVIDENCE = "(no evidence)"
FAILED_CLOSED = "(failed closed)"
WORST_CASES = 10
ALL_ROWS_CAP = 1000


# ------------------------------------------------------------------------------------------------- summary


class RuleStat(BaseModel):
    title: str = ""
    severity: str = "medium"
    acts: list[str] = Field(default_factory=list)
    allow: int = 0
    flag: int = 0
    block: int = 0
    verified: int = Field(0, description="violations of this rule whose quotes all passed verification")

    @property
    def total(self) -> int:
        return self.allow + self.flag + self.block


class AuditSummary(BaseModel):
    """``summary.json``: the figures of an audit (the reports are drawn from it plus the rows)."""

    title: str
    input: str
    out_dir: str
    generated_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    profile: str = ""
    config_hash: str = ""
    mode: str = "balanced"
    models: dict[str, str] = Field(default_factory=dict)
    rows: int = 0
    counts: dict[str, int] = Field(default_factory=dict, description="allow / flag / block / error")
    paths: dict[str, int] = Field(default_factory=dict, description="fast_allow / fast_block / debate / failure")
    failed_closed: int = Field(0, description="verdicts that failed closed (timeout, backend crash ...)")
    verification_failed: int = Field(0, description="verdicts whose verifier report has a failed check")
    violations: int = 0
    unverified_violations: int = 0
    by_act: dict[str, dict[str, int]] = Field(default_factory=dict)
    by_rule: dict[str, RuleStat] = Field(default_factory=dict)
    by_severity: dict[str, dict[str, int]] = Field(default_factory=dict)
    latency_s: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)
    worst: list[str] = Field(default_factory=list, description="ids of the worst cases, worst first")
    errors: list[dict[str, Any]] = Field(default_factory=list, description="id, line, error of each error row")
    resumed: int = 0
    elapsed_s: float | None = None
    faults: dict[str, Any] = Field(default_factory=dict, description="failed rows by kind: infra / output / input "
                                   "(guardrails/audit/runner.py fault_counts)")


@lru_cache(maxsize=1)
def _pack_ids() -> tuple[str, ...]:
    """The built-in pack ids, longest first (``nist-csf-2.0`` must win over a split at its first dot)."""
    from mad_guardrails.policies.loader import BUILTIN_DIR

    return tuple(sorted((p.stem for p in BUILTIN_DIR.glob("*.yaml")), key=len, reverse=True))


def _act_of(unit_or_rule: str) -> str:
    """The act of a unit id (``nis2:art_23``) or a rule id (``nist-csf-2.0.core.structure`` → ``nist-csf-2.0``).

    >>> _act_of("nist-csf-2.0.core.structure"), _act_of("nis2:art_23.4.a"), _act_of("custom.rule")
    ('nist-csf-2.0', 'nis2', 'custom')
    """
    if ":" in unit_or_rule:
        return unit_or_rule.split(":", 1)[0]
    for p in _pack_ids():
        if unit_or_rule == p or unit_or_rule.startswith(p + "."):
            return p
    return unit_or_rule.split(".", 1)[0]


def row_acts(v: Verdict) -> list[str]:
    """The acts a verdict is about: those its violations cite, else the act of its best regulatory evidence, else
    ``(failed closed)`` for a check that failed before retrieving anything, or ``(no evidence)``."""
    acts: list[str] = []
    for viol in v.violations:
        for a in ([_act_of(p) for p in viol.provisions if not p.startswith("policy:")] or [_act_of(viol.rule_id)]):
            if a not in acts:
                acts.append(a)
    if acts:
        return acts
    reg = sorted((e for e in v.evidence if e.source == "regulation"), key=lambda e: e.rank)
    if reg:
        return [reg[0].doc]
    return [FAILED_CLOSED] if v.path == "failure" else [NO_EVIDENCE]


def row_rules(v: Verdict) -> list[str]:
    """The rules a row is about: its violations' rules; for a verdict without one (a flag), the rules the debaters
    argued (``~`` marks them as argued, not found)."""
    rules = [x.rule_id for x in v.violations]
    if rules:
        return list(dict.fromkeys(rules))
    argued = [c.rule_id for a in v.transcript for c in a.claims if c.rule_id]
    return [f"~{r}" for r in dict.fromkeys(argued)]


def _faults(rows: list[ResultRow]) -> dict[str, Any]:
    try:
        from mad_guardrails.guardrails.audit.runner import fault_counts
    except ImportError:
        return {}
    try:
        return fault_counts(rows).model_dump(mode="json")
    except Exception:  # a row the counter cannot read must not stop the report
        return {}


def worst_key(row: ResultRow) -> tuple:
    """Sort key, worst first: decision, then the most severe violation, then how many, then confidence."""
    v = row.parsed()
    if v is None:
        return (-DECISION_RANK["error"], 0, 0, 0.0)
    sev = max((SEVERITY_RANK.get(x.severity, 0) for x in v.violations), default=0)
    return (-DECISION_RANK[v.decision], -sev, -len(v.violations), -v.confidence)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return round(s[k], 3)


def summarize(rows: list[ResultRow], *, title: str, input_path: str | Path, out_dir: str | Path,
              manifest: Any = None, resumed: int = 0, elapsed_s: float | None = None) -> AuditSummary:
    counts = Counter({d: 0 for d in DECISIONS})
    paths: Counter = Counter()
    by_act: dict[str, Counter] = defaultdict(Counter)
    by_rule: dict[str, RuleStat] = {}
    by_sev: dict[str, Counter] = {s: Counter() for s in SEVERITIES}
    latencies: list[float] = []
    usage = Counter({"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
    failed_closed = ver_failed = n_viol = n_unver = 0
    errors = []
    for r in rows:
        counts[r.decision] += 1
        v = r.parsed()
        if v is None:
            errors.append({"id": r.id, "line": r.line, "error": r.error or "no verdict"})
            continue
        paths[v.path] += 1
        failed_closed += v.failure is not None
        ver_failed += not v.verification.passed
        for a in row_acts(v):
            by_act[a][v.decision] += 1
        for viol in v.violations:
            n_viol += 1
            n_unver += not viol.verified
            st = by_rule.setdefault(viol.rule_id, RuleStat(title=viol.title, severity=viol.severity))
            setattr(st, v.decision, getattr(st, v.decision) + 1)
            st.verified += viol.verified
            for a in [_act_of(p) for p in viol.provisions if not p.startswith("policy:")] or [_act_of(viol.rule_id)]:
                if a not in st.acts:
                    st.acts.append(a)
            by_sev.setdefault(viol.severity, Counter())[v.decision] += 1
        if "total" in v.timings:
            latencies.append(float(v.timings["total"]))
        for k in usage:
            usage[k] += int(getattr(v.usage, k, 0) or 0)
    ordered = sorted(rows, key=worst_key)
    worst = [r.id for r in ordered if r.decision in ("block", "flag")][:WORST_CASES]
    latency = {}
    if latencies:
        latency = {"p50": _pct(latencies, 0.5), "p95": _pct(latencies, 0.95),
                   "mean": round(statistics.fmean(latencies), 3), "max": round(max(latencies), 3)}
    return AuditSummary(
        title=title, input=str(input_path), out_dir=str(out_dir),
        profile=getattr(manifest, "profile", "") or "", config_hash=getattr(manifest, "config_hash", "") or "",
        mode=getattr(manifest, "mode", "balanced") or "balanced", models=dict(getattr(manifest, "models", {}) or {}),
        rows=len(rows), counts=dict(counts), paths=dict(paths), failed_closed=failed_closed,
        verification_failed=ver_failed, violations=n_viol, unverified_violations=n_unver,
        by_act={a: dict(c) for a, c in sorted(by_act.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))},
        by_rule=dict(sorted(by_rule.items(), key=lambda kv: (-kv[1].total, kv[0]))),
        by_severity={s: dict(c) for s, c in by_sev.items()},
        latency_s=latency, usage=dict(usage), worst=worst, errors=errors, resumed=resumed, elapsed_s=elapsed_s,
        faults=_faults(rows))


# ------------------------------------------------------------------------------------------------- SVG charts


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def svg_stacked_bars(title: str, data: list[tuple[str, dict[str, int]]], series: list[tuple[str, str]], *,
                     width: int = 480, bar_h: int = 16, label_w: int = 0) -> str:
    """A horizontal stacked bar chart as an inline SVG string (one bar per label, one colour per series). The label
    sits above its bar, so the chart keeps its full width for the bars and reads on a phone (``label_w`` > 0 puts
    labels left of the bars instead)."""
    above = label_w == 0
    lab_h = 15 if above else 0
    gap, top = 8, 34
    height = top + max(1, len(data)) * (bar_h + gap + lab_h) + 8
    plot_w = width - label_w - 40
    # presentation attributes as well as the page's CSS classes: the chart reads the same where no stylesheet reaches
    # it (an SVG renderer, a mail client, a copied chart)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title)}" font-size="12" '
           f'font-family="system-ui, sans-serif">',
           f"<title>{_esc(title)}</title>"]
    x = label_w if not above else 0
    for name, color in series:  # legend
        out.append(f'<rect x="{x}" y="8" width="12" height="12" rx="2" fill="{color}"/>'
                   f'<text x="{x + 17}" y="18" class="legend">{_esc(name)}</text>')
        x += 24 + 8 * len(name) + 12
    if not data:
        out.append(f'<text x="{label_w}" y="{top + bar_h - 5}" class="empty">nothing to show</text></svg>')
        return "".join(out)
    vmax = max(sum(d.get(s, 0) for s, _ in series) for _, d in data) or 1
    for i, (label, d) in enumerate(data):
        y = top + i * (bar_h + gap + lab_h) + lab_h
        if above:
            out.append(f'<text x="0" y="{y - 4}" class="lbl"><title>{_esc(label)}</title>{_esc(_clip(label, 64))}'
                       "</text>")
        else:
            out.append(f'<text x="{label_w - 8}" y="{y + bar_h - 4}" text-anchor="end" class="lbl">'
                       f"<title>{_esc(label)}</title>{_esc(_clip(label, 34))}</text>")
        out.append(f'<rect x="{label_w}" y="{y}" width="{plot_w}" height="{bar_h}" class="track" fill="#eef0f3"/>')
        x = float(label_w)
        total = 0
        for name, color in series:
            n = d.get(name, 0)
            if not n:
                continue
            w = plot_w * n / vmax
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}">'
                       f"<title>{_esc(label)} — {_esc(name)}: {n}</title></rect>")
            if w >= 18:
                out.append(f'<text x="{x + w / 2:.1f}" y="{y + bar_h - 4}" text-anchor="middle" class="in">{n}</text>')
            x += w
            total += n
        out.append(f'<text x="{x + 6:.1f}" y="{y + bar_h - 4}" class="total">{total}</text>')
    out.append("</svg>")
    return "".join(out)


def svg_mix_bar(counts: dict[str, int], *, width: int = 480, height: int = 26) -> str:
    """One 100 % bar: the share of each decision."""
    total = sum(counts.get(d, 0) for d in DECISIONS) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="mix" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="decision mix" font-size="12" '
           f'font-family="system-ui, sans-serif">']
    x = 0.0
    for d in DECISIONS:
        n = counts.get(d, 0)
        if not n:
            continue
        w = width * n / total
        out.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{DECISION_COLORS[d]}">'
                   f"<title>{d}: {n} ({100 * n / total:.0f} %)</title></rect>")
        if w > 70:
            out.append(f'<text x="{x + 6:.1f}" y="{height - 8}" class="in">{d} {100 * n / total:.0f} %</text>')
        x += w
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------------------------------------- HTML


def _case_view(r: ResultRow, *, snippet: int = 600) -> dict[str, Any]:
    v = r.parsed()
    out: dict[str, Any] = {"id": r.id, "anchor": anchor(r.id), "line": r.line, "decision": r.decision,
                           "query": r.query, "transcript": [], "search": "",
                           "output": _clip(r.output or "", snippet), "metadata": r.metadata, "error": r.error,
                           "path": None, "confidence": None, "rationale": "", "failure": None, "abstention": None,
                           "violations": [], "mode": None, "latency": None, "failed_checks": [], "checks": [],
                           "repaired": False, "acts": [], "rules": []}
    if v is not None:
        out.update(path=v.path, confidence=v.confidence, rationale=v.rationale, failure=v.failure,
                   abstention=v.abstention, violations=v.violations, mode=v.mode,
                   latency=v.timings.get("total"),
                   failed_checks=[_shown_check(c) for c in v.verification.checks if c.status == "fail"],
                   checks=v.verification.checks, repaired=v.verification.repaired,
                   acts=row_acts(v), rules=row_rules(v), transcript=transcript_lines(v.transcript, indent=""))
    out["search"] = " ".join(str(x) for x in (r.id, r.query or "", r.output or "", out["rationale"] or "",
                                               " ".join(out["rules"]), " ".join(out["acts"]))).lower()[:2000]
    return out


def _shown_check(c: CheckResult) -> CheckResult:
    """A failed check as the report shows it: the text of failed quotes is not repeated as a quotation."""
    return c.model_copy(update={"failures": [hide_unverified(f) for f in c.failures]})


def anchor(row_id: Any) -> str:
    """The HTML id of a row's case card."""
    return "case-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(row_id))


def charts(summary: AuditSummary) -> dict[str, str]:
    sev_series = DECISION_SERIES[:3]
    return {
        "mix": svg_mix_bar(summary.counts),
        "by_act": svg_stacked_bars("Decisions by act", list(summary.by_act.items()), DECISION_SERIES[:3]),
        "by_rule": svg_stacked_bars(
            "Violations by rule (coloured by the row's decision)",
            [(rid, {"allow": s.allow, "flag": s.flag, "block": s.block}) for rid, s in
             list(summary.by_rule.items())[:20]], sev_series),
        "by_severity": svg_stacked_bars(
            "Violations by severity", [(s, summary.by_severity.get(s, {})) for s in SEVERITIES], sev_series),
    }


def render_html(summary: AuditSummary, rows: list[ResultRow]) -> str:
    from importlib.resources import files

    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    tpl = env.from_string(files("mad_guardrails.prompts").joinpath("report.html.j2").read_text(encoding="utf-8"))
    by_id = {r.id: r for r in rows}
    ver_failures = [_case_view(r, snippet=240) for r in rows
                    if r.status == "ok" and not r.parsed().verification.passed]
    all_rows = [_case_view(r, snippet=160) for r in rows[:ALL_ROWS_CAP]]
    worst_ids = set(summary.worst)
    cases = [_case_view(r) for r in rows[:ALL_ROWS_CAP] if r.id not in worst_ids]  # every row has a card
    return tpl.render(
        s=summary, charts={k: Markup(v) for k, v in charts(summary).items()},
        colors=DECISION_COLORS, worst=[_case_view(by_id[i]) for i in summary.worst if i in by_id],
        ver_failures=ver_failures, error_rows=[r for r in rows if r.status == "error"],
        all_rows=all_rows, all_rows_cap=ALL_ROWS_CAP, rows_total=len(rows), cases=cases,
        cite=cite_quote, faults=summary.faults or {},
        options={"decision": [d for d in DECISIONS if summary.counts.get(d)],
                 "act": sorted({a for c in all_rows for a in c["acts"]}),
                 "rule": sorted({x.lstrip("~") for c in all_rows for x in c["rules"]}),
                 "path": sorted({c["path"] for c in all_rows if c["path"]})})


# ------------------------------------------------------------------------------------------------- Markdown


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!~])")
_AUTOLINK = re.compile(r"(?i)(\w)(://)|\b(www)(\.)")


def _md(s: Any) -> str:
    """One line of Markdown-safe text from checked or model text: no raw HTML, no table breaks, no links, images,
    emphasis or code (their characters are backslash-escaped) and no autolinked URLs (a zero-width space breaks
    ``://`` and ``www.``).

    >>> print(_md('<img src=x onerror=alert(1)> ![a](http://e.vil/x.png) [go](https://e.vil) | x').replace("\u200b", "~"))
    &lt;img src=x onerror=alert\\(1\\)&gt; \\!\\[a\\]\\(http:~//e.vil/x.png\\) \\[go\\]\\(https:~//e.vil\\) \\| x
    """
    t = " ".join(str(s).split())
    t = _MD_SPECIAL.sub(r"\\\1", t)
    t = _AUTOLINK.sub(lambda m: f"{m.group(1)}:\u200b//" if m.group(2) else f"{m.group(3)}\u200b.", t)
    return html.escape(t, quote=False).replace("|", "\\|").strip()


def _code(s: Any) -> str:
    """An id as a Markdown code span (nothing inside renders: no link, no HTML); backticks and pipes cannot close it."""
    return "`" + " ".join(str(s).split()).replace("`", "'").replace("|", "¦") + "`"


def render_markdown(summary: AuditSummary, rows: list[ResultRow], *, html_name: str = "report.html") -> str:
    c = summary.counts
    L = [f"## Compliance audit — {summary.title}", "",
         f"**{summary.rows} rows**: block **{c.get('block', 0)}**, flag **{c.get('flag', 0)}**, allow "
         f"**{c.get('allow', 0)}**, error rows **{c.get('error', 0)}**. "
         f"Verification failed on {summary.verification_failed}, failed closed {summary.failed_closed}; "
         f"{summary.violations} violation(s), {summary.unverified_violations} with unverified quotes.", "",
         f"Profile `{summary.profile}`, mode `{summary.mode}`, config `{summary.config_hash}`"
         + (f", latency p50 {summary.latency_s['p50']:.2f} s / p95 {summary.latency_s['p95']:.2f} s"
            if summary.latency_s else "") + f". Full report: `{html_name}`.", ""]
    if summary.by_act:
        L += ["### Decisions by act", "", "| act | block | flag | allow |", "|---|---:|---:|---:|"]
        L += [f"| {_md(a)} | {d.get('block', 0)} | {d.get('flag', 0)} | {d.get('allow', 0)} |"
              for a, d in summary.by_act.items()]
        L.append("")
    if summary.by_rule:
        L += ["### Violated rules", "", "| rule | severity | block | flag | quotes verified |",
              "|---|---|---:|---:|---:|"]
        L += [f"| {_code(rid)} {_md(s.title)} | {s.severity} | {s.block} | {s.flag} | {s.verified}/{s.total} |"
              for rid, s in summary.by_rule.items()]
        L.append("")
    by_id = {r.id: r for r in rows}
    if summary.worst:
        L += ["### Worst cases", ""]
        for i in summary.worst:
            r = by_id.get(i)
            v = r.parsed() if r else None
            if v is None:
                continue
            rules = ", ".join(_code(x.rule_id) for x in v.violations) or "no cited rule"
            L.append(f"<details><summary><b>{_esc(r.id)}</b> — {v.decision.upper()} ({rules}, confidence "
                     f"{v.confidence:.2f})</summary>")
            L += ["", f"> {_md(_clip(r.output or '', 400))}", ""]
            if v.rationale:
                L += [f"Why: {_md(v.rationale)}", ""]
            for x in v.violations:
                L.append(f"- {_code(x.rule_id)} \\[{x.severity}\\] {_md(x.explanation)}"
                         + ("" if x.verified else " — **quotes not verified**"))
                for q in x.quotes:
                    ok = q.verified if q.verified is not None else x.verified
                    L.append(f"  - {_code('[' + q.doc_id + ']')} " + (f"\"{_md(q.text)}\" ✓" if ok else
                                                                  "✗ quote not found in the clause"))
            L += ["", "</details>", ""]
    vf = [r for r in rows if r.status == "ok" and not r.parsed().verification.passed]
    if vf:
        L += ["### Verification failures", "", "| id | decision | failed checks |", "|---|---|---|"]
        for r in vf[:50]:
            v = r.parsed()
            fails = "; ".join(f"{ch.name}: {_clip(', '.join(hide_unverified(f) for f in ch.failures[:2]), 160)}"
                              for ch in v.verification.checks if ch.status == "fail")
            L.append(f"| {_md(r.id)} | {v.decision} | {_md(fails)} |")
        if len(vf) > 50:
            L.append(f"| … | | {len(vf) - 50} more in {html_name} |")
        L.append("")
    errs = [r for r in rows if r.status == "error"]
    if errs:
        L += ["### Error rows", "", "| id | line | reason |", "|---|---:|---|"]
        L += [f"| {_md(r.id)} | {r.line or ''} | {_md(_clip(r.error or '', 300))} |" for r in errs[:100]]
        if len(errs) > 100:
            L.append(f"| … | | {len(errs) - 100} more in {html_name} |")
        L.append("")
    return "\n".join(L)


# ------------------------------------------------------------------------------------------------- write all


def write_reports(rows: list[ResultRow], out_dir: str | Path, *, title: str, input_path: str | Path,
                  manifest: Any = None, resumed: int = 0, elapsed_s: float | None = None) -> dict[str, Path]:
    """Write ``summary.json``, ``report.html`` and ``report.md`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    s = summarize(rows, title=title, input_path=input_path, out_dir=out_dir, manifest=manifest, resumed=resumed,
                  elapsed_s=elapsed_s)
    paths = {"summary": out_dir / "summary.json", "html": out_dir / "report.html", "markdown": out_dir / "report.md"}
    atomic_write(paths["summary"], json.dumps(s.model_dump(mode="json"), indent=2, ensure_ascii=False).encode())
    atomic_write(paths["html"], render_html(s, rows).encode("utf-8"))
    atomic_write(paths["markdown"], render_markdown(s, rows).encode("utf-8"))
    return paths


def load_rows(path: str | Path) -> list[ResultRow]:
    """Read a finished ``verdicts.jsonl`` (for re-rendering reports)."""
    return read_models(path, ResultRow, missing_fix="run the audit first: `mad-guardrails audit FILE`")
