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


def _to_text(slot_id: uuid.UUID, channel: str) -> str:
    """A pool's key as a notification carries it to the other workers, ``<slot id>:<channel>``."""
    return f"{slot_id}:{channel}"


def _from_text(text: str) -> tuple[uuid.UUID, str]:
    """A pool's key read back from a notification (``_to_text``)."""
    slot_id, _, channel = text.partition(":")
    return uuid.UUID(slot_id), channel


# Keyed by (slot id, channel): a sold-out answer looks its pool up before anything else, and a UUID's text is a
# Python call away (uuid.UUID.__str__).
SOLD_OUT = cache.Cache("sold_out", setting="sold_out_cache_seconds", maxsize=200_000, key_from_text=_from_text)


def known_full(slot_id: uuid.UUID, channel: str) -> bool:
    return SOLD_OUT.get((slot_id, channel)) is not None


def mark_full(slot_id: uuid.UUID, channel: str) -> None:
    SOLD_OUT.set((slot_id, channel), True)


async def places_freed(session: AsyncSession, slot_id: uuid.UUID, channel: str) -> None:
    """The slot's ``channel`` pool may have a free place once ``session`` commits: no worker answers it full."""
    await cache.invalidate(session, SOLD_OUT, _to_text(slot_id, channel))
