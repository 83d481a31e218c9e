"""Booking, cancelling, rescheduling: the rules and the capacity arithmetic.

A place is taken with one conditional UPDATE (``booked + held < capacity``) and given back with its mirror;
the CHECK constraint on ``slot_pools`` is the backstop and the partial unique index on appointments stops a
patient holding two places in one session. A patient's own concurrent bookings are serialised by bumping
their ``patient_booking_state`` row first, so the per-patient limits count a stable set.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.core.batching import array_rows
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, not_found
from carebridge.core.ids import new_id
from carebridge.directory import service as directory
from carebridge.events.outbox import append_event
from carebridge.patients import service as patients
from carebridge.scheduling import availability, credit, waitlist
from carebridge.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    PatientBookingState,
    Schedule,
    ScheduleStatus,
    Slot,
    SlotPool,
)
from carebridge.scheduling.rules import EffectiveRules, effective_rules

PATIENT_CHANNELS = {"platform"}
COUNTER_CHANNELS = {"onsite"}
ONLINE_CHANNEL = "online"  # an online clinic session's places: booked by requesting a consultation


def appointment_data(appt: Appointment, **extra: object) -> dict[str, object]:
    return {
        "appointment_id": appt.id,
        "patient_id": appt.patient_id,
        "practitioner_id": appt.practitioner_id,
        "department_id": appt.department_id,
        "schedule_id": appt.schedule_id,
        "slot_id": appt.slot_id,
        "channel": appt.channel,
        "service_date": appt.service_date,
        "starts_at": appt.starts_at,
        "fee_fen": appt.fee_fen,
        **extra,
    }


def emit(session: AsyncSession, type_: str, appt: Appointment, actor: str, **extra: object) -> None:
    append_event(
        session,
        type_,
        subject_type="appointment",
        subject_id=appt.id,
        hospital_id=appt.hospital_id,
        region=appt.region,
        actor=actor,
        data=appointment_data(appt, **extra),
    )


# The booking path's statements, built once: building a statement costs more than running it.
_PLACE = (
    select(SlotPool, Schedule, Slot)
    .join(Schedule, Schedule.id == SlotPool.schedule_id)
    .join(Slot, Slot.id == SlotPool.slot_id)
    .where(SlotPool.slot_id == bindparam("slot_id"), SlotPool.channel == bindparam("channel"))
)
# A Core statement on the table: the ORM's bulk UPDATE would evaluate the condition against the session's
# objects on every call (the loaded pool's ``booked`` is not read after the place is taken).
_POOLS = SlotPool.__table__.c
_TAKE = (
    update(SlotPool.__table__)
    .where(_POOLS.id == bindparam("pool_id"), _POOLS.booked + _POOLS.held < _POOLS.capacity)
    .values(booked=_POOLS.booked + 1)
)
_SERIALISE = {
    name: module.insert(PatientBookingState.__table__)
    .values(patient_id=bindparam("patient_id"), version=1)
    .on_conflict_do_update(index_elements=["patient_id"], set_={"version": PatientBookingState.version + 1})
    for name, module in (("postgresql", postgresql), ("sqlite", sqlite))
}
_ASKED = array_rows(patient_ids=PatientBookingState.__table__.c.patient_id)
# PostgreSQL: every patient of a batch in one statement execution, in id order
_SERIALISE_MANY = (
    postgresql.insert(PatientBookingState.__table__)
    .from_select(["patient_id", "version"], select(_ASKED.c.patient_ids, literal(1)).order_by(_ASKED.c.patient_ids))
    .on_conflict_do_update(index_elements=["patient_id"], set_={"version": PatientBookingState.version + 1})
)


async def load_place(session: AsyncSession, slot_id: uuid.UUID, channel: str) -> tuple[SlotPool, Schedule, Slot]:
    row = (await session.execute(_PLACE, {"slot_id": slot_id, "channel": channel})).first()
    if row is None:
        exists = await session.scalar(select(SlotPool.id).where(SlotPool.slot_id == slot_id).limit(1))
        if exists is None:
            raise not_found("slot", slot_id)
        raise Conflict(
            "slot_full",
            f"this slot offers no places on the {channel} channel",
            details={"slot_id": str(slot_id), "channel": channel},
        )
    return row[0], row[1], row[2]


def check_window(schedule: Schedule, pool: SlotPool, rules: EffectiveRules, tz: str, now: datetime) -> None:
    """Raise 409 ``booking_window_closed`` unless the slot can be booked now."""
    if schedule.status != ScheduleStatus.open:
        raise Conflict("schedule_stopped", "this session has been stopped")
    if pool.starts_at <= now:
        raise Conflict("booking_window_closed", "this slot has already started", details={"reason": "started"})
    opens = clock.local_datetime(schedule.service_date - timedelta(days=rules.window_days), rules.opens_at, tz)
    if now < opens:
        raise Conflict(
            "booking_window_closed",
            "booking for this day has not opened yet",
            details={"reason": "not_open", "opens_at": opens.isoformat()},
        )
    local_now = clock.to_local(now, tz)
    if (
        rules.same_day_cutoff
        and local_now.date() == schedule.service_date
        and local_now.time() >= rules.same_day_cutoff
    ):
        raise Conflict(
            "booking_window_closed",
            "same-day booking has closed",
            details={"reason": "same_day_cutoff", "cutoff": rules.same_day_cutoff.isoformat()},
        )


async def serialise_patient(session: AsyncSession, patient_id: uuid.UUID) -> None:
    """Bump the patient's booking-state row (insert on first use): concurrent bookings of one patient queue here."""
    await session.execute(_SERIALISE[session.bind.dialect.name], {"patient_id": patient_id})


