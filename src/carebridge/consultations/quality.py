"""Quality control of signed medical records.

Each signed version is scored at once, and again whenever a prescription of its consultation is signed (the
diagnosis and allergy checks read the prescriptions). A defect has a code, a weight and, where one applies, the
regulation rule; the score is 100 minus the weights (not below 0). Defects per record is the metric per doctor
and per hospital; hospital admins work through the records with open defects and resolve them with a note.

``find_defects`` is pure, so the supervision engine can reuse it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.principal import Principal
from carebridge.consultations import icd10
from carebridge.consultations.models import Consultation, MedicalRecord, QcStatus, RecordQuality
from carebridge.core import audit, clock
from carebridge.core.errors import Conflict, Forbidden, not_found
from carebridge.events.outbox import append_event
from carebridge.prescribing import knowledge
from carebridge.prescribing.checks import same_condition
from carebridge.prescribing.models import Drug, Prescription, PrescriptionItem, PrescriptionStatus

# code: (weight, rule or None, what it means)
DEFECTS: dict[str, tuple[int, str | None, str]] = {
    "missing_chief_complaint": (10, None, "no chief complaint"),
    "missing_present_illness": (8, None, "no history of the present illness"),
    "missing_past_history": (5, None, "no past history"),
    "missing_allergies": (8, None, "allergy history not stated (write 'none' when there is none)"),
    "missing_diagnosis": (20, None, "no diagnosis"),
    "missing_advice": (5, None, "no advice to the patient"),
    "invalid_diagnosis_code": (20, None, "a diagnosis code the ICD-10 registry does not have"),
    "unspecific_diagnosis_code": (3, None, "a category code where a more specific code exists"),
    "diagnosis_prescription_mismatch": (10, "R2", "a prescription treats a diagnosis the record does not have"),
    "allergy_drug_conflict": (15, "R14", "a prescribed drug conflicts with the recorded allergies"),
    "late_signature": (10, "R15", "signed later than the deadline after the consultation ended"),
}
SIGN_DEADLINE_HOURS = 24  # rule R15's default; settings ``record_sign_hours``
COUNTED = (QcStatus.clean, QcStatus.open, QcStatus.resolved)  # superseded versions do not count twice


def configure(*, sign_hours: int) -> None:
    global SIGN_DEADLINE_HOURS
    SIGN_DEADLINE_HOURS = sign_hours


@dataclass(frozen=True, slots=True)
class PrescribedDrug:
    name: str
    substance: str
    atc_code: str


@dataclass(frozen=True, slots=True)
class PrescriptionFacts:
    diagnoses: tuple[str, ...]
    drugs: tuple[PrescribedDrug, ...]


def defect(kind: str, **details: Any) -> dict[str, Any]:
    weight, rule, message = DEFECTS[kind]
    return {"code": kind, "weight": weight, "rule": rule, "message": message, "details": details}


def find_defects(
    *,
    fields: dict[str, str | None],
    diagnoses: list[str],
    ended_at: datetime | None,
    signed_at: datetime,
    prescriptions: list[PrescriptionFacts],
    kb: knowledge.Knowledge,
    deadline_hours: int,
) -> list[dict[str, Any]]:
    """The defects of one record version (pure)."""
    found = [
        defect(f"missing_{name}")
        for name in ("chief_complaint", "present_illness", "past_history", "allergies", "advice")
        if not (fields.get(name) or "").strip()
    ]
    if not diagnoses:
        found.append(defect("missing_diagnosis"))
    for code in diagnoses:
        if not icd10.is_valid_item(code):
            found.append(defect("invalid_diagnosis_code", code=code))
        elif not icd10.is_leaf(code):
            found.append(defect("unspecific_diagnosis_code", code=code))
    for rx in prescriptions:
        unmatched = [d for d in rx.diagnoses if not any(same_condition(d, r) for r in diagnoses)]
        if unmatched:
            found.append(defect("diagnosis_prescription_mismatch", prescription_diagnoses=unmatched))
    rules = kb.allergens_in(fields.get("allergies"))
    for rx in prescriptions:
        for drug in rx.drugs:
            refs = kb.refs(drug.substance, drug.atc_code)
            for rule in rules:
                if refs & rule.drugs:
                    found.append(defect("allergy_drug_conflict", drug=drug.name, allergen=rule.allergen))
    if ended_at is not None:
        hours = (signed_at - ended_at).total_seconds() / 3600
        if hours > deadline_hours:
            found.append(defect("late_signature", hours=round(hours, 1), deadline_hours=deadline_hours))
    return found


async def prescription_facts(session: AsyncSession, consultation_id: uuid.UUID) -> list[PrescriptionFacts]:
    """The consultation's prescriptions that a doctor has signed (whatever happened to them since)."""
    rows = (
        await session.execute(
            select(Prescription.id, Prescription.diagnoses).where(
                Prescription.consultation_id == consultation_id,
                Prescription.signed_at.is_not(None),
                Prescription.status != PrescriptionStatus.cancelled,
            )
        )
    ).all()
    if not rows:
        return []
    items = (
        await session.execute(
            select(PrescriptionItem.prescription_id, PrescriptionItem.drug_name, PrescriptionItem.drug_id)
            .where(PrescriptionItem.prescription_id.in_([r.id for r in rows]))
            .order_by(PrescriptionItem.line)
        )
    ).all()
    drugs = {d.id: d for d in await session.scalars(select(Drug).where(Drug.id.in_({i.drug_id for i in items})))}
    out = []
    for r in rows:
        listed = tuple(
            PrescribedDrug(i.drug_name, drugs[i.drug_id].substance, drugs[i.drug_id].atc_code)
            for i in items
            if i.prescription_id == r.id
        )
        out.append(PrescriptionFacts(tuple(d["code"] for d in r.diagnoses), listed))
    return out


