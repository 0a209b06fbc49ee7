"""Load policy packs (YAML) into a :class:`PolicySet`: built-in packs, user packs, disabled rules and overrides.

Sources are read in the order given; **later sources take precedence**:

* ``"builtin"`` is ``policies/packs/*.yaml`` (one pack per act);
* a directory is every ``*.yaml`` / ``*.yml`` file in it (sorted by name); a single YAML file is that pack;
* a rule whose id already came from an *earlier* source **replaces** it (override by id, the earlier rule is kept
  in :attr:`PolicySet.replaced`); the same id twice *within one source* is an error (duplicate);
* a pack's ``disable: [ids]`` switches off rules of earlier sources (a rule id, a pack id, or an id prefix such as
  ``eu-ai-act.art5``);
* finally ``disabled=`` (e.g. the config's ``policies.disabled``) switches rules off and ``overrides=`` patches
  fields of rules by id (``{"nis2.art23.incident_reporting": {"default_action": "block"}}``).

Disabled rules stay in :attr:`PolicySet.all_rules` (``enabled=False``) but are left out of :attr:`PolicySet.rules`,
:meth:`PolicySet.get` and :meth:`PolicySet.as_units`.

Errors are :class:`PolicyError` (a ``ConfigError``) whose text is ``<file>:<line>: rule <id>: <problem>. Fix: <how>``;
lines come from the YAML node marks, so a schema error points at the offending field.

    >>> ps = load_packs(["builtin"])
    >>> ps.get("nis2.art23.incident_reporting").key_facts[0].value
    24
    >>> ps.as_units()[0].id.startswith("policy:")
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from mad_guardrails.core.errors import ConfigError
from mad_guardrails.core.paths import package_dir
from mad_guardrails.core.units import Unit
from mad_guardrails.policies.schema import KeyFact, PolicyPack, Rule

BUILTIN_DIR = package_dir("mad_guardrails.policies") / "packs"

__all__ = [
    "BUILTIN_DIR",
    "Origin",
    "ParsedPack",
    "PolicyError",
    "PolicySet",
    "Problem",
    "load_packs",
    "pack_files",
    "read_pack_file",
]


class PolicyError(ConfigError):
    """A policy pack (or the list of packs / disabled ids / overrides) is invalid."""


@dataclass(frozen=True)
class Problem:
    """One finding about a pack file: ``level`` error (fails validation), warning, or unverifiable."""

    file: str
    line: int | None
    message: str
    fix: str = ""
    rule_id: str | None = None
    level: Literal["error", "warning", "unverifiable"] = "error"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        who = f"rule {self.rule_id}: " if self.rule_id else ""
        msg = self.message.rstrip(".")
        return f"{self.where}: {who}{msg}." + (f" Fix: {self.fix}" if self.fix else "")

    def to_error(self) -> PolicyError:
        who = f"rule {self.rule_id}: " if self.rule_id else ""
        return PolicyError(f"{who}{self.message.rstrip('.')}.", where=self.where, fix=self.fix or None)


@dataclass(frozen=True)
class Origin:
    """Where a rule was defined."""

    file: str
    line: int | None
    pack: str
    source: str  # "builtin" or the directory / file given


# ---------------------------------------------------------------------------------------------- YAML reading
Path_ = tuple[Any, ...]


def _line_index(node: yaml.Node, path: Path_ = (), out: dict[Path_, int] | None = None) -> dict[Path_, int]:
    """Map each key path (``("rules", 3, "key_facts", 0, "quote")``) to its 1-based line in the file."""
    if out is None:
        out = {}
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            out.setdefault(path + (key,), k.start_mark.line + 1)
            _line_index(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, path + (i,), out)
    return out


@dataclass
class ParsedPack:
    """One pack file as read: the validated pack (None when invalid), raw data, line index and problems."""

    file: Path
    pack: PolicyPack | None
    data: Any = None
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line(self, *path: Any) -> int | None:
        """Line of the deepest known prefix of ``path``."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def rule_id_at(self, index: int) -> str | None:
        try:
            rid = self.data["rules"][index].get("id")
            return str(rid) if rid is not None else None
        except (KeyError, IndexError, TypeError, AttributeError):
            return None

    def rule_index(self, rule_id: str) -> int | None:
        try:
            for i, r in enumerate(self.data["rules"]):
                if isinstance(r, dict) and r.get("id") == rule_id:
                    return i
        except (KeyError, TypeError):
            pass
        return None


