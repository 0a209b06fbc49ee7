"""A closed terminal (SIGHUP) or a ``kill`` (SIGTERM) ends a command the way Ctrl-C does.

Python's default for both signals is to die on the spot: no ``finally``, no ``with`` exit, so a command that started
the LLM server (``console``, ``audit``, ``serve``) would leave it running as an orphan holding its port and memory.
Inside :func:`signals_end_command` each of them raises an exception instead, and the command's own clean-up runs.

>>> import os, signal
>>> with signals_end_command(SystemExit):
...     try:
...         os.kill(os.getpid(), signal.SIGTERM)
...     except SystemExit as e:
...         print("ended with", e.code)
ended with 143
>>> signal.getsignal(signal.SIGTERM) is signal.SIG_DFL   # the previous handlers are back afterwards
True
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

ENDING_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


@contextmanager
def signals_end_command(exc: type[BaseException] = KeyboardInterrupt) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``exc`` in the main thread (``SystemExit`` gets the shell's
    ``128 + signal`` code). Use ``SystemExit`` where the command treats ``KeyboardInterrupt`` as "clear the line"
    (the console); ``KeyboardInterrupt`` where it means "stop and save" (audit, serve). Off the main thread, where
    Python cannot install handlers, this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, _frame):
        raise exc(128 + signum) if exc is SystemExit else exc()

    previous = {s: signal.signal(s, _raise) for s in ENDING_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
