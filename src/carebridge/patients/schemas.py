from __future__ import annotations

import uuid
from datetime import date

from pydantic import Field, StrictStr

from carebridge.core.schemas import Input, Output
from carebridge.patients.models import Relation, Sex


class PatientIn(Input):
    name: StrictStr = Field(min_length=1, max_length=40)
    id_number: StrictStr = Field(min_length=18, max_length=18)
    phone: StrictStr | None = Field(default=None, pattern=r"^1[3-9]\d{9}$")
    relation: Relation = Relation.self


class PatientPatch(Input):
    phone: StrictStr | None = Field(default=None, pattern=r"^1[3-9]\d{9}$")


class PatientOut(Output):
    """A patient as one caller may see them: unmasked only to accounts linked to the patient."""

    id: uuid.UUID
    name: str
    id_number: str
    phone: str | None
    birth_date: date
    sex: Sex
    region: str
    relation: Relation | None = None
    masked: bool


class MedicalCardIn(Input):
    hospital_id: uuid.UUID
    card_number: StrictStr = Field(pattern=r"^[0-9A-Za-z\-]{4,32}$")


class MedicalCardOut(Output):
    id: uuid.UUID
    patient_id: uuid.UUID
    hospital_id: uuid.UUID
    card_number: str
