"""The concurrent, resumable audit runner.

Every finished row is appended to ``verdicts.jsonl`` as one line and fsynced before the next one is counted, so a
killed run (Ctrl-C, SIGKILL, a power cut) loses at most the rows in flight. Starting the same audit again:

* repairs the file: a partially written last line and any line that is not a complete result are dropped, and a second
  row for an id is dropped (the first complete one is kept);
* skips the ids that already have a result and checks only the rest;
* at the end rewrites the file in input order with exactly one row per input id.

A row is ``{"id", "status": "ok"|"error", "verdict": {...}|null, "error": str|null, "metadata": {...}, "line",
"query", "output"}``. ``error`` rows are inputs that could not be checked (see :mod:`mad_guardrails.guardrails.audit.reader`) or a
check that raised; a check that failed inside the guardrail is an ``ok`` row whose verdict failed closed (``flag``).

Rows that failed closed because of an infrastructure fault (connection, timeout, HTTP error, crash — see
:mod:`mad_guardrails.core.failures`; not a verifier "no") carry ``failure_kind: "infra"``; they are counted apart
(:func:`fault_counts`) and ``retry_failed=True`` checks only them again: each retried row replaces its failed row
(the failed rows are taken out of the file before the retry starts, so an interrupted retry just leaves them to be
checked on the next run; never two rows for one id).

``run.json`` beside the results records the config hash and mode; resuming with another config or mode is refused
(mixing verdicts of two configs in one report would be misleading) unless ``restart=True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from mad_guardrails.core.errors import ConfigError, InputError
from mad_guardrails.core.hashing import file_sha256, text_sha256
from mad_guardrails.core.verdict import Verdict
from mad_guardrails.guardrails.audit.reader import AuditRow, reason

RESULTS_FILE = "verdicts.jsonl"
MANIFEST_FILE = "run.json"
CHECKPOINT_FILE = "checkpoints.sqlite"


class ResultRow(BaseModel):
    """One line of ``verdicts.jsonl``."""

    id: str
    status: Literal["ok", "error"]
    verdict: dict[str, Any] | None = None
    error: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    line: int | None = None
    query: str | None = None
    output: str | None = None
    failure_kind: Literal["infra", "output", "input"] | None = Field(
        default=None, description="infra: failed closed / raised on an infrastructure fault (``--retry-failed`` "
        "checks it again); output: the model's answer was unusable; input: the row cannot be checked as written")

    @model_validator(mode="after")
    def _classify(self) -> ResultRow:
        """Rows written before the field existed get it from their verdict / error text."""
        if self.failure_kind is None:
            if self.status == "ok" and self.verdict:
                if "failure_kind" in self.verdict:  # written by this version
                    self.failure_kind = self.verdict["failure_kind"]
                else:  # an older verdict: classify its failure / failed turns as the Verdict model does
                    with contextlib.suppress(ValidationError):
                        self.failure_kind = Verdict.model_validate(self.verdict).failure_kind
            elif self.status == "error":
                self.failure_kind = "infra" if "the check raised" in (self.error or "") else "input"
        return self

    @property
    def infra_fault(self) -> bool:
        """The row failed on an infrastructure fault (a retry may give a real verdict)."""
        return self.failure_kind == "infra"

    @property
    def decision(self) -> str:
        """``allow`` / ``flag`` / ``block``, or ``error``."""
        return self.verdict["decision"] if self.status == "ok" and self.verdict else "error"

    def parsed(self) -> Verdict | None:
        return Verdict.model_validate(self.verdict) if self.verdict else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` (bytes, or chunks of bytes written as they come) to ``path`` so that a crash leaves either the
    old or the new file, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for chunk in (data,) if isinstance(data, bytes) else data:
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def file_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` of each line of ``path``, the newline included (a last line without one is cut short)."""
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            yield offset, line
            offset += len(line)


