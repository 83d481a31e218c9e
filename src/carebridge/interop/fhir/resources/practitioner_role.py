"""PractitionerRole: a practitioner's filing (执业备案) at a hospital that granted the app: the department, the
campus, main or multi-site practice, and the period it is valid."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.directory import service as directory
from carebridge.directory.models import Department, PractitionerFiling
from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse, Invalid
from carebridge.interop.fhir.resources.common import DEPARTMENT_SYSTEM, SYSTEM, gone, parse_id, reference
from carebridge.interop.fhir.search import Params, bundle

router = APIRouter()
SEARCH = ("practitioner", "organization", "service", "active")
FILING_KIND_SYSTEM = f"{SYSTEM}/CodeSystem/filing-kind"
KIND_WORDS = {"main": "第一执业地点 main practice site", "multi_site": "多点执业 multi-site practice"}


async def present(session: AsyncSession, filings: list[PractitionerFiling]) -> list[dict[str, Any]]:
    departments = {
        d.id: d
        for d in await session.scalars(select(Department).where(Department.id.in_({f.department_id for f in filings})))
    }
    labels = await directory.names(
        session,
        hospital_ids={f.hospital_id for f in filings},
        practitioner_ids={f.practitioner_id for f in filings},
    )
    today = clock.now().date()
    out = []
    for f in filings:
        department = departments.get(f.department_id)
        resource: dict[str, Any] = {
            "resourceType": "PractitionerRole",
            "id": str(f.id),
            "active": directory.filing_current(f, today),
            "period": {"start": f.valid_from.isoformat()},
            "practitioner": reference(
                "Practitioner", f.practitioner_id, labels.get(f.practitioner_id, ("",))[0] or None
            ),
            "organization": reference("Organization", f.hospital_id, labels.get(f.hospital_id, ("",))[0] or None),
            "code": [
                {"coding": [{"system": FILING_KIND_SYSTEM, "code": f.kind.value, "display": KIND_WORDS[f.kind.value]}]}
            ],
        }
        if f.valid_to is not None:
            resource["period"]["end"] = f.valid_to.isoformat()
        if department is not None:
            resource["healthcareService"] = [reference("HealthcareService", department.id, department.name)]
            resource["specialty"] = [{"coding": [{"system": DEPARTMENT_SYSTEM, "code": department.standard_code}]}]
            if department.campus_id is not None:
                resource["location"] = [reference("Location", department.campus_id)]
        out.append(resource)
    return out


@router.get("/PractitionerRole/{ident}", summary="Read a PractitionerRole (a practitioner's filing at a hospital)")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("PractitionerRole", "r")
    filing_id = parse_id(ident, "PractitionerRole")
    async with request.app.state.db.read() as session:
        rows, _ = await directory.search_filings(
            session,
            within=who.hospitals,
            ids=[filing_id],
            practitioner_ids=None,
            hospital_ids=None,
            department_ids=None,
            active_on=None,
            limit=1,
            offset=0,
        )
        if not rows:
            raise gone("PractitionerRole", filing_id)
        return FhirResponse((await present(session, rows))[0])


@router.get("/PractitionerRole", summary="Search PractitionerRoles: practitioner, organization, service, active, _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("PractitionerRole", "s")
    params = Params(request, SEARCH)
    active = params.one("active")
    if active not in (None, "true"):
        raise Invalid(
            "bad_search_parameter",
            "active=true gives the filings valid today; leave it out for every filing",
            details={"parameter": "active"},
        )
    async with request.app.state.db.read() as session:
        rows, total = await directory.search_filings(
            session,
            within=who.hospitals,
            ids=params.ids(),
            practitioner_ids=params.ids("practitioner", resource="Practitioner"),
            hospital_ids=params.ids("organization", resource="Organization"),
            department_ids=params.ids("service", resource="HealthcareService"),
            active_on=clock.now().date() if active == "true" else None,
            limit=params.count(),
            offset=params.offset(),
        )
        resources = await present(session, rows)
    return FhirResponse(bundle(request, "PractitionerRole", resources, total=total, params=params))
