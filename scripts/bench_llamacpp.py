"""Throughput of the in-process llama.cpp backend on this machine: load time, prompt (prefill) and generation tokens/s.

    export GUARDRAILS_HOME=$PWD/.cache/home
    .venv/bin/mad-guardrails models fetch qwen2.5-1.5b          # once (the GGUF, ~1.1 GB)
    .venv/bin/python scripts/bench_llamacpp.py                  # fetched:qwen2.5-1.5b, ~600 prompt + 150 new tokens
    .venv/bin/python scripts/bench_llamacpp.py --model bundled:smollm2 --json

Runs: (1) a cold request of ~--prompt-tokens prompt tokens and exactly --max-tokens new ones (greedy; EOS is masked so
the length is fixed); (2) the same prompt with another last line, which reuses the cached prefix (the debaters' case);
(3) a JSON-schema-constrained answer (llguidance). Needs `pip install 'mad-guardrails[llamacpp-prebuilt]'`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

PASSAGE = ("Article 23 of Directive (EU) 2022/2555 (NIS2) requires essential and important entities to notify their "
           "CSIRT or competent authority without undue delay of any significant incident. They submit an early "
           "warning within 24 hours of becoming aware of it, an incident notification within 72 hours, and a final "
           "report within one month after the incident notification. ")


def prompt_of(n_tokens: int, engine, question: str) -> list[dict]:
    """A system + user chat whose rendering is close to ``n_tokens`` tokens."""
    text = PASSAGE
    while True:
        msgs = [{"role": "system", "content": "You are a careful compliance analyst. Answer at length."},
                {"role": "user", "content": f"Documents:\n{text}\n\n{question}"}]
        if len(engine.prompt_tokens(msgs)) >= n_tokens:
            return msgs
        text += PASSAGE


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fetched:qwen2.5-1.5b")
    ap.add_argument("--prompt-tokens", type=int, default=600)
    ap.add_argument("--max-tokens", type=int, default=150)
    ap.add_argument("--threads", type=int, default=None, help="default: the cores this process may use")
    ap.add_argument("--flash-attn", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()

    from mad_guardrails.agents.backends.llamacpp import IkEngine, binding, resolve_gguf

    if binding() != "ik":
        print("needs ik-llama-cpp-python: pip install 'mad-guardrails[llamacpp-prebuilt]'", file=sys.stderr)
        return 2
    path = resolve_gguf(a.model)
    t0 = time.perf_counter()
    eng = IkEngine(path, n_threads=a.threads, flash_attn=None if a.flash_attn == "auto" else a.flash_attn == "on")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    eng.lltokenizer()
    vocab_s = time.perf_counter() - t0
    res: dict = {"model": a.model, "file": str(path), "threads": eng.n_threads, "flash_attn": eng.flash_attn,
                 "cores": len(os.sched_getaffinity(0)), "load_s": round(load_s, 2),
                 "vocab_for_constraints_s": round(vocab_s, 2)}

    def run(name: str, msgs: list[dict], **kw) -> None:
        t = time.perf_counter()
        r = eng.generate(msgs, max_tokens=a.max_tokens, **kw)
        wall = time.perf_counter() - t
        new = r["prompt_tokens"] - r["cached_tokens"]
        res[name] = {"prompt_tokens": r["prompt_tokens"], "reused_tokens": r["cached_tokens"],
                     "completion_tokens": r["completion_tokens"], "finish": r["finish_reason"],
                     "prefill_s": round(r["prefill_s"], 2), "prefill_tok_s": round(new / r["prefill_s"], 1),
                     "decode_s": round(r["decode_s"], 2),
                     "decode_tok_s": round(r["completion_tokens"] / max(r["decode_s"], 1e-9), 2),
                     "wall_s": round(wall, 2), "text": r["text"][:160]}

    q = "Explain in detail every deadline above, who must meet it and what each report must contain."
    msgs = prompt_of(a.prompt_tokens, eng, q)
    run("cold", msgs, ignore_eos=True)  # fixed length, as vLLM's ignore_eos
    run("shared_prefix", [msgs[0], {"role": "user", "content": msgs[1]["content"] + " Be brief."}], ignore_eos=True)
    schema = {"type": "object", "properties": {"deadline_hours": {"type": "integer"},
                                               "report": {"type": "string", "maxLength": 200}},
              "required": ["deadline_hours", "report"], "additionalProperties": False}
    run("json_schema", [msgs[0], {"role": "user", "content": msgs[1]["content"].replace(q, "When is the early warning "
                                                                                          "due? Answer in JSON.")}],
        json_schema=schema)
    eng.close()
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{a.model}: {path.name}, {res['threads']} threads of {res['cores']} cores, flash attention "
          f"{'on' if res['flash_attn'] else 'off'}; load {res['load_s']} s (+{res['vocab_for_constraints_s']} s "
          "vocabulary for constrained output, once)")
    for k in ("cold", "shared_prefix", "json_schema"):
        r = res[k]
        print(f"  {k:13s} prompt {r['prompt_tokens']} tok ({r['reused_tokens']} reused) in {r['prefill_s']} s = "
              f"{r['prefill_tok_s']} tok/s | {r['completion_tokens']} new tok in {r['decode_s']} s = "
              f"{r['decode_tok_s']} tok/s | {r['wall_s']} s | {r['finish']}")
    print(f"  json answer: {res['json_schema']['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
