"""Passing a consultation on: to a colleague at the same hospital (hand-over), or to an in-person visit
booked through the scheduling engine (conversion). Both leave a line from the platform in the chat."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.principal import Principal
from carebridge.consultations import chat, hub, service
from carebridge.consultations.models import Consultation, ConsultationStatus
from carebridge.core import clock
from carebridge.core.errors import Conflict
from carebridge.directory import service as directory
from carebridge.scheduling import booking


async def _system_message(session: AsyncSession, c: Consultation, text: str) -> None:
    """A line from the platform in the chat (stored in order, delivered after commit)."""
    item = chat.Outgoing(
        consultation_id=c.id, region=c.region, sender="system", sender_user_id=None, client_id=None, body=text
    )
    (stored,) = await chat.store_messages(session, [item])
    if isinstance(stored, chat.Stored):
        frame = chat.message_frame(
            seq=stored.seq, sender="system", client_id=None, body=text, attachment=None, sent_at=stored.sent_at
        )
        await hub.publish(session, c.id, frame)


async def hand_over(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID, practitioner_id: uuid.UUID, reason: str
) -> Consultation:
    """The doctor passes an accepted or running consultation to a colleague at the same hospital, who must be
    eligible there today (R3, R4). 409 ``same_practitioner``, ``consultation_open`` (the patient already
    consults the colleague), ``bad_consultation_state``. The old doctor's sockets close (4403 ``handed_over``)."""
    service.require_doctor(principal)
    c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
    if practitioner_id == c.practitioner_id:
        raise Conflict("same_practitioner", "the consultation is already this practitioner's")
    today = clock.to_local(clock.now(), await directory.timezone_of(session, c.hospital_id)).date()
    department_id = (
        await service.consulting_department(
            session, practitioner_id=practitioner_id, hospital_id=c.hospital_id, on=today
        )
    ).department_id
    await service.refuse_second_open(session, patient_id=c.patient_id, practitioner_id=practitioner_id)
    previous = c.practitioner_id
    result = await session.execute(
        update(Consultation)
        .where(
            Consultation.id == c.id,
            Consultation.practitioner_id == previous,
            Consultation.status.in_((ConsultationStatus.accepted, ConsultationStatus.in_progress)),
        )
        .values(practitioner_id=practitioner_id, department_id=department_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        await session.refresh(c)
        raise Conflict(
            "bad_consultation_state",
            f"a consultation that is {c.status.value} cannot be handed over",
            details={"status": c.status.value},
        )
    await session.refresh(c)
    service.emit(
        session, "consultation.handed_over", c, principal.actor, previous_practitioner_id=previous, reason=reason
    )
    if c.status == ConsultationStatus.in_progress:
        await _system_message(session, c, f"handed_over: {reason}")
    await hub.publish(session, c.id, service.status_frame(c))
    return c


async def convert_to_visit(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID, slot_id: uuid.UUID, channel: str
) -> tuple[Consultation, Any]:
    """The doctor books the patient an in-person visit at this hospital (the booking engine's rules apply:
    ``slot_full``, ``limit_exceeded``, ...) and closes the consultation, in one transaction."""
    service.require_doctor(principal)
    c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
    if c.status not in (ConsultationStatus.accepted, ConsultationStatus.in_progress):
        raise Conflict(
            "bad_consultation_state",
            f"a consultation that is {c.status.value} cannot be converted",
            details={"status": c.status.value},
        )
    appt = await booking.book(
        session, principal=principal, patient_id=c.patient_id, slot_id=slot_id, channel=channel, by_doctor=True
    )
    await session.flush()
    reason = "converted to an in-person visit"
    if c.status == ConsultationStatus.in_progress:
        await _system_message(session, c, f"visit_booked: {appt.starts_at.isoformat()}")
    await service.move(
        session,
        c,
        allowed=(ConsultationStatus.accepted, ConsultationStatus.in_progress),
        to=ConsultationStatus.closed,
        values={"ended_at": clock.now(), "ended_by": "doctor", "end_reason": reason},
    )
    service.emit(session, "consultation.closed", c, principal.actor, reason=reason, appointment_id=appt.id)
    return c, appt
