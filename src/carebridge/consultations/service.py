"""Online consultations: who may ask whom, and the life of a consultation.

A consultation is an online follow-up visit. It is refused unless the patient has an offline diagnosis on record
(rule R1: no first visit online), the practitioner is active, filed at that internet hospital today (R4) and has
practised independently for at least ``min_practice_years`` (R3), and, for a child under 6, a guardian is named
by a linked family account (R10). Each refusal is an error naming its rule in ``details.rule``.

States: requested -> accepted -> in_progress -> closed; or requested -> rejected / expired / cancelled;
accepted -> cancelled. Every change is an event (``consultation.*``) in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.consultations import calls, hub, icd10
from carebridge.consultations.models import (
    OPEN_STATUSES,
    Consultation,
    ConsultationKind,
    ConsultationStatus,
    OfflineDiagnosis,
)
from carebridge.core import audit, clock
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, not_found
from carebridge.directory import service as directory
from carebridge.directory.models import FilingKind, PractitionerStatus
from carebridge.events.outbox import Event, append_event
from carebridge.patients import service as patients
from carebridge.patients.models import Relation
from carebridge.scheduling import booking
from carebridge.supervision import precheck as supervision

MAX_LIST = 200
GUARDIAN_AGE = 6  # rule R10


class Policy:
    """Set from settings by the app factory."""

    request_minutes: int = 30
    min_practice_years: int = 3


def configure(*, request_minutes: int, min_practice_years: int) -> None:
    Policy.request_minutes = request_minutes
    Policy.min_practice_years = min_practice_years


def normalise_icd10(code: str, field: str = "icd10_code") -> str:
    """An ICD-10 code in its dotted form (``E11.9``); 422 ``unknown_icd10_code`` if the registry lacks it."""
    code = code.strip().upper()
    if not icd10.is_valid_item(code):
        raise InvalidInput("unknown_icd10_code", f"{code!r} is not an ICD-10 code", details={"field": field})
    return icd10.add_dot(code) if "." not in code and len(code) > 3 else code


def years_between(start: date, end: date) -> int:
    return end.year - start.year - ((end.month, end.day) < (start.month, start.day))


# --- offline diagnoses -------------------------------------------------------------------------------------


async def add_offline_diagnosis(
    session: AsyncSession,
    *,
    principal: Principal,
    patient_id: uuid.UUID,
    hospital_name: str,
    diagnosed_on: date,
    icd10_code: str,
    diagnosis: str,
) -> OfflineDiagnosis:
    """Record a diagnosis made in person (the evidence an online follow-up needs). 422 for a future date or
    an unknown ICD-10 code; 404 unless the caller's account is linked to the patient."""
    await patients.require_linked(session, principal=principal, patient_id=patient_id)
    if diagnosed_on > clock.now().date():
        raise InvalidInput(
            "future_date", "a diagnosis cannot be dated in the future", details={"field": "diagnosed_on"}
        )
    row = OfflineDiagnosis(
        patient_id=patient_id,
        hospital_name=hospital_name,
        diagnosed_on=diagnosed_on,
        icd10_code=normalise_icd10(icd10_code),
        diagnosis=diagnosis,
        recorded_by_user_id=principal.user_id,
    )
    session.add(row)
    await session.flush()
    return row


async def offline_diagnoses(
    session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID
) -> list[OfflineDiagnosis]:
    await patients.require_linked(session, principal=principal, patient_id=patient_id)
    rows = await session.scalars(
        select(OfflineDiagnosis)
        .where(OfflineDiagnosis.patient_id == patient_id)
        .order_by(OfflineDiagnosis.diagnosed_on.desc())
        .limit(MAX_LIST)
    )
    return list(rows.all())


# --- eligibility -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Where a practitioner consults and the facts that allowed it (reported in the events: R3, R4)."""

    department_id: uuid.UUID
    practice_years: int
    practitioner_status: str
    filing_kind: str

    def facts(self) -> dict[str, Any]:
        return {
            "practice_years": self.practice_years,
            "practitioner_status": self.practitioner_status,
            "filing_kind": self.filing_kind,
        }


