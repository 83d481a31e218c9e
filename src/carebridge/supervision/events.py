"""The embedded engine: a consumer of every event this platform appends, plus its start-up and its timers.

It takes each relay batch in one transaction (``MemoryBus.subscribe_batch``). The trace keeps every event
under its id, so a batch delivered twice (a relay retry, a restart between the engine's commit and the
relay's) is stored and evaluated once: the engine resumes from where it stopped without double warnings.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.database.engine import Database
from carebridge.directory import service as directory
from carebridge.events.bus import MemoryBus
from carebridge.events.outbox import Event
from carebridge.supervision import cases, catalog, registry
from carebridge.supervision.precheck import State

log = structlog.get_logger(__name__)
CONSUMER = "supervision"


async def process(session: AsyncSession, events: list[Event]) -> None:
    await State.engine.process(session, events)


async def fire_timers(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        warnings = await State.engine.fire_timers(session)
    return {"supervision_timers_fired": len(warnings)}


async def escalate_cases(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        escalated = await cases.escalate_overdue(session)
    return {"supervision_cases_escalated": escalated}


class Startup:
    """Default rules in place and the hospital registry complete before the first event is checked."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self) -> None:
        async with self.db.transaction() as session:
            added = await catalog.ensure_defaults(session)
            profiles = await directory.hospital_profiles(session)
            known = await registry.reconcile(session, profiles)
        if added or known:
            log.info("supervision_ready", rules_added=added, hospitals_added=known)

    async def stop(self) -> None:
        return None


def subscribe(bus: MemoryBus, app: Any) -> None:
    settings = app.state.settings
    if not settings.supervision_embedded:
        return
    bus.subscribe_batch(CONSUMER, "*", process)
    app.state.background.insert(0, Startup(app.state.db))
    from carebridge.scheduling import sweeps

    sweeps.register(fire_timers)
    sweeps.register(escalate_cases)
