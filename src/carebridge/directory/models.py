"""Regions, hospitals, campuses, departments, practitioners and their filings at hospitals."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.database.base import Base, IdMixin, enum_type


class HospitalLevel(enum.StrEnum):
    primary = "primary"
    secondary = "secondary"
    tertiary = "tertiary"


class PractitionerTitle(enum.StrEnum):
    chief_physician = "chief_physician"  # 主任医师
    associate_chief_physician = "associate_chief_physician"  # 副主任医师
    attending_physician = "attending_physician"  # 主治医师
    resident_physician = "resident_physician"  # 住院医师
    chief_pharmacist = "chief_pharmacist"  # 主任药师
    pharmacist = "pharmacist"  # 药师


class PractitionerStatus(enum.StrEnum):
    active = "active"
    suspended = "suspended"
    retired = "retired"


class FilingKind(enum.StrEnum):
    main = "main"  # 第一执业地点
    multi_site = "multi_site"  # 多点执业


class Region(Base):
    """An administrative division (GB/T 2260 code), e.g. 110000 Beijing, 110105 Chaoyang."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"))


class Hospital(IdMixin, Base):
    __tablename__ = "hospitals"

    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    name: Mapped[str] = mapped_column(String(120), index=True)
    short_name: Mapped[str | None] = mapped_column(String(40))
    level: Mapped[HospitalLevel] = mapped_column(enum_type(HospitalLevel))
    licence_number: Mapped[str] = mapped_column(String(64), unique=True)
    licence_expires_on: Mapped[date]
    licence_verified_on: Mapped[date | None]  # the regulator's last verification of the licence (R18: yearly)
    is_internet_hospital: Mapped[bool] = mapped_column(default=False)
    timezone: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))  # the hospital's public switchboard, not personal data
    active: Mapped[bool] = mapped_column(default=True)
    # A partner app's sandbox (demo data to develop against): not in public searches, not reported to regulators
    sandbox_app_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class Campus(IdMixin, Base):
    __tablename__ = "campuses"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (UniqueConstraint("hospital_id", "name"),)


class Department(IdMixin, Base):
    __tablename__ = "departments"

    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"), index=True)
    campus_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("campuses.id"))
    name: Mapped[str] = mapped_column(String(80))
    # The standard department code (卫生部《医疗机构诊疗科目名录》), e.g. "03" internal medicine, "07" paediatrics.
    standard_code: Mapped[str] = mapped_column(String(16), index=True)
    description: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(default=True)

    __table_args__ = (UniqueConstraint("hospital_id", "campus_id", "name"),)


class Practitioner(IdMixin, Base):
    __tablename__ = "practitioners"

    name: Mapped[str] = mapped_column(String(40), index=True)
    sex: Mapped[str | None] = mapped_column(String(8))
    title: Mapped[PractitionerTitle] = mapped_column(enum_type(PractitionerTitle), index=True)
    specialty: Mapped[str] = mapped_column(String(80), index=True)
    licence_number: Mapped[str] = mapped_column(String(32), unique=True)  # 医师执业证书编码
    practice_started_on: Mapped[date]  # date independent practice began
    status: Mapped[PractitionerStatus] = mapped_column(enum_type(PractitionerStatus), default=PractitionerStatus.active)
    introduction: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class PractitionerFiling(IdMixin, Base):
    """A practitioner's registration to practise at a hospital (main site or multi-site), in a department."""

    __tablename__ = "practitioner_filings"

    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"), index=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("departments.id"), index=True)
    kind: Mapped[FilingKind] = mapped_column(enum_type(FilingKind))
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (
        UniqueConstraint("practitioner_id", "hospital_id", "department_id", "valid_from"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_dates"),
        Index("ix_filing_hospital_department", "hospital_id", "department_id"),
    )