async def consulting_department(
    session: AsyncSession, *, practitioner_id: uuid.UUID, hospital_id: uuid.UUID, on: date
) -> Eligibility:
    """The department a practitioner consults in at an internet hospital today; 409 naming R3 or R4 if they
    may not consult there. Raised the same way at request and at acceptance."""
    hospital = await directory.get_hospital(session, hospital_id)
    if not hospital.active or not hospital.is_internet_hospital or hospital.licence_expires_on < on:
        raise Conflict(
            "not_an_internet_hospital",
            "this hospital does not hold a current internet-hospital licence",
            details={"rule": "R18"},
        )
    practitioner = await directory.get_practitioner(session, practitioner_id)
    if practitioner.status != PractitionerStatus.active:
        raise Conflict("practitioner_not_eligible", "this practitioner is not practising", details={"rule": "R3"})
    years = years_between(practitioner.practice_started_on, on)
    if years < Policy.min_practice_years:
        raise Conflict(
            "practitioner_not_eligible",
            f"online consultations need {Policy.min_practice_years} years of independent practice",
            details={"rule": "R3", "years": years, "required": Policy.min_practice_years},
        )
    filings = [
        f
        for f in (await directory.filings_of(session, [practitioner_id]))[practitioner_id]
        if f.hospital_id == hospital_id and directory.filing_current(f, on)
    ]
    if not filings:
        raise Conflict(
            "practitioner_not_filed",
            "this practitioner has no current filing at this hospital",
            details={"rule": "R4"},
        )
    filings.sort(key=lambda f: (f.kind != FilingKind.main, f.valid_from))
    return Eligibility(filings[0].department_id, years, str(practitioner.status), str(filings[0].kind))


def check_guardian(*, birth_date: date, today: date, relation: Relation | None, guardian_name: str | None) -> None:
    """Rule R10: a child under 6 consults with a guardian, named by an account linked as family."""
    if years_between(birth_date, today) >= GUARDIAN_AGE:
        return
    if not guardian_name or relation in (None, Relation.self):
        raise InvalidInput(
            "guardian_required",
            "a child under 6 needs a guardian: request from the guardian's account and give guardian_name",
            details={"rule": "R10", "field": "guardian_name"},
        )


# --- the life of a consultation ----------------------------------------------------------------------------


def emit(session: AsyncSession, type_: str, c: Consultation, actor: str, **extra: Any) -> None:
    append_event(
        session,
        type_,
        subject_type="consultation",
        subject_id=c.id,
        hospital_id=c.hospital_id,
        region=c.region,
        actor=actor,
        data={
            "consultation_id": c.id,
            "patient_id": c.patient_id,
            "practitioner_id": c.practitioner_id,
            "department_id": c.department_id,
            "kind": c.kind.value,
            "status": c.status.value,
            **extra,
        },
    )


def proposed_event(c: Consultation, type_: str, actor: str, extra: dict[str, Any], **override: Any) -> Event:
    """The event this consultation's next step would append, for the supervision pre-check."""
    data = {
        "consultation_id": str(c.id),
        "patient_id": str(c.patient_id),
        "practitioner_id": str(c.practitioner_id),
        "department_id": str(c.department_id),
        "kind": c.kind.value,
        "status": c.status.value,
        **{k: str(v) if isinstance(v, uuid.UUID) else v for k, v in extra.items()},
        **override,
    }
    return supervision.proposal(
        type_, hospital_id=c.hospital_id, region=c.region, actor=actor, subject=("consultation", c.id), data=data
    )


async def refuse_second_open(session: AsyncSession, *, patient_id: uuid.UUID, practitioner_id: uuid.UUID) -> None:
    """409 ``consultation_open`` if the patient already has an open consultation with this practitioner."""
    open_one = await session.scalar(
        select(Consultation.id).where(
            Consultation.patient_id == patient_id,
            Consultation.practitioner_id == practitioner_id,
            Consultation.status.in_(OPEN_STATUSES),
        )
    )
    if open_one is not None:
        raise Conflict(
            "consultation_open",
            "this patient already has an open consultation with this practitioner",
            details={"consultation_id": str(open_one)},
        )


