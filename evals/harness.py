"""The eval harness: sample cases, run every system on them, store one record per (system, case), compute metrics.

Resumable like audits: each finished record is appended to ``results.jsonl`` and fsynced before it counts, so a killed
run (even SIGKILL) loses only the cases in flight; running the same command again skips what is done. ``run.json``
records the profile's config hash; resuming a folder with another config is refused (mixing verdicts of two configs
would be misleading).

Order: ``mad`` runs first, because the majority-vote baseline gets N = the debate's mean LLM calls per verdict on
the same cases (equal compute). The other systems follow.

    >>> cases = [EvalCase(id=f"s:{i}", set="s", output="x", type=t, expected="allow")
    ...          for i, t in enumerate(["adversarial"] * 6 + ["benign_sensitive"] * 2)]
    >>> sorted(c.type for c in sample_cases(cases, 4, seed=0))
    ['adversarial', 'adversarial', 'benign_sensitive', 'benign_sensitive']
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from mad_guardrails.core.errors import ConfigError, GuardrailError
from mad_guardrails.core.hashing import text_sha256
from mad_guardrails.evals.loaders import QUERY_TYPES, EvalCase, load_sets
from mad_guardrails.evals.metrics import CaseRecord, compute_metrics, paired_wins, sign_test_p

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "run.json"
ALL_SYSTEMS: tuple[str, ...] = ("mad", "single", "majority", "noretrieval", "screening", "claims")
#: systems that never call an LLM (no server is started for a run of only these)
LLM_FREE_SYSTEMS: tuple[str, ...] = ("screening", "claims")


# ------------------------------------------------------------------------------------------------------ sampling
def sample_cases(cases: list[EvalCase], limit: int | None, seed: int = 0) -> list[EvalCase]:
    """Pick ``limit`` cases reproducibly (``seed``): an equal share per query type (a type with too few cases gives
    its remainder to the others), and within a type round-robin over (set, expected decision) groups, so every set
    and every expected decision is represented. No limit = every case, in file order."""
    if limit is None or limit >= len(cases):
        return list(cases)
    if limit <= 0:
        return []
    rng = random.Random(seed)
    by_type: dict[str, list[EvalCase]] = defaultdict(list)
    for c in cases:
        by_type[c.type].append(c)
    types = sorted(by_type, key=lambda t: (len(by_type[t]), QUERY_TYPES.index(t) if t in QUERY_TYPES else 99))
    quota: dict[str, int] = {}
    remaining = limit
    for i, t in enumerate(types):
        quota[t] = min(len(by_type[t]), remaining // (len(types) - i))
        remaining -= quota[t]
    picked: dict[str, list[EvalCase]] = {}
    for t in types:
        groups: dict[tuple[str, str], list[EvalCase]] = defaultdict(list)
        for c in by_type[t]:
            groups[(c.set, c.expected)].append(c)
        pools = []
        for key in sorted(groups):
            pool = list(groups[key])
            rng.shuffle(pool)
            pools.append(pool)
        rng.shuffle(pools)
        out: list[EvalCase] = []
        while len(out) < quota[t]:
            for pool in pools:
                if pool and len(out) < quota[t]:
                    out.append(pool.pop())
        picked[t] = out
    # interleave the types so that a partial (killed) run is already a stratified sample
    order: list[EvalCase] = []
    i = 0
    while any(i < len(v) for v in picked.values()):
        order += [picked[t][i] for t in QUERY_TYPES + tuple(x for x in picked if x not in QUERY_TYPES)
                  if t in picked and i < len(picked[t])]
        i += 1
    return order


# ------------------------------------------------------------------------------------------------------ storage
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RecordStore:
    """``results.jsonl``: one :class:`CaseRecord` per line, crash-safe appends; a later line for the same
    (system, case) replaces an earlier one (that is how ``--retry-errors`` re-runs errored cases)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: dict[tuple[str, str], CaseRecord] = {}
        self.dropped = 0
        self._fd: int | None = None

    def load(self) -> dict[tuple[str, str], CaseRecord]:
        self.records = {}
        if not self.path.exists():
            return self.records
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()
        keep: list[bytes] = []
        for ln in lines:
            if not ln.strip():
                continue
            try:
                r = CaseRecord.model_validate_json(ln)
            except (ValidationError, ValueError):
                self.dropped += 1
                continue
            self.records[r.key] = r
            keep.append(ln)
        if tail.strip() or self.dropped:  # a line cut short by a kill, or garbage: rewrite without it
            self.dropped += bool(tail.strip())
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_bytes(b"".join(x + b"\n" for x in keep))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        return self.records

    def append(self, rec: CaseRecord) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        data = (rec.model_dump_json() + "\n").encode("utf-8")
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)
        self.records[rec.key] = rec

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class RunManifest(BaseModel):
    sets: list[str]
    seed: int
    limit: int | None
    split: str | None = None
    systems: list[str]
    profile: str
    config_hash: str
    models: dict[str, str] = Field(default_factory=dict)
    case_ids: list[str] = Field(default_factory=list)
    majority_n: int | None = None
    majority_n_source: str = ""
    concurrency: int = 1
    started: str = Field(default_factory=_now)
    updated: str = Field(default_factory=_now)
    finished: str | None = None
    runs: int = 1


