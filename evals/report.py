"""Render eval metrics: a rich table per system × query type (terminal), Markdown and JSON on disk, bar charts.

Charts use matplotlib when it is installed; otherwise a small SVG writer in this module draws the same grouped bar
charts (no extra dependency).

    >>> svg = svg_grouped_bars("t", ["a", "b"], {"x": [0.5, None], "y": [1.0, 0.25]}, ymax=1.0)
    >>> svg.startswith("<svg") and svg.count("<rect") >= 3
    True
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from mad_guardrails.evals.loaders import QUERY_TYPES

#: (metric key, column header, kind) shown in the tables; kind: pct | num | sec
TABLE_COLUMNS: list[tuple[str, str, str]] = [
    ("n", "n", "int"),
    ("accuracy", "acc", "pct"),
    ("exact_accuracy", "exact", "pct"),
    ("block_precision", "block P", "pct"),
    ("block_recall", "block R", "pct"),
    ("block_f1", "block F1", "pct"),
    ("intervene_f1", "interv. F1", "pct"),
    ("false_refusal_rate", "FRR", "pct"),
    ("failure_rate", "failed", "pct"),
    ("abstention_rate", "abstain", "pct"),
    ("citation_validity", "cite ok", "pct"),
    ("strict_verbatim", "strict", "pct"),
    ("content_verbatim", "content", "pct"),
    ("latency_p50", "p50 s", "sec"),
    ("latency_p95", "p95 s", "sec"),
    ("llm_calls", "calls", "num"),
    ("prompt_tokens", "tok in", "int"),
    ("completion_tokens", "tok out", "int"),
]

#: the terminal table's columns (metrics.md has all of TABLE_COLUMNS)
TERMINAL_COLUMNS = ["n", "accuracy", "exact_accuracy", "block_f1", "intervene_f1", "false_refusal_rate",
                    "failure_rate", "citation_validity", "strict_verbatim", "latency_p50", "latency_p95", "llm_calls",
                    "prompt_tokens"]

SYSTEM_DESCRIPTIONS = {
    "mad": "multi-agent debate (the guardrail: retrieval, screening, debaters, coordinator, verifier)",
    "single": "one judge call, same evidence and rules (prompts/judge_single.j2), same verifier",
    "majority": "majority vote of N independent judges (N = MAD's mean LLM calls per verdict; temperature > 0)",
    "noretrieval": "the single judge without evidence (rules only)",
    "screening": "no LLM: policy screening scores + deterministic key-fact (number) check",
}


def fmt(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}"
    if kind == "sec":
        return f"{value:.2f}"
    if kind == "int":
        return f"{value:.0f}"
    return f"{value:.2f}"


def groups_of(metrics: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    present = {g for m in metrics.values() for g in m}
    return ["overall"] + [t for t in QUERY_TYPES if t in present]


def rich_table(metrics: dict[str, dict[str, dict[str, Any]]], title: str = "eval", *, full: bool = False):
    """System × query type table (rates in %). ``full`` shows every column of metrics.md."""
    from rich.table import Table

    cols = TABLE_COLUMNS if full else [c for c in TABLE_COLUMNS if c[0] in TERMINAL_COLUMNS]
    t = Table(title=title, show_lines=False, header_style="bold", caption="rates in %; latency in s; calls and "
              "tokens per verdict; FRR = false refusals on benign cases")
    t.add_column("system", no_wrap=True)
    t.add_column("type", no_wrap=True)
    for _, head, _ in cols:
        t.add_column(head, justify="right")
    groups = groups_of(metrics)
    for system, m in metrics.items():
        present = [g for g in groups if g in m]
        for i, g in enumerate(present):
            t.add_row(system if i == 0 else "", "all" if g == "overall" else g.replace("benign_sensitive", "benign"),
                      *[fmt(m[g].get(k), kind) for k, _, kind in cols], end_section=(i == len(present) - 1))
    return t


def markdown_table(metrics: dict[str, dict[str, dict[str, Any]]], groups: list[str] | None = None, *,
                   columns: list[str] | None = None) -> str:
    """System × query type as a Markdown table (``columns``: metric keys, default all of TABLE_COLUMNS)."""
    groups = groups or groups_of(metrics)
    cols = [c for c in TABLE_COLUMNS if columns is None or c[0] in columns]
    head = ["system", "type"] + [h for _, h, _ in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(cols)) + "|"]
    for system, m in metrics.items():
        for g in groups:
            if g in m:
                lines.append("| " + " | ".join([system, g] + [fmt(m[g].get(k), kind) for k, _, kind in cols]) + " |")
    return "\n".join(lines)


def per_set_table(metrics: dict[str, dict[str, dict[str, Any]]]) -> str:
    sets = sorted({g for m in metrics.values() for g in m if g.startswith("set:")})
    systems = list(metrics)
    lines = ["| set | n | " + " | ".join(f"{s} acc / interv. F1 / FRR" for s in systems) + " |",
             "|---|---:|" + "---:|" * len(systems)]
    for s in sets:
        n = next((metrics[x][s]["n"] for x in systems if s in metrics[x]), 0)
        cells = []
        for x in systems:
            g = metrics[x].get(s)
            cells.append("–" if g is None else " / ".join(fmt(g.get(k), "pct") for k in (
                "accuracy", "intervene_f1", "false_refusal_rate")))
        lines.append(f"| {s[4:]} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(metrics: dict[str, dict[str, dict[str, Any]]], meta: dict[str, Any]) -> str:
    """The whole ``metrics.md``: run settings, the main table, per-set table, definitions."""
    out = ["# Eval results", ""]
    out.append(f"- sets: {', '.join(meta.get('sets', []))}")
    out.append(f"- cases: {meta.get('n_cases')} (limit {meta.get('limit')}, seed {meta.get('seed')}, stratified by "
               "query type, round-robin over sets and expected decisions)")
    out.append(f"- profile: {meta.get('profile')} (config {meta.get('config_hash', '?')}); models: "
               f"{json.dumps(meta.get('models', {}))}")
    out.append(f"- concurrency: {meta.get('concurrency')}" + (
        f"; majority N = {meta['majority_n']} ({meta.get('majority_n_source', '')})" if meta.get("majority_n") else ""))
    out.append("")
    out.append("Systems:")
    for s in metrics:
        out.append(f"- **{s}** — {SYSTEM_DESCRIPTIONS.get(s, '')}")
    out += ["", "## Summary", "", markdown_table(metrics, columns=TERMINAL_COLUMNS), "",
            "## Per system and query type (all metrics)", "", markdown_table(metrics), "",
            "Rates in %, latency in seconds (wall clock per verdict at the run's concurrency), calls and tokens per "
            "verdict. acc = allow-vs-intervene accuracy; exact = 3-way; FRR = false-refusal rate on benign_sensitive "
            "cases expected allow; failed = verdicts that failed closed; cite ok / strict / content = mean verifier "
            "score over verdicts that cited anything.", "",
            "## Per set (acc / intervene F1 / FRR, %)", "", per_set_table(metrics), ""]
    if meta.get("paired"):
        out += ["## Paired comparison with mad (binary accuracy, same cases)", "",
                "| baseline | mad only right | baseline only right | both | neither | sign-test p |",
                "|---|---:|---:|---:|---:|---:|"]
        for b, r in meta["paired"].items():
            p = r.get("p")
            out.append(f"| {b} | {r['a_only']} | {r['b_only']} | {r['both']} | {r['neither']} | "
                       f"{'–' if p is None else f'{p:.3f}'} |")
        out.append("")
    if meta.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in meta["notes"]] + [""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------------ charts
_PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def svg_grouped_bars(title: str, groups: list[str], series: dict[str, list[float | None]], *,
                     ylabel: str = "", ymax: float | None = None, width: int = 760, height: int = 360) -> str:
    """A grouped bar chart as a standalone SVG string (None values are drawn as a small 'n/a')."""
    left, right, top, bottom = 60, 20, 40, 70
    pw, ph = width - left - right, height - top - bottom
    vals = [v for vs in series.values() for v in vs if v is not None]
    top_v = ymax if ymax is not None else (max(vals) * 1.1 if vals and max(vals) > 0 else 1.0)
    e = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{e(title)}</text>']
    for i in range(5):  # grid + y ticks
        v = top_v * i / 4
        y = top + ph - ph * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    if ylabel:
        parts.append(f'<text x="14" y="{top + ph / 2}" transform="rotate(-90 14 {top + ph / 2})" '
                     f'text-anchor="middle">{e(ylabel)}</text>')
    ng, ns = max(len(groups), 1), max(len(series), 1)
    gw = pw / ng
    bw = gw * 0.8 / ns
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + gw * 0.1
        for si, (_name, vs) in enumerate(series.items()):
            v = vs[gi] if gi < len(vs) else None
            x = x0 + si * bw
            if v is None:
                parts.append(f'<text x="{x + bw / 2:.1f}" y="{top + ph - 3}" text-anchor="middle" '
                             f'font-size="8" fill="#999">n/a</text>')
                continue
            h = ph * min(max(v, 0.0), top_v) / top_v
            parts.append(f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{bw * 0.95:.1f}" height="{h:.1f}" '
                         f'fill="{_PALETTE[si % len(_PALETTE)]}"><title>{e(_name)} {e(g)}: {v:.3f}</title></rect>')
        parts.append(f'<text x="{x0 + gw * 0.4:.1f}" y="{top + ph + 16}" text-anchor="middle">{e(g)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>')
    lx = left
    for si, name in enumerate(series):  # legend
        parts.append(f'<rect x="{lx}" y="{height - 24}" width="10" height="10" '
                     f'fill="{_PALETTE[si % len(_PALETTE)]}"/>')
        parts.append(f'<text x="{lx + 14}" y="{height - 15}">{e(name)}</text>')
        lx += 18 + 7 * len(name) + 16
    parts.append("</svg>")
    return "\n".join(parts)


def _charts(metrics: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, str, list[str], dict, str, float | None]]:
    """(file stem, title, groups, {series: values}, ylabel, ymax) for each chart."""
    systems = list(metrics)
    groups = groups_of(metrics)

    def by_group(key: str) -> dict[str, list[float | None]]:
        return {s: [metrics[s].get(g, {}).get(key) for g in groups] for s in systems}

    overall = ["accuracy", "block_f1", "intervene_f1", "false_refusal_rate", "failure_rate"]
    return [
        ("accuracy_by_type", "Accuracy (allow vs intervene) by query type", groups, by_group("accuracy"),
         "accuracy", 1.0),
        ("intervene_f1_by_type", "Intervene (flag or block) F1 by query type", groups, by_group("intervene_f1"),
         "F1", 1.0),
        ("overall_quality", "Overall: accuracy, F1, false refusals, failures", overall,
         {s: [metrics[s]["overall"].get(k) for k in overall] for s in systems}, "rate", 1.0),
        ("grounding", "Citation validity and verbatim grounding (verdicts that cite)",
         ["citation_validity", "strict_verbatim", "content_verbatim", "cited_share"],
         {s: [metrics[s]["overall"].get(k) for k in ("citation_validity", "strict_verbatim", "content_verbatim",
                                                       "cited_share")] for s in systems}, "share", 1.0),
        # one unit per axis: seconds and LLM calls are two charts, never bars on one scale
        ("cost_latency", "Cost per verdict: latency p50 / p95", ["latency_p50", "latency_p95"],
         {s: [metrics[s]["overall"].get(k) for k in ("latency_p50", "latency_p95")] for s in systems}, "seconds", None),
        ("cost_llm_calls", "Cost per verdict: LLM calls", ["llm_calls"],
         {s: [metrics[s]["overall"].get("llm_calls")] for s in systems}, "LLM calls per verdict", None),
    ]


def write_plots(metrics: dict[str, dict[str, dict[str, Any]]], out_dir: Path) -> list[Path]:
    """Write the charts into ``out_dir/plots`` (PNG via matplotlib when installed, else SVG). Returns the files."""
    d = Path(out_dir) / "plots"
    d.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    for stem, title, groups, series, ylabel, ymax in _charts(metrics):
        if plt is not None:
            fig, ax = plt.subplots(figsize=(8, 3.8))
            ns = max(len(series), 1)
            for si, (name, vs) in enumerate(series.items()):
                xs = [gi + (si - (ns - 1) / 2) * 0.8 / ns for gi in range(len(groups))]
                ax.bar(xs, [v if v is not None else 0 for v in vs], width=0.8 / ns, label=name)
            ax.set_xticks(range(len(groups)), groups)
            ax.set_title(title)
            ax.set_ylabel(ylabel)
            if ymax is not None:
                ax.set_ylim(0, ymax)
            ax.legend(fontsize=8)
            fig.tight_layout()
            p = d / f"{stem}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
        else:
            p = d / f"{stem}.svg"
            p.write_text(svg_grouped_bars(title, groups, series, ylabel=ylabel, ymax=ymax), encoding="utf-8")
        files.append(p)
    return files