async def serialise_patients(session: AsyncSession, patient_ids: list[uuid.UUID]) -> None:
    """``serialise_patient`` for many patients in one round trip, in id order (two transactions bumping some of
    the same rows lock them in the same order, so neither waits for the other in a cycle)."""
    ordered = sorted(set(patient_ids))
    if session.bind.dialect.name == "postgresql" and len(ordered) > 1:
        await session.execute(_SERIALISE_MANY, {"patient_ids": ordered})
    else:
        await session.execute(_SERIALISE[session.bind.dialect.name], [{"patient_id": p} for p in ordered])


def _limits_query() -> Select[Any]:
    """The patient's active bookings at the hospital (in total, in the department, with the doctor that day, in
    the session) and their no-show block, in one statement built once (building it costs more than running it)."""
    active = Appointment.status.in_(ACTIVE_STATUSES)
    same_doctor_day = (Appointment.practitioner_id == bindparam("practitioner_id")) & (
        Appointment.service_date == bindparam("service_date")
    )
    return select(
        func.count(),
        func.coalesce(func.sum(case((Appointment.department_id == bindparam("department_id"), 1), else_=0)), 0),
        func.coalesce(func.sum(case((same_doctor_day, 1), else_=0)), 0),
        func.coalesce(func.sum(case((Appointment.schedule_id == bindparam("schedule_id"), 1), else_=0)), 0),
        credit.blocked_until(),
    ).where(
        Appointment.patient_id == bindparam("patient_id"),
        Appointment.hospital_id == bindparam("hospital_id"),
        active,
    )


_LIMITS = _limits_query()


async def check_limits(
    session: AsyncSession,
    *,
    rules: EffectiveRules,
    patient_id: uuid.UUID,
    schedule: Schedule,
    today: date,
) -> None:
    """403 ``booking_blocked`` (no-show credit), then 409 ``already_booked`` / ``limit_exceeded``: one query."""
    params = {
        "patient_id": patient_id,
        "hospital_id": schedule.hospital_id,
        "department_id": schedule.department_id,
        "practitioner_id": schedule.practitioner_id,
        "service_date": schedule.service_date,
        "schedule_id": schedule.id,
        "today": today,
    }
    row = (await session.execute(_LIMITS, params)).one()
    if row[4] is not None:  # blocked and not whitelisted: the full answer names the block
        await credit.ensure_not_blocked(session, hospital_id=schedule.hospital_id, patient_id=patient_id, today=today)
    total, in_department, with_doctor_that_day, in_session = (int(v) for v in row[:4])
    check_counts(
        rules,
        total=total,
        in_department=in_department,
        with_doctor_that_day=with_doctor_that_day,
        in_session=in_session,
    )


