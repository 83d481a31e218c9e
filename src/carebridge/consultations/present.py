"""Shaping consultations into answers: names joined, the patient masked except to their own accounts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.principal import Principal
from carebridge.consultations import icd10
from carebridge.consultations.models import Consultation, OfflineDiagnosis
from carebridge.consultations.schemas import (
    ConsultationDetailOut,
    ConsultationOut,
    OfflineDiagnosisOut,
    PatientSummary,
)
from carebridge.consultations.service import years_between
from carebridge.core import audit, clock
from carebridge.directory import service as directory
from carebridge.patients import service as patients


def diagnosis_out(row: OfflineDiagnosis) -> OfflineDiagnosisOut:
    out = OfflineDiagnosisOut.model_validate(row)
    out.icd10_title = icd10.get_description(row.icd10_code) if icd10.is_valid_item(row.icd10_code) else None
    if row.document_storage_key is not None:
        out.document = {
            "content_type": row.document_content_type,
            "size": row.document_size,
            "sha256": row.document_sha256,
        }
    return out


async def consultations_out(
    session: AsyncSession, principal: Principal, rows: Sequence[Consultation], *, purpose: str
) -> list[ConsultationOut]:
    names = await directory.names(
        session,
        hospital_ids={c.hospital_id for c in rows},
        department_ids={c.department_id for c in rows},
        practitioner_ids={c.practitioner_id for c in rows},
    )
    people = await patients.describe(
        session, principal=principal, patient_ids=[c.patient_id for c in rows], purpose=purpose
    )
    today = clock.now().date()
    out = []
    for c in rows:
        item = ConsultationOut.model_validate(c)
        item.practitioner_name = names.get(c.practitioner_id, (None, None))[0]
        item.department_name = names.get(c.department_id, (None, None))[0]
        item.hospital_name = names.get(c.hospital_id, (None, None))[0]
        if (p := people.get(c.patient_id)) is not None:
            item.patient = PatientSummary(
                name=p.name, sex=str(p.sex), age=years_between(p.birth_date, today), masked=p.masked
            )
        out.append(item)
    return out


async def consultation_detail(session: AsyncSession, principal: Principal, c: Consultation) -> ConsultationDetailOut:
    """The consultation with its form; the read of the form is audited."""
    base = (await consultations_out(session, principal, [c], purpose="consultation"))[0]
    diagnosis = await session.get(OfflineDiagnosis, c.offline_diagnosis_id)
    audit.record(
        session,
        action="consultation.form.read",
        subject_type="consultation",
        subject_id=c.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=c.hospital_id,
    )
    return ConsultationDetailOut(
        **base.model_dump(),
        complaint=c.complaint,
        history=c.history,
        allergies=c.allergies,
        guardian_name=c.guardian_name,
        follows_up=diagnosis_out(diagnosis) if diagnosis else None,
    )
