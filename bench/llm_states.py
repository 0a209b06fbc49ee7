"""The last-token hidden state of a llama.cpp model for chat prompts (:meth:`IkEngine.last_state`, prefix reuse):
the features the probe benches (``harm_probe_bench.py``, ``claim_probe_bench.py``) train their linear readers on."""

from __future__ import annotations

import numpy as np


def last_token_states(prompts: list[list[dict]], llm: str, threads: int, *, what: str = "LLM hidden states",
                      max_tokens: int = 1000) -> np.ndarray:
    """One row per chat prompt (a list of messages), in the order given; a prompt sharing its start with the one
    before reads only the rest."""
    from rich.progress import Progress

    from mad_guardrails.agents.backends.llamacpp import IkEngine, resolve_gguf

    eng = IkEngine(resolve_gguf(llm), n_ctx=1024, n_threads=threads, hidden_states=True)
    out = []
    try:
        with Progress() as bar:
            task = bar.add_task(what, total=len(prompts))
            for messages in prompts:
                out.append(np.asarray(eng.last_state(messages, max_tokens), dtype=np.float32))
                bar.advance(task)
    finally:
        eng.close()
    return np.stack(out)


def cached(path, compute) -> np.ndarray:
    """``compute()``'s array, kept in the ``.npz`` file ``path`` (read back when it exists; ``None``: not kept)."""
    if path is not None and path.exists():
        with np.load(path) as z:
            return z[z.files[0]]
    x = compute()
    if path is not None:
        np.savez_compressed(path, X=x)
    return x
