"""Prometheus metrics of the service: through ``prometheus_client`` (a registry of its own) when importable, else a
small hand-written exposition with the same names.

    >>> m = Metrics(prefer_client=False)
    >>> m.requests.labels(route="/v1/check", method="POST", status="200").inc()
    >>> m.check_seconds.labels(path="fast_allow").observe(0.012)
    >>> text = m.render().decode()
    >>> 'mad_guardrails_http_requests_total{route="/v1/check",method="POST",status="200"} 1.0' in text
    True
    >>> 'mad_guardrails_check_duration_seconds_bucket{path="fast_allow",le="0.025"} 1.0' in text
    True
"""

from __future__ import annotations

import threading

#: seconds: fast paths take milliseconds, debates on a CPU minutes
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# -- fallback: a minimal Prometheus text exposition ------------------------------------------------------------------
def _fmt_labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_esc(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Child:
    def __init__(self, parent, key):
        self.parent, self.key = parent, key

    def inc(self, amount: float = 1.0) -> None:
        with self.parent.lock:
            self.parent.values[self.key] = self.parent.values.get(self.key, 0.0) + amount

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    def set(self, value: float) -> None:
        with self.parent.lock:
            self.parent.values[self.key] = float(value)

    def observe(self, value: float) -> None:
        with self.parent.lock:
            counts, total = self.parent.values.get(self.key, ([0] * len(BUCKETS), 0.0))
            counts = [c + (1 if value <= b else 0) for c, b in zip(counts, BUCKETS, strict=True)]
            n = self.parent.counts.get(self.key, 0) + 1
            self.parent.counts[self.key] = n
            self.parent.values[self.key] = (counts, total + value)


class _Metric:
    def __init__(self, kind: str, name: str, doc: str, labelnames: tuple[str, ...] = ()):
        self.kind, self.name, self.doc, self.labelnames = kind, name, doc, tuple(labelnames)
        self.values: dict = {}
        self.counts: dict = {}
        self.lock = threading.Lock()

    def labels(self, **kw) -> _Child:
        return _Child(self, tuple(str(kw[n]) for n in self.labelnames))

    # unlabelled use
    def inc(self, amount: float = 1.0) -> None:
        _Child(self, ()).inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        _Child(self, ()).dec(amount)

    def set(self, value: float) -> None:
        _Child(self, ()).set(value)

    def observe(self, value: float) -> None:
        _Child(self, ()).observe(value)

    def render(self) -> list[str]:
        name = self.name + ("_total" if self.kind == "counter" else "")
        lines = [f"# HELP {name} {self.doc}", f"# TYPE {name} {self.kind}"]
        with self.lock:
            items = list(self.values.items())
            counts = dict(self.counts)
        if not items and not self.labelnames and self.kind != "histogram":
            items = [((), 0.0)]
        for key, val in items:
            if self.kind == "histogram":
                buckets, total = val
                for b, c in zip(BUCKETS, buckets, strict=True):
                    le = _fmt_labels(self.labelnames, key, f'le="{b}"')
                    lines.append(f"{self.name}_bucket{le} {float(c)}")
                le = _fmt_labels(self.labelnames, key, 'le="+Inf"')
                lines.append(f"{self.name}_bucket{le} {float(counts.get(key, 0))}")
                lines.append(f"{self.name}_count{_fmt_labels(self.labelnames, key)} {float(counts.get(key, 0))}")
                lines.append(f"{self.name}_sum{_fmt_labels(self.labelnames, key)} {float(total)}")
            else:
                lines.append(f"{name}{_fmt_labels(self.labelnames, key)} {float(val)}")
        return lines


class Metrics:
    """The service's metrics. ``render()`` gives the exposition (``CONTENT_TYPE``)."""

    def __init__(self, prefer_client: bool = True):
        self.backend = "fallback"
        registry = None
        if prefer_client:
            try:
                import prometheus_client as pc

                registry = pc.CollectorRegistry(auto_describe=True)
                self.backend = "prometheus_client"
            except ImportError:
                pc = None
        self._registry = registry
        self._fallback: list[_Metric] = []

        def make(kind: str, name: str, doc: str, labels: tuple[str, ...] = ()):
            if registry is not None:
                cls = {"counter": pc.Counter, "gauge": pc.Gauge, "histogram": pc.Histogram}[kind]
                kw = {"buckets": BUCKETS} if kind == "histogram" else {}
                return cls(name, doc, labels, registry=registry, **kw)
            m = _Metric(kind, name, doc, labels)
            self._fallback.append(m)
            return m

        p = "mad_guardrails_"
        self.requests = make("counter", p + "http_requests", "HTTP requests by route, method and status",
                             ("route", "method", "status"))
        self.request_seconds = make("histogram", p + "http_request_duration_seconds", "HTTP request latency",
                                    ("route",))
        self.decisions = make("counter", p + "decisions", "verdicts by decision and path", ("decision", "path"))
        self.check_seconds = make("histogram", p + "check_duration_seconds", "guardrail check latency by path",
                                  ("path",))
        self.llm_calls = make("counter", p + "llm_calls", "LLM calls made by checks")
        self.llm_tokens = make("counter", p + "llm_tokens", "LLM tokens used by checks", ("kind",))
        self.failures = make("counter", p + "check_failures", "checks that failed closed, by kind", ("kind",))
        self.input_errors = make("counter", p + "input_errors", "requests or batch items refused as bad input")
        self.rejected = make("counter", p + "rejected", "requests refused before a check, by reason", ("reason",))
        self.disconnects = make("counter", p + "client_disconnects", "requests whose client left; their check "
                                "was cancelled")
        self.in_flight = make("gauge", p + "in_flight", "requests holding a check slot")
        self.queued = make("gauge", p + "queued", "requests waiting for a check slot")
        self.proxy = make("counter", p + "proxy_completions", "proxied chat completions by stream and action",
                          ("stream", "action"))
        self.upstream_errors = make("counter", p + "upstream_errors", "upstream failures (connection, status)",
                                    ("kind",))

    def record_verdict(self, v) -> None:
        """Count one Verdict: decision/path, latency, LLM usage, failure."""
        self.decisions.labels(decision=v.decision, path=v.path).inc()
        total = v.timings.get("total")
        if total is not None:
            self.check_seconds.labels(path=v.path).observe(float(total))
        if v.usage.llm_calls:
            self.llm_calls.inc(v.usage.llm_calls)
        if v.usage.prompt_tokens:
            self.llm_tokens.labels(kind="prompt").inc(v.usage.prompt_tokens)
        if v.usage.completion_tokens:
            self.llm_tokens.labels(kind="completion").inc(v.usage.completion_tokens)
        if v.failure:
            kind = "timeout" if v.failure.startswith("timeout") else v.failure.split(":", 1)[0][:40] or "other"
            self.failures.labels(kind=kind).inc()

    def render(self) -> bytes:
        if self._registry is not None:
            from prometheus_client import generate_latest

            return generate_latest(self._registry)
        lines: list[str] = []
        for m in self._fallback:
            lines += m.render()
        return ("\n".join(lines) + "\n").encode()
