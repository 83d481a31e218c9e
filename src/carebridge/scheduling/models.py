"""Schedules, slots and their channel pools, booking rules, appointments, no-show credit, waitlist, queue.

Capacity lives in ``SlotPool`` rows (one per slot and channel); ``booked`` and ``held`` are changed only by
conditional UPDATEs (see ``booking.py``), with a CHECK as the backstop, so a pool never oversells.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.database.base import Base, IdMixin, enum_type


class Session(enum.StrEnum):
    morning = "morning"
    afternoon = "afternoon"
    evening = "evening"


class ScheduleStatus(enum.StrEnum):
    open = "open"
    stopped = "stopped"


class AppointmentStatus(enum.StrEnum):
    booked = "booked"
    checked_in = "checked_in"
    completed = "completed"
    cancelled = "cancelled"
    no_show = "no_show"


ACTIVE_STATUSES = (AppointmentStatus.booked, AppointmentStatus.checked_in)
_ACTIVE_SQL = "status IN ('booked', 'checked_in')"


class WaitlistStatus(enum.StrEnum):
    waiting = "waiting"
    offered = "offered"
    booked = "booked"
    expired = "expired"
    cancelled = "cancelled"


class QueueState(enum.StrEnum):
    waiting = "waiting"
    called = "called"
    done = "done"
    left = "left"


class VisitType(IdMixin, Base):
    """A kind of visit and its registration fee (挂号费): ordinary, expert, special_needs."""

    __tablename__ = "visit_types"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(40))
    fee_fen: Mapped[int]

    __table_args__ = (UniqueConstraint("hospital_id", "code"), CheckConstraint("fee_fen >= 0", name="fee"))


class ScheduleTemplate(IdMixin, Base):
    """A weekly rule: this practitioner sees patients in this department on this weekday's session."""

    __tablename__ = "schedule_templates"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("departments.id"))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"))
    visit_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("visit_types.id"))
    weekday: Mapped[int]  # 0 Monday .. 6 Sunday
    session: Mapped[Session] = mapped_column(enum_type(Session))
    start_time: Mapped[time]
    end_time: Mapped[time]
    slot_minutes: Mapped[int]
    pools: Mapped[dict[str, Any]]  # per slot: {"platform": 3, "onsite": 2}
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (
        UniqueConstraint("practitioner_id", "weekday", "session"),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("slot_minutes > 0", name="slot_minutes"),
    )


class Schedule(IdMixin, Base):
    """One practitioner's session on one day (出诊), split into slots."""

    __tablename__ = "schedules"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("departments.id"))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"))
    visit_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("visit_types.id"))
    template_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("schedule_templates.id"))
    service_date: Mapped[date]
    session: Mapped[Session] = mapped_column(enum_type(Session))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    fee_fen: Mapped[int]
    status: Mapped[ScheduleStatus] = mapped_column(enum_type(ScheduleStatus), default=ScheduleStatus.open)
    stopped_reason: Mapped[str | None] = mapped_column(String(200))
    stopped_at: Mapped[datetime | None]
    queue_seq: Mapped[int] = mapped_column(default=0)  # last queue number given at check-in
    closed_at: Mapped[datetime | None]  # when the end-of-session sweep marked no-shows
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (
        UniqueConstraint("practitioner_id", "service_date", "session"),
        Index("ix_schedule_hospital_date", "hospital_id", "service_date"),
        Index("ix_schedule_department_date", "department_id", "service_date"),
        Index("ix_schedule_ends", "ends_at", "closed_at"),
    )


class Slot(IdMixin, Base):
    __tablename__ = "slots"

    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("schedules.id"), index=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]

    # partner apps search slots by time across their granting hospitals (FHIR Slot?start=...)
    __table_args__ = (Index("ix_slots_starts_at", "starts_at", "id"),)


class SlotPool(IdMixin, Base):
    """A slot's capacity for one channel: ``onsite``, ``platform``, ``partner:<app>`` or ``referral``."""

    __tablename__ = "slot_pools"

    slot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("slots.id"))
    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("schedules.id"), index=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    channel: Mapped[str] = mapped_column(String(48))
    starts_at: Mapped[datetime]
    capacity: Mapped[int]
    booked: Mapped[int] = mapped_column(default=0)
    held: Mapped[int] = mapped_column(default=0)  # places held for a waitlist offer
    released_at: Mapped[datetime | None]  # when unused capacity was released to ``platform``

    __table_args__ = (
        UniqueConstraint("slot_id", "channel"),
        CheckConstraint("booked >= 0 AND held >= 0 AND booked + held <= capacity", name="within_capacity"),
        Index("ix_pool_release", "starts_at", "released_at"),
    )


