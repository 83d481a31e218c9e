"""Patient: the patient the token acts for (``patient/``), the account's family (``user/``), or, for a backend
app (``system/``), a patient with an appointment at a granted hospital. ID number and phone are never given to
apps; the name only to apps the patient consented to. Every read is audited with the app."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.resources.common import gone, parse_id
from carebridge.interop.fhir.search import Params, bundle
from carebridge.patients import service as patients
from carebridge.patients.schemas import PatientOut
from carebridge.scheduling import search as scheduling

router = APIRouter()
SEARCH: tuple[str, ...] = ()


def to_fhir(patient: PatientOut) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": str(patient.id),
        "name": [{"use": "official", "text": patient.name}],
        "gender": patient.sex.value,
        "birthDate": patient.birth_date.isoformat(),
        "address": [{"district": patient.region}],
    }


async def _reachable(session: AsyncSession, who: Caller, patient_id: uuid.UUID, permission: str) -> bool:
    reach = await who.patients(session, "Patient", permission)
    if reach is None:
        return await scheduling.seen_at(session, patient_id=patient_id, hospitals=who.hospitals)
    return patient_id in reach


async def _out(session: AsyncSession, who: Caller, patient_id: uuid.UUID) -> dict[str, Any]:
    consented = who.access.user_id is not None  # a patient's own app (authorization code), not a backend
    patient = await patients.patient_for_app(
        session,
        patient_id=patient_id,
        client_id=who.access.client_id,
        user_id=who.access.user_id,
        show_name=consented,
    )
    return to_fhir(patient)


@router.get("/Patient/{ident}", summary="Read a Patient (the token's patient, or as its scopes allow)")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    patient_id = parse_id(ident, "Patient")
    async with request.app.state.db.transaction() as session:  # the read's audit record is written with it
        if not await _reachable(session, who, patient_id, "r"):
            raise gone("Patient", patient_id)
        return FhirResponse(await _out(session, who, patient_id))


@router.get("/Patient", summary="Search Patients: the ones the token reaches (patient/ and user/ scopes), _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    params = Params(request, SEARCH)
    async with request.app.state.db.transaction() as session:
        reach = await who.patients(session, "Patient", "s")
        wanted = params.ids()
        if reach is None:  # a backend app finds patients through their Appointments, one id at a time
            reach = [
                p for p in wanted or [] if await scheduling.seen_at(session, patient_id=p, hospitals=who.hospitals)
            ]
        if wanted is not None:
            reach = [p for p in reach if p in wanted]
        page = reach[params.offset() : params.offset() + params.count()]
        resources = [await _out(session, who, p) for p in page]
    return FhirResponse(bundle(request, "Patient", resources, total=len(reach), params=params))
