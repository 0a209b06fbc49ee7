"""The audit trail of a check: what was checked (item id, input hash), when, by which build (package version, index
and config hashes) and under which trace id, stamped on every :class:`~mad_guardrails.core.verdict.Verdict` by
:class:`~mad_guardrails.guardrails.guardrail.Guardrail`; and :func:`run_graph`, which runs the orchestrator while
telling listeners the stage (:mod:`.stages`) and timing each stage by the wall clock.

    >>> input_hash("hello", None) == input_hash("hello", None) != input_hash("hello", "q")
    True
"""

from __future__ import annotations

import hashlib
import uuid
from contextvars import ContextVar
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from mad_guardrails.core.verdict import Verdict


def input_hash(output: str, query: str | None) -> str:
    """sha256 (16 hex) of the checked output and its query: the same input always has the same hash."""
    return hashlib.sha256(f"{output}\x00{query or ''}".encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mad-guardrails")
    except PackageNotFoundError:
        return "0+unknown"


def index_hash(components: Any) -> str:
    """A short hash of the index the retriever searches (its manifest's file hashes), "" when unknown."""
    manifest = getattr(getattr(getattr(components, "retriever", None), "index", None), "manifest", None)
    if manifest is None:
        return ""
    files = getattr(manifest, "files", None) or {}
    key = "|".join(f"{k}={v}" for k, v in sorted(files.items())) or str(getattr(manifest, "passages_hash", ""))
    return hashlib.sha256(key.encode()).hexdigest()[:12] if key else ""


#: the service request being answered (middleware sets it; the verdict carries it, as the access log does)
REQUEST_ID: ContextVar[str] = ContextVar("mad_guardrails_request_id", default="")


def trace_id() -> str:
    """The current OpenTelemetry trace id (the service's request span) when there is one, else a random id."""
    try:
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        if ctx is not None and ctx.is_valid:
            return format(ctx.trace_id, "032x")
    except Exception:  # opentelemetry absent or not set up
        pass
    return uuid.uuid4().hex


def stamp(v: Verdict, case: Any, *, item_id: str | None, config: Any, components: Any,
          trace: str | None = None, request: str | None = None) -> Verdict:
    """Fill the verdict's audit-trail fields (those already set are kept)."""
    output = getattr(case, "output", None)
    upd: dict[str, Any] = {
        "item_id": v.item_id or item_id,
        "input_hash": v.input_hash or (input_hash(output, getattr(case, "query", None)) if output is not None else ""),
        "created": v.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": v.version or package_version(),
        "index_hash": v.index_hash or index_hash(components),
        "config_hash": v.config_hash or (config.hash() if config is not None else ""),
        "trace_id": v.trace_id or trace or trace_id(),
        "request_id": v.request_id or request or "",
    }
    for k, val in upd.items():
        setattr(v, k, val)
    return v


async def within_deadline(coro: Any, timeout_s: float, backend: Any, since: float) -> Any:
    """``await coro`` under a deadline of ``timeout_s`` seconds that does not count the time spent starting the LLM
    backend (``backend.start_overlap``; a lazy backend starts the vLLM server on the first debate). Raises
    ``TimeoutError`` (the task cancelled) past it, like ``asyncio.wait_for``."""
    import asyncio
    import time

    overlap = getattr(backend, "start_overlap", None)
    task = asyncio.ensure_future(coro)
    try:
        while True:
            extra = overlap(since) if overlap is not None else 0.0
            remaining = since + timeout_s + extra - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no verdict within {timeout_s:g} s")
            done, _ = await asyncio.wait({task}, timeout=min(remaining, 2.0))
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def run_graph(graph: Any, inp: Any, cfg: dict, context: Any, stages: dict) -> dict:
    """Run the compiled graph to the end like ``ainvoke`` (returns the final state), reporting each stage to the
    status listeners (:func:`~mad_guardrails.guardrails.components.report_status`) and filling ``stages`` with
    wall-clock seconds per stage."""
    from mad_guardrails.guardrails.components import report_status
    from mad_guardrails.guardrails.stages import FIRST, StageTimer

    timer = StageTimer()
    report_status(FIRST)
    out: dict = {}
    async for mode, chunk in graph.astream(inp, cfg, stream_mode=["updates", "values"], context=context):
        if mode == "values":
            out = chunk
        elif isinstance(chunk, dict):
            said = timer.event(chunk)
            if said:
                report_status(said)
            stages.clear()
            stages.update(timer.seconds())
    return out
