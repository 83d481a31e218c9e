"""The embedded engine: a consumer of every event this platform appends, plus its start-up and its timers; in a
standalone deployment (``carebridge supervise``), the start-up and a sweep of its own.

It takes each relay batch in one transaction (``MemoryBus.subscribe_batch``). The trace keeps every event
under its id, so a batch delivered twice (a relay retry, a restart between the engine's commit and the
relay's) is stored and evaluated once: the engine resumes from where it stopped without double warnings.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core.periodic import Periodic
from carebridge.database.engine import Database
from carebridge.directory import service as directory
from carebridge.events.bus import MemoryBus
from carebridge.events.outbox import Event
from carebridge.supervision import cases, catalog, daily, feed, registry
from carebridge.supervision.precheck import State

log = structlog.get_logger(__name__)
CONSUMER = "supervision"


async def process(session: AsyncSession, events: list[Event]) -> None:
    await State.engine.process(session, events)


async def fire_timers(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        warnings = await State.engine.fire_timers(session)
    return {"supervision_timers_fired": len(warnings)}


async def daily_indicators(db: Database) -> dict[str, int]:
    return await daily.step(db, State.engine)


async def escalate_cases(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        escalated = await cases.escalate_overdue(session)
    return {"supervision_cases_escalated": escalated}


class Startup:
    """Default rules in place and (embedded) the hospital registry complete before the first event is checked."""

    def __init__(self, db: Database, *, embedded: bool) -> None:
        self.db = db
        self.embedded = embedded

    async def start(self) -> None:
        async with self.db.transaction() as session:
            added = await catalog.ensure_defaults(session)
            known = 0
            if self.embedded:
                known = await registry.reconcile(session, await directory.hospital_profiles(session))
        if added or known:
            log.info("supervision_ready", rules_added=added, hospitals_added=known)

    async def stop(self) -> None:
        return None


async def sweep(db: Database) -> dict[str, int]:
    """The standalone engine's own sweep (the platform's sweeper is not there): due timers, overdue cases and the
    daily indicators."""
    return {**await fire_timers(db), **await escalate_cases(db), **await daily_indicators(db)}


def subscribe(bus: MemoryBus, app: Any) -> None:
    settings = app.state.settings
    feed.install()
    if settings.deployment == "supervisor":
        app.state.background.insert(0, Startup(app.state.db, embedded=False))
        app.state.background.append(Periodic(app.state.db, settings.sweep_interval_seconds, sweep, "supervision_sweep"))
        return
    if not settings.supervision_embedded:
        return
    bus.subscribe_batch(CONSUMER, "*", process)
    app.state.background.insert(0, Startup(app.state.db, embedded=True))
    from carebridge.scheduling import sweeps

    sweeps.register(fire_timers)
    sweeps.register(escalate_cases)
    sweeps.register(daily_indicators)
