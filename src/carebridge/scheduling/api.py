"""Scheduling endpoints for patients, doctors and the public (hospital admin endpoints: ``admin_api``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.dependencies import (
    current_principal,
    get_db,
    optional_partner,
    optional_principal,
    partner_scope,
    require,
)
from carebridge.auth.models import Role
from carebridge.auth.principal import PartnerReach, Principal
from carebridge.core import clock, direct, idempotency, live
from carebridge.core.errors import Conflict, Forbidden, InvalidInput
from carebridge.core.handlers import FastJSONResponse
from carebridge.database.engine import Database
from carebridge.directory import service as directory
from carebridge.patients import service as patients
from carebridge.scheduling import booking, desk, queue_board, schedules, visits, waitlist_actions
from carebridge.scheduling.admin_api import router as admin_router
from carebridge.scheduling.present import appointments_out, schedules_out
from carebridge.scheduling.schemas import (
    AppointmentOut,
    BookIn,
    CancelIn,
    QueueEntryOut,
    QueuePositionOut,
    RescheduleIn,
    ScheduleOut,
    WaitlistIn,
    WaitlistOut,
)

router = APIRouter(prefix="/api/v1", tags=["scheduling"])
DIRECT = direct.Routes()  # served before FastAPI's router walk (core.direct)
MAX_RANGE_DAYS = 31
QUEUE_REFRESH_SECONDS = 5.0
DEFAULT_ZONE = "Asia/Shanghai"  # "today" when a request names no day (hospitals carry their own zone)


def _range(date_from: date | None, date_to: date | None) -> tuple[date, date]:
    start = date_from or clock.local_today(DEFAULT_ZONE)
    end = date_to or start + timedelta(days=13)
    if end < start or (end - start).days > MAX_RANGE_DAYS:
        raise InvalidInput(
            "bad_date_range",
            f"date_to must be within {MAX_RANGE_DAYS} days after date_from",
            details={"field": "date_to"},
        )
    return start, end


def _channels(channel: str | None, partner: PartnerReach | None) -> set[str]:
    """The pools a schedule answer shows: the platform's (or the online clinic's) to the public, the app's own
    pool to a partner app's token."""
    if partner is None:
        return {channel or "platform"}
    if channel is not None:
        raise Forbidden("channel_not_allowed", f"a partner app sees and books its own pool, {partner.channel}")
    return {partner.channel}


@router.get(
    "/schedules",
    response_model=list[ScheduleOut],
    summary="Open sessions with free places (public: the platform's pool; a partner app's token: its own pool)",
)
@partner_scope("Slot", "s")
async def find_schedules(
    hospital_id: uuid.UUID | None = None,
    department_id: uuid.UUID | None = None,
    practitioner_id: uuid.UUID | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    channel: Literal["platform", "online"] | None = None,
    partner: PartnerReach | None = Depends(optional_partner),
    db: Database = Depends(get_db),
) -> list[ScheduleOut]:
    if not (hospital_id or department_id or practitioner_id):
        raise InvalidInput(
            "filter_required", "give hospital_id, department_id or practitioner_id", details={"field": "hospital_id"}
        )
    channels = _channels(channel, partner)
    if partner is not None and hospital_id is not None:
        partner.require_hospital(hospital_id)
    start, end = _range(date_from, date_to)
    async with db.read() as session:
        rows = await schedules.schedules_for(
            session,
            hospital_id=hospital_id,
            department_id=department_id,
            practitioner_id=practitioner_id,
            date_from=start,
            date_to=end,
            hospitals=partner.hospitals if partner is not None else None,
        )
        pools = await schedules.pools_by_schedule(session, [s.id for s in rows])
        # ``online``: the online clinic sessions' places, booked by requesting a consultation with a slot_id
        return await schedules_out(session, rows, pools, None, channels=channels, tz={})


