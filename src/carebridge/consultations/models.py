"""Online consultations and the offline diagnoses they follow up."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.database.base import Base, EncryptedString, IdMixin, enum_type


class ConsultationKind(enum.StrEnum):
    text = "text"
    video = "video"


class ConsultationStatus(enum.StrEnum):
    requested = "requested"
    accepted = "accepted"
    in_progress = "in_progress"
    closed = "closed"
    rejected = "rejected"
    expired = "expired"
    cancelled = "cancelled"


OPEN_STATUSES = (ConsultationStatus.requested, ConsultationStatus.accepted, ConsultationStatus.in_progress)


class OfflineDiagnosis(IdMixin, Base):
    """A diagnosis made in person at a hospital: what an online follow-up visit may follow up (rule R1)."""

    __tablename__ = "offline_diagnoses"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    hospital_name: Mapped[str] = mapped_column(String(120))
    diagnosed_on: Mapped[date]
    icd10_code: Mapped[str] = mapped_column(String(16))
    diagnosis: Mapped[str] = mapped_column(EncryptedString(2000))  # health data: sealed like names
    recorded_by_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    # The document that proves it (a discharge letter, an outpatient record): sealed in the file store.
    document_storage_key: Mapped[str | None] = mapped_column(String(200))
    document_filename: Mapped[str | None] = mapped_column(EncryptedString(600))
    document_content_type: Mapped[str | None] = mapped_column(String(64))
    document_size: Mapped[int | None]
    document_sha256: Mapped[str | None] = mapped_column(String(64))


class Consultation(IdMixin, Base):
    __tablename__ = "consultations"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    region: Mapped[str] = mapped_column(String(12))  # the patient's region: the future partition key
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    requested_by_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"))
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("departments.id"))
    kind: Mapped[ConsultationKind] = mapped_column(enum_type(ConsultationKind))
    status: Mapped[ConsultationStatus] = mapped_column(enum_type(ConsultationStatus))
    offline_diagnosis_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offline_diagnoses.id"))
    # Booked into an online clinic session: the place taken in its ``online`` pool (None: on demand).
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("appointments.id"))
    # The pre-consultation form: health data, sealed at rest.
    complaint: Mapped[str] = mapped_column(EncryptedString(6000))
    history: Mapped[str | None] = mapped_column(EncryptedString(6000))
    allergies: Mapped[str | None] = mapped_column(EncryptedString(2000))
    guardian_name: Mapped[str | None] = mapped_column(EncryptedString(200))  # rule R10: under-6s
    requested_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime]  # an unanswered request lapses then
    accepted_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(16))
    end_reason: Mapped[str | None] = mapped_column(String(200))
    # The chat: the last message's sequence number, and how far each side has read.
    last_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    patient_read_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    doctor_read_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        Index("ix_consultation_practitioner_status", "practitioner_id", "status"),
        Index("ix_consultation_patient_status", "patient_id", "status"),
        Index("ix_consultation_status_expires", "status", "expires_at"),
    )


class AttachmentPurpose(enum.StrEnum):
    form = "form"  # part of the pre-consultation form
    chat = "chat"  # sent in the conversation


class Attachment(IdMixin, Base):
    """An image or PDF a participant uploaded. The bytes live in the file store (sealed), not in this row."""

    __tablename__ = "consultation_attachments"

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    uploaded_by_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    side: Mapped[str] = mapped_column(String(16))  # patient | doctor
    purpose: Mapped[AttachmentPurpose] = mapped_column(enum_type(AttachmentPurpose))
    filename: Mapped[str] = mapped_column(EncryptedString(600))  # file names carry names: sealed
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class ChatMessage(IdMixin, Base):
    """One message of a consultation's chat, numbered 1, 2, 3, ... in the order the platform stored them."""

    __tablename__ = "consultation_messages"

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"))
    region: Mapped[str] = mapped_column(String(12))
    seq: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(16))  # patient | doctor | system
    sender_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    client_id: Mapped[str | None] = mapped_column(String(64))  # the sender's id: a resend is the same message
    body: Mapped[str | None] = mapped_column(EncryptedString(16000))
    attachment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consultation_attachments.id"))
    sent_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (
        UniqueConstraint("consultation_id", "seq"),
        UniqueConstraint("consultation_id", "sender_user_id", "client_id"),
    )


