"""The open platform's periodic work: used client assertions and old authorization codes are forgotten once
they have expired (on the sweep timer)."""

from __future__ import annotations

from typing import Any

from carebridge.database.engine import Database
from carebridge.events.bus import MemoryBus
from carebridge.openplatform import tokens
from carebridge.scheduling import sweeps


async def forget_step(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        return {"client_assertions_forgotten": await tokens.forget_expired(session)}


def subscribe(bus: MemoryBus, app: Any) -> None:
    sweeps.register(forget_step)