@router.get(
    "/schedules/{schedule_id}",
    response_model=ScheduleOut,
    summary="A session and its slots (public: the platform's pool; a partner app's token: its own pool)",
)
@partner_scope("Slot", "r")
async def get_schedule(
    schedule_id: uuid.UUID,
    channel: Literal["platform", "online"] | None = None,
    partner: PartnerReach | None = Depends(optional_partner),
    db: Database = Depends(get_db),
) -> ScheduleOut:
    channels = _channels(channel, partner)
    async with db.read() as session:
        schedule = await schedules.get_schedule(session, schedule_id)
        if partner is not None:
            partner.require_hospital(schedule.hospital_id)
        hospital = await directory.get_hospital(session, schedule.hospital_id)
        pools = await schedules.pools_by_schedule(session, [schedule_id])
        slots = {schedule_id: await schedules.slots_of(session, schedule_id)}
        return (
            await schedules_out(
                session,
                [schedule],
                pools,
                slots,
                channels=channels,
                tz={hospital.id: hospital.timezone},
            )
        )[0]


@router.post(
    "/appointments",
    response_model=AppointmentOut,
    status_code=201,
    summary="Book a slot (send an Idempotency-Key to make retries safe)",
)
@partner_scope("Appointment", "c")
async def book(
    body: BookIn,
    request: Request,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> JSONResponse:
    # The caller and the database are taken here rather than as dependencies: at a number release this is the
    # busiest endpoint, and each dependency FastAPI solves costs about as much as the sold-out answer itself.
    principal = await current_principal(await optional_principal(request))
    db: Database = request.app.state.db
    key = idempotency.check_key(idempotency_key)
    channel = body.channel or principal.partner_channel or "platform"

    def payload_hash() -> str:  # made only when needed: a sold-out answer from memory needs none
        return idempotency.request_hash(body.model_dump(mode="json"))

    if desk.accepts(principal, channel):

        async def reach(session: AsyncSession) -> None:  # a partner app's token: its patients and hospitals first
            await booking.check_reach(session, principal, patient_id=body.patient_id, slot_id=body.slot_id)

        status, answer = await desk.desk_for(db).book(
            principal,
            patient_id=body.patient_id,
            slot_id=body.slot_id,
            channel=channel,
            key=key,
            payload_hash=payload_hash,
            check=reach if principal.reach is not None else None,
        )
        return FastJSONResponse(answer, status_code=status)

    async def check(session: AsyncSession) -> None:  # a sold-out pool costs no write
        await booking.check_reach(session, principal, patient_id=body.patient_id, slot_id=body.slot_id)
        if await booking.pool_is_full(session, body.slot_id, channel):
            raise Conflict(
                "slot_full",
                "no places left in this slot",
                details={"slot_id": str(body.slot_id), "channel": channel},
            )

    async def write(session: AsyncSession) -> dict[str, Any]:
        appt = await booking.book(
            session, principal=principal, patient_id=body.patient_id, slot_id=body.slot_id, channel=channel
        )
        return (await appointments_out(session, principal, [appt], purpose="booking"))[0].model_dump(mode="json")

    status, answer = await idempotency.write_once(
        db,
        user_id=principal.user_id,
        key=key,
        operation="appointment.book",
        payload_hash=payload_hash(),
        check=check,
        write=write,
        duplicate=Conflict("already_booked", "the patient already has a booking in this session"),
    )
    return FastJSONResponse(answer, status_code=status)


@DIRECT.post("/api/v1/appointments", endpoint=book)
async def book_direct(request: Request) -> JSONResponse:
    return await book(await direct.body(request, BookIn), request, request.headers.get("idempotency-key"))


@router.get("/appointments", response_model=list[AppointmentOut], summary="Your (and your family's) appointments")
@partner_scope("Appointment", "s")
async def my_appointments(
    patient_id: uuid.UUID | None = None,
    include_past: bool = False,
    principal: Principal = Depends(require(Role.patient)),
    db: Database = Depends(get_db),
) -> list[AppointmentOut]:
    async with db.transaction() as session:
        rows = await booking.my_appointments(
            session, principal=principal, patient_id=patient_id, include_past=include_past
        )
        return await appointments_out(session, principal, rows, purpose="own_appointments")


@router.get("/appointments/{appointment_id}", response_model=AppointmentOut)
@partner_scope("Appointment", "r")
async def get_appointment(
    appointment_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> AppointmentOut:
    async with db.transaction() as session:
        appt = await booking.authorised_appointment(session, principal=principal, appointment_id=appointment_id)
        return (await appointments_out(session, principal, [appt], purpose="appointment"))[0]


async def _act(db: Database, principal: Principal, action, **kwargs) -> AppointmentOut:  # type: ignore[no-untyped-def]
    async with db.transaction() as session:
        appt = await action(session, principal=principal, **kwargs)
        return (await appointments_out(session, principal, [appt], purpose="appointment"))[0]


@router.post("/appointments/{appointment_id}/cancel", response_model=AppointmentOut)
@partner_scope("Appointment", "u")
async def cancel(
    appointment_id: uuid.UUID,
    body: CancelIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> AppointmentOut:
    return await _act(db, principal, booking.cancel, appointment_id=appointment_id, reason=body.reason)


@router.post(
    "/appointments/{appointment_id}/reschedule",
    response_model=AppointmentOut,
    summary="Move to another slot: all or nothing",
)
@partner_scope("Appointment", "u")
async def reschedule(
    appointment_id: uuid.UUID,
    body: RescheduleIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> AppointmentOut:
    try:
        return await _act(db, principal, booking.reschedule, appointment_id=appointment_id, new_slot_id=body.slot_id)
    except IntegrityError:
        raise Conflict("already_booked", "the patient already has a booking in that session") from None


@router.post("/appointments/{appointment_id}/check-in", response_model=AppointmentOut)
async def check_in(
    appointment_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> AppointmentOut:
    return await _act(db, principal, visits.check_in, appointment_id=appointment_id)


@router.post("/appointments/{appointment_id}/complete", response_model=AppointmentOut)
async def complete(
    appointment_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> AppointmentOut:
    return await _act(db, principal, visits.complete, appointment_id=appointment_id)


async def _position(db: Database, principal: Principal, appointment_id: uuid.UUID) -> QueuePositionOut:
    async with db.read() as session:
        appt = await booking.authorised_appointment(session, principal=principal, appointment_id=appointment_id)
        pos = await queue_board.position(session, appointment_id=appt.id, schedule_id=appt.schedule_id)
    return QueuePositionOut.model_validate(pos)


@router.get("/appointments/{appointment_id}/queue", response_model=QueuePositionOut, summary="Your place in the queue")
@partner_scope("Appointment", "r")
async def queue_position(
    appointment_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> QueuePositionOut:
    return await _position(db, principal, appointment_id)


@router.get("/appointments/{appointment_id}/queue/stream", summary="Your place in the queue, live (Server-Sent Events)")
@partner_scope("Appointment", "r")
async def queue_stream(
    appointment_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> StreamingResponse:
    live.bind(asyncio.get_running_loop())
    first = await _position(db, principal, appointment_id)  # authorises before the stream starts
    first_version = live.version(first.schedule_id)

    async def events() -> AsyncIterator[bytes]:
        last = None
        current, seen = first, first_version
        while True:
            payload = current.model_dump_json()
            if payload != last:
                yield b"event: position\ndata: " + payload.encode() + b"\n\n"
                last = payload
            else:
                yield b": keep-alive\n\n"
            if current.state in ("done", "left") or await request.is_disconnected():
                return
            await live.wait_for_change(current.schedule_id, QUEUE_REFRESH_SECONDS, seen)
            seen = live.version(current.schedule_id)  # read before the position: a later change wakes us again
            current = await _position(db, principal, appointment_id)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get(
    "/schedules/{schedule_id}/queue", response_model=list[QueueEntryOut], summary="The session's queue (its doctor)"
)
async def session_queue(
    schedule_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[QueueEntryOut]:
    async with db.read() as session:
        schedule = await schedules.get_schedule(session, schedule_id)
        await visits._require_treating(session, principal, schedule)
        entries = await queue_board.board(session, schedule_id)
        people = await patients.describe(
            session, principal=principal, patient_ids=[e.patient_id for e in entries], purpose="queue"
        )
    return [
        QueueEntryOut(
            appointment_id=e.appointment_id,
            number=e.number,
            state=str(e.state),
            patient_name=people[e.patient_id].name,
            checked_in_at=e.checked_in_at,
            called_at=e.called_at,
        )
        for e in entries
    ]


@router.post(
    "/schedules/{schedule_id}/queue/call-next",
    response_model=AppointmentOut | None,
    summary="Finish the current patient and call the next number",
)
async def call_next(
    schedule_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> AppointmentOut | None:
    async with db.transaction() as session:
        appt = await visits.call_next(session, principal=principal, schedule_id=schedule_id)
        if appt is None:
            return None
        return (await appointments_out(session, principal, [appt], purpose="queue"))[0]


@router.get("/doctor/schedules", response_model=list[ScheduleOut], summary="The calling doctor's sessions")
async def doctor_schedules(
    date_from: date | None = None,
    date_to: date | None = None,
    principal: Principal = Depends(require(Role.doctor)),
    db: Database = Depends(get_db),
) -> list[ScheduleOut]:
    start, end = _range(date_from, date_to)
    async with db.read() as session:
        rows = await schedules.schedules_for(
            session,
            practitioner_id=principal.practitioner_id,
            hospital_id=principal.hospital_id,
            date_from=start,
            date_to=end,
        )
        pools = await schedules.pools_by_schedule(session, [s.id for s in rows])
        return await schedules_out(session, rows, pools, None, channels=None, tz={})


@router.post("/waitlist", response_model=WaitlistOut, status_code=201, summary="Wait for a place in a full session")
async def join_waitlist(
    body: WaitlistIn, principal: Principal = Depends(require(Role.patient)), db: Database = Depends(get_db)
) -> WaitlistOut:
    try:
        async with db.transaction() as session:
            entry = await waitlist_actions.join(
                session, principal=principal, patient_id=body.patient_id, schedule_id=body.schedule_id
            )
    except IntegrityError:
        raise Conflict("already_waiting", "the patient is already on this waitlist") from None
    return WaitlistOut.model_validate(entry)


@router.get("/waitlist", response_model=list[WaitlistOut])
async def my_waitlist(
    principal: Principal = Depends(require(Role.patient)), db: Database = Depends(get_db)
) -> list[WaitlistOut]:
    async with db.read() as session:
        return [WaitlistOut.model_validate(e) for e in await waitlist_actions.my_entries(session, principal=principal)]


@router.post("/waitlist/{entry_id}/accept", response_model=AppointmentOut, status_code=201)
async def accept_offer(
    entry_id: uuid.UUID, principal: Principal = Depends(require(Role.patient)), db: Database = Depends(get_db)
) -> AppointmentOut:
    return await _act(db, principal, waitlist_actions.accept, entry_id=entry_id)


@router.post("/waitlist/{entry_id}/leave", response_model=WaitlistOut)
async def leave_waitlist(
    entry_id: uuid.UUID, principal: Principal = Depends(require(Role.patient)), db: Database = Depends(get_db)
) -> WaitlistOut:
    async with db.transaction() as session:
        return WaitlistOut.model_validate(await waitlist_actions.leave(session, principal=principal, entry_id=entry_id))


# The hospital admin's routes come after the patients' ones: FastAPI tries a router's routes in order (more than
# once per request), and the 7 a.m. surge is POST /appointments (no path is shared, so the order decides nothing
# else).
router.include_router(admin_router)
