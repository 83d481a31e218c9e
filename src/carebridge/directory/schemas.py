from __future__ import annotations

import uuid
from datetime import date

from pydantic import Field, StrictBool, StrictStr

from carebridge.core.schemas import Input, Output, Patch
from carebridge.directory.models import FilingKind, HospitalLevel, PractitionerStatus, PractitionerTitle

Code = StrictStr


class RegionIn(Input):
    code: StrictStr = Field(pattern=r"^\d{6}$")
    name: StrictStr = Field(min_length=1, max_length=64)
    parent_code: StrictStr | None = Field(default=None, pattern=r"^\d{6}$")


class RegionOut(Output):
    code: str
    name: str
    parent_code: str | None


class HospitalIn(Input):
    region_code: StrictStr = Field(pattern=r"^\d{6}$")
    name: StrictStr = Field(min_length=2, max_length=120)
    short_name: StrictStr | None = Field(default=None, max_length=40)
    level: HospitalLevel
    licence_number: StrictStr = Field(min_length=4, max_length=64)
    licence_expires_on: date
    licence_verified_on: date | None = None
    is_internet_hospital: StrictBool = False
    timezone: StrictStr = Field(default="Asia/Shanghai", max_length=40)
    address: StrictStr | None = Field(default=None, max_length=200)
    phone: StrictStr | None = Field(default=None, max_length=32)


class HospitalPatch(Patch):
    NOT_NULL = frozenset({"name", "level", "licence_number", "licence_expires_on", "is_internet_hospital", "active"})

    name: StrictStr | None = Field(default=None, min_length=2, max_length=120)
    short_name: StrictStr | None = Field(default=None, max_length=40)
    level: HospitalLevel | None = None
    licence_number: StrictStr | None = Field(default=None, min_length=4, max_length=64)
    licence_expires_on: date | None = None
    licence_verified_on: date | None = None
    is_internet_hospital: StrictBool | None = None
    address: StrictStr | None = Field(default=None, max_length=200)
    phone: StrictStr | None = Field(default=None, max_length=32)
    active: StrictBool | None = None


# Fields only a platform admin may change: they are what the regulator licenses.
LICENSED_FIELDS = {
    "level",
    "licence_number",
    "licence_expires_on",
    "licence_verified_on",
    "is_internet_hospital",
    "active",
}


class HospitalOut(Output):
    id: uuid.UUID
    region_code: str
    name: str
    short_name: str | None
    level: HospitalLevel
    licence_number: str
    licence_expires_on: date
    licence_verified_on: date | None
    is_internet_hospital: bool
    timezone: str
    address: str | None
    phone: str | None
    active: bool


class CampusIn(Input):
    name: StrictStr = Field(min_length=1, max_length=120)
    address: StrictStr | None = Field(default=None, max_length=200)


class CampusOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    name: str
    address: str | None


class DepartmentIn(Input):
    name: StrictStr = Field(min_length=1, max_length=80)
    standard_code: StrictStr = Field(pattern=r"^\d{2}(\.\d{2}){0,2}$")
    campus_id: uuid.UUID | None = None
    description: StrictStr | None = Field(default=None, max_length=500)


class DepartmentPatch(Patch):
    NOT_NULL = frozenset({"name", "standard_code", "active"})

    name: StrictStr | None = Field(default=None, min_length=1, max_length=80)
    standard_code: StrictStr | None = Field(default=None, pattern=r"^\d{2}(\.\d{2}){0,2}$")
    campus_id: uuid.UUID | None = None
    description: StrictStr | None = Field(default=None, max_length=500)
    active: StrictBool | None = None


class DepartmentOut(Output):
    id: uuid.UUID
    hospital_id: uuid.UUID
    campus_id: uuid.UUID | None
    name: str
    standard_code: str
    description: str | None
    active: bool


class FilingIn(Input):
    hospital_id: uuid.UUID
    department_id: uuid.UUID
    kind: FilingKind
    valid_from: date
    valid_to: date | None = None


class FilingPatch(Input):
    valid_to: date | None = None
    revoke: StrictBool = False


class FilingOut(Output):
    id: uuid.UUID
    practitioner_id: uuid.UUID
    hospital_id: uuid.UUID
    department_id: uuid.UUID
    kind: FilingKind
    valid_from: date
    valid_to: date | None
    revoked: bool


class PractitionerIn(Input):
    name: StrictStr = Field(min_length=1, max_length=40)
    sex: StrictStr | None = Field(default=None, pattern=r"^(male|female)$")
    title: PractitionerTitle
    specialty: StrictStr = Field(min_length=1, max_length=80)
    licence_number: StrictStr = Field(pattern=r"^[0-9A-Za-z]{6,32}$")
    practice_started_on: date
    introduction: StrictStr | None = Field(default=None, max_length=1000)
    # Hospital admins create a practitioner together with the filing at their own hospital.
    filing: FilingIn | None = None


class PractitionerPatch(Patch):
    NOT_NULL = frozenset({"name", "title", "specialty", "status"})

    name: StrictStr | None = Field(default=None, min_length=1, max_length=40)
    title: PractitionerTitle | None = None
    specialty: StrictStr | None = Field(default=None, min_length=1, max_length=80)
    status: PractitionerStatus | None = None
    introduction: StrictStr | None = Field(default=None, max_length=1000)


class PractitionerOut(Output):
    id: uuid.UUID
    name: str
    sex: str | None
    title: PractitionerTitle
    specialty: str
    licence_number: str
    practice_started_on: date
    status: PractitionerStatus
    introduction: str | None
    filings: list[FilingOut] = []
