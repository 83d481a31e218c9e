"""Live updates inside one process: a writer pings a key after its commit (``changed``), SSE streams waiting on
that key wake and re-read (the queue board per schedule, the regulator's warning feed).

Streams also re-read on a timer, so a change made by another worker reaches them within that interval.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Hashable

_versions: dict[Hashable, int] = defaultdict(int)
_waiters: dict[Hashable, set[asyncio.Event]] = defaultdict(set)
_loop: asyncio.AbstractEventLoop | None = None


def bind(loop: asyncio.AbstractEventLoop) -> None:
    global _loop
    _loop = loop


def changed(key: Hashable) -> None:
    """Called after a commit that changed what ``key``'s streams show (from any thread)."""

    def wake() -> None:
        _versions[key] += 1
        for event in list(_waiters.get(key, ())):
            event.set()

    if _loop is None:
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is _loop:
        wake()
    else:
        _loop.call_soon_threadsafe(wake)


def version(key: Hashable) -> int:
    return _versions.get(key, 0)


async def wait_for_change(key: Hashable, timeout: float, seen_version: int) -> None:  # noqa: ASYNC109
    """Wait until ``key`` changes after ``seen_version`` (returns at once if it already has)."""
    if version(key) != seen_version:
        return
    event = asyncio.Event()
    _waiters[key].add(event)
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        _waiters[key].discard(event)
        if not _waiters[key]:
            _waiters.pop(key, None)