async def score(session: AsyncSession, *, record: MedicalRecord, consultation: Consultation) -> RecordQuality:
    """Score a signed version (again, if it was scored before) and emit ``record.qc_scored``."""
    assert record.signed_at is not None
    defects = find_defects(
        fields={
            f: getattr(record, f) for f in ("chief_complaint", "present_illness", "past_history", "allergies", "advice")
        },
        diagnoses=[d["code"] for d in record.diagnoses],
        ended_at=consultation.ended_at,
        signed_at=record.signed_at,
        prescriptions=await prescription_facts(session, consultation.id),
        kb=knowledge.current(),
        deadline_hours=SIGN_DEADLINE_HOURS,
    )
    points = max(0, 100 - sum(d["weight"] for d in defects))
    row = await session.scalar(select(RecordQuality).where(RecordQuality.record_id == record.id))
    status = QcStatus.open if defects else QcStatus.clean
    if row is None:
        # A newer version replaces the older ones in the QC list and the metrics.
        await session.execute(
            update(RecordQuality)
            .where(RecordQuality.consultation_id == consultation.id, RecordQuality.record_id != record.id)
            .values(status=QcStatus.superseded)
        )
        row = RecordQuality(
            record_id=record.id,
            consultation_id=consultation.id,
            hospital_id=record.hospital_id,
            practitioner_id=record.practitioner_id,
            status=status,
            score=points,
            defect_count=len(defects),
            defects=defects,
        )
        session.add(row)
    else:
        codes_before = {d["code"] for d in row.defects}
        row.score, row.defect_count, row.defects, row.checked_at = points, len(defects), defects, clock.now()
        if row.status != QcStatus.resolved or {d["code"] for d in defects} - codes_before:
            row.status = status  # a new defect reopens a resolved record
    await session.flush()
    append_event(
        session,
        "record.qc_scored",
        subject_type="medical_record",
        subject_id=record.id,
        hospital_id=record.hospital_id,
        region=record.region,
        actor="system",
        data={
            "record_id": record.id,
            "consultation_id": record.consultation_id,
            "practitioner_id": record.practitioner_id,
            "version": record.version,
            "score": points,
            "defect_count": len(defects),
            "defects": [d["code"] for d in defects],
        },
    )
    return row


def _require_qc_reader(principal: Principal, hospital_id: uuid.UUID) -> None:
    if not principal.can_manage_hospital(hospital_id):
        raise Forbidden("other_hospital", "only this hospital's admins work through its record quality")


async def qc_list(
    session: AsyncSession,
    *,
    principal: Principal,
    hospital_id: uuid.UUID,
    status: QcStatus | None,
    practitioner_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[RecordQuality], int]:
    """The hospital's scored records, worst first (open ones by default)."""
    _require_qc_reader(principal, hospital_id)
    query = select(RecordQuality).where(RecordQuality.hospital_id == hospital_id)
    query = query.where(RecordQuality.status == (status or QcStatus.open))
    if practitioner_id is not None:
        query = query.where(RecordQuality.practitioner_id == practitioner_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(RecordQuality.score, RecordQuality.checked_at.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


async def resolve(session: AsyncSession, *, principal: Principal, qc_id: uuid.UUID, note: str) -> RecordQuality:
    row = await session.get(RecordQuality, qc_id)
    if row is None or not principal.can_manage_hospital(row.hospital_id):
        raise not_found("record_qc", qc_id)
    if row.status != QcStatus.open:
        raise Conflict("qc_not_open", f"this QC result is {row.status.value}", details={"status": row.status.value})
    row.status = QcStatus.resolved
    row.resolved_at = clock.now()
    row.resolved_by_user_id = principal.user_id
    row.resolution = note
    audit.record(
        session,
        action="record_qc.resolved",
        subject_type="record_qc",
        subject_id=row.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=row.hospital_id,
        detail={"note_length": len(note)},
    )
    await session.flush()
    return row


async def metrics(session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID) -> dict[str, Any]:
    """Defects per record, per doctor and for the hospital (record versions in force only)."""
    _require_qc_reader(principal, hospital_id)
    rows = (
        await session.execute(
            select(
                RecordQuality.practitioner_id,
                func.count(),
                func.sum(RecordQuality.defect_count),
                func.avg(RecordQuality.score),
                func.sum(case((RecordQuality.status == QcStatus.open, 1), else_=0)),
            )
            .where(RecordQuality.hospital_id == hospital_id, RecordQuality.status.in_(COUNTED))
            .group_by(RecordQuality.practitioner_id)
        )
    ).all()
    doctors = [
        {
            "practitioner_id": pid,
            "records": n,
            "defects": int(d or 0),
            "defects_per_record": round(int(d or 0) / n, 3),
            "mean_score": round(float(s or 0), 1),
            "open": int(o or 0),
        }
        for pid, n, d, s, o in rows
    ]
    records = sum(x["records"] for x in doctors)
    defects = sum(x["defects"] for x in doctors)
    return {
        "hospital_id": hospital_id,
        "records": records,
        "defects": defects,
        "defects_per_record": round(defects / records, 3) if records else 0.0,
        "open": sum(x["open"] for x in doctors),
        "doctors": sorted(doctors, key=lambda x: -x["defects_per_record"]),
    }
