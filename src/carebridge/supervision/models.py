"""The supervision engine's tables: the trace of every event, the rule catalog (data, versioned), the compact
state rules keep between events (facts, counters, timers), warnings and the cases they open.

Nothing here points at another domain's tables: the engine works from events alone, so the same tables serve
the embedded engine and the standalone one (`carebridge supervise`) that watches many platforms.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.database.base import Base, IdMixin, enum_type


class Severity(enum.StrEnum):
    info = "info"
    warning = "warning"
    block = "block"


SEVERITY_RANK = {Severity.info: 0, Severity.warning: 1, Severity.block: 2}


class ScopeKind(enum.StrEnum):
    all = "all"
    region = "region"
    hospital = "hospital"


class CaseStatus(enum.StrEnum):
    open = "open"  # new, or reopened; nobody has asked the hospital yet
    rectifying = "rectifying"  # the hospital was asked to rectify and has not answered
    answered = "answered"  # the hospital answered; a supervisor decides
    resolved = "resolved"
    dismissed = "dismissed"


CLOSED_CASE_STATUSES = (CaseStatus.resolved, CaseStatus.dismissed)


class SupervisedHospital(Base):
    """What the engine knows of a hospital: where it is (the regulator's scope) and its licence (R18)."""

    __tablename__ = "supervision_hospitals"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    region_code: Mapped[str] = mapped_column(String(12), index=True)
    level: Mapped[str | None] = mapped_column(String(16))
    is_internet_hospital: Mapped[bool] = mapped_column(default=False)
    licence_expires_on: Mapped[date | None]
    licence_verified_on: Mapped[date | None]
    active: Mapped[bool] = mapped_column(default=True)
    platform_id: Mapped[uuid.UUID | None]  # the reporting platform (standalone); None = this platform
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class TracedEvent(Base):
    """Every event the engine has seen, kept for after-the-fact tracing (R17). The primary key is the event's
    id, so a redelivered or re-reported event is stored once and evaluated once."""

    __tablename__ = "supervision_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    catalog_version: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=clock.now)
    hospital_id: Mapped[uuid.UUID | None]
    hospital_region: Mapped[str | None] = mapped_column(String(12))
    region: Mapped[str | None] = mapped_column(String(12))
    actor: Mapped[str | None] = mapped_column(String(80))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    practitioner_id: Mapped[uuid.UUID | None]
    patient_id: Mapped[uuid.UUID | None]
    consultation_id: Mapped[uuid.UUID | None]
    prescription_id: Mapped[uuid.UUID | None]
    platform_id: Mapped[uuid.UUID | None]
    data: Mapped[dict[str, Any]]

    __table_args__ = (
        Index("ix_supervision_events_time", "occurred_at"),
        Index("ix_supervision_events_hospital", "hospital_id", "occurred_at"),
        Index("ix_supervision_events_practitioner", "practitioner_id", "occurred_at"),
        Index("ix_supervision_events_patient", "patient_id", "occurred_at"),
        Index("ix_supervision_events_type", "type", "occurred_at"),
        Index("ix_supervision_events_consultation", "consultation_id"),
        Index("ix_supervision_events_prescription", "prescription_id"),
    )


class Rule(IdMixin, Base):
    """One rule instance: a rule type (code that knows how to check) with its parameters, severity and scope,
    all of them data a regulator edits. ``expression`` holds a custom rule's CEL source."""

    __tablename__ = "supervision_rules"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    regulation: Mapped[str | None] = mapped_column(String(8))  # "R11"; None for custom or pattern rules
    rule_type: Mapped[str] = mapped_column(String(48))
    name: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]]
    expression: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[Severity] = mapped_column(enum_type(Severity))
    enabled: Mapped[bool] = mapped_column(default=True)
    scope_kind: Mapped[ScopeKind] = mapped_column(enum_type(ScopeKind), default=ScopeKind.all)
    scope_value: Mapped[str | None] = mapped_column(String(40))
    group_by: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_by: Mapped[str] = mapped_column(String(80), default="system")
    error_count: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_error_at: Mapped[datetime | None]


class RuleVersion(IdMixin, Base):
    """Every change of a rule: who, when, what it was and what it became."""

    __tablename__ = "supervision_rule_versions"

    rule_id: Mapped[uuid.UUID] = mapped_column(index=True)
    version: Mapped[int]
    changed_at: Mapped[datetime] = mapped_column(default=clock.now)
    changed_by: Mapped[str] = mapped_column(String(80))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any]]

    __table_args__ = (UniqueConstraint("rule_id", "version"),)


