"""Weekly templates, and the generation of weeks of schedules from them."""

from __future__ import annotations

import uuid
from datetime import date, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.core.errors import Conflict, InvalidInput, not_found
from carebridge.core.ids import new_id
from carebridge.directory import service as directory
from carebridge.scheduling.models import Schedule, ScheduleStatus, ScheduleTemplate, Slot, SlotPool, VisitType
from carebridge.scheduling.pools import check_pools
from carebridge.scheduling.schedules import ScheduleSpec, list_visit_types, slot_times

if TYPE_CHECKING:
    from carebridge.directory.models import PractitionerFiling

MAX_GENERATE_DAYS = 56


async def create_template(
    session: AsyncSession,
    *,
    principal: Principal,
    hospital_id: uuid.UUID,
    department_id: uuid.UUID,
    practitioner_id: uuid.UUID,
    visit_type_id: uuid.UUID,
    weekday: int,
    session_name: str,
    start_time: time,
    end_time: time,
    slot_minutes: int,
    pools: dict[str, int],
) -> ScheduleTemplate:
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    department = await directory.get_department(session, department_id)
    if department.hospital_id != hospital_id:
        raise InvalidInput(
            "department_not_in_hospital",
            "the department belongs to another hospital",
            details={"field": "department_id"},
        )
    visit_type = await session.get(VisitType, visit_type_id)
    if visit_type is None or visit_type.hospital_id != hospital_id:
        raise InvalidInput(
            "unknown_visit_type", "visit type not found at this hospital", details={"field": "visit_type_id"}
        )
    await directory.get_practitioner(session, practitioner_id)
    check_pools(pools)
    if await session.scalar(
        select(ScheduleTemplate.id).where(
            ScheduleTemplate.practitioner_id == practitioner_id,
            ScheduleTemplate.weekday == weekday,
            ScheduleTemplate.session == session_name,
        )
    ):
        raise Conflict("template_exists", "the practitioner already has a template for this weekday and session")
    template = ScheduleTemplate(
        hospital_id=hospital_id,
        department_id=department_id,
        practitioner_id=practitioner_id,
        visit_type_id=visit_type_id,
        weekday=weekday,
        session=session_name,
        start_time=start_time,
        end_time=end_time,
        slot_minutes=slot_minutes,
        pools=pools,
    )
    session.add(template)
    await session.flush()
    return template


async def list_templates(session: AsyncSession, *, hospital_id: uuid.UUID) -> list[ScheduleTemplate]:
    return list(
        (
            await session.scalars(
                select(ScheduleTemplate)
                .where(ScheduleTemplate.hospital_id == hospital_id)
                .order_by(ScheduleTemplate.weekday, ScheduleTemplate.session)
            )
        ).all()
    )


async def update_template(
    session: AsyncSession, *, principal: Principal, template_id: uuid.UUID, changes: dict[str, Any]
) -> ScheduleTemplate:
    template = await session.get(ScheduleTemplate, template_id)
    if template is None:
        raise not_found("template", template_id)
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(template.hospital_id)
    if "pools" in changes:
        check_pools(changes["pools"])
    for key, value in changes.items():
        setattr(template, key, value)
    return template


