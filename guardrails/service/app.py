"""The FastAPI app: one :class:`Guardrail`, loaded in the lifespan (in a thread, so ``/healthz`` answers while the
index and the LLM server come up) and closed at shutdown, shared by every request.

Every check runs as a task that is cancelled when its client disconnects (the Guardrail's own loop then cancels the
graph and its LLM calls), inside an admission slot (:mod:`.limits`), under the Guardrail's deadline (``timeout_s``:
past it the verdict fails closed to ``flag``, as in the library).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mad_guardrails.core.errors import InputError
from mad_guardrails.core.verdict import Verdict
from mad_guardrails.guardrails.service import tracing
from mad_guardrails.guardrails.service.auth import KeyStore
from mad_guardrails.guardrails.service.limits import Admission, Overloaded
from mad_guardrails.guardrails.service.metrics import CONTENT_TYPE, Metrics
from mad_guardrails.guardrails.service.middleware import ServiceMiddleware, error_body
from mad_guardrails.guardrails.service.settings import ServiceSettings

log = logging.getLogger("mad_guardrails.service")

SEVERITY = {"allow": 0, "flag": 1, "block": 2}
TEST_HOLD_HEADER = "x-test-hold-s"
WARMUP_TEXT = "The weather was mild and sunny all week."


# -- request / response bodies ---------------------------------------------------------------------------------------
class CheckRequest(BaseModel):
    """One text to check (the fields of ``Guardrail.check``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"output": "Under NIS2 you have 72 hours to send the early warning.",
         "query": "When is the NIS2 early warning due?", "mode": "balanced"}]})

    output: str = Field(description="the AI output to check")
    query: str | None = Field(None, description="the question that produced it")
    context: str | None = Field(None, description="extra context (e.g. the conversation)")
    mode: str = Field("balanced", description="strict | balanced | permissive")
    policies: list[str] | None = Field(None, description="restrict to these packs / acts / rule ids")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Any] = Field(description="check requests (objects like /v1/check's body, or plain strings); "
                             "at most --max-batch")


class ErrorBody(BaseModel):
    error: dict[str, Any]


class BatchResponse(BaseModel):
    results: list[Verdict | ErrorBody] = Field(description="one per item, in input order: a Verdict, or "
                                               "{'error': {...}} for a bad item")


