"""Consultation endpoints: offline diagnoses, requests, the doctor's inbox and the state changes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.principal import Principal
from carebridge.consultations import service
from carebridge.consultations.models import ConsultationStatus
from carebridge.consultations.present import consultation_detail, consultations_out, diagnosis_out
from carebridge.consultations.schemas import (
    ConsultationDetailOut,
    ConsultationIn,
    ConsultationOut,
    OfflineDiagnosisIn,
    OfflineDiagnosisOut,
    ReasonIn,
)
from carebridge.database.engine import Database

router = APIRouter(prefix="/api/v1", tags=["consultations"])


@router.post(
    "/patients/{patient_id}/offline-diagnoses",
    response_model=OfflineDiagnosisOut,
    status_code=201,
    summary="Record a diagnosis made in person (what an online follow-up visit follows up)",
)
async def add_offline_diagnosis(
    patient_id: uuid.UUID,
    body: OfflineDiagnosisIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> OfflineDiagnosisOut:
    async with db.transaction() as session:
        row = await service.add_offline_diagnosis(
            session, principal=principal, patient_id=patient_id, **body.model_dump()
        )
        return diagnosis_out(row)


@router.get("/patients/{patient_id}/offline-diagnoses", response_model=list[OfflineDiagnosisOut])
async def offline_diagnoses(
    patient_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[OfflineDiagnosisOut]:
    async with db.read() as session:
        return [
            diagnosis_out(r)
            for r in await service.offline_diagnoses(session, principal=principal, patient_id=patient_id)
        ]


@router.post(
    "/consultations",
    response_model=ConsultationDetailOut,
    status_code=201,
    summary="Request an online follow-up visit (rules R1, R3, R4, R10 apply)",
)
async def request_consultation(
    body: ConsultationIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ConsultationDetailOut:
    async with db.transaction() as session:
        c = await service.request_consultation(session, principal=principal, **body.model_dump())
        return await consultation_detail(session, principal, c)


@router.get(
    "/consultations", response_model=list[ConsultationOut], summary="A doctor's inbox, or a patient's consultations"
)
async def list_consultations(
    status: ConsultationStatus | None = None,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[ConsultationOut]:
    async with db.transaction() as session:  # masked/unmasked names: reads of personal data are audited
        rows = await service.list_for(session, principal=principal, status=status)
        return await consultations_out(session, principal, rows, purpose="consultation_list")


@router.get("/consultations/{consultation_id}", response_model=ConsultationDetailOut)
async def get_consultation(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ConsultationDetailOut:
    async with db.transaction() as session:
        c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
        return await consultation_detail(session, principal, c)


async def _change(db: Database, principal: Principal, action, **kwargs) -> ConsultationOut:  # type: ignore[no-untyped-def]
    async with db.transaction() as session:
        c = await action(session, principal=principal, **kwargs)
        return (await consultations_out(session, principal, [c], purpose="consultation"))[0]


@router.post("/consultations/{consultation_id}/accept", response_model=ConsultationOut, summary="The doctor accepts")
async def accept(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ConsultationOut:
    return await _change(db, principal, service.accept, consultation_id=consultation_id)


@router.post("/consultations/{consultation_id}/start", response_model=ConsultationOut, summary="The doctor starts")
async def start(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ConsultationOut:
    return await _change(db, principal, service.start, consultation_id=consultation_id)


@router.post("/consultations/{consultation_id}/close", response_model=ConsultationOut, summary="The doctor closes")
async def close(
    consultation_id: uuid.UUID,
    body: ReasonIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ConsultationOut:
    return await _change(db, principal, service.close, consultation_id=consultation_id, reason=body.reason)


@router.post("/consultations/{consultation_id}/reject", response_model=ConsultationOut, summary="The doctor declines")
async def reject(
    consultation_id: uuid.UUID,
    body: ReasonIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ConsultationOut:
    return await _change(db, principal, service.reject, consultation_id=consultation_id, reason=body.reason)


@router.post("/consultations/{consultation_id}/cancel", response_model=ConsultationOut, summary="The patient cancels")
async def cancel(
    consultation_id: uuid.UUID,
    body: ReasonIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ConsultationOut:
    return await _change(db, principal, service.cancel, consultation_id=consultation_id, reason=body.reason)