_FIELD_FIXES = {
    "missing": "add the field '{field}' (see policies/schema.py for what it holds)",
    "extra_forbidden": "remove '{field}' or correct its spelling (allowed fields are listed in policies/schema.py)",
    "literal_error": "use one of the allowed values: {expected}",
    "date_from_datetime_parsing": "write the date as YYYY-MM-DD, e.g. 2025-02-02",
    "date_parsing": "write the date as YYYY-MM-DD, e.g. 2025-02-02",
    "date_type": "write the date as YYYY-MM-DD, e.g. 2025-02-02",
    "too_short": "give at least one entry, e.g. provisions: [nis2:art_23.4.a]",
    "list_type": "write a YAML list, e.g. [a, b] or one '- item' per line",
    "string_type": "write a text value (quote it if it looks like a number or date)",
    "bool_type": "write true or false",
    "model_type": "write a mapping of 'field: value' lines",
}


def _fix_for(err: Mapping[str, Any]) -> str:
    loc = [x for x in err.get("loc", ()) if isinstance(x, str)]
    fld = loc[-1] if loc else "?"
    tmpl = _FIELD_FIXES.get(err.get("type", ""))
    if tmpl is None:
        if str(err.get("type", "")).startswith(("float", "int")):
            return f"give a number for '{fld}' (or a quoted text value)"
        return f"correct '{fld}' (see policies/schema.py)"
    expected = (err.get("ctx") or {}).get("expected", "see policies/schema.py")
    return tmpl.format(field=fld, expected=expected)


def read_pack_file(path: str | Path) -> ParsedPack:
    """Read and validate one pack file, collecting *all* problems with their lines (never raises for bad content)."""
    path = Path(path)
    fname = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        return ParsedPack(path, None, problems=[Problem(fname, None, f"not UTF-8 text ({e.reason})",
                                                        "save the file as UTF-8")])
    except OSError as e:
        return ParsedPack(path, None, problems=[Problem(fname, None, f"cannot read the file ({e.strerror})",
                                                        "check the path and permissions")])
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        return ParsedPack(path, None, problems=[Problem(
            fname, line, f"not valid YAML: {e.problem or e.context}",
            "correct the YAML syntax at that line (indentation, a missing ':' or an unquoted ': ' inside a value)")])
    except yaml.YAMLError as e:
        return ParsedPack(path, None, problems=[Problem(fname, None, f"not valid YAML: {e}",
                                                        "correct the YAML syntax")])
    finally:
        loader.dispose()
    parsed = ParsedPack(path, None, data=data, lines=_line_index(node) if node is not None else {})
    if not isinstance(data, dict):
        parsed.problems.append(Problem(fname, 1, "a pack must be a mapping with id, title, act and rules",
                                       "start the file with 'id: <pack id>', 'title: ...', 'act: <doc id>', 'rules:'"))
        return parsed
    try:
        parsed.pack = PolicyPack.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(err["loc"])
            rule_id = parsed.rule_id_at(loc[1]) if len(loc) >= 2 and loc[0] == "rules" and isinstance(
                loc[1], int) else None
            inner = ".".join(str(x) for x in loc[2:]) if rule_id is not None or (
                len(loc) >= 2 and loc[0] == "rules") else ".".join(str(x) for x in loc)
            if len(loc) >= 2 and loc[0] == "rules" and rule_id is None:
                inner = f"rules[{loc[1]}]" + (f".{inner}" if inner else "")
            parsed.problems.append(Problem(
                fname, parsed.line(*loc), f"field '{inner or 'pack'}': {err['msg']}", _fix_for(err), rule_id))
    return parsed


def pack_files(source: str | Path) -> list[Path]:
    """The YAML files of a source ('builtin', a directory or a file)."""
    if str(source) == "builtin":
        root = BUILTIN_DIR
    else:
        root = Path(source).expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise PolicyError("policy source not found", where=str(source),
                          fix="give 'builtin', a directory of *.yaml packs or a *.yaml file")
    return sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


# ---------------------------------------------------------------------------------------------- PolicySet
def _matches(selector: str, rule: Rule) -> bool:
    return rule.id == selector or rule.id.startswith(selector + ".") or rule.pack == selector


class PolicySet:
    """The rules in force: lookup by id / act, and a pseudo-corpus of ``policy:<rule_id>`` units."""

    def __init__(self, rules: Sequence[Rule], packs: Sequence[PolicyPack], origins: Mapping[str, Origin],
                 replaced: Mapping[str, list[Origin]] | None = None, sources: Sequence[str] = ()):
        self._all = list(rules)
        self._by_id = {r.id: r for r in self._all}
        # the packs as in force: each pack holds the rules it contributes now (an overridden rule moves to the pack
        # that replaced it; disabled rules stay, with enabled=False)
        self.packs = [p.model_copy(update={"rules": [r for r in self._all if r.pack == p.id]}) for p in packs]
        self.origins = dict(origins)
        self.replaced = {k: list(v) for k, v in (replaced or {}).items()}
        self.sources = list(sources)
        self._units: list[Unit] | None = None

    # -- access
    @property
    def rules(self) -> list[Rule]:
        """Enabled rules, in load order."""
        return [r for r in self._all if r.enabled]

    @property
    def all_rules(self) -> list[Rule]:
        """All rules including disabled ones."""
        return list(self._all)

    def get(self, rule_id: str, *, include_disabled: bool = False) -> Rule | None:
        """The rule with this id (``policy:`` prefix accepted), None when unknown or disabled."""
        if rule_id.startswith("policy:"):
            rule_id = rule_id.split(":", 1)[1]
        r = self._by_id.get(rule_id)
        if r is None or (not r.enabled and not include_disabled):
            return None
        return r

    def by_act(self, doc: str) -> list[Rule]:
        """Enabled rules of one act (doc id such as 'nis2')."""
        return [r for r in self.rules if r.act == doc]

    def key_facts_in_scope(self, text: str) -> list[tuple[Rule, KeyFact]]:
        """(rule, fact) pairs of enabled rules that may be checked against ``text`` (``KeyFact.in_scope``): use this
        instead of every fact of every rule, so that e.g. NIS2's one-month final report is not compared with a CRA
        statement about its 14-day final report."""
        return [(r, f) for r in self.rules for f in r.key_facts if f.in_scope(text)]

    def acts(self) -> list[str]:
        return sorted({r.act for r in self.rules if r.act})

    def pack_of(self, rule_id: str) -> PolicyPack | None:
        r = self._by_id.get(rule_id)
        return next((p for p in self.packs if r is not None and p.id == r.pack), None)

    def __iter__(self):
        """Iterating a PolicySet yields its packs (see :attr:`packs`); use :attr:`rules` for the rules."""
        return iter(self.packs)

    def __contains__(self, rule_id: object) -> bool:
        return isinstance(rule_id, str) and self.get(rule_id) is not None

    # -- as a corpus
    def as_units(self) -> list[Unit]:
        """One ``Unit(id="policy:<rule_id>", doc="policy", kind="policy_rule")`` per enabled rule, indexable like
        regulation units (so the guardrail can cite rules before any regulation text has been fetched)."""
        if self._units is None:
            self._units = [self._unit(r) for r in self.rules]
        return list(self._units)

    def unit(self, rule_id: str) -> Unit | None:
        r = self.get(rule_id)
        return None if r is None else self._unit(r)

    def _unit(self, r: Rule) -> Unit:
        pack = self.pack_of(r.id)
        origin = self.origins.get(r.id)
        return Unit(id=f"policy:{r.id}", doc="policy", kind="policy_rule", parent=None, heading=r.title,
                    text=rule_text(r), act_title=pack.title if pack else "", number=r.id,
                    source_file=origin.file if origin else None)


