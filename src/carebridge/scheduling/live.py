"""Live queue updates inside one process: the queue projection pings, SSE streams wake and re-read.

Streams also re-read on a timer, so a board updated by another worker reaches them within that interval.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

_versions: dict[uuid.UUID, int] = defaultdict(int)
_waiters: dict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)
_loop: asyncio.AbstractEventLoop | None = None


def bind(loop: asyncio.AbstractEventLoop) -> None:
    global _loop
    _loop = loop


def changed(schedule_id: uuid.UUID) -> None:
    """Called after a queue projection commit (from any thread)."""

    def wake() -> None:
        _versions[schedule_id] += 1
        for event in list(_waiters.get(schedule_id, ())):
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


def version(schedule_id: uuid.UUID) -> int:
    return _versions.get(schedule_id, 0)


async def wait_for_change(schedule_id: uuid.UUID, timeout: float, seen_version: int) -> None:  # noqa: ASYNC109
    """Wait until the schedule's board changes after ``seen_version`` (returns at once if it already has)."""
    if version(schedule_id) != seen_version:
        return
    event = asyncio.Event()
    _waiters[schedule_id].add(event)
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        _waiters[schedule_id].discard(event)
        if not _waiters[schedule_id]:
            _waiters.pop(schedule_id, None)