# ------------------------------------------------------------------------------------------------------ options
class EvalOptions(BaseModel):
    sets: list[str]
    systems: list[str] = Field(default_factory=lambda: list(ALL_SYSTEMS))
    limit: int | None = None
    seed: int = 0
    split: str | None = Field(default=None, description="only the rows of this split (train / dev / test) of sets "
                              "that declare one: the held-out rows of a model trained on the set")
    out: Path
    profile: str = "offline"
    concurrency: int = 2
    majority_n: int | None = Field(default=None, description="override N of the majority baseline")
    retry_errors: bool = False
    progress: bool = True
    chunk: int = Field(default=12, ge=0, description="cases per chunk: every system finishes a chunk before the next "
                                                    "starts, so a stopped run has comparable results (0 = one chunk)")
    report_only: bool = Field(default=False, description="run nothing; recompute metrics from results.jsonl")


class EvalResult(BaseModel):
    out: Path
    metrics: dict[str, Any]
    records: list[CaseRecord]
    manifest: RunManifest
    files: list[Path]


def default_out_dir(sets: list[str], profile: str, seed: int, limit: int | None, split: str | None = None) -> Path:
    """A folder that depends only on the command's arguments, so repeating a command resumes it."""
    from mad_guardrails.core.paths import home

    tag = text_sha256(json.dumps([sorted(sets), profile] + ([split] if split else [])))[:8]
    return home() / "evals" / f"{Path(profile).stem}-{tag}-s{seed}-n{limit if limit is not None else 'all'}"


# ------------------------------------------------------------------------------------------------------ running
def majority_n_from(records: list[CaseRecord]) -> int | None:
    """Equal compute: the debate's mean LLM calls per verdict over the verdicts that used the LLM at all, rounded,
    ≥ 1. Fast paths (no LLM) are taken identically by every graph-based baseline, so they cost zero for all and are
    left out of the mean; a debate's verifier-repair call is included (the majority baseline's repair costs one call
    on top of its N, the debate's one on top of its turns).

    >>> recs = [CaseRecord(system="mad", case_id=str(i), set="s", type="ambiguous", expected="allow",
    ...                    decision="allow", llm_calls=c) for i, c in enumerate([0, 0, 4, 7, 8])]
    >>> majority_n_from(recs)
    6
    """
    calls = [r.llm_calls for r in records if r.system == "mad" and r.decision is not None and r.llm_calls > 0]
    if not calls:
        return None
    return max(1, round(sum(calls) / len(calls)))


#: stop a run after this many infrastructure errors in a row (the LLM server is down: every further case would be
#: an error too)
MAX_INFRA_STREAK = 4


class BackendDown(GuardrailError):
    """The LLM server stopped answering during an eval."""


async def _run_system(system, cases: list[EvalCase], store: RecordStore, concurrency: int,
                      on_done: Callable[[CaseRecord], None]) -> None:
    from mad_guardrails.evals.baselines import INFRA_PREFIX

    sem = asyncio.Semaphore(max(1, concurrency))
    streak = {"n": 0, "last": ""}
    down = asyncio.Event()

    async def one(case: EvalCase) -> None:
        async with sem:
            if down.is_set():
                return
            rec = await system.evaluate(case)
        store.append(rec)
        on_done(rec)
        if rec.error and rec.error.startswith(INFRA_PREFIX):
            streak["n"] += 1
            streak["last"] = rec.error
            if streak["n"] >= MAX_INFRA_STREAK:
                down.set()
        else:
            streak["n"] = 0

    await asyncio.gather(*(one(c) for c in cases))
    if down.is_set():
        raise BackendDown(f"{system.name}: {streak['n']} cases in a row could not reach the LLM server "
                          f"({streak['last'][:200]})",
                          fix="check the server (its log is under $GUARDRAILS_HOME/logs), then run the same command "
                              "with --retry-errors: finished cases are kept")


