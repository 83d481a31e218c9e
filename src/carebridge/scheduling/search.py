"""Scheduling's searches for partner apps (the FHIR facade's Schedule, Slot and Appointment searches): always
within a set of hospitals (those that granted the app), paged by limit and offset, the domain's rules
applied (a stopped session has no free places; a slot is free for a channel while its pool has a place).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import cache
from carebridge.database.paging import Bound, bounded, page
from carebridge.scheduling import availability
from carebridge.scheduling.models import (
    Appointment,
    AppointmentStatus,
    Schedule,
    ScheduleStatus,
    Slot,
    SlotPool,
    VisitType,
)


@dataclass(frozen=True, slots=True)
class SlotView:
    slot: Slot
    schedule: Schedule
    free: int  # places free in the channel's pool (0 when there is no pool or the session is stopped)


async def search_schedules(
    session: AsyncSession,
    *,
    hospitals: frozenset[uuid.UUID],
    ids: list[uuid.UUID] | None = None,
    practitioner_id: uuid.UUID | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    open_only: bool | None = None,
    limit: int,
    offset: int = 0,
    exact_total: bool = False,
) -> tuple[list[Schedule], int | None]:
    query = select(Schedule).where(Schedule.hospital_id.in_(hospitals))
    if open_only is True:
        query = query.where(Schedule.status == ScheduleStatus.open)
    elif open_only is False:
        query = query.where(Schedule.status != ScheduleStatus.open)
    if ids is not None:
        query = query.where(Schedule.id.in_(ids))
    if practitioner_id is not None:
        query = query.where(Schedule.practitioner_id == practitioner_id)
    if date_from is not None:
        query = query.where(Schedule.service_date >= date_from)
    if date_to is not None:
        query = query.where(Schedule.service_date <= date_to)
    query = query.order_by(Schedule.service_date, Schedule.starts_at, Schedule.id)
    rows, total = await page(session, query, limit, offset, exact_total)
    return [r[0] for r in rows], total


async def search_slots(
    session: AsyncSession,
    *,
    hospitals: frozenset[uuid.UUID],
    channel: str,
    ids: list[uuid.UUID] | None = None,
    schedule_ids: list[uuid.UUID] | None = None,
    starts: list[Bound] = (),  # type: ignore[assignment]
    free: bool | None = None,
    visit_type_codes: list[str] | None = None,
    limit: int,
    offset: int = 0,
    exact_total: bool = False,
) -> tuple[list[SlotView], int | None]:
    """Slots with the places free in ``channel``'s pool; ``free`` True / False keeps only free / busy ones."""
    places = func.coalesce(SlotPool.capacity - SlotPool.booked - SlotPool.held, 0)
    query = (
        select(Slot, Schedule, places, Schedule.status)
        .join(Schedule, Schedule.id == Slot.schedule_id)
        .outerjoin(SlotPool, and_(SlotPool.slot_id == Slot.id, SlotPool.channel == channel))
        .where(Slot.hospital_id.in_(hospitals))
    )
    if ids is not None:
        query = query.where(Slot.id.in_(ids))
    if schedule_ids is not None:
        query = query.where(Slot.schedule_id.in_(schedule_ids))
    query = query.where(*bounded(Slot.starts_at, starts))
    if visit_type_codes:
        query = query.join(VisitType, VisitType.id == Schedule.visit_type_id)
        query = query.where(VisitType.code.in_(visit_type_codes))
    is_free = and_(Schedule.status == ScheduleStatus.open, places > 0)
    if free is True:
        query = query.where(is_free)
    elif free is False:
        query = query.where(~is_free)
    rows, total = await page(session, query.order_by(Slot.starts_at, Slot.id), limit, offset, exact_total)
    views = [
        SlotView(slot=slot, schedule=schedule, free=int(n) if status == ScheduleStatus.open else 0)
        for slot, schedule, n, status in rows
    ]
    return views, total


