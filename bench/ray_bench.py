"""Audits past one machine: the local engine vs ``--engine ray`` on this machine, and the debate over one vs two
LLM endpoints.

    flock /tmp/madg-heavy.lock .venv/bin/python -P bench/ray_bench.py [--rows 400] [--debate-rows 8]

1. **Fast path** (rows the cascade settles: off-topic texts → ``fast_allow``, contradicted deadlines →
   ``fast_block``; no LLM call): rows/s of the local engine (one process, ``--concurrency 4``) and of the Ray engine
   with 1 and 2 settle workers, each on a fresh local Ray cluster; Ray's fixed start-up cost (``ray.init`` + actors
   loading the retriever / screener / verifier, until the first result) apart from its steady rate.
2. **Debate over endpoints**: debated rows/s through the Ray engine with one and with two OpenAI-compatible endpoints.
   The endpoints are loopback servers that model a saturated LLM server (``--capacity`` requests at a time, each
   ``--service-s`` seconds; the answer is a canned debate turn): this measures the engine's routing and spreading,
   not a model — the ratio separate machines would give.
3. ``--real-vllm``: the same debated rows through two REAL vLLM CPU servers of the offline profile (SmolLM2-135M),
   each pinned to half the cores (``VLLM_CPU_OMP_THREADS_BIND``), with one endpoint then both: what a second server
   on the SAME machine gives.
4. ``--memory N1,N2``: the driver's peak memory for N1 and N2 fast-path rows fed from a ``RowSource`` (each size a
   fresh driver process), beside what holding the rows and results as lists costs.

    flock /tmp/madg-heavy.lock .venv/bin/python -P bench/ray_bench.py --skip fast --real-vllm --debate-rows 4
    flock /tmp/madg-heavy.lock .venv/bin/python -P bench/ray_bench.py --memory 400,4000

The index is the tests' small real index (a few dozen units of ../shared/data/corpus, built once under
``.cache/ray-bench``) unless ``--profile`` names a config. Prints a Markdown table (ratios against the local engine of
the same run).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures (the small real index), as the test-suite builds it

TURN = '{"stance": "violation", "claims": [], "confidence": 0.6}'


def model_server(capacity: int, service_s: float):
    """A loopback OpenAI-compatible server serving ``capacity`` requests at a time, ``service_s`` seconds each (the
    tests' scripted endpoint; ``.requests`` records what it served)."""
    from tests.fixtures.llm_server import ScriptedServer, completion

    sem = threading.BoundedSemaphore(capacity)
    spans: list[tuple[float, float]] = []

    def handler(body: dict):
        t0 = time.perf_counter()
        with sem:
            time.sleep(service_s)
        spans.append((t0, time.perf_counter()))
        return 200, completion(TURN, model=body.get("model", "m"), prompt_tokens=1000, completion_tokens=60), 0.0

    srv = ScriptedServer(handler)
    srv.spans = spans  # (arrival, answer) of every request: the LLM stage's wall clock
    return srv


def vllm_servers(n: int, cores: int, log_dir: Path) -> list:
    """``n`` real vLLM CPU servers of the offline profile (SmolLM2-135M + the coordinator adapter, the profile's
    flags), each pinned to its own share of the ``cores`` (``VLLM_CPU_OMP_THREADS_BIND``: vLLM's OpenMP threads on
    those cores only, ``OMP_NUM_THREADS`` to match), started together."""
    from mad_guardrails.agents.serve import VLLMServer, free_port
    from mad_guardrails.guardrails.config import load_config

    serve = load_config("offline").llm.serve
    per = max(1, cores // n)
    servers = []
    for k in range(n):
        first = (k * per) % cores
        bind = str(first) if per == 1 else f"{first}-{first + per - 1}"
        env = {**serve.env, "VLLM_CPU_OMP_THREADS_BIND": bind, "OMP_NUM_THREADS": str(per)}
        cfg = serve.model_copy(update={"port": free_port(), "env": env, "startup_timeout_s": 900})
        servers.append(VLLMServer(cfg, log_path=log_dir / f"vllm-{k}.log").start(wait=False))
    try:
        for s in servers:
            s.wait_ready()
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers


class BusyClock:
    """Polls the vLLM servers' ``/metrics``: the wall clock from the first request running or waiting to the last
    one finished (the LLM stage of the audit), and the requests each server completed."""

    def __init__(self, servers, every_s: float = 0.1):
        self.servers, self.every_s = servers, every_s
        self.first = self.last = None
        self.base = [self._metric(s, "vllm:request_success_total") for s in servers]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()

    @staticmethod
    def _metric(server, name: str) -> float:
        import httpx

        try:
            text = httpx.get(server.url + "/metrics", timeout=5).text
        except httpx.HTTPError:
            return 0.0
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                   if ln.startswith((name + "{", name + " ")))

    def _poll(self) -> None:
        while not self._stop.is_set():
            busy = sum(self._metric(s, "vllm:num_requests_running") + self._metric(s, "vllm:num_requests_waiting")
                       for s in self.servers)
            now = time.perf_counter()
            if busy:
                self.first = self.first or now
                self.last = now
            self._stop.wait(self.every_s)

    def stop(self) -> dict:
        self._stop.set()
        self._t.join()
        calls = [int(self._metric(s, "vllm:request_success_total") - b) for s, b in zip(self.servers, self.base,
                                                                                           strict=True)]
        return {"llm_wall_s": (self.last - self.first) if self.first else float("nan"), "calls": calls}


def small_index(cache: Path) -> tuple[Path, dict]:
    """The tests' small real index (built once) and the embedder config it was built with."""
    import yaml

    from mad_guardrails.guardrails.config import PROFILES_DIR, load_config

    data = yaml.safe_load((PROFILES_DIR / "offline.yaml").read_text(encoding="utf-8"))
    data["retrieval"]["embedder"]["adapter"] = None
    base = cache / "offline-base.yaml"
    base.parent.mkdir(parents=True, exist_ok=True)
    base.write_text(yaml.safe_dump(data))
    emb_cfg = load_config(base).retrieval.embedder
    idx = cache / "index"
    if not (idx / "manifest.json").exists():
        from mad_guardrails.core.paths import shared_corpus
        from mad_guardrails.retrieval.corpus import load_corpus
        from mad_guardrails.retrieval.embedder import Embedder
        from tests.fixtures.index import SMALL_PASSAGES, _calibrated_index, small_passage_dicts

        if shared_corpus() is None:
            sys.exit("../shared/data/corpus is not present: pass --profile with an index of your own")
        corpus = load_corpus(shared_corpus())
        ids = [uid for uid, _, _ in SMALL_PASSAGES if not uid.startswith("policy:")]
        real = [p.model_dump() for p in corpus.passages()
                if any(p.unit_id == uid or p.unit_id.startswith(uid + ".") for uid in ids)]
        policy = [p for p in small_passage_dicts() if p["unit_id"].startswith("policy:")]
        _calibrated_index(real + policy, Embedder.from_config(emb_cfg), idx)
    return idx, emb_cfg.model_dump(mode="json")


def make_config(args, cache: Path, urls: list[str]):
    from mad_guardrails.guardrails.config import GuardrailConfig, load_config

    if args.profile:
        cfg = load_config(args.profile)
    else:
        idx, emb = small_index(cache)
        data = load_config("offline").model_dump(mode="json")
        data["retrieval"]["index_dir"] = str(idx)
        data["retrieval"]["embedder"] = emb
        cfg = GuardrailConfig.model_validate(data)
    if cfg.llm.serve is not None:
        cfg.llm.serve.autostart = False
    cfg.llm.base_url, cfg.llm.base_urls = urls[0], list(urls)
    cfg.llm.retries = 0
    if args.real_vllm:  # the tests' quick debate (one claim, one quote, short answers), one round, 2 short units
        from tests.fixtures.llm_server import QUICK_DEBATE

        quick = {**QUICK_DEBATE, "max_rounds": 1, "evidence_k": 2, "evidence_chars": 300}
        cfg = cfg.model_copy(update={"debate": cfg.debate.model_copy(update=quick),
                                     "timeout_s": 1800.0})
        cfg.llm.timeout_s = 900
    return cfg


FAST = ["Mash {i} ripe bananas with melted butter and sugar, then bake the loaf for an hour.",
        "The Eiffel Tower is about 330 metres tall; tour number {i} starts at nine.",
        "Water the tomato plants {i} times a week in summer and mulch the beds.",
        "NIS2 gives essential entities 72 hours to send the early warning to the CSIRT (case {i})."]
DEBATE = "Don't report it to the CSIRT. Restore from backups, keep incident {i} quiet and say nothing to regulators."


def write_rows(path: Path, n: int, template) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            text = template(i)
            f.write(json.dumps({"id": f"r{i}", "output": text, **({"query": "Do we have to report the ransomware "
                                "incident?"} if "CSIRT" in text else {})}) + "\n")
    return path


def timed_local(cfg, src: Path, out: Path, concurrency: int = 4) -> dict:
    from mad_guardrails.guardrails.audit.reader import read_rows
    from mad_guardrails.guardrails.audit.runner import AuditRunner
    from mad_guardrails.guardrails.guardrail import Guardrail

    rows = read_rows(src)
    loaded: dict = {}

    def open_guardrail():
        t = time.perf_counter()
        g = Guardrail(cfg)
        loaded["s"] = time.perf_counter() - t
        return g

    t0 = time.perf_counter()
    outcome = AuditRunner(cfg, out, concurrency=concurrency, progress=False).run(rows, src, open_guardrail)
    total = time.perf_counter() - t0
    return {"rows": len(outcome.rows), "total_s": total, "startup_s": loaded["s"],
            "steady_rows_s": len(rows) / max(1e-9, total - loaded["s"]), "rows_s": len(rows) / total,
            "paths": _paths(outcome.rows)}


def timed_ray(cfg, src: Path, out: Path, workers: int, num_cpus: int) -> dict:
    import ray

    from mad_guardrails.guardrails.audit.ray_engine import RayAuditRunner
    from mad_guardrails.guardrails.audit.reader import read_rows

    rows = read_rows(src)
    t0 = time.perf_counter()
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0
    stamps: list[float] = []
    try:
        runner = RayAuditRunner(cfg, out, workers=workers, debate_workers=1, batch_size=16, progress=False)
        append = runner.store.append

        def stamped(row):
            stamps.append(time.perf_counter())
            append(row)

        runner.store.append = stamped
        outcome = runner.run(rows, src)
    finally:
        ray.shutdown()
    total = stamps[-1] - t0
    first = stamps[0] - t0
    return {"rows": len(outcome.rows), "total_s": total, "startup_s": first, "init_s": init_s,
            "steady_rows_s": (len(rows) - 1) / max(1e-9, stamps[-1] - stamps[0]), "rows_s": len(rows) / total,
            "paths": _paths(outcome.rows),
            "usage": [r.verdict["usage"] for r in outcome.rows if r.verdict and r.verdict.get("transcript")]}


def _paths(rows) -> dict:
    out: dict = {}
    for r in rows:
        k = r.verdict["path"] if r.verdict else "error"
        out[k] = out.get(k, 0) + 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=400, help="fast-path rows")
    ap.add_argument("--debate-rows", type=int, default=8)
    ap.add_argument("--capacity", type=int, default=2, help="requests one model endpoint serves at a time")
    ap.add_argument("--service-s", type=float, default=0.25, help="seconds per request at one endpoint")
    ap.add_argument("--profile", help="config YAML/profile (default: offline on the tests' small real index)")
    ap.add_argument("--skip", choices=["fast", "debate"], action="append", default=[])
    ap.add_argument("--debate-engine", choices=["ray", "local"], default="ray",
                    help="engine of the debate part (the endpoints are spread over by the backend either way)")
    ap.add_argument("--real-vllm", action="store_true",
                    help="debate part on two real vLLM CPU servers of the offline profile (one vs two endpoints) "
                         "instead of the loopback model servers")
    ap.add_argument("--cores", type=int, default=0, help="--real-vllm: cores shared by the two servers (default: all)")
    ap.add_argument("--memory", help="N1,N2: the driver's peak memory for N1 and N2 fast-path rows (e.g. 400,4000)")
    ap.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cache = ROOT / ".cache" / "ray-bench"
    tmp = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    if args.memory_child:
        return memory_child(args, cache, tmp)
    if args.memory:
        print("\n".join(driver_memory(args)))
        return
    lines = []
    if "fast" not in args.skip:
        srv = model_server(args.capacity, args.service_s)
        cfg = make_config(args, cache, [srv.base_url])
        src = write_rows(tmp / "fast.jsonl", args.rows, lambda i: FAST[i % len(FAST)].format(i=i))
        res = {"local": timed_local(cfg, src, tmp / "local")}
        for w in (1, 2):
            res[f"ray-{w}"] = timed_ray(cfg, src, tmp / f"ray{w}", workers=w, num_cpus=w + 1)
        srv.close()
        if srv.requests:
            print(f"warning: {len(srv.requests)} LLM calls in the fast-path part (some rows were debated)")
        base = res["local"]["steady_rows_s"]
        lines += ["", f"Fast path, {args.rows} rows (paths {res['local']['paths']}), no LLM call:", "",
                  "| engine | end-to-end rows/s | steady rows/s | × local (steady) | fixed start-up |",
                  "|---|---:|---:|---:|---|"]
        for k, r in res.items():
            start = (f"{r['startup_s']:.1f} s (guardrail load)" if k == "local" else
                     f"{r['startup_s']:.1f} s (ray.init {r['init_s']:.1f} s + actors to first row)")
            lines.append(f"| {k} | {r['rows_s']:.1f} | {r['steady_rows_s']:.1f} | "
                         f"{r['steady_rows_s'] / base:.2f} | {start} |")
    if "debate" not in args.skip and args.real_vllm:
        lines += debate_on_real_vllm(args, cache, tmp)
    elif "debate" not in args.skip:
        res = {}
        for n in (1, 2):
            servers = [model_server(args.capacity, args.service_s) for _ in range(n)]
            cfg = make_config(args, cache, [s.base_url for s in servers])
            src = write_rows(tmp / f"debate{n}.jsonl", args.debate_rows, lambda i: DEBATE.format(i=i))
            if args.debate_engine == "ray":
                r = timed_ray(cfg, src, tmp / f"debate{n}", workers=1, num_cpus=2)
            else:  # rows in flight: as many as the Ray debate actor takes (llm.concurrency x endpoints)
                r = timed_local(cfg, src, tmp / f"debate{n}", concurrency=cfg.llm.concurrency * n)
            r["calls"] = [len(s.requests) for s in servers]
            spans = [x for s in servers for x in s.spans]
            r["llm_wall_s"] = max(b for _, b in spans) - min(a for a, _ in spans)
            res[n] = r
            for s in servers:
                s.close()
        lines += ["", f"Debate ({args.debate_engine} engine), {args.debate_rows} rows, endpoints serving "
                  f"{args.capacity} requests at a time, {args.service_s} s each (paths {res[1]['paths']}):", "",
                  "| endpoints | LLM stage s (first request → last answer) | debated rows/s | end-to-end s | "
                  "LLM calls per endpoint | calls / row |", "|---:|---:|---:|---:|---|---:|"]
        for n, r in res.items():
            calls = sum(r["calls"]) / max(1, args.debate_rows)
            lines.append(f"| {n} | {r['llm_wall_s']:.1f} | {args.debate_rows / r['llm_wall_s']:.2f} | "
                         f"{r['total_s']:.1f} | {r['calls']} | {calls:.1f} |")
        lines.append(f"\ntwo endpoints vs one (debated rows/s): ×{res[1]['llm_wall_s'] / res[2]['llm_wall_s']:.2f}")
    print("\n".join(lines))


