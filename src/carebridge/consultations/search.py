"""Consultations for partner apps (the FHIR facade's Encounter): always within the hospitals that granted the
app and the patients the token reaches, paged."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.consultations.models import Consultation, ConsultationStatus
from carebridge.database.paging import Bound, bounded, page


async def search_consultations(
    session: AsyncSession,
    *,
    hospitals: frozenset[uuid.UUID],
    patient_ids: list[uuid.UUID] | None,
    ids: list[uuid.UUID] | None = None,
    practitioner_id: uuid.UUID | None = None,
    requested: list[Bound] = (),  # type: ignore[assignment]
    statuses: list[ConsultationStatus] | None = None,
    limit: int,
    offset: int = 0,
    exact_total: bool = False,
) -> tuple[list[Consultation], int | None]:
    """Consultations at ``hospitals`` of ``patient_ids`` (None: every patient, for a backend app), newest first."""
    query = select(Consultation).where(Consultation.hospital_id.in_(hospitals))
    if patient_ids is not None:
        query = query.where(Consultation.patient_id.in_(patient_ids))
    if ids is not None:
        query = query.where(Consultation.id.in_(ids))
    if practitioner_id is not None:
        query = query.where(Consultation.practitioner_id == practitioner_id)
    query = query.where(*bounded(Consultation.requested_at, requested))
    if statuses:
        query = query.where(Consultation.status.in_(statuses))
    rows, total = await page(
        session, query.order_by(Consultation.requested_at.desc(), Consultation.id), limit, offset, exact_total
    )
    return [r[0] for r in rows], total