def run_eval(opts: EvalOptions, *, resources=None) -> EvalResult:
    """Run (or resume) an eval. ``resources`` (an :class:`mad_guardrails.evals.baselines.EvalResources`) may be passed in, e.g.
    by tests that already built a guardrail; otherwise it is built from ``opts.profile`` and closed at the end."""
    from mad_guardrails.evals.baselines import EvalResources
    from mad_guardrails.evals.report import markdown_report, write_plots

    unknown = [s for s in opts.systems if s not in ALL_SYSTEMS]
    if unknown:
        raise ConfigError(f"unknown system(s) {unknown}", fix=f"use some of {', '.join(ALL_SYSTEMS)}")
    systems = [s for s in ALL_SYSTEMS if s in opts.systems]  # mad first (N for majority)
    cases = sample_cases(load_sets(list(opts.sets), opts.split), opts.limit, opts.seed)
    if not cases:
        raise ConfigError("no cases selected", fix="check the set names and --limit")
    by_id = {c.id: c for c in cases}
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    own = resources is None
    res = resources or EvalResources(opts.profile, need_llm=not opts.report_only and any(
        s not in LLM_FREE_SYSTEMS for s in systems))
    try:
        manifest = _open_manifest(out, opts, res, cases)
        store = RecordStore(out / RESULTS_FILE)
        store.load()
        if not opts.report_only:
            asyncio.run(_run_all(systems, cases, store, res, opts, manifest, out))
        store.close()
        # metrics over the cases EVERY system has a record for (a stopped run compares like with like), with the
        # CURRENT labels of each case (a set YAML may have changed since the records were written)
        complete = [c for c in cases if all((s, c.id) in store.records for s in systems)]
        recs = [store.records[(s, c.id)].model_copy(update={"type": c.type, "expected": c.expected, "set": c.set,
                                                           "gold_rules": c.gold_rules})
                for s in systems for c in complete]
        metrics = compute_metrics(recs)
        metrics = {s: metrics[s] for s in systems if s in metrics}
        paired = {}
        if "mad" in metrics:
            for b in systems:
                if b != "mad" and b in metrics:
                    w = paired_wins(recs, "mad", b)
                    w["p"] = sign_test_p(w["a_only"], w["a_only"] + w["b_only"])
                    paired[b] = w
        if len(complete) == len(cases):
            manifest.finished = manifest.finished if opts.report_only else _now()
        manifest.models = res.models or manifest.models
        _write_json(out / MANIFEST_FILE, manifest.model_dump(mode="json"))
        notes = _notes(recs, by_id)
        if len(complete) < len(cases):
            notes.insert(0, f"partial run: {len(complete)} of {len(cases)} sampled cases have a result from every "
                            "system; the metrics cover those (run the same command again to continue)")
        meta = manifest.model_dump(mode="json") | {"n_cases": len(complete), "n_sampled": len(cases),
                                                    "paired": paired, "notes": notes}
        _write_json(out / "metrics.json", {"meta": meta, "metrics": metrics})
        (out / "metrics.md").write_text(markdown_report(metrics, meta), encoding="utf-8")
        files = [out / RESULTS_FILE, out / "metrics.json", out / "metrics.md"] + write_plots(metrics, out)
        return EvalResult(out=out, metrics=metrics, records=recs, manifest=manifest, files=files)
    finally:
        if own:
            res.close()


def _notes(recs: list[CaseRecord], by_id: dict[str, EvalCase]) -> list[str]:
    notes = []
    for s in sorted({r.system for r in recs}):
        fails = Counter((r.failure or "")[:80] for r in recs if r.system == s and r.failure)
        if fails:
            top = "; ".join(f"{n}× {k}" for k, n in fails.most_common(3))
            notes.append(f"{s}: {sum(fails.values())} verdict(s) failed closed — most common: {top}")
        errs = Counter((r.error or "")[:80] for r in recs if r.system == s and r.error)
        if errs:
            notes.append(f"{s}: {sum(errs.values())} case(s) not run — " + "; ".join(
                f"{n}× {k}" for k, n in errs.most_common(3)))
    return notes


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _open_manifest(out: Path, opts: EvalOptions, res, cases: list[EvalCase]) -> RunManifest:
    p = out / MANIFEST_FILE
    m = RunManifest(sets=list(opts.sets), seed=opts.seed, limit=opts.limit, split=opts.split,
                    systems=list(opts.systems),
                    profile=res.config.profile, config_hash=res.config_hash, models=res.models,
                    case_ids=[c.id for c in cases], concurrency=opts.concurrency)
    if p.exists():
        try:
            old = RunManifest.model_validate_json(p.read_text(encoding="utf-8"))
        except (ValidationError, ValueError):
            old = None
        if old is not None:
            if old.config_hash != m.config_hash:
                raise ConfigError(
                    f"{out} holds results of another configuration (config hash {old.config_hash}, now "
                    f"{m.config_hash}, profile {old.profile!r})",
                    fix="use another --out folder, or delete that folder to start over")
            m.started, m.runs = old.started, old.runs + 1
            m.majority_n, m.majority_n_source = old.majority_n, old.majority_n_source
    _write_json(p, m.model_dump(mode="json"))
    return m