def check_counts(
    rules: EffectiveRules, *, total: int, in_department: int, with_doctor_that_day: int, in_session: int
) -> None:
    """409 ``already_booked`` / ``limit_exceeded`` from the patient's active bookings at the hospital: in total,
    in the session's department, with its doctor that day, in the session itself."""
    if in_session:
        raise Conflict("already_booked", "the patient already has a booking in this session")
    for name, count, limit in (
        ("max_per_practitioner_per_day", with_doctor_that_day, rules.max_per_practitioner_per_day),
        ("max_per_department", in_department, rules.max_per_department),
        ("max_total", total, rules.max_total),
    ):
        if count >= limit:
            raise Conflict(
                "limit_exceeded",
                f"booking limit reached ({name} = {limit})",
                details={"limit": name, "value": limit, "active": count},
            )


async def take_place(session: AsyncSession, pool_id: uuid.UUID) -> bool:
    result = await session.execute(_TAKE, {"pool_id": pool_id})
    return result.rowcount == 1


_FREE_PLACES = select(SlotPool.capacity - SlotPool.booked - SlotPool.held).where(
    SlotPool.slot_id == bindparam("slot_id"), SlotPool.channel == bindparam("channel")
)


async def pool_is_full(session: AsyncSession, slot_id: uuid.UUID, channel: str) -> bool:
    """A look that costs no write (and no database work at all for a pool this worker saw full within
    ``sold_out_cache_seconds``). The write path re-checks with the conditional UPDATE."""
    if availability.known_full(slot_id, channel):
        return True
    free = (await session.execute(_FREE_PLACES, {"slot_id": slot_id, "channel": channel})).scalar()
    if free is not None and free <= 0:
        availability.mark_full(slot_id, channel)
        return True
    return False


def authorise_channel(
    principal: Principal, channel: str, schedule: Schedule, *, by_doctor: bool = False, online: bool = False
) -> None:
    if online:  # a patient booking an online clinic place through consultations.service.request_consultation
        principal.require_role(Role.patient)
        if channel != ONLINE_CHANNEL:
            raise Forbidden("channel_not_allowed", f"an online consultation books the online channel, not {channel}")
        return
    if channel == ONLINE_CHANNEL:
        raise Forbidden(
            "channel_not_allowed", "online clinic places are booked by requesting a consultation with slot_id"
        )
    if by_doctor:  # a doctor arranging an in-person visit from a consultation (the caller checked the consultation)
        principal.require_role(Role.doctor)
        if principal.hospital_id != schedule.hospital_id:
            raise Forbidden("other_hospital", "a doctor books visits at their own hospital only")
        if channel not in COUNTER_CHANNELS | PATIENT_CHANNELS:
            raise Forbidden("channel_not_allowed", f"a doctor books on onsite or platform, not {channel}")
        return
    if principal.partner_channel is not None:  # a patient acting through a partner app
        if channel != principal.partner_channel:
            raise Forbidden(
                "channel_not_allowed", f"a partner app books from its own pool, {principal.partner_channel}"
            )
    elif principal.role == Role.patient:
        if channel not in PATIENT_CHANNELS:
            raise Forbidden("channel_not_allowed", f"patients book on the platform channel, not {channel}")
    elif principal.role in (Role.hospital_admin, Role.platform_admin):
        principal.require_hospital(schedule.hospital_id)
        if channel not in COUNTER_CHANNELS | PATIENT_CHANNELS:
            raise Forbidden("channel_not_allowed", f"the counter books on onsite or platform, not {channel}")
    else:
        raise Forbidden("role_not_allowed", "patients and hospital counters book appointments")


