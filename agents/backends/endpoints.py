"""Several OpenAI-compatible endpoints of one deployment behind one backend: least-in-flight routing, health checks,
fail-over, fail closed when none answers.

The endpoints are ``$MAD_GUARDRAILS_LLM_URLS`` (comma-separated) when set, else ``llm.base_urls`` when not empty,
else ``llm.base_url`` (:func:`endpoint_urls`). Every request goes to the healthy endpoint with the fewest requests in
flight (ties: the one used least recently). A connection error (refused, reset, DNS — not a timeout: a slow server is
busy, not gone) takes the endpoint out and the request moves at once to the next healthy one. An endpoint that is out
is probed (``GET <root>/health``, else ``GET <base_url>/models``) at most every ``retry_s`` seconds and comes back
when it answers. With none answering, the request fails with a retryable ``connection`` error: the backend's retries
with backoff apply, then the check fails closed (``flag``) like any other backend failure.

    >>> import asyncio
    >>> pool = EndpointPool(["http://127.0.0.1:8011/v1", "http://127.0.0.1:8012/v1"], make_client=lambda url: url)
    >>> async def two():
    ...     async with pool.lease() as a, pool.lease() as b:   # two requests in flight: one on each endpoint
    ...         return a.url, b.url
    >>> asyncio.run(two())
    ('http://127.0.0.1:8011/v1', 'http://127.0.0.1:8012/v1')
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from mad_guardrails.agents.backends.base import backend_error

log = logging.getLogger(__name__)
T = TypeVar("T")

#: environment variable naming the endpoints (comma-separated base URLs, e.g. ``http://gpu1:8000/v1,http://gpu2:8000/v1``)
ENV_URLS = "MAD_GUARDRAILS_LLM_URLS"


def endpoint_urls(cfg) -> list[str]:
    """The base URLs of an :class:`~mad_guardrails.agents.config.LLMConfig`: ``$MAD_GUARDRAILS_LLM_URLS``, else
    ``base_urls``, else ``[base_url]``; duplicates dropped, order kept.

    >>> from mad_guardrails.agents.config import LLMConfig
    >>> endpoint_urls(LLMConfig(base_url="http://a/v1", base_urls=["http://b/v1", "http://c/v1/", "http://b/v1"]))
    ['http://b/v1', 'http://c/v1']
    """
    env = os.environ.get(ENV_URLS, "").strip()
    urls = [u for u in env.split(",")] if env else (list(getattr(cfg, "base_urls", None) or []) or [cfg.base_url])
    out: list[str] = []
    for u in (u.strip().rstrip("/") for u in urls):
        if u and u not in out:
            out.append(u)
    return out or [cfg.base_url]


def health_urls(base_url: str) -> list[str]:
    """Where an endpoint is probed: the server root's ``/health`` (vLLM), then ``<base_url>/models`` (any
    OpenAI-compatible server).

    >>> health_urls("http://127.0.0.1:8011/v1")
    ['http://127.0.0.1:8011/health', 'http://127.0.0.1:8011/v1/models']
    """
    s = urlsplit(base_url)
    root = urlunsplit((s.scheme, s.netloc, "", "", ""))
    return [root + "/health", base_url.rstrip("/") + "/models"]


@dataclass(eq=False)
class Endpoint:
    """One base URL, its client and what the pool knows of it."""

    url: str
    client: Any
    in_flight: int = 0
    healthy: bool = True
    down_since: float | None = None
    next_probe: float = 0.0
    last_error: str | None = None
    requests: int = 0
    last_used: int = 0
    _probe: asyncio.Task | None = field(default=None, repr=False)


def is_connection_error(e: BaseException) -> bool:
    """A failure that says the endpoint is not there (refused, reset, unreachable), as opposed to slow or answering
    with an error status."""
    import openai

    if isinstance(e, openai.APITimeoutError | httpx.TimeoutException | asyncio.TimeoutError):
        return False
    return isinstance(e, openai.APIConnectionError | httpx.TransportError | ConnectionError)


class EndpointPool:
    """Route requests over ``urls``; ``make_client(url)`` builds the client of each (an ``openai.AsyncOpenAI``)."""

    def __init__(self, urls: list[str], *, make_client: Callable[[str], Any], retry_s: float = 5.0,
                 probe_timeout_s: float = 2.0, api_key: str | None = None):
        if not urls:
            raise ValueError("an EndpointPool needs at least one URL")
        self.endpoints = [Endpoint(url=u, client=make_client(u)) for u in urls]
        self.retry_s = retry_s
        self.probe_timeout_s = probe_timeout_s
        self.api_key = api_key
        self._tick = itertools.count(1)

    @property
    def urls(self) -> list[str]:
        return [e.url for e in self.endpoints]

    def healthy(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.healthy]

    def stats(self) -> list[dict]:
        """Per endpoint: url, healthy, in flight, requests sent, last error (for logs, /metrics, benchmarks)."""
        return [{"url": e.url, "healthy": e.healthy, "in_flight": e.in_flight, "requests": e.requests,
                 "last_error": e.last_error} for e in self.endpoints]

    # -- health ---------------------------------------------------------------------------------------------------
    def mark_down(self, ep: Endpoint, reason: str) -> None:
        if ep.healthy:
            log.warning("LLM endpoint %s taken out (%s); %d of %d left", ep.url, reason,
                        len(self.healthy()) - 1, len(self.endpoints))
            ep.down_since = time.monotonic()
        ep.healthy = False
        ep.last_error = reason
        ep.next_probe = time.monotonic() + self.retry_s

    def mark_up(self, ep: Endpoint) -> None:
        if not ep.healthy:
            log.info("LLM endpoint %s answers again; back in", ep.url)
        ep.healthy, ep.down_since, ep.last_error = True, None, None

    async def probe(self, ep: Endpoint) -> bool:
        """One health check of ``ep``; marks it up or (keeps it) down. True when it answers."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        reason = "health check failed"
        async with httpx.AsyncClient(timeout=self.probe_timeout_s, headers=headers) as http:
            for url in health_urls(ep.url):
                try:
                    r = await http.get(url)
                except httpx.HTTPError as e:
                    reason = f"health check: {type(e).__name__}: {e}"
                    break  # not reachable: the second URL is on the same server
                if r.status_code == 200:
                    self.mark_up(ep)
                    return True
                reason = f"health check: HTTP {r.status_code} from {url}"
        self.mark_down(ep, reason)
        return False

    def _probe_in_background(self, ep: Endpoint) -> None:
        if ep._probe is not None and not ep._probe.done():
            return
        ep.next_probe = time.monotonic() + self.retry_s
        ep._probe = asyncio.get_running_loop().create_task(self.probe(ep))

    async def check_all(self) -> list[dict]:
        """Probe every endpoint now (start-up, readiness probes); returns :meth:`stats`."""
        await asyncio.gather(*(self.probe(e) for e in self.endpoints))
        return self.stats()

    # -- routing --------------------------------------------------------------------------------------------------
    async def _pick(self, exclude: set[int]) -> Endpoint:
        if len(self.endpoints) == 1:  # nothing to route: the request itself says whether the server answers
            return self.endpoints[0]
        now = time.monotonic()
        for ep in self.endpoints:  # endpoints that are out get a health check every retry_s, off the request path
            if not ep.healthy and now >= ep.next_probe and id(ep) not in exclude:
                self._probe_in_background(ep)
        candidates = [e for e in self.endpoints if e.healthy and id(e) not in exclude]
        if not candidates:  # none is known to be up: probe the rest now, on the request path
            rest = [e for e in self.endpoints if id(e) not in exclude]
            ok = await asyncio.gather(*(self.probe(e) for e in rest)) if rest else []
            candidates = [e for e, up in zip(rest, ok, strict=True) if up]
        if not candidates:
            errors = "; ".join(f"{e.url}: {e.last_error or 'no answer'}" for e in self.endpoints)
            raise backend_error(
                "connection", f"none of the {len(self.endpoints)} LLM endpoint(s) answers ({errors})",
                where="llm.base_url" + ("s" if len(self.endpoints) > 1 else ""),
                fix=f"start the servers (mad-guardrails serve --profile ...) or correct llm.base_urls / ${ENV_URLS}",
                retryable=True)
        return min(candidates, key=lambda e: (e.in_flight, e.last_used))

    @contextlib.asynccontextmanager
    async def lease(self, exclude: set[int] | None = None) -> AsyncIterator[Endpoint]:
        """The endpoint for one request, counted in flight while the block runs; a connection error raised inside
        takes it out."""
        ep = await self._pick(exclude or set())
        ep.in_flight += 1
        ep.requests += 1
        ep.last_used = next(self._tick)
        try:
            yield ep
        except BaseException as e:
            if is_connection_error(e) and len(self.endpoints) > 1:
                self.mark_down(ep, f"{type(e).__name__}: {e.__cause__ or e}")
            raise
        finally:
            ep.in_flight -= 1

    async def call(self, fn: Callable[[Endpoint], Awaitable[T]]) -> T:
        """Run ``fn(endpoint)`` on the best endpoint; on a connection error, again on the next one (each endpoint
        once), then raise the last error."""
        tried: set[int] = set()
        while True:
            ep = None
            try:
                async with self.lease(tried) as ep:
                    return await fn(ep)
            except BaseException as e:
                if ep is None or not is_connection_error(e) or len(tried) + 1 >= len(self.endpoints):
                    raise
                tried.add(id(ep))  # the lease took it out; try the next one
                log.info("request to %s failed to connect; trying another endpoint", ep.url)

    async def aclose(self) -> None:
        for ep in self.endpoints:
            if ep._probe is not None and not ep._probe.done():
                ep._probe.cancel()
            close = getattr(ep.client, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
