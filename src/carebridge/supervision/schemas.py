from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictStr, StringConstraints

from carebridge.core.schemas import Input, Output, Patch
from carebridge.supervision.models import ScopeKind, Severity

GroupBy = Literal["practitioner", "hospital", "patient", "subject"]


class RuleIn(Input):
    code: StrictStr = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    rule_type: StrictStr = Field(max_length=48)
    name: StrictStr | None = Field(default=None, min_length=2, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict, max_length=20)
    expression: StrictStr | None = Field(default=None, max_length=4000)
    severity: Severity
    enabled: StrictBool = True
    scope_kind: ScopeKind = ScopeKind.all
    scope_value: StrictStr | None = Field(default=None, max_length=40)
    group_by: GroupBy | None = None


class RulePatch(Patch):
    NOT_NULL = frozenset({"name", "params", "severity", "enabled", "scope_kind", "group_by"})

    version: int | None = Field(default=None, ge=1, description="the version you edited; 409 if it moved on")
    name: StrictStr | None = Field(default=None, min_length=2, max_length=200)
    params: dict[str, Any] | None = Field(default=None, max_length=20)
    expression: StrictStr | None = Field(default=None, max_length=4000)
    severity: Severity | None = None
    enabled: StrictBool | None = None
    scope_kind: ScopeKind | None = None
    scope_value: StrictStr | None = Field(default=None, max_length=40)
    group_by: GroupBy | None = None


class RuleOut(Output):
    id: uuid.UUID
    code: str
    regulation: str | None
    rule_type: str
    name: str
    params: dict[str, Any]
    expression: str | None
    severity: Severity
    enabled: bool
    scope_kind: ScopeKind
    scope_value: str | None
    group_by: str
    version: int
    updated_at: datetime
    updated_by: str
    error_count: int
    last_error: str | None
    last_error_at: datetime | None


class RuleVersionOut(Output):
    version: int
    changed_at: datetime
    changed_by: str
    before: dict[str, Any] | None
    after: dict[str, Any]


class RuleTypeOut(Output):
    name: str
    regulation: str | None
    title: str
    events: list[str]
    group_by: str
    precheck: bool
    params_schema: dict[str, Any]


class WarningOut(Output):
    id: uuid.UUID
    rule_code: str
    regulation: str | None
    severity: Severity
    message: str
    subject_type: str
    subject_id: str
    hospital_id: uuid.UUID | None
    hospital_region: str | None
    practitioner_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    evidence: list[str]
    details: dict[str, Any]
    source: str
    occurred_at: datetime
    created_at: datetime
    case_id: uuid.UUID | None


class TracedEventOut(Output):
    id: uuid.UUID
    type: str
    catalog_version: str
    occurred_at: datetime
    received_at: datetime
    hospital_id: uuid.UUID | None
    hospital_region: str | None
    actor: str | None
    subject_type: str
    subject_id: str
    data: dict[str, Any]


class SubjectIn(Input):
    type: StrictStr = Field(min_length=1, max_length=40)
    id: StrictStr = Field(min_length=1, max_length=64)


class PrecheckIn(Input):
    """A proposed action, shaped as the event it would produce (docs/events.md)."""

    type: StrictStr = Field(max_length=64)
    hospital_id: uuid.UUID | None = None
    region: StrictStr | None = Field(default=None, max_length=12)
    actor: StrictStr | None = Field(default=None, max_length=80)
    subject: SubjectIn
    data: dict[str, Any] = Field(max_length=60)


class FindingOut(Output):
    rule: str
    regulation: str | None
    severity: str
    name: str
    message: str
    details: dict[str, Any]


class PrecheckOut(Output):
    allowed: bool  # no block finding
    findings: list[FindingOut]


CaseStatusName = Literal["open", "rectifying", "answered", "resolved", "dismissed"]


