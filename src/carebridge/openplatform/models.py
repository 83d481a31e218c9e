"""Partner apps (third parties that reach hospitals through the open platform) and hospitals' grants to them."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.database.base import Base, EncryptedString, IdMixin, enum_type


class AppKind(enum.StrEnum):
    patient_facing = "patient_facing"  # a patient's app: authorization code with PKCE, a redirect URI
    backend = "backend"  # a server: client credentials with private_key_jwt (SMART Backend Services), a JWKS


class AppStatus(enum.StrEnum):
    pending = "pending"  # registered, waiting for a platform admin
    approved = "approved"
    suspended = "suspended"
    rejected = "rejected"


def partner_channel(app_id: uuid.UUID) -> str:
    return f"partner:{app_id.hex}"


class PartnerApp(IdMixin, Base):
    __tablename__ = "partner_apps"

    client_id: Mapped[str] = mapped_column(String(40), unique=True)
    owner_user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    organisation: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[AppKind] = mapped_column(enum_type(AppKind))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    scopes: Mapped[list[str]] = mapped_column(JSON)  # what the app asks for; a token never gets more
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # public keys of a backend app
    status: Mapped[AppStatus] = mapped_column(enum_type(AppStatus), default=AppStatus.pending)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    # Limits a platform admin set for this app; None: the platform's defaults (docs/openplatform.md).
    rate_limit_per_second: Mapped[int | None]
    daily_quota: Mapped[int | None]
    reviewed_by: Mapped[uuid.UUID | None]
    reviewed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)

    @property
    def channel(self) -> str:
        """The app's pool in each slot (scheduling's channel ``partner:<app>``), where its bookings come from."""
        return partner_channel(self.id)


class HospitalGrant(IdMixin, Base):
    """A hospital's consent that an app may act for it; revoked grants stay as history."""

    __tablename__ = "partner_app_grants"

    app_id: Mapped[uuid.UUID] = mapped_column(index=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(index=True)
    granted_by: Mapped[uuid.UUID]
    granted_at: Mapped[datetime] = mapped_column(default=clock.now)
    revoked_by: Mapped[uuid.UUID | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "uq_partner_app_grants_active",
            "app_id",
            "hospital_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )


class Sandbox(IdMixin, Base):
    """An approved app's sandbox hospital (openplatform.sandbox): its demo data rolls forward day by day."""

    __tablename__ = "partner_sandboxes"

    app_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    schedules_until: Mapped[date]  # the last day with generated schedules
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class SandboxPatient(IdMixin, Base):
    """A test patient account of a sandbox, to sign in with on the consent page; fictitious people only, so its
    password is kept (encrypted) and shown to the app's developer."""

    __tablename__ = "partner_sandbox_patients"

    sandbox_id: Mapped[uuid.UUID] = mapped_column(index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    username: Mapped[str] = mapped_column(String(40))
    password: Mapped[str] = mapped_column(EncryptedString(200))


class AuthorizationCode(IdMixin, Base):
    """A one-time code from the consent page (authorization code with PKCE); only its SHA-256 is stored."""

    __tablename__ = "oauth_authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    app_id: Mapped[uuid.UUID] = mapped_column(index=True)
    user_id: Mapped[uuid.UUID]
    patient_id: Mapped[uuid.UUID | None]  # the patient the user chose on the consent page (launch/patient)
    scope: Mapped[str] = mapped_column(String(2000))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class OAuthToken(IdMixin, Base):
    """An access token issued to a partner app, with its refresh token when it has one; hashes only.

    Refresh tokens rotate: using one issues a new row in the same ``family_id`` and marks this one
    ``rotated_at``. A rotated refresh token presented again is a replay: the whole family is revoked.
    """

    __tablename__ = "oauth_tokens"

    app_id: Mapped[uuid.UUID] = mapped_column(index=True)
    user_id: Mapped[uuid.UUID | None]  # the patient's account (authorization code); None for backend apps
    patient_id: Mapped[uuid.UUID | None]  # the patient in context (patient/ scopes)
    scope: Mapped[str] = mapped_column(String(2000))
    access_hash: Mapped[str] = mapped_column(String(64), unique=True)
    access_expires_at: Mapped[datetime]
    refresh_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    refresh_expires_at: Mapped[datetime | None]
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    code_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ClientAssertion(Base):
    """A backend app's client assertion (private_key_jwt) already used: its ``jti`` may not come again."""

    __tablename__ = "oauth_client_assertions"

    client_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class WebhookSubscription(IdMixin, Base):
    """An app's subscription to event types (catalog types or families, ``appointment.*``), delivered to a URL
    and signed with the subscription's secret (HMAC-SHA256)."""

    __tablename__ = "webhook_subscriptions"

    app_id: Mapped[uuid.UUID] = mapped_column(index=True)
    url: Mapped[str] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(EncryptedString(200))  # shown once, when the subscription is made
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class DeliveryStatus(enum.StrEnum):
    pending = "pending"  # waiting for its (next) attempt
    delivered = "delivered"  # the receiver answered 2xx
    dead = "dead"  # retried for 24 hours without a 2xx: the dead-letter list (redeliver on request)


class WebhookDelivery(IdMixin, Base):
    """One event for one subscription, and its attempts so far: the delivery log."""

    __tablename__ = "webhook_deliveries"

    subscription_id: Mapped[uuid.UUID]
    app_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(64))
    hospital_id: Mapped[uuid.UUID | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the event as the catalog's JSON
    status: Mapped[DeliveryStatus] = mapped_column(enum_type(DeliveryStatus), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_ms: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_app", "app_id", "created_at"),
    )


class PartnerUsage(IdMixin, Base):
    """An app's calls in one hour (UTC), by endpoint and status: count, total and longest time taken."""

    __tablename__ = "partner_usage"

    app_id: Mapped[uuid.UUID]
    day: Mapped[date]
    hour: Mapped[int]
    endpoint: Mapped[str] = mapped_column(String(120))
    status: Mapped[int]
    count: Mapped[int]
    total_ms: Mapped[float]
    max_ms: Mapped[float]

    __table_args__ = (UniqueConstraint("app_id", "day", "hour", "endpoint", "status"),)