async def generate_schedules(
    session: AsyncSession, *, hospital_id: uuid.UUID, start: date, days: int, actor_user_id: uuid.UUID | None = None
) -> int:
    """Create the schedules the hospital's active templates call for, from ``start`` for ``days`` days.

    Days that already have the practitioner's session, or on which the practitioner is not filed, are
    skipped, so running it twice creates nothing new. Returns how many schedules were created.

    The checks are ``create_schedule``'s, in its order, but everything they need is loaded up front (a
    handful of queries per call) and the schedules, slots and pools go in as three bulk INSERTs: one
    schedule at a time cost ~10 round trips, well over an hour for 1,500 hospitals' two weeks."""
    if not 1 <= days <= MAX_GENERATE_DAYS:
        raise InvalidInput("bad_days", f"generate 1-{MAX_GENERATE_DAYS} days at a time", details={"field": "days"})
    templates = (
        await session.scalars(
            select(ScheduleTemplate).where(
                ScheduleTemplate.hospital_id == hospital_id, ScheduleTemplate.active.is_(True)
            )
        )
    ).all()
    calls = [
        (day, template)
        for day in (start + timedelta(days=offset) for offset in range(days))
        for template in templates
        if template.weekday == day.weekday()
    ]
    if not calls:
        return 0
    end = start + timedelta(days=days - 1)
    hospital = await directory.get_hospital(session, hospital_id)
    practitioner_ids = sorted({template.practitioner_id for _, template in calls})
    departments = {d.id: d for d in await directory.list_departments(session, hospital_id=hospital_id)}
    visit_types = {v.id: v for v in await list_visit_types(session, hospital_id=hospital_id)}
    filings: dict[uuid.UUID, list[PractitionerFiling]] = {}
    existing_here: set[tuple[uuid.UUID, date, str]] = set()  # the old pre-check: this hospital's sessions
    existing_any: set[tuple[uuid.UUID, date, str]] = set()  # create_schedule's check: anyone's
    for chunk in _chunks(practitioner_ids):
        filings.update(await directory.filings_of(session, chunk))
        rows = await session.execute(
            select(Schedule.practitioner_id, Schedule.service_date, Schedule.session, Schedule.hospital_id).where(
                Schedule.practitioner_id.in_(chunk), Schedule.service_date >= start, Schedule.service_date <= end
            )
        )
        for practitioner_id, service_date, session_name, owner in rows:
            existing_any.add((practitioner_id, service_date, session_name))
            if owner == hospital_id:
                existing_here.add((practitioner_id, service_date, session_name))

    now = clock.now()
    schedule_rows: list[dict[str, Any]] = []
    slot_rows: list[dict[str, Any]] = []
    pool_rows: list[dict[str, Any]] = []
    checked_pools: set[uuid.UUID] = set()
    for day, template in calls:
        key = (template.practitioner_id, day, template.session)
        if key in existing_here:
            continue
        # create_schedule's checks, in its order; its Conflicts (not filed, session exists) mean "skip".
        department = departments.get(template.department_id)
        if department is None:  # inactive, or not this hospital's: look it up as create_schedule would
            department = departments[template.department_id] = await directory.get_department(
                session, template.department_id
            )
        if department.hospital_id != hospital_id:
            raise InvalidInput(
                "department_not_in_hospital",
                "the department belongs to another hospital",
                details={"field": "department_id"},
            )
        visit_type = visit_types.get(template.visit_type_id)
        if visit_type is None:
            raise InvalidInput(
                "unknown_visit_type", "visit type not found at this hospital", details={"field": "visit_type_id"}
            )
        if not any(
            f.department_id == template.department_id and directory.filing_current(f, day)
            for f in filings.get(template.practitioner_id, ())
        ):
            continue
        pools = dict(template.pools)
        if template.id not in checked_pools:
            check_pools(pools)
            checked_pools.add(template.id)
        spec = ScheduleSpec(
            department_id=template.department_id,
            practitioner_id=template.practitioner_id,
            visit_type_id=template.visit_type_id,
            service_date=day,
            session=template.session,
            start_time=template.start_time,
            end_time=template.end_time,
            slot_minutes=template.slot_minutes,
            pools=pools,
        )
        times = slot_times(spec, hospital.timezone)
        if key in existing_any:
            continue
        existing_any.add(key)
        schedule_id = new_id()
        schedule_rows.append(
            {
                "id": schedule_id,
                "hospital_id": hospital_id,
                "department_id": template.department_id,
                "practitioner_id": template.practitioner_id,
                "visit_type_id": template.visit_type_id,
                "template_id": template.id,
                "service_date": day,
                "session": template.session,
                "starts_at": times[0][0],
                "ends_at": times[-1][1],
                "fee_fen": visit_type.fee_fen,
                "status": ScheduleStatus.open,
                "queue_seq": 0,
                "created_at": now,
            }
        )
        for slot_start, slot_end in times:
            slot_id = new_id()
            slot_rows.append(
                {
                    "id": slot_id,
                    "schedule_id": schedule_id,
                    "hospital_id": hospital_id,
                    "starts_at": slot_start,
                    "ends_at": slot_end,
                }
            )
            pool_rows.extend(
                {
                    "id": new_id(),
                    "slot_id": slot_id,
                    "schedule_id": schedule_id,
                    "hospital_id": hospital_id,
                    "channel": channel,
                    "starts_at": slot_start,
                    "capacity": capacity,
                    "booked": 0,
                    "held": 0,
                }
                for channel, capacity in pools.items()
            )
    if schedule_rows:  # parents first: the foreign keys are checked row by row
        await session.execute(insert(Schedule.__table__), schedule_rows)
        await session.execute(insert(Slot.__table__), slot_rows)
        await session.execute(insert(SlotPool.__table__), pool_rows)
    return len(schedule_rows)


def _chunks(ids: list[uuid.UUID], size: int = 500) -> list[list[uuid.UUID]]:
    """IN lists of bounded length (both databases cap the bound parameters of one statement)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]
