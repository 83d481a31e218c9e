"""Encounter: an online consultation (在线问诊), text or video, at a hospital that granted the app, of a patient
the token reaches (``patient/``, ``user/``) or any patient there (``system/``). The clinical text (complaint,
history, the record) is not given to apps: the Encounter says who, where, when and how it went."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.consultations import search as consultations
from carebridge.consultations.models import Consultation, ConsultationKind, ConsultationStatus
from carebridge.directory import service as directory
from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.resources.common import SYSTEM, gone, parse_id, reference
from carebridge.interop.fhir.search import Params, bundle, instant

router = APIRouter()
SEARCH = ("patient", "practitioner", "date", "status")
STATUS = {
    ConsultationStatus.requested: "planned",
    ConsultationStatus.accepted: "planned",
    ConsultationStatus.in_progress: "in-progress",
    ConsultationStatus.closed: "finished",
    ConsultationStatus.rejected: "cancelled",
    ConsultationStatus.expired: "cancelled",
    ConsultationStatus.cancelled: "cancelled",
}
FROM_STATUS: dict[str, list[ConsultationStatus]] = {}
for _ours, _theirs in STATUS.items():
    FROM_STATUS.setdefault(_theirs, []).append(_ours)
VIRTUAL = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR", "display": "virtual"}
KIND_SYSTEM = f"{SYSTEM}/CodeSystem/consultation-kind"
KIND_WORDS = {
    ConsultationKind.text: "图文问诊 text consultation",
    ConsultationKind.video: "视频问诊 video consultation",
}


async def present(session: AsyncSession, rows: list[Consultation]) -> list[dict[str, Any]]:
    labels = await directory.names(
        session,
        hospital_ids={c.hospital_id for c in rows},
        department_ids={c.department_id for c in rows},
        practitioner_ids={c.practitioner_id for c in rows},
    )

    def label(ident: Any) -> str | None:
        return labels.get(ident, ("",))[0] or None

    out = []
    for c in rows:
        resource: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": str(c.id),
            "status": STATUS[c.status],
            "class": VIRTUAL,
            "type": [{"coding": [{"system": KIND_SYSTEM, "code": c.kind.value, "display": KIND_WORDS[c.kind]}]}],
            "subject": reference("Patient", c.patient_id),
            "participant": [{"individual": reference("Practitioner", c.practitioner_id, label(c.practitioner_id))}],
            "serviceProvider": reference("Organization", c.hospital_id, label(c.hospital_id)),
        }
        period = {k: instant(v) for k, v in (("start", c.started_at), ("end", c.ended_at)) if v is not None}
        if period:
            resource["period"] = period
        if c.appointment_id is not None:
            resource["appointment"] = [reference("Appointment", c.appointment_id)]
        if c.status in (ConsultationStatus.rejected, ConsultationStatus.expired, ConsultationStatus.cancelled):
            resource["statusHistory"] = [{"status": "planned", "period": {"start": instant(c.requested_at)}}]
        out.append(resource)
    return out


@router.get("/Encounter/{ident}", summary="Read an Encounter (an online consultation)")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    consultation_id = parse_id(ident, "Encounter")
    async with request.app.state.db.read() as session:
        reach = await who.patients(session, "Encounter", "r")
        rows, _ = await consultations.search_consultations(
            session, hospitals=who.hospitals, patient_ids=reach, ids=[consultation_id], limit=1
        )
        if not rows:
            raise gone("Encounter", consultation_id)
        return FhirResponse((await present(session, rows))[0])


@router.get("/Encounter", summary="Search Encounters: patient, practitioner, date, status, _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    params = Params(request, SEARCH)
    statuses = params.choices("status", FROM_STATUS)
    practitioners = params.ids("practitioner", resource="Practitioner")
    zone = request.app.state.settings.default_timezone
    async with request.app.state.db.read() as session:
        reach = await who.searched_patients(session, "Encounter", params.ids("patient", resource="Patient"))
        rows, total = await consultations.search_consultations(
            session,
            hospitals=who.hospitals,
            patient_ids=reach,
            ids=params.ids(),
            practitioner_id=practitioners[0] if practitioners else None,
            requested=params.instants("date", zone),
            statuses=[s for group in statuses for s in group] if statuses else None,
            limit=params.count(),
            exact_total=params.exact_total(),
            offset=params.offset(),
        )
        resources = await present(session, rows)
    return FhirResponse(bundle(request, "Encounter", resources, total=total, params=params))
