"""The open platform's consumers and periodic work: events become webhook deliveries (a bus consumer), the
sender attempts them (its own timer), and used client assertions and old authorization codes are forgotten
once they have expired (on the sweep timer)."""

from __future__ import annotations

from typing import Any

from carebridge.core.periodic import Periodic
from carebridge.database.engine import Database
from carebridge.events.bus import MemoryBus
from carebridge.openplatform import sandbox, tokens, usage, webhooks
from carebridge.openplatform.webhook_sender import sender
from carebridge.scheduling import sweeps


async def forget_step(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        return {"client_assertions_forgotten": await tokens.forget_expired(session)}


def subscribe(bus: MemoryBus, app: Any) -> None:
    sweeps.register(forget_step)
    sweeps.register(sandbox.roll_step)
    bus.subscribe_batch(webhooks.CONSUMER, "*", webhooks.enqueue)
    settings = app.state.settings
    if settings.background_tasks:
        app.state.background.append(sender(app.state.db, settings.webhook_interval_seconds))
    app.state.background.append(Periodic(app.state.db, settings.usage_flush_seconds, usage.METER.flush, "usage_flush"))