async def search_appointments(
    session: AsyncSession,
    *,
    hospitals: frozenset[uuid.UUID],
    patient_ids: list[uuid.UUID] | None,
    ids: list[uuid.UUID] | None = None,
    practitioner_id: uuid.UUID | None = None,
    starts: list[Bound] = (),  # type: ignore[assignment]
    statuses: list[AppointmentStatus] | None = None,
    limit: int,
    offset: int = 0,
    exact_total: bool = False,
) -> tuple[list[Appointment], int | None]:
    """Appointments at ``hospitals``, of ``patient_ids`` (None: every patient, for a backend app)."""
    query = select(Appointment).where(Appointment.hospital_id.in_(hospitals))
    if patient_ids is not None:
        query = query.where(Appointment.patient_id.in_(patient_ids))
    if ids is not None:
        query = query.where(Appointment.id.in_(ids))
    if practitioner_id is not None:
        query = query.where(Appointment.practitioner_id == practitioner_id)
    query = query.where(*bounded(Appointment.starts_at, starts))
    if statuses:
        query = query.where(Appointment.status.in_(statuses))
    query = query.order_by(Appointment.starts_at.desc(), Appointment.id)
    rows, total = await page(session, query, limit, offset, exact_total)
    return [r[0] for r in rows], total


VISIT_TYPES = cache.Cache("visit_type", setting="directory_cache_seconds", maxsize=20_000)


@dataclass(frozen=True, slots=True)
class VisitTypeName:
    code: str
    name: str


async def visit_types(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, VisitTypeName]:
    """Visit types' codes and names (they never change once made: cached per worker)."""
    out = {i: hit for i in ids if (hit := VISIT_TYPES.get(i)) is not None}
    missing = ids - out.keys()
    if missing:
        for vid, code, name in await session.execute(
            select(VisitType.id, VisitType.code, VisitType.name).where(VisitType.id.in_(missing))
        ):
            out[vid] = VisitTypeName(code, name)
            VISIT_TYPES.set(vid, out[vid])
    return out


async def schedules_by_id(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Schedule]:
    if not ids:
        return {}
    return {s.id: s for s in await session.scalars(select(Schedule).where(Schedule.id.in_(ids)))}


async def slot_within(session: AsyncSession, *, slot_id: uuid.UUID, hospitals: frozenset[uuid.UUID]) -> bool:
    """Whether the slot exists at one of these hospitals."""
    found = await session.scalar(select(Slot.id).where(Slot.id == slot_id, Slot.hospital_id.in_(hospitals)))
    return found is not None


_POOL_HOSPITAL_AND_FREE = select(SlotPool.hospital_id, SlotPool.capacity - SlotPool.booked - SlotPool.held).where(
    SlotPool.slot_id == bindparam("slot_id"), SlotPool.channel == bindparam("channel")
)


async def partner_place(
    session: AsyncSession, *, slot_id: uuid.UUID, channel: str, hospitals: frozenset[uuid.UUID]
) -> str:
    """A partner app's look at a slot before booking it, in one read: ``unknown`` (no such slot at the
    hospitals that granted the app), ``full`` (no place left in the app's pool, or no pool) or ``open``. A pool
    this worker saw full costs only the hospital check. The write path re-checks everything."""
    if availability.known_full(slot_id, channel):
        return "full" if await slot_within(session, slot_id=slot_id, hospitals=hospitals) else "unknown"
    row = (await session.execute(_POOL_HOSPITAL_AND_FREE, {"slot_id": slot_id, "channel": channel})).first()
    if row is None:  # no pool for the app in this slot, or no such slot
        return "full" if await slot_within(session, slot_id=slot_id, hospitals=hospitals) else "unknown"
    if row[0] not in hospitals:
        return "unknown"
    if row[1] <= 0:
        availability.mark_full(slot_id, channel)
        return "full"
    return "open"


async def seen_at(session: AsyncSession, *, patient_id: uuid.UUID, hospitals: frozenset[uuid.UUID]) -> bool:
    """Whether the patient has (or had) an appointment at one of these hospitals."""
    found = await session.scalar(
        select(Appointment.id)
        .where(Appointment.patient_id == patient_id, Appointment.hospital_id.in_(hospitals))
        .limit(1)
    )
    return found is not None
