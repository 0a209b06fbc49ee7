"""A guarded OpenAI-compatible proxy: ``POST /v1/chat/completions`` → the upstream server (``--upstream``), whose
answer is checked (the user's last message as the query) before the client gets it.

Non-streaming: the upstream response comes back with a ``guardrail`` object (decision, path, violations, failure,
action) and an ``x-guardrail-decision`` header. ``block`` — and ``flag`` with ``--on-flag hold`` — replaces the
answer's content with a message naming the violated provisions (``finish_reason: "content_filter"``, tool calls
dropped).

Streaming (``stream: true``), ``--stream-mode sentence`` (default): upstream chunks are read as they arrive; their text
is released to the client only up to the last sentence end, and only after the fast deterministic check (policy
screening + the key-fact check, the same as the graph's fast block) found no contradicted key fact in the window of
text up to there. Text after the last sentence end is held. A contradicted key fact stops the stream at once: the
offending sentence is never sent and the upstream request is closed. When the upstream is done (or stopped), the full
check runs on the whole answer (SSE ``: keep-alive`` comments meanwhile); then either the held text and a final chunk
with the upstream's ``finish_reason`` and the ``guardrail`` object, or — block, or flag held — a final chunk whose
content says why, ``finish_reason: "content_filter"``, and the ``guardrail`` object. ``--stream-mode buffer`` releases
nothing before the full check. Either way no text reaches the client unchecked. See docs/service.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import httpx
from fastapi import Depends, Request
from fastapi.responses import Response, StreamingResponse

from mad_guardrails.core.errors import InputError
from mad_guardrails.core.verdict import Verdict, check_mode
from mad_guardrails.guardrails.service import tracing

log = logging.getLogger("mad_guardrails.service")

#: a place text may be released up to: after a sentence end (and any closing quote/bracket) followed by whitespace,
#: or a line break
_BOUNDARY = re.compile(r"""[.!?;:]["')\]]*\s+|\n+""")
#: with no sentence end for this long (code, lists), release up to the last whitespace
MAX_HELD_CHARS = 400
#: characters before a release point that the fast check reads (the graph's retrieval window)
FAST_WINDOW_CHARS = 1500


# -- what a verdict does to an answer --------------------------------------------------------------------------------
def action_for(v: Verdict | None, on_flag: str) -> str:
    """``pass``, ``block`` or ``hold`` (a flag with ``--on-flag hold``).

    >>> action_for(Verdict(decision="flag"), "pass"), action_for(Verdict(decision="flag"), "hold")
    ('pass', 'hold')
    >>> action_for(Verdict(decision="block"), "pass"), action_for(None, "hold")
    ('block', 'pass')
    """
    if v is None or v.decision == "allow":
        return "pass"
    if v.decision == "block":
        return "block"
    return "hold" if on_flag == "hold" else "pass"