def scan_results(path: Path, repaired: list[str]) -> Iterator[tuple[int, ResultRow]]:
    """``(offset, row)`` of the first valid row per id of a results file, read line by line. What a repair must drop
    (a partially written last line, unreadable lines, duplicates) is added to ``repaired`` once the scan is done:
    the file needs rewriting exactly when it is not empty."""
    if not path.exists():
        return
    seen: set[str] = set()
    bad = dup = 0
    for offset, line in file_lines(path):
        if not line.endswith(b"\n"):
            if line.strip():
                repaired.append(f"dropped a partially written last line ({len(line)} bytes)")
            break
        if not line.strip():
            continue
        row = _valid_row(line)
        if row is None:
            bad += 1
        elif row.id in seen:
            dup += 1
        else:
            seen.add(row.id)
            yield offset, row
    if bad:
        repaired.append(f"dropped {bad} unreadable line(s)")
    if dup:
        repaired.append(f"dropped {dup} duplicate row(s) (kept the first per id)")


def _valid_row(line: bytes) -> ResultRow | None:
    try:
        row = ResultRow.model_validate_json(line)
        if row.status == "ok":
            if row.verdict is None:
                return None
            Verdict.model_validate(row.verdict)
        elif not row.error:
            return None
        return row
    except (ValidationError, ValueError):
        return None


