"""The public API: ``Guardrail.check(output) -> Verdict``.

    >>> from mad_guardrails import Guardrail
    >>> g = Guardrail.from_config("offline")                      # doctest: +SKIP
    >>> v = g.check("NIS2 gives you 72 hours to send the early warning.", query="NIS2 reporting?")  # doctest: +SKIP
    >>> v.decision, [x.rule_id for x in v.violations]             # doctest: +SKIP
    ('block', ['nis2.incident.early_warning'])

All work runs on one private event loop thread, so ``check`` works from plain scripts, notebooks and async code
alike, and async clients (the vLLM HTTP backend) stay bound to one loop. A check that fails anywhere — timeout, backend
crash, broken index, unparseable model output — returns a ``flag`` verdict with the reason (``fail_action: block``
makes it a block); it never returns a silent ``allow``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mad_guardrails.core.debate import Case, validate_text
from mad_guardrails.core.errors import InputError
from mad_guardrails.core.verdict import Mode, Verdict, check_mode
from mad_guardrails.guardrails.config import GuardrailConfig, load_config
from mad_guardrails.guardrails.graph import serializer


class CheckItem(BaseModel):
    """One item for ``check_many`` / audits."""

    id: str | None = None
    output: Any
    query: str | None = None
    context: str | None = None
    policies: list[str] | None = None
    mode: Mode = "balanced"


def validate_output(output: Any, max_chars: int, *, field: str = "output") -> str:
    """The text to check or an :class:`InputError` saying what to fix (:func:`~mad_guardrails.core.debate.validate_text`)."""
    return validate_text(output, max_chars, field=field)


def check_policies(policy_set: Any, policies: list[str] | None) -> None:
    """Raise an :class:`InputError` for a policy name that is no pack/act id, rule id or id prefix of ``policy_set``."""
    if not policies:
        return
    known = {r.id for r in policy_set.rules}
    prefixes = {r.id.split(".", 1)[0] for r in policy_set.rules}
    packs = {getattr(r, "pack", None) for r in policy_set.rules}
    for p in policies:
        if p not in known and p not in prefixes and p not in packs and not any(k.startswith(p + ".") for k in known):
            raise InputError(f"unknown policy {p!r}", fix="use a pack/act id (e.g. 'nis2') or a rule id; "
                                                          "`mad-guardrails policies list` shows them")


class _LoopThread:
    """A private asyncio loop on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="guardrail-loop", daemon=True)
        self.thread.start()

    def submit(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro):
        return self.submit(coro).result()

    def stop(self) -> None:
        if self.loop.is_running():
            try:  # cancel what still runs (a stopped console debate) so no task is destroyed pending
                self.submit(_cancel_all()).result(timeout=10)
            except Exception:  # noqa: BLE001 - stopping must not fail
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


async def _cancel_all() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=8)


