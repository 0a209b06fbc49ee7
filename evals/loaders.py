"""Eval sets are FILES: a YAML in ``evals/sets/`` says where the rows are, which columns hold the output / query /
context / id, which rows to keep, and how each row maps to a query type and an expected decision. A new set needs
no code — write a YAML next to the others (or anywhere, and pass its path).

    >>> spec = load_spec("xstest_completions")
    >>> spec.format, spec.columns.output
    ('csv', 'completion')
    >>> cases = load_set("xstest_completions")                    # doctest: +SKIP
    >>> cases[0].type, cases[0].expected                          # doctest: +SKIP
    ('benign_sensitive', 'allow')

A set YAML (all keys but ``name``, ``path`` and the rules are optional)::

    name: my_set
    description: one line
    path: package:data/my_cases.jsonl      # 'shared:' = the shared data dir, 'package:' = the evals package; a plain path is a file; globs allowed
    format: jsonl                                # csv | jsonl (default: from the file suffix)
    columns:                                     # a column, a template with {column} placeholders, or '=literal'
      id: id                                     # default: the row number; '{_stem}' = the file's stem
      output: output
      query: query
      context: null
      gold_rules: gold_rules                     # a list column, or a string split on ',' / ';'
    meta: [category]                             # columns kept on the case (reports group by them)
    filters:                                     # rows must match every condition to be kept
      - {field: agreement, equals: "TRUE"}
    exclude:                                     # rows matching all conditions of any entry are dropped
      - {worst-label: {equals: Unwanted}, best-label: {in: [Consistent]}}
    type_column: type                            # optional: the type is a column (rules cover empty cells)
    expected_column: expected                    # optional: likewise the expected decision
    type_rules:                                  # first match wins; a rule without 'when' always matches
      - {when: {label: {equals: unsafe}}, type: adversarial, note: why}
      - {type: benign_sensitive}
    expected_rules:
      - {when: {final_label: {in: [1_full_compliance]}, label: {equals: unsafe}}, expected: block}
      - {expected: allow}
    split:                                       # optional: which rows a model trained on (`eval --split test`)
      key: query                                 # a column (or template); rows sharing a key share a split
      buckets: {test: [0, 1], dev: [2]}          # sha256 of the lowercased, whitespace-collapsed key, first 8 hex
      modulo: 10                                 # digits mod ``modulo``; a bucket not named is ``train``

Conditions on a field: ``equals``, ``not_equals``, ``in``, ``not_in``, ``startswith``, ``contains``, ``regex``
(search, case-insensitive), ``empty`` (true/false), ``min_len`` / ``max_len``. Several fields in one ``when`` must all
match. ``_stem`` (file stem) and ``_row`` (row number) are pseudo-fields every row has.
"""

from __future__ import annotations

import csv
import glob
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mad_guardrails.core.errors import ConfigError, InputError
from mad_guardrails.core.paths import package_dir, shared_corpus
from mad_guardrails.core.records import iter_jsonl
from mad_guardrails.core.yamlio import read_named_yaml, validate_yaml, yaml_names

QueryType = Literal["benign_sensitive", "ambiguous", "adversarial"]
Expected = Literal["allow", "flag", "block"]
QUERY_TYPES: tuple[str, ...] = ("benign_sensitive", "ambiguous", "adversarial")
SETS_DIR = package_dir("mad_guardrails.evals") / "sets"

csv.field_size_limit(16 * 1024 * 1024)


class EvalCase(BaseModel):
    """One case of an eval set: the AI output to check, and what the guardrail should decide."""

    id: str = Field(description="'<set>:<row id>', unique across sets")
    set: str
    output: str
    query: str | None = None
    context: str | None = None
    type: QueryType
    expected: Expected
    gold_rules: list[str] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    split: str | None = Field(default=None, description="train / dev / test under the set's split rule (None: none)")


# ------------------------------------------------------------------------------------------------ the YAML schema
class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    startswith: str | list[str] | None = None
    contains: str | None = None
    regex: str | None = None
    empty: bool | None = None
    min_len: int | None = None
    max_len: int | None = None

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v

    def matches(self, value: Any) -> bool:
        s = "" if value is None else (value if isinstance(value, str) else json.dumps(value) if isinstance(
            value, list | dict) else str(value))
        fs = self.model_fields_set
        if "equals" in fs and s != str(self.equals):
            return False
        if "not_equals" in fs and s == str(self.not_equals):
            return False
        if self.in_ is not None and s not in {str(x) for x in self.in_}:
            return False
        if self.not_in is not None and s in {str(x) for x in self.not_in}:
            return False
        if self.startswith is not None:
            pre = [self.startswith] if isinstance(self.startswith, str) else self.startswith
            if not any(s.startswith(p) for p in pre):
                return False
        if self.contains is not None and self.contains.lower() not in s.lower():
            return False
        if self.regex is not None and not re.search(self.regex, s, re.IGNORECASE):
            return False
        if self.empty is not None and (not s.strip()) != self.empty:
            return False
        if self.min_len is not None and len(s) < self.min_len:
            return False
        return not (self.max_len is not None and len(s) > self.max_len)


