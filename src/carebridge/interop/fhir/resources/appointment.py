"""Appointment: read, search, book (create, through the booking service, from the app's own pool) and cancel
(an update to ``status: cancelled``). The booking rules and their codes are the JSON API's (``slot_full``,
``already_booked``, ``booking_window_closed``, ...), answered as an OperationOutcome."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.principal import Principal
from carebridge.core import idempotency
from carebridge.core.errors import Conflict, Forbidden
from carebridge.directory import service as directory
from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.body import read_resource
from carebridge.interop.fhir.outcome import FhirResponse, Invalid
from carebridge.interop.fhir.resources import schedule as schedule_resource
from carebridge.interop.fhir.resources.common import gone, parse_id, reference
from carebridge.interop.fhir.search import Params, bundle, fhir_base, instant
from carebridge.scheduling import booking, desk
from carebridge.scheduling import search as scheduling
from carebridge.scheduling.models import Appointment, AppointmentStatus

router = APIRouter()
SEARCH = ("patient", "practitioner", "actor", "date", "status")
STATUS = {
    AppointmentStatus.booked: "booked",
    AppointmentStatus.checked_in: "arrived",
    AppointmentStatus.completed: "fulfilled",
    AppointmentStatus.cancelled: "cancelled",
    AppointmentStatus.no_show: "noshow",
}
FROM_STATUS: dict[str, AppointmentStatus] = {v: k for k, v in STATUS.items()} | {
    "checked-in": AppointmentStatus.checked_in
}
BOOKABLE = {"proposed", "pending", "booked"}  # what a request may say: the answer is booked, or an error
OPERATION = "fhir.appointment.create"


async def present(session: AsyncSession, appointments: list[Appointment]) -> list[dict[str, Any]]:
    labels = await directory.names(
        session,
        department_ids={a.department_id for a in appointments},
        practitioner_ids={a.practitioner_id for a in appointments},
    )
    schedules = await scheduling.schedules_by_id(session, {a.schedule_id for a in appointments})
    kinds = await scheduling.visit_types(session, {s.visit_type_id for s in schedules.values()})
    kind_of = {s.id: kinds.get(s.visit_type_id) for s in schedules.values()}
    out = []
    for a in appointments:
        resource: dict[str, Any] = {
            "resourceType": "Appointment",
            "id": str(a.id),
            "status": STATUS[a.status],
            "start": instant(a.starts_at),
            "end": instant(a.ends_at),
            "created": a.created_at.date().isoformat(),
            "slot": [reference("Slot", a.slot_id)],
            "participant": [
                {"actor": reference("Patient", a.patient_id), "required": "required", "status": "accepted"},
                {
                    "actor": reference("Practitioner", a.practitioner_id, labels.get(a.practitioner_id, ("",))[0]),
                    "required": "required",
                    "status": "accepted",
                },
                {
                    "actor": reference("HealthcareService", a.department_id, labels.get(a.department_id, ("",))[0]),
                    "required": "information-only",
                    "status": "accepted",
                },
            ],
        }
        service_type = schedule_resource.service_type(kind_of.get(a.schedule_id))
        if service_type:
            resource["serviceType"] = service_type
        if a.status == AppointmentStatus.cancelled and a.cancel_reason:
            resource["cancelationReason"] = {"text": a.cancel_reason}
        if a.queue_number is not None:
            resource["comment"] = f"queue number {a.queue_number}"
        out.append(resource)
    return out


class _Answer(desk.Shape):
    """A booking answered as a FHIR Appointment (no patient name in it: nothing personal to audit)."""

    operation = OPERATION

    async def batch(self, session: AsyncSession, booked: list[desk.Booked]) -> list[dict[str, Any]]:
        return await present(session, [b.appointment for b in booked])

    def record(self, session: AsyncSession, booked: desk.Booked) -> None:
        pass

    async def alone(self, session: AsyncSession, principal: Principal, appointment: Appointment) -> dict[str, Any]:
        return (await present(session, [appointment]))[0]


ANSWER = _Answer()


async def _find(session: AsyncSession, who: Caller, appointment_id: uuid.UUID, permission: str) -> Appointment:
    reach = await who.patients(session, "Appointment", permission)
    rows, _ = await scheduling.search_appointments(
        session, hospitals=who.hospitals, patient_ids=reach, ids=[appointment_id], limit=1
    )
    if not rows:
        raise gone("Appointment", appointment_id)
    return rows[0]


@router.get("/Appointment/{ident}", summary="Read an Appointment")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    appointment_id = parse_id(ident, "Appointment")
    async with request.app.state.db.read() as session:
        appointment = await _find(session, who, appointment_id, "r")
        return FhirResponse((await present(session, [appointment]))[0])


@router.get("/Appointment", summary="Search Appointments: patient, practitioner (actor), date, status, _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    params = Params(request, SEARCH)
    statuses = params.choices("status", FROM_STATUS)
    practitioners = params.ids("practitioner", resource="Practitioner") or params.ids("actor", resource="Practitioner")
    zone = request.app.state.settings.default_timezone
    async with request.app.state.db.read() as session:
        reach = await who.searched_patients(session, "Appointment", params.ids("patient", resource="Patient"))
        rows, total = await scheduling.search_appointments(
            session,
            hospitals=who.hospitals,
            patient_ids=reach,
            ids=params.ids(),
            practitioner_id=practitioners[0] if practitioners else None,
            starts=params.instants("date", zone),
            statuses=statuses,
            limit=params.count(),
            exact_total=params.exact_total(),
            offset=params.offset(),
        )
        resources = await present(session, rows)
    return FhirResponse(bundle(request, "Appointment", resources, total=total, params=params))


def _booking_request(model: Any) -> tuple[uuid.UUID, uuid.UUID]:
    """The slot and the patient a new Appointment asks for."""
    if model.status not in BOOKABLE:
        raise Invalid(
            "unsupported_status",
            f"a new Appointment is booked: send status booked (or proposed / pending), not {model.status}",
            details={"field": "Appointment.status"},
        )
    slots = model.slot or []
    if len(slots) != 1 or not (slots[0].reference or "").startswith("Slot/"):
        raise Invalid(
            "slot_required",
            "reference exactly one Slot (slot: [{reference: Slot/<id>}])",
            details={"field": "Appointment.slot"},
        )
    patients = [
        p.actor.reference
        for p in model.participant or []
        if p.actor is not None and (p.actor.reference or "").startswith("Patient/")
    ]
    if len(patients) != 1:
        raise Invalid(
            "patient_required",
            "name exactly one participant actor Patient/<id>",
            details={"field": "Appointment.participant"},
        )
    try:
        return uuid.UUID(slots[0].reference[5:]), uuid.UUID(patients[0][8:])
    except ValueError:
        raise Invalid(
            "unknown_reference", "the Slot or Patient is not known here", details={"field": "Appointment.slot"}
        ) from None


@router.post("/Appointment", status_code=201, summary="Book: create an Appointment for a free Slot")
async def create(
    request: Request,
    who: Caller = Depends(caller),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> FhirResponse:
    contexts = who.contexts("Appointment", "c")
    if contexts == {"system"}:
        raise Forbidden("patient_context_required", "booking needs a patient's token (authorization code flow)")
    body, model = await read_resource(request, "Appointment")
    slot_id, patient_id = _booking_request(model)
    principal = who.acting_patient()

    async def check(session: AsyncSession) -> None:
        reach = await who.patients(session, "Appointment", "c")
        if reach is not None and patient_id not in reach:
            raise Forbidden(
                "patient_not_in_context",
                "the token does not act for this patient",
                details={"field": "Appointment.participant"},
            )
        place = await scheduling.partner_place(session, slot_id=slot_id, channel=who.channel, hospitals=who.hospitals)
        if place == "unknown":
            raise Invalid(
                "unknown_reference",
                f"Slot/{slot_id} is not known here",
                details={"field": "Appointment.slot"},
                status=422,
            )
        if place == "full":
            raise Conflict("slot_full", "no places left in this slot for this app", details={"slot_id": str(slot_id)})

    db = request.app.state.db
    status, resource = await desk.desk_for(db).book(  # decided with the bookings waiting beside it
        principal,
        patient_id=patient_id,
        slot_id=slot_id,
        channel=who.channel,
        key=idempotency.check_key(idempotency_key),
        payload_hash=lambda: idempotency.request_hash(body),
        shape=ANSWER,
        check=check,
    )
    location = f"{fhir_base(request)}/Appointment/{resource['id']}"
    return FhirResponse(resource, status_code=status, headers={"Location": location})


@router.put("/Appointment/{ident}", summary="Cancel an Appointment: update it with status cancelled")
async def update(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    appointment_id = parse_id(ident, "Appointment")
    body, model = await read_resource(request, "Appointment")
    if body.get("id") != str(appointment_id):
        raise Invalid(
            "id_mismatch", "the resource's id must be the one in the URL", details={"field": "Appointment.id"}
        )
    if model.status != "cancelled":
        raise Invalid(
            "unsupported_update",
            "an Appointment is changed only by cancelling it: send it with status cancelled",
            details={"field": "Appointment.status"},
        )
    reason = (model.cancelationReason.text if model.cancelationReason else None) or "cancelled through a partner app"
    db = request.app.state.db
    async with db.transaction() as session:
        appointment = await _find(session, who, appointment_id, "u")
        if appointment.status == AppointmentStatus.cancelled:
            return FhirResponse((await present(session, [appointment]))[0])  # already so: the update is a no-op
        cancelled = await booking.cancel(
            session, principal=who.acting_patient(), appointment_id=appointment.id, reason=reason[:200]
        )
        return FhirResponse((await present(session, [cancelled]))[0])
