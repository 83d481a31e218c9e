"""Record endpoints: the outpatient record and its versions, quality control, follow-up reminders."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.principal import Principal
from carebridge.consultations import follow_ups, quality, records
from carebridge.consultations.models import MedicalRecord, QcStatus, RecordQuality
from carebridge.consultations.schemas import (
    FollowUpIn,
    FollowUpOut,
    QcOut,
    QcPage,
    RecordIn,
    RecordOut,
    ResolveIn,
    SignIn,
)
from carebridge.core import signing
from carebridge.database.engine import Database

router = APIRouter(tags=["records"])  # included by consultations.api under /api/v1


async def _records_out(session: AsyncSession, rows: list[MedicalRecord]) -> list[RecordOut]:
    qc = {
        q.record_id: q
        for q in await session.scalars(select(RecordQuality).where(RecordQuality.record_id.in_([r.id for r in rows])))
    }
    out = []
    for r in rows:
        item = RecordOut.model_validate(_shape(r))
        item.quality = QcOut.model_validate(qc[r.id]) if r.id in qc else None
        out.append(item)
    return out


def _shape(r: MedicalRecord) -> dict[str, object]:
    return {**{c: getattr(r, c) for c in RecordOut.model_fields if hasattr(r, c)}, "integrity": records.integrity(r)}


@router.put(
    "/consultations/{consultation_id}/record",
    response_model=RecordOut,
    summary="Save the record's draft (the consulting doctor); after signing, a new version with amend_reason",
)
async def save_record(
    consultation_id: uuid.UUID,
    body: RecordIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> RecordOut:
    async with db.transaction() as session:
        fields = body.model_dump(exclude={"diagnoses", "amend_reason"})
        r = await records.save_draft(
            session,
            principal=principal,
            consultation_id=consultation_id,
            fields=fields,
            diagnoses=body.diagnoses,
            amend_reason=body.amend_reason,
        )
        return RecordOut.model_validate(_shape(r))


@router.post(
    "/consultations/{consultation_id}/record/sign",
    response_model=RecordOut,
    summary="Sign the draft with your password (R5): hashed, signed, immutable; quality-checked at once",
)
async def sign_record(
    consultation_id: uuid.UUID,
    body: SignIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> RecordOut:
    async with db.transaction() as session:
        r = await records.sign(session, principal=principal, consultation_id=consultation_id, password=body.password)
        return (await _records_out(session, [r]))[0]


@router.get(
    "/consultations/{consultation_id}/record",
    response_model=list[RecordOut],
    summary="The record's versions, oldest first, each with its integrity check and QC result (audited)",
)
async def record_versions(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[RecordOut]:
    async with db.transaction() as session:
        rows = await records.versions_for(session, principal=principal, consultation_id=consultation_id)
        return await _records_out(session, rows)


@router.get(
    "/signing-key",
    response_class=PlainTextResponse,
    summary="The platform's public signing key (PEM): verifies record and prescription signatures",
)
async def signing_key() -> str:
    return signing.public_key_pem()


@router.get(
    "/hospitals/{hospital_id}/record-qc",
    response_model=QcPage,
    summary="The hospital's record-quality list (its admins): open defects first, worst score first",
)
async def qc_list(
    hospital_id: uuid.UUID,
    status: QcStatus | None = None,
    practitioner_id: uuid.UUID | None = None,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> QcPage:
    async with db.read() as session:
        rows, total = await quality.qc_list(
            session,
            principal=principal,
            hospital_id=hospital_id,
            status=status,
            practitioner_id=practitioner_id,
            limit=limit,
            offset=offset,
        )
        return QcPage(items=[QcOut.model_validate(r) for r in rows], total=total)


@router.get(
    "/hospitals/{hospital_id}/record-qc/metrics",
    summary="Defects per record, per doctor and for the hospital (record versions in force)",
)
async def qc_metrics(
    hospital_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> dict[str, object]:
    async with db.read() as session:
        return await quality.metrics(session, principal=principal, hospital_id=hospital_id)


@router.post("/record-qc/{qc_id}/resolve", response_model=QcOut, summary="Mark a record's defects dealt with")
async def qc_resolve(
    qc_id: uuid.UUID,
    body: ResolveIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> QcOut:
    async with db.transaction() as session:
        return QcOut.model_validate(await quality.resolve(session, principal=principal, qc_id=qc_id, note=body.note))


@router.post(
    "/consultations/{consultation_id}/follow-ups",
    response_model=FollowUpOut,
    status_code=201,
    summary="Set a follow-up reminder (the doctor); the patient is notified in-app on that day",
)
async def add_follow_up(
    consultation_id: uuid.UUID,
    body: FollowUpIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> FollowUpOut:
    async with db.transaction() as session:
        f = await follow_ups.schedule(
            session, principal=principal, consultation_id=consultation_id, due_on=body.due_on, note=body.note
        )
        return FollowUpOut.model_validate(f)


@router.get("/consultations/{consultation_id}/follow-ups", response_model=list[FollowUpOut])
async def list_follow_ups(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[FollowUpOut]:
    async with db.read() as session:
        rows = await follow_ups.for_consultation(session, principal=principal, consultation_id=consultation_id)
        return [FollowUpOut.model_validate(f) for f in rows]
