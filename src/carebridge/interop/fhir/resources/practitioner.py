"""Practitioner: a doctor filed at a hospital that granted the app."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from carebridge.directory import service as directory
from carebridge.directory.models import Practitioner, PractitionerStatus
from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.resources.common import LICENCE_SYSTEM, gone, parse_id
from carebridge.interop.fhir.search import Params, bundle

router = APIRouter()
SEARCH = ("name",)
GENDER = {"male": "male", "female": "female", "男": "male", "女": "female"}


def to_fhir(practitioner: Practitioner) -> dict[str, Any]:
    name = practitioner.name
    out: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": str(practitioner.id),
        "identifier": [{"system": LICENCE_SYSTEM, "value": practitioner.licence_number}],
        "active": practitioner.status == PractitionerStatus.active,
        # Chinese names: the family name first, written together (姓 + 名)
        "name": [{"use": "official", "text": name, "family": name[:1], "given": [name[1:]] if name[1:] else []}],
        "qualification": [{"code": {"text": f"{practitioner.title.value} · {practitioner.specialty}"}}],
    }
    if not out["name"][0]["given"]:
        del out["name"][0]["given"]
    if practitioner.sex in GENDER:
        out["gender"] = GENDER[practitioner.sex]
    return out


@router.get("/Practitioner/{ident}", summary="Read a Practitioner")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Practitioner", "r")
    practitioner_id = parse_id(ident, "Practitioner")
    async with request.app.state.db.read() as session:
        rows, _ = await directory.search_practitioners(
            session,
            region_code=None,
            hospital_id=None,
            department_id=None,
            name=None,
            specialty=None,
            title=None,
            limit=1,
            offset=0,
            within=who.hospitals,
            ids=[practitioner_id],
        )
    if not rows:
        raise gone("Practitioner", practitioner_id)
    return FhirResponse(to_fhir(rows[0]))


@router.get("/Practitioner", summary="Search Practitioners: name, _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Practitioner", "s")
    params = Params(request, SEARCH)
    async with request.app.state.db.read() as session:
        rows, total = await directory.search_practitioners(
            session,
            region_code=None,
            hospital_id=None,
            department_id=None,
            name=params.one("name"),
            specialty=None,
            title=None,
            limit=params.count(),
            offset=params.offset(),
            within=who.hospitals,
            ids=params.ids(),
        )
    return FhirResponse(bundle(request, "Practitioner", [to_fhir(p) for p in rows], total=total, params=params))
