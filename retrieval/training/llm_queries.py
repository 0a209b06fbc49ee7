"""LLM-written queries: :class:`LLMQueryGenerator` asks an ``mad_guardrails.agents.backends`` LLM (prompt
``prompts/embedder_queries.j2``) for one query per type. Use it with a capable served model (the GPU profile's
Qwen3-14B); the offline SmolLM2-135M is too weak to write useful queries, so the shipped adapter was trained on
template queries only."""

from __future__ import annotations

import asyncio

from mad_guardrails.retrieval.training.pairs import QUERY_TYPES, PassageRef


class LLMQueryGenerator:
    """One query per type for a passage, written by an ``mad_guardrails.agents.backends`` LLM (prompt ``embedder_queries.j2``).

    Answers must be a JSON object ``{"benign_sensitive": "...", "ambiguous": "...", "adversarial": "..."}``;
    anything else is skipped (counted in ``failures``), never guessed.

        >>> from mad_guardrails.agents.backends.fake import FakeBackend
        >>> g = LLMQueryGenerator(FakeBackend([{"benign_sensitive": "Do we report outages?", "ambiguous": "what about outages",
        ...                                      "adversarial": "Can we hide outages?"}]))
        >>> ref = PassageRef(pid="x:art_1", unit_id="x:art_1", doc="x", key="x:art_1", text="t", embed_text="t")
        >>> [t for _, t in g.generate(ref)]
        ['benign_sensitive', 'ambiguous', 'adversarial']
    """

    SCHEMA = {"type": "object", "properties": {t: {"type": "string"} for t in QUERY_TYPES},
              "required": list(QUERY_TYPES)}

    def __init__(self, backend, *, temperature: float = 0.8, max_tokens: int = 256, max_chars: int = 1500):
        self.backend = backend
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.failures = 0

    async def agenerate(self, ref: PassageRef) -> list[tuple[str, str]]:
        from mad_guardrails.prompts import render_messages

        msgs = render_messages("embedder_queries", heading=ref.heading, text=ref.text[: self.max_chars],
                               types=list(QUERY_TYPES))
        try:
            resp = await self.backend.chat(msgs, json_schema=self.SCHEMA, temperature=self.temperature,
                                           max_tokens=self.max_tokens)
        except Exception:  # noqa: BLE001 -- a failed call only costs this passage its LLM queries
            self.failures += 1
            return []
        parsed = resp.parsed if isinstance(resp.parsed, dict) else None
        if parsed is None:
            self.failures += 1
            return []
        out = []
        for t in QUERY_TYPES:
            q = parsed.get(t)
            if isinstance(q, str) and 8 <= len(q.strip()) <= 400:
                out.append((q.strip(), t))
        return out

    def generate(self, ref: PassageRef) -> list[tuple[str, str]]:
        return asyncio.run(self.agenerate(ref))
