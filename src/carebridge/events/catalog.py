"""The event catalog: the platform's data-reporting standard (docs/events.md).

Every event type names the schema of its ``data``; ``append_event`` refuses data that does not fit, so what
the outbox carries to the supervision engine, webhooks and regulators is always in the published shape.
Versioned: adding optional fields is a minor change, anything else a major one.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

CATALOG_VERSION = "1.2"  # 1.1: consultation.*; 1.2: call.*, consultation.handed_over (new types: minor changes)


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


class HospitalChanged(EventData):
    hospital_id: uuid.UUID
    fields: list[str]


class ConsultationData(EventData):
    consultation_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    department_id: uuid.UUID
    kind: Literal["text", "video"]
    status: str


class ConsultationRequested(ConsultationData):
    follows_up_icd10: str  # the offline diagnosis this visit follows up (rule R1)


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
    "hospital.changed": HospitalChanged,
    "consultation.requested": ConsultationRequested,
    "consultation.accepted": ConsultationChanged,
    "consultation.started": ConsultationChanged,
    "consultation.closed": ConsultationEnded,
    "consultation.rejected": ConsultationEnded,
    "consultation.cancelled": ConsultationEnded,
    "consultation.expired": ConsultationEnded,
    "consultation.handed_over": ConsultationHandedOver,
    "call.started": CallStarted,
    "call.ended": CallEnded,
}
