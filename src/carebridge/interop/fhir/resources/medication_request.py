"""MedicationRequest: one drug of a signed e-prescription (its prescription is the ``groupIdentifier``), at a
hospital that granted the app, for a patient the token reaches (``patient/``, ``user/``) or any patient there
(``system/``). A prescription waiting for the pharmacist is ``on-hold``, approved ``active``, dispensed
``completed``; drafts and prescriptions sent back to their doctor are not shown."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.directory import service as directory
from carebridge.interop.fhir.access import Caller, caller
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.resources.common import SYSTEM, gone, parse_id, reference
from carebridge.interop.fhir.search import Params, bundle, instant
from carebridge.prescribing import search as prescribing
from carebridge.prescribing.models import Prescription, PrescriptionItem, PrescriptionStatus

router = APIRouter()
SEARCH = ("patient", "encounter", "status")
STATUS = {
    PrescriptionStatus.pending_review: "on-hold",
    PrescriptionStatus.approved: "active",
    PrescriptionStatus.dispensed: "completed",
    PrescriptionStatus.expired: "stopped",
    PrescriptionStatus.cancelled: "cancelled",
}
FROM_STATUS = {v: k for k, v in STATUS.items()}
DRUG_SYSTEM = f"{SYSTEM}/CodeSystem/hospital-drug"  # the hospital's own drug code (its formulary)
PRESCRIPTION_SYSTEM = f"{SYSTEM}/sid/prescription"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
UCUM = "http://unitsofmeasure.org"


def _dosage(item: PrescriptionItem) -> dict[str, Any]:
    return {
        "sequence": 1,
        "text": f"{item.dose:g} {item.dose_unit} {item.frequency} {item.route}, {item.days} 天 days",
        "timing": {"code": {"text": item.frequency}},
        "route": {"text": item.route},
        "doseAndRate": [{"doseQuantity": {"value": item.dose, "unit": item.dose_unit}}],
    }


async def present(session: AsyncSession, rows: list[tuple[PrescriptionItem, Prescription]]) -> list[dict[str, Any]]:
    labels = await directory.names(session, practitioner_ids={p.practitioner_id for _i, p in rows})
    out = []
    for item, prescription in rows:
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": str(item.id),
            "groupIdentifier": {"system": PRESCRIPTION_SYSTEM, "value": str(prescription.id)},
            "status": STATUS[prescription.status],
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [{"system": DRUG_SYSTEM, "code": item.drug_code, "display": item.drug_name}],
                "text": f"{item.drug_name} {item.strength}",
            },
            "subject": reference("Patient", prescription.patient_id),
            "encounter": reference("Encounter", prescription.consultation_id),
            "requester": reference(
                "Practitioner", prescription.practitioner_id, labels.get(prescription.practitioner_id, ("",))[0] or None
            ),
            "dosageInstruction": [_dosage(item)],
            "dispenseRequest": {
                "quantity": {"value": item.quantity, "unit": item.unit},
                "expectedSupplyDuration": {"value": item.days, "unit": "d", "system": UCUM, "code": "d"},
            },
        }
        if prescription.signed_at is not None:
            resource["authoredOn"] = instant(prescription.signed_at)
        reasons = [
            {"coding": [{"system": ICD10, "code": d["code"], "display": d.get("title") or d["code"]}]}
            for d in prescription.diagnoses or []
            if d.get("code")
        ]
        if reasons:
            resource["reasonCode"] = reasons
        if prescription.expires_at is not None and prescription.status == PrescriptionStatus.approved:
            resource["dispenseRequest"]["validityPeriod"] = {"end": instant(prescription.expires_at)}
        out.append(resource)
    return out


@router.get("/MedicationRequest/{ident}", summary="Read a MedicationRequest (one drug of a signed prescription)")
async def read(ident: str, request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    item_id = parse_id(ident, "MedicationRequest")
    async with request.app.state.db.read() as session:
        reach = await who.patients(session, "MedicationRequest", "r")
        rows, _ = await prescribing.search_prescribed(
            session, hospitals=who.hospitals, patient_ids=reach, ids=[item_id], limit=1
        )
        if not rows:
            raise gone("MedicationRequest", item_id)
        return FhirResponse((await present(session, rows))[0])


@router.get("/MedicationRequest", summary="Search MedicationRequests: patient, encounter, status, _id")
async def search(request: Request, who: Caller = Depends(caller)) -> FhirResponse:
    params = Params(request, SEARCH)
    statuses = params.choices("status", FROM_STATUS)
    async with request.app.state.db.read() as session:
        reach = await who.searched_patients(session, "MedicationRequest", params.ids("patient", resource="Patient"))
        rows, total = await prescribing.search_prescribed(
            session,
            hospitals=who.hospitals,
            patient_ids=reach,
            ids=params.ids(),
            consultation_ids=params.ids("encounter", resource="Encounter"),
            statuses=statuses,
            limit=params.count(),
            exact_total=params.exact_total(),
            offset=params.offset(),
        )
        resources = await present(session, rows)
    return FhirResponse(bundle(request, "MedicationRequest", resources, total=total, params=params))
