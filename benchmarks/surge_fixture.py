"""The booking-surge fixture: one hospital, its doctors' sessions on a day inside the booking window, and
patients with accounts and pre-issued bearer tokens, written with bulk INSERTs (seconds, not minutes).

Three sets of places, all ``platform`` pools on the same service day:

- ``release``: the S places the surge fights over (morning sessions of the D doctors);
- ``raw``: another S places (afternoon sessions) for the plain-SQL baseline, so it starts on fresh pools;
- ``warmup``: a few places (evening session of one doctor) booked before the release moment, so every
  worker has compiled its statements and opened its connections, as a server that has been up would have.
"""

from __future__ import annotations

import random
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import insert

from carebridge.app import configure_crypto
from carebridge.auth.models import AccessToken, Role, User
from carebridge.auth.service import token_digest
from carebridge.config import Settings
from carebridge.core import clock, crypto
from carebridge.core.ids import new_id
from carebridge.database.engine import Database
from carebridge.directory.models import (
    Campus,
    Department,
    FilingKind,
    Hospital,
    HospitalLevel,
    Practitioner,
    PractitionerFiling,
    PractitionerTitle,
    Region,
)
from carebridge.patients.models import Patient, PatientLink, Relation, Sex
from carebridge.scheduling.models import (
    BookingRule,
    Schedule,
    ScheduleStatus,
    Session,
    Slot,
    SlotPool,
    VisitType,
)

TZ = "Asia/Shanghai"
REGION = "110105"
SLOT_MINUTES = 15
SLOTS_PER_SESSION = 24  # 6 hours of 15-minute slots
SESSION_START = {Session.morning: time(6, 30), Session.afternoon: time(12, 30), Session.evening: time(17, 0)}
PASSWORD = "Bench-2026!"


@dataclass(frozen=True)
class Place:
    slot_id: str
    pool_id: str
    capacity: int


@dataclass(frozen=True)
class Person:
    user_id: str
    token: str
    patient_id: str
    region: str


@dataclass
class Fixture:
    hospital_id: str
    department_id: str
    service_date: date
    release: list[Place] = field(default_factory=list)
    raw: list[dict[str, Any]] = field(default_factory=list)  # what the plain-SQL baseline needs per pool
    warmup: list[Place] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)  # the surge's patients
    warmup_people: list[Person] = field(default_factory=list)

    @property
    def places(self) -> int:
        return sum(p.capacity for p in self.release)


