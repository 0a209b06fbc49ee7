"""Admission control: at most ``max_concurrency`` requests checked at once, at most ``max_queue`` waiting for a slot.

A request that finds every slot taken and the wait queue full — or that waits longer than ``queue_timeout_s`` — is
refused with :class:`Overloaded` (the app answers 429 with ``Retry-After``). A waiter whose client goes away is
cancelled and leaves the queue.

    >>> import asyncio
    >>> async def demo():
    ...     a = Admission(max_concurrency=1, max_queue=0)
    ...     await a.acquire()
    ...     try:
    ...         await a.acquire()
    ...     except Overloaded as e:
    ...         print("429, retry after", e.retry_after, "s")
    ...     a.release()
    ...     return a.in_flight
    >>> asyncio.run(demo())
    429, retry after 1 s
    0
"""

from __future__ import annotations

import asyncio
import math
from collections import deque


class Overloaded(Exception):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    def __init__(self, max_concurrency: int, max_queue: int, queue_timeout_s: float = 30.0):
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.in_flight = 0
        self.waiting = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._recent: deque[float] = deque(maxlen=64)  # seconds a slot was held, for Retry-After

    def retry_after(self) -> int:
        """Seconds a refused client should wait: about one slot's hold time per queued request per slot."""
        typical = sorted(self._recent)[len(self._recent) // 2] if self._recent else 1.0
        return max(1, min(300, math.ceil(typical * (1 + self.waiting) / self.max_concurrency)))

    async def acquire(self) -> None:
        if self.in_flight < self.max_concurrency and not self._waiters:
            self.in_flight += 1
            return
        if self.waiting >= self.max_queue:
            raise Overloaded(f"the service is at capacity ({self.in_flight} requests in flight, "
                             f"{self.waiting} waiting; limits {self.max_concurrency} and {self.max_queue})",
                             self.retry_after())
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.waiting += 1
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout=self.queue_timeout_s)
        except TimeoutError:
            if fut.done() and not fut.cancelled():  # granted at the last moment: give the slot on
                self._grant_next_or_free()
            raise Overloaded(f"no slot within {self.queue_timeout_s:g} s ({self.in_flight} in flight)",
                             self.retry_after()) from None
        except asyncio.CancelledError:  # the client went away while waiting
            if fut.done() and not fut.cancelled():
                self._grant_next_or_free()
            raise
        finally:
            self.waiting -= 1
            if not fut.done():
                fut.cancel()
            try:
                self._waiters.remove(fut)
            except ValueError:
                pass

    def _grant_next_or_free(self) -> None:
        """Hand the slot being freed to the oldest live waiter, else free it."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes on: in_flight stays the same
                return
        self.in_flight -= 1

    def release(self, held_s: float | None = None) -> None:
        if held_s is not None:
            self._recent.append(held_s)
        self._grant_next_or_free()
