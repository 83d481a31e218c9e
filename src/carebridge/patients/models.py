"""Real-name patients, the accounts that manage them (self and family), and medical cards.

A patient is a person, unique by resident ID number (through its blind index). Several accounts may manage
one person (both parents of a child); ``PatientLink`` says who and how. ID number, phone and name are
encrypted at rest (``EncryptedString``); the blind indexes allow exact lookup without decrypting.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.database.base import Base, EncryptedString, IdMixin, enum_type


class Sex(enum.StrEnum):
    male = "male"
    female = "female"


class Relation(enum.StrEnum):
    self = "self"
    child = "child"
    parent = "parent"
    spouse = "spouse"
    other = "other"


class Patient(IdMixin, Base):
    __tablename__ = "patients"

    region: Mapped[str] = mapped_column(String(12), index=True)  # from the ID number's first six digits
    name: Mapped[str] = mapped_column(EncryptedString(200))
    id_number: Mapped[str] = mapped_column(EncryptedString(200))
    id_number_index: Mapped[str] = mapped_column(String(48), unique=True)
    phone: Mapped[str | None] = mapped_column(EncryptedString(200))
    phone_index: Mapped[str | None] = mapped_column(String(48), index=True)
    key_version: Mapped[int]
    birth_date: Mapped[date]
    sex: Mapped[Sex] = mapped_column(enum_type(Sex))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class PatientLink(IdMixin, Base):
    """An account that may act for a patient: book, cancel, see their appointments."""

    __tablename__ = "patient_links"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    relation: Mapped[Relation] = mapped_column(enum_type(Relation))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (UniqueConstraint("user_id", "patient_id"),)


class MedicalCard(IdMixin, Base):
    """A hospital's own card number for a patient (就诊卡号), the key its HIS knows them by."""

    __tablename__ = "medical_cards"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    hospital_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hospitals.id"), index=True)
    card_number: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (
        UniqueConstraint("hospital_id", "card_number"),
        UniqueConstraint("hospital_id", "patient_id"),
    )