async def check_reach(
    session: AsyncSession, principal: Principal, *, patient_id: uuid.UUID, slot_id: uuid.UUID
) -> None:
    """Through a partner app: 403 ``patient_not_in_context`` for a patient the token does not act for, 404 for
    an unknown slot, 403 ``hospital_not_granted`` for a slot at a hospital that has not granted the app."""
    reach = principal.reach
    if reach is None:
        return
    reach.require_patient(patient_id)
    hospital_id = await session.scalar(select(Slot.hospital_id).where(Slot.id == slot_id))
    if hospital_id is None:
        raise not_found("slot", slot_id)
    reach.require_hospital(hospital_id)


async def book(
    session: AsyncSession,
    *,
    principal: Principal,
    patient_id: uuid.UUID,
    slot_id: uuid.UUID,
    channel: str = "platform",
    rescheduled_from: Appointment | None = None,
    from_waitlist_pool: uuid.UUID | None = None,
    by_doctor: bool = False,
    online: bool = False,
) -> Appointment:
    """Book a place for a patient in a slot's channel pool.

    Raises 404 (slot or patient unknown to the caller), 403 ``booking_blocked`` / ``channel_not_allowed``,
    409 ``slot_full``, ``already_booked``, ``booking_window_closed``, ``limit_exceeded``, ``schedule_stopped``.
    ``from_waitlist_pool`` turns a held place into a booking instead of taking a free one. ``by_doctor``: the
    consulting doctor books the patient an in-person visit (``consultations.service.convert_to_visit``)."""
    await check_reach(session, principal, patient_id=patient_id, slot_id=slot_id)
    if principal.role == Role.patient:
        facts = await patients.require_linked(session, principal=principal, patient_id=patient_id)
    else:
        facts = await patients.facts(session, patient_id)
    pool, schedule, slot = await load_place(session, slot_id, channel)
    authorise_channel(principal, channel, schedule, by_doctor=by_doctor, online=online)
    zone = await directory.timezone_of(session, schedule.hospital_id)
    rules = await effective_rules(session, hospital_id=schedule.hospital_id, department_id=schedule.department_id)
    now = clock.now()
    check_window(schedule, pool, rules, zone, now)
    await serialise_patient(session, patient_id)
    await check_limits(
        session, rules=rules, patient_id=patient_id, schedule=schedule, today=clock.to_local(now, zone).date()
    )
    if from_waitlist_pool is not None:
        taken = await waitlist.convert_hold(session, pool_id=from_waitlist_pool)
    else:
        taken = await take_place(session, pool.id)
    if not taken:
        if from_waitlist_pool is None:
            availability.mark_full(slot_id, channel)
        raise Conflict(
            "slot_full", "no places left in this slot", details={"slot_id": str(slot_id), "channel": channel}
        )
    appt = Appointment(
        **appointment_values(principal, facts, pool, schedule, slot, now=now, rescheduled_from=rescheduled_from)
    )
    session.add(appt)  # flushed with the outbox, audit and idempotency rows at commit
    if rescheduled_from is None:
        emit(session, "appointment.booked", appt, principal.actor)
    return appt


def appointment_values(
    principal: Principal,
    patient: patients.PatientFacts,
    pool: SlotPool,
    schedule: Schedule,
    slot: Slot,
    *,
    now: datetime,
    rescheduled_from: Appointment | None = None,
) -> dict[str, Any]:
    """The appointment row's values for a place just taken in ``pool``."""
    return dict(
        id=new_id(),
        created_at=now,
        hospital_id=schedule.hospital_id,
        region=patient.region,
        patient_id=patient.id,
        booked_by_user_id=principal.user_id,
        schedule_id=schedule.id,
        slot_id=slot.id,
        pool_id=pool.id,
        channel=pool.channel,
        practitioner_id=schedule.practitioner_id,
        department_id=schedule.department_id,
        service_date=schedule.service_date,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        fee_fen=schedule.fee_fen,
        status=AppointmentStatus.booked,
        rescheduled_from_id=rescheduled_from.id if rescheduled_from else None,
    )