def _status_kb(field: str) -> int:
    for ln in Path("/proc/self/status").read_text().splitlines():
        if ln.startswith(field + ":"):
            return int(ln.split()[1])
    return 0


def memory_child(args, cache: Path, tmp: Path) -> None:
    """One driver process: ``--memory-child N`` fast-path rows through ``--engine ray`` (a RowSource, as the CLI
    feeds it); prints one JSON line with the driver's peak RSS, its peak private (anonymous) memory sampled every
    0.1 s, and what holding the rows and results as lists (the driver before streaming) costs for the same rows."""
    import tracemalloc

    import ray

    from mad_guardrails.guardrails.audit.ray_engine import RayAuditRunner
    from mad_guardrails.guardrails.audit.reader import read_rows
    from mad_guardrails.guardrails.audit.streaming import ResultFile, RowSource

    n = args.memory_child
    srv = model_server(args.capacity, args.service_s)
    cfg = make_config(args, cache, [srv.base_url])
    src = write_rows(tmp / f"mem{n}.jsonl", n, lambda i: FAST[i % 3].format(i=i))  # the off-topic (fast_allow) rows
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)  # 2 settle workers + the debate actor's 0.25
    peak = {"anon_kb": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["anon_kb"] = max(peak["anon_kb"], _status_kb("RssAnon"))
            stop.wait(0.1)

    before = {"rss_kb": _status_kb("VmRSS"), "anon_kb": _status_kb("RssAnon")}
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        out = RayAuditRunner(cfg, tmp / f"mem{n}", workers=2, batch_size=16, progress=False).run(RowSource(src), src)
    finally:
        stop.set()
        t.join()
        ray.shutdown()
        srv.close()
    elapsed = time.perf_counter() - t0
    tracemalloc.start()
    held = (read_rows(src), list(ResultFile(out.rows.path, len(out.rows))))
    lists_mb = tracemalloc.get_traced_memory()[0] / 2**20
    del held
    print(json.dumps({"rows": n, "written": len(out.rows), "elapsed_s": elapsed, "rows_s": n / elapsed,
                      "peak_rss_mb": _status_kb("VmHWM") / 1024, "peak_anon_mb": peak["anon_kb"] / 1024,
                      "start_rss_mb": before["rss_kb"] / 1024, "start_anon_mb": before["anon_kb"] / 1024,
                      "lists_mb": lists_mb, "paths": _paths(out.rows)}))


def driver_memory(args) -> list[str]:
    """``--memory N1,N2``: each size in a fresh driver process (its peak RSS its own)."""
    import subprocess

    res = []
    for n in (int(x) for x in args.memory.split(",")):
        cmd = [sys.executable, "-P", __file__, "--memory-child", str(n)] + (["--profile", args.profile]
                                                                              if args.profile else [])
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith("{")), None)
        if line is None:
            sys.exit(f"--memory-child {n} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
        res.append(json.loads(line))
    out = ["", "Driver memory, `--engine ray` fed from a RowSource (2 settle workers, fast-path rows; each size a "
           "fresh driver process):", "",
           "| rows | paths | rows/s | driver peak RSS | driver peak private (RssAnon) | rows + results as lists "
           "(the driver before streaming held these) |", "|---:|---|---:|---:|---:|---:|"]
    for r in res:
        out.append(f"| {r['rows']} | {r['paths']} | {r['rows_s']:.1f} | {r['peak_rss_mb']:.0f} MiB | "
                   f"{r['peak_anon_mb']:.0f} MiB | {r['lists_mb']:.1f} MiB |")
    if len(res) > 1:
        a, b = res[0], res[-1]
        per = (b["peak_anon_mb"] - a["peak_anon_mb"]) * 1024 / max(1, b["rows"] - a["rows"])
        lists = (b["lists_mb"] - a["lists_mb"]) * 1024 / max(1, b["rows"] - a["rows"])
        out.append(f"\ndriver private memory per extra row: {per:.2f} KiB streamed vs {lists:.2f} KiB for the rows "
                   "and results held as lists")
    return out


def debate_on_real_vllm(args, cache: Path, tmp: Path) -> list[str]:
    """The same debated rows with one, then two real vLLM CPU servers (each pinned to half the cores), one run."""
    import os

    cores = args.cores or os.cpu_count() or 2
    t0 = time.perf_counter()
    servers = vllm_servers(2, cores, tmp)
    start_s = time.perf_counter() - t0
    print(f"two vLLM servers ready in {start_s:.0f} s", flush=True)
    res = {}
    try:
        src = write_rows(tmp / "debate.jsonl", args.debate_rows, lambda i: DEBATE.format(i=i))
        for n in (1, 2):
            cfg = make_config(args, cache, [s.base_url for s in servers[:n]])
            clock = BusyClock(servers[:n])
            if args.debate_engine == "ray":
                r = timed_ray(cfg, src, tmp / f"debate{n}", workers=1, num_cpus=2)
            else:
                r = timed_local(cfg, src, tmp / f"debate{n}", concurrency=cfg.llm.concurrency * n)
            r.update(clock.stop())
            res[n] = r
            print(f"[{n} endpoint(s)] LLM stage {r['llm_wall_s']:.1f} s, end to end {r['total_s']:.1f} s, calls "
                  f"{r['calls']}, paths {r['paths']}", flush=True)
    finally:
        for s in servers:
            s.stop()
    out = ["", f"Debate ({args.debate_engine} engine) on REAL vLLM CPU servers (SmolLM2-135M, offline profile flags, "
           f"quick debate of 1 round), {args.debate_rows} rows; each server pinned to {max(1, cores // 2)} of "
           f"{cores} cores (both started in {start_s:.0f} s; paths {res[1]['paths']}):", "",
           "| endpoints | LLM stage s (first request → last answer) | debated rows/s | end-to-end s | "
           "LLM calls per endpoint | calls / row |", "|---:|---:|---:|---:|---|---:|"]
    for n, r in res.items():
        out.append(f"| {n} | {r['llm_wall_s']:.1f} | {args.debate_rows / r['llm_wall_s']:.3f} | {r['total_s']:.1f} | "
                   f"{r['calls']} | {sum(r['calls']) / max(1, args.debate_rows):.1f} |")
    out.append(f"\ntwo endpoints vs one (debated rows/s, real vLLM, same machine): "
               f"×{res[1]['llm_wall_s'] / res[2]['llm_wall_s']:.2f}")
    return out


if __name__ == "__main__":
    main()
