"""The day of the visit: check-in and queue numbers, calling the next patient, completion, no-shows at the
end of a session, and stopping a session (leave)."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, clock
from carebridge.core.errors import Conflict, Forbidden
from carebridge.directory import service as directory
from carebridge.events.outbox import append_event
from carebridge.scheduling import booking, credit
from carebridge.scheduling.booking import authorised_appointment, cancel_for_stopped_schedule, emit
from carebridge.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    Schedule,
    ScheduleStatus,
    WaitlistEntry,
    WaitlistStatus,
)
from carebridge.scheduling.schedules import get_schedule, mark_stopped, next_queue_number


async def check_in(session: AsyncSession, *, principal: Principal, appointment_id: uuid.UUID) -> Appointment:
    """Arrival: the patient (or the counter) checks in on the day and gets the session's next queue number."""
    appt = await authorised_appointment(session, principal=principal, appointment_id=appointment_id)
    if appt.status != AppointmentStatus.booked:
        raise Conflict("not_checkable", f"an appointment that is {appt.status} cannot be checked in")
    hospital = await directory.get_hospital(session, appt.hospital_id)
    schedule = await get_schedule(session, appt.schedule_id)
    now = clock.now()
    if clock.to_local(now, hospital.timezone).date() != appt.service_date or now >= schedule.ends_at:
        raise Conflict("not_visit_day", "check in on the day of the visit, before the session ends")
    number = await next_queue_number(session, appt.schedule_id)
    result = await session.execute(
        update(Appointment)
        .where(Appointment.id == appt.id, Appointment.status == AppointmentStatus.booked)
        .values(status=AppointmentStatus.checked_in, checked_in_at=now, queue_number=number)
    )
    if result.rowcount != 1:
        raise Conflict("not_checkable", "the appointment changed meanwhile")
    await session.refresh(appt)
    emit(session, "appointment.checked_in", appt, principal.actor, queue_number=number)
    return appt


async def _require_treating(session: AsyncSession, principal: Principal, schedule: Schedule) -> None:
    if principal.role == Role.doctor:
        if principal.practitioner_id != schedule.practitioner_id or principal.hospital_id != schedule.hospital_id:
            raise Forbidden("not_your_session", "only the session's own doctor calls its queue")
    elif principal.role in (Role.hospital_admin, Role.platform_admin):
        principal.require_hospital(schedule.hospital_id)
    else:
        raise Forbidden("role_not_allowed", "doctors call their queue")


async def complete(session: AsyncSession, *, principal: Principal, appointment_id: uuid.UUID) -> Appointment:
    appt = await authorised_appointment(session, principal=principal, appointment_id=appointment_id)
    await _require_treating(session, principal, await get_schedule(session, appt.schedule_id))
    result = await session.execute(
        update(Appointment)
        .where(Appointment.id == appt.id, Appointment.status == AppointmentStatus.checked_in)
        .values(status=AppointmentStatus.completed, completed_at=clock.now())
    )
    if result.rowcount != 1:
        raise Conflict("not_completable", "only a checked-in appointment can be completed")
    await session.refresh(appt)
    emit(session, "appointment.completed", appt, principal.actor)
    return appt


async def call_next(session: AsyncSession, *, principal: Principal, schedule_id: uuid.UUID) -> Appointment | None:
    """Complete the patient being seen (if any) and call the lowest waiting queue number. None: queue empty."""
    schedule = await get_schedule(session, schedule_id)
    await _require_treating(session, principal, schedule)
    current = (
        await session.scalars(
            select(Appointment).where(
                Appointment.schedule_id == schedule_id,
                Appointment.status == AppointmentStatus.checked_in,
                Appointment.called_at.is_not(None),
            )
        )
    ).all()
    for appt in current:
        await complete(session, principal=principal, appointment_id=appt.id)
    while True:
        nxt = await session.scalar(
            select(Appointment)
            .where(
                Appointment.schedule_id == schedule_id,
                Appointment.status == AppointmentStatus.checked_in,
                Appointment.called_at.is_(None),
            )
            .order_by(Appointment.queue_number)
            .limit(1)
        )
        if nxt is None:
            return None
        claimed = await session.execute(
            update(Appointment)
            .where(Appointment.id == nxt.id, Appointment.called_at.is_(None))
            .values(called_at=clock.now())
        )
        if claimed.rowcount == 1:
            break
    await session.refresh(nxt)
    append_event(
        session,
        "queue.called",
        subject_type="appointment",
        subject_id=nxt.id,
        hospital_id=nxt.hospital_id,
        region=nxt.region,
        actor=principal.actor,
        data={
            "schedule_id": schedule_id,
            "appointment_id": nxt.id,
            "queue_number": nxt.queue_number,
            "practitioner_id": schedule.practitioner_id,
        },
    )
    return nxt


