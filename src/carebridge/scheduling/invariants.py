"""``carebridge check invariants``: what must always hold, checked by code, not trusted.

- every pool: ``booked`` = its appointments that hold a place (booked, checked in, completed, no-show);
  ``held`` = its waitlist entries on offer; ``booked + held <= capacity``;
- no active appointment on a stopped session.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.config import Settings
from carebridge.database.engine import Database
from carebridge.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    Schedule,
    ScheduleStatus,
    SlotPool,
    WaitlistEntry,
    WaitlistStatus,
)

PLACE_HOLDING = (
    AppointmentStatus.booked,
    AppointmentStatus.checked_in,
    AppointmentStatus.completed,
    AppointmentStatus.no_show,
)


async def violations(session: AsyncSession) -> list[str]:
    out: list[str] = []
    holding = (
        select(Appointment.pool_id, func.count().label("n"))
        .where(Appointment.status.in_(PLACE_HOLDING))
        .group_by(Appointment.pool_id)
        .subquery()
    )
    offered = (
        select(WaitlistEntry.offered_pool_id.label("pool_id"), func.count().label("n"))
        .where(WaitlistEntry.status == WaitlistStatus.offered)
        .group_by(WaitlistEntry.offered_pool_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            SlotPool.id,
            SlotPool.channel,
            SlotPool.capacity,
            SlotPool.booked,
            SlotPool.held,
            func.coalesce(holding.c.n, 0),
            func.coalesce(offered.c.n, 0),
            Schedule.status,
        )
        .join(Schedule, Schedule.id == SlotPool.schedule_id)
        .outerjoin(holding, holding.c.pool_id == SlotPool.id)
        .outerjoin(offered, offered.c.pool_id == SlotPool.id)
    )
    for pool_id, channel, capacity, booked, held, appts, offers, status in rows:
        if status == ScheduleStatus.stopped:
            if booked or held:
                out.append(f"pool {pool_id} ({channel}) of a stopped session has booked={booked} held={held}")
            continue
        if booked != appts:
            out.append(f"pool {pool_id} ({channel}): booked={booked} but {appts} appointments hold a place")
        if held != offers:
            out.append(f"pool {pool_id} ({channel}): held={held} but {offers} waitlist offers")
        if booked + held > capacity:
            out.append(f"pool {pool_id} ({channel}): booked+held={booked + held} exceeds capacity={capacity}")
    stopped_active = await session.execute(
        select(Appointment.id, Appointment.schedule_id)
        .join(Schedule, Schedule.id == Appointment.schedule_id)
        .where(and_(Schedule.status == ScheduleStatus.stopped, Appointment.status.in_(ACTIVE_STATUSES)))
    )
    for appt_id, schedule_id in stopped_active:
        out.append(f"appointment {appt_id} is active on stopped session {schedule_id}")
    return out


async def run_invariant_check(settings: Settings) -> list[str]:
    db = Database(settings)
    try:
        async with db.read() as session:
            return await violations(session)
    finally:
        await db.dispose()
