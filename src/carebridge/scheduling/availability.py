"""What each worker remembers about sold-out pools, so that a full pool costs no database work.

A pool seen full (by the read-only pre-check or by a failed conditional UPDATE) is answered ``slot_full`` from
memory for ``sold_out_cache_seconds`` (30 s by default). Anything that frees places (a cancellation, an expired
waitlist hold, capacity moved in or released to the platform) calls ``places_freed`` for that pool in its
transaction: when it commits, every worker forgets that the pool was full (this one at once, the others through
``core.cache``'s notification; a worker that lost its listening connection forgets every pool when it
reconnects). The write path never trusts the cache: the conditional UPDATE decides.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import cache

SOLD_OUT = cache.Cache("sold_out", setting="sold_out_cache_seconds", maxsize=200_000)


def _key(slot_id: uuid.UUID, channel: str) -> str:
    return f"{slot_id}:{channel}"  # text: a notification carries it to the other workers as it is


def known_full(slot_id: uuid.UUID, channel: str) -> bool:
    return SOLD_OUT.get(_key(slot_id, channel)) is not None


def mark_full(slot_id: uuid.UUID, channel: str) -> None:
    SOLD_OUT.set(_key(slot_id, channel), True)


async def places_freed(session: AsyncSession, slot_id: uuid.UUID, channel: str) -> None:
    """The slot's ``channel`` pool may have a free place once ``session`` commits: no worker answers it full."""
    await cache.invalidate(session, SOLD_OUT, _key(slot_id, channel))
