from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, StrictInt, StrictStr

from carebridge.consultations.models import ConsultationKind, ConsultationStatus
from carebridge.core.schemas import Input, Output


class OfflineDiagnosisIn(Input):
    hospital_name: StrictStr = Field(min_length=2, max_length=120)
    diagnosed_on: date
    icd10_code: StrictStr = Field(min_length=3, max_length=8)
    diagnosis: StrictStr = Field(min_length=1, max_length=500)


class OfflineDiagnosisOut(Output):
    id: uuid.UUID
    patient_id: uuid.UUID
    hospital_name: str
    diagnosed_on: date
    icd10_code: str
    icd10_title: str | None = None
    diagnosis: str
    created_at: datetime
    document: dict[str, Any] | None = None  # {content_type, size, sha256} once a document is attached


class ConsultationIn(Input):
    patient_id: uuid.UUID
    hospital_id: uuid.UUID
    practitioner_id: uuid.UUID
    kind: ConsultationKind = ConsultationKind.text
    offline_diagnosis_id: uuid.UUID | None = None  # required by rule R1; missing gives 409 first_visit_not_online
    complaint: StrictStr = Field(min_length=2, max_length=1000)
    history: StrictStr | None = Field(default=None, max_length=2000)
    allergies: StrictStr | None = Field(default=None, max_length=500)
    guardian_name: StrictStr | None = Field(default=None, min_length=2, max_length=40)
    # A place in an online clinic session's ``online`` pool (GET /api/v1/schedules?channel=online): the visit is
    # booked there and starts accepted; without it, an on-demand request the doctor accepts or declines.
    slot_id: uuid.UUID | None = None


class ReasonIn(Input):
    reason: StrictStr = Field(min_length=1, max_length=200)


class PatientSummary(Output):
    name: str
    sex: str
    age: int
    masked: bool


class ConsultationOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    department_id: uuid.UUID
    kind: ConsultationKind
    status: ConsultationStatus
    offline_diagnosis_id: uuid.UUID
    appointment_id: uuid.UUID | None = None
    requested_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    practitioner_name: str | None = None
    department_name: str | None = None
    hospital_name: str | None = None
    patient: PatientSummary | None = None


class ConsultationDetailOut(ConsultationOut):
    """With the pre-consultation form: shown to the patient's accounts and the consulting doctor, audited."""

    complaint: str
    history: str | None
    allergies: str | None
    guardian_name: str | None
    follows_up: OfflineDiagnosisOut | None = None


class AttachmentOut(Output):
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    url: str
    purpose: str
    side: str


class ChatAttachment(Output):
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    url: str


class ChatMessageOut(Output):
    type: str = "message"
    seq: int
    sender: str
    client_id: str | None
    text: str | None
    attachment: ChatAttachment | None
    sent_at: datetime


class ChatHistoryOut(Output):
    messages: list[ChatMessageOut]
    last_seq: int
    read: dict[str, int]


class HandoverIn(Input):
    practitioner_id: uuid.UUID
    reason: StrictStr = Field(min_length=1, max_length=200)


class ConvertIn(Input):
    slot_id: uuid.UUID
    channel: StrictStr = Field(default="onsite", pattern=r"^(onsite|platform)$")


class ConvertOut(Output):
    consultation: ConsultationOut
    appointment_id: uuid.UUID
    starts_at: datetime


class RecordIn(Input):
    chief_complaint: StrictStr | None = Field(default=None, max_length=500)
    present_illness: StrictStr | None = Field(default=None, max_length=3000)
    past_history: StrictStr | None = Field(default=None, max_length=2000)
    allergies: StrictStr | None = Field(default=None, max_length=500)
    physical_findings: StrictStr | None = Field(default=None, max_length=2000)
    advice: StrictStr | None = Field(default=None, max_length=2000)
    diagnoses: list[StrictStr] = Field(default_factory=list, max_length=10)  # ICD-10 codes, the main one first
    amend_reason: StrictStr | None = Field(default=None, min_length=2, max_length=500)


class SignIn(Input):
    password: StrictStr = Field(min_length=1, max_length=128)


class QcOut(Output):
    id: uuid.UUID
    record_id: uuid.UUID
    consultation_id: uuid.UUID
    practitioner_id: uuid.UUID
    status: str
    score: int
    defect_count: int
    defects: list[dict[str, Any]]
    checked_at: datetime
    resolution: str | None


class RecordOut(Output):
    id: uuid.UUID
    consultation_id: uuid.UUID
    version: int
    status: str
    practitioner_id: uuid.UUID
    chief_complaint: str | None
    present_illness: str | None
    past_history: str | None
    allergies: str | None
    physical_findings: str | None
    advice: str | None
    diagnoses: list[dict[str, str]]
    amend_reason: str | None
    content_sha256: str | None
    signature: str | None
    signed_at: datetime | None
    integrity: str
    quality: QcOut | None = None


class QcPage(Output):
    items: list[QcOut]
    total: int


class ResolveIn(Input):
    note: StrictStr = Field(min_length=2, max_length=500)


class FollowUpIn(Input):
    due_on: date
    note: StrictStr | None = Field(default=None, max_length=500)


class FollowUpOut(Output):
    id: uuid.UUID
    consultation_id: uuid.UUID
    due_at: datetime
    note: str | None
    status: str
    notified_at: datetime | None


RatingTag = Literal[
    "clear_explanation",
    "patient_listening",
    "quick_reply",
    "professional",
    "slow_reply",
    "unclear_explanation",
    "rushed",
    "impolite",
]


class RatingIn(Input):
    stars: StrictInt = Field(ge=1, le=5)
    tags: list[RatingTag] = Field(default_factory=list, max_length=8)
    comment: StrictStr | None = Field(default=None, max_length=300)


class RatingOut(Output):
    id: uuid.UUID
    consultation_id: uuid.UUID
    practitioner_id: uuid.UUID
    stars: int
    tags: list[str]
    comment: str | None
    created_at: datetime


class ComplaintIn(Input):
    category: Literal["attitude", "medical_quality", "prescription", "delivery", "privacy", "fees", "other"]
    text: StrictStr = Field(min_length=5, max_length=1000)


class ComplaintOut(Output):
    id: uuid.UUID
    number: str
    consultation_id: uuid.UUID
    hospital_id: uuid.UUID
    practitioner_id: uuid.UUID
    category: str
    text: str
    created_at: datetime
