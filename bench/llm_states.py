"""The last-token hidden state of a llama.cpp model for chat prompts (:meth:`IkEngine.last_state`, prefix reuse):
the features ``harm_probe_bench.py`` trains its linear reader on; and the feature cache both probe benches keep
(``claim_probe_bench.py`` reads its states through the shipped :func:`~mad_guardrails.verifier.probe_nli.hidden_states`)."""

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


def cached(path, compute, *, rows: int | None = None) -> np.ndarray:
    """``compute()``'s array, kept in the ``.npz`` file ``path`` (read back when it exists and, given ``rows``, holds
    that many rows; ``None``: not kept)."""
    if path is not None and path.exists():
        with np.load(path) as z:
            x = z[z.files[0]]
        if rows is None or len(x) == rows:
            return x
    x = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, X=x)
    return x
