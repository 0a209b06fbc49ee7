"""The outermost ASGI layer: request ids, the body-size limit, one JSON log line and the metrics of each request, and
its server span.

* ``x-request-id``: taken from the request when it is a sane token (``[A-Za-z0-9._:-]``, ≤ 128 characters), else a
  new uuid4 hex; it is on every response (401, 413 and 429 included) and in the log line.
* body limit: a body larger than ``max_body_bytes`` (by ``content-length`` or as it streams in) gets 413 with a JSON
  message naming the limit and the fix, before any route sees it.
* log line (logger ``mad_guardrails.service.access``, JSON): ``request_id, method, route, status, decision, path, ms``
  (+ ``action`` for the proxy, ``error`` for a refusal).

Routes put what the log should say in ``scope["mad_guardrails"]`` (a dict: ``decision``, ``path``, ...).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from mad_guardrails.guardrails.service import tracing
from mad_guardrails.guardrails.trail import REQUEST_ID

access_log = logging.getLogger("mad_guardrails.service.access")

_RID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: the routes, as metric labels (anything else is "other": no label per unknown path)
ROUTES = ("/v1/check", "/v1/check/batch", "/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/metrics",
          "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a dict message is merged in as fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name}
        if isinstance(record.msg, dict):
            out.update(record.msg)
        else:
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the service's loggers (and uvicorn's error log)."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("mad_guardrails", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False


def error_body(message: str, type_: str, **extra) -> bytes:
    """The service's error envelope (OpenAI-style, so OpenAI clients show the message)."""
    return json.dumps({"error": {"message": message, "type": type_, **extra}}).encode()


class ServiceMiddleware:
    def __init__(self, app, *, max_body_bytes: int, metrics):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = headers.get("x-request-id", "")
        if not _RID.match(rid):
            rid = uuid.uuid4().hex
        ctx: dict = {"request_id": rid}
        scope["mad_guardrails"] = ctx
        REQUEST_ID.set(rid)  # this request's task: the verdicts it asks for carry the id
        path = scope.get("path", "")
        route = path if path in ROUTES else "other"
        method = scope.get("method", "GET")
        status_holder: dict = {"status": 500}
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message = {**message, "headers": [*message.get("headers", []), rid_header]}
            await send(message)

        with tracing.span("guardrail.request", {"http.request.method": method, "http.route": route,
                                                "guardrail.request_id": rid}, server=True, carrier=headers) as sp:
            try:
                receive2 = await self._limit_body(headers, receive)
                if receive2 is None:  # too large: answered here
                    ctx["error"] = "body_too_large"
                    self.metrics.rejected.labels(reason="body_too_large").inc()
                    await self._send_json(send_with_id, 413, error_body(
                        f"the request body is larger than the limit of {self.max_body_bytes:,} bytes",
                        "request_too_large", limit_bytes=self.max_body_bytes,
                        fix="send less per request (split a batch into several, or check long texts in parts), "
                            "or start the service with a larger --max-body-bytes"))
                else:
                    await self.app(scope, receive2, send_with_id)
            except Exception as e:  # a bug: answer 500 with the request id (when nothing was sent yet), log it
                tracing.record_error(sp, e)
                ctx["error"] = f"{type(e).__name__}: {e}"[:300]
                logging.getLogger("mad_guardrails.service").exception({"msg": "unhandled error", "request_id": rid})
                if status_holder.get("started"):
                    raise
                status_holder["status"] = 500
                await self._send_json(send, 500, error_body(
                    f"internal error ({type(e).__name__}); request id {rid}", "internal_error") , [rid_header])
            finally:
                status = status_holder["status"]
                ms = round((time.perf_counter() - t0) * 1000, 2)
                tracing.set_attrs(sp, {"http.response.status_code": status, "guardrail.decision":
                                       ctx.get("decision"), "guardrail.path": ctx.get("path")})
                self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
                self.metrics.request_seconds.labels(route=route).observe(ms / 1000)
                line = {"msg": "request", "request_id": rid, "method": method, "route": route, "status": status,
                        "decision": ctx.get("decision"), "path": ctx.get("path"), "ms": ms}
                for k in ("action", "error", "items", "stream"):
                    if k in ctx:
                        line[k] = ctx[k]
                access_log.info(line)

    async def _limit_body(self, headers: dict, receive):
        """A receive that replays the (size-checked) body, or None when it is too large."""
        try:
            declared = int(headers.get("content-length", "") or -1)
        except ValueError:
            declared = -1
        if declared > self.max_body_bytes:
            await self._drain(receive)
            return None
        if headers.get("content-length") is None and "chunked" not in headers.get("transfer-encoding", ""):
            return receive  # no body
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # disconnect while sending the body
                replay = [msg]
                break
            body = msg.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                if msg.get("more_body", False):
                    await self._drain(receive)
                return None
            chunks.append(body)
            if not msg.get("more_body", False):
                replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
                break

        async def replay_receive():
            if replay:
                return replay.pop(0)
            return await receive()  # after the body: waits for the disconnect

        return replay_receive

    @staticmethod
    async def _drain(receive, cap: int = 16 * 1024 * 1024) -> None:
        """Read (and drop) the rest of a refused body, up to ``cap`` bytes, so the client gets to read the 413."""
        seen = 0
        while seen <= cap:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            seen += len(msg.get("body", b""))
            if not msg.get("more_body", False):
                return

    @staticmethod
    async def _send_json(send, status: int, body: bytes, extra_headers: list | None = None) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *(extra_headers or [])]})
        await send({"type": "http.response.body", "body": body})
