"""Signals between the workers of one deployment, over PostgreSQL ``LISTEN``/``NOTIFY``.

A sender calls ``notify(session, channel, payloads)`` inside its transaction: PostgreSQL delivers the payloads
to every listening worker when (and only if) that transaction commits, in commit order. Each worker keeps one
connection that listens on every channel some module subscribed to (``subscribe``); a lost connection is
reopened and every subscriber's ``on_reconnect`` runs (whatever was sent meanwhile is missed: subscribers
must be able to catch up from the database). The embedded SQLite mode is one process: ``notify`` does nothing
and local delivery is the subscribers' own business. A payload is text of at most 7,900 bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.database.engine import Database

MAX_PAYLOAD = 7900  # PostgreSQL refuses payloads of 8,000 bytes or more
log = structlog.get_logger(__name__)

_NOTIFY_MANY = text("SELECT pg_notify(:channel, p) FROM unnest(:payloads) AS p").bindparams(
    bindparam("payloads", type_=ARRAY(String))
)


@dataclass
class Subscription:
    channel: str
    handler: Callable[[str], None]
    on_reconnect: Callable[[], None] | None = None


SUBSCRIPTIONS: dict[str, Subscription] = {}


def subscribe(channel: str, handler: Callable[[str], None], on_reconnect: Callable[[], None] | None = None) -> None:
    SUBSCRIPTIONS[channel] = Subscription(channel, handler, on_reconnect)


async def notify(session: AsyncSession, channel: str, payloads: list[str]) -> None:
    """Send ``payloads`` to every worker once ``session`` commits (PostgreSQL; nothing on SQLite)."""
    if not payloads or session.bind.dialect.name != "postgresql":
        return
    for p in payloads:
        if len(p.encode()) > MAX_PAYLOAD:
            raise ValueError(f"a notification payload is limited to {MAX_PAYLOAD} bytes")
    await session.execute(_NOTIFY_MANY, {"channel": channel, "payloads": payloads})


def _dispatch(channel: str, payload: str) -> None:
    sub = SUBSCRIPTIONS.get(channel)
    if sub is None:
        return
    try:
        sub.handler(payload)
    except Exception:  # noqa: BLE001 - one bad payload must not stop the listener
        log.exception("notification_handler_failed", channel=channel)


async def listen(db: Database, *, retry_seconds: float = 1.0) -> None:
    """Run for the life of the worker (PostgreSQL only)."""
    while True:
        try:
            async with db.engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                closed = asyncio.Event()
                raw.add_termination_listener(lambda _conn, done=closed: done.set())
                for channel in list(SUBSCRIPTIONS):
                    await raw.add_listener(channel, lambda _c, _pid, ch, payload: _dispatch(ch, payload))
                for sub in list(SUBSCRIPTIONS.values()):
                    if sub.on_reconnect is not None:
                        sub.on_reconnect()  # whatever was sent while we were not listening
                log.debug("notification_listener_ready", channels=sorted(SUBSCRIPTIONS))
                await closed.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a lost connection: reconnect after a pause
            log.warning("notification_listener_lost", error=type(exc).__name__)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(retry_seconds)
