"""Schedule: a practitioner's session (a day's morning, afternoon or evening) in a department."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.directory import service as directory
from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.resources.common import VISIT_TYPE_SYSTEM, gone, parse_id, reference
from carebridge.interop.fhir.search import Params, bundle, instant
from carebridge.scheduling import search as scheduling
from carebridge.scheduling.models import Schedule, ScheduleStatus

router = APIRouter()
SEARCH = ("actor", "date", "active")
SESSION_WORDS = {"morning": "上午 morning", "afternoon": "下午 afternoon", "evening": "晚间 evening"}


def service_type(visit_type: Any) -> list[dict[str, Any]]:
    if visit_type is None:
        return []
    return [{"coding": [{"system": VISIT_TYPE_SYSTEM, "code": visit_type.code, "display": visit_type.name}]}]


async def present(session: AsyncSession, schedules: list[Schedule]) -> list[dict[str, Any]]:
    kinds = await scheduling.visit_types(session, {s.visit_type_id for s in schedules})
    labels = await directory.names(
        session,
        department_ids={s.department_id for s in schedules},
        practitioner_ids={s.practitioner_id for s in schedules},
    )
    out = []
    for s in schedules:
        practitioner = labels.get(s.practitioner_id, ("", None))
        department = labels.get(s.department_id, ("", None))
        resource: dict[str, Any] = {
            "resourceType": "Schedule",
            "id": str(s.id),
            "active": s.status == ScheduleStatus.open,
            "serviceType": service_type(kinds.get(s.visit_type_id)),
            "actor": [
                reference("Practitioner", s.practitioner_id, practitioner[0] or None),
                reference("HealthcareService", s.department_id, department[0] or None),
            ],
            "planningHorizon": {"start": instant(s.starts_at), "end": instant(s.ends_at)},
            "comment": f"{s.service_date.isoformat()} {SESSION_WORDS.get(s.session.value, s.session.value)}",
        }
        if not resource["serviceType"]:
            del resource["serviceType"]
        out.append(resource)
    return out


@router.get("/Schedule/{ident}", summary="Read a Schedule (a practitioner's session)")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Schedule", "r")
    schedule_id = parse_id(ident, "Schedule")
    async with request.app.state.db.read() as session:
        rows, _ = await scheduling.search_schedules(session, hospitals=who.hospitals, ids=[schedule_id], limit=1)
        if not rows:
            raise gone("Schedule", schedule_id)
        return FhirResponse((await present(session, rows))[0])


@router.get("/Schedule", summary="Search Schedules: actor (Practitioner), date, active, _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Schedule", "s")
    params = Params(request, SEARCH)
    actors = params.ids("actor", resource="Practitioner")
    low, high = params.dates("date")
    active = params.one("active")
    async with request.app.state.db.read() as session:
        rows, total = await scheduling.search_schedules(
            session,
            hospitals=who.hospitals,
            ids=params.ids(),
            practitioner_id=actors[0] if actors else None,
            date_from=low,
            date_to=high,
            open_only={"true": True, "false": False}.get(active or ""),
            limit=params.count(),
            exact_total=params.exact_total(),
            offset=params.offset(),
        )
        resources = await present(session, rows)
    return FhirResponse(bundle(request, "Schedule", resources, total=total, params=params))