async def request_consultation(
    session: AsyncSession,
    *,
    principal: Principal,
    patient_id: uuid.UUID,
    hospital_id: uuid.UUID,
    practitioner_id: uuid.UUID,
    kind: ConsultationKind,
    offline_diagnosis_id: uuid.UUID | None,
    complaint: str,
    history: str | None,
    allergies: str | None,
    guardian_name: str | None,
    slot_id: uuid.UUID | None = None,
) -> Consultation:
    """A patient (or their family account) asks a practitioner for an online follow-up visit.

    With ``slot_id``, the visit is booked into an online clinic session: a place is taken in the slot's
    ``online`` pool through the booking engine (its rules, limits and no-oversell guarantee) and the
    consultation starts ``accepted``; the booking and the consultation commit together or not at all. 422
    ``slot_not_this_practitioner`` when the slot is another doctor's or another hospital's.

    409 ``first_visit_not_online`` (R1) without an offline diagnosis of this patient; 409
    ``practitioner_not_eligible`` (R3), ``practitioner_not_filed`` (R4), ``not_an_internet_hospital``;
    422 ``guardian_required`` (R10); 409 ``consultation_open`` if one with this practitioner is still open."""
    principal.require_role(Role.patient)
    facts = await patients.require_linked(session, principal=principal, patient_id=patient_id)
    if offline_diagnosis_id is None:
        raise Conflict(
            "first_visit_not_online",
            "online visits follow up a diagnosis made in person: record it first (a first visit is offline)",
            details={"rule": "R1"},
        )
    diagnosis = await session.get(OfflineDiagnosis, offline_diagnosis_id)
    if diagnosis is None or diagnosis.patient_id != patient_id:
        raise not_found("offline_diagnosis", offline_diagnosis_id)
    now = clock.now()
    today = clock.to_local(now, await directory.timezone_of(session, hospital_id)).date()
    eligibility = await consulting_department(
        session, practitioner_id=practitioner_id, hospital_id=hospital_id, on=today
    )
    relation = None  # only a young child's case needs to know how the account is related (R10)
    if years_between(facts.birth_date, today) < GUARDIAN_AGE:
        relation = await patients.linked_relation(session, user_id=principal.user_id, patient_id=patient_id)
    check_guardian(birth_date=facts.birth_date, today=today, relation=relation, guardian_name=guardian_name)
    await refuse_second_open(session, patient_id=patient_id, practitioner_id=practitioner_id)
    appointment = None
    if slot_id is not None:
        appointment = await booking.book(
            session, principal=principal, patient_id=patient_id, slot_id=slot_id, channel="online", online=True
        )
        if appointment.practitioner_id != practitioner_id or appointment.hospital_id != hospital_id:
            raise InvalidInput(
                "slot_not_this_practitioner",
                "this slot belongs to another doctor's or hospital's session",
                details={"field": "slot_id"},
            )
        await session.flush()  # the appointment row first: the consultation refers to it
    c = Consultation(
        hospital_id=hospital_id,
        region=facts.region,
        patient_id=patient_id,
        requested_by_user_id=principal.user_id,
        practitioner_id=practitioner_id,
        department_id=eligibility.department_id,
        kind=kind,
        status=ConsultationStatus.requested,
        offline_diagnosis_id=diagnosis.id,
        complaint=complaint,
        history=history,
        allergies=allergies,
        guardian_name=guardian_name,
        requested_at=now,
        expires_at=now + timedelta(minutes=Policy.request_minutes),
    )
    if appointment is not None:
        c.appointment_id = appointment.id
        c.status = ConsultationStatus.accepted
        c.accepted_at = now
        c.expires_at = appointment.ends_at
    session.add(c)
    await session.flush()
    requested = {
        "follows_up_icd10": diagnosis.icd10_code,
        "appointment_id": c.appointment_id,
        "patient_age_years": years_between(facts.birth_date, today),
        "guardian_named": bool(guardian_name),
        "identity_verified": True,  # a patient profile holds a checksum-valid resident ID number (R6)
        **eligibility.facts(),
    }
    await supervision.enforce(session, proposed_event(c, "consultation.requested", principal.actor, requested))
    emit(session, "consultation.requested", c, principal.actor, **requested)
    if appointment is not None:  # the booked place is the doctor's acceptance
        emit(session, "consultation.accepted", c, "system", **eligibility.facts())
    return c


