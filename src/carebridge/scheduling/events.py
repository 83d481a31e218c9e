"""Scheduling's consumers: the queue board projection, fed by appointment and queue events."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import idempotency, live
from carebridge.database.engine import Database, on_commit
from carebridge.events.bus import MemoryBus
from carebridge.events.outbox import Event
from carebridge.scheduling import sweeps
from carebridge.scheduling.models import QueueEntry, QueueState

CONSUMER = "scheduling.queue_board"


async def project_queue(session: AsyncSession, event: Event) -> None:
    data = event.data
    appointment_id = uuid.UUID(data["appointment_id"])
    schedule_id = uuid.UUID(data["schedule_id"])
    entry = await session.get(QueueEntry, appointment_id)
    if event.type == "appointment.checked_in":
        if entry is None:
            session.add(
                QueueEntry(
                    appointment_id=appointment_id,
                    schedule_id=schedule_id,
                    hospital_id=event.hospital_id,
                    patient_id=uuid.UUID(data["patient_id"]),
                    number=data["queue_number"],
                    state=QueueState.waiting,
                    checked_in_at=event.occurred_at,
                )
            )
    elif entry is not None:
        if event.type == "queue.called":
            entry.state, entry.called_at = QueueState.called, event.occurred_at
        elif event.type == "appointment.completed":
            entry.state, entry.done_at = QueueState.done, event.occurred_at
        elif event.type in ("appointment.cancelled", "appointment.no_show"):
            entry.state, entry.done_at = QueueState.left, event.occurred_at
    on_commit(session, lambda: live.changed(schedule_id))


async def forget_keys_step(db: Database) -> dict[str, int]:
    """Idempotency keys past their retention (booking is their main user)."""
    async with db.transaction() as session:
        return {"idempotency_keys_forgotten": await idempotency.forget_expired(session)}


def subscribe(bus: MemoryBus, app: Any) -> None:
    sweeps.register(forget_keys_step)
    for pattern in (
        "appointment.checked_in",
        "queue.called",
        "appointment.completed",
        "appointment.cancelled",
        "appointment.no_show",
    ):
        bus.subscribe(CONSUMER, pattern, project_queue)
    start_background(app)


def start_background(app: Any) -> None:
    settings = app.state.settings
    if settings.background_tasks:
        from carebridge.scheduling.sweeps import Sweeper

        app.state.background.append(Sweeper(app.state.db, settings.sweep_interval_seconds))
