"""How the debate console draws a debate: each graph event of
:meth:`mad_guardrails.guardrails.guardrail.Guardrail.astream` as it arrives (:func:`show_event`) — the evidence panel,
one panel per agent turn (colour = stance) with its quotes, the verifier's checks and the verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from mad_guardrails.core.debate import Argument
from mad_guardrails.core.text import collapse_ws
from mad_guardrails.core.units import Evidence
from mad_guardrails.core.verdict import Verdict, hide_unverified

if TYPE_CHECKING:
    from mad_guardrails.guardrails.console_transcript import RunRecord

STANCE_STYLE = {"violation": "red", "compliant": "green", "uncertain": "yellow"}
DECISION_STYLE = {"allow": "bold white on green", "flag": "bold black on yellow", "block": "bold white on red"}
CHECK_STYLE = {"pass": "green", "fail": "bold red", "skipped": "dim"}


def quote_text(q, ok: bool | None = None) -> Text:
    """A verified quote as ``[unit id] “text” ✓``; one the verifier refused as ``[unit id] ✗ not found in the
    clause`` (its text is never shown as a quotation); an unchecked one without quotation marks."""
    ok = getattr(q, "verified", None) if ok is None else ok
    t = Text()
    t.append(f"[{q.doc_id}] ", style="cyan")
    if ok:
        t.append(f"“{q.text}”", style="italic")
        t.append(" ✓", style="green")
    elif ok is False:
        t.append("✗ not found in the clause (the agent's text is not shown)", style="red")
    else:
        t.append("(not checked) ", style="dim")
        t.append(q.text, style="dim")
    return t


def show_event(c: Console, node: str, upd: Any, rec: RunRecord) -> None:
    """Draw one graph event (``node`` → its state update) on ``c`` and record it in ``rec``'s timeline (the
    verdict and a failure also in ``rec.verdict`` / ``rec.error``)."""
    upd = upd or {}
    if node == "__error__":
        rec.error = str(upd)
        rec.timeline.append({"event": "error", "error": str(upd)})
        c.print(Panel(f"{escape(str(upd))}\nThe guardrail fails closed: treat this output as [bold]flag[/].",
                      title="the run failed", border_style="red"))
        return
    if node == "retrieve":
        ev = [Evidence.model_validate(e) for e in upd.get("evidence", [])]
        rec.timeline.append({"event": "evidence", "ids": [e.unit_id for e in ev],
                             "abstained": bool(upd.get("abstained"))})
        c.print(evidence_panel(ev, upd.get("abstain_reason") if upd.get("abstained") else None))
    elif node == "screen":
        rows = upd.get("screen", [])
        rec.timeline.append({"event": "screen", "rules": [r["rule_id"] for r in rows],
                             "findings": upd.get("findings", [])})
        if rows:
            c.print("[bold]rules screened:[/] " + ", ".join(
                f"{escape(r['rule_id'])} ({r['score']:.2f}"
                + (f"; {escape(', '.join(r['triggers']))}" if r.get("triggers") else "") + ")" for r in rows))
        for f in upd.get("findings", []):
            style = "red" if f.get("status") == "contradicted" else "green"
            c.print(f"[{style}]key fact {escape(str(f.get('status')))}:[/] {escape(str(f.get('explanation', '')))}")
        if upd.get("failure"):
            c.print(f"[red]{escape(upd['failure'])}[/]")
    elif node in ("fast_allow", "fast_block"):
        co = upd.get("coordinator") or {}
        rec.timeline.append({"event": node})
        c.print(f"[bold]{node.replace('_', ' ')}:[/] {escape(co.get('rationale', ''))}")
        if rec.interjections:
            c.print("[dim]the fast path decided without a debate, so the interjections were not discussed[/]")
    elif node == "start_round":
        rec.timeline.append({"event": "round", "round": upd.get("round")})
        c.print(Rule(f"round {upd.get('round')}", style="blue"))
    elif node == "argue":
        for a in upd.get("transcript", []):
            arg = Argument.model_validate(a)
            rec.timeline.append({"event": "argument", "round": arg.round, "role": arg.role,
                                 "stance": arg.stance})
            c.print(argument_panel(arg))
    elif node == "moderate":
        rec.timeline.append({"event": "moderate", "consensus": bool(upd.get("consensus"))})
        c.print("[dim]consensus reached[/]" if upd.get("consensus") else "[dim]no consensus yet[/]")
    elif node == "coordinate":
        co = upd.get("coordinator")
        rec.timeline.append({"event": "coordinate", "decision": co.get("decision") if co else None,
                             "error": upd.get("coordinator_error")})
        if co:
            c.print(f"[bold]coordinator:[/] {co['decision']} (confidence {co.get('confidence', 0):.2f}, "
                    f"{len(co.get('violations', []))} violation(s)) — checking its quotes...")
        else:
            c.print(f"[red]coordinator gave no usable answer:[/] {escape(str(upd.get('coordinator_error')))}")
    elif node == "verify":
        rep = upd.get("verification") or {}
        rec.timeline.append({"event": "verify", "checks": {ch["name"]: ch["status"]
                                                           for ch in rep.get("checks", [])}})
        c.print(checks_table(rep.get("checks", [])))
    elif node == "repair":
        rec.timeline.append({"event": "repair"})
        c.print(f"[yellow]repair:[/] the verifier's {len(upd.get('feedback', []))} finding(s) go back to the "
                "coordinator once")
    elif node == "finalize":
        v = Verdict.model_validate(upd["verdict"])
        rec.verdict = v.model_dump(mode="json")
        rec.timeline.append({"event": "verdict", "decision": v.decision})
        c.print(verdict_panel(v))


def evidence_panel(ev: list[Evidence], abstain_reason: str | None = None) -> Panel:
    """The retrieved clauses, one row each (or why there are none)."""
    if not ev:
        return Panel(f"[dim]{escape(abstain_reason or 'no relevant evidence')}[/]", title="evidence",
                     border_style="blue")
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=True)
    t.add_column("#", justify="right", width=2)
    t.add_column("clause", style="cyan", no_wrap=True)
    t.add_column("relev.", justify="right", width=6)
    t.add_column("text", ratio=1)
    for e in ev:
        score = e.relevance if e.relevance is not None else e.score
        snippet = collapse_ws(e.text)
        snippet = snippet[:120] + ("…" if len(snippet) > 120 else "")
        t.add_row(str(e.rank), Text(e.unit_id, style="cyan"), f"{score:.2f}", Text(snippet))  # as explain()
    return Panel(t, title=f"evidence ({len(ev)} clauses) — :show ID for the full text", border_style="blue")


def argument_panel(a: Argument) -> Panel:
    """One agent turn: its claims and their quotes, coloured by stance."""
    style = "magenta" if a.error else STANCE_STYLE.get(a.stance, "white")
    body: list[Any] = []
    if a.error:
        body.append(Text(f"turn failed: {a.error}", style="magenta"))
    for cl in a.claims:
        body.append(Text("• " + cl.text + (f"  [{cl.rule_id}]" if cl.rule_id else "")))
        for q in cl.quotes:
            body.append(Padding(quote_text(q), (0, 0, 0, 4)))
    if not body:
        body.append(Text((a.raw or "(no claims)")[:400], style="dim"))
    title = f"{escape(a.role)} · round {a.round} · [{style}]{a.stance}[/] · confidence {a.confidence:.2f}"
    return Panel(Group(*body), title=title, title_align="left", border_style=style)


def checks_table(checks: list[dict]) -> Table:
    """The verifier's checks (as dumped in the graph state)."""
    t = Table(title="verifier", title_justify="left", box=None, show_header=False, pad_edge=False)
    t.add_column("check", style="bold")
    t.add_column("status")
    t.add_column("detail", ratio=1)
    for ch in checks:
        score = f" ({ch['score']:.2f})" if ch.get("score") is not None else ""
        t.add_row(ch["name"], Text(ch["status"] + score, style=CHECK_STYLE.get(ch["status"], "")),
                  Text("; ".join(hide_unverified(f) for f in ch.get("failures", [])[:2])))
    return t


