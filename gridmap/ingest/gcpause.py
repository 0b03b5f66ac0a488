"""Python's cyclic garbage collector paused for the length of a bulk step.

Reading and checking 65,000 areas allocate hundreds of thousands of
short-lived containers; every 700 net allocations the collector runs, and each
full collection walks every tracked object the process holds. None of this work
builds reference cycles that need collecting before it ends (reference counting
frees its garbage as it goes), so the collector is paused meanwhile (what that saves:
``benchmarks/RESULTS.md``, "garbage collector").

Pause only CPU-bound work on one file, never a query that can wait for another
transaction (on the published areas, or a commit): the switch is process-wide, and
other threads of an API process go on allocating (their cyclic garbage waits for the
pause to end). Used by ``reader.read_layer`` (every import reads through it) and by
``publish`` around the checks and the COPY of new areas. Import jobs run in threads,
so pauses nest and the collector resumes when the last one ends — and only if it was
running when the first began. Code that calls ``gc.enable()``/``gc.disable()`` itself
during a pause is overridden when the pause ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause cyclic garbage collection until the block (and any other pause) ends."""
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()