class CaseOut(Output):
    id: uuid.UUID
    number: str
    rule_code: str
    regulation: str | None
    title: str
    severity: Severity
    status: CaseStatusName
    subject_type: str
    subject_id: str
    hospital_id: uuid.UUID | None
    hospital_region: str | None
    source: str
    assignee_user_id: uuid.UUID | None
    sent_to_hospital_at: datetime | None
    opened_at: datetime
    due_at: datetime
    overdue: bool
    escalation_level: int
    escalated_at: datetime | None
    closed_at: datetime | None
    resolution: str | None
    warning_count: int
    last_warning_at: datetime | None
    updated_at: datetime


class CaseEntryOut(Output):
    at: datetime
    actor: str
    actor_name: str
    kind: str
    text: str | None
    shared: bool
    status_from: str | None
    status_to: str | None


class CaseDetailOut(Output):
    case: CaseOut
    assignee_name: str | None
    entries: list[CaseEntryOut]
    warnings: list[WarningOut]  # the newest 200


class SupervisorOut(Output):
    id: uuid.UUID
    display_name: str
    region_code: str | None


class AssignIn(Input):
    assignee_user_id: uuid.UUID


class CaseTextIn(Input):
    text: StrictStr = Field(min_length=1, max_length=2000)


class PlatformAnswerIn(Input):
    text: StrictStr = Field(min_length=1, max_length=2000, description="the hospital's answer")
    answered_by: StrictStr = Field(
        min_length=1, max_length=100, description="who at the hospital answered (name and post), kept in the history"
    )


class RectificationIn(Input):
    text: StrictStr = Field(min_length=1, max_length=2000, description="what the hospital must put right")
    due_in_days: int = Field(default=7, ge=1, le=90, description="days the hospital has to answer")


class CloseIn(Input):
    outcome: Literal["resolved", "dismissed"]
    reason: StrictStr = Field(min_length=2, max_length=1000)


class ReopenIn(Input):
    reason: StrictStr = Field(min_length=2, max_length=1000)


RegionCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]


class PlatformIn(Input):
    code: StrictStr = Field(min_length=2, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    name: StrictStr = Field(min_length=2, max_length=200)
    regions: list[RegionCode] = Field(min_length=1, max_length=50, description="GB/T 2260 codes it reports for")


class PlatformPatch(Patch):
    NOT_NULL = frozenset({"name", "regions", "active"})

    name: StrictStr | None = Field(default=None, min_length=2, max_length=200)
    regions: list[RegionCode] | None = Field(default=None, min_length=1, max_length=50)
    active: StrictBool | None = None


class PlatformOut(Output):
    id: uuid.UUID
    code: str
    name: str
    regions: list[str]
    token_hint: str
    active: bool
    created_at: datetime
    token_rotated_at: datetime | None
    last_report_at: datetime | None
    last_catalog_version: str | None
    events_accepted: int
    events_rejected: int


class PlatformTokenOut(Output):
    platform: PlatformOut
    token: str = Field(description="shown once: keep it; rotating issues a new one and ends this one")


class IngestIn(Input):
    """A batch of events (docs/reporting.md). Each event is checked on its own."""

    catalog_version: StrictStr | None = Field(default=None, max_length=8, description="the default for its events")
    events: list[Any] = Field(min_length=1, max_length=1000)


class RejectedOut(Output):
    index: int
    id: Any
    code: str
    reason: str
    field: str | None


class DuplicateOut(Output):
    index: int
    id: str


class IngestOut(Output):
    received: int
    accepted: int
    duplicates: list[DuplicateOut]
    rejected: list[RejectedOut]
    warnings: int


class IndicatorOut(Output):
    day: date
    subject_kind: str
    subject_id: uuid.UUID
    hospital_id: uuid.UUID
    hospital_region: str | None
    hospital_level: str | None
    metrics: dict[str, float | int | None]


class RegionDayOut(Output):
    day: date
    metrics: dict[str, float | int | None]
    computed_at: datetime | None
    complete: bool


class RankedHospitalOut(Output):
    rank: int
    hospital_id: uuid.UUID
    name: str
    region_code: str
    level: str | None
    warnings: int
    by_severity: dict[str, int]
    open_cases: int
    overdue_cases: int


class ComputeIn(Input):
    day: date


class ComputeOut(Output):
    day: date
    complete: bool
    rows: int
    anomalies: int