def rule_text(r: Rule, *, examples: bool = True) -> str:
    """The text of a rule as a retrieval unit: summary, scope, provisions, key facts and labelled examples."""
    lines = [r.title + ".", r.summary.strip()]
    meta = [f"Kind: {r.kind.replace('_', ' ')}", f"severity {r.severity}", f"default action {r.default_action}"]
    if r.binds:
        meta.append("binds " + ", ".join(r.binds))
    if r.applies_from:
        meta.append(f"applies from {r.applies_from.isoformat()}")
    lines.append("; ".join(meta) + ".")
    lines.append("Provisions: " + ", ".join(r.provisions) + ".")
    for f in r.key_facts:
        q = f' ("{f.quote}")' if f.quote else ""
        lines.append(f"Key fact [{f.provision}] {f.as_text()}{q}.")
    if examples:
        for ex in r.examples:
            tag = "An output that breaks this rule" if ex.label == "violates" else "An output that respects this rule"
            lines.append(f"{tag}: {ex.text.strip()}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- load_packs
def _as_list(x: str | Path | Iterable[str | Path] | None) -> list[str | Path]:
    if x is None:
        return ["builtin"]
    if isinstance(x, (str, Path)):
        return [x]
    return list(x)


def load_packs(sources: str | Path | Iterable[str | Path] | None = ("builtin",), disabled: Iterable[str] = (),
               overrides: Mapping[str, Mapping[str, Any]] | None = None) -> PolicySet:
    """Load packs from ``sources`` (``"builtin"``, directories, files; later ones take precedence), switch off
    ``disabled`` ids and apply ``overrides`` (field patches by rule id). Raises :class:`PolicyError` (file, line,
    fix) on the first invalid pack, duplicate id, unknown disabled id or bad override."""
    rules: dict[str, Rule] = {}
    origins: dict[str, Origin] = {}
    replaced: dict[str, list[Origin]] = {}
    packs: dict[str, PolicyPack] = {}
    srcs = [str(s) for s in _as_list(sources)]
    if not srcs:
        raise PolicyError("no policy sources given", fix="use ['builtin'] and/or directories of YAML packs")
    for src in srcs:
        seen_here: dict[str, Origin] = {}
        pack_ids_here: dict[str, str] = {}
        for f in pack_files(src):
            parsed = read_pack_file(f)
            errors = [p for p in parsed.problems if p.level == "error"]
            if errors:
                raise _first_error(errors, f)
            pack = parsed.pack
            assert pack is not None
            if pack.id in pack_ids_here:
                raise PolicyError(f"pack id '{pack.id}' is used twice in this source (also {pack_ids_here[pack.id]})",
                                  where=f"{f}:{parsed.line('id')}", fix="give each pack file its own id")
            pack_ids_here[pack.id] = str(f)
            # a pack's own `disable:` list applies to what earlier sources loaded
            for sel in pack.disable:
                hit = [rid for rid, r in rules.items() if _matches(sel, r)]
                if not hit:
                    raise PolicyError(f"'disable' names '{sel}', which no earlier source defines",
                                      where=f"{f}:{parsed.line('disable')}",
                                      fix="use the id of a rule or pack loaded before this one "
                                          "(`mad-guardrails policies list` shows them); put this source after it")
                for rid in hit:
                    rules[rid] = rules[rid].model_copy(update={"enabled": False})
            for i, r in enumerate(pack.rules):
                line = parsed.line("rules", i)
                org = Origin(str(f), line, pack.id, src)
                if r.id in seen_here:
                    prev = seen_here[r.id]
                    raise PolicyError(
                        f"rule {r.id}: duplicate id (also defined at {prev.file}:{prev.line}).",
                        where=f"{f}:{line}",
                        fix="rename one of them; to replace a built-in rule put your version in a later source "
                            "(a user pack directory) instead of repeating it within one source")
                seen_here[r.id] = org
                r = r.model_copy(update={"pack": pack.id, "act": r.act or pack.act})
                if r.id in rules:  # override of an earlier source's rule
                    replaced.setdefault(r.id, []).append(origins[r.id])
                    rules.pop(r.id)
                rules[r.id] = r
                origins[r.id] = org
            packs[pack.id] = pack
    for sel in disabled or ():
        hit = [rid for rid, r in rules.items() if _matches(sel, r)]
        if not hit:
            raise PolicyError(f"cannot disable '{sel}': no rule or pack has that id",
                              where="policies.disabled",
                              fix="use a rule id, a pack id or an id prefix shown by `mad-guardrails policies list`")
        for rid in hit:
            rules[rid] = rules[rid].model_copy(update={"enabled": False})
    for rid, patch in (overrides or {}).items():
        if rid not in rules:
            raise PolicyError(f"cannot override '{rid}': no rule has that id", where="policies.overrides",
                              fix="use a rule id shown by `mad-guardrails policies list`")
        data = rules[rid].model_dump()
        bad = set(patch) - set(data)
        if bad or "id" in patch:
            raise PolicyError(f"cannot override field(s) {sorted(bad | ({'id'} & set(patch)))} of rule '{rid}'",
                              where="policies.overrides",
                              fix=f"patch only these fields: {sorted(set(data) - {'id'})}")
        data.update(patch)
        try:
            rules[rid] = Rule.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            raise PolicyError(f"override of rule '{rid}': field '{'.'.join(map(str, err['loc']))}': {err['msg']}",
                              where="policies.overrides", fix=_fix_for(err)) from e
    return PolicySet(list(rules.values()), list(packs.values()), origins, replaced, srcs)


def _first_error(errors: list[Problem], f: Path) -> PolicyError:
    err = errors[0].to_error()
    if len(errors) > 1:
        err = PolicyError(
            f"{'rule ' + errors[0].rule_id + ': ' if errors[0].rule_id else ''}{errors[0].message.rstrip('.')} "
            f"(and {len(errors) - 1} more problem(s) in this file; `mad-guardrails policies validate {f}` lists all).",
            where=errors[0].where, fix=errors[0].fix or None)
    return err
