from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response

from carebridge.auth.dependencies import current_principal, get_db, require
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core.schemas import Input
from carebridge.database.engine import Database
from carebridge.patients import service
from carebridge.patients.schemas import MedicalCardIn, MedicalCardOut, PatientIn, PatientOut, PatientPatch

router = APIRouter(prefix="/api/v1", tags=["patients"])
patient_role = require(Role.patient)


@router.post(
    "/patients",
    response_model=PatientOut,
    status_code=201,
    summary="Add a real-name patient (yourself or a family member) to your account",
)
async def add_patient(
    body: PatientIn, principal: Principal = Depends(patient_role), db: Database = Depends(get_db)
) -> PatientOut:
    async with db.transaction() as session:
        return await service.add_patient(session, principal=principal, **body.model_dump())


@router.get("/patients", response_model=list[PatientOut], summary="The patients your account manages")
async def my_patients(principal: Principal = Depends(patient_role), db: Database = Depends(get_db)) -> list[PatientOut]:
    async with db.transaction() as session:  # writes the audit records of the read
        return await service.my_patients(session, principal=principal)


@router.get("/patients/{patient_id}", response_model=PatientOut)
async def get_patient(
    patient_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> PatientOut:
    async with db.transaction() as session:
        return await service.get_patient(session, principal=principal, patient_id=patient_id)


@router.patch("/patients/{patient_id}", response_model=PatientOut)
async def update_patient(
    patient_id: uuid.UUID,
    body: PatientPatch,
    principal: Principal = Depends(patient_role),
    db: Database = Depends(get_db),
) -> PatientOut:
    async with db.transaction() as session:
        return await service.update_patient(session, principal=principal, patient_id=patient_id, phone=body.phone)


@router.delete("/patients/{patient_id}", status_code=204, summary="Remove a family member from your account")
async def unlink_patient(
    patient_id: uuid.UUID, principal: Principal = Depends(patient_role), db: Database = Depends(get_db)
) -> Response:
    async with db.transaction() as session:
        await service.unlink_patient(session, principal=principal, patient_id=patient_id)
    return Response(status_code=204)


@router.post("/patients/{patient_id}/medical-cards", response_model=MedicalCardOut, status_code=201)
async def add_card(
    patient_id: uuid.UUID,
    body: MedicalCardIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> MedicalCardOut:
    async with db.transaction() as session:
        card = await service.add_medical_card(session, principal=principal, patient_id=patient_id, **body.model_dump())
    return MedicalCardOut.model_validate(card)


@router.get("/patients/{patient_id}/medical-cards", response_model=list[MedicalCardOut])
async def list_cards(
    patient_id: uuid.UUID, principal: Principal = Depends(patient_role), db: Database = Depends(get_db)
) -> list[MedicalCardOut]:
    async with db.read() as session:
        cards = await service.medical_cards(session, principal=principal, patient_id=patient_id)
    return [MedicalCardOut.model_validate(c) for c in cards]


class PatientLookupIn(Input):
    id_number: str


@router.post(
    "/hospitals/{hospital_id}/patients/lookup",
    response_model=PatientOut,
    summary="Find a card holder of your hospital by exact ID number (answer masked)",
)
async def lookup(
    hospital_id: uuid.UUID,
    body: PatientLookupIn,
    principal: Principal = Depends(require(Role.hospital_admin, Role.platform_admin)),
    db: Database = Depends(get_db),
) -> PatientOut:
    async with db.read() as session:
        return await service.find_by_id_number(
            session, principal=principal, hospital_id=hospital_id, id_number=body.id_number
        )
