"""The interactive debate console: paste an AI output, watch the agents argue over the retrieved clauses, read the
verified verdict, then probe it (show a cited clause, interject a question, switch policy / mode, re-run, save).

    $ mad-guardrails console
    guardrails> NIS2 gives us 72 hours for the early warning.
    ...
    question (Enter to skip)> How fast must we warn the CSIRT?

This module is the loop and its commands; each graph event is drawn as it arrives (:mod:`.console_view`), and the
session's runs are what ``:save`` writes (:mod:`.console_transcript`). Between rounds the debate pauses (a LangGraph
interrupt): ``:ask <question or fact>`` is handed to the agents for the next round, Enter continues. Piped (stdin not a terminal), the console reads the whole of stdin as one output, prints the debate
and the verdict, and asks nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from mad_guardrails.core.errors import GuardrailError
from mad_guardrails.core.verdict import Verdict
from mad_guardrails.guardrails.console_transcript import RunRecord, transcript, transcript_markdown
from mad_guardrails.guardrails.console_view import evidence_panel, show_event

MODES = ("strict", "balanced", "permissive")
PAUSE_COMMANDS = (":show", ":evidence", ":save", ":help", ":h", ":?")

PROMPT = "guardrails> "
MORE = "... "
QUESTION = "question (Enter to skip)> "

HELP = """\
[bold]Paste an AI output[/] at the prompt and finish it with an empty line (for text with blank lines, type
[cyan]:paste[/] first and end with a line holding only [cyan].[/]). Then give the question that produced it, or press
Enter. The debate is shown as it happens; between rounds it pauses so you can interject.

[cyan]:show ID[/]            a clause in full, e.g. :show eu-ai-act:art_5.1.c (or a rule: :show policy:RULE_ID)
[cyan]:evidence[/]           the evidence of the last run again
[cyan]:policy NAMES|all[/]   restrict the check to packs / acts / rule ids (e.g. :policy nis2 gdpr), or all
[cyan]:mode M[/]             strict | balanced | permissive
[cyan]:ask TEXT[/]           interject a question or fact: during a pause it goes to the next round; otherwise the
                    last output is checked again with it