async def _run_all(systems: list[str], cases: list[EvalCase], store: RecordStore, res, opts: EvalOptions,
                   manifest: RunManifest, out: Path) -> None:
    """Run the systems chunk by chunk (``opts.chunk`` cases; mad first inside a chunk). Majority's N is fixed the
    first time it is needed (from mad's records so far) and kept in run.json for the rest of the run and resumes."""
    from mad_guardrails.core.progress import console, make_progress
    from mad_guardrails.evals.baselines import make_system

    def todo(system: str, chunk: list[EvalCase]) -> list[EvalCase]:
        return [c for c in chunk if (r := store.records.get((system, c.id))) is None
                or (opts.retry_errors and r.error is not None)]

    total = sum(len(todo(s, cases)) for s in systems)
    done_before = len(cases) * len(systems) - total
    if done_before:
        console.print(f"[dim]resuming: {done_before} of {len(cases) * len(systems)} (system, case) results "
                      f"already in {out / RESULTS_FILE}[/]")
    if not total:
        return
    with console.status("loading the guardrail (index, models, LLM server) and warming up..."):
        await asyncio.to_thread(res.warm_up)
    counts: dict[str, Counter] = defaultdict(Counter)
    built: dict[str, Any] = {}
    size = opts.chunk or len(cases)
    chunks = [cases[i:i + size] for i in range(0, len(cases), size)]
    try:
        with make_progress(disable=not opts.progress) as progress:
            task = progress.add_task("eval", total=total)
            for ci, chunk in enumerate(chunks, 1):
                for name in systems:
                    work = todo(name, chunk)
                    if not work:
                        continue
                    if name == "majority" and (manifest.majority_n is None or (
                            opts.majority_n is not None and opts.majority_n != manifest.majority_n)):
                        manifest.majority_n, manifest.majority_n_source = _majority_n(opts, store, cases, res)
                        _write_json(out / MANIFEST_FILE, manifest.model_dump(mode="json"))
                        console.print(f"[dim]majority N = {manifest.majority_n} "
                                      f"({manifest.majority_n_source})[/]")
                    if name not in built:
                        built[name] = make_system(name, res, majority_n=manifest.majority_n, seed=opts.seed)

                    def on_done(rec: CaseRecord, _name=name, _ci=ci) -> None:
                        counts[_name][rec.decision or "error"] += 1
                        c = counts[_name]
                        progress.update(task, advance=1, description=(
                            f"chunk {_ci}/{len(chunks)} {_name}: allow {c['allow']} flag {c['flag']} "
                            f"block {c['block']}" + (f" error {c['error']}" if c["error"] else "")))

                    progress.update(task, description=f"chunk {ci}/{len(chunks)} {name}: starting")
                    await _run_system(built[name], work, store, opts.concurrency, on_done)
    finally:
        for system in built.values():
            await system.aclose()
        if counts:
            console.print("[dim]" + "; ".join(f"{k}: {sum(v.values())} case(s) run" for k, v in counts.items())
                          + "[/]")


def _majority_n(opts: EvalOptions, store: RecordStore, cases: list[EvalCase], res) -> tuple[int, str]:
    if opts.majority_n is not None:
        return opts.majority_n, "set by --majority-n"
    mad = [r for c in cases if (r := store.records.get(("mad", c.id))) is not None]
    n = majority_n_from(mad)
    if n is not None:
        used = sum(1 for r in mad if r.llm_calls > 0)
        return n, f"mad's mean LLM calls per verdict on the {used} case(s) it had sent to the LLM when fixed"
    n = res.nominal_debate_calls()
    return n, "no mad records: debaters × max rounds + coordinator"


def load_records(out: Path) -> list[CaseRecord]:
    """The records of a finished (or partial) run folder."""
    store = RecordStore(Path(out) / RESULTS_FILE)
    with contextlib.suppress(FileNotFoundError):
        store.load()
    return list(store.records.values())
