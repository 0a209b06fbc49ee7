"""Audits past one machine: the local engine vs ``--engine ray`` on this machine, and the debate over one vs two
LLM endpoints.

    flock /tmp/madg-heavy.lock .venv/bin/python -P bench/ray_bench.py [--rows 400] [--debate-rows 8]

1. **Fast path** (rows the cascade settles: off-topic texts → ``fast_allow``, contradicted deadlines →
   ``fast_block``; no LLM call): rows/s of the local engine (one process, ``--concurrency 4``) and of the Ray engine
   with 1 and 2 settle workers, each on a fresh local Ray cluster; Ray's fixed start-up cost (``ray.init`` + actors
   loading the retriever / screener / verifier, until the first result) apart from its steady rate.
2. **Debate over endpoints**: debated rows/s through the Ray engine with one and with two OpenAI-compatible endpoints.
   The endpoints are loopback servers that model a saturated LLM server (``--capacity`` requests at a time, each
   ``--service-s`` seconds; the answer is a canned debate turn): two real vLLM CPU servers do not fit this 2-core
   machine beside the actors, so this measures the engine's routing and spreading, not a model.

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
    args = ap.parse_args()
    cache = ROOT / ".cache" / "ray-bench"
    tmp = Path(tempfile.mkdtemp(prefix="ray-bench-"))
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
    if "debate" not in args.skip:
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


if __name__ == "__main__":
    main()