class ResultStore:
    """``verdicts.jsonl``: crash-safe appends, repair and dedupe on open."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, ResultRow] = {}
        self.repaired: list[str] = []  # what load() fixed, for the log
        self._fd: int | None = None

    def load(self) -> dict[str, ResultRow]:
        """Read the finished rows, repairing the file in place when it holds partial / broken / duplicate lines."""
        self.repaired = []
        self.rows = {row.id: row for _, row in scan_results(self.path, self.repaired)}
        if self.repaired:
            self._rewrite(list(self.rows.values()))
        return self.rows

    def _rewrite(self, rows: list[ResultRow]) -> None:
        self.close()
        atomic_write(self.path, b"".join(self._encode(r) for r in rows))

    @staticmethod
    def _encode(row: ResultRow) -> bytes:
        return (row.model_dump_json() + "\n").encode("utf-8")

    def append(self, row: ResultRow) -> None:
        """Append one row and fsync it; a row for an id already stored is ignored (the first one wins)."""
        if row.id in self.rows:
            return
        if self._fd is None:
            new = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if new:
                _fsync_dir(self.path.parent)
        data = self._encode(row)
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)
        self.rows[row.id] = row

    def drop(self, ids: list[str]) -> int:
        """Take the rows of ``ids`` out of the file (atomically), so that they are checked again; returns how many."""
        gone = [i for i in ids if i in self.rows]
        if gone:
            for i in gone:
                del self.rows[i]
            self._rewrite(list(self.rows.values()))
        return len(gone)

    def finalize(self, order: list[str]) -> list[ResultRow]:
        """Rewrite the file in input order, one row per input id; rows of ids not in the input are dropped."""
        rows = [self.rows[i] for i in order if i in self.rows]
        self._rewrite(rows)
        self.rows = {r.id: r for r in rows}
        return rows

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Manifest(BaseModel):
    """``run.json``: what produced the results in a folder."""

    input: str
    input_sha256: str
    profile: str = ""
    config_hash: str = ""
    mode: str = "balanced"
    models: dict[str, str] = Field(default_factory=dict)
    started: str = Field(default_factory=_now)
    updated: str = Field(default_factory=_now)
    finished: str | None = None
    runs: int = 1


class Counts(BaseModel):
    allow: int = 0
    flag: int = 0
    block: int = 0
    error: int = 0
    infra: int = Field(0, description="rows that failed on an infrastructure fault (also counted in their decision)")

    def add(self, decision: str) -> None:
        setattr(self, decision, getattr(self, decision) + 1)

    def add_row(self, row: ResultRow) -> None:
        """Count a finished row: a ``ResultRow``, or the Ray driver's ``Brief`` (its ``decision`` and
        ``infra_fault``)."""
        self.add(row.decision)
        self.infra += row.infra_fault

    @property
    def total(self) -> int:
        return self.allow + self.flag + self.block + self.error

    def markup(self) -> str:
        return (f"[green]allow {self.allow}[/] [yellow]flag {self.flag}[/] [red]block {self.block}[/] "
                f"[magenta]error {self.error}[/]" + (f" [bold magenta]infra {self.infra}[/]" if self.infra else ""))


class FaultCounts(BaseModel):
    """Rows that failed, by kind (``summary.json`` → ``faults``): infrastructure faults apart from the rest."""

    infra: int = Field(0, description="failed closed or raised on a connection error, timeout, HTTP error or crash")
    output: int = Field(0, description="failed closed because the model's answer was unusable")
    input: int = Field(0, description="error rows: the input row cannot be checked as written")
    infra_ids: list[str] = Field(default_factory=list, description="ids of the infra rows (`audit --retry-failed`)")


def fault_counts(rows: list[ResultRow]) -> FaultCounts:
    """Count the failed rows by kind.

    >>> fault_counts([ResultRow(id="a", status="error", error="line 1: the check raised OSError: x")]).infra
    1
    """
    c = FaultCounts()
    for r in rows:
        if r.failure_kind is not None:
            setattr(c, r.failure_kind, getattr(c, r.failure_kind) + 1)
            if r.infra_fault:
                c.infra_ids.append(r.id)
    return c


class AuditOutcome(BaseModel):
    rows: list[ResultRow]
    counts: Counts
    resumed: int = Field(0, description="rows found finished in the results file and skipped")
    retried: int = Field(0, description="rows that had failed on an infrastructure fault, checked again")
    checked: int = Field(0, description="rows checked (or recorded as errors) by this run")
    repaired: list[str] = Field(default_factory=list)
    elapsed_s: float = 0.0
    manifest: Manifest


def thread_id(row: AuditRow) -> str:
    """The checkpoint thread of a row: its id plus a hash of what is checked (an edited row starts afresh)."""
    h = text_sha256(f"{row.output}\x00{row.query}\x00{row.context}\x00{row.policies}")
    return f"audit-{row.id}-{h[:10]}"


class AuditRunner:
    """Check the rows of an audit, ``concurrency`` at a time, with a guardrail opened only when there is work.

    ``open_guardrail()`` returns a :class:`~mad_guardrails.guardrails.guardrail.Guardrail` (used as a context manager and closed at
    the end); it is not called when every row already has a result (resuming a finished audit just re-reports).
    The graph's checkpointer, when it has one, lets a check cut short mid-debate resume (thread ``audit-<id>-<content hash>``); the
    thread is deleted once its row is saved.

        >>> runner = AuditRunner(config, "audit-out/x", concurrency=4)                      # doctest: +SKIP
        >>> outcome = runner.run(read_rows("x.jsonl"), "x.jsonl", lambda: Guardrail(config))  # doctest: +SKIP
    """

    def __init__(self, config, out_dir: str | Path, *, mode: str = "balanced", concurrency: int = 4,
                 progress: bool = True, profile: str = ""):
        if concurrency < 1:
            raise InputError(f"concurrency must be at least 1, got {concurrency}", fix="pass --concurrency 1 or more")
        if mode not in ("strict", "balanced", "permissive"):
            raise InputError(f"unknown mode {mode!r}", fix="use one of strict, balanced, permissive")
        self.config = config
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InputError("--out names a file, not a folder", where=str(self.out_dir),
                             fix="pass a folder for the results (it is created when missing), e.g. --out audit-out/x")
        self.mode = mode
        self.concurrency = concurrency
        self.progress = progress
        self.profile = profile or config.profile
        self.store = ResultStore(self.out_dir / RESULTS_FILE)
        self.g = None
        self._retry_ids: set[str] = set()
        self.notes: list[str] = []  # what the user should know about a resumed run

    @property
    def checkpoint_path(self) -> Path:
        """The SQLite checkpoint of in-flight checks (pass it to ``Guardrail(checkpoint=...)``)."""
        return self.out_dir / CHECKPOINT_FILE

    # -- manifest ---------------------------------------------------------------------------------------
    def _manifest(self, input_path: Path) -> Manifest:
        new = Manifest(input=str(input_path.resolve()), input_sha256=file_sha256(input_path), profile=self.profile,
                       config_hash=self.config.hash(), mode=self.mode)
        path = self.out_dir / MANIFEST_FILE
        if path.exists() and self.store.path.exists():
            try:
                old = Manifest.model_validate_json(path.read_bytes())
            except ValidationError:
                old = None
            if old is not None:
                if old.config_hash != new.config_hash or old.mode != new.mode:
                    raise ConfigError(
                        f"the results there were produced with config {old.config_hash} (profile {old.profile}), "
                        f"mode {old.mode}; this run uses config {new.config_hash} (profile {new.profile}), mode "
                        f"{new.mode}", where=str(self.out_dir),
                        fix="rerun with the same --profile and --mode to resume, pass --restart to discard the old "
                            "results, or choose another --out")
                new.started, new.runs, new.models = old.started, old.runs + 1, dict(old.models)
                if old.input_sha256 != new.input_sha256:
                    self.notes.append("the input file changed since the earlier run: rows whose ids already have "
                                      "a result keep it (use --restart to check everything again)")
        return new

    def _write_manifest(self, m: Manifest) -> None:
        m.updated = _now()
        atomic_write(self.out_dir / MANIFEST_FILE, m.model_dump_json(indent=2).encode())

    def clear(self) -> None:
        """Remove the results of a previous run in the output folder (``--restart``). Call before opening a
        guardrail on :attr:`checkpoint_path`."""
        for name in (RESULTS_FILE, MANIFEST_FILE, CHECKPOINT_FILE, CHECKPOINT_FILE + "-wal", CHECKPOINT_FILE + "-shm",
                     CHECKPOINT_FILE + "-journal", RESULTS_FILE + ".tmp", "summary.json", "report.html", "report.md"):
            with contextlib.suppress(FileNotFoundError):
                (self.out_dir / name).unlink()

    # -- running ----------------------------------------------------------------------------------------
    def _open_folder(self, input_path: Path) -> tuple[Manifest, dict, list[str]]:
        """Create the output folder, apply run.json's rules and load the finished rows (repairing the file): the
        new manifest, the finished rows by id and what the user should be told."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the output folder ({e.strerror or e})", where=str(self.out_dir),
                             fix="pass --out a folder path whose parents are folders you can write to") from e
        manifest = self._manifest(input_path)
        done = self.store.load()
        return manifest, done, self.notes + list(self.store.repaired)

    def run(self, rows: list[AuditRow], input_path: str | Path, open_guardrail, *,
            retry_failed: bool = False) -> AuditOutcome:
        """Check every row without a result yet; returns all results in input order. ``retry_failed`` also checks
        again the rows that failed on an infrastructure fault (their new result replaces the failed one).

        On KeyboardInterrupt the rows finished so far stay saved and the exception propagates.
        """
        input_path = Path(input_path)
        manifest, done, repaired = self._open_folder(input_path)
        ids = [r.id for r in rows]
        id_set = set(ids)
        retried = 0
        if retry_failed:
            self._retry_ids = {i for i in ids if i in done and done[i].infra_fault}
            retried = self.store.drop(sorted(self._retry_ids))
            if retried:
                repaired.append(f"checking again {retried} row(s) that failed on an infrastructure fault")
        self._write_manifest(manifest)
        counts = Counts()
        for i in ids:
            if i in done:
                counts.add_row(done[i])
        resumed = counts.total
        todo = [r for r in rows if r.id not in done]
        t0 = time.perf_counter()
        try:
            if any(r.ok for r in todo):
                with open_guardrail() as g:
                    self.g = g
                    manifest.models = dict(getattr(getattr(g, "components", None), "models", {}) or {})
                    self._write_manifest(manifest)
                    try:
                        asyncio.run(self._run_all(todo, counts, total=len(rows)))
                    except BaseException:
                        # interrupted: the checks still in flight die with the guardrail (their rows are checked
                        # again on resume); keep their cancellation tracebacks off the user's terminal
                        for name in ("asyncio", "aiosqlite"):
                            logging.getLogger(name).setLevel(logging.CRITICAL)
                        raise
            elif todo:
                asyncio.run(self._run_all(todo, counts, total=len(rows)))
        finally:
            self.g = None
            self.store.close()
        stale = [i for i in self.store.rows if i not in id_set]
        if stale:
            repaired.append(f"dropped {len(stale)} result row(s) whose ids are not in the input any more")
        final = self.store.finalize(ids)
        if len(final) == len(ids):  # complete: nothing left to resume mid-check
            for name in (CHECKPOINT_FILE, CHECKPOINT_FILE + "-wal", CHECKPOINT_FILE + "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (self.out_dir / name).unlink()
        manifest.finished = _now()
        self._write_manifest(manifest)
        return AuditOutcome(rows=final, counts=counts, resumed=resumed, retried=retried, checked=len(todo),
                            repaired=repaired,
                            elapsed_s=round(time.perf_counter() - t0, 3), manifest=manifest)

    async def _check(self, row: AuditRow) -> ResultRow:
        base = dict(id=row.id, metadata=row.metadata, line=row.line, query=row.query, output=row.output)
        if not row.ok:
            return ResultRow(status="error", error=row.error, **base)
        try:
            v = await self.g.acheck(row.output, query=row.query, context=row.context, policies=row.policies,
                                    mode=self.mode, thread_id=thread_id(row), item_id=str(row.id))
        except InputError as e:
            return ResultRow(status="error", error=f"line {row.line}: {reason(e)}", failure_kind="input", **base)
        except Exception as e:  # noqa: BLE001 — fail closed: an error row, never a silent allow
            return ResultRow(status="error", error=f"line {row.line}: the check raised {type(e).__name__}: {e}",
                             failure_kind="infra", **base)
        return ResultRow(status="ok", verdict=v.model_dump(mode="json"), failure_kind=v.failure_kind, **base)

    async def _forget_thread(self, thread_id: str) -> None:
        cp = getattr(getattr(self.g, "graph", None), "checkpointer", None)
        if cp is None or not hasattr(cp, "delete_thread"):
            return
        with contextlib.suppress(Exception):  # housekeeping only
            await asyncio.to_thread(cp.delete_thread, thread_id)

    async def _run_all(self, todo: list[AuditRow], counts: Counts, total: int) -> None:
        from rich.progress import TextColumn

        from mad_guardrails.core.progress import make_progress

        queue: asyncio.Queue[AuditRow] = asyncio.Queue()
        with make_progress(TextColumn("{task.fields[counts]}"), disable=not self.progress) as progress:
            task = progress.add_task("auditing", total=total, completed=total - len(todo), counts=counts.markup())

            def record(res: ResultRow) -> None:
                self.store.append(res)
                counts.add_row(res)
                progress.update(task, advance=1, counts=counts.markup())

            async def worker() -> None:
                while True:
                    try:
                        row = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    if row.id in self._retry_ids:  # a finished thread would hand back the failed verdict
                        await self._forget_thread(thread_id(row))
                    res = await self._check(row)
                    record(res)
                    if row.ok:
                        await self._forget_thread(thread_id(row))

            # error rows need no check: record them first so they never wait behind slow checks
            for r in [r for r in todo if not r.ok]:
                record(await self._check(r))
            rest = [r for r in todo if r.ok]
            for r in rest:
                queue.put_nowait(r)
            workers = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, max(1, len(rest))))]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for w in workers:
                    w.cancel()
                raise

