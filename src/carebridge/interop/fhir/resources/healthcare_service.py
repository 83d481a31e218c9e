"""HealthcareService: a hospital department, where a Schedule's sessions are held."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from carebridge.directory import service as directory
from carebridge.directory.models import Department
from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.resources.common import DEPARTMENT_SYSTEM, gone, parse_id, reference
from carebridge.interop.fhir.search import Params, bundle

router = APIRouter()
SEARCH = ("name", "organization")


def to_fhir(department: Department) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": str(department.id),
        "active": department.active,
        "providedBy": reference("Organization", department.hospital_id),
        "specialty": [{"coding": [{"system": DEPARTMENT_SYSTEM, "code": department.standard_code}]}],
        "name": department.name,
    }
    if department.description:
        out["comment"] = department.description
    return out


@router.get("/HealthcareService/{ident}", summary="Read a HealthcareService (a department)")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("HealthcareService", "r")
    department_id = parse_id(ident, "HealthcareService")
    async with request.app.state.db.read() as session:
        department = await session.get(Department, department_id)
    if department is None or department.hospital_id not in who.hospitals:
        raise gone("HealthcareService", department_id)
    return FhirResponse(to_fhir(department))


@router.get("/HealthcareService", summary="Search HealthcareServices: name, organization, _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("HealthcareService", "s")
    params = Params(request, SEARCH)
    async with request.app.state.db.read() as session:
        rows, total = await directory.search_departments(
            session,
            within=who.hospitals,
            ids=params.ids(),
            hospital_ids=params.ids("organization", resource="Organization"),
            name=params.one("name"),
            limit=params.count(),
            offset=params.offset(),
        )
    resources = [to_fhir(d) for d in rows]
    return FhirResponse(bundle(request, "HealthcareService", resources, total=total, params=params))