class RuleError(IdMixin, Base):
    """A rule that failed on an event (a custom rule's runtime error): skipped for that event, kept here."""

    __tablename__ = "supervision_rule_errors"

    rule_id: Mapped[uuid.UUID] = mapped_column(index=True)
    event_id: Mapped[uuid.UUID]
    error: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(default=clock.now)


class Fact(Base):
    """Compact state about one subject that later events are checked against, e.g. ``consultation:<id>`` →
    its practitioner and the diagnosis it follows up; ``prescription:<id>`` → its review state."""

    __tablename__ = "supervision_facts"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class Counter(Base):
    """A count per rule, subject and day (e.g. prescriptions a doctor signed that day, a patient's no-shows);
    a window is the sum over its days."""

    __tablename__ = "supervision_counters"

    rule_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class TimerStatus(enum.StrEnum):
    pending = "pending"
    fired = "fired"
    cancelled = "cancelled"


class Timer(IdMixin, Base):
    """Something that must happen by ``due_at`` (a record signed, a delivery completed); if the event that
    cancels it never comes, the rule fires a warning."""

    __tablename__ = "supervision_timers"

    rule_id: Mapped[uuid.UUID]
    timer_key: Mapped[str] = mapped_column(String(80))
    due_at: Mapped[datetime]
    status: Mapped[TimerStatus] = mapped_column(enum_type(TimerStatus), default=TimerStatus.pending)
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    hospital_id: Mapped[uuid.UUID | None]
    hospital_region: Mapped[str | None] = mapped_column(String(12))
    practitioner_id: Mapped[uuid.UUID | None]
    patient_id: Mapped[uuid.UUID | None]
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    fired_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("rule_id", "timer_key"),
        Index("ix_supervision_timers_due", "status", "due_at"),
    )


class RuleWarning(IdMixin, Base):
    """One violation: which rule, how severe, about whom, and the events that show it."""

    __tablename__ = "supervision_warnings"

    rule_id: Mapped[uuid.UUID | None]
    rule_code: Mapped[str] = mapped_column(String(64))
    regulation: Mapped[str | None] = mapped_column(String(8))
    severity: Mapped[Severity] = mapped_column(enum_type(Severity))
    message: Mapped[str] = mapped_column(String(500))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    hospital_id: Mapped[uuid.UUID | None]
    hospital_region: Mapped[str | None] = mapped_column(String(12))
    practitioner_id: Mapped[uuid.UUID | None]
    patient_id: Mapped[uuid.UUID | None]
    evidence: Mapped[list[str]] = mapped_column(JSON)
    details: Mapped[dict[str, Any]]
    source: Mapped[str] = mapped_column(String(16))  # event | timer | anomaly | complaint
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    case_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    dedup_key: Mapped[str] = mapped_column(String(120), unique=True)

    __table_args__ = (
        Index("ix_supervision_warnings_time", "created_at"),
        Index("ix_supervision_warnings_hospital", "hospital_id", "created_at"),
        Index("ix_supervision_warnings_region", "hospital_region", "created_at"),
    )


class Case(IdMixin, Base):
    """Warnings of one rule about one subject (a doctor, a hospital, a patient, a record), handled by people."""

    __tablename__ = "supervision_cases"

    number: Mapped[str] = mapped_column(String(24), unique=True)
    rule_id: Mapped[uuid.UUID | None]
    rule_code: Mapped[str] = mapped_column(String(64))
    regulation: Mapped[str | None] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(300))
    severity: Mapped[Severity] = mapped_column(enum_type(Severity))
    status: Mapped[CaseStatus] = mapped_column(enum_type(CaseStatus), default=CaseStatus.open)
    group_key: Mapped[str] = mapped_column(String(120))
    # Set while the case is not closed: at most one open case per rule and group (a unique index; NULLs repeat).
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    hospital_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    hospital_region: Mapped[str | None] = mapped_column(String(12), index=True)
    source: Mapped[str] = mapped_column(String(16))  # rule | anomaly | complaint
    assignee_user_id: Mapped[uuid.UUID | None]
    sent_to_hospital_at: Mapped[datetime | None]  # asked to rectify: from then on the hospital admin sees the case
    opened_at: Mapped[datetime] = mapped_column(default=clock.now)
    due_at: Mapped[datetime]
    escalation_level: Mapped[int] = mapped_column(default=0)
    escalated_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(1000))
    warning_count: Mapped[int] = mapped_column(default=0)
    last_warning_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (Index("ix_supervision_cases_status_due", "status", "due_at"),)

    @property
    def overdue(self) -> bool:
        return self.status not in CLOSED_CASE_STATUSES and self.due_at <= clock.now()


