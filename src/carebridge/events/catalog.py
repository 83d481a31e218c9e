"""The event catalog: the platform's data-reporting standard (docs/events.md).

Every event type names the schema of its ``data``; ``append_event`` refuses data that does not fit, so what
the outbox carries to the supervision engine, webhooks and regulators is always in the published shape.
Versioned: adding optional fields is a minor change, anything else a major one.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CATALOG_VERSION = "1.8"  # 1.1: consultation.*; 1.2: call.*, consultation.handed_over; 1.3: record.*, prescription.*,
# delivery.*, follow_up.*; 1.4: hospital.registered, hospital profiles, consultation eligibility facts;
# 1.5: consultation.rated, complaint.filed; 1.6: partner_app.*; 1.7: partner_app.limits_changed; 1.8:
# partner_app.sandbox_created, partner_app.updated (minor changes: new types and optional fields)
SUPPORTED_VERSIONS = (
    "1.0",
    "1.1",
    "1.2",
    "1.3",
    "1.4",
    "1.5",
    "1.6",
    "1.7",
    "1.8",
)  # what readers of the catalog (e.g. ingest) accept


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppointmentData(EventData):
    appointment_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    department_id: uuid.UUID
    schedule_id: uuid.UUID
    slot_id: uuid.UUID
    channel: str
    service_date: date
    starts_at: datetime
    fee_fen: int


class AppointmentBooked(AppointmentData):
    pass


class AppointmentCancelled(AppointmentData):
    reason: str
    cancelled_by: Literal["patient", "hospital", "system"]


class AppointmentRescheduled(AppointmentData):
    previous_slot_id: uuid.UUID
    previous_schedule_id: uuid.UUID
    previous_starts_at: datetime


class AppointmentCheckedIn(AppointmentData):
    queue_number: int


class AppointmentCompleted(AppointmentData):
    pass


class AppointmentNoShow(AppointmentData):
    pass


class ScheduleStopped(EventData):
    schedule_id: uuid.UUID
    practitioner_id: uuid.UUID
    department_id: uuid.UUID
    service_date: date
    session: str
    reason: str
    cancelled_appointments: int


class QueueCalled(EventData):
    schedule_id: uuid.UUID
    appointment_id: uuid.UUID
    queue_number: int
    practitioner_id: uuid.UUID


class PoolCapacityMoved(EventData):
    slot_id: uuid.UUID
    from_channel: str
    to_channel: str
    amount: int
    automatic: bool


class WaitlistOffered(EventData):
    waitlist_entry_id: uuid.UUID
    schedule_id: uuid.UUID
    patient_id: uuid.UUID
    slot_id: uuid.UUID
    hold_expires_at: datetime


class BookingBlocked(EventData):
    patient_id: uuid.UUID
    block_id: uuid.UUID
    ends_on: date
    no_shows: int


class BookingBlockLifted(EventData):
    patient_id: uuid.UUID
    block_id: uuid.UUID
    reason: str


class PractitionerFiled(EventData):
    practitioner_id: uuid.UUID
    filing_id: uuid.UUID
    department_id: uuid.UUID
    kind: str
    valid_from: date
    valid_to: date | None


class HospitalProfile(EventData):
    """What a regulator needs of a hospital: where it is (their scope) and its licence (R18)."""

    hospital_id: uuid.UUID
    name: str
    region_code: str
    level: str
    is_internet_hospital: bool
    licence_expires_on: date
    licence_verified_on: date | None = None
    active: bool = True


class HospitalChanged(EventData):
    hospital_id: uuid.UUID
    fields: list[str]
    # The hospital's profile after the change (1.4).
    name: str | None = None
    region_code: str | None = None
    level: str | None = None
    is_internet_hospital: bool | None = None
    licence_expires_on: date | None = None
    licence_verified_on: date | None = None
    active: bool | None = None


class ConsultationData(EventData):
    consultation_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    department_id: uuid.UUID
    kind: Literal["text", "video"]
    status: str


class Eligibility(EventData):
    """The facts the platform checked before a doctor took a consultation (1.4), so a regulator can check them
    against their own thresholds: rules R3 and R4."""

    practice_years: int | None = None
    practitioner_status: str | None = None
    filing_kind: Literal["main", "multi_site"] | None = None


class ConsultationRequested(ConsultationData, Eligibility):
    follows_up_icd10: str  # the offline diagnosis this visit follows up (rule R1)
    appointment_id: uuid.UUID | None = None  # booked into an online clinic session (1.3)
    patient_age_years: int | None = None  # rule R10 (1.4)
    guardian_named: bool | None = None  # rule R10 (1.4)
    identity_verified: bool | None = None  # rule R6 (1.4)


class ConsultationAccepted(ConsultationData, Eligibility):
    pass


class ConsultationChanged(ConsultationData):
    pass


class ConsultationEnded(ConsultationData):
    reason: str
    appointment_id: uuid.UUID | None = None  # closed by converting to an in-person visit (1.2)


class ConsultationHandedOver(ConsultationData):
    previous_practitioner_id: uuid.UUID
    reason: str


class CallData(EventData):
    call_id: uuid.UUID
    consultation_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    started_by: Literal["patient", "doctor"]
    started_at: datetime


class CallStarted(CallData):
    pass


class CallEnded(CallData):
    ended_by: Literal["patient", "doctor", "system"]
    ended_at: datetime
    duration_seconds: int


class RecordSigned(EventData):
    record_id: uuid.UUID
    consultation_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    version: int
    diagnoses: list[str]
    content_sha256: str
    signed_at: datetime
    consultation_ended_at: datetime | None
    hours_after_consultation: float | None  # rule R15
    amend_reason: str | None


class RecordQcScored(EventData):
    record_id: uuid.UUID
    consultation_id: uuid.UUID
    practitioner_id: uuid.UUID
    version: int
    score: int
    defect_count: int
    defects: list[str]


class PrescriptionLine(EventData):
    line: int
    drug_code: str
    substance: str
    atc_code: str
    special_control: str | None
    antibiotic_grade: str | None
    dose: float
    dose_unit: str
    frequency: str
    route: str
    days: int
    quantity: int
    amount_fen: int


class PrescriptionData(EventData):
    prescription_id: uuid.UUID
    consultation_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    revision: int
    status: str


class PrescriptionChecked(PrescriptionData):
    diagnoses: list[str]
    items: list[PrescriptionLine]
    total_fen: int
    blocks: list[str]  # finding codes, e.g. "special_control_drug"
    warnings: list[str]
    rules: list[str]  # the rules the findings enforce, e.g. "R9"


class PrescriptionSigned(PrescriptionData):
    diagnoses: list[str]
    items: list[PrescriptionLine]
    total_fen: int
    long_term: bool
    content_sha256: str
    signed_at: datetime
    expires_at: datetime
    overrides: list[str]  # the warnings the doctor overrode, with a reason kept on the prescription


class PrescriptionReviewed(PrescriptionData):
    pharmacist_user_id: uuid.UUID
    reason: str | None


class PrescriptionEnded(PrescriptionData):
    reason: str


class DeliveryData(EventData):
    delivery_id: uuid.UUID
    prescription_id: uuid.UUID
    patient_id: uuid.UUID
    status: str
    pharmacy_kind: Literal["hospital", "partner"]
    pharmacy_name: str


class DeliveryCreated(DeliveryData):
    total_fen: int


class DeliveryShipped(DeliveryData):
    carrier: str
    tracking_number: str


class DeliveryChanged(DeliveryData):
    reason: str | None = None


class ConsultationRated(EventData):
    rating_id: uuid.UUID
    consultation_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    stars: int = Field(ge=1, le=5)
    tags: list[str]


class ComplaintFiled(EventData):
    """A patient's complaint (1.5). The words stay on the platform (personal data); the regulator reads them
    there, audited."""

    complaint_id: uuid.UUID
    number: str
    consultation_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    category: Literal["attitude", "medical_quality", "prescription", "delivery", "privacy", "fees", "other"]


class FollowUpData(EventData):
    follow_up_id: uuid.UUID
    consultation_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    due_at: datetime


class PartnerAppChanged(EventData):
    """A partner app registered or reviewed (approved, suspended, rejected); ``status`` is the new one."""

    app_id: uuid.UUID
    client_id: str
    kind: str
    status: str
    decision: str | None = None
    changed: list[str] | None = None  # partner_app.updated: the fields the developer changed (since 1.8)


class PartnerAppLimits(EventData):
    """A platform admin set an app's rate limit or daily quota (None: the platform's default)."""

    app_id: uuid.UUID
    client_id: str
    kind: str
    status: str
    rate_limit_per_second: int | None = None
    daily_quota: int | None = None


class PartnerAppAccess(EventData):
    """A hospital granted an app access, or revoked it, or the app's sandbox hospital was made (the envelope's
    hospital_id is the hospital)."""

    app_id: uuid.UUID
    client_id: str
    kind: str
    status: str
    hospital_id: uuid.UUID


CATALOG: dict[str, type[EventData]] = {
    "appointment.booked": AppointmentBooked,
    "appointment.cancelled": AppointmentCancelled,
    "appointment.rescheduled": AppointmentRescheduled,
    "appointment.checked_in": AppointmentCheckedIn,
    "appointment.completed": AppointmentCompleted,
    "appointment.no_show": AppointmentNoShow,
    "schedule.stopped": ScheduleStopped,
    "queue.called": QueueCalled,
    "pool.capacity_moved": PoolCapacityMoved,
    "waitlist.offered": WaitlistOffered,
    "booking.blocked": BookingBlocked,
    "booking.block_lifted": BookingBlockLifted,
    "practitioner.filed": PractitionerFiled,
    "hospital.registered": HospitalProfile,
    "hospital.changed": HospitalChanged,
    "consultation.requested": ConsultationRequested,
    "consultation.accepted": ConsultationAccepted,
    "consultation.started": ConsultationChanged,
    "consultation.closed": ConsultationEnded,
    "consultation.rejected": ConsultationEnded,
    "consultation.cancelled": ConsultationEnded,
    "consultation.expired": ConsultationEnded,
    "consultation.handed_over": ConsultationHandedOver,
    "call.started": CallStarted,
    "call.ended": CallEnded,
    "record.signed": RecordSigned,
    "record.amended": RecordSigned,
    "record.qc_scored": RecordQcScored,
    "prescription.checked": PrescriptionChecked,
    "prescription.signed": PrescriptionSigned,
    "prescription.approved": PrescriptionReviewed,
    "prescription.rejected": PrescriptionReviewed,
    "prescription.expired": PrescriptionEnded,
    "prescription.cancelled": PrescriptionEnded,
    "delivery.created": DeliveryCreated,
    "delivery.dispensed": DeliveryChanged,
    "delivery.shipped": DeliveryShipped,
    "delivery.delivered": DeliveryChanged,
    "delivery.returned": DeliveryChanged,
    "consultation.rated": ConsultationRated,
    "complaint.filed": ComplaintFiled,
    "follow_up.scheduled": FollowUpData,
    "follow_up.due": FollowUpData,
    "partner_app.registered": PartnerAppChanged,
    "partner_app.reviewed": PartnerAppChanged,
    "partner_app.access_granted": PartnerAppAccess,
    "partner_app.access_revoked": PartnerAppAccess,
    "partner_app.limits_changed": PartnerAppLimits,
    "partner_app.sandbox_created": PartnerAppAccess,
    "partner_app.updated": PartnerAppChanged,
}


def _since(type_: str) -> str:
    family = type_.split(".", 1)[0]
    if type_ in ("partner_app.sandbox_created", "partner_app.updated"):
        return "1.8"
    if type_ == "partner_app.limits_changed":
        return "1.7"
    if family == "partner_app":
        return "1.6"
    if type_ in ("consultation.rated", "complaint.filed"):
        return "1.5"
    if type_ == "hospital.registered":
        return "1.4"
    if family in ("record", "prescription", "delivery", "follow_up"):
        return "1.3"
    if family == "call" or type_ == "consultation.handed_over":
        return "1.2"
    if family == "consultation":
        return "1.1"
    return "1.0"


# The catalog version that introduced each type: a reader refuses a type newer than the version an event claims.
SINCE: dict[str, str] = {t: _since(t) for t in CATALOG}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))
