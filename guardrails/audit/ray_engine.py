"""``audit --engine ray``: the same audit as a Ray Data pipeline, for audits past one machine.

::

    rows (streaming.RowSource: JSONL line by line, Parquet a record batch at a time, CSV; each row validated on its
      │   own; finished ids skipped, bad rows recorded at once)
      └─ ray.put, a block of ``block_rows`` rows at a time ─► ray.data.from_arrow_refs
           └─► map_batches(SettleStage)  CPU actor pool, ``workers`` actors: each builds the retriever,
                                 │                          screener and verifier ONCE and checks its rows with the
                                 │                          debaters and coordinator deferred: rows the cascade settles
                                 │                          (fast_allow, verified_allow, fast_block, failures) are done
                                 └─► map_batches(DebateStage)  ``debate_workers`` actors: the rows that need the LLM,
                                         │                    checked again in full by a guardrail whose backend spreads
                                         │                    the calls over every configured endpoint
                                         │                    (llm.base_urls / $MAD_GUARDRAILS_LLM_URLS); settled rows
                                         │                    pass through untouched
                                         └─► the driver writes each result as it comes back into the results folder
                                             of the local engine (:class:`~mad_guardrails.guardrails.audit.runner.AuditRunner`:
                                             the same verdicts.jsonl, append + fsync per row, resume, run.json rules,
                                             one row per input id, rewritten in input order at the end, reports)

The driver never holds the rows or the results: it reads the input once to feed the cluster block by block (the
blocks wait in Ray's object store, which spills to disk past its memory) and once more to put the results file in
input order, and keeps per row only its id and decision (:mod:`~mad_guardrails.guardrails.audit.streaming`).

Every row is checked by :meth:`Guardrail.acheck <mad_guardrails.guardrails.guardrail.Guardrail.acheck>` exactly as the
local engine checks it (``AuditRunner._check``), so a row gets the same verdict on either engine; a debated row is
routed by what the settle stage found (its graph reached the debate) and checked there in full, which repeats its
retrieval and claim check (milliseconds) next to the debate (seconds to minutes).

Fault tolerance is Ray's: Ray Data creates the pool actors with ``max_restarts=-1`` / ``max_task_retries=-1``, so a
worker that dies mid-batch is restarted and its batch runs again; a row is written only by the driver, once (the store ignores a second
row for an id), so a retried batch loses nothing and duplicates nothing. A killed driver loses the rows in flight:
run the same command again and only the rows without a result are checked.

Ray is optional (``pip install "mad-guardrails[ray]"``); nothing here imports it before :func:`require_ray`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mad_guardrails.core.errors import ConfigError
from mad_guardrails.guardrails.audit.reader import AuditRow
from mad_guardrails.guardrails.audit.runner import (
    RESULTS_FILE,
    AuditOutcome,
    AuditRunner,
    Counts,
    ResultRow,
    _now,
    thread_id,
)
from mad_guardrails.guardrails.audit.streaming import IdStore, ResultFile

log = logging.getLogger(__name__)

#: the error a settle actor's stand-in debaters raise: the row needs the LLM
DEFERRED = "deferred to the debate stage"
#: environment passed on to the actors (a running cluster's workers do not see the driver's environment)
FORWARDED_ENV = ("MAD_GUARDRAILS_", "GUARDRAILS_")


def require_ray():
    """``ray`` with Ray Data, or a :class:`ConfigError` naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ConfigError(f"--engine ray needs Ray Data, which is not installed ({e})", where="--engine ray",
                          fix='pip install "mad-guardrails[ray]" (or run the default --engine local)') from e
    return ray


# --------------------------------------------------------------------------------------------------- stages


class _Deferred:
    """Stands in for a debater and the coordinator in a settle actor: the graph reaching the debate is the answer."""

    def __init__(self, role: Any = None):
        self.role = role if role is not None else SimpleNamespace(name="deferred")

    async def turn(self, *a, **kw):
        from mad_guardrails.agents.backends.base import backend_error

        raise backend_error("deferred", DEFERRED, where="ray settle stage")

    decide = turn


