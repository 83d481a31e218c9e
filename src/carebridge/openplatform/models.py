"""Partner apps (third parties that reach hospitals through the open platform) and hospitals' grants to them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.database.base import Base, IdMixin, enum_type


class AppKind(enum.StrEnum):
    patient_facing = "patient_facing"  # a patient's app: authorization code with PKCE, a redirect URI
    backend = "backend"  # a server: client credentials with private_key_jwt (SMART Backend Services), a JWKS


class AppStatus(enum.StrEnum):
    pending = "pending"  # registered, waiting for a platform admin
    approved = "approved"
    suspended = "suspended"
    rejected = "rejected"


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
    reviewed_by: Mapped[uuid.UUID | None]
    reviewed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


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
