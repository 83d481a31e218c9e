from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, StrictFloat, StrictInt, StrictStr

from carebridge.core.schemas import Input, Output, Patch
from carebridge.prescribing.models import (
    AntibioticGrade,
    DeliveryStatus,
    PharmacyKind,
    PrescriptionStatus,
    SpecialControl,
)


class DrugOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    code: str
    generic_name: str
    substance: str
    atc_code: str
    form: str
    strength: str
    unit: str
    dose_unit: str
    price_fen: int
    category: str
    special_control: SpecialControl | None
    antibiotic_grade: AntibioticGrade | None
    usual_daily_dose: float | None
    max_daily_dose: float | None
    active: bool


class DrugPage(Output):
    items: list[DrugOut]
    total: int


class DrugChangeIn(Patch):
    NOT_NULL = frozenset({"generic_name", "form", "strength", "price_fen", "category", "active"})

    generic_name: StrictStr | None = Field(default=None, min_length=1, max_length=120)
    form: StrictStr | None = Field(default=None, min_length=1, max_length=40)
    strength: StrictStr | None = Field(default=None, min_length=1, max_length=60)
    price_fen: StrictInt | None = Field(default=None, ge=0, le=100_000_000)
    category: StrictStr | None = Field(default=None, min_length=1, max_length=60)
    special_control: SpecialControl | None = None
    antibiotic_grade: AntibioticGrade | None = None
    usual_daily_dose: StrictFloat | None = Field(default=None, gt=0)
    max_daily_dose: StrictFloat | None = Field(default=None, gt=0)
    active: bool | None = None


class ImportReportOut(Output):
    rows: int
    created: int
    updated: int
    unchanged: int
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    dry_run: bool


class ItemIn(Input):
    drug_id: uuid.UUID
    dose: StrictFloat = Field(gt=0, le=1_000_000)
    frequency: StrictStr = Field(min_length=1, max_length=8)
    route: StrictStr = Field(min_length=1, max_length=16)
    days: StrictInt = Field(ge=1, le=365)
    quantity: StrictInt = Field(ge=1, le=1000)


class PrescriptionIn(Input):
    diagnoses: list[StrictStr] = Field(max_length=10)
    items: list[ItemIn] = Field(min_length=1, max_length=20)


class FindingOut(Output):
    key: str
    code: str
    rule: str
    level: str
    message: str
    lines: list[int]
    details: dict[str, Any]


class CheckOut(Output):
    findings: list[FindingOut]
    can_sign: bool  # no block
    overrides_needed: list[str]  # the keys of the warnings that need a reason


class SignPrescriptionIn(Input):
    password: StrictStr = Field(min_length=1, max_length=128)
    overrides: dict[str, StrictStr] = Field(default_factory=dict, max_length=50)


class ItemOut(Output):
    line: int
    drug_id: uuid.UUID
    drug_code: str
    drug_name: str
    strength: str
    dose: float
    dose_unit: str
    frequency: str
    route: str
    days: int
    quantity: int
    unit: str
    price_fen: int
    amount_fen: int


class PrescriptionOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    consultation_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    status: PrescriptionStatus
    revision: int
    diagnoses: list[dict[str, str]]
    long_term: bool
    items: list[ItemOut]
    total_fen: int
    findings: list[FindingOut]
    can_sign: bool
    overrides_needed: list[str]
    overrides: list[dict[str, Any]]
    content_sha256: str | None
    signature: str | None
    signed_at: datetime | None
    expires_at: datetime | None
    integrity: str
    reviewed_at: datetime | None
    review_reason: str | None
    delivery_id: uuid.UUID | None = None


class ReviewIn(Input):
    note: StrictStr | None = Field(default=None, max_length=500)


class RejectIn(Input):
    reason: StrictStr = Field(min_length=2, max_length=500)


class DeliveryIn(Input):
    pharmacy_kind: PharmacyKind = PharmacyKind.hospital
    pharmacy_name: StrictStr | None = Field(default=None, min_length=2, max_length=120)
    recipient_name: StrictStr = Field(min_length=1, max_length=40)
    recipient_phone: StrictStr = Field(pattern=r"^1\d{10}$")
    address: StrictStr = Field(min_length=5, max_length=300)


class ShipIn(Input):
    carrier: StrictStr = Field(min_length=1, max_length=60)
    tracking_number: StrictStr = Field(min_length=4, max_length=60, pattern=r"^[A-Za-z0-9-]+$")


class DeliverIn(Input):
    handover_code: StrictStr | None = Field(default=None, pattern=r"^\d{6}$")


class DeliveryOut(Output):
    id: uuid.UUID
    prescription_id: uuid.UUID
    hospital_id: uuid.UUID
    patient_id: uuid.UUID
    status: DeliveryStatus
    pharmacy_kind: PharmacyKind
    pharmacy_name: str
    recipient_name: str
    recipient_phone: str
    address: str
    masked: bool
    handover_code: str | None  # only to the patient
    payment_status: str
    total_fen: int
    carrier: str | None
    tracking_number: str | None
    created_at: datetime
    dispensed_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    returned_at: datetime | None
    return_reason: str | None
