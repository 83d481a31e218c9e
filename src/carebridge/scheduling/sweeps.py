"""Periodic scheduling work: no-shows for ended sessions, expired waitlist holds, automatic pool release.

Runs as a task in the API process (embedded mode) every ``sweep_interval_seconds``; every step is a set of
conditional updates, so several workers sweeping at once do each piece of work once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from sqlalchemy import select

from carebridge.core import clock
from carebridge.core.periodic import Periodic
from carebridge.database.engine import Database
from carebridge.scheduling import pools, visits, waitlist
from carebridge.scheduling.models import Schedule, ScheduleStatus

log = structlog.get_logger(__name__)
# Other domains' periodic steps (each returns counts by name), run after scheduling's own on the same timer.
STEPS: list[Callable[[Database], Awaitable[dict[str, int]]]] = []


def register(step: Callable[[Database], Awaitable[dict[str, int]]]) -> None:
    if step not in STEPS:
        STEPS.append(step)


async def run_all(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        no_shows = await visits.close_ended_sessions(session)
    async with db.transaction() as session:
        expired = await waitlist.expire_offers(session)
    released = 0
    async with db.read() as session:
        now = clock.now()
        hospital_ids = (
            await session.scalars(
                select(Schedule.hospital_id)
                .distinct()
                .where(
                    Schedule.status == ScheduleStatus.open,
                    Schedule.ends_at > now,
                    Schedule.starts_at < now + timedelta(days=15),
                )
            )
        ).all()
    for hospital_id in hospital_ids:
        async with db.transaction() as session:
            released += await pools.release_unused(session, hospital_id=hospital_id)
    done = {"no_shows": no_shows, "offers_expired": expired, "places_released": released}
    for step in STEPS:
        done.update(await step(db))
    return done


def Sweeper(db: Database, interval: float) -> Periodic:  # noqa: N802 - a background task, named as before
    return Periodic(db, interval, run_all, "scheduling_sweep")
