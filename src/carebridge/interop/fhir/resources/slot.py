"""Slot: a time slot of a Schedule, ``free`` while the app's own pool (``partner:<app>``) has a place."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse, Invalid
from carebridge.interop.fhir.resources import schedule as schedule_resource
from carebridge.interop.fhir.resources.common import gone, parse_id, reference
from carebridge.interop.fhir.search import Params, bundle, instant
from carebridge.scheduling import search as scheduling
from carebridge.scheduling.models import ScheduleStatus

router = APIRouter()
SEARCH = ("schedule", "start", "status", "service-type", "_include")
STATUSES = {"free": True, "busy": False, "busy-unavailable": False}


def to_fhir(view: scheduling.SlotView, visit_type: Any) -> dict[str, Any]:
    stopped = view.schedule.status != ScheduleStatus.open
    out: dict[str, Any] = {
        "resourceType": "Slot",
        "id": str(view.slot.id),
        "schedule": reference("Schedule", view.schedule.id),
        "status": "busy-unavailable" if stopped else ("free" if view.free > 0 else "busy"),
        "start": instant(view.slot.starts_at),
        "end": instant(view.slot.ends_at),
    }
    kinds = schedule_resource.service_type(visit_type)
    if kinds:
        out["serviceType"] = kinds
    if not stopped:
        out["comment"] = f"{view.free} place(s) free for this app"
    return out


async def _present(session: Any, views: list[scheduling.SlotView]) -> list[dict[str, Any]]:
    kinds = await scheduling.visit_types(session, {v.schedule.visit_type_id for v in views})
    return [to_fhir(v, kinds.get(v.schedule.visit_type_id)) for v in views]


@router.get("/Slot/{ident}", summary="Read a Slot")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Slot", "r")
    slot_id = parse_id(ident, "Slot")
    async with request.app.state.db.read() as session:
        views, _ = await scheduling.search_slots(
            session, hospitals=who.hospitals, channel=who.channel, ids=[slot_id], limit=1
        )
        if not views:
            raise gone("Slot", slot_id)
        return FhirResponse((await _present(session, views))[0])


@router.get(
    "/Slot", summary="Search Slots: schedule, start (ge/gt/le/lt), status, service-type, _include=Slot:schedule"
)
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    who.contexts("Slot", "s")
    params = Params(request, SEARCH)
    wanted = set(params.choices("status", STATUSES) or ())
    free = wanted.pop() if len(wanted) == 1 else None
    include = params.one("_include")
    if include not in (None, "Slot:schedule"):
        raise Invalid("bad_search_parameter", "_include supports Slot:schedule", details={"parameter": "_include"})
    zone = request.app.state.settings.default_timezone
    async with request.app.state.db.read() as session:
        views, total = await scheduling.search_slots(
            session,
            hospitals=who.hospitals,
            channel=who.channel,
            ids=params.ids(),
            schedule_ids=params.ids("schedule", resource="Schedule"),
            starts=params.instants("start", zone),
            free=free,
            visit_type_codes=params.tokens("service-type"),
            limit=params.count(),
            exact_total=params.exact_total(),
            offset=params.offset(),
        )
        resources = await _present(session, views)
        included: list[dict[str, Any]] = []
        if include:
            schedules = list({v.schedule.id: v.schedule for v in views}.values())
            included = await schedule_resource.present(session, schedules)
    return FhirResponse(bundle(request, "Slot", resources, total=total, params=params, included=included))
