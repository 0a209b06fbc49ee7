"""The last-token hidden state of a llama.cpp model (in process, pooling LAST) for chat prompts: the features the
probe benches (``harm_probe_bench.py``, ``claim_probe_bench.py``) train their linear readers on."""

from __future__ import annotations

import os

import numpy as np


def last_token_states(prompts: list[list[dict]], llm: str, threads: int, *, what: str = "LLM hidden states",
                      max_tokens: int = 1000) -> np.ndarray:
    """One row per chat prompt (a list of messages), each read whole (the KV cache is cleared in between)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ik_llama_cpp import _ctypes_api as C
    from ik_llama_cpp._internals import IkContext, IkModel, make_embedding_batch
    from rich.progress import Progress

    from mad_guardrails.agents.backends.llamacpp import _chat_renderer, resolve_gguf

    model = IkModel(str(resolve_gguf(llm)))
    ctx = IkContext(model, n_ctx=1024, n_threads=threads, embeddings=True, pooling_type=C.LLAMA_POOLING_TYPE_LAST)
    render = _chat_renderer(None)
    out = []
    with Progress() as bar:
        task = bar.add_task(what, total=len(prompts))
        for messages in prompts:
            C.llama_kv_cache_clear(ctx.ctx)
            batch = make_embedding_batch([model.tokenize(render(messages), add_bos=False, special=True)[:max_tokens]])
            try:
                if ctx.decode(batch) != 0:
                    raise RuntimeError("llama_decode failed")
            finally:
                C.llama_batch_free(batch)
            out.append(np.asarray(ctx.get_embeddings_seq(0), dtype=np.float32))
            bar.advance(task)
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