class CaseEntry(IdMixin, Base):
    """The case's history: every comment, assignment, request, answer, decision and escalation."""

    __tablename__ = "supervision_case_entries"

    case_id: Mapped[uuid.UUID] = mapped_column(index=True)
    at: Mapped[datetime] = mapped_column(default=clock.now)
    actor: Mapped[str] = mapped_column(String(80))
    actor_name: Mapped[str] = mapped_column(String(80), server_default="system")
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(String(2000))
    # Seen by the hospital's admins (a rectification request, their answers, the decision), or internal.
    shared: Mapped[bool] = mapped_column(default=False, server_default=false())
    status_from: Mapped[str | None] = mapped_column(String(16))
    status_to: Mapped[str | None] = mapped_column(String(16))


class ReportingPlatform(IdMixin, Base):
    """A platform that reports its events to this engine (standalone mode): its token and the regions whose
    hospitals it may report for."""

    __tablename__ = "supervision_platforms"

    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    regions: Mapped[list[str]] = mapped_column(JSON)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_hint: Mapped[str] = mapped_column(String(12))  # the token's last characters, to tell tokens apart
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    created_by: Mapped[str] = mapped_column(String(80))
    token_rotated_at: Mapped[datetime | None]
    last_report_at: Mapped[datetime | None]
    last_catalog_version: Mapped[str | None] = mapped_column(String(8))
    events_accepted: Mapped[int] = mapped_column(default=0)
    events_rejected: Mapped[int] = mapped_column(default=0)


class Indicator(Base):
    """One day's figures for a hospital (``subject_kind`` hospital, ``subject_id`` = the hospital) or for a doctor
    at a hospital (``subject_kind`` practitioner), computed from the trace by ``indicators.compute_day``.
    Rates are derived from these counts when read."""

    __tablename__ = "supervision_indicators"

    day: Mapped[date] = mapped_column(primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital_region: Mapped[str | None] = mapped_column(String(12))
    hospital_level: Mapped[str | None] = mapped_column(String(16))
    consultations: Mapped[int] = mapped_column(default=0)
    prescriptions: Mapped[int] = mapped_column(default=0)
    prescription_fen: Mapped[int] = mapped_column(default=0)
    high_value_prescriptions: Mapped[int] = mapped_column(default=0)
    prescriptions_checked: Mapped[int] = mapped_column(default=0)
    antibiotic_attempts: Mapped[int] = mapped_column(default=0)
    special_drug_attempts: Mapped[int] = mapped_column(default=0)
    records_signed: Mapped[int] = mapped_column(default=0)
    records_late: Mapped[int] = mapped_column(default=0)
    qc_records: Mapped[int] = mapped_column(default=0)
    qc_defects: Mapped[int] = mapped_column(default=0)
    referrals: Mapped[int] = mapped_column(default=0)
    warnings: Mapped[int] = mapped_column(default=0)
    cases_opened: Mapped[int] = mapped_column(default=0)
    ratings: Mapped[int] = mapped_column(default=0)
    rating_sum: Mapped[int] = mapped_column(default=0)
    complaints: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        Index("ix_supervision_indicators_subject", "subject_kind", "subject_id", "day"),
        Index("ix_supervision_indicators_region", "subject_kind", "hospital_region", "day"),
    )


class IndicatorDay(Base):
    """A day whose indicators were computed: when, whether the day was over (only then are anomalies checked),
    and a claim so that one worker computes it at a time."""

    __tablename__ = "supervision_indicator_days"

    day: Mapped[date] = mapped_column(primary_key=True)
    complete: Mapped[bool] = mapped_column(default=False)
    computed_at: Mapped[datetime]
    rows: Mapped[int] = mapped_column(default=0)
    anomalies: Mapped[int] = mapped_column(default=0)
