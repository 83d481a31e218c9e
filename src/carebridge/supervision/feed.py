"""The live warning feed: what the regulator's dashboard streams (``GET /warnings/stream``).

After a batch that raised warnings commits, the engine pings ``KEY`` (``core.live``); streams in this worker
wake and read the warnings newer than what they sent, through the same region-scoped query as the warning list.
They also read every ``REFRESH_SECONDS``, which brings warnings raised by other workers (or a standalone
engine's sweep). Warnings are stamped before their transaction commits, so a read looks ``LOOKBACK`` back and
skips what it already sent: a warning that committed late is still sent, once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from carebridge.auth.principal import Principal
from carebridge.core import clock, live
from carebridge.database.engine import Database
from carebridge.supervision import engine, service
from carebridge.supervision.schemas import WarningOut

KEY = "supervision_warnings"
REFRESH_SECONDS = 2.0
LOOKBACK = timedelta(seconds=10)
BATCH = 200


def _changed(_warnings: list[dict[str, Any]]) -> None:
    live.changed(KEY)


def install() -> None:
    """Ping the feed after every batch that raised warnings (once per process)."""
    engine.on_warnings(_changed)


async def stream(
    db: Database, principal: Principal, since: datetime, disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[bytes]:
    sent: deque[str] = deque(maxlen=4 * BATCH)
    cursor = since
    yield b": connected\n\n"
    while True:
        seen = live.version(KEY)
        async with db.read() as session:
            rows = await service.list_warnings(
                session,
                principal=principal,
                hospital_id=None,
                rule_code=None,
                severity=None,
                since=cursor - LOOKBACK,
                limit=BATCH,
            )
        fresh = [w for w in rows if str(w.id) not in sent and w.created_at > since]
        if fresh:
            for w in fresh:
                sent.append(str(w.id))
            # never past now: a warning stamped ahead (a clock moved back, as in tests) must not hide later ones
            cursor = min(max(cursor, max(w.created_at for w in fresh)), clock.now())
            payload = "[" + ",".join(WarningOut.model_validate(w).model_dump_json() for w in fresh) + "]"
            yield b"event: warnings\ndata: " + payload.encode() + b"\n\n"
        else:
            yield b": keep-alive\n\n"
        if await disconnected():
            return
        await live.wait_for_change(KEY, REFRESH_SECONDS, seen)
