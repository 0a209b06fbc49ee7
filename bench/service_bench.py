"""Throughput and latency of ``mad-guardrails api`` on fast-path requests, against the in-process rate, and the
guarded proxy's added latency over a direct upstream call.

    python bench/service_bench.py [--profile offline] [--n 400] [--levels 1,16,64] [--max-seconds 30] [--json]

1. starts the service (a subprocess on a free loopback port; the profile's LLM server is NOT started — fast paths do
   not use it — unless ``--with-llm``), with ``--max-concurrency 64 --max-queue 512``, and a local scripted upstream;
2. sends fast-path ``POST /v1/check`` requests (off-topic texts → fast_allow, wrong legal deadlines → fast_block) at
   each concurrency level (asyncio + httpx, at most ``--n`` requests or ``--max-seconds`` per level): throughput,
   p50/p99 latency, errors, and the paths seen;
3. measures ``Guardrail.check_many`` in this process on the same items (concurrency 16) for the service/library ratio;
4. proxy overhead: the same allowed chat answer fetched directly from the scripted upstream and through
   ``POST /v1/chat/completions`` (sequential, ``--proxy-n`` each): p50/p99 of both and the difference.

Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

FAST = [
    ("Preheat the oven to 180 degrees.", None),
    ("The marathon route goes along the river and finishes at the old town square.", None),
    ("The Eiffel Tower is about 330 metres tall.", None),
    ("Our team offsite is on Friday; bring comfortable shoes for the hike.", None),
    ("Under NIS2 you have 72 hours to send the early warning.", "When is the NIS2 early warning due?"),
    ("GDPR gives the controller 7 days to notify the supervisory authority of a personal data breach.",
     "How long do we have to report a data breach under GDPR?"),
]
PROXY_Q = "How do I bake bread?"
PROXY_A = "Preheat the oven to 180 degrees. Then bake the loaf until it is golden."


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[max(0, min(len(xs) - 1, round(q / 100 * (len(xs) - 1))))]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """A scripted OpenAI-compatible upstream answering every chat request with PROXY_A at once."""

    def __init__(self):
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                data = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": PROXY_A}, "finish_reason": "stop"}]}
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def bench_profile(profile: str, with_llm: bool, dest: Path) -> str:
    if with_llm:
        return profile
    import yaml

    from mad_guardrails.guardrails.config import load_config

    data = load_config(profile).model_dump(mode="json")
    if data["llm"].get("serve"):
        data["llm"]["serve"]["autostart"] = False
    dest.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(dest)


async def level(base: str, conc: int, n: int, max_s: float) -> dict:
    lat: list[float] = []
    errors = 0
    paths: Counter = Counter()
    sent = 0
    t_end = time.perf_counter() + max_s
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits, trust_env=False) as c:
        async def worker():
            nonlocal sent, errors
            while sent < n and time.perf_counter() < t_end:
                out, q = FAST[sent % len(FAST)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await c.post("/v1/check", json={"output": out, "query": q})
                    ok = r.status_code == 200
                    if ok:
                        paths[r.json()["path"]] += 1
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t0)
                errors += 0 if ok else 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        wall = time.perf_counter() - t0
    return {"concurrency": conc, "requests": len(lat), "seconds": round(wall, 2),
            "rps": round(len(lat) / wall, 1), "p50_ms": round(pct(lat, 50) * 1000, 1),
            "p99_ms": round(pct(lat, 99) * 1000, 1), "errors": errors, "paths": dict(paths)}


def proxy_overhead(base: str, upstream: str, n: int) -> dict:
    body = {"model": "m", "messages": [{"role": "user", "content": PROXY_Q}]}
    direct, proxied = [], []
    decisions: Counter = Counter()
    with httpx.Client(timeout=60, trust_env=False) as c:
        for _ in range(3):  # warm both connections
            c.post(upstream + "/chat/completions", json=body)
            c.post(base + "/v1/chat/completions", json=body)
        for _ in range(n):
            t0 = time.perf_counter()
            c.post(upstream + "/chat/completions", json=body).raise_for_status()
            direct.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = c.post(base + "/v1/chat/completions", json=body)
            proxied.append(time.perf_counter() - t0)
            r.raise_for_status()
            decisions[r.json()["guardrail"]["path"]] += 1
    d50, p50 = pct(direct, 50) * 1000, pct(proxied, 50) * 1000
    return {"n": n, "direct_p50_ms": round(d50, 1), "direct_p99_ms": round(pct(direct, 99) * 1000, 1),
            "proxy_p50_ms": round(p50, 1), "proxy_p99_ms": round(pct(proxied, 99) * 1000, 1),
            "added_p50_ms": round(p50 - d50, 1), "paths": dict(decisions)}


def in_process(profile: str, n: int, concurrency: int) -> dict:
    from mad_guardrails.guardrails.guardrail import Guardrail

    items = [{"output": o, "query": q} for o, q in (FAST[i % len(FAST)] for i in range(n))]
    with Guardrail.from_config(profile) as g:
        list(g.check_many(items[:8], concurrency=concurrency))  # warm-up
        t0 = time.perf_counter()
        res = list(g.check_many(items, concurrency=concurrency))
        wall = time.perf_counter() - t0
    return {"items": len(res), "concurrency": concurrency, "seconds": round(wall, 2),
            "rate": round(len(res) / wall, 1), "paths": dict(Counter(getattr(v, "path", "error") for v in res))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--with-llm", action="store_true", help="let the profile start its LLM server")
    ap.add_argument("--n", type=int, default=400, help="requests per concurrency level (at most)")
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--max-seconds", type=float, default=30.0, help="per level")
    ap.add_argument("--proxy-n", type=int, default=100)
    ap.add_argument("--inproc-n", type=int, default=400)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="service-bench-"))
    profile = bench_profile(args.profile, args.with_llm, tmp / "profile.yaml")
    upstream = Upstream()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / "service.log", "w")  # noqa: SIM115 - the child writes to it
    env = {k: v for k, v in os.environ.items() if k != "MAD_GUARDRAILS_API_KEYS"}  # loopback, no auth
    proc = subprocess.Popen([sys.executable, "-m", "mad_guardrails.guardrails.cli", "api", "--profile", profile,
                             "--port", str(port), "--max-concurrency", "64", "--max-queue", "512",
                             "--upstream", upstream.base_url, "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    out: dict = {"profile": args.profile, "cpus": os.cpu_count()}
    try:
        t0 = time.perf_counter()
        while True:
            if proc.poll() is not None:
                sys.exit(f"the service exited:\n{(tmp / 'service.log').read_text()[-3000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=2).json().get("guardrail") == "ready":
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - t0 > 600:
                sys.exit("the service did not load in 600 s")
            time.sleep(0.5)
        out["service_load_s"] = round(time.perf_counter() - t0, 1)
        asyncio.run(level(base, 4, 24, 10))  # warm-up
        out["levels"] = [asyncio.run(level(base, int(c), args.n, args.max_seconds)) for c in args.levels.split(",")]
        out["proxy"] = proxy_overhead(base, upstream.base_url, args.proxy_n)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        upstream.close()
        log.close()
    out["in_process"] = in_process(profile, args.inproc_n, 16)
    best = max(x["rps"] for x in out["levels"])
    out["service_over_in_process"] = round(best / out["in_process"]["rate"], 2)

    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"profile {args.profile}, {out['cpus']} CPUs, service loaded in {out['service_load_s']} s")
    print(f"{'concurrency':>11} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  paths")
    for x in out["levels"]:
        print(f"{x['concurrency']:>11} {x['requests']:>8} {x['rps']:>7} {x['p50_ms']:>7} {x['p99_ms']:>7} "
              f"{x['errors']:>6}  {x['paths']}")
    ip = out["in_process"]
    print(f"in-process check_many (concurrency {ip['concurrency']}): {ip['rate']} items/s over {ip['items']} items; "
          f"service best / in-process = {out['service_over_in_process']}")
    p = out["proxy"]
    print(f"proxy (n={p['n']}, allowed answer): direct p50 {p['direct_p50_ms']} ms (p99 {p['direct_p99_ms']}), "
          f"through the proxy p50 {p['proxy_p50_ms']} ms (p99 {p['proxy_p99_ms']}): added p50 {p['added_p50_ms']} ms "
          f"{p['paths']}")


if __name__ == "__main__":
    main()