async def complete_online(session: AsyncSession, *, appointment_id: uuid.UUID, actor: str) -> None:
    """An online clinic appointment whose consultation took place: booked -> completed (no counter check-in)."""
    result = await session.execute(
        update(Appointment)
        .where(Appointment.id == appointment_id, Appointment.status == AppointmentStatus.booked)
        .values(status=AppointmentStatus.completed, completed_at=clock.now())
    )
    if result.rowcount == 1:
        emit(session, "appointment.completed", await get_appointment(session, appointment_id), actor)


async def release_online(session: AsyncSession, *, appointment_id: uuid.UUID, reason: str) -> None:
    """An online clinic appointment whose consultation never started: cancelled by the system, not a no-show
    (the doctor did not start it; the patient is not to blame)."""
    appt = await get_appointment(session, appointment_id)
    if appt.status != AppointmentStatus.booked:
        return
    await _mark_cancelled(session, appt, by="system", reason=reason)
    emit(session, "appointment.cancelled", appt, "system", reason=reason, cancelled_by="system")


async def get_appointment(session: AsyncSession, appointment_id: uuid.UUID) -> Appointment:
    appt = await session.get(Appointment, appointment_id)
    if appt is None:
        raise not_found("appointment", appointment_id)
    return appt


async def authorised_appointment(
    session: AsyncSession, *, principal: Principal, appointment_id: uuid.UUID
) -> Appointment:
    """The appointment, if the caller may act on it: a linked patient account (through a partner app, within
    the token's reach), staff of its hospital."""
    appt = await get_appointment(session, appointment_id)
    if principal.role == Role.patient:
        if principal.reach is not None and not principal.reach.covers(
            hospital_id=appt.hospital_id, patient_id=appt.patient_id
        ):
            raise not_found("appointment", appointment_id)
        if await patients.linked_relation(session, user_id=principal.user_id, patient_id=appt.patient_id) is None:
            raise not_found("appointment", appointment_id)
    elif principal.role == Role.doctor:
        if principal.hospital_id != appt.hospital_id or principal.practitioner_id != appt.practitioner_id:
            raise not_found("appointment", appointment_id)
    elif principal.role in (Role.hospital_admin, Role.platform_admin):
        if not principal.can_manage_hospital(appt.hospital_id):
            raise not_found("appointment", appointment_id)
    else:
        raise Forbidden("role_not_allowed", "this role does not handle appointments")
    return appt


async def _mark_cancelled(session: AsyncSession, appt: Appointment, *, by: str, reason: str) -> None:
    now = clock.now()
    result = await session.execute(
        update(Appointment)
        .where(Appointment.id == appt.id, Appointment.status == AppointmentStatus.booked)
        .values(status=AppointmentStatus.cancelled, cancelled_at=now, cancelled_by=by, cancel_reason=reason)
    )
    if result.rowcount != 1:
        await session.refresh(appt)
        raise Conflict(
            "not_cancellable",
            f"an appointment that is {appt.status} cannot be cancelled",
            details={"status": str(appt.status)},
        )
    await session.refresh(appt)
    await waitlist.release_place(session, pool_id=appt.pool_id, schedule_id=appt.schedule_id)


async def _check_deadline(session: AsyncSession, principal: Principal, appt: Appointment) -> None:
    if principal.role != Role.patient:
        return  # the hospital may cancel at any time
    rules = await effective_rules(session, hospital_id=appt.hospital_id, department_id=appt.department_id)
    deadline = appt.starts_at - timedelta(minutes=rules.cancel_deadline_minutes)
    if clock.now() > deadline:
        raise Conflict(
            "cancellation_deadline_passed",
            "it is too late to cancel or change this appointment",
            details={"deadline": deadline.isoformat()},
        )


