"""What each worker remembers about sold-out pools, so that a full pool costs no database work.

A pool seen full (by the read-only pre-check or by a failed conditional UPDATE) is answered ``slot_full`` from
memory for ``sold_out_cache_seconds``. Anything that frees places (a cancellation, an expired waitlist hold,
capacity moved in or released to the platform) calls ``places_freed`` in its transaction: this worker forgets
every sold-out pool when it commits; other workers see the freed place when their entry runs out (1 s by
default). The write path never trusts the cache: the conditional UPDATE decides.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import cache
from carebridge.database.engine import on_commit

SOLD_OUT = cache.Cache("sold_out", setting="sold_out_cache_seconds", maxsize=200_000)


def known_full(slot_id: uuid.UUID, channel: str) -> bool:
    return SOLD_OUT.get((slot_id, channel)) is not None


def mark_full(slot_id: uuid.UUID, channel: str) -> None:
    SOLD_OUT.set((slot_id, channel), True)


def places_freed(session: AsyncSession) -> None:
    on_commit(session, SOLD_OUT.clear)
