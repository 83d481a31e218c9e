"""Organization: a hospital (only those that granted the app)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from carebridge.directory import service as directory
from carebridge.directory.models import Hospital
from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.resources.common import LICENCE_SYSTEM, gone, parse_id
from carebridge.interop.fhir.search import Params, bundle

router = APIRouter()
SEARCH = ("name",)


def to_fhir(hospital: Hospital) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Organization",
        "id": str(hospital.id),
        "identifier": [{"system": LICENCE_SYSTEM, "value": hospital.licence_number}],
        "active": hospital.active,
        "type": [
            {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov"}],
                "text": f"{hospital.level.value} hospital",
            }
        ],
        "name": hospital.name,
    }
    if hospital.short_name:
        out["alias"] = [hospital.short_name]
    if hospital.phone:
        out["telecom"] = [{"system": "phone", "value": hospital.phone, "use": "work"}]
    if hospital.address:
        out["address"] = [{"text": hospital.address}]
    return out


@router.get("/Organization/{ident}", summary="Read an Organization (a hospital that granted the app)")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Organization", "r")
    hospital_id = parse_id(ident, "Organization")
    if hospital_id not in who.hospitals:
        raise gone("Organization", hospital_id)
    async with request.app.state.db.read() as session:
        hospital = await session.get(Hospital, hospital_id)
    if hospital is None:
        raise gone("Organization", hospital_id)
    return FhirResponse(to_fhir(hospital))


@router.get("/Organization", summary="Search Organizations: name, _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Organization", "s")
    params = Params(request, SEARCH)
    async with request.app.state.db.read() as session:
        rows, total = await directory.search_hospitals(
            session,
            region_code=None,
            q=params.one("name"),
            level=None,
            internet_only=False,
            limit=params.count(),
            offset=params.offset(),
            within=who.hospitals,
            ids=params.ids(),
        )
    return FhirResponse(bundle(request, "Organization", [to_fhir(h) for h in rows], total=total, params=params))
