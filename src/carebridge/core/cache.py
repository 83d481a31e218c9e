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
import time
import uuid
from collections.abc import Hashable
from typing import Any

import cachetools
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import notify
from carebridge.database.engine import on_commit

CHANNEL = "carebridge_cache"
ALL = "*"
_MISSING = object()


class Cache:
    """A TTL map with a size bound. Keys that other workers must evict are strings or UUIDs."""

    def __init__(self, name: str, *, setting: str, ttl: float = 60.0, maxsize: int = 50_000) -> None:
        self.name = name
        self.setting = setting  # the Settings field that holds the TTL
        self._ttl = ttl
        self._maxsize = maxsize
        self._data: cachetools.TTLCache[Hashable, Any] = cachetools.TTLCache(maxsize, ttl, timer=time.monotonic)
        REGISTRY[name] = self

    def configure(self, *, ttl: float) -> None:
        """A new TTL (from settings); empties the cache."""
        self._ttl = ttl
        self._data = cachetools.TTLCache(self._maxsize, ttl, timer=time.monotonic) if ttl > 0 else {}

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else value

    def set(self, key: Hashable, value: Any) -> None:
        if self._ttl > 0:
            self._data[key] = value

    def evict(self, key: Hashable) -> None:
        if key == ALL:
            self._data.clear()
            return
        self._data.pop(key, None)
        if isinstance(key, str):  # a notification carries a UUID key as text
            with contextlib.suppress(ValueError):
                self._data.pop(uuid.UUID(key), None)

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
