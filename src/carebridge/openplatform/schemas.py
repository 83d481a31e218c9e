"""Partner app input and output."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, StrictInt, StrictStr

from carebridge.core.schemas import Input, Output, Patch
from carebridge.openplatform.models import AppKind, AppStatus, DeliveryStatus


class DeveloperIn(Input):
    username: StrictStr = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: StrictStr = Field(min_length=8, max_length=256)
    display_name: StrictStr = Field(min_length=1, max_length=80)


class AppIn(Input):
    organisation: StrictStr = Field(min_length=2, max_length=200, description="the company or body behind the app")
    name: StrictStr = Field(min_length=2, max_length=100)
    kind: AppKind
    redirect_uris: list[StrictStr] = Field(default_factory=list, max_length=10)
    scopes: list[StrictStr] = Field(min_length=1, max_length=40)
    webhook_url: StrictStr | None = Field(default=None, max_length=500)
    jwks: dict[str, Any] | None = Field(default=None, description="a backend app's public keys (RFC 7517 JWK Set)")


class AppPatch(Patch):
    """What a developer changes without a new review: names, redirect URIs, keys (rotation), the webhook URL.
    Scopes and kind are what the platform admin approved: a new set is a new app."""

    NOT_NULL = frozenset({"organisation", "name", "redirect_uris"})

    organisation: StrictStr | None = Field(default=None, min_length=2, max_length=200)
    name: StrictStr | None = Field(default=None, min_length=2, max_length=100)
    redirect_uris: list[StrictStr] | None = Field(default=None, max_length=10)
    webhook_url: StrictStr | None = Field(default=None, max_length=500)
    jwks: dict[str, Any] | None = Field(default=None, description="a backend app's new public keys (JWK Set)")


class ReviewIn(Input):
    decision: Literal["approve", "suspend", "reject"]
    reason: StrictStr | None = Field(default=None, min_length=2, max_length=500)


class AppOut(Output):
    id: uuid.UUID
    client_id: str
    owner_user_id: uuid.UUID
    organisation: str
    name: str
    kind: AppKind
    redirect_uris: list[str]
    scopes: list[str]
    webhook_url: str | None
    jwks: dict[str, Any] | None
    channel: str  # its pool in each slot: hospitals move capacity there for the app's bookings
    rate_limit_per_second: int | None
    daily_quota: int | None
    status: AppStatus
    status_reason: str | None
    reviewed_at: datetime | None
    created_at: datetime


class GrantOut(Output):
    id: uuid.UUID
    app_id: uuid.UUID
    hospital_id: uuid.UUID
    granted_at: datetime
    revoked_at: datetime | None


class SubscriptionIn(Input):
    event_types: list[StrictStr] = Field(
        min_length=1, max_length=50, description="catalog types or families: appointment.booked, appointment.*"
    )
    url: StrictStr | None = Field(default=None, max_length=500, description="defaults to the app's webhook_url")


class SubscriptionOut(Output):
    id: uuid.UUID
    app_id: uuid.UUID
    url: str
    event_types: list[str]
    active: bool
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="the HMAC key of the signatures: shown this once")


class DeliveryOut(Output):
    id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    hospital_id: uuid.UUID | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_ms: float | None
    created_at: datetime
    delivered_at: datetime | None


class LimitsIn(Input):
    rate_limit_per_second: StrictInt | None = Field(default=None, ge=1, le=100_000, description="None: the default")
    daily_quota: StrictInt | None = Field(default=None, ge=1, le=1_000_000_000, description="None: the default")


class UsageRow(Output):
    day: date
    hour: int
    endpoint: str
    status: int
    count: int
    total_ms: float
    max_ms: float


class UsageOut(Output):
    app_id: uuid.UUID
    since: date
    rate_limit_per_second: int
    daily_quota: int
    calls_today: int
    rows: list[UsageRow]


class AlertOut(Output):
    app_id: uuid.UUID
    client_id: str | None
    kind: Literal["error_rate", "webhook_dead", "webhook_failing"]
    level: Literal["warning", "critical"]
    message: str
    details: dict[str, Any]


class SandboxPerson(Output):
    id: uuid.UUID
    name: str
    relation: str


class SandboxAccountOut(Output):
    username: str
    password: str = Field(description="a test account of fictitious people: sign in with it on the consent page")
    user_id: uuid.UUID
    patients: list[SandboxPerson]


class SandboxEntry(Output):
    id: uuid.UUID
    name: str


class SandboxOut(Output):
    app_id: uuid.UUID
    hospital_id: uuid.UUID
    hospital_name: str
    organization: str = Field(description="the FHIR reference of the sandbox hospital, Organization/<id>")
    schedules_until: date
    departments: list[SandboxEntry]
    practitioners: list[SandboxEntry]
    test_patients: list[SandboxAccountOut]


class SandboxResetOut(Output):
    appointments_cancelled: int
    blocks_lifted: int
