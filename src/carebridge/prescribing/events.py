"""Prescribing's periodic work: signed prescriptions not dispensed in time lapse (on the sweep timer)."""

from __future__ import annotations

from typing import Any

from carebridge.database.engine import Database
from carebridge.events.bus import MemoryBus
from carebridge.prescribing import service
from carebridge.scheduling import sweeps


async def expire_step(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        return {"prescriptions_expired": await service.expire_due(session)}


def subscribe(bus: MemoryBus, app: Any) -> None:
    sweeps.register(expire_step)
