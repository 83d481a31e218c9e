"""Patients' ratings of finished consultations and their complaints.

A rating (1-5 stars, a few tags from a fixed list, an optional sealed comment) is given once per closed
consultation by one of the patient's accounts; it appends ``consultation.rated``, which feeds the regulator's
indicators (average rating per doctor and hospital, and the low-rating anomaly rule).

A complaint (a category and the patient's words, sealed) may be filed about any consultation the patient took
part in, up to ``MAX_COMPLAINTS`` per consultation; it appends ``complaint.filed`` and the regulator's engine
opens a case for it (rule ``C1-complaint``). The words never leave this table: regulators covering the hospital
and the hospital's admins read them here, and every such read is audited.
"""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.consultations import service
from carebridge.consultations.models import (
    Complaint,
    ComplaintCategory,
    Consultation,
    ConsultationRating,
    ConsultationStatus,
)
from carebridge.core import audit, clock
from carebridge.core.errors import Conflict, Forbidden, not_found
from carebridge.core.ids import new_id
from carebridge.directory import service as directory
from carebridge.events.outbox import append_event
from carebridge.supervision.catalog import region_within

RATING_TAGS = (
    "clear_explanation",
    "patient_listening",
    "quick_reply",
    "professional",
    "slow_reply",
    "unclear_explanation",
    "rushed",
    "impolite",
)
MAX_COMPLAINTS = 3


def _require_patient(principal: Principal) -> None:
    if principal.role != Role.patient:
        raise Forbidden("role_not_allowed", "only the patient's accounts can do this")


async def rate(
    session: AsyncSession,
    *,
    principal: Principal,
    consultation_id: uuid.UUID,
    stars: int,
    tags: list[str],
    comment: str | None,
) -> ConsultationRating:
    """409 ``consultation_not_finished`` before the doctor closed it; 409 ``already_rated``."""
    _require_patient(principal)
    c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
    if c.status != ConsultationStatus.closed:
        raise Conflict(
            "consultation_not_finished", "a consultation is rated once it is closed", details={"status": c.status}
        )
    if await session.scalar(select(ConsultationRating.id).where(ConsultationRating.consultation_id == c.id)):
        raise Conflict("already_rated", "this consultation has been rated")
    row = ConsultationRating(
        id=new_id(),
        consultation_id=c.id,
        hospital_id=c.hospital_id,
        patient_id=c.patient_id,
        practitioner_id=c.practitioner_id,
        rated_by_user_id=principal.user_id,
        stars=stars,
        tags=sorted(set(tags)),
        comment=comment,
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()  # the unique consultation_id: a concurrent second rating fails here
    append_event(
        session,
        "consultation.rated",
        subject_type="consultation",
        subject_id=c.id,
        hospital_id=c.hospital_id,
        region=c.region,
        actor=f"user:{principal.user_id}",
        data={
            "rating_id": row.id,
            "consultation_id": c.id,
            "patient_id": c.patient_id,
            "practitioner_id": c.practitioner_id,
            "stars": stars,
            "tags": row.tags,
        },
    )
    return row


async def rating_of(session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID) -> ConsultationRating:
    """The consultation's rating, for its patient's accounts and its doctor; 404 when there is none."""
    c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
    row = await session.scalar(select(ConsultationRating).where(ConsultationRating.consultation_id == c.id))
    if row is None:
        raise not_found("rating", consultation_id)
    return row


def complaint_number(complaint_id: uuid.UUID) -> str:
    return f"TS{clock.now().astimezone(UTC):%Y%m%d}-{complaint_id.hex[-6:].upper()}"


async def file_complaint(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID, category: str, text: str
) -> Complaint:
    """409 ``complaint_limit`` after ``MAX_COMPLAINTS`` about one consultation."""
    _require_patient(principal)
    c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
    # one at a time per consultation: the count and the insert are serialised on the consultation's row
    await session.execute(
        Consultation.__table__.update().where(Consultation.id == c.id).values(last_seq=Consultation.last_seq)
    )
    filed = await session.scalar(select(func.count()).where(Complaint.consultation_id == c.id))
    if filed >= MAX_COMPLAINTS:
        raise Conflict(
            "complaint_limit",
            f"at most {MAX_COMPLAINTS} complaints about one consultation",
            details={"limit": MAX_COMPLAINTS},
        )
    complaint_id = new_id()
    row = Complaint(
        id=complaint_id,
        number=complaint_number(complaint_id),
        consultation_id=c.id,
        hospital_id=c.hospital_id,
        patient_id=c.patient_id,
        practitioner_id=c.practitioner_id,
        filed_by_user_id=principal.user_id,
        category=ComplaintCategory(category),
        text=text,
        created_at=clock.now(),
    )
    session.add(row)
    append_event(
        session,
        "complaint.filed",
        subject_type="complaint",
        subject_id=row.id,
        hospital_id=c.hospital_id,
        region=c.region,
        actor=f"user:{principal.user_id}",
        data={
            "complaint_id": row.id,
            "number": row.number,
            "consultation_id": c.id,
            "patient_id": c.patient_id,
            "practitioner_id": c.practitioner_id,
            "category": row.category.value,
        },
    )
    return row


async def my_complaints(session: AsyncSession, *, principal: Principal) -> list[Complaint]:
    _require_patient(principal)
    stmt = select(Complaint).where(Complaint.filed_by_user_id == principal.user_id)
    return list((await session.scalars(stmt.order_by(Complaint.created_at.desc()).limit(200))).all())


async def read_complaint(session: AsyncSession, *, principal: Principal, complaint_id: uuid.UUID) -> Complaint:
    """The complaint with its words, for whoever handles it: a regulator covering the hospital, a platform admin,
    the hospital's admins; and the account that filed it. Every read by a handler is audited. 404 otherwise."""
    row = await session.get(Complaint, complaint_id)
    if row is None:
        raise not_found("complaint", complaint_id)
    if principal.role == Role.patient and row.filed_by_user_id == principal.user_id:
        return row
    allowed = principal.role == Role.platform_admin or (
        principal.role == Role.hospital_admin and principal.hospital_id == row.hospital_id
    )
    if principal.role == Role.regulator:
        hospital = await directory.get_hospital(session, row.hospital_id)
        allowed = region_within(hospital.region_code, principal.region_code or "-")
    if not allowed:
        raise not_found("complaint", complaint_id)
    audit.record(
        session,
        action="complaint.read",
        subject_type="complaint",
        subject_id=row.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=row.hospital_id,
    )
    return row


def shape(row: Complaint) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": row.number,
        "consultation_id": row.consultation_id,
        "hospital_id": row.hospital_id,
        "practitioner_id": row.practitioner_id,
        "category": row.category,
        "text": row.text,
        "created_at": row.created_at,
    }