def _split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` whole numbers differing by at most one."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _id_number(n: int) -> str:
    """A well-formed, unique resident ID number (the check digit as GB 11643 defines it)."""
    birth = date(1950, 1, 1) + timedelta(days=n % 20_000)
    first17 = f"{REGION}{birth:%Y%m%d}{n // 20_000 % 1000:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


class _Rows:
    def __init__(self) -> None:
        self.by_model: dict[type, list[dict[str, Any]]] = {}

    def add(self, model: type, **row: Any) -> None:
        self.by_model.setdefault(model, []).append(row)


async def preload(
    settings: Settings,
    *,
    places: int,
    doctors: int,
    people: int,
    warmup_places: int,
    warmup_people: int,
    argon2_time_cost: int,
    argon2_memory_kib: int,
    seed: int,
) -> Fixture:
    """Write the fixture into the migrated, empty database of ``settings``."""
    if places < doctors:
        raise SystemExit("--slots must be at least --doctors")
    configure_crypto(settings)
    rng = random.Random(seed)
    now = clock.now()
    service_date = clock.local_today(TZ) + timedelta(days=1)
    rows = _Rows()
    rows.add(Region, code="110000", name="北京市", parent_code=None)
    rows.add(Region, code=REGION, name="朝阳区", parent_code="110000")
    hospital_id, campus_id, department_id, visit_type_id = new_id(), new_id(), new_id(), new_id()
    rows.add(
        Hospital,
        id=hospital_id,
        region_code=REGION,
        name="基准测试医院",
        short_name="基准",
        level=HospitalLevel("tertiary"),
        licence_number=f"BENCH{seed}{rng.randrange(10**9)}",
        licence_expires_on=service_date + timedelta(days=700),
        is_internet_hospital=True,
        timezone=TZ,
    )
    rows.add(Campus, id=campus_id, hospital_id=hospital_id, name="本部", address=None)
    rows.add(
        Department,
        id=department_id,
        hospital_id=hospital_id,
        campus_id=campus_id,
        name="内科",
        standard_code="03",
        description=None,
    )
    rows.add(VisitType, id=visit_type_id, hospital_id=hospital_id, code="ordinary", name="普通号", fee_fen=1000)
    # Rules that let the load through: everyone books once, the day is open, no same-day cut-off.
    rows.add(
        BookingRule,
        hospital_id=hospital_id,
        department_id=None,
        window_days=7,
        opens_at=time(0, 0),
        same_day_cutoff=None,
        cancel_deadline_minutes=120,
        max_per_practitioner_per_day=1,
        max_per_department=10,
        max_total=10,
        auto_release_hours=None,
    )
    doctor_ids = []
    for n in range(doctors):
        doctor_id = new_id()
        doctor_ids.append(doctor_id)
        rows.add(
            Practitioner,
            id=doctor_id,
            name=f"医生{n:03d}",
            sex="female",
            title=PractitionerTitle("attending_physician"),
            specialty="内科",
            licence_number=f"B{seed}{rng.randrange(10**12):012d}{n}",
            practice_started_on=date(2010, 1, 1),
            introduction=None,
        )
        rows.add(
            PractitionerFiling,
            practitioner_id=doctor_id,
            hospital_id=hospital_id,
            department_id=department_id,
            kind=FilingKind.main,
            valid_from=date(2015, 1, 1),
            valid_to=None,
        )

    def session_places(session: Session, doctor_places: list[tuple[uuid.UUID, int]]) -> list[dict[str, Any]]:
        out = []
        for doctor_id, count in doctor_places:
            slots = min(SLOTS_PER_SESSION, count)
            start = clock.local_datetime(service_date, SESSION_START[session], TZ)
            step = timedelta(minutes=SLOT_MINUTES)
            schedule_id = new_id()
            rows.add(
                Schedule,
                id=schedule_id,
                hospital_id=hospital_id,
                department_id=department_id,
                practitioner_id=doctor_id,
                visit_type_id=visit_type_id,
                template_id=None,
                service_date=service_date,
                session=session,
                starts_at=start,
                ends_at=start + step * slots,
                fee_fen=1000,
                status=ScheduleStatus.open,
                queue_seq=0,
            )
            for i, capacity in enumerate(_split(count, slots)):
                slot_id, pool_id = new_id(), new_id()
                begins = start + step * i
                rows.add(
                    Slot,
                    id=slot_id,
                    schedule_id=schedule_id,
                    hospital_id=hospital_id,
                    starts_at=begins,
                    ends_at=begins + step,
                )
                rows.add(
                    SlotPool,
                    id=pool_id,
                    slot_id=slot_id,
                    schedule_id=schedule_id,
                    hospital_id=hospital_id,
                    channel="platform",
                    starts_at=begins,
                    capacity=capacity,
                    booked=0,
                    held=0,
                )
                out.append(
                    {
                        "slot_id": slot_id,
                        "pool_id": pool_id,
                        "capacity": capacity,
                        "schedule_id": schedule_id,
                        "practitioner_id": doctor_id,
                        "starts_at": begins,
                        "ends_at": begins + step,
                    }
                )
        return out

    per_doctor = _split(places, doctors)
    release = session_places(Session.morning, list(zip(doctor_ids, per_doctor, strict=True)))
    raw = session_places(Session.afternoon, list(zip(doctor_ids, per_doctor, strict=True)))
    warmup = session_places(Session.evening, [(doctor_ids[0], warmup_places)]) if warmup_places else []

    # Accounts: one self-linked patient each, and a bearer token issued as login would (only its SHA-256 kept).
    password_hash = PasswordHasher(time_cost=argon2_time_cost, memory_cost=argon2_memory_kib).hash(PASSWORD)
    cipher = crypto.cipher()
    expires = now + timedelta(hours=12)
    everyone: list[Person] = []
    for n in range(people + warmup_people):
        user_id, patient_id, token = new_id(), new_id(), secrets.token_urlsafe(32)
        id_number = _id_number(seed * 100_000 + n)
        phone = f"139{n:08d}"
        rows.add(
            User,
            id=user_id,
            username=f"bench{n}",
            password_hash=password_hash,
            role=Role.patient,
            display_name=f"患者{n}",
            active=True,
            failed_logins=0,
        )
        rows.add(
            Patient,
            id=patient_id,
            region=REGION,
            name=f"测试患者{n}",
            id_number=id_number,
            id_number_index=cipher.blind_index("id_number", id_number),
            phone=phone,
            phone_index=cipher.blind_index("phone", phone),
            key_version=cipher.current_version,
            birth_date=date(1980, 1, 1),
            sex=Sex("female"),
        )
        rows.add(PatientLink, user_id=user_id, patient_id=patient_id, relation=Relation.self)
        rows.add(AccessToken, token_hash=token_digest(token), user_id=user_id, expires_at=expires)
        everyone.append(Person(str(user_id), token, str(patient_id), REGION))

    db = Database(settings)
    try:
        async with db.transaction() as session:
            for model in (
                Region,
                Hospital,
                Campus,
                Department,
                VisitType,
                BookingRule,
                Practitioner,
                PractitionerFiling,
                Schedule,
                Slot,
                SlotPool,
                User,
                Patient,
                PatientLink,
                AccessToken,
            ):
                chunk = rows.by_model.get(model, [])
                for i in range(0, len(chunk), 5000):
                    await session.execute(insert(model), chunk[i : i + 5000])
    finally:
        await db.dispose()

    def places_of(items: list[dict[str, Any]]) -> list[Place]:
        return [Place(str(p["slot_id"]), str(p["pool_id"]), p["capacity"]) for p in items]

    return Fixture(
        hospital_id=str(hospital_id),
        department_id=str(department_id),
        service_date=service_date,
        release=places_of(release),
        raw=[
            {**p, "hospital_id": hospital_id, "department_id": department_id, "service_date": service_date} for p in raw
        ],
        warmup=places_of(warmup),
        people=everyone[:people],
        warmup_people=everyone[people:],
    )


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