def needs_debate(res: ResultRow) -> bool:
    """Whether a settle-stage result is a row the cascade did not settle (its graph went to the debate)."""
    if res.status != "ok" or not res.verdict:
        return False
    v = res.verdict
    return DEFERRED in (v.get("failure") or "") or any(DEFERRED in (a.get("error") or "")
                                                         for a in v.get("transcript") or [])


def build_parts(cfg, components: str | None):
    """The guardrail's parts for an actor: the ``--components`` factory's, else the real ones of the config."""
    if components:
        from mad_guardrails.guardrails.commands.audit import load_factory

        return load_factory(components)(cfg)
    from mad_guardrails.guardrails.components import build_components

    return build_components(cfg)


class _Stage:
    """What both stages share: a guardrail built once per actor, rows checked as the local engine checks them."""

    defer = False

    def __init__(self, config_json: str, mode: str, components: str | None = None, concurrency: int = 4):
        from mad_guardrails.guardrails.config import GuardrailConfig

        self.cfg = GuardrailConfig.model_validate_json(config_json)
        self.mode, self.components, self.concurrency = mode, components, concurrency
        self.runner: AuditRunner | None = None

    def _open(self) -> AuditRunner:
        if self.runner is None:
            from mad_guardrails.guardrails.guardrail import Guardrail

            parts = build_parts(self.cfg, self.components)
            if self.defer:
                parts = dataclasses.replace(parts, debaters=[_Deferred(d.role) for d in parts.debaters] or
                                            [_Deferred()], coordinator=_Deferred())
            # a runner without a folder: only its row check (AuditRunner._check) is used, the driver writes
            self.runner = AuditRunner(self.cfg, Path("."), mode=self.mode, progress=False)
            self.runner.g = Guardrail(self.cfg, components=parts)
        return self.runner

    def _check_all(self, rows: list[AuditRow]) -> list[ResultRow]:
        runner = self._open()

        async def all_rows() -> list[ResultRow]:
            sem = asyncio.Semaphore(self.concurrency)

            async def one(row: AuditRow) -> ResultRow:
                async with sem:
                    res = await runner._check(row)
                    await runner._forget_thread(thread_id(row))  # the in-memory checkpoint of a finished row
                    return res

            return await asyncio.gather(*(one(r) for r in rows))

        return asyncio.run(all_rows())

    def __del__(self):
        if self.runner is not None and self.runner.g is not None:
            with contextlib.suppress(Exception):
                self.runner.g.close()


class SettleStage(_Stage):
    """CPU stage: retrieval, screening, the claim check and the fast paths; rows needing the LLM are marked."""

    defer = True

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._open()  # at actor start: Ray Data starts the pool's actors together, before the first batch

    def __call__(self, batch: dict) -> dict:
        rows = [AuditRow.model_validate_json(r) for r in batch["row"]]
        results = self._check_all(rows)
        out = ["" if needs_debate(res) else res.model_dump_json() for res in results]
        return {"row": list(batch["row"]), "result": out}


class DebateStage(_Stage):
    """LLM stage: the rows the settle stage left open, checked in full (debate, coordinator, verifier); its
    guardrail is built when the first such row arrives, so an audit the cascade settles costs it nothing."""

    def __call__(self, batch: dict) -> dict:
        results = list(batch["result"])
        todo = [i for i, r in enumerate(results) if not r]
        if todo:
            rows = [AuditRow.model_validate_json(batch["row"][i]) for i in todo]
            for i, res in zip(todo, self._check_all(rows), strict=True):
                results[i] = res.model_dump_json()
        return {"result": results}


# --------------------------------------------------------------------------------------------------- driver


