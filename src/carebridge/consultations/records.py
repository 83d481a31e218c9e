"""Outpatient records: written by the consulting doctor, signed, never changed after signing.

One record per consultation, kept as versions. The doctor saves a draft as often as they like; signing (with
their password: rule R5) hashes the content, signs the hash (``core.signing``) and freezes the version. A change
after that is a new version that carries the reason for the change; it is signed like the first and emits
``record.amended``. Each signed version is quality-checked at once (``consultations.quality``).

Who may read: the consultation's doctor, the patient's linked accounts, the hospital's admins (for quality
control); every read is audited, the record being health data.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth import service as auth
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.consultations import icd10, quality, service
from carebridge.consultations.models import Consultation, ConsultationStatus, MedicalRecord, RecordStatus
from carebridge.core import audit, clock, signing
from carebridge.core.errors import Conflict, InvalidInput, not_found
from carebridge.events.outbox import append_event

TEXT_FIELDS = ("chief_complaint", "present_illness", "past_history", "allergies", "physical_findings", "advice")
WRITABLE = (ConsultationStatus.in_progress, ConsultationStatus.closed)
MAX_DIAGNOSES = 10


def diagnoses_with_titles(codes: list[str]) -> list[dict[str, str]]:
    """ICD-10 codes checked against the registry, each with its title; 422 for an unknown code or a repeat."""
    if len(codes) > MAX_DIAGNOSES:
        raise InvalidInput("too_many_diagnoses", f"at most {MAX_DIAGNOSES} diagnoses", details={"field": "diagnoses"})
    out: list[dict[str, str]] = []
    for i, raw in enumerate(codes):
        code = service.normalise_icd10(raw, field=f"diagnoses[{i}]")
        if any(d["code"] == code for d in out):
            raise InvalidInput("duplicate_diagnosis", f"{code} is listed twice", details={"field": f"diagnoses[{i}]"})
        out.append({"code": code, "title": icd10.get_description(code)})
    return out


def content_of(r: MedicalRecord) -> dict[str, Any]:
    """What the signature covers: every clinical field, the version and who it is about and by."""
    return {
        "record": "carebridge.outpatient-record/1",
        "consultation_id": str(r.consultation_id),
        "version": r.version,
        "patient_id": str(r.patient_id),
        "practitioner_id": str(r.practitioner_id),
        **{f: getattr(r, f) for f in TEXT_FIELDS},
        "diagnoses": [d["code"] for d in r.diagnoses],
        "amend_reason": r.amend_reason,
    }


def integrity(r: MedicalRecord) -> str:
    """``verified`` when the stored content still hashes to the signed hash and the signature holds."""
    if r.status != RecordStatus.signed or r.content_sha256 is None or r.signature is None or r.signed_at is None:
        return "unsigned"
    if signing.content_hash(content_of(r)) != r.content_sha256:
        return "tampered"
    ok = signing.verify(r.signature, r.content_sha256, signer=str(r.signed_by_user_id), signed_at=r.signed_at)
    return "verified" if ok else "tampered"


async def _versions(session: AsyncSession, consultation_id: uuid.UUID) -> list[MedicalRecord]:
    rows = await session.scalars(
        select(MedicalRecord).where(MedicalRecord.consultation_id == consultation_id).order_by(MedicalRecord.version)
    )
    return list(rows)


async def _doctor_consultation(session: AsyncSession, principal: Principal, consultation_id: uuid.UUID) -> Consultation:
    service.require_doctor(principal)
    c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
    if c.status not in WRITABLE:
        raise Conflict(
            "record_not_writable",
            "a record is written once the consultation has started",
            details={"status": c.status.value},
        )
    return c


async def save_draft(
    session: AsyncSession,
    *,
    principal: Principal,
    consultation_id: uuid.UUID,
    fields: dict[str, Any],
    diagnoses: list[str],
    amend_reason: str | None,
) -> MedicalRecord:
    """Create or update the draft version. After a signed version, a draft is a new version and needs
    ``amend_reason`` (409 ``record_signed`` without it); a first version takes none (422)."""
    c = await _doctor_consultation(session, principal, consultation_id)
    coded = diagnoses_with_titles(diagnoses)
    versions = await _versions(session, c.id)
    draft = next((v for v in versions if v.status == RecordStatus.draft), None)
    signed = [v for v in versions if v.status == RecordStatus.signed]
    if signed and not amend_reason:
        raise Conflict(
            "record_signed",
            "a signed record cannot change: give amend_reason to write a new version",
            details={"version": signed[-1].version},
        )
    if not signed and amend_reason:
        raise InvalidInput(
            "nothing_to_amend", "amend_reason is for changing a signed record", details={"field": "amend_reason"}
        )
    if draft is None:
        draft = MedicalRecord(
            consultation_id=c.id,
            version=(versions[-1].version + 1) if versions else 1,
            hospital_id=c.hospital_id,
            region=c.region,
            patient_id=c.patient_id,
            practitioner_id=c.practitioner_id,
            status=RecordStatus.draft,
        )
        session.add(draft)
    for f in TEXT_FIELDS:
        setattr(draft, f, fields.get(f))
    draft.diagnoses = coded
    draft.amend_reason = amend_reason
    draft.practitioner_id = c.practitioner_id  # after a hand-over, the doctor now in charge writes it
    await session.flush()
    return draft


async def sign(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID, password: str
) -> MedicalRecord:
    """Sign the draft: hash, signature, immutable from now on; then quality control. 409 ``no_draft`` when
    there is nothing to sign; 401 ``reauthentication_failed`` for a wrong password."""
    c = await _doctor_consultation(session, principal, consultation_id)
    await auth.reauthenticate(session, principal=principal, password=password)
    draft = await session.scalar(
        select(MedicalRecord).where(MedicalRecord.consultation_id == c.id, MedicalRecord.status == RecordStatus.draft)
    )
    if draft is None:
        raise Conflict("no_draft", "there is no draft record to sign")
    now = clock.now()
    draft.signed_at = now
    draft.signed_by_user_id = principal.user_id
    draft.content_sha256 = signing.content_hash(content_of(draft))
    draft.signature = signing.sign(draft.content_sha256, signer=str(principal.user_id), signed_at=now)
    draft.status = RecordStatus.signed
    await session.flush()
    type_ = "record.signed" if draft.version == 1 else "record.amended"
    _emit(session, type_, draft, c, principal.actor)
    await quality.score(session, record=draft, consultation=c)
    return draft


def _emit(session: AsyncSession, type_: str, r: MedicalRecord, c: Consultation, actor: str) -> None:
    signed_at = r.signed_at or clock.now()
    append_event(
        session,
        type_,
        subject_type="medical_record",
        subject_id=r.id,
        hospital_id=r.hospital_id,
        region=r.region,
        actor=actor,
        data={
            "record_id": r.id,
            "consultation_id": r.consultation_id,
            "patient_id": r.patient_id,
            "practitioner_id": r.practitioner_id,
            "version": r.version,
            "diagnoses": [d["code"] for d in r.diagnoses],
            "content_sha256": r.content_sha256,
            "signed_at": signed_at,
            "consultation_ended_at": c.ended_at,
            "hours_after_consultation": (
                round((signed_at - c.ended_at).total_seconds() / 3600, 2) if c.ended_at else None
            ),
            "amend_reason": r.amend_reason,
        },
    )


async def readable(session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID) -> Consultation:
    """The consultation if the caller may read its record (participants, the hospital's admins); 404 if not."""
    if principal.role == Role.hospital_admin or principal.role == Role.platform_admin:
        c = await service.get_consultation(session, consultation_id)
        if not principal.can_manage_hospital(c.hospital_id):
            raise not_found("consultation", consultation_id)
        return c
    return await service.authorised(session, principal=principal, consultation_id=consultation_id)


async def versions_for(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID
) -> list[MedicalRecord]:
    """Every version, oldest first (drafts only to their doctor). Audited."""
    c = await readable(session, principal=principal, consultation_id=consultation_id)
    rows = [
        r for r in await _versions(session, c.id) if r.status == RecordStatus.signed or principal.role == Role.doctor
    ]
    audit.record(
        session,
        action="medical_record.read",
        subject_type="consultation",
        subject_id=c.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=c.hospital_id,
        detail={"versions": [r.version for r in rows]},
    )
    return rows


async def current_signed(session: AsyncSession, consultation_id: uuid.UUID) -> MedicalRecord | None:
    """The record in force: the highest signed version."""
    return await session.scalar(
        select(MedicalRecord)
        .where(MedicalRecord.consultation_id == consultation_id, MedicalRecord.status == RecordStatus.signed)
        .order_by(MedicalRecord.version.desc())
        .limit(1)
    )


async def rescore(session: AsyncSession, consultation: Consultation) -> None:
    """After a prescription is signed: quality-check the record in force again (nothing if none is signed)."""
    record = await current_signed(session, consultation.id)
    if record is not None:
        await quality.score(session, record=record, consultation=consultation)


async def patient_allergies(session: AsyncSession, c: Consultation) -> str | None:
    """What the patient is allergic to, as far as this consultation knows: the record's allergy history when
    one is written, else the pre-consultation form's."""
    record = await session.scalar(
        select(MedicalRecord)
        .where(MedicalRecord.consultation_id == c.id)
        .order_by(MedicalRecord.version.desc())
        .limit(1)
    )
    texts = [t for t in ((record.allergies if record else None), c.allergies) if t]
    return "\n".join(texts) or None
