"""Cold start of ``mad-guardrails check`` on a fast-path case: lazy LLM backend (the default: the LLM server starts only
when a case goes to the debate) against an eager one (the server started while the guardrail loads, as before issue
14), each in a fresh process, in the same run.

    flock /tmp/madg-heavy.lock .venv/bin/python -P bench/cold_check.py [--profile offline] [--n 2]

Prints, per variant, the wall seconds from process start to the verdict (imports, index, embedder, verifier, the LLM
server when eager, the check), whether an LLM server process was started, and the ratio eager / lazy. The profile's
``llm.serve`` must autostart (offline does); an LLM server already answering at ``llm.base_url`` would make eager
look cheap, so the script refuses to run then.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CASE = "Preheat the oven to 200 degrees and roast the vegetables for 35 minutes."


def one(profile: str, eager: bool) -> dict:
    """Runs in a child process: load, check once, report."""
    t0 = time.perf_counter()
    from mad_guardrails.guardrails.commands.check import quiet_third_party

    quiet_third_party()
    from mad_guardrails.guardrails.components import build_components
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.guardrails.guardrail import Guardrail

    cfg = load_config(profile)
    with Guardrail(cfg, components=build_components(cfg, eager_llm=eager)) as g:
        v = g.check(CASE)
        started = g.components.llm_started and g.components.backend.server is not None
        return {"eager": eager, "seconds": round(time.perf_counter() - t0, 2), "path": v.path,
                "llm_calls": v.usage.llm_calls, "server_started": bool(started),
                "llm_start_s": g.components.backend.start_seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--n", type=int, default=2, help="runs per variant (alternating)")
    ap.add_argument("--child", choices=["lazy", "eager"])
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one(a.profile, a.child == "eager")))
        return
    from mad_guardrails.agents.serve import _answers
    from mad_guardrails.guardrails.config import load_config

    if _answers(load_config(a.profile).llm.base_url):
        sys.exit("an LLM server already answers at llm.base_url: stop it first (mad-guardrails serve --stop)")
    res: dict[str, list[dict]] = {"lazy": [], "eager": []}
    for _ in range(a.n):
        for variant in ("lazy", "eager"):
            p = subprocess.run([sys.executable, "-P", __file__, "--profile", a.profile, "--child", variant],
                               capture_output=True, text=True, timeout=1800)
            if p.returncode != 0:
                sys.exit(f"{variant} run failed:\n{p.stderr[-3000:]}")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            res[variant].append(r)
            print(f"{variant:5s} {r['seconds']:7.1f} s  path {r['path']}  LLM calls {r['llm_calls']}  "
                  f"server started {r['server_started']}  (LLM start {r['llm_start_s']} s)", flush=True)
    lazy = statistics.median(r["seconds"] for r in res["lazy"])
    eager = statistics.median(r["seconds"] for r in res["eager"])
    print(f"median cold fast-path check: lazy {lazy:.1f} s, eager {eager:.1f} s, eager/lazy {eager / lazy:.1f}x")


if __name__ == "__main__":
    main()
