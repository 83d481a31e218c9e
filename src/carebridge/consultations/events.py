"""Consultations' periodic work (on the platform's sweep timer): lapsing requests nobody accepted, and
follow-up reminders that are due."""

from __future__ import annotations

from typing import Any

from carebridge.consultations import follow_ups, service
from carebridge.database.engine import Database
from carebridge.events.bus import MemoryBus
from carebridge.scheduling import sweeps


async def expire_step(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        return {"consultations_expired": await service.expire_requests(session)}


async def follow_up_step(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        return {"follow_ups_reminded": await follow_ups.remind_due(session)}


def subscribe(bus: MemoryBus, app: Any) -> None:
    sweeps.register(expire_step)
    sweeps.register(follow_up_step)
