"""Resident identity numbers (GB 11643-1999) and masking of personal data."""

from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")
_PHONE = re.compile(r"^1[3-9]\d{9}$")


class InvalidIdNumber(ValueError):
    pass


def check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def parse_id_number(raw: str, *, today: date) -> tuple[str, date, str, str]:
    """Validate an 18-character resident ID; return (normalised, birth date, sex, region code).

    Raises ``InvalidIdNumber`` with the reason: shape, check character, or an impossible birth date.
    """
    value = raw.strip().upper()
    if not _SHAPE.match(value):
        raise InvalidIdNumber("an ID number is 17 digits and a digit or X")
    if check_char(value[:17]) != value[17]:
        raise InvalidIdNumber("the check character does not match")
    try:
        birth = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise InvalidIdNumber("the birth date in the ID number does not exist") from exc
    if birth > today or birth.year < 1890:
        raise InvalidIdNumber("the birth date in the ID number is out of range")
    sex = "male" if int(value[16]) % 2 else "female"
    return value, birth, sex, value[:6]


def valid_phone(raw: str) -> bool:
    return bool(_PHONE.match(raw))


def mask_name(name: str) -> str:
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_id_number(value: str) -> str:
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_phone(value: str | None) -> str | None:
    return None if value is None else value[:3] + "****" + value[-4:]
