from __future__ import annotations

import uuid
from datetime import date, datetime, time

from pydantic import Field, StrictBool, StrictInt, StrictStr

from carebridge.core.schemas import Input, Output, Patch
from carebridge.scheduling.models import AppointmentStatus, ScheduleStatus, Session, WaitlistStatus

Pools = dict[StrictStr, StrictInt]


class VisitTypeIn(Input):
    code: StrictStr = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    name: StrictStr = Field(min_length=1, max_length=40)
    fee_fen: StrictInt = Field(ge=0, le=10_000_000)


class VisitTypeOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    code: str
    name: str
    fee_fen: int


class ScheduleIn(Input):
    department_id: uuid.UUID
    practitioner_id: uuid.UUID
    visit_type_id: uuid.UUID
    service_date: date
    session: Session
    start_time: time
    end_time: time
    slot_minutes: StrictInt = Field(ge=5, le=240)
    pools: Pools = Field(min_length=1, max_length=8)


class TemplateIn(Input):
    department_id: uuid.UUID
    practitioner_id: uuid.UUID
    visit_type_id: uuid.UUID
    weekday: StrictInt = Field(ge=0, le=6)
    session: Session
    start_time: time
    end_time: time
    slot_minutes: StrictInt = Field(ge=5, le=240)
    pools: Pools = Field(min_length=1, max_length=8)


class TemplatePatch(Patch):
    NOT_NULL = frozenset({"start_time", "end_time", "slot_minutes", "pools", "active"})

    start_time: time | None = None
    end_time: time | None = None
    slot_minutes: StrictInt | None = Field(default=None, ge=5, le=240)
    pools: Pools | None = Field(default=None, min_length=1, max_length=8)
    active: StrictBool | None = None


class TemplateOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    department_id: uuid.UUID
    practitioner_id: uuid.UUID
    visit_type_id: uuid.UUID
    weekday: int
    session: Session
    start_time: time
    end_time: time
    slot_minutes: int
    pools: dict[str, int]
    active: bool


class GenerateIn(Input):
    start: date
    days: StrictInt = Field(ge=1, le=56)


class PoolOut(Output):
    channel: str
    capacity: int
    booked: int
    held: int
    free: int


class SlotOut(Output):
    id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    local_time: str
    pools: list[PoolOut]
    free: int


class ScheduleOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    department_id: uuid.UUID
    practitioner_id: uuid.UUID
    practitioner_name: str | None = None
    practitioner_title: str | None = None
    department_name: str | None = None
    visit_type_id: uuid.UUID
    service_date: date
    session: Session
    starts_at: datetime
    ends_at: datetime
    fee_fen: int
    status: ScheduleStatus
    stopped_reason: str | None = None
    free: int
    slots: list[SlotOut] = []


class StopIn(Input):
    reason: StrictStr = Field(min_length=1, max_length=200)


class MoveIn(Input):
    slot_id: uuid.UUID | None = None
    from_channel: StrictStr = Field(max_length=48)
    to_channel: StrictStr = Field(max_length=48)
    amount: StrictInt = Field(ge=1, le=500)


class RulesIn(Input):
    window_days: StrictInt | None = Field(default=None, ge=0, le=90)
    opens_at: time | None = None
    same_day_cutoff: time | None = None
    cancel_deadline_minutes: StrictInt | None = Field(default=None, ge=0, le=7 * 24 * 60)
    max_per_practitioner_per_day: StrictInt | None = Field(default=None, ge=1, le=20)
    max_per_department: StrictInt | None = Field(default=None, ge=1, le=50)
    max_total: StrictInt | None = Field(default=None, ge=1, le=100)
    auto_release_hours: StrictInt | None = Field(default=None, ge=0, le=24 * 14)


class RulesOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    department_id: uuid.UUID | None
    window_days: int | None
    opens_at: time | None
    same_day_cutoff: time | None
    cancel_deadline_minutes: int | None
    max_per_practitioner_per_day: int | None
    max_per_department: int | None
    max_total: int | None
    auto_release_hours: int | None
    updated_at: datetime


class EffectiveRulesOut(Output):
    window_days: int
    opens_at: time
    same_day_cutoff: time | None
    cancel_deadline_minutes: int
    max_per_practitioner_per_day: int
    max_per_department: int
    max_total: int
    auto_release_hours: int | None


class NoShowPolicyIn(Input):
    enabled: StrictBool | None = None
    threshold: StrictInt | None = Field(default=None, ge=1, le=50)
    window_days: StrictInt | None = Field(default=None, ge=1, le=730)
    block_days: StrictInt | None = Field(default=None, ge=1, le=730)


class NoShowPolicyOut(Output):
    hospital_id: uuid.UUID
    enabled: bool
    threshold: int
    window_days: int
    block_days: int


class BlockOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    patient_id: uuid.UUID
    patient_name: str | None = None
    starts_at: datetime
    ends_on: date
    no_show_count: int
    reason: str
    lifted_at: datetime | None
    lift_reason: str | None


class LiftIn(Input):
    reason: StrictStr = Field(min_length=2, max_length=200)


class ExemptionIn(Input):
    patient_id: uuid.UUID
    reason: StrictStr = Field(min_length=2, max_length=200)


class ExemptionOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    patient_id: uuid.UUID
    reason: str
    created_at: datetime


class BookIn(Input):
    patient_id: uuid.UUID
    slot_id: uuid.UUID
    # the pool: ``platform`` when not given (a partner app's token: the app's own pool, ``partner:<app>``)
    channel: StrictStr | None = Field(default=None, max_length=48)


class CancelIn(Input):
    reason: StrictStr = Field(default="patient_request", min_length=1, max_length=200)


class RescheduleIn(Input):
    slot_id: uuid.UUID


class AppointmentOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    patient_id: uuid.UUID
    patient_name: str | None = None
    schedule_id: uuid.UUID
    slot_id: uuid.UUID
    channel: str
    practitioner_id: uuid.UUID
    department_id: uuid.UUID
    service_date: date
    starts_at: datetime
    ends_at: datetime
    fee_fen: int
    status: AppointmentStatus
    queue_number: int | None
    called: bool = False
    created_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str | None
    rescheduled_from_id: uuid.UUID | None
    hospital_name: str | None = None
    department_name: str | None = None
    practitioner_name: str | None = None
    timezone: str | None = None
    local_time: str | None = None  # "2026-11-23 08:00-08:30" in the hospital's zone


class QueuePositionOut(Output):
    appointment_id: uuid.UUID
    schedule_id: uuid.UUID
    number: int | None
    state: str
    ahead: int
    now_serving: int | None
    estimated_wait_minutes: int | None


class QueueEntryOut(Output):
    appointment_id: uuid.UUID
    number: int
    state: str
    patient_name: str
    checked_in_at: datetime
    called_at: datetime | None


class WaitlistIn(Input):
    patient_id: uuid.UUID
    schedule_id: uuid.UUID


class WaitlistOut(Output):
    id: uuid.UUID
    schedule_id: uuid.UUID
    patient_id: uuid.UUID
    status: WaitlistStatus
    hold_expires_at: datetime | None
    appointment_id: uuid.UUID | None
    created_at: datetime