class RayAuditRunner(AuditRunner):
    """:class:`AuditRunner` whose rows are checked on a Ray cluster (``address``: ``None`` starts a local one,
    ``"auto"`` joins the running cluster, ``"ray://host:10001"`` a remote one). The results folder, resume rules and
    outcome are the local engine's; the driver streams both ends: ``rows`` is iterated once to feed the cluster (pass
    a :class:`~mad_guardrails.guardrails.audit.streaming.RowSource` and no row is held) and once to put the results
    in input order, each result is written as it arrives, and ``outcome.rows`` reads them back from the file.

        >>> runner = RayAuditRunner(config, "audit-out/x", address="auto", workers=8)     # doctest: +SKIP
        >>> outcome = runner.run(RowSource("x.parquet"), "x.parquet")                    # doctest: +SKIP
    """

    def __init__(self, config, out_dir: str | Path, *, address: str | None = None, workers: int = 2,
                 debate_workers: int = 1, batch_size: int = 16, debate_num_cpus: float = 0.25,
                 block_rows: int | None = None, components: str | None = None, **kw):
        require_ray()  # fail before anything is read or written
        super().__init__(config, out_dir, **kw)
        if workers < 1 or debate_workers < 1 or batch_size < 1:
            raise ConfigError("--workers, --debate-workers and the batch size must be at least 1",
                              fix="e.g. --workers 4 --debate-workers 2")
        self.store = IdStore(self.out_dir / RESULTS_FILE)
        self.address = address
        self.workers, self.debate_workers = workers, debate_workers
        self.batch_size, self.debate_num_cpus = batch_size, debate_num_cpus
        #: rows per block the driver hands the cluster (Ray Data's unit of work: a block goes to one actor)
        self.block_rows = block_rows or batch_size * 4
        self.components = components
        self.startup_s: float | None = None  # connecting / starting Ray (the fixed cost of the engine)

    def run(self, rows: Iterable[AuditRow], input_path: str | Path, open_guardrail=None, *,
            retry_failed: bool = False) -> AuditOutcome:
        """Check every row without a result yet; ``rows`` is read twice (a list or a ``RowSource``; a one-pass
        iterator is listed first). ``open_guardrail`` is not used: the actors build their own guardrails."""
        if iter(rows) is rows:
            rows = list(rows)
        manifest, done, repaired = self._open_folder(Path(input_path))
        retry_ids = {i for i, b in done.items() if b.infra_fault} if retry_failed else set()
        self.store.drop(retry_ids)
        self._write_manifest(manifest)
        feed = _Feed(self, manifest, retry_ids)
        t0 = time.perf_counter()
        try:
            with contextlib.ExitStack() as stack:
                feed.start = lambda: stack.enter_context(self._session())
                for row in rows:
                    feed.add(row)
                feed.flush()
                if feed.refs:
                    self._drain(feed)
                    feed.refs.clear()  # before the cluster goes
        finally:
            self.store.close()
        if feed.retried:
            repaired.append(f"checking again {feed.retried} row(s) that failed on an infrastructure fault")
        if feed.stored_before > feed.resumed:
            repaired.append(f"dropped {feed.stored_before - feed.resumed} result row(s) whose ids are not in the "
                            "input any more")
        n = self.store.finalize(r.id for r in rows)
        manifest.finished = _now()
        self._write_manifest(manifest)
        return AuditOutcome.model_construct(
            rows=ResultFile(self.store.path, n), counts=feed.counts, resumed=feed.resumed, retried=feed.retried,
            checked=feed.checked, repaired=repaired, elapsed_s=round(time.perf_counter() - t0, 3),
            manifest=manifest)

    @contextlib.contextmanager
    def _session(self):
        """Connect to (or start) Ray, and start the profile's LLM server when it autostarts and none answers."""
        ray = require_ray()
        t0 = time.perf_counter()
        started = False
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False,
                     logging_level=logging.WARNING)
            started = True
        self.startup_s = round(time.perf_counter() - t0, 3)
        if not self.progress:
            logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset INFO lines with --no-progress
        server = None
        if self.config.llm.backend == "openai" and not self.components:
            from mad_guardrails.agents.serve import ensure_server

            server = ensure_server(self.config.llm)  # one server for the cluster's debate actors, not one each
        try:
            yield
        finally:
            if server is not None:
                server.stop()
            if started:
                ray.shutdown()

    def dataset(self, refs: list):
        """The Ray Data pipeline over the row blocks ``refs`` (Arrow tables of one ``row`` column, in the object
        store); not run until iterated."""
        ray = require_ray()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        cfg_json = self.config.model_dump_json()
        ds = ray.data.from_arrow_refs(refs)
        # fault tolerance: Ray Data creates pool actors with max_restarts=-1 and max_task_retries=-1 (a dead actor is
        # restarted and its batch runs again); passing them here is deprecated since Ray 2.5x
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
        # the endpoints ($MAD_GUARDRAILS_LLM_URLS), $GUARDRAILS_HOME: the actors of a running cluster see them too
        extra = {"runtime_env": {"env_vars": env}} if env else {}
        ds = ds.map_batches(SettleStage, fn_constructor_kwargs=dict(config_json=cfg_json, mode=self.mode,
                                                                    components=self.components, concurrency=4),
                            batch_size=self.batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=self.workers), num_cpus=1, **extra)
        debate_concurrency = self.config.llm.concurrency * endpoint_count(self.config)
        return ds.map_batches(DebateStage, fn_constructor_kwargs=dict(config_json=cfg_json, mode=self.mode,
                                                                      components=self.components,
                                                                      concurrency=debate_concurrency),
                              batch_size=self.batch_size, batch_format="numpy",
                              compute=ray.data.ActorPoolStrategy(size=self.debate_workers),
                              num_cpus=self.debate_num_cpus, **extra)

    def _drain(self, feed: _Feed) -> None:
        """Run the pipeline over the fed blocks and write each result as it comes back (in the order Ray finishes
        them; :meth:`IdStore.finalize` puts the file in input order at the end)."""
        from rich.progress import TextColumn

        from mad_guardrails.core.progress import make_progress

        with make_progress(TextColumn("{task.fields[counts]}"), disable=not self.progress) as progress:
            task = progress.add_task("auditing (ray)", total=feed.total, completed=feed.total - feed.pending,
                                     counts=feed.counts.markup())
            try:
                for batch in self.dataset(feed.refs).iter_batches(batch_size=None, batch_format="numpy"):
                    for line in batch["result"]:
                        feed.record(ResultRow.model_validate_json(line))
                        progress.update(task, advance=1, counts=feed.counts.markup())
            except Exception as e:
                cause = guardrail_error(e)
                if cause is not None:  # an actor could not build its guardrail: say why, as the local engine does
                    raise cause from None
                raise