class ServiceError(Exception):
    def __init__(self, status: int, message: str, type_: str, *, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.type, self.headers, self.extra = status, type_, headers or {}, extra


class ClientGone(Exception):
    """The client disconnected; its work was cancelled."""


# -- the shared state ------------------------------------------------------------------------------------------------
class Service:
    def __init__(self, settings: ServiceSettings, factory: Callable[[], Any],
                 on_fatal: Callable[[], None] | None = None):
        self.settings = settings
        self.factory = factory
        self.on_fatal = on_fatal
        self.metrics = Metrics()
        self.admission = Admission(settings.max_concurrency, settings.max_queue, settings.queue_timeout_s)
        self.keys = KeyStore(settings.key_digests)
        self.guardrail = None
        self.load_error: str | None = None
        self.loaded_at: float | None = None
        self.http: httpx.AsyncClient | None = None
        self._ready_cache: tuple[float, int, dict] | None = None

    # lifecycle
    async def load(self) -> None:
        t0 = time.perf_counter()
        try:
            g = await asyncio.to_thread(self.factory)
            loaded_s = round(time.perf_counter() - t0, 2)
            t1 = time.perf_counter()
            try:  # one off-topic check (a fast path) before taking traffic: the first request is not the cold one
                w = await asyncio.wait_for(g.acheck(WARMUP_TEXT), 120)
                warm = {"decision": w.decision, "path": w.path}
            except Exception as e:  # noqa: BLE001 - a warm-up never stops the service
                warm = {"error": f"{type(e).__name__}: {e}"[:200]}
            self.guardrail = g
            self.loaded_at = time.time()
            log.info({"msg": "guardrail loaded", "profile": self.settings.profile, "seconds": loaded_s,
                      "warmup_s": round(time.perf_counter() - t1, 2), "warmup": warm})
        except Exception as e:  # noqa: BLE001 - a bad profile, a missing index, an LLM server that does not start
            self.load_error = f"{type(e).__name__}: {e}"
            log.error({"msg": "the guardrail could not be loaded; stopping", "error": self.load_error})
            if self.on_fatal is not None:
                self.on_fatal()

    def require_guardrail(self):
        if self.guardrail is not None:
            return self.guardrail
        if self.load_error:
            raise ServiceError(503, f"the guardrail failed to load: {self.load_error}", "unavailable")
        raise ServiceError(503, "the guardrail is still loading (index, models, LLM server)", "loading",
                           headers={"Retry-After": "5"})

    @property
    def max_input_chars(self) -> int:
        return self.guardrail.config.max_input_chars

    # running work
    async def guarded(self, request: Request, work: Callable[[], Awaitable[Any]]) -> Any:
        """``work()`` inside an admission slot, cancelled if the client disconnects (queue wait included)."""

        async def body():
            await self.admission.acquire()
            t0 = time.perf_counter()
            try:
                if self.settings.test_hooks and request.headers.get(TEST_HOLD_HEADER):
                    await asyncio.sleep(min(60.0, float(request.headers[TEST_HOLD_HEADER])))
                return await work()
            finally:
                self.admission.release(time.perf_counter() - t0)

        return await self.watched(request, body())

    async def watched(self, request: Request, coro) -> Any:
        task = asyncio.ensure_future(coro)
        watcher = asyncio.ensure_future(wait_disconnect(request))
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            watcher.cancel()
            raise
        if task.done():
            watcher.cancel()
            return task.result()
        task.cancel()
        try:
            await task
        except BaseException as e:  # noqa: BLE001 - whatever the cancelled work says, the client is gone
            log.debug("cancelled work ended with %s", type(e).__name__)
        self.metrics.disconnects.inc()
        raise ClientGone()

    async def check_one(self, req: CheckRequest) -> Verdict:
        g = self.require_guardrail()
        with tracing.span("guardrail.check", {"guardrail.mode": req.mode}) as sp:
            try:
                v = await g.acheck(req.output, query=req.query, context=req.context, policies=req.policies,
                                   mode=req.mode)
            except InputError as e:
                self.metrics.input_errors.inc()
                tracing.record_error(sp, e)
                raise
            tracing.set_attrs(sp, tracing.verdict_attrs(v))
        self.metrics.record_verdict(v)
        return v

    def input_error(self, e: InputError, *texts: Any) -> ServiceError:
        too_long = any(isinstance(t, str) and len(t) > self.max_input_chars for t in texts)
        return ServiceError(413 if too_long else 422, str(e), "input_error", fix=e.fix,
                            **({"limit_chars": self.max_input_chars} if too_long else {}))

    # readiness
    async def readiness(self) -> tuple[int, dict]:
        now = time.monotonic()
        if self._ready_cache and now - self._ready_cache[0] < 2.0:
            return self._ready_cache[1], self._ready_cache[2]
        comps: dict[str, dict] = {}
        g = self.guardrail
        if g is None:
            comps["guardrail"] = {"ok": False, "detail": f"failed: {self.load_error}" if self.load_error
                                  else "loading"}
        else:
            comps["guardrail"] = {"ok": True, "detail": f"profile {g.config.profile}"}
            c = g.components
            try:
                res = await asyncio.wait_for(asyncio.to_thread(c.retriever.search, "readiness probe", 1), 10)
                comps["index"] = {"ok": True, "detail": f"search answers ({len(res.evidence)} hit)"}
            except Exception as e:  # noqa: BLE001 - reported as the component's state
                comps["index"] = {"ok": False, "detail": f"{type(e).__name__}: {e}"[:300]}
            comps["policies"] = {"ok": bool(c.policy_set.rules), "detail": f"{len(c.policy_set.rules)} rules"}
            comps["llm"] = await self._probe_llm(g.config.llm)
        if self.settings.upstream:
            comps["upstream"] = await self._probe_openai(self.settings.upstream, self.settings.upstream_key)
        ok = all(x["ok"] for x in comps.values())
        out = (200 if ok else 503, {"ready": ok, "components": comps})
        self._ready_cache = (now, *out)
        return out

    async def _probe_llm(self, llm) -> dict:
        if llm.backend != "openai":
            return {"ok": True, "detail": f"in-process backend ({llm.backend})"}
        return await self._probe_openai(llm.base_url, llm.api_key)

    async def _probe_openai(self, base_url: str, key: str | None) -> dict:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            r = await self.http.get(base_url.rstrip("/") + "/models", headers=headers, timeout=3.0)
        except httpx.HTTPError as e:
            return {"ok": False, "detail": f"not answering: {type(e).__name__}"}
        if r.status_code != 200:
            return {"ok": False, "detail": f"/models answered {r.status_code}"}
        try:
            names = [m.get("id") for m in r.json().get("data", [])]
        except ValueError:
            names = []
        return {"ok": True, "detail": f"models: {', '.join(map(str, names[:5]))}"}


async def wait_disconnect(request: Request) -> None:
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return


def worst(decisions: list[str]) -> str | None:
    return max(decisions, key=lambda d: SEVERITY.get(d, 0)) if decisions else None


def _json(data: Any, status: int = 200, headers: dict | None = None) -> Response:
    return JSONResponse(data, status_code=status, headers=headers)


# -- the app ---------------------------------------------------------------------------------------------------------
def create_app(settings: ServiceSettings, *, guardrail_factory: Callable[[], Any] | None = None,
               guardrail_config=None, on_fatal: Callable[[], None] | None = None) -> FastAPI:
    """The service app. ``guardrail_factory`` builds the Guardrail (default: ``Guardrail.from_config`` of
    ``guardrail_config`` or of ``settings.profile``, with ``settings.timeout_s`` as its deadline); ``on_fatal`` is
    called when it cannot be built (the CLI stops the server)."""
    if guardrail_factory is None:
        def guardrail_factory():
            from mad_guardrails.guardrails.config import load_config
            from mad_guardrails.guardrails.guardrail import Guardrail

            cfg = guardrail_config if guardrail_config is not None else load_config(settings.profile)
            if settings.timeout_s is not None:
                cfg = cfg.model_copy(update={"timeout_s": settings.timeout_s})
            g = Guardrail.from_config(cfg)
            start = getattr(g.components.backend, "start", None)  # a service is ready when its LLM is: start it now
            if start is not None:
                start()
            return g

    svc = Service(settings, guardrail_factory, on_fatal)
    tracing.setup(settings.otel)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.http = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(settings.upstream_timeout_s, connect=10))
        loading = asyncio.create_task(svc.load())
        try:
            yield
        finally:
            if not loading.done():
                loading.cancel()
            if svc.guardrail is not None:
                log.info({"msg": "closing the guardrail"})
                await asyncio.to_thread(svc.guardrail.close)
                svc.guardrail = None
            await svc.http.aclose()
            tracing.shutdown()

    app = FastAPI(title="mad-guardrails", version="0.1.0", lifespan=lifespan,
                  description="Checks AI outputs against regulatory clauses (see docs/service.md). Send "
                  "`Authorization: Bearer KEY` on /v1/* when the service has keys.")
    app.state.svc = svc
    app.add_middleware(ServiceMiddleware, max_body_bytes=settings.max_body_bytes, metrics=svc.metrics)

    bearer = HTTPBearer(auto_error=False, description="an API key of the service")

    async def auth(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not svc.keys.enabled:
            return
        if not svc.keys.verify(request.headers.get("authorization")):
            svc.metrics.rejected.labels(reason="unauthorized").inc()
            request.scope["mad_guardrails"]["error"] = "unauthorized"
            raise ServiceError(401, "missing or invalid API key", "unauthorized",
                               headers={"WWW-Authenticate": "Bearer"},
                               fix="send Authorization: Bearer KEY with a key the service was started with")

    # errors -----------------------------------------------------------------------------------------------------
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, e: ServiceError):
        request.scope.get("mad_guardrails", {}).setdefault("error", e.type)
        return Response(error_body(str(e), e.type, **e.extra), status_code=e.status, headers=e.headers,
                        media_type="application/json")

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, e: Overloaded):
        svc.metrics.rejected.labels(reason="overloaded").inc()
        request.scope.get("mad_guardrails", {})["error"] = "overloaded"
        return Response(error_body(str(e), "overloaded", retry_after_s=e.retry_after,
                                   fix="retry after Retry-After seconds, or send fewer requests at once"),
                        status_code=429, headers={"Retry-After": str(e.retry_after)}, media_type="application/json")

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, e: ClientGone):
        request.scope.get("mad_guardrails", {})["error"] = "client_disconnected"
        return Response(status_code=499)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        svc.metrics.input_errors.inc()
        errs = jsonable_encoder(e.errors(), custom_encoder={Exception: str})
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", []) if x != "body")
        msg = f"invalid request: {where + ': ' if where else ''}{first.get('msg', 'bad body')}"
        return Response(error_body(msg, "invalid_request", detail=errs), status_code=422,
                        media_type="application/json")

    # probes -----------------------------------------------------------------------------------------------------
    @app.get("/healthz", tags=["probes"], summary="the process is up")
    async def healthz():
        state = "ready" if svc.guardrail is not None else ("failed" if svc.load_error else "loading")
        return {"status": "ok", "guardrail": state}

    @app.get("/readyz", tags=["probes"], summary="index loaded and LLM backend answering (per component)")
    async def readyz():
        status, body = await svc.readiness()
        return _json(body, status)

    @app.get("/metrics", tags=["probes"], summary="Prometheus text exposition")
    async def metrics():
        svc.metrics.in_flight.set(svc.admission.in_flight)
        svc.metrics.queued.set(svc.admission.waiting)
        return Response(svc.metrics.render(), media_type=CONTENT_TYPE)

    # checks -----------------------------------------------------------------------------------------------------
    @app.post("/v1/check", tags=["check"], dependencies=[Depends(auth)],
              responses={200: {"model": Verdict, "description": "the Verdict (library schema)"},
                         401: {"model": ErrorBody}, 413: {"model": ErrorBody}, 422: {"model": ErrorBody},
                         429: {"model": ErrorBody}, 503: {"model": ErrorBody}})
    async def check(body: CheckRequest, request: Request):
        """Check one AI output; the Verdict as JSON (``x-guardrail-decision`` header too). A check that fails
        anywhere, or passes its deadline, gives a fail-closed ``flag`` verdict (200), like the library."""
        svc.require_guardrail()
        ctx = request.scope["mad_guardrails"]
        try:
            v = await svc.guarded(request, lambda: svc.check_one(body))
        except InputError as e:
            raise svc.input_error(e, body.output, body.query) from None
        ctx.update(decision=v.decision, path=v.path)
        return Response(v.model_dump_json(), media_type="application/json",
                        headers={"x-guardrail-decision": v.decision})

    @app.post("/v1/check/batch", tags=["check"], dependencies=[Depends(auth)],
              responses={200: {"model": BatchResponse}, 401: {"model": ErrorBody}, 413: {"model": ErrorBody},
                         429: {"model": ErrorBody}})
    async def check_batch(body: BatchRequest, request: Request):
        """Check many outputs (one admission slot, ``--batch-concurrency`` at once); results in input order, a bad
        item gives ``{"error": {...}}`` in its slot and the rest go on."""
        svc.require_guardrail()
        n = len(body.items)
        if n > settings.max_batch:
            raise ServiceError(413, f"the batch has {n} items; the limit is {settings.max_batch}", "batch_too_large",
                               limit_items=settings.max_batch, fix="split it into batches of at most "
                               f"{settings.max_batch} items")
        ctx = request.scope["mad_guardrails"]
        ctx["items"] = n

        async def run_all():
            sem = asyncio.Semaphore(settings.batch_concurrency)

            async def one(item):
                try:
                    req = CheckRequest(output=item) if isinstance(item, str) else CheckRequest.model_validate(item)
                except ValidationError as e:
                    svc.metrics.input_errors.inc()
                    err = e.errors()[0] if e.errors() else {}
                    where = ".".join(str(x) for x in err.get("loc", []))
                    return {"error": {"message": f"invalid item: {where + ': ' if where else ''}"
                                                 f"{err.get('msg', 'bad item')}", "type": "invalid_request"}}
                async with sem:
                    try:
                        return await svc.check_one(req)
                    except InputError as e:
                        se = svc.input_error(e, req.output, req.query)
                        return {"error": {"message": str(e), "type": "input_error", "status": se.status,
                                          "fix": e.fix}}

            return await asyncio.gather(*(one(it) for it in body.items))

        results = await svc.guarded(request, run_all)
        decisions = [r.decision for r in results if isinstance(r, Verdict)]
        ctx.update(decision=worst(decisions), path="batch")
        parts = [r.model_dump_json() if isinstance(r, Verdict) else _dumps(r) for r in results]
        return Response('{"results":[' + ",".join(parts) + "]}", media_type="application/json")

    from mad_guardrails.guardrails.service.proxy import register_proxy

    register_proxy(app, svc, auth)
    return app


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)
