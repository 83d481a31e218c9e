"""Follow-up reminders: the doctor names a day; on that day (09:00 at the hospital) the patient is told in-app."""

from __future__ import annotations

import uuid
from datetime import date, time

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.principal import Principal
from carebridge.consultations import service
from carebridge.consultations.models import Consultation, ConsultationStatus, FollowUp, FollowUpStatus
from carebridge.core import clock
from carebridge.core.errors import Conflict, InvalidInput
from carebridge.directory import service as directory
from carebridge.events.outbox import append_event
from carebridge.notifications.service import notify
from carebridge.patients import service as patients

REMIND_AT = time(9, 0)
MAX_DAYS_AHEAD = 366
MAX_PER_CONSULTATION = 5


def _emit(session: AsyncSession, type_: str, f: FollowUp, region: str, actor: str) -> None:
    append_event(
        session,
        type_,
        subject_type="follow_up",
        subject_id=f.id,
        hospital_id=f.hospital_id,
        region=region,
        actor=actor,
        data={
            "follow_up_id": f.id,
            "consultation_id": f.consultation_id,
            "patient_id": f.patient_id,
            "practitioner_id": f.practitioner_id,
            "due_at": f.due_at,
        },
    )


async def schedule(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID, due_on: date, note: str | None
) -> FollowUp:
    """The consulting doctor sets a reminder. 422 ``bad_follow_up_date`` unless it is tomorrow to a year ahead."""
    service.require_doctor(principal)
    c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
    if c.status not in (ConsultationStatus.in_progress, ConsultationStatus.closed):
        raise Conflict("consultation_not_started", "follow-ups are set during or after a consultation")
    hospital = await directory.get_hospital(session, c.hospital_id)
    today = clock.local_today(hospital.timezone)
    if not 0 < (due_on - today).days <= MAX_DAYS_AHEAD:
        raise InvalidInput(
            "bad_follow_up_date",
            f"a follow-up is from tomorrow to {MAX_DAYS_AHEAD} days ahead",
            details={"field": "due_on"},
        )
    existing = await session.scalars(select(FollowUp.id).where(FollowUp.consultation_id == c.id))
    if len(list(existing)) >= MAX_PER_CONSULTATION:
        raise Conflict("too_many_follow_ups", f"at most {MAX_PER_CONSULTATION} follow-ups per consultation")
    f = FollowUp(
        consultation_id=c.id,
        hospital_id=c.hospital_id,
        patient_id=c.patient_id,
        practitioner_id=c.practitioner_id,
        due_at=clock.local_datetime(due_on, REMIND_AT, hospital.timezone),
        note=note,
        status=FollowUpStatus.scheduled,
    )
    session.add(f)
    await session.flush()
    _emit(session, "follow_up.scheduled", f, c.region, principal.actor)
    return f


async def for_consultation(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID
) -> list[FollowUp]:
    c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
    rows = await session.scalars(select(FollowUp).where(FollowUp.consultation_id == c.id).order_by(FollowUp.due_at))
    return list(rows)


async def remind_due(session: AsyncSession, *, limit: int = 500) -> int:
    """Tell patients whose follow-up day has come (the sweep calls this; each reminder is claimed once)."""
    now = clock.now()
    due = list(
        await session.scalars(
            select(FollowUp).where(FollowUp.status == FollowUpStatus.scheduled, FollowUp.due_at <= now).limit(limit)
        )
    )
    done = 0
    for f in due:
        claimed = await session.execute(
            update(FollowUp)
            .where(FollowUp.id == f.id, FollowUp.status == FollowUpStatus.scheduled)
            .values(status=FollowUpStatus.notified, notified_at=now)
        )
        if claimed.rowcount != 1:
            continue
        c = await session.get(Consultation, f.consultation_id)
        assert c is not None
        practitioner = await directory.get_practitioner(session, f.practitioner_id)
        for user_id in await patients.account_ids_for(session, f.patient_id):
            notify(
                session,
                user_id=user_id,
                kind="follow_up.due",
                title="复诊提醒 Follow-up due",
                body=f"{practitioner.name} asked you to follow up today.",  # the note stays in the sealed row
                data={"consultation_id": str(f.consultation_id), "follow_up_id": str(f.id)},
            )
        _emit(session, "follow_up.due", f, c.region, "system")
        done += 1
    return done
