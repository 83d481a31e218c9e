from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.database.base import Base, IdMixin, enum_type


class Role(enum.StrEnum):
    patient = "patient"
    doctor = "doctor"
    pharmacist = "pharmacist"
    hospital_admin = "hospital_admin"
    regulator = "regulator"
    platform_admin = "platform_admin"
    developer = "developer"  # a partner's developer: registers and manages partner apps (openplatform)


HOSPITAL_SCOPED = {Role.doctor, Role.pharmacist, Role.hospital_admin}


class User(IdMixin, Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(enum_type(Role))
    display_name: Mapped[str] = mapped_column(String(80))
    hospital_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("hospitals.id"), index=True)
    region_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"))
    practitioner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("practitioners.id"))
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    password_changed_at: Mapped[datetime] = mapped_column(default=clock.now)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class AccessToken(IdMixin, Base):
    """A bearer token. Only its SHA-256 is stored; the token itself is shown once, at login."""

    __tablename__ = "access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