[cyan]:rerun[/]              check the last output again (after :policy / :mode)
[cyan]:pause on|off[/]       pause between rounds (on: a prompt before each round after the first)
[cyan]:save PATH[/]          the transcript as PATH.json and PATH.md
[cyan]:help[/]               this help
[cyan]:quit[/]               leave (also Ctrl-D)
Ctrl-C during a debate stops it (and its LLM requests) and returns to the prompt; at the prompt it clears the line."""


class _Quit(Exception):
    pass


def _policy_known(policy_set, name: str) -> bool:
    rules = list(getattr(policy_set, "rules", []) or [])
    return any(r.id == name or r.id.startswith(name + ".") or r.id.split(".", 1)[0] == name
               or getattr(r, "pack", None) == name for r in rules)


class DebateConsole:
    """The console session over one :class:`~mad_guardrails.guardrails.guardrail.Guardrail`.

    ``interactive`` pauses between rounds and prompts; ``read_line(prompt)`` reads one line (``EOFError`` at the end).
    """

    def __init__(self, guardrail, *, console: Console | None = None, mode: str = "balanced",
                 policies: list[str] | None = None, interactive: bool = True,
                 read_line: Callable[[str], str] | None = None, pause: bool = True):
        self.g = guardrail
        self.console = console or Console(highlight=False)
        self.mode = mode
        self.policies = list(policies) if policies else None
        self.interactive = interactive
        self.pause = pause  # pause between rounds (interactive only)
        self.read_line = read_line or self.console.input
        self.runs: list[RunRecord] = []
        self.output: str | None = None
        self.query: str | None = None
        self.interjections: list[str] = []
        self.loop = asyncio.new_event_loop()

    # ------------------------------------------------------------------------------------------ checking
    def check(self, output: str, query: str | None = None) -> Verdict | None:
        """Check a new output (resets the interjections)."""
        self.output, self.query, self.interjections = output, query, []
        return self._run()

    def rerun(self) -> Verdict | None:
        if self.output is None:
            self.console.print("[yellow]nothing to re-run yet: paste an output first[/]")
            return None
        return self._run()

    def _run(self) -> Verdict | None:
        rec = RunRecord(output=self.output, query=self.query, mode=self.mode, policies=self.policies,
                        interjections=list(self.interjections))
        self.runs.append(rec)
        what = f"mode [bold]{self.mode}[/], policies [bold]{', '.join(self.policies) if self.policies else 'all'}[/]"
        if self.interjections:
            what += ", interjections: " + "; ".join(escape(repr(x)) for x in self.interjections)
        self.console.print(Rule(f"checking — {what}", style="cyan"))
        t0 = time.perf_counter()
        task = self.loop.create_task(self._stream(rec))
        try:
            self.loop.run_until_complete(task)
        except KeyboardInterrupt:
            self._cancel(task)  # the stream's end cancels the graph run and its in-flight LLM requests
            rec.error = "stopped by the user (Ctrl-C)"
            rec.timeline.append({"event": "cancelled"})
            self.console.print("\n[yellow]stopped[/]: the debate and its LLM requests were cancelled (no verdict "
                               "for this run)")
        except GuardrailError as e:  # bad input, unknown policy ...
            rec.error = str(e)
            if not self.interactive:
                raise
            self.console.print(f"[bold red]error:[/] {escape(str(e))}")
        rec.seconds = round(time.perf_counter() - t0, 2)
        return Verdict.model_validate(rec.verdict) if rec.verdict else None

    def _cancel(self, task: asyncio.Task) -> None:
        """Cancel a run and wait (briefly, Ctrl-C again skips it) until its stream is closed."""
        task.cancel()
        try:
            self.loop.run_until_complete(asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10))
        except (KeyboardInterrupt, asyncio.TimeoutError, asyncio.CancelledError):
            pass

    async def _stream(self, rec: RunRecord) -> None:
        tid = f"console-{uuid.uuid4().hex[:12]}"
        resume: str | None = None
        while True:
            paused = None
            if resume is None:
                stream = self.g.astream(rec.output, query=rec.query, mode=rec.mode, policies=rec.policies,
                                        thread_id=tid, pause_between_rounds=self.interactive and self.pause,
                                        interjections=rec.interjections or None)
            else:
                stream = self.g.astream(None, thread_id=tid, resume=resume)
            async for ev in stream:
                for node, upd in ev.items():
                    if node == "__interrupt__":
                        paused = upd
                        continue
                    show_event(self.console, node, upd, rec)
            if paused is None:
                return
            resume = self._pause(paused, rec)

    def _pause(self, interrupt, rec: RunRecord) -> str:
        """Between two rounds: let the person interject (``:ask``), look things up, or continue."""
        info = getattr(interrupt[0], "value", {}) if isinstance(interrupt, tuple | list) and interrupt else {}
        nxt = info.get("round", "?") if isinstance(info, dict) else "?"
        self.console.print(f"[cyan]paused before round {nxt}[/]: [bold]:ask <question or fact>[/] for the agents to "
                           "address, Enter to continue, :show ID, :quit")
        while True:
            try:
                line = self.read_line(f"round {nxt}> ").strip()
            except EOFError:
                line = ""
            if not line:
                rec.timeline.append({"event": "continue", "before_round": nxt})
                return ""
            cmd, _, arg = line.partition(" ")
            if cmd == ":ask" and arg.strip():
                text = arg.strip()
                rec.interjections.append(text)
                self.interjections.append(text)
                rec.timeline.append({"event": "interjection", "before_round": nxt, "text": text})
                self.console.print(f"[cyan]interjection for round {nxt}:[/] {escape(text)}")
                return text
            if cmd in (":quit", ":q", ":exit"):
                rec.error = "left during the debate (:quit)"
                raise _Quit
            if cmd in PAUSE_COMMANDS:
                self.command(line, paused=True)
            else:
                self.console.print("[yellow]during a pause: :ask TEXT, Enter to continue, :show ID, :evidence, "
                                   ":save PATH, :quit (:mode / :policy / :rerun after the verdict)[/]")

    # ------------------------------------------------------------------------------------------ commands
    def command(self, line: str, *, paused: bool = False) -> bool:
        """Run a ``:command``; False when it is unknown. Raises :class:`_Quit` for :quit."""
        cmd, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        c = self.console
        if cmd in (":quit", ":q", ":exit"):
            raise _Quit
        if cmd in (":help", ":h", ":?"):
            c.print(Panel(HELP, title="commands", border_style="cyan"))
        elif cmd == ":show":
            self.show_clause(arg)
        elif cmd == ":evidence":
            v = self.last_verdict()
            c.print(evidence_panel(v.evidence) if v else "[yellow]no verdict yet[/]")
        elif cmd == ":mode":
            if arg not in MODES:
                c.print(f"[yellow]mode is {self.mode}; choose one of {', '.join(MODES)}[/]")
            else:
                self.mode = arg
                c.print(f"mode set to [bold]{arg}[/]" + ("" if paused else " — :rerun to check the output again"))
        elif cmd == ":policy":
            self.set_policies(arg, paused=paused)
        elif cmd == ":ask":
            if not arg:
                c.print("[yellow]:ask needs a question or fact, e.g. :ask Does this apply to banks?[/]")
            elif self.output is None:
                c.print("[yellow]paste an output first; :ask interjects into its debate[/]")
            else:
                self.interjections.append(arg)
                self._run()
        elif cmd == ":rerun":
            self.rerun()
        elif cmd == ":pause":
            if arg in ("on", "off"):
                self.pause = arg == "on"
            c.print(f"pause between rounds: [bold]{'on' if self.pause else 'off'}[/] (:pause on|off)")
        elif cmd == ":save":
            self.save(arg)
        else:
            return False
        return True

    def set_policies(self, arg: str, *, paused: bool = False) -> None:
        names = [p for p in arg.replace(",", " ").split() if p]
        if not names:
            self.console.print(f"policies: [bold]{', '.join(self.policies) if self.policies else 'all'}[/]")
            return
        if names == ["all"]:
            self.policies = None
        else:
            ps = getattr(self.g.components, "policy_set", None)
            unknown = [p for p in names if ps is not None and not _policy_known(ps, p)]
            if unknown:
                packs = sorted({getattr(r, "pack", None) or r.id.split(".", 1)[0] for r in getattr(ps, "rules", [])})
                self.console.print(f"[yellow]unknown policy {', '.join(unknown)}; known packs/acts: "
                                   f"{', '.join(packs)} (or a rule id)[/]")
                return
            self.policies = names
        self.console.print(f"policies set to [bold]{', '.join(self.policies) if self.policies else 'all'}[/]"
                           + ("" if paused else " — :rerun to check the output again"))

    def last_verdict(self) -> Verdict | None:
        for r in reversed(self.runs):
            if r.verdict:
                return Verdict.model_validate(r.verdict)
        return None

    def resolve_id(self, arg: str) -> str:
        """``art_5.1.c`` → ``eu-ai-act:art_5.1.c`` when exactly one clause of the last run has that local id."""
        if ":" in arg:
            return arg
        v = self.last_verdict()
        ids = {e.unit_id for e in v.evidence} | {p for x in v.violations for p in x.provisions} if v else set()
        hits = sorted(i for i in ids if i.split(":", 1)[-1] == arg)
        return hits[0] if len(hits) == 1 else arg

    def show_clause(self, arg: str) -> None:
        c = self.console
        if not arg:
            c.print("[yellow]:show needs a clause id, e.g. :show nis2:art_23.4.a[/]")
            return
        uid = self.resolve_id(arg)
        comps = self.g.components
        if uid.startswith("policy:"):
            rule = comps.policy_set.get(uid.split(":", 1)[1])
            if rule is None:
                c.print(f"[yellow]no policy rule {escape(uid)}[/]")
                return
            body = f"[bold]{escape(rule.title)}[/] ({rule.kind}, {rule.severity})\n{escape(rule.summary)}\n" \
                   f"provisions: {escape(', '.join(rule.provisions))}"
            if rule.key_facts:
                body += "\nkey facts: " + escape("; ".join(f.as_text() for f in rule.key_facts))
            c.print(Panel(body, title=Text(uid), border_style="cyan"))
            return
        try:
            text = comps.retriever.lookup(uid)
        except Exception as e:  # noqa: BLE001 — a broken index must not end the session
            c.print(f"[red]lookup failed: {escape(f'{type(e).__name__}: {e}')}[/]")
            return
        if not text:
            c.print(f"[yellow]no clause {escape(uid)} in the index[/] (ids look like eu-ai-act:art_5.1.c, "
                    "nis2:art_23.4.a, nist-csf-2.0:GV.OC-01)")
            return
        v = self.last_verdict()
        heading = next((e.heading for e in (v.evidence if v else []) if e.unit_id == uid and e.heading), "")
        c.print(Panel(Text(text), title=Text(uid + (f" — {heading}" if heading else "")), border_style="cyan"))

    # ------------------------------------------------------------------------------------------ transcript
    def save(self, arg: str) -> tuple[Path, Path] | None:
        if not arg:
            self.console.print("[yellow]:save needs a path, e.g. :save debate-1[/]")
            return None
        base = Path(arg).expanduser()
        if base.suffix.lower() in (".json", ".md"):
            base = base.with_suffix("")
        jp, mp = base.with_name(base.name + ".json"), base.with_name(base.name + ".md")
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            jp.write_text(json.dumps(transcript(self.g, self.runs), indent=2, ensure_ascii=False), encoding="utf-8")
            mp.write_text(transcript_markdown(self.runs), encoding="utf-8")
        except OSError as e:
            self.console.print(f"[red]cannot save: {escape(str(e))}[/]")
            return None
        self.console.print(f"saved {escape(str(jp))} and {escape(str(mp))}")
        return jp, mp

    # ------------------------------------------------------------------------------------------ the loop
    def read_output(self, first: str) -> str:
        """Lines until an empty one (``:paste``: until a line holding only ``.``)."""
        paste = first.strip() == ":paste"
        lines = [] if paste else [first]
        while True:
            try:
                ln = self.read_line(MORE)
            except EOFError:
                break
            if (paste and ln.strip() == ".") or (not paste and not ln.strip()):
                break
            lines.append(ln)
        return "\n".join(lines).strip("\n")

    def repl(self) -> None:
        c = self.console
        c.print(Panel(f"Paste an AI output and finish with an empty line. [cyan]:help[/] lists the commands.\n"
                      f"profile [bold]{escape(self.g.config.profile)}[/] · mode [bold]{self.mode}[/] · policies "
                      f"[bold]{', '.join(self.policies) if self.policies else 'all'}[/]",
                      title="mad-guardrails debate console", border_style="cyan"))
        while True:
            try:
                line = self.read_line(PROMPT)
            except EOFError:
                c.print()
                return
            except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
                c.print("\n[dim](cleared — Ctrl-D or :quit leaves)[/]")
                continue
            if not line.strip():
                continue
            try:
                if line.startswith(":") and line.strip() != ":paste":
                    if not self.command(line):
                        c.print(f"[yellow]unknown command {escape(line.split()[0])}[/] — :help lists them")
                    continue
                output = self.read_output(line)
                if not output.strip():
                    continue
                try:
                    q = self.read_line(QUESTION).strip()
                except EOFError:
                    q = ""
                self.check(output, q or None)
            except _Quit:
                return
            except KeyboardInterrupt:  # while pasting / at the question: drop what was typed
                c.print("\n[dim](cleared)[/]")
                continue

    def close(self) -> None:
        """Cancel what is still running on the console's loop, finalise its async generators, close it."""
        if self.loop.is_closed():
            return
        try:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        except (RuntimeError, KeyboardInterrupt):
            pass
        finally:
            self.loop.close()


def run_piped(guardrail, text: str, *, query: str | None = None, mode: str = "balanced",
              policies: list[str] | None = None, console: Console | None = None) -> Verdict | None:
    """Non-interactive: check ``text`` once, print the debate and the verdict, no pauses, no prompts."""
    dc = DebateConsole(guardrail, console=console, mode=mode, policies=policies, interactive=False)
    try:
        return dc.check(text, query)
    finally:
        dc.close()


def stdin_is_interactive() -> bool:
    return sys.stdin.isatty()
