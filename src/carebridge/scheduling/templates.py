"""Weekly templates, and the generation of weeks of schedules from them."""

from __future__ import annotations

import uuid
from datetime import date, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core.errors import Conflict, InvalidInput, not_found
from carebridge.directory import service as directory
from carebridge.scheduling.models import Schedule, ScheduleTemplate, VisitType
from carebridge.scheduling.pools import check_pools
from carebridge.scheduling.schedules import ScheduleSpec, create_schedule

MAX_GENERATE_DAYS = 56


async def create_template(session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID,
                          department_id: uuid.UUID, practitioner_id: uuid.UUID, visit_type_id: uuid.UUID, weekday: int,
                          session_name: str, start_time: time, end_time: time, slot_minutes: int,
                          pools: dict[str, int]) -> ScheduleTemplate:
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    department = await directory.get_department(session, department_id)
    if department.hospital_id != hospital_id:
        raise InvalidInput("department_not_in_hospital", "the department belongs to another hospital",
                           details={"field": "department_id"})
    visit_type = await session.get(VisitType, visit_type_id)
    if visit_type is None or visit_type.hospital_id != hospital_id:
        raise InvalidInput("unknown_visit_type", "visit type not found at this hospital", details={"field": "visit_type_id"})
    await directory.get_practitioner(session, practitioner_id)
    check_pools(pools)
    if await session.scalar(select(ScheduleTemplate.id).where(ScheduleTemplate.practitioner_id == practitioner_id,
                                                              ScheduleTemplate.weekday == weekday,
                                                              ScheduleTemplate.session == session_name)):
        raise Conflict("template_exists", "the practitioner already has a template for this weekday and session")
    template = ScheduleTemplate(hospital_id=hospital_id, department_id=department_id, practitioner_id=practitioner_id,
                                visit_type_id=visit_type_id, weekday=weekday, session=session_name,
                                start_time=start_time, end_time=end_time, slot_minutes=slot_minutes, pools=pools)
    session.add(template)
    await session.flush()
    return template


async def list_templates(session: AsyncSession, *, hospital_id: uuid.UUID) -> list[ScheduleTemplate]:
    return list((await session.scalars(select(ScheduleTemplate).where(ScheduleTemplate.hospital_id == hospital_id)
                                       .order_by(ScheduleTemplate.weekday, ScheduleTemplate.session))).all())


async def update_template(session: AsyncSession, *, principal: Principal, template_id: uuid.UUID,
                          changes: dict[str, Any]) -> ScheduleTemplate:
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


async def generate_schedules(session: AsyncSession, *, hospital_id: uuid.UUID, start: date, days: int,
                             actor_user_id: uuid.UUID | None = None) -> int:
    """Create the schedules the hospital's active templates call for, from ``start`` for ``days`` days.

    Days that already have the practitioner's session, or on which the practitioner is not filed, are
    skipped, so running it twice creates nothing new. Returns how many schedules were created."""
    if not 1 <= days <= MAX_GENERATE_DAYS:
        raise InvalidInput("bad_days", f"generate 1-{MAX_GENERATE_DAYS} days at a time", details={"field": "days"})
    templates = (await session.scalars(select(ScheduleTemplate).where(ScheduleTemplate.hospital_id == hospital_id,
                                                                      ScheduleTemplate.active.is_(True)))).all()
    end = start + timedelta(days=days - 1)
    existing = set((await session.execute(select(Schedule.practitioner_id, Schedule.service_date, Schedule.session)
                                          .where(Schedule.hospital_id == hospital_id, Schedule.service_date >= start,
                                                 Schedule.service_date <= end))).all())
    created = 0
    for offset in range(days):
        day = start + timedelta(days=offset)
        for template in templates:
            if template.weekday != day.weekday() or (template.practitioner_id, day, template.session) in existing:
                continue
            spec = ScheduleSpec(department_id=template.department_id, practitioner_id=template.practitioner_id,
                                visit_type_id=template.visit_type_id, service_date=day, session=template.session,
                                start_time=template.start_time, end_time=template.end_time,
                                slot_minutes=template.slot_minutes, pools=dict(template.pools))
            try:  # create_schedule checks everything before it writes, so a refusal leaves nothing behind
                await create_schedule(session, hospital_id=hospital_id, spec=spec, template_id=template.id)
            except Conflict:
                continue  # not filed that day, or another hospital's session for this practitioner
            created += 1
    return created
