"""Validate policy packs: schema, duplicate ids, dates, key facts, and — with a corpus — provision ids and quotes.

Every finding is a :class:`~mad_guardrails.policies.loader.Problem` printed as
``<file>:<line>: rule <id>: <problem>. Fix: <how>``. Levels:

* ``error`` — the pack is wrong (bad schema, duplicate id, a provision id missing from the corpus, a quote that is
  not verbatim in its provision, a key fact citing a provision the rule does not list, impossible dates);
* ``warning`` — worth fixing (a rule without a violating or a respecting example, no triggers, a key fact without
  terms, an ``applies_from`` that is none of the act's application dates);
* ``unverifiable`` — provisions of an act that is not in the corpus (e.g. NIST SP 1270, whose pack says
  ``unverifiable_offline: true``): reported, never an error.

    >>> rep = validate_sources(["builtin"], corpus=None)
    >>> rep.ok, rep.checked_provisions
    (True, 0)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from mad_guardrails.core.text import collapse_ws
from mad_guardrails.core.units import DOC_IDS, split_unit_id
from mad_guardrails.policies.loader import ParsedPack, Problem, pack_files, read_pack_file
from mad_guardrails.policies.provisions import ProvisionSource, has_units, open_provisions

__all__ = ["ValidationReport", "validate_sources", "resolve_corpus"]

_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*(\.[a-z0-9][a-z0-9_\-]*)+$")
_EARLIEST, _LATEST = date(1990, 1, 1), date(2100, 1, 1)


@dataclass
class ValidationReport:
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    rules: int = 0
    checked_provisions: int = 0
    checked_quotes: int = 0
    corpus: str | None = None  # description of the provision source used, None when no corpus

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    @property
    def unverifiable(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "unverifiable"]

    @property
    def ok(self) -> bool:
        return not self.errors


def corpus_has_units(corpus_dir: Path | None) -> bool:
    """True for both corpus layouts: shared-style ``<dir>/<act>/*.jsonl`` and the saved corpus that
    ``mad-guardrails corpus add`` / ``fetch`` write (``<dir>/<doc>.units.jsonl``)."""
    return has_units(corpus_dir) or (bool(corpus_dir) and Path(corpus_dir).is_dir()
                                     and any(Path(corpus_dir).glob("*.units.jsonl")))


def resolve_corpus(corpus: str | Path | None | bool = "auto") -> ProvisionSource | None:
    """The provision source to check against: an explicit dir; with ``"auto"`` the project corpus
    (``$GUARDRAILS_HOME/corpus``) when it holds units, else the shared corpus beside the checkout; None/False = none."""
    from mad_guardrails.core.paths import corpus_dir, shared_corpus

    if corpus is None or corpus is False:
        return None
    if corpus == "auto":
        for cand in (corpus_dir(), shared_corpus()):
            if cand is not None and corpus_has_units(cand):
                return open_provisions(cand)
        return None
    p = Path(corpus).expanduser()
    if not corpus_has_units(p):
        from mad_guardrails.core.errors import CorpusError

        raise CorpusError("no units found (expected <dir>/<doc>.units.jsonl as `corpus add` writes, or "
                          "<dir>/<act>/*_units.jsonl / *_core.jsonl)", where=str(p),
                          fix="point --corpus at a folder such as ../shared/data/corpus, or run "
                              "`mad-guardrails corpus fetch` first")
    return open_provisions(p)


def validate_sources(sources: Sequence[str | Path] = ("builtin",), corpus: str | Path | None | bool = "auto",
                     provisions: ProvisionSource | None = None) -> ValidationReport:
    """Validate every pack file of ``sources`` (duplicate ids are errors within a source; across sources a repeated
    id is an override and only noted). ``provisions`` (a ready source) wins over ``corpus``."""
    rep = ValidationReport()
    src = provisions if provisions is not None else resolve_corpus(corpus)
    rep.corpus = getattr(src, "name", None) if src is not None else None
    known_docs = src.docs() if src is not None else set()
    for s in sources:
        seen: dict[str, str] = {}
        files = pack_files(s)
        if not files:  # an empty folder validates nothing: never a pass
            rep.problems.append(Problem(str(s), None, "no policy pack files (*.yaml / *.yml) here",
                                        "point at a folder of YAML packs or at one pack file (`mad-guardrails "
                                        "policies list` shows the built-in ones)"))
        for f in files:
            parsed = read_pack_file(f)
            rep.files.append(str(f))
            rep.problems.extend(parsed.problems)
            if parsed.pack is None:
                continue
            rep.rules += len(parsed.pack.rules)
            _check_pack(parsed, seen, rep, src, known_docs)
    return rep


def _check_pack(parsed: ParsedPack, seen: dict[str, str], rep: ValidationReport, src: ProvisionSource | None,
                known_docs: set[str]) -> None:
    pack = parsed.pack
    assert pack is not None
    fname = str(parsed.file)

    def add(path: tuple, msg: str, fix: str, rule_id: str | None, level: str = "error") -> None:
        rep.problems.append(Problem(fname, parsed.line(*path), msg, fix, rule_id, level))  # type: ignore[arg-type]

    if pack.act not in DOC_IDS:
        add(("act",), f"act '{pack.act}' is not a known doc id", f"use one of {list(DOC_IDS)}", None, "warning")
    timeline_dates = {
        f.value for r in pack.rules if r.kind == "timeline" for f in r.key_facts if f.unit == "date"
    } | {r.applies_from.isoformat() for r in pack.rules if r.kind == "timeline" and r.applies_from}
    for i, r in enumerate(pack.rules):
        base = ("rules", i)
        if r.id in seen:
            add(base + ("id",), f"duplicate id (also defined at {seen[r.id]})",
                "rename one of the two rules; ids must be unique across all packs of a source", r.id)
        else:
            seen[r.id] = f"{fname}:{parsed.line(*base)}"
        if not _RULE_ID.match(r.id):
            add(base + ("id",), "id is not a dotted lower-case id",
                "use '<act>.<article-or-topic>.<name>', e.g. 'nis2.art23.incident_reporting'", r.id)
        elif not r.id.startswith(pack.act + ".") and not r.id.startswith(pack.id + "."):
            add(base + ("id",), f"id does not start with the act id '{pack.act}.'",
                f"prefix the id with '{pack.act}.' so rules can be selected by act", r.id, "warning")
        # dates
        if r.applies_from and not (_EARLIEST <= r.applies_from <= _LATEST):
            add(base + ("applies_from",), f"applies_from {r.applies_from} is not a plausible date",
                "give the date from the act's final provisions (YYYY-MM-DD)", r.id)
        elif (r.applies_from and timeline_dates and r.kind != "timeline"
              and r.applies_from.isoformat() not in timeline_dates):
            add(base + ("applies_from",),
                f"applies_from {r.applies_from} is none of the act's application dates {sorted(timeline_dates)}",
                "use a date stated in the act's final provisions (see the pack's timeline rule)", r.id, "warning")
        # provisions
        for j, pid in enumerate(r.provisions):
            try:
                doc, _ = split_unit_id(pid)
            except ValueError as e:
                add(base + ("provisions", j), str(e), "write '<doc>:<unit>', e.g. 'nis2:art_23.4.a'", r.id)
                continue
            if doc not in DOC_IDS:
                add(base + ("provisions", j), f"provision '{pid}' names unknown act '{doc}'",
                    f"use one of {list(DOC_IDS)}", r.id)
        if len(set(r.provisions)) != len(r.provisions):
            add(base + ("provisions",), "a provision is listed twice", "remove the repeated id", r.id, "warning")
        # key facts
        for j, kf in enumerate(r.key_facts):
            kpath = base + ("key_facts", j)
            if kf.provision not in r.provisions:
                add(kpath + ("provision",), f"key fact '{kf.name}' cites {kf.provision}, which the rule's provisions "
                    "do not list", f"add {kf.provision} to the rule's provisions or correct the key fact", r.id)
            if kf.unit == "date":
                try:
                    d = date.fromisoformat(str(kf.value))
                    if not (_EARLIEST <= d <= _LATEST):
                        raise ValueError
                except ValueError:
                    add(kpath + ("value",), f"key fact '{kf.name}' has date value {kf.value!r}",
                        "write the date as a quoted 'YYYY-MM-DD' string", r.id)
            elif kf.unit in ("hours", "days", "months", "years", "percent") and not isinstance(kf.value, (int, float)):
                add(kpath + ("value",), f"key fact '{kf.name}' in {kf.unit} has non-numeric value {kf.value!r}",
                    "give a number (e.g. 24)", r.id)
            if not kf.terms and kf.checkable:
                add(kpath, f"key fact '{kf.name}' has no terms", "list the phrases that name it in an output "
                    "(e.g. [early warning])", r.id, "warning")
            if not kf.quote:
                add(kpath, f"key fact '{kf.name}' has no quote", "add the verbatim words of the provision", r.id,
                    "warning")
        # examples / triggers
        labels = {e.label for e in r.examples}
        for lab in ("violates", "respects"):
            if lab not in labels:
                add(base + ("examples",), f"no example labelled '{lab}'",
                    f"add an example output that {'breaks' if lab == 'violates' else 'respects'} the rule", r.id,
                    "warning")
        if not r.triggers:
            add(base, "no triggers", "list keywords that make the rule a screening candidate", r.id, "warning")
        # corpus checks
        _check_against_corpus(pack, r, base, add, rep, src, known_docs)


def _check_against_corpus(pack, r, base, add, rep: ValidationReport, src: ProvisionSource | None,
                          known_docs: set[str]) -> None:
    quotes = {kf.provision: [] for kf in r.key_facts}
    for j, kf in enumerate(r.key_facts):
        quotes[kf.provision].append((j, kf))
    for j, pid in enumerate(r.provisions):
        try:
            doc, _ = split_unit_id(pid)
        except ValueError:
            continue
        if (pack.unverifiable_offline and doc == pack.act) or (src is not None and doc not in known_docs):
            why = pack.unverifiable_reason or f"the corpus has no text of '{doc}'"
            add(base + ("provisions", j), f"provision {pid} cannot be checked: {why.strip().rstrip('.')}",
                "check it by hand against the official text", r.id, "unverifiable")
            continue
        if src is None:
            continue
        rep.checked_provisions += 1
        text = src.text(pid)
        if text is None:
            add(base + ("provisions", j), f"provision {pid} does not exist in the corpus ({src.name})",
                "correct the id: paragraphs are '.N' (lines '1.'), points '.a' (lines '(a)'), sub-points '.i'; "
                "`mad-guardrails corpus list` or the units JSONL shows the article's structure", r.id)
            continue
        norm = collapse_ws(text)
        for k, kf in quotes.get(pid, []):
            if not kf.quote:
                continue
            rep.checked_quotes += 1
            if collapse_ws(kf.quote) not in norm:
                add(base + ("key_facts", k, "quote"),
                    f"quote of key fact '{kf.name}' is not verbatim in {pid}",
                    f"copy the exact words from {pid} (apostrophes and spelling as in the text), e.g. "
                    f"{_hint(text, kf.quote)!r}", r.id)


def _hint(text: str, quote: str) -> str:
    """The stretch of ``text`` sharing the most words with ``quote`` (to suggest a fix)."""
    words = collapse_ws(text).split(" ")
    qwords = set(collapse_ws(quote).lower().split(" "))
    n = max(4, len(quote.split()))
    best, best_i = -1, 0
    for i in range(max(1, len(words) - n + 1)):
        score = sum(w.lower() in qwords for w in words[i:i + n])
        if score > best:
            best, best_i = score, i
    return " ".join(words[best_i:best_i + n])


def format_report(rep: ValidationReport, *, show_unverifiable: bool = True) -> Iterable[str]:
    for p in rep.errors:
        yield f"error: {p}"
    for p in rep.warnings:
        yield f"warning: {p}"
    if show_unverifiable:
        for p in rep.unverifiable:
            yield f"unverifiable: {p}"
