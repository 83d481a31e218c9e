"""Per-worker caches of small, read-mostly data: directory names and time zones, booking rules, resolved
access tokens, sold-out pools.

Every entry lives at most its cache's TTL. A change that makes entries stale calls ``invalidate`` in its own
transaction: once that transaction commits, the entries go at once in this worker and, on PostgreSQL, in every
other worker too (``core.notify`` on the channel ``carebridge_cache``: transactional, so a rolled-back change
evicts nothing). The embedded mode is one process, so the local eviction
is the whole story there. A worker that misses a notification (its listening connection dropped) still drops
the entry when the TTL runs out, and it clears all caches when it reconnects.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import notify
from carebridge.database.engine import on_commit

CHANNEL = "carebridge_cache"
ALL = "*"
_MISSING = object()


class Cache:
    """A TTL map with a size bound. A key that other workers must evict travels as text: a string key as it is,
    any other key as ``key_from_text`` reads it back (by default a UUID's text).

    A plain dict of ``key -> (expires at, value)``, kept in the order entries were set (a set moves its key to
    the end), which is the order they expire in, the TTL being the cache's own. It replaces cachetools'
    ``TTLCache``, whose ``get`` went through five Python calls (4.3 µs against 0.5 µs here): a sold-out answer
    reads two or three caches, about a tenth of its CPU (docs/decisions.md). When the map is full, a new key
    first drops the expired entries, then, if it is still full, the oldest quarter."""

    def __init__(
        self,
        name: str,
        *,
        setting: str,
        ttl: float = 60.0,
        maxsize: int = 50_000,
        timer: Callable[[], float] = time.monotonic,
        key_from_text: Callable[[str], Hashable] = uuid.UUID,
    ) -> None:
        self.name = name
        self.setting = setting  # the Settings field that holds the TTL
        self._ttl = ttl
        self._maxsize = maxsize
        self._timer = timer
        self._key_from_text = key_from_text  # a key as a notification carries it (text) -> the key
        self._data: dict[Hashable, tuple[float, Any]] = {}
        REGISTRY[name] = self

    def configure(self, *, ttl: float) -> None:
        """A new TTL (from settings); empties the cache."""
        self._ttl = ttl
        self._data = {}

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable, default: Any = None) -> Any:
        entry = self._data.get(key)
        if entry is None:
            return default
        if entry[0] > self._timer():
            return entry[1]
        self._data.pop(key, None)
        return default

    def set(self, key: Hashable, value: Any) -> None:
        if self._ttl <= 0:
            return
        data = self._data
        if data.pop(key, _MISSING) is _MISSING and len(data) >= self._maxsize:
            self._make_room()
        data[key] = (self._timer() + self._ttl, value)

    def _make_room(self) -> None:
        now = self._timer()
        expired = list(itertools.takewhile(lambda key: self._data[key][0] <= now, self._data))
        for key in expired:
            del self._data[key]
        if len(self._data) >= self._maxsize:
            for key in list(itertools.islice(self._data, max(1, self._maxsize // 4))):
                del self._data[key]

    def evict(self, key: Hashable) -> None:
        if key == ALL:
            self._data.clear()
            return
        self._data.pop(key, None)
        if isinstance(key, str):  # a notification carries the key as text
            with contextlib.suppress(ValueError):
                self._data.pop(self._key_from_text(key), None)

    def clear(self) -> None:
        self._data.clear()


REGISTRY: dict[str, Cache] = {}


def configure(settings: Any) -> None:
    """Take every cache's TTL from the settings (the app factory calls this)."""
    for cache in REGISTRY.values():
        cache.configure(ttl=float(getattr(settings, cache.setting)))


def clear_all() -> None:
    for cache in REGISTRY.values():
        cache.clear()


async def invalidate(session: AsyncSession, cache: Cache, key: Hashable = ALL) -> None:
    """Evict ``key`` (or everything) from ``cache`` in every worker once ``session`` commits."""
    on_commit(session, lambda: cache.evict(key))
    await notify.notify(session, CHANNEL, [f"{cache.name}:{key}"])


def _on_notification(payload: str) -> None:
    name, _, key = payload.partition(":")
    cache = REGISTRY.get(name)
    if cache is not None:
        cache.evict(key)


notify.subscribe(CHANNEL, _on_notification, on_reconnect=clear_all)
