"""What patients do with the waitlist: join a full session, accept an offered place, leave."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.core.errors import Conflict, not_found
from carebridge.patients import service as patients
from carebridge.scheduling import booking
from carebridge.scheduling.models import (
    Appointment,
    Schedule,
    ScheduleStatus,
    SlotPool,
    WaitlistEntry,
    WaitlistStatus,
)


async def join(
    session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID, schedule_id: uuid.UUID
) -> WaitlistEntry:
    """Wait for a place in a full session. 409 ``places_available`` if the platform pool still has places."""
    principal.require_role(Role.patient)
    await patients.require_linked(session, principal=principal, patient_id=patient_id)
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise not_found("schedule", schedule_id)
    if schedule.status != ScheduleStatus.open or schedule.ends_at <= clock.now():
        raise Conflict("schedule_stopped", "this session is not open")
    free = await session.scalar(
        select(func.coalesce(func.sum(SlotPool.capacity - SlotPool.booked - SlotPool.held), 0)).where(
            SlotPool.schedule_id == schedule_id,
            SlotPool.channel.in_(booking.PATIENT_CHANNELS),
            SlotPool.starts_at > clock.now(),
        )
    )
    if int(free or 0) > 0:
        raise Conflict("places_available", "this session still has places: book one instead")
    if await session.scalar(
        select(Appointment.id).where(
            Appointment.patient_id == patient_id,
            Appointment.schedule_id == schedule_id,
            Appointment.status.in_(("booked", "checked_in")),
        )
    ):
        raise Conflict("already_booked", "the patient already has a booking in this session")
    if await session.scalar(
        select(WaitlistEntry.id).where(
            WaitlistEntry.patient_id == patient_id,
            WaitlistEntry.schedule_id == schedule_id,
            WaitlistEntry.status.in_(("waiting", "offered")),
        )
    ):
        raise Conflict("already_waiting", "the patient is already on this waitlist")
    entry = WaitlistEntry(
        hospital_id=schedule.hospital_id, schedule_id=schedule_id, patient_id=patient_id, user_id=principal.user_id
    )
    session.add(entry)
    await session.flush()
    return entry


async def _own_entry(session: AsyncSession, principal: Principal, entry_id: uuid.UUID) -> WaitlistEntry:
    entry = await session.get(WaitlistEntry, entry_id)
    if (
        entry is None
        or principal.role != Role.patient
        or await patients.linked_relation(session, user_id=principal.user_id, patient_id=entry.patient_id) is None
    ):
        raise not_found("waitlist_entry", entry_id)
    return entry


async def accept(session: AsyncSession, *, principal: Principal, entry_id: uuid.UUID) -> Appointment:
    """Book the held place. 409 ``offer_expired`` once the hold has run out."""
    entry = await _own_entry(session, principal, entry_id)
    if entry.status != WaitlistStatus.offered or entry.offered_pool_id is None:
        raise Conflict("no_offer", "there is no place on offer for this entry")
    if entry.hold_expires_at is not None and entry.hold_expires_at <= clock.now():
        raise Conflict("offer_expired", "the held place has been passed on")
    claimed = await session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.id == entry.id, WaitlistEntry.status == WaitlistStatus.offered)
        .values(status=WaitlistStatus.booked)
    )
    if claimed.rowcount != 1:
        raise Conflict("no_offer", "there is no place on offer for this entry")
    pool = await session.get(SlotPool, entry.offered_pool_id)
    assert pool is not None
    appt = await booking.book(
        session,
        principal=principal,
        patient_id=entry.patient_id,
        slot_id=pool.slot_id,
        channel=pool.channel,
        from_waitlist_pool=pool.id,
    )
    entry.appointment_id = appt.id
    return appt


async def leave(session: AsyncSession, *, principal: Principal, entry_id: uuid.UUID) -> WaitlistEntry:
    """Leave the waitlist; a place on offer passes on to the next in line at once."""
    entry = await _own_entry(session, principal, entry_id)
    if entry.status not in (WaitlistStatus.waiting, WaitlistStatus.offered):
        raise Conflict("not_waiting", "this entry is no longer on the waitlist")
    if entry.status == WaitlistStatus.offered:
        entry.hold_expires_at = clock.now()  # the sweep passes the place on
        from carebridge.scheduling.waitlist import expire_offers

        await session.flush()
        await expire_offers(session)
        await session.refresh(entry)
    entry.status = WaitlistStatus.cancelled
    return entry


async def my_entries(session: AsyncSession, *, principal: Principal) -> list[WaitlistEntry]:
    ids = await patients.linked_patient_ids(session, user_id=principal.user_id)
    return list(
        (
            await session.scalars(
                select(WaitlistEntry)
                .where(WaitlistEntry.patient_id.in_(ids))
                .order_by(WaitlistEntry.created_at.desc())
                .limit(100)
            )
        ).all()
    )