class Call(IdMixin, Base):
    """A video call inside a consultation: media flows peer to peer, the platform keeps when and how long."""

    __tablename__ = "consultation_calls"

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"))
    started_by: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=clock.now)
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(16))
    duration_seconds: Mapped[int | None]

    __table_args__ = (
        # at most one call in progress per consultation
        Index(
            "uq_consultation_calls_open",
            "consultation_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )


class RecordStatus(enum.StrEnum):
    draft = "draft"
    signed = "signed"


class MedicalRecord(IdMixin, Base):
    """The outpatient record of one consultation, one row per version.

    A signed version never changes again: its ``content_sha256`` covers every clinical field and the signature
    covers the hash. A change is a new version (``version`` + 1) with ``amend_reason``; the highest signed version
    is the record in force.
    """

    __tablename__ = "medical_records"

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"))
    version: Mapped[int] = mapped_column(Integer)
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    region: Mapped[str] = mapped_column(String(12))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"))
    status: Mapped[RecordStatus] = mapped_column(enum_type(RecordStatus))
    # Health data: sealed at rest.
    chief_complaint: Mapped[str | None] = mapped_column(EncryptedString(2000))
    present_illness: Mapped[str | None] = mapped_column(EncryptedString(8000))
    past_history: Mapped[str | None] = mapped_column(EncryptedString(6000))
    allergies: Mapped[str | None] = mapped_column(EncryptedString(2000))
    physical_findings: Mapped[str | None] = mapped_column(EncryptedString(6000))
    advice: Mapped[str | None] = mapped_column(EncryptedString(6000))
    # ICD-10 codes in order, the first the main diagnosis: [{"code": "E11.9", "title": "..."}]
    diagnoses: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    amend_reason: Mapped[str | None] = mapped_column(String(500))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(128))
    signed_at: Mapped[datetime | None]
    signed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)

    __table_args__ = (
        UniqueConstraint("consultation_id", "version"),
        # at most one draft per consultation
        Index(
            "uq_medical_records_draft",
            "consultation_id",
            unique=True,
            sqlite_where=text("status = 'draft'"),
            postgresql_where=text("status = 'draft'"),
        ),
    )


class QcStatus(enum.StrEnum):
    clean = "clean"  # no defect
    open = "open"  # defects for the hospital to work through
    resolved = "resolved"  # a hospital admin dealt with them
    superseded = "superseded"  # a later version of the record replaced this one


class RecordQuality(IdMixin, Base):
    """The quality-control result of one signed record version: its defects, each with a code and a weight."""

    __tablename__ = "record_quality"

    record_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("medical_records.id"), unique=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"))
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"))
    status: Mapped[QcStatus] = mapped_column(enum_type(QcStatus))
    score: Mapped[int] = mapped_column(Integer)  # 100 minus the defects' weights, not below 0
    defect_count: Mapped[int] = mapped_column(Integer)
    defects: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    checked_at: Mapped[datetime] = mapped_column(default=clock.now)
    resolved_at: Mapped[datetime | None]
    resolved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    resolution: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_record_quality_hospital_status", "hospital_id", "status"),)


class FollowUpStatus(enum.StrEnum):
    scheduled = "scheduled"
    notified = "notified"
    cancelled = "cancelled"


class FollowUp(IdMixin, Base):
    """A doctor's reminder for the patient to come back (online or in person) on a day."""

    __tablename__ = "follow_ups"

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"))
    due_at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(EncryptedString(2000))
    status: Mapped[FollowUpStatus] = mapped_column(enum_type(FollowUpStatus))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    notified_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_follow_up_status_due", "status", "due_at"),)


class ConsultationRating(IdMixin, Base):
    """A patient's rating of a finished consultation: once per consultation."""

    __tablename__ = "consultation_ratings"

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), unique=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"), index=True)
    rated_by_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    stars: Mapped[int]
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    comment: Mapped[str | None] = mapped_column(EncryptedString(2000))  # free text may name people: sealed
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class ComplaintCategory(enum.StrEnum):
    attitude = "attitude"  # how the patient was treated
    medical_quality = "medical_quality"
    prescription = "prescription"
    delivery = "delivery"
    privacy = "privacy"
    fees = "fees"
    other = "other"


class Complaint(IdMixin, Base):
    """A patient's complaint about a consultation. Filing it appends ``complaint.filed``; the regulator's engine
    opens a case for it. The text stays here (sealed): the event carries its category, not its words."""

    __tablename__ = "consultation_complaints"

    number: Mapped[str] = mapped_column(String(24), unique=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"))
    filed_by_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    category: Mapped[ComplaintCategory] = mapped_column(enum_type(ComplaintCategory))
    text: Mapped[str] = mapped_column(EncryptedString(6000))  # up to 1,000 characters, sealed
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