def _matches(when: dict[str, Condition] | None, row: dict[str, Any]) -> bool:
    return all(cond.matches(row.get(field)) for field, cond in (when or {}).items())


class Filter(Condition):
    field: str


class TypeRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: dict[str, Condition] | None = None
    type: QueryType
    note: str = ""


class ExpectedRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: dict[str, Condition] | None = None
    expected: Expected
    note: str = ""


class Columns(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    output: str
    query: str | None = None
    context: str | None = None
    gold_rules: str | None = None


class SplitRule(BaseModel):
    """How a set's rows fall into the train / dev / test splits a model of this project was trained on (by a key,
    e.g. the prompt, so that all answers to one prompt share a split). The harm screen's rule
    (``bench/gpu/harm/data.py``: ``split_of``) is ``key: query, buckets: {test: [0, 1], dev: [2]}, modulo: 10``."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="the column (or template) whose text decides the split")
    buckets: dict[str, list[int]] = Field(description="split name -> hash buckets; the other buckets are 'train'")
    modulo: int = Field(default=10, ge=2)
    note: str = ""

    def of(self, text: str) -> str:
        """The split of one key text.

        >>> SplitRule(key="query", buckets={"test": [0, 1], "dev": [2]}).of("How do I kill a Python process?")
        'train'
        """
        import hashlib

        h = int(hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()[:8], 16) % self.modulo
        return next((name for name, b in self.buckets.items() if h in b), "train")


class SetSpec(BaseModel):
    """The parsed set YAML (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    license: str = ""
    path: str
    format: Literal["csv", "jsonl"] | None = None
    columns: Columns
    meta: list[str] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    exclude: list[dict[str, Condition]] = Field(default_factory=list,
                                                description="rows matching every condition of any entry are dropped")
    type_rules: list[TypeRule] = Field(default_factory=list)
    expected_rules: list[ExpectedRule] = Field(default_factory=list)
    type_column: str | None = Field(default=None, description="take the type from this column (rules then apply "
                                                              "only where it is empty)")
    expected_column: str | None = Field(default=None, description="take the expected decision from this column")
    max_output_chars: int | None = Field(default=None, description="drop rows whose output is longer")
    split: SplitRule | None = Field(default=None, description="the train / dev / test split of a model trained on "
                                    "this set (``eval --split test`` keeps the held-out rows)")
    source: Path | None = Field(default=None, exclude=True, description="the YAML file (set by load_spec)")

    @model_validator(mode="after")
    def _has_mapping(self) -> SetSpec:
        if not self.type_rules and not self.type_column:
            raise ValueError("give type_rules (or type_column): how each row maps to a query type")
        if not self.expected_rules and not self.expected_column:
            raise ValueError("give expected_rules (or expected_column): each row's expected decision")
        return self



# ------------------------------------------------------------------------------------------------ resolution
def data_root(prefix: str) -> Path:
    """``shared`` = the shared data dir beside the checkout; ``package`` = the evals package (its ``data/`` holds
    the project's own sets), the same in a checkout and an installed wheel."""
    if prefix == "package":
        return package_dir("mad_guardrails.evals")
    if prefix == "shared":
        sc = shared_corpus()
        if sc is None:
            raise ConfigError("the shared data dir (../shared/data beside the checkout) is not present",
                              fix="run from a checkout with ../shared/data, or point the set's path at a package: file")
        return sc.parent
    raise ConfigError(f"unknown data root prefix {prefix!r}", fix="use 'shared:<path>' or 'package:<path>'")


def resolve_paths(spec: SetSpec) -> list[Path]:
    prefix, sep, rel = spec.path.partition(":")
    if sep and prefix in ("shared", "package"):
        base = data_root(prefix)
    else:
        rel = spec.path
        base = spec.source.parent if spec.source is not None else Path.cwd()
    pattern = str(base / rel) if not Path(rel).is_absolute() else rel
    paths = sorted(Path(p) for p in glob.glob(pattern)) if any(ch in rel for ch in "*?[") else [Path(pattern)]
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        raise ConfigError(f"set {spec.name!r}: data file not found: {missing[0] if missing else pattern}",
                          where=str(spec.source or spec.name),
                          fix="correct 'path' (prefix 'shared:' for ../shared/data, 'package:' for the evals package)")
    return paths


def available_sets() -> list[str]:
    return yaml_names(SETS_DIR)


def load_spec(name_or_path: str | Path) -> SetSpec:
    """Parse a set YAML by name (``evals/sets/<name>.yaml``) or path; errors name the file, field and fix."""
    p, data = read_named_yaml(name_or_path, SETS_DIR, "eval set")
    data.setdefault("name", p.stem)
    spec = validate_yaml(SetSpec, data, p, "evals/loaders.py")
    spec.source = p
    return spec


# ------------------------------------------------------------------------------------------------ reading rows
def _read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    try:
        if fmt == "csv":
            with path.open(encoding="utf-8", newline="") as f:
                return list(csv.DictReader(f))
        rows = []
        for n, row in iter_jsonl(path, fix="repair or remove that line"):
            if not isinstance(row, dict):
                raise InputError(f"line {n} is not a JSON object", where=str(path), fix="one object per line")
            rows.append(row)
        return rows
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 (byte {e.start})", where=str(path), fix="re-encode the file as UTF-8") from e


_TEMPLATE = re.compile(r"\{([A-Za-z0-9_\- .]+)\}")


def _field(row: dict[str, Any], spec_value: str | None) -> Any:
    """A column name, a template with {column} placeholders, or a literal after '='."""
    if spec_value is None:
        return None
    if spec_value.startswith("="):
        return spec_value[1:]
    if "{" in spec_value:
        return _TEMPLATE.sub(lambda m: "" if row.get(m.group(1)) is None else str(row.get(m.group(1))),
                             spec_value).strip() or None
    return row.get(spec_value)


def _as_text(v: Any) -> str | None:
    if v is None:
        return None
    s = v if isinstance(v, str) else str(v)
    return s if s.strip() else None


def _as_list(v: Any) -> list[str] | None:
    if v is None or v == "":
        return None
    if isinstance(v, list):
        return [str(x) for x in v]
    return [x.strip() for x in re.split(r"[;,]", str(v)) if x.strip()]


def _from_column(row: dict[str, Any], column: str | None, allowed: tuple[str, ...], where: str, n: int,
                 path: Path) -> str | None:
    if column is None:
        return None
    v = row.get(column)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if str(v) not in allowed:
        raise InputError(f"row {n} of {path.name}: {column} = {v!r} is not one of {', '.join(allowed)}", where=where,
                         fix=f"correct the row, or map the values with rules instead of '{column}'")
    return str(v)


def load_set(name_or_path: str | Path | SetSpec) -> list[EvalCase]:
    """All cases of a set, in file order, mapped to type and expected decision by the set's rules."""
    spec = name_or_path if isinstance(name_or_path, SetSpec) else load_spec(name_or_path)
    cases: list[EvalCase] = []
    seen: set[str] = set()
    where = str(spec.source or spec.name)
    paths = resolve_paths(spec)
    for path in paths:
        fmt = spec.format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        for n, raw in enumerate(_read_rows(path, fmt), 1):
            row = dict(raw)
            row.setdefault("_stem", path.stem)
            row.setdefault("_row", n)
            if not all(f.matches(row.get(f.field)) for f in spec.filters):
                continue
            if any(_matches(ex, row) for ex in spec.exclude):
                continue
            output = _as_text(_field(row, spec.columns.output))
            if output is None:
                continue  # nothing to check (empty completion); counted by `mad-guardrails eval --list`
            if spec.max_output_chars is not None and len(output) > spec.max_output_chars:
                continue
            rid = _as_text(_field(row, spec.columns.id)) if spec.columns.id else None
            rid = rid or (f"{path.stem}-{n}" if len(paths) > 1 else str(n))
            cid = f"{spec.name}:{rid}"
            if cid in seen:
                raise InputError(f"duplicate case id {cid!r} (row {n} of {path.name})", where=where,
                                 fix="make columns.id unique, e.g. a template '{_stem}:{id}'")
            seen.add(cid)
            qtype = _from_column(row, spec.type_column, QUERY_TYPES, where, n, path) or next(
                (r.type for r in spec.type_rules if _matches(r.when, row)), None)
            expected = _from_column(row, spec.expected_column, ("allow", "flag", "block"), where, n, path) or next(
                (r.expected for r in spec.expected_rules if _matches(r.when, row)), None)
            if qtype is None or expected is None:
                raise ConfigError(f"row {n} of {path.name} (id {rid}) matches no "
                                  f"{'type_rules' if qtype is None else 'expected_rules'} entry", where=where,
                                  fix="add a final rule without 'when' as the default")
            cases.append(EvalCase(
                id=cid, set=spec.name, output=output, query=_as_text(_field(row, spec.columns.query)),
                context=_as_text(_field(row, spec.columns.context)), type=qtype, expected=expected,
                gold_rules=_as_list(_field(row, spec.columns.gold_rules)),
                meta={k: row.get(k) for k in spec.meta if k in row},
                split=spec.split.of(_as_text(_field(row, spec.split.key)) or "") if spec.split else None))
    return cases


def load_sets(names: list[str | Path], split: str | None = None) -> list[EvalCase]:
    """Cases of several sets (ids are prefixed by set name, so they never collide across sets); with ``split``,
    only the rows of that split (every set must then declare a ``split`` rule)."""
    out: list[EvalCase] = []
    for n in names:
        spec = load_spec(n)
        if split is not None and spec.split is None:  # before any row is read
            raise ConfigError(f"set {spec.name!r} declares no split rule, so --split {split} cannot select from it",
                              where=str(spec.source or spec.name),
                              fix="add a 'split:' block to the set YAML (see evals/loaders.py) or drop --split")
        out += [c for c in load_set(spec) if split is None or c.split == split]
    return out