async def get_consultation(session: AsyncSession, consultation_id: uuid.UUID) -> Consultation:
    c = await session.get(Consultation, consultation_id)
    if c is None:
        raise not_found("consultation", consultation_id)
    return c


async def authorised(session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID) -> Consultation:
    """The consultation if the caller takes part in it: a linked patient account, or its doctor. 404 otherwise."""
    c = await get_consultation(session, consultation_id)
    if principal.role == Role.patient:
        if await patients.linked_relation(session, user_id=principal.user_id, patient_id=c.patient_id) is None:
            raise not_found("consultation", consultation_id)
    elif principal.role == Role.doctor:
        if principal.practitioner_id != c.practitioner_id or principal.hospital_id != c.hospital_id:
            raise not_found("consultation", consultation_id)
    else:
        raise not_found("consultation", consultation_id)
    return c


def side_of(principal: Principal) -> str:
    """Which side of a consultation a participant is on."""
    return "doctor" if principal.role == Role.doctor else "patient"


async def audit_chat_read(session: AsyncSession, principal: Principal, c: Consultation, *, after: int) -> None:
    """The conversation is personal data: every read of it leaves an audit record."""
    audit.record(
        session,
        action="consultation.chat.read",
        subject_type="consultation",
        subject_id=c.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=c.hospital_id,
        detail={"after": after},
    )


def status_frame(c: Consultation) -> dict[str, Any]:
    return {
        "type": "status",
        "status": c.status.value,
        "practitioner_id": str(c.practitioner_id),
        "reason": c.end_reason,
    }


def require_doctor(principal: Principal) -> None:
    if principal.role != Role.doctor:
        raise Forbidden("role_not_allowed", "only the consulting doctor can do this")


async def move(
    session: AsyncSession,
    c: Consultation,
    *,
    allowed: tuple[ConsultationStatus, ...],
    to: ConsultationStatus,
    values: dict[str, Any],
) -> None:
    """A conditional state change: exactly one of two concurrent moves wins, the other gets 409."""
    result = await session.execute(
        update(Consultation)
        .where(Consultation.id == c.id, Consultation.status.in_(allowed))
        .values(status=to, **values)
    )
    if result.rowcount != 1:
        await session.refresh(c)
        raise Conflict(
            "bad_consultation_state",
            f"a consultation that is {c.status.value} cannot become {to.value}",
            details={"status": c.status.value},
        )
    await session.refresh(c)
    await hub.publish(session, c.id, status_frame(c))
    if to not in OPEN_STATUSES and c.kind == ConsultationKind.video:
        await calls.end_call(session, c, by="system", actor="system")


async def accept(session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID) -> Consultation:
    """The doctor takes the request (R3/R4 are checked again: the filing must still be current)."""
    require_doctor(principal)
    c = await authorised(session, principal=principal, consultation_id=consultation_id)
    now = clock.now()
    if c.status == ConsultationStatus.requested and c.expires_at <= now:
        raise Conflict("consultation_expired", "this request has lapsed", details={"status": "expired"})
    today = clock.to_local(now, await directory.timezone_of(session, c.hospital_id)).date()
    eligibility = await consulting_department(
        session, practitioner_id=c.practitioner_id, hospital_id=c.hospital_id, on=today
    )
    proposal = proposed_event(c, "consultation.accepted", principal.actor, eligibility.facts(), status="accepted")
    await supervision.enforce(session, proposal)
    await move(
        session, c, allowed=(ConsultationStatus.requested,), to=ConsultationStatus.accepted, values={"accepted_at": now}
    )
    emit(session, "consultation.accepted", c, principal.actor, **eligibility.facts())
    return c


async def start(session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID) -> Consultation:
    """The doctor opens the conversation."""
    require_doctor(principal)
    c = await authorised(session, principal=principal, consultation_id=consultation_id)
    await move(
        session,
        c,
        allowed=(ConsultationStatus.accepted,),
        to=ConsultationStatus.in_progress,
        values={"started_at": clock.now()},
    )
    emit(session, "consultation.started", c, principal.actor)
    return c