CLAIM_STYLE = {"entailed": "green", "contradicted": "red", "neutral": "yellow"}


def verdict_panel(v: Verdict) -> Panel:
    """The verdict: decision, violations with their provisions and quotes, the claim check, the verifier, usage."""
    parts: list[Any] = []
    head = Text()
    head.append(f" {v.decision.upper()} ", style=DECISION_STYLE.get(v.decision, "bold"))
    head.append(f"  confidence {v.confidence:.2f} · path {v.path} · mode {v.mode}")
    parts.append(head)
    if v.failure:
        parts.append(Text(f"Failed closed: {v.failure}", style="red"))
    if v.abstention:
        parts.append(Text(f"Abstention: {v.abstention}", style="dim"))
    if v.rationale:
        parts.append(Text("Why: " + v.rationale))
    for i, x in enumerate(v.violations, 1):
        t = Text(f"{i}. ")
        t.append(x.rule_id, style="bold")
        t.append(f" [{x.severity}]" + (f" {x.title}" if x.title else ""))
        parts.append(t)
        t = Text(", ".join(x.provisions) + "  ", style="cyan")
        t.append("✓ quotes verbatim" if x.verified else "✗ quotes NOT verified",
                 style="green" if x.verified else "red")
        parts.append(Padding(t, (0, 0, 0, 3)))
        if x.explanation:
            parts.append(Padding(Text(x.explanation), (0, 0, 0, 3)))
        for q in x.quotes:
            parts.append(Padding(quote_text(q, q.verified if q.verified is not None else x.verified), (0, 0, 0, 3)))
    if v.claims:  # what the clauses say of each claim, and why a claim was left unsettled
        parts.append(Text(v.claims_summary()))
        for c in v.claims:
            parts.append(Padding(Text(c.line(), style=CLAIM_STYLE.get(c.label, "")), (0, 0, 0, 3)))
    if v.verification.checks:
        line = Text("Verifier: ")
        for ch in v.verification.checks:
            key_facts = f" [{ch.detail}]" if ch.name == "number_consistency" and ch.detail else ""  # not the claims
            line.append(f"{ch.name} {ch.status}{key_facts}  ", style=CHECK_STYLE.get(ch.status, ""))
        if v.verification.repaired:
            line.append("(after one repair round)", style="dim")
        parts.append(line)
        for ch in v.verification.checks:
            for f in ch.failures[:3]:
                parts.append(Padding(Text(f"{ch.name}: {hide_unverified(f)}", style="red"), (0, 0, 0, 3)))
    t = v.timings.get("total")
    parts.append(Text(f"LLM calls {v.usage.llm_calls}, tokens {v.usage.prompt_tokens}+{v.usage.completion_tokens}"
                      + (f", {t:.1f} s" if t is not None else ""), style="dim"))
    style = {"allow": "green", "flag": "yellow", "block": "red"}.get(v.decision, "white")
    return Panel(Group(*parts), title="verdict", title_align="left", border_style=style)