class Guardrail:
    """A configured guardrail. Build it with :meth:`from_config`; use it as a context manager to release the
    LLM server it may have started."""

    def __init__(self, config: GuardrailConfig, components=None, *, checkpoint: str | Path | None = None):
        from mad_guardrails.guardrails.components import build_components

        self.config = config
        self._loop = _LoopThread()
        self._components = components if components is not None else build_components(config)
        self._checkpoint_path = Path(checkpoint) if checkpoint else None
        self._checkpointer_cm = None
        checkpointer = None
        if self._checkpoint_path is not None:
            checkpointer = self._loop.run(self._open_checkpointer())
        else:
            from langgraph.checkpoint.memory import InMemorySaver

            checkpointer = InMemorySaver(serde=serializer())  # interrupts (console), get_state in one process
        from mad_guardrails.guardrails.graph import GuardContext, build_graph

        self.graph = build_graph(checkpointer=checkpointer)
        self._context = GuardContext(components=self._components, config=config)

    # -- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, path_or_profile: str | Path | GuardrailConfig = "offline", **kwargs) -> Guardrail:
        cfg = path_or_profile if isinstance(path_or_profile, GuardrailConfig) else load_config(path_or_profile)
        return cls(cfg, **kwargs)

    async def _open_checkpointer(self):
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        self._checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        self._checkpointer_cm = AsyncSqliteSaver.from_conn_string(str(self._checkpoint_path))
        saver = await self._checkpointer_cm.__aenter__()
        saver.serde = serializer()
        return saver

    @property
    def components(self):
        return self._components

    # -- checking --------------------------------------------------------------------------------------
    def _initial_state(self, output: Any, query, context, policies, mode, pause: bool = False) -> dict:
        text = validate_output(output, self.config.max_input_chars)
        if query is not None:
            query = validate_output(query, self.config.max_input_chars, field="query")
        check_mode(mode)
        check_policies(self._components.policy_set, policies)
        case = Case(output=text, query=query, context=context)
        return {"case": case, "mode": mode, "policies": list(policies or []) or None,
                "pause_between_rounds": pause, "round": 0, "repairs": 0, "transcript": [], "usage": {},
                "timings": {}, "failure": None}

    def _thread_config(self, thread_id: str | None) -> dict:
        return {"configurable": {"thread_id": thread_id or uuid.uuid4().hex}, "recursion_limit": 100}

    async def _run(self, state: dict, thread_id: str | None, item_id: str | None = None,
                   trace: str | None = None, request: str | None = None, otel: Any = None) -> Verdict:
        from mad_guardrails.guardrails.service import tracing

        with tracing.attached(otel):  # the graph's node spans join the caller's trace
            return await self._run_graph(state, thread_id, item_id, trace, request)

    async def _run_graph(self, state: dict, thread_id: str | None, item_id: str | None, trace: str | None,
                         request: str | None) -> Verdict:
        from mad_guardrails.guardrails.trail import run_graph, stamp, within_deadline

        t0 = time.perf_counter()
        started = time.monotonic()
        cfg = self._thread_config(thread_id)
        stages: dict = {}
        try:
            existing = None
            if thread_id and self.graph.checkpointer is not None:
                snap = await self.graph.aget_state(cfg)
                existing = snap if snap and snap.values else None
            if existing is not None and existing.values.get("verdict"):
                return Verdict.model_validate(existing.values["verdict"])  # already finished: same answer
            inp = None if existing is not None and existing.next else state  # resume an interrupted thread
            out = await within_deadline(run_graph(self.graph, inp, cfg, self._context, stages), self.config.timeout_s,
                                        self._components.backend, started)  # LLM server start-up not counted
            if "verdict" not in out:
                raise RuntimeError("the graph ended without a verdict (interrupted?)")
            v = Verdict.model_validate(out["verdict"])
        except TimeoutError:
            v = self._failed(state, f"timeout: the check took longer than {self.config.timeout_s:g} s")
        except Exception as e:  # fail closed, whatever broke
            v = self._failed(state, f"{type(e).__name__}: {e}")
        v.timings.update(stages)  # wall-clock seconds per stage (parallel agents counted once)
        v.timings["total"] = round(time.perf_counter() - t0, 4)
        return stamp(v, state.get("case"), item_id=item_id, config=self.config, components=self._components,
                     trace=trace, request=request)

    def _failed(self, state: dict, reason: str) -> Verdict:
        return Verdict.failed(reason, action=self.config.fail_action, config_hash=self.config.hash(),
                              models=dict(self._components.models), mode=state.get("mode", "balanced"))

    async def acheck(self, output: Any, *, query: str | None = None, context: str | None = None,
                     policies: list[str] | None = None, mode: Mode = "balanced",
                     thread_id: str | None = None, item_id: str | None = None) -> Verdict:
        """Async :meth:`check`. Raises InputError for bad input; any other failure gives a fail-closed verdict."""
        state = self._initial_state(output, query, context, policies, mode)
        from mad_guardrails.guardrails.service import tracing
        from mad_guardrails.guardrails.trail import REQUEST_ID, trace_id

        # the trace id, trace context and request id are read here, in the caller's context (the service's request
        # span), not on the loop thread the graph runs on
        fut = self._loop.submit(self._run(state, thread_id, item_id=item_id, trace=trace_id(),
                                          request=REQUEST_ID.get(), otel=tracing.capture()))
        return await asyncio.wrap_future(fut)

    def check(self, output: Any, *, query: str | None = None, context: str | None = None,
              policies: list[str] | None = None, mode: Mode = "balanced", thread_id: str | None = None,
              item_id: str | None = None) -> Verdict:
        """Check one AI output (optionally with the question that produced it) and return a Verdict.

        ``thread_id`` with a SQLite ``checkpoint`` makes a check resumable: the same id finishes an interrupted run
        or returns the stored verdict. ``item_id`` is your id of the item; the verdict carries it (audit trail).
        """
        state = self._initial_state(output, query, context, policies, mode)
        from mad_guardrails.guardrails.trail import trace_id

        return self._loop.run(self._run(state, thread_id, item_id=item_id, trace=trace_id()))

    def check_many(self, items: Iterable[Any], *, concurrency: int = 4) -> Iterator[Verdict | InputError]:
        """Check many items concurrently; yields results IN INPUT ORDER as soon as each is ready.

        An item is a string or a dict / :class:`CheckItem`. A bad item yields its :class:`InputError` instead of a
        verdict (nothing is lost and the rest go on).
        """
        async def one(item, sem):
            async with sem:
                try:
                    it = item if isinstance(item, CheckItem) else (
                        CheckItem(output=item) if not isinstance(item, dict) else CheckItem.model_validate(item))
                    state = self._initial_state(it.output, it.query, it.context, it.policies, it.mode)
                except InputError as e:
                    return e
                except Exception as e:  # a malformed dict
                    return InputError(f"bad item: {e}", fix="give output (str) and optional query/context/mode")
                resumable = self._checkpoint_path is not None and it.id is not None
                return await self._run(state, f"item-{it.id}" if resumable else None, item_id=it.id)

        async def make_sem():
            return asyncio.Semaphore(concurrency)

        sem = self._loop.run(make_sem())
        futures = [self._loop.submit(one(item, sem)) for item in items]
        for f in futures:
            yield f.result()

    async def astream(self, output: Any, *, query: str | None = None, context: str | None = None,
                      policies: list[str] | None = None, mode: Mode = "balanced", thread_id: str | None = None,
                      pause_between_rounds: bool = False, resume: Any = None,
                      interjections: list[str] | None = None) -> AsyncIterator[dict]:
        """Stream graph events (node updates: evidence, each argument, the verdict) for consoles.

        With ``pause_between_rounds`` the graph stops before each round after the first with an ``__interrupt__``
        event; call again with the same ``thread_id`` and ``resume="your interjection"`` (or "") to continue.
        ``interjections`` are questions/facts a person raised before the run (the agents address them from round 1).
        """
        from langgraph.types import Command

        cfg = self._thread_config(thread_id)
        if resume is not None:
            inp = Command(resume=resume)
        else:
            inp = self._initial_state(output, query, context, policies, mode, pause=pause_between_rounds)
            if interjections:
                inp["case"] = inp["case"].model_copy(update={"interjections": [str(x) for x in interjections]})
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        done = object()

        def put(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the consumer's loop is closed (it stopped listening): nothing to tell
                pass

        async def pump():
            try:
                async for ev in self.graph.astream(inp, cfg, stream_mode="updates", context=self._context):
                    put(jsonable(ev))
            except Exception as e:  # surface as an event; the console shows a fail-closed verdict
                put({"__error__": f"{type(e).__name__}: {e}"})
            finally:
                put(done)

        fut = self._loop.submit(pump())
        try:
            while True:
                ev = await queue.get()
                if ev is done:
                    return
                yield ev
        finally:  # the consumer stopped (Ctrl-C in the console, a client gone): cancel the run and its LLM calls
            if not fut.done():
                fut.cancel()

    def graph_mermaid(self) -> str:
        return self.graph.get_graph().draw_mermaid()


    # -- lifecycle --------------------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self._loop.run(self._components.aclose())
            if self._checkpointer_cm is not None:
                self._loop.run(self._checkpointer_cm.__aexit__(None, None, None))
        finally:
            self._components.close_server()
            self._loop.stop()

    def __enter__(self) -> Guardrail:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def item_key(item: CheckItem) -> str:
    """A stable id for an item without one (hash of its content)."""
    return item.id or hashlib.sha256(f"{item.output}\x00{item.query}".encode()).hexdigest()[:16]


def jsonable(value: Any) -> Any:
    """Stream events as JSON data (pydantic objects of the state dumped), for consoles and services."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value
