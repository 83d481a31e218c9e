from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, StrictStr

from carebridge.auth.models import Role
from carebridge.core.schemas import Input, Output


class LoginIn(Input):
    username: StrictStr = Field(min_length=1, max_length=64)
    password: StrictStr = Field(min_length=1, max_length=256)


class RegisterIn(Input):
    username: StrictStr = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: StrictStr = Field(min_length=8, max_length=256)
    display_name: StrictStr = Field(min_length=1, max_length=80)


class PasswordChangeIn(Input):
    current_password: StrictStr = Field(min_length=1, max_length=256)
    new_password: StrictStr = Field(min_length=8, max_length=256)


class UserCreateIn(Input):
    username: StrictStr = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: StrictStr = Field(min_length=8, max_length=256)
    display_name: StrictStr = Field(min_length=1, max_length=80)
    role: Role
    hospital_id: uuid.UUID | None = None
    region_code: StrictStr | None = Field(default=None, max_length=12)
    practitioner_id: uuid.UUID | None = None


class UserOut(Output):
    id: uuid.UUID
    username: str
    role: Role
    display_name: str
    hospital_id: uuid.UUID | None
    region_code: str | None
    practitioner_id: uuid.UUID | None


class TokenOut(Output):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserOut
