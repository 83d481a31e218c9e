"""Drugs, e-prescriptions, pharmacist review and delivery orders."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.database.base import Base, EncryptedString, IdMixin, TimestampMixin, enum_type


class SpecialControl(enum.StrEnum):
    """Drugs under special control (rule R9: never prescribed online)."""

    narcotic = "narcotic"
    psychotropic_1 = "psychotropic_1"
    psychotropic_2 = "psychotropic_2"
    toxic = "toxic"  # medicinal toxic drugs (医疗用毒性药品)
    radioactive = "radioactive"


class AntibioticGrade(enum.StrEnum):
    """China's three antibiotic grades (非限制使用级 / 限制使用级 / 特殊使用级)."""

    unrestricted = "unrestricted"
    restricted = "restricted"
    special = "special"


class Drug(IdMixin, TimestampMixin, Base):
    """One line of a hospital's formulary."""

    __tablename__ = "formulary_drugs"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    code: Mapped[str] = mapped_column(String(32))  # the hospital's own drug code
    generic_name: Mapped[str] = mapped_column(String(120))
    substance: Mapped[str] = mapped_column(String(80))  # the knowledge base's key (English INN)
    atc_code: Mapped[str] = mapped_column(String(8))  # WHO ATC: the drug's class for interactions and duplicates
    form: Mapped[str] = mapped_column(String(40))
    strength: Mapped[str] = mapped_column(String(60))
    unit: Mapped[str] = mapped_column(String(16))  # what is dispensed and priced: 盒, 瓶, 支 ...
    dose_unit: Mapped[str] = mapped_column(String(16))  # what a dose is written in: mg, ml, puff, IU
    price_fen: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(60))
    special_control: Mapped[SpecialControl | None] = mapped_column(enum_type(SpecialControl))
    antibiotic_grade: Mapped[AntibioticGrade | None] = mapped_column(enum_type(AntibioticGrade))
    usual_daily_dose: Mapped[float | None] = mapped_column(Float)
    max_daily_dose: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (UniqueConstraint("hospital_id", "code"),)


class PrescriptionStatus(enum.StrEnum):
    draft = "draft"
    pending_review = "pending_review"
    approved = "approved"
    rejected = "rejected"  # back with the doctor, who revises and signs again
    dispensed = "dispensed"
    expired = "expired"
    cancelled = "cancelled"


class Prescription(IdMixin, TimestampMixin, Base):
    __tablename__ = "prescriptions"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    region: Mapped[str] = mapped_column(String(12))
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"))
    status: Mapped[PrescriptionStatus] = mapped_column(enum_type(PrescriptionStatus))
    revision: Mapped[int] = mapped_column(Integer, default=1)  # + 1 each time a rejected one is revised
    diagnoses: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)  # [{"code", "title"}]
    long_term: Mapped[bool] = mapped_column(Boolean, default=False)  # a chronic-disease long prescription (R12)
    total_fen: Mapped[int] = mapped_column(Integer, default=0)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # the last check's findings
    overrides: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{"code", "line", "reason"}]
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(128))
    signed_at: Mapped[datetime | None]
    signed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]
    reviewed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    review_reason: Mapped[str | None] = mapped_column(String(500))
    expires_at: Mapped[datetime | None]  # set at signing; an undispensed prescription lapses then

    __table_args__ = (
        Index("ix_prescription_hospital_status", "hospital_id", "status"),
        Index("ix_prescription_status_expires", "status", "expires_at"),
    )


class PrescriptionItem(IdMixin, Base):
    __tablename__ = "prescription_items"

    prescription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prescriptions.id"))
    line: Mapped[int] = mapped_column(Integer)
    drug_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("formulary_drugs.id"))
    # What the formulary said when it was written, so the prescription reads the same after a price change.
    drug_code: Mapped[str] = mapped_column(String(32))
    drug_name: Mapped[str] = mapped_column(String(120))
    strength: Mapped[str] = mapped_column(String(60))
    dose: Mapped[float] = mapped_column(Float)
    dose_unit: Mapped[str] = mapped_column(String(16))
    frequency: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(16))
    days: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(16))
    price_fen: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("prescription_id", "line"),)


class PharmacyKind(enum.StrEnum):
    hospital = "hospital"
    partner = "partner"


class DeliveryStatus(enum.StrEnum):
    created = "created"
    dispensed = "dispensed"
    shipped = "shipped"
    delivered = "delivered"
    returned = "returned"


class DeliveryOrder(IdMixin, TimestampMixin, Base):
    """Getting an approved prescription's drugs to the patient, step by step (rule R19: traceable to hand-over)."""

    __tablename__ = "delivery_orders"

    prescription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prescriptions.id"), unique=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    region: Mapped[str] = mapped_column(String(12))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    status: Mapped[DeliveryStatus] = mapped_column(enum_type(DeliveryStatus))
    pharmacy_kind: Mapped[PharmacyKind] = mapped_column(enum_type(PharmacyKind))
    pharmacy_name: Mapped[str] = mapped_column(String(120))
    # Personal data: sealed at rest, masked to everyone but the patient.
    recipient_name: Mapped[str] = mapped_column(EncryptedString(200))
    recipient_phone: Mapped[str] = mapped_column(EncryptedString(100))
    address: Mapped[str] = mapped_column(EncryptedString(1000))
    handover_code: Mapped[str] = mapped_column(EncryptedString(100))  # shown to the patient; the courier asks
    payment_status: Mapped[str] = mapped_column(String(16), default="not_required")
    total_fen: Mapped[int] = mapped_column(Integer)
    carrier: Mapped[str | None] = mapped_column(String(60))
    tracking_number: Mapped[str | None] = mapped_column(String(60))
    dispensed_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    returned_at: Mapped[datetime | None]
    return_reason: Mapped[str | None] = mapped_column(String(500))
    created_by_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (Index("ix_delivery_hospital_status", "hospital_id", "status"),)
