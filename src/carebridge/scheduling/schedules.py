"""Schedules (a practitioner's session on a day) with their slots and pools, and visit types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, clock
from carebridge.core.errors import Conflict, InvalidInput, not_found
from carebridge.core.ids import new_id
from carebridge.directory import service as directory
from carebridge.scheduling.models import Schedule, ScheduleStatus, Slot, SlotPool, VisitType
from carebridge.scheduling.pools import check_pools

SESSION_HOURS = {
    "morning": (time(6, 0), time(12, 30)),
    "afternoon": (time(12, 0), time(18, 30)),
    "evening": (time(17, 0), time(23, 0)),
}
MAX_SLOTS = 48


async def create_visit_type(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID, code: str, name: str, fee_fen: int
) -> VisitType:
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    await directory.get_hospital(session, hospital_id)
    if await session.scalar(select(VisitType.id).where(VisitType.hospital_id == hospital_id, VisitType.code == code)):
        raise Conflict("visit_type_exists", f"visit type {code} exists")
    visit_type = VisitType(hospital_id=hospital_id, code=code, name=name, fee_fen=fee_fen)
    session.add(visit_type)
    await session.flush()
    return visit_type


async def list_visit_types(session: AsyncSession, *, hospital_id: uuid.UUID) -> list[VisitType]:
    return list(
        (
            await session.scalars(
                select(VisitType).where(VisitType.hospital_id == hospital_id).order_by(VisitType.fee_fen)
            )
        ).all()
    )


async def get_schedule(session: AsyncSession, schedule_id: uuid.UUID) -> Schedule:
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise not_found("schedule", schedule_id)
    return schedule


@dataclass(frozen=True)
class ScheduleSpec:
    department_id: uuid.UUID
    practitioner_id: uuid.UUID
    visit_type_id: uuid.UUID
    service_date: date
    session: str
    start_time: time
    end_time: time
    slot_minutes: int
    pools: dict[str, int]


def slot_times(spec: ScheduleSpec, tz: str) -> list[tuple[datetime, datetime]]:
    if spec.end_time <= spec.start_time:
        raise InvalidInput("invalid_times", "end_time must be after start_time", details={"field": "end_time"})
    low, high = SESSION_HOURS[spec.session]
    if spec.start_time < low or spec.end_time > high:
        raise InvalidInput(
            "outside_session",
            f"a {spec.session} session runs within {low:%H:%M}-{high:%H:%M}",
            details={"field": "start_time"},
        )
    start = clock.local_datetime(spec.service_date, spec.start_time, tz)
    end = clock.local_datetime(spec.service_date, spec.end_time, tz)
    step = timedelta(minutes=spec.slot_minutes)
    out = []
    while start + step <= end:
        out.append((start, start + step))
        start += step
    if not out or len(out) > MAX_SLOTS:
        raise InvalidInput(
            "bad_slot_length",
            f"the session must hold 1-{MAX_SLOTS} slots of slot_minutes",
            details={"field": "slot_minutes"},
        )
    return out


async def create_schedule(
    session: AsyncSession,
    *,
    hospital_id: uuid.UUID,
    spec: ScheduleSpec,
    template_id: uuid.UUID | None = None,
    actor: Principal | None = None,
) -> Schedule:
    """Create a session with its slots and pools. The practitioner must hold a current filing in the
    department on that day (409 ``not_filed``); one session per practitioner per day and half-day
    (409 ``schedule_exists``)."""
    hospital = await directory.get_hospital(session, hospital_id)
    department = await directory.get_department(session, spec.department_id)
    if department.hospital_id != hospital_id:
        raise InvalidInput(
            "department_not_in_hospital",
            "the department belongs to another hospital",
            details={"field": "department_id"},
        )
    visit_type = await session.get(VisitType, spec.visit_type_id)
    if visit_type is None or visit_type.hospital_id != hospital_id:
        raise InvalidInput(
            "unknown_visit_type", "visit type not found at this hospital", details={"field": "visit_type_id"}
        )
    if (
        await directory.current_filing(
            session, practitioner_id=spec.practitioner_id, department_id=spec.department_id, on=spec.service_date
        )
        is None
    ):
        raise Conflict("not_filed", "the practitioner has no current filing in this department on that day")
    check_pools(spec.pools)
    times = slot_times(spec, hospital.timezone)
    if await session.scalar(
        select(Schedule.id).where(
            Schedule.practitioner_id == spec.practitioner_id,
            Schedule.service_date == spec.service_date,
            Schedule.session == spec.session,
        )
    ):
        raise Conflict("schedule_exists", "the practitioner already has this session on that day")
    schedule = Schedule(
        hospital_id=hospital_id,
        department_id=spec.department_id,
        practitioner_id=spec.practitioner_id,
        visit_type_id=spec.visit_type_id,
        template_id=template_id,
        service_date=spec.service_date,
        session=spec.session,
        starts_at=times[0][0],
        ends_at=times[-1][1],
        fee_fen=visit_type.fee_fen,
    )
    session.add(schedule)
    await session.flush()
    slots = [
        Slot(id=new_id(), schedule_id=schedule.id, hospital_id=hospital_id, starts_at=s, ends_at=e) for s, e in times
    ]
    session.add_all(slots)
    await session.flush()
    session.add_all(
        [
            SlotPool(
                slot_id=slot.id,
                schedule_id=schedule.id,
                hospital_id=hospital_id,
                channel=channel,
                starts_at=slot.starts_at,
                capacity=capacity,
            )
            for slot in slots
            for channel, capacity in spec.pools.items()
        ]
    )
    await session.flush()
    if actor is not None:
        audit.record(
            session,
            action="schedule.created",
            subject_type="schedule",
            subject_id=schedule.id,
            actor_user_id=actor.user_id,
            actor_role=actor.role.value,
            hospital_id=hospital_id,
            detail={},
        )
    return schedule


async def schedules_for(
    session: AsyncSession,
    *,
    hospital_id: uuid.UUID | None = None,
    department_id: uuid.UUID | None = None,
    practitioner_id: uuid.UUID | None = None,
    date_from: date,
    date_to: date,
    include_stopped: bool = False,
    hospitals: frozenset[uuid.UUID] | None = None,
) -> list[Schedule]:
    """Sessions in the date range; ``hospitals`` limits them to those hospitals (a partner app's grants)."""
    query = select(Schedule).where(Schedule.service_date >= date_from, Schedule.service_date <= date_to)
    if hospitals is not None:
        query = query.where(Schedule.hospital_id.in_(hospitals))
    if hospital_id:
        query = query.where(Schedule.hospital_id == hospital_id)
    if department_id:
        query = query.where(Schedule.department_id == department_id)
    if practitioner_id:
        query = query.where(Schedule.practitioner_id == practitioner_id)
    if not include_stopped:
        query = query.where(Schedule.status == ScheduleStatus.open)
    return list((await session.scalars(query.order_by(Schedule.service_date, Schedule.starts_at))).all())


async def pools_by_schedule(session: AsyncSession, schedule_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[SlotPool]]:
    out: dict[uuid.UUID, list[SlotPool]] = {sid: [] for sid in schedule_ids}
    if not schedule_ids:
        return out
    rows = await session.scalars(
        select(SlotPool).where(SlotPool.schedule_id.in_(schedule_ids)).order_by(SlotPool.starts_at, SlotPool.channel)
    )
    for pool in rows:
        out[pool.schedule_id].append(pool)
    return out


async def slots_of(session: AsyncSession, schedule_id: uuid.UUID) -> list[Slot]:
    return list(
        (await session.scalars(select(Slot).where(Slot.schedule_id == schedule_id).order_by(Slot.starts_at))).all()
    )


async def mark_stopped(session: AsyncSession, *, schedule_id: uuid.UUID, reason: str) -> Schedule | None:
    """Conditionally stop an open schedule and empty its pools; None if it was not open."""
    result = await session.execute(
        update(Schedule)
        .where(Schedule.id == schedule_id, Schedule.status == ScheduleStatus.open)
        .values(status=ScheduleStatus.stopped, stopped_reason=reason, stopped_at=clock.now())
    )
    if result.rowcount != 1:
        return None
    await session.execute(update(SlotPool).where(SlotPool.schedule_id == schedule_id).values(booked=0, held=0))
    schedule = await session.get(Schedule, schedule_id)
    if schedule is not None:
        await session.refresh(schedule)
    return schedule


async def next_queue_number(session: AsyncSession, schedule_id: uuid.UUID) -> int:
    await session.execute(update(Schedule).where(Schedule.id == schedule_id).values(queue_seq=Schedule.queue_seq + 1))
    return int(await session.scalar(select(Schedule.queue_seq).where(Schedule.id == schedule_id)) or 0)


async def count_schedules(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Schedule)) or 0)
