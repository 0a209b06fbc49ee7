"""``mad-guardrails policies list|show|validate``: inspect and check the policy packs."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    grp = typer.Typer(help="Policy packs: list rules, show one, validate packs against the corpus.",
                      no_args_is_help=True)
    app.add_typer(grp, name="policies")

    packs_opt = typer.Option(None, "--packs", help="'builtin' and/or dirs/files of YAML packs, later ones override "
                                                   "earlier (repeatable; default: builtin)")
    disable_opt = typer.Option(None, "--disable", help="rule id / pack id / id prefix to switch off (repeatable)")

    @grp.command("list")
    def list_(
        packs: list[str] = packs_opt,
        disable: list[str] = disable_opt,
        act: str = typer.Option(None, "--act", help="only rules of this act (doc id, e.g. nis2)"),
        all_: bool = typer.Option(False, "--all", help="include disabled rules"),
        as_json: bool = typer.Option(False, "--json", help="print JSON (one object per rule)"),
    ) -> None:
        """List the rules in force (id, act, kind, severity, action, applies from, provisions)."""
        import json

        from rich.console import Console
        from rich.table import Table

        from mad_guardrails.policies.loader import load_packs

        ps = load_packs(packs or ["builtin"], disabled=disable or ())
        rules = ps.all_rules if all_ else ps.rules
        if act:
            rules = [r for r in rules if r.act == act]
        if as_json:
            typer.echo(json.dumps([{"id": r.id, "act": r.act, "kind": r.kind, "severity": r.severity,
                                    "default_action": r.default_action, "enabled": r.enabled,
                                    "applies_from": r.applies_from.isoformat() if r.applies_from else None,
                                    "provisions": r.provisions, "title": r.title} for r in rules], indent=2))
            return
        t = Table(title=f"{len(rules)} policy rules ({', '.join(ps.sources)})", show_lines=False)
        t.add_column("id", no_wrap=True)
        for col in ("kind", "sev", "action", "from", "provisions", "title"):
            t.add_column(col, overflow="fold")
        for r in rules:
            t.add_row(r.id + ("" if r.enabled else " [dim](off)[/]"), r.kind, r.severity, r.default_action,
                      r.applies_from.isoformat() if r.applies_from else "", ", ".join(r.provisions[:3])
                      + (" …" if len(r.provisions) > 3 else ""), r.title)
        Console().print(t)

    @grp.command("show")
    def show(
        rule_id: str = typer.Argument(..., help="rule id (e.g. nis2.art23.incident_reporting)"),
        packs: list[str] = packs_opt,
        as_json: bool = typer.Option(False, "--json", help="print the rule as JSON"),
    ) -> None:
        """Show one rule in full: summary, provisions, key facts with quotes, triggers, examples, origin."""
        from rich.console import Console

        from mad_guardrails.core.errors import InputError
        from mad_guardrails.policies.loader import load_packs

        ps = load_packs(packs or ["builtin"])
        r = ps.get(rule_id, include_disabled=True)
        if r is None:
            import difflib

            near = difflib.get_close_matches(rule_id, [x.id for x in ps.all_rules], n=3, cutoff=0.5)
            raise InputError(f"no rule with id {rule_id!r}",
                             fix=("did you mean " + ", ".join(near) + "? " if near else "")
                             + "`mad-guardrails policies list` shows all ids")
        if as_json:
            typer.echo(r.model_dump_json(indent=2))
            return
        o = ps.origins.get(r.id)
        c = Console(highlight=False)
        from rich.markup import escape
        c.print(f"[bold]{r.id}[/]  ({r.act}, {r.kind}, severity {r.severity}, default {r.default_action}"
                f"{'' if r.enabled else ', DISABLED'})")
        c.print(f"[bold]{escape(r.title)}[/]")
        c.print(escape(r.summary.strip()))
        c.print(f"binds: {', '.join(r.binds) or '-'}   applies from: {r.applies_from or '-'}")
        c.print("provisions: " + ", ".join(r.provisions))
        for f in r.key_facts:
            c.print(escape(f"  key fact [{f.provision}] {f.as_text()}  terms={f.terms}"
                           + (f"  requires_any={f.requires_any}" if f.requires_any else "")))
            if f.quote:
                c.print(escape(f'    "{f.quote}"'), style="dim")
        c.print("triggers: " + ", ".join(r.triggers))
        for ex in r.examples:
            c.print(f"  [{'red' if ex.label == 'violates' else 'green'}]{ex.label}[/]: {escape(ex.text.strip())}")
        if o:
            c.print(f"defined at {o.file}:{o.line} (pack {o.pack}, source {o.source})", style="dim")
        for prev in ps.replaced.get(r.id, []):
            c.print(f"overrides {prev.file}:{prev.line}", style="dim")

    @grp.command("validate")
    def validate(
        directory: Path = typer.Argument(None, help="dir (or file) of YAML packs; default: the built-in packs"),
        corpus: Path = typer.Option(None, "--corpus", help="corpus dir to check provision ids and quotes against "
                                                           "(default: $GUARDRAILS_HOME/corpus, else the shared one)"),
        no_corpus: bool = typer.Option(False, "--no-corpus", help="skip the provision/quote checks"),
        strict: bool = typer.Option(False, "--strict", help="treat warnings as errors"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="do not list unverifiable provisions one by one"),
        as_json: bool = typer.Option(False, "--json", help="print the findings as JSON"),
    ) -> None:
        """Validate packs: schema, duplicate ids, dates, key facts and — with a corpus — that every provision exists
        and every key-fact quote is verbatim. Exit code 1 on errors."""
        import json

        from rich.console import Console

        from mad_guardrails.policies.loader import PolicyError, load_packs
        from mad_guardrails.policies.validate import format_report, validate_sources

        sources = [str(directory)] if directory else ["builtin"]
        rep = validate_sources(sources, corpus=False if no_corpus else (corpus or "auto"))
        extra: list[str] = []
        if directory:  # user packs are applied on top of the built-ins: disable / override must resolve
            try:
                load_packs(["builtin", str(directory)])
            except PolicyError as e:
                extra.append(str(e))
        if as_json:
            typer.echo(json.dumps({
                "ok": rep.ok and not extra and not (strict and rep.warnings), "files": rep.files, "rules": rep.rules,
                "corpus": rep.corpus, "checked_provisions": rep.checked_provisions,
                "checked_quotes": rep.checked_quotes,
                "problems": [{"level": p.level, "file": p.file, "line": p.line, "rule": p.rule_id,
                              "message": p.message, "fix": p.fix, "text": str(p)} for p in rep.problems]
                + [{"level": "error", "text": x} for x in extra]}, indent=2))
        else:
            c = Console(stderr=True, highlight=False, soft_wrap=True)
            for line in format_report(rep, show_unverifiable=not quiet):
                style = "red" if line.startswith("error") else ("yellow" if line.startswith("warning") else "dim")
                c.print(line, style=style, markup=False)
            for x in extra:
                c.print(f"error: {x}", style="red", markup=False)
            where = rep.corpus or "no corpus (provision ids and quotes not checked)"
            c.print(f"{len(rep.files)} file(s), {rep.rules} rules; {rep.checked_provisions} provisions and "
                    f"{rep.checked_quotes} quotes checked against {where}; {len(rep.errors) + len(extra)} error(s), "
                    f"{len(rep.warnings)} warning(s), {len(rep.unverifiable)} unverifiable", markup=False)
        failed = bool(rep.errors or extra or (strict and rep.warnings))
        raise typer.Exit(1 if failed else 0)