async def cancel(session: AsyncSession, *, principal: Principal, appointment_id: uuid.UUID, reason: str) -> Appointment:
    """Cancel a booked appointment and give the place back (or hold it for the first on the waitlist).

    Patients must cancel before the deadline (409 ``cancellation_deadline_passed``)."""
    appt = await authorised_appointment(session, principal=principal, appointment_id=appointment_id)
    if appt.status != AppointmentStatus.booked:
        raise Conflict(
            "not_cancellable",
            f"an appointment that is {appt.status} cannot be cancelled",
            details={"status": str(appt.status)},
        )
    await _check_deadline(session, principal, appt)
    by = "patient" if principal.role == Role.patient else "hospital"
    await _mark_cancelled(session, appt, by=by, reason=reason)
    emit(session, "appointment.cancelled", appt, principal.actor, reason=reason, cancelled_by=by)
    return appt


async def cancel_all_booked(session: AsyncSession, *, hospital_id: uuid.UUID, reason: str, actor: str) -> int:
    """Cancel every booked appointment at a hospital, by the system (a partner app's sandbox reset): each place
    goes back to its pool (or to the first on the waitlist), each an ``appointment.cancelled`` event."""
    rows = (
        await session.scalars(
            select(Appointment).where(
                Appointment.hospital_id == hospital_id, Appointment.status == AppointmentStatus.booked
            )
        )
    ).all()
    for appt in rows:
        await _mark_cancelled(session, appt, by="system", reason=reason)
        emit(session, "appointment.cancelled", appt, actor, reason=reason, cancelled_by="system")
    return len(rows)


async def cancel_for_stopped_schedule(session: AsyncSession, *, appt: Appointment, reason: str, actor: str) -> None:
    """Cancel one appointment of a stopped session (pools were already emptied by the stop)."""
    await session.execute(
        update(Appointment)
        .where(Appointment.id == appt.id, Appointment.status.in_(ACTIVE_STATUSES))
        .values(
            status=AppointmentStatus.cancelled, cancelled_at=clock.now(), cancelled_by="hospital", cancel_reason=reason
        )
    )
    await session.refresh(appt)
    emit(session, "appointment.cancelled", appt, actor, reason=reason, cancelled_by="hospital")


async def reschedule(
    session: AsyncSession, *, principal: Principal, appointment_id: uuid.UUID, new_slot_id: uuid.UUID
) -> Appointment:
    """Move a booking to another slot, atomically: the new place is taken and the old released, or nothing
    changes. The same rules as booking apply to the new place, and the cancellation deadline to the old."""
    old = await authorised_appointment(session, principal=principal, appointment_id=appointment_id)
    if old.status != AppointmentStatus.booked:
        raise Conflict("not_reschedulable", f"an appointment that is {old.status} cannot be rescheduled")
    if old.slot_id == new_slot_id:
        raise InvalidInput("same_slot", "the appointment is already in this slot", details={"field": "slot_id"})
    await _check_deadline(session, principal, old)
    await _mark_cancelled(
        session, old, by="patient" if principal.role == Role.patient else "hospital", reason="rescheduled"
    )
    new = await book(
        session,
        principal=principal,
        patient_id=old.patient_id,
        slot_id=new_slot_id,
        channel=old.channel,
        rescheduled_from=old,
    )
    emit(
        session,
        "appointment.rescheduled",
        new,
        principal.actor,
        previous_slot_id=old.slot_id,
        previous_schedule_id=old.schedule_id,
        previous_starts_at=old.starts_at,
    )
    return new


async def my_appointments(
    session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID | None, include_past: bool
) -> list[Appointment]:
    linked = await patients.linked_patient_ids(session, user_id=principal.user_id)
    if principal.reach is not None:
        linked = [p for p in linked if p in principal.reach.patients]
    if patient_id is not None:
        if patient_id not in linked:
            raise not_found("patient", patient_id)
        linked = [patient_id]
    query = select(Appointment).where(Appointment.patient_id.in_(linked))
    if principal.reach is not None:
        query = query.where(Appointment.hospital_id.in_(principal.reach.hospitals))
    if not include_past:
        query = query.where(Appointment.service_date >= clock.now().date() - timedelta(days=1))
    return list((await session.scalars(query.order_by(Appointment.starts_at.desc()).limit(200))).all())