class _Safe(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def replacement_text(v: Verdict, action: str, *, refusal: str, hold: str) -> str:
    """The text that replaces a blocked / held answer, naming the violated provisions.

    >>> from mad_guardrails.core.verdict import Violation
    >>> v = Verdict(decision="block", violations=[Violation(rule_id="nis2.early_warning",
    ...             provisions=["nis2:art_23.4.a"])])
    >>> replacement_text(v, "block", refusal="Blocked: {reason}.", hold="")
    'Blocked: it conflicts with nis2:art_23.4.a (rule nis2.early_warning).'
    """
    provisions = list(dict.fromkeys(p for x in v.violations for p in x.provisions))
    rules = list(dict.fromkeys(x.rule_id for x in v.violations))
    if v.failure:
        reason = f"the check could not be completed ({v.failure})"
    elif v.violations:
        reason = "; ".join(f"it conflicts with {', '.join(x.provisions) or 'a policy rule'} (rule {x.rule_id})"
                           for x in v.violations)
        if action == "hold":
            reason = "possible conflict with " + ", ".join(provisions or rules)
    else:
        reason = (v.rationale or "the answer could not be confirmed against the rules")[:300].rstrip(".")
    tpl = refusal if action == "block" else hold
    return tpl.format_map(_Safe(provisions=", ".join(provisions) or "the applicable rules",
                                rules=", ".join(rules) or "none", reason=reason))


def guardrail_summary(v: Verdict | None, action: str, request_id: str | None = None, **extra) -> dict:
    """The ``guardrail`` object added to proxied responses."""
    if v is None:
        return {"decision": "allow", "path": None, "violations": [], "failure": None, "action": action,
                "note": "the answer has no text to check", "request_id": request_id, **extra}
    return {"decision": v.decision, "path": v.path,
            "violations": [x.model_dump(mode="json") for x in v.violations], "failure": v.failure,
            "rationale": v.rationale, "action": action, "request_id": request_id, **extra}


def last_user_text(messages: list) -> str | None:
    """The text of the last user message (text parts of a multi-part content joined)."""
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return "\n".join(p.get("text", "") for p in c if isinstance(p, dict) and p.get("type") == "text")
    return None


def answer_text(message: dict) -> str:
    """What is checked of an assistant message: its content and its tool calls' arguments."""
    parts = []
    c = message.get("content")
    if isinstance(c, str):
        parts.append(c)
    elif isinstance(c, list):
        parts += [p.get("text", "") for p in c if isinstance(p, dict)]
    for tc in message.get("tool_calls") or []:
        fn = (tc or {}).get("function") or {}
        if fn.get("arguments"):
            parts.append(f"[tool call {fn.get('name', '')}] {fn['arguments']}")
    return "\n".join(p for p in parts if p)


def release_point(text: str, start: int) -> int:
    """How far ``text`` may be released, given that ``text[:start]`` already was (a sentence end or line break).

    >>> t = "First sentence. Second one is not don"
    >>> t[:release_point(t, 0)]
    'First sentence. '
    >>> release_point(t, 16)
    16
    """
    end = start
    for m in _BOUNDARY.finditer(text, start):
        end = m.end()
    if end == start and len(text) - start > MAX_HELD_CHARS:
        ws = text.rfind(" ", start)
        if ws > start:
            end = ws + 1
    return end


# -- the routes ------------------------------------------------------------------------------------------------------
def register_proxy(app, svc, auth) -> None:
    from mad_guardrails.guardrails.service.app import CheckRequest, ServiceError, worst

    s = svc.settings

    def upstream_headers(request: Request) -> dict:
        h = {"content-type": "application/json", "x-request-id": request.scope["mad_guardrails"]["request_id"]}
        if s.upstream_key:
            h["authorization"] = f"Bearer {s.upstream_key}"
        return tracing.inject(h)

    def no_upstream() -> ServiceError:
        return ServiceError(404, "this service has no upstream LLM to proxy", "not_found",
                            fix="start it with --upstream URL (an OpenAI-compatible server, e.g. http://host:8000/v1)")

    async def check_answer(text: str, query: str | None, mode: str, policies) -> Verdict | None:
        """The answer's verdict; None when it has no text. An answer that cannot be checked fails closed."""
        if not text.strip():
            return None
        g = svc.require_guardrail()
        limit = g.config.max_input_chars
        if query is not None and len(query) > limit:
            query = query[-limit:]
        try:
            return await svc.check_one(CheckRequest(output=text, query=query or None, mode=mode, policies=policies))
        except InputError as e:  # e.g. an answer longer than max_input_chars: not passed unchecked
            v = Verdict.failed(f"input_error: {e}", action=g.config.fail_action, mode=mode)
            svc.metrics.record_verdict(v)
            return v

    def parse_request(raw: bytes) -> tuple[dict, str | None, str, Any]:
        try:
            body = json.loads(raw or b"null")
        except ValueError as e:
            raise ServiceError(400, f"the body is not JSON: {e}", "invalid_request") from None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise ServiceError(422, "the body must be a chat completion request with a 'messages' list",
                               "invalid_request")
        opts = body.pop("guardrail", None) or {}
        if not isinstance(opts, dict):
            raise ServiceError(422, "'guardrail' must be an object {mode, policies}", "invalid_request")
        mode = opts.get("mode") or s.proxy_mode
        try:
            check_mode(mode, where="guardrail.mode")
        except InputError as e:
            raise ServiceError(422, str(e), "input_error") from None
        return body, last_user_text(body["messages"]), mode, opts.get("policies")

    @app.get("/v1/models", tags=["proxy"], dependencies=[Depends(auth)], summary="the upstream's models")
    async def models(request: Request):
        if not s.upstream:
            raise no_upstream()
        try:
            r = await svc.http.get(s.upstream.rstrip("/") + "/models", headers=upstream_headers(request))
        except httpx.HTTPError as e:
            svc.metrics.upstream_errors.labels(kind="connection").inc()
            raise ServiceError(502, f"the upstream is unreachable: {type(e).__name__}: {e}", "upstream_error") from None
        return Response(r.content, status_code=r.status_code,
                        media_type=r.headers.get("content-type", "application/json"))

    @app.post("/v1/chat/completions", tags=["proxy"], dependencies=[Depends(auth)],
              summary="guarded chat completion (OpenAI-compatible; see docs/service.md)")
    async def chat_completions(request: Request):
        if not s.upstream:
            raise no_upstream()
        svc.require_guardrail()
        body, query, mode, policies = parse_request(await request.body())
        ctx = request.scope["mad_guardrails"]
        stream = bool(body.get("stream"))
        ctx["stream"] = stream
        url = s.upstream.rstrip("/") + "/chat/completions"
        if not stream:
            return await svc.guarded(request, lambda: once(request, url, body, query, mode, policies))
        if (body.get("n") or 1) != 1:
            raise ServiceError(422, "stream with n > 1 is not supported by the guarded proxy", "invalid_request",
                               fix="use n=1, or stream: false")
        return await open_stream(request, url, body, query, mode, policies)

    async def once(request, url, body, query, mode, policies) -> Response:
        ctx = request.scope["mad_guardrails"]
        try:
            r = await svc.http.post(url, json=body, headers=upstream_headers(request))
        except httpx.HTTPError as e:
            svc.metrics.upstream_errors.labels(kind="connection").inc()
            raise ServiceError(502, f"the upstream is unreachable: {type(e).__name__}: {e}", "upstream_error") from None
        if r.status_code != 200:
            svc.metrics.upstream_errors.labels(kind=f"status_{r.status_code}").inc()
            ctx["error"] = f"upstream_{r.status_code}"
            return Response(r.content, status_code=r.status_code,
                            media_type=r.headers.get("content-type", "application/json"))
        try:
            data = r.json()
            choices = data["choices"]
        except (ValueError, KeyError, TypeError):
            svc.metrics.upstream_errors.labels(kind="bad_body").inc()
            raise ServiceError(502, "the upstream's answer is not a chat completion", "upstream_error") from None
        verdicts = await asyncio.gather(*(check_answer(answer_text(ch.get("message") or {}), query, mode, policies)
                                          for ch in choices))
        summaries = []
        for ch, v in zip(choices, verdicts, strict=True):
            act = action_for(v, s.on_flag)
            if act != "pass":
                ch["message"] = {"role": "assistant", "content": replacement_text(
                    v, act, refusal=s.refusal, hold=s.hold_message)}
                ch["finish_reason"] = "content_filter"
                ch["logprobs"] = None
            summaries.append(guardrail_summary(v, act, ctx["request_id"]))
        top = max(summaries, key=lambda x: ({"allow": 0, "flag": 1, "block": 2}[x["decision"]],
                                             x["action"] != "pass"), default=guardrail_summary(None, "pass"))
        data["guardrail"] = {**top, **({"choices": summaries} if len(summaries) > 1 else {})}
        decision = worst([x["decision"] for x in summaries]) or "allow"
        ctx.update(decision=decision, path=top["path"], action=top["action"])
        svc.metrics.proxy.labels(stream="false", action=top["action"]).inc()
        return Response(json.dumps(data, ensure_ascii=False), media_type="application/json",
                        headers={"x-guardrail-decision": decision})

    async def open_stream(request, url, body, query, mode, policies):
        ctx = request.scope["mad_guardrails"]
        await svc.watched(request, svc.admission.acquire())
        t0 = time.perf_counter()
        state = {"released": False}

        def release() -> None:
            if not state["released"]:
                state["released"] = True
                svc.admission.release(time.perf_counter() - t0)

        try:
            req = svc.http.build_request("POST", url, json=body, headers=upstream_headers(request))
            up = await svc.http.send(req, stream=True)
        except httpx.HTTPError as e:
            release()
            svc.metrics.upstream_errors.labels(kind="connection").inc()
            raise ServiceError(502, f"the upstream is unreachable: {type(e).__name__}: {e}", "upstream_error") from None
        except BaseException:
            release()
            raise
        if up.status_code != 200:
            try:
                content = await up.aread()
            finally:
                await up.aclose()
                release()
            svc.metrics.upstream_errors.labels(kind=f"status_{up.status_code}").inc()
            ctx["error"] = f"upstream_{up.status_code}"
            return Response(content, status_code=up.status_code,
                            media_type=up.headers.get("content-type", "application/json"))
        gen = stream_guarded(request, up, body, query, mode, policies)

        async def on_close() -> None:
            try:
                await gen.aclose()
            finally:
                await up.aclose()
                release()
                if not ctx.get("completed"):
                    svc.metrics.disconnects.inc()
                    ctx.setdefault("error", "client_disconnected")

        return GuardedStream(gen, on_close=on_close, media_type="text/event-stream",
                             headers={"x-guardrail-decision": "pending", "cache-control": "no-cache",
                                      "x-accel-buffering": "no"})

    async def fast_contradictions(text: str, query: str | None, policies) -> list[str] | None:
        """Rule ids whose key fact ``text`` contradicts (policy screening + the key-fact check, as the graph's fast
        block); None when the check itself fails (the stream then holds everything for the full check)."""
        g = svc.require_guardrail()

        def run() -> list[str]:
            from mad_guardrails.guardrails.graph import rule_selected
            from mad_guardrails.verifier.facts import check_facts

            hits = g.components.screener.screen(text, query, g.config.policies.screen_top * 2)
            rules = [h.rule for h in hits if rule_selected(h.rule, policies)]
            return sorted({f.rule_id for f in check_facts(text, rules, query=query).contradicted})

        try:
            return await asyncio.to_thread(run)
        except Exception as e:  # noqa: BLE001 - the stream then waits for the full check
            log.warning({"msg": "fast stream check failed; holding the rest of the stream for the full check",
                         "error": f"{type(e).__name__}: {e}"})
            return None

    async def stream_guarded(request, up: httpx.Response, body, query, mode, policies):
        ctx = request.scope["mad_guardrails"]
        rid = ctx["request_id"]
        meta = {"id": f"chatcmpl-guard-{rid}", "created": int(time.time()), "model": body.get("model")}
        text, released, finish, usage_chunk, upstream_error = "", 0, None, None, None
        held_raw: list[dict] = []
        role_sent = False
        incremental = s.stream_mode == "sentence"
        stopped: list[str] | None = None

        def chunk(delta: dict, finish_reason: str | None = None, **extra) -> str:
            obj = {"id": meta["id"], "object": "chat.completion.chunk", "created": meta["created"],
                   "model": meta["model"], "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                        "finish_reason": finish_reason}], **extra}
            return sse(obj)

        async for line in up.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                ch = json.loads(payload)
            except ValueError:
                continue
            if not isinstance(ch, dict):
                continue
            if ch.get("error") and not ch.get("choices"):
                upstream_error = ch["error"]
                svc.metrics.upstream_errors.labels(kind="stream_error").inc()
                break
            for k in ("id", "created", "model"):
                if ch.get(k) is not None:
                    meta[k] = ch[k]
            if ch.get("usage"):
                usage_chunk = ch
            for c in ch.get("choices") or []:
                d = c.get("delta") or {}
                if d.get("role") and not role_sent:
                    role_sent = True
                    yield chunk({"role": d["role"], "content": ""})
                if isinstance(d.get("content"), str):
                    text += d["content"]
                if d.get("tool_calls") or d.get("function_call"):
                    held_raw.append({**ch, "choices": [c], "usage": None})
                if c.get("finish_reason"):
                    finish = c["finish_reason"]
            if incremental:
                b = release_point(text, released)
                if b > released:
                    lo = max(0, b - FAST_WINDOW_CHARS)
                    found = await fast_contradictions(text[lo:b], query, policies)
                    if found is None:
                        incremental = False
                    elif found:
                        stopped = found
                        break
                    else:
                        yield chunk({"content": text[released:b]})
                        released = b
        await up.aclose()  # stopped early: the upstream stops generating

        tool_text = "\n".join(answer_text({"tool_calls": c["choices"][0]["delta"].get("tool_calls") or []})
                              for c in held_raw)
        task = asyncio.ensure_future(check_answer("\n".join(x for x in (text, tool_text) if x), query, mode,
                                                  policies))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=s.keepalive_s)
                if done:
                    break
                yield ": keep-alive\n\n"
        finally:
            if not task.done():
                task.cancel()  # the client went away: so does the check
        v = task.result()
        act = action_for(v, s.on_flag)
        extra = {}
        if stopped:
            extra["stopped_early"] = {"rules": stopped, "released_chars": released}
        if upstream_error:
            extra["upstream_error"] = upstream_error
        summary = guardrail_summary(v, act, rid, **extra)
        if act == "pass":
            if released < len(text):
                yield chunk({"content": text[released:]})
            for raw in held_raw:
                yield sse(raw)
            yield chunk({}, finish or ("stop" if not stopped else "content_filter"), guardrail=summary)
        else:
            msg = replacement_text(v, act, refusal=s.refusal, hold=s.hold_message)
            yield chunk({"content": ("\n\n" if released else "") + msg}, "content_filter", guardrail=summary)
        if usage_chunk is not None:
            yield sse({**usage_chunk, "choices": []})
        yield "data: [DONE]\n\n"
        decision = v.decision if v is not None else "allow"
        ctx.update(decision=decision, path=summary["path"], action=act, completed=True)
        svc.metrics.proxy.labels(stream="true", action=act).inc()


def sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


class GuardedStream(StreamingResponse):
    """A streaming response that always runs ``on_close`` (close the generator and the upstream, free the slot),
    whether the stream ended, failed or the client left."""

    def __init__(self, content, *, on_close, **kw):
        super().__init__(content, **kw)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()
