"""What a running check is doing, told from the graph's stream of node updates: the status line the CLI shows
(retrieving, screening, round n, each agent, coordinating, verifying) and wall-clock seconds per stage.

Stage seconds are measured between stream events, so agents arguing in parallel count once (their wall time), and the
stages never add up to more than the whole check.

    >>> t = StageTimer(t0=0.0)
    >>> t.event({"retrieve": {}}, now=1.0)
    'retrieval done; screening policy rules and key facts...'
    >>> t.event({"screen": {}}, now=1.5)
    'screening done; checking each claim against its clauses...'
    >>> t.seconds()
    {'retrieve': 1.0, 'screen': 0.5}
"""

from __future__ import annotations

import time
from typing import Any

#: node -> the stage its time counts toward
STAGE_OF = {"retrieve": "retrieve", "screen": "screen", "entail": "entail", "start_round": "debate",
            "argue": "debate", "moderate": "debate", "coordinate": "coordinate", "repair": "coordinate",
            "verify": "verify", "fast_allow": "route", "verified_allow": "route", "fast_block": "route",
            "finalize": "finalize"}

FIRST = "retrieving clauses (FAISS + BM25)..."


def describe(node: str, update: Any) -> str | None:
    """The status line after ``node`` finished with ``update`` (None: nothing new to say)."""
    u = update if isinstance(update, dict) else {}
    if node == "retrieve":
        return "retrieval done; screening policy rules and key facts..."
    if node == "screen":
        return "screening done; checking each claim against its clauses..."
    if node == "entail":
        return "claims checked; routing..."
    if node in ("fast_allow", "verified_allow", "fast_block"):
        return f"{node.replace('_', ' ')}: verifying the quotes..."
    if node == "start_round":
        return f"round {u.get('round', '?')}: the agents are arguing..."
    if node == "argue":
        args = u.get("transcript") or []
        a = args[0] if args else {}
        role = a.get("role") if isinstance(a, dict) else getattr(a, "role", "agent")
        rnd = a.get("round") if isinstance(a, dict) else getattr(a, "round", "?")
        stance = a.get("stance") if isinstance(a, dict) else getattr(a, "stance", "")
        return f"round {rnd}: {role} argued {stance or '?'}; waiting for the others..."
    if node == "moderate":
        return "round done: " + ("consensus, coordinating..." if u.get("consensus") else
                                 "no consensus, next round or coordinating...")
    if node == "coordinate":
        return "the coordinator answered; verifying quotes, citations, numbers..."
    if node == "repair":
        return "verification failed; asking the coordinator once more..."
    if node == "verify":
        return "verified; writing the verdict..."
    return None


class StageTimer:
    """Wall-clock seconds per stage from a stream of ``{node: update}`` events (time since the previous event counts
    toward the stage of the node that just finished)."""

    def __init__(self, t0: float | None = None):
        self.last = time.perf_counter() if t0 is None else t0
        self._s: dict[str, float] = {}

    def event(self, ev: dict, now: float | None = None) -> str | None:
        now = time.perf_counter() if now is None else now
        said = None
        for node, update in ev.items():
            if node.startswith("__"):
                continue
            stage = STAGE_OF.get(node, node)
            self._s[stage] = self._s.get(stage, 0.0) + (now - self.last)
            self.last = now
            said = describe(node, update) or said
        return said

    def seconds(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self._s.items()}