class _Feed:
    """The driver's one pass over the input: finished ids counted and skipped, bad rows recorded at once (they need
    no cluster), the rows to check put into the object store ``runner.block_rows`` at a time (the first block
    starts the cluster: ``start``), so the driver holds one block, not the input."""

    def __init__(self, runner: RayAuditRunner, manifest, retry_ids: set[str]):
        self.runner, self.manifest, self.retry_ids = runner, manifest, retry_ids
        self.counts = Counts()
        self.resumed = self.retried = self.checked = self.pending = 0
        self.stored_before = len(runner.store.rows)
        self.refs: list = []
        self.block: list[str] = []
        self.start = lambda: None
        self._started = False

    @property
    def total(self) -> int:
        return self.resumed + self.checked

    def add(self, row: AuditRow) -> None:
        done = self.runner.store.rows.get(row.id)
        if done is not None:
            self.resumed += 1
            self.counts.add_row(done)
            return
        self.checked += 1
        self.retried += row.id in self.retry_ids
        if not row.ok:
            self.record(asyncio.run(self.runner._check(row)))
            return
        self.pending += 1
        self.block.append(row.model_dump_json())
        if len(self.block) >= self.runner.block_rows:
            self.flush()

    def flush(self) -> None:
        if not self.block:
            return
        ray = require_ray()
        import pyarrow as pa

        if not self._started:
            self.start()
            self._started = True
        self.refs.append(ray.put(pa.table({"row": self.block})))
        self.block = []

    def record(self, res: ResultRow) -> None:
        self.runner.store.append(res)
        self.counts.add_row(res)
        if not self.manifest.models and res.verdict and res.verdict.get("models"):
            self.manifest.models = dict(res.verdict["models"])  # the driver holds no guardrail: the verdicts' models


def guardrail_error(e: BaseException) -> BaseException | None:
    """The project's own error (a missing index, a bad config) inside what Ray raised, if there is one."""
    from mad_guardrails.core.errors import GuardrailError

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, GuardrailError):
            return e
        e = getattr(e, "cause", None) or e.__cause__
    return None


def endpoint_count(cfg) -> int:
    """How many LLM endpoints the config's backend spreads the debate over."""
    from mad_guardrails.agents.backends.endpoints import endpoint_urls

    return len(endpoint_urls(cfg.llm))


__all__ = ["DEFERRED", "DebateStage", "RayAuditRunner", "SettleStage", "needs_debate", "require_ray"]
