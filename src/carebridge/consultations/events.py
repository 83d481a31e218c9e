"""Consultations' periodic work: lapsing requests nobody accepted (on the platform's sweep timer)."""

from __future__ import annotations

from typing import Any

from carebridge.consultations import service
from carebridge.database.engine import Database
from carebridge.events.bus import MemoryBus
from carebridge.scheduling import sweeps


async def expire_step(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        return {"consultations_expired": await service.expire_requests(session)}


def subscribe(bus: MemoryBus, app: Any) -> None:
    sweeps.register(expire_step)