class BookingRule(IdMixin, Base):
    """Booking rules of a hospital (``department_id`` NULL) or a department's overrides (NULL = inherit)."""

    __tablename__ = "booking_rules"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    department_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("departments.id"))
    window_days: Mapped[int | None]  # bookable this many days ahead ...
    opens_at: Mapped[time | None]  # ... from this local time (a new day's numbers are released then)
    same_day_cutoff: Mapped[time | None]  # no same-day booking after this local time
    cancel_deadline_minutes: Mapped[int | None]  # cancel at least this long before the slot
    max_per_practitioner_per_day: Mapped[int | None]
    max_per_department: Mapped[int | None]  # active bookings per patient in one department
    max_total: Mapped[int | None]  # active bookings per patient at this hospital
    auto_release_hours: Mapped[int | None]  # release unused pool capacity to platform this long before start
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
    updated_by: Mapped[uuid.UUID | None]

    __table_args__ = (
        Index(
            "uq_booking_rules_hospital",
            "hospital_id",
            unique=True,
            postgresql_where=text("department_id IS NULL"),
            sqlite_where=text("department_id IS NULL"),
        ),
        Index(
            "uq_booking_rules_department",
            "hospital_id",
            "department_id",
            unique=True,
            postgresql_where=text("department_id IS NOT NULL"),
            sqlite_where=text("department_id IS NOT NULL"),
        ),
    )


class Appointment(IdMixin, Base):
    __tablename__ = "appointments"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    region: Mapped[str] = mapped_column(String(12))  # the patient's region: the future partition key
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    booked_by_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("schedules.id"))
    slot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("slots.id"))
    pool_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("slot_pools.id"))
    channel: Mapped[str] = mapped_column(String(48))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"))
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("departments.id"))
    service_date: Mapped[date]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    fee_fen: Mapped[int]
    status: Mapped[AppointmentStatus] = mapped_column(enum_type(AppointmentStatus), default=AppointmentStatus.booked)
    queue_number: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    checked_in_at: Mapped[datetime | None]
    called_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    no_show_at: Mapped[datetime | None]
    rescheduled_from_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("appointments.id"))

    __table_args__ = (
        # One active booking per patient per session: the backstop for double booking under concurrency.
        Index(
            "uq_appointment_active_patient_schedule",
            "patient_id",
            "schedule_id",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        Index("ix_appointment_patient", "patient_id", "status", "service_date"),
        Index("ix_appointment_pool_active", "pool_id", "status"),
        Index("ix_appointment_schedule", "schedule_id", "status"),
        Index("ix_appointment_hospital_date", "hospital_id", "service_date"),
    )


class PatientBookingState(Base):
    """One row per patient, bumped at the start of every booking: serialises one patient's concurrent
    bookings so the per-patient limits are checked against a stable count (a conditional write, no
    SELECT ... FOR UPDATE)."""

    __tablename__ = "patient_booking_state"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    version: Mapped[int] = mapped_column(default=0)


class NoShowPolicy(Base):
    __tablename__ = "no_show_policies"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    threshold: Mapped[int] = mapped_column(default=3)  # this many no-shows ...
    window_days: Mapped[int] = mapped_column(default=90)  # ... within this many days ...
    block_days: Mapped[int] = mapped_column(default=90)  # ... block booking for this long
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class BookingBlock(IdMixin, Base):
    """A patient barred from booking at a hospital until ``ends_on`` (no-show credit)."""

    __tablename__ = "booking_blocks"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    starts_at: Mapped[datetime] = mapped_column(default=clock.now)
    ends_on: Mapped[date]
    no_show_count: Mapped[int]
    reason: Mapped[str] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[uuid.UUID | None]
    lift_reason: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_block_hospital_patient", "hospital_id", "patient_id"),)


class NoShowExemption(IdMixin, Base):
    """The whitelist: patients whose no-shows never block them at this hospital."""

    __tablename__ = "no_show_exemptions"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    reason: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (UniqueConstraint("hospital_id", "patient_id"),)


class WaitlistEntry(IdMixin, Base):
    __tablename__ = "waitlist_entries"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"))
    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("schedules.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    status: Mapped[WaitlistStatus] = mapped_column(enum_type(WaitlistStatus), default=WaitlistStatus.waiting)
    offered_pool_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("slot_pools.id"))
    hold_expires_at: Mapped[datetime | None]
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("appointments.id"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (
        Index(
            "uq_waitlist_active",
            "schedule_id",
            "patient_id",
            unique=True,
            postgresql_where=text("status IN ('waiting', 'offered')"),
            sqlite_where=text("status IN ('waiting', 'offered')"),
        ),
        Index("ix_waitlist_schedule", "schedule_id", "status", "created_at"),
        Index("ix_waitlist_hold", "status", "hold_expires_at"),
    )


class QueueEntry(Base):
    """The queue board: a projection fed by appointment and queue events (see ``events.py``)."""

    __tablename__ = "queue_entries"

    appointment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    schedule_id: Mapped[uuid.UUID] = mapped_column(index=True)
    hospital_id: Mapped[uuid.UUID]
    patient_id: Mapped[uuid.UUID]
    number: Mapped[int]
    state: Mapped[QueueState] = mapped_column(enum_type(QueueState), default=QueueState.waiting)
    checked_in_at: Mapped[datetime]
    called_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