async def _end(
    session: AsyncSession,
    *,
    principal: Principal,
    consultation_id: uuid.UUID,
    reason: str,
    allowed: tuple[ConsultationStatus, ...],
    to: ConsultationStatus,
) -> Consultation:
    c = await authorised(session, principal=principal, consultation_id=consultation_id)
    by = side_of(principal)
    await move(
        session, c, allowed=allowed, to=to, values={"ended_at": clock.now(), "ended_by": by, "end_reason": reason}
    )
    emit(session, f"consultation.{to.value}", c, principal.actor, reason=reason)
    if c.appointment_id is not None:  # the online clinic place: used, or given back
        if to == ConsultationStatus.closed:
            await booking.complete_online(session, appointment_id=c.appointment_id, actor=principal.actor)
        elif to == ConsultationStatus.cancelled:
            await booking.cancel(session, principal=principal, appointment_id=c.appointment_id, reason=reason)
    return c


async def close(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID, reason: str
) -> Consultation:
    """The doctor ends an accepted or running consultation."""
    require_doctor(principal)
    allowed = (ConsultationStatus.accepted, ConsultationStatus.in_progress)
    return await _end(
        session,
        principal=principal,
        consultation_id=consultation_id,
        reason=reason,
        allowed=allowed,
        to=ConsultationStatus.closed,
    )


async def reject(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID, reason: str
) -> Consultation:
    """The doctor declines a request."""
    require_doctor(principal)
    return await _end(
        session,
        principal=principal,
        consultation_id=consultation_id,
        reason=reason,
        allowed=(ConsultationStatus.requested,),
        to=ConsultationStatus.rejected,
    )


async def cancel(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID, reason: str
) -> Consultation:
    """The patient withdraws a request or an accepted consultation that has not started."""
    principal.require_role(Role.patient)
    allowed = (ConsultationStatus.requested, ConsultationStatus.accepted)
    return await _end(
        session,
        principal=principal,
        consultation_id=consultation_id,
        reason=reason,
        allowed=allowed,
        to=ConsultationStatus.cancelled,
    )


async def expire_requests(session: AsyncSession, *, limit: int = 500) -> int:
    """Lapse what did not happen in time (the sweep calls this): requests nobody accepted, and consultations
    booked into an online clinic slot that the doctor never started before the slot ended (their place is
    released, not counted as the patient's no-show)."""
    now = clock.now()
    due = (
        await session.scalars(
            select(Consultation)
            .where(
                Consultation.expires_at <= now,
                or_(
                    Consultation.status == ConsultationStatus.requested,
                    and_(Consultation.status == ConsultationStatus.accepted, Consultation.appointment_id.is_not(None)),
                ),
            )
            .limit(limit)
        )
    ).all()
    done = 0
    for c in due:
        booked = c.status == ConsultationStatus.accepted
        reason = "not started in its booked slot" if booked else "not accepted in time"
        result = await session.execute(
            update(Consultation)
            .where(Consultation.id == c.id, Consultation.status == c.status)
            .values(status=ConsultationStatus.expired, ended_at=now, ended_by="system", end_reason=reason)
        )
        if result.rowcount == 1:
            await session.refresh(c)
            emit(session, "consultation.expired", c, "system", reason=reason)
            await hub.publish(session, c.id, status_frame(c))
            if booked and c.appointment_id is not None:
                await booking.release_online(session, appointment_id=c.appointment_id, reason=reason)
            done += 1
    return done


async def list_for(
    session: AsyncSession, *, principal: Principal, status: ConsultationStatus | None, since: datetime | None = None
) -> list[Consultation]:
    """A doctor's inbox (their consultations at their hospital) or a patient account's consultations."""
    query = select(Consultation)
    if principal.role == Role.doctor:
        query = query.where(
            Consultation.practitioner_id == principal.practitioner_id, Consultation.hospital_id == principal.hospital_id
        )
    elif principal.role == Role.patient:
        query = query.where(
            Consultation.patient_id.in_(await patients.linked_patient_ids(session, user_id=principal.user_id))
        )
    else:
        raise Forbidden("role_not_allowed", "patients and doctors have consultations")
    if status is not None:
        query = query.where(Consultation.status == status)
    if since is not None:
        query = query.where(Consultation.requested_at >= since)
    rows = await session.scalars(query.order_by(Consultation.requested_at.desc()).limit(MAX_LIST))
    return list(rows.all())
