"""Prescriptions for partner apps (the FHIR facade's MedicationRequest, one per prescribed drug): always within
the hospitals that granted the app and the patients the token reaches. Only signed prescriptions: a draft, or
one sent back to its doctor, is the doctor's work in progress, not an order."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.database.paging import page
from carebridge.prescribing.models import Prescription, PrescriptionItem, PrescriptionStatus

ISSUED = (
    PrescriptionStatus.pending_review,
    PrescriptionStatus.approved,
    PrescriptionStatus.dispensed,
    PrescriptionStatus.expired,
    PrescriptionStatus.cancelled,
)


async def search_prescribed(
    session: AsyncSession,
    *,
    hospitals: frozenset[uuid.UUID],
    patient_ids: list[uuid.UUID] | None,
    ids: list[uuid.UUID] | None = None,
    consultation_ids: list[uuid.UUID] | None = None,
    statuses: list[PrescriptionStatus] | None = None,
    limit: int,
    offset: int = 0,
    exact_total: bool = False,
) -> tuple[list[tuple[PrescriptionItem, Prescription]], int | None]:
    """Prescribed drugs (items with their prescription) at ``hospitals`` of ``patient_ids`` (None: every
    patient, for a backend app), newest prescription first, then by line."""
    query = (
        select(PrescriptionItem, Prescription)
        .join(Prescription, Prescription.id == PrescriptionItem.prescription_id)
        .where(Prescription.hospital_id.in_(hospitals), Prescription.status.in_(statuses or ISSUED))
    )
    if patient_ids is not None:
        query = query.where(Prescription.patient_id.in_(patient_ids))
    if ids is not None:
        query = query.where(PrescriptionItem.id.in_(ids))
    if consultation_ids is not None:
        query = query.where(Prescription.consultation_id.in_(consultation_ids))
    order = (Prescription.created_at.desc(), Prescription.id, PrescriptionItem.line)
    rows, total = await page(session, query.order_by(*order), limit, offset, exact_total)
    return [(r[0], r[1]) for r in rows], total
