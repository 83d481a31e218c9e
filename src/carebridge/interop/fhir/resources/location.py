"""Location: a campus (院区) of a hospital that granted the app, where its departments sit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from carebridge.directory import service as directory
from carebridge.directory.models import Campus
from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.resources.common import gone, parse_id, reference
from carebridge.interop.fhir.search import Params, bundle

router = APIRouter()
SEARCH = ("name", "organization")


def to_fhir(campus: Campus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Location",
        "id": str(campus.id),
        "status": "active",
        "name": campus.name,
        "mode": "instance",
        "physicalType": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                    "code": "si",
                    "display": "Site",
                }
            ]
        },
        "managingOrganization": reference("Organization", campus.hospital_id),
    }
    if campus.address:
        out["address"] = {"use": "work", "text": campus.address, "country": "CN"}
    return out


@router.get("/Location/{ident}", summary="Read a Location (a hospital's campus)")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Location", "r")
    campus_id = parse_id(ident, "Location")
    async with request.app.state.db.read() as session:
        campus = await session.get(Campus, campus_id)
    if campus is None or campus.hospital_id not in who.hospitals:
        raise gone("Location", campus_id)
    return FhirResponse(to_fhir(campus))


@router.get("/Location", summary="Search Locations: name, organization, _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Location", "s")
    params = Params(request, SEARCH)
    async with request.app.state.db.read() as session:
        rows, total = await directory.search_campuses(
            session,
            within=who.hospitals,
            ids=params.ids(),
            hospital_ids=params.ids("organization", resource="Organization"),
            name=params.one("name"),
            limit=params.count(),
            offset=params.offset(),
        )
    return FhirResponse(bundle(request, "Location", [to_fhir(c) for c in rows], total=total, params=params))