async def stop_schedule(session: AsyncSession, *, principal: Principal, schedule_id: uuid.UUID, reason: str) -> int:
    """Stop a session (the practitioner's leave): cancel every booking in it, empty its pools, end its
    waitlist. Each patient's account is told (``appointment.cancelled`` -> in-app notification).
    Returns how many appointments were cancelled."""
    schedule = await get_schedule(session, schedule_id)
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(schedule.hospital_id)
    if await mark_stopped(session, schedule_id=schedule_id, reason=reason) is None:
        raise Conflict("schedule_stopped", "this session is already stopped")
    appts = (
        await session.scalars(
            select(Appointment).where(Appointment.schedule_id == schedule_id, Appointment.status.in_(ACTIVE_STATUSES))
        )
    ).all()
    for appt in appts:
        await cancel_for_stopped_schedule(session, appt=appt, reason="schedule_stopped", actor=principal.actor)
    await session.execute(
        update(WaitlistEntry)
        .where(
            WaitlistEntry.schedule_id == schedule_id,
            WaitlistEntry.status.in_((WaitlistStatus.waiting, WaitlistStatus.offered)),
        )
        .values(status=WaitlistStatus.cancelled)
    )
    hospital = await directory.get_hospital(session, schedule.hospital_id)
    append_event(
        session,
        "schedule.stopped",
        subject_type="schedule",
        subject_id=schedule_id,
        hospital_id=schedule.hospital_id,
        region=hospital.region_code,
        actor=principal.actor,
        data={
            "schedule_id": schedule_id,
            "practitioner_id": schedule.practitioner_id,
            "department_id": schedule.department_id,
            "service_date": schedule.service_date,
            "session": str(schedule.session),
            "reason": reason,
            "cancelled_appointments": len(appts),
        },
    )
    audit.record(
        session,
        action="schedule.stopped",
        subject_type="schedule",
        subject_id=schedule_id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=schedule.hospital_id,
        detail={"reason": reason, "cancelled": len(appts)},
    )
    return len(appts)


async def close_ended_sessions(session: AsyncSession, *, limit: int = 200) -> int:
    """Mark every still-booked appointment of an ended session as a no-show and apply no-show credit.
    Each session is claimed once (``closed_at``), so concurrent sweeps do not double count."""
    now = clock.now()
    ended = (
        await session.scalars(
            select(Schedule)
            .where(Schedule.ends_at <= now, Schedule.closed_at.is_(None))
            .order_by(Schedule.ends_at)
            .limit(limit)
        )
    ).all()
    marked = 0
    for schedule in ended:
        claimed = await session.execute(
            update(Schedule).where(Schedule.id == schedule.id, Schedule.closed_at.is_(None)).values(closed_at=now)
        )
        if claimed.rowcount != 1 or schedule.status != ScheduleStatus.open:
            continue
        hospital = await directory.get_hospital(session, schedule.hospital_id)
        today = clock.to_local(now, hospital.timezone).date()
        missed = (
            await session.scalars(
                select(Appointment).where(
                    Appointment.schedule_id == schedule.id,
                    Appointment.status == AppointmentStatus.booked,
                    # online clinic places are settled by their consultation (consultations.service.expire_requests)
                    Appointment.channel != booking.ONLINE_CHANNEL,
                )
            )
        ).all()
        for appt in missed:
            result = await session.execute(
                update(Appointment)
                .where(Appointment.id == appt.id, Appointment.status == AppointmentStatus.booked)
                .values(status=AppointmentStatus.no_show, no_show_at=now)
            )
            if result.rowcount != 1:
                continue
            await session.refresh(appt)
            emit(session, "appointment.no_show", appt, "system")
            await credit.evaluate(
                session, hospital_id=appt.hospital_id, patient_id=appt.patient_id, region=appt.region, today=today
            )
            marked += 1
    return marked
