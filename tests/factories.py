"""Test data built through the public API, as a hospital or a patient would build it."""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx

from carebridge.core import clock
from carebridge.database.engine import add_row
from carebridge.events.models import OutboxEvent

_counter = itertools.count(1)
PASSWORD = "Passw0rd-test"


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}x{uuid.uuid4().hex[:6]}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json() if response.content else {}


def login(client: httpx.Client, username: str, password: str = PASSWORD) -> str:
    return ok(client.post("/api/v1/auth/login", json={"username": username, "password": password}))["access_token"]


def id_check_char(first17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


_id_seq = itertools.count(random.randint(0, 10_000))


def make_id_number(birth: date | None = None, sex: str = "female", region: str = "110105") -> str:
    """A valid, run-unique resident ID number (distinct birth dates and sequence numbers)."""
    n = next(_id_seq)
    birth = birth or date(1950, 1, 1) + timedelta(days=n % 20_000)
    seq = (n // 20_000 % 50) * 2 + (1 if sex == "male" else 0) + (n * 7 % 10) * 100
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + id_check_char(first17)


def make_phone() -> str:
    return f"139{random.randint(0, 99_999_999):08d}"


def ensure_region(client: httpx.Client, admin: str, code: str = "110105", name: str = "朝阳区") -> None:
    if code != "110000":
        ensure_region(client, admin, "110000", "北京市")
    r = client.post(
        "/api/v1/regions",
        headers=auth(admin),
        json={"code": code, "name": name, "parent_code": None if code == "110000" else "110000"},
    )
    assert r.status_code in (201, 409), r.text


@dataclass
class HospitalWorld:
    hospital_id: str
    department_id: str
    practitioner_id: str
    admin_token: str
    admin_username: str
    extra_practitioners: list[str] = field(default_factory=list)


def make_hospital(client: httpx.Client, admin: str, *, practitioners: int = 1, region: str = "110105") -> HospitalWorld:
    ensure_region(client, admin, region)
    h = ok(
        client.post(
            "/api/v1/hospitals",
            headers=auth(admin),
            json={
                "region_code": region,
                "name": f"北京市{unique('第')}人民医院",
                "level": "tertiary",
                "licence_number": unique("PDY"),
                "licence_expires_on": str(date.today() + timedelta(days=700)),
                "is_internet_hospital": True,
            },
        ),
        201,
    )
    d = ok(
        client.post(
            f"/api/v1/hospitals/{h['id']}/departments",
            headers=auth(admin),
            json={"name": "心血管内科", "standard_code": "03.04"},
        ),
        201,
    )
    admin_username = unique("hadmin")
    ok(
        client.post(
            "/api/v1/users",
            headers=auth(admin),
            json={
                "username": admin_username,
                "password": PASSWORD,
                "display_name": "院管理员",
                "role": "hospital_admin",
                "hospital_id": h["id"],
            },
        ),
        201,
    )
    hadmin = login(client, admin_username)
    ids = []
    for _ in range(practitioners):
        p = ok(
            client.post(
                "/api/v1/practitioners",
                headers=auth(hadmin),
                json={
                    "name": "王医生",
                    "title": "chief_physician",
                    "specialty": "高血压",
                    "licence_number": unique("11").ljust(15, "0")[:32],
                    "practice_started_on": "2010-01-01",
                    "filing": {
                        "hospital_id": h["id"],
                        "department_id": d["id"],
                        "kind": "main",
                        "valid_from": "2020-01-01",
                    },
                },
            ),
            201,
        )
        ids.append(p["id"])
    return HospitalWorld(h["id"], d["id"], ids[0], hadmin, admin_username, ids[1:])


def local_today() -> date:
    """Today in the test hospitals' zone (Asia/Shanghai), by the platform clock."""
    from carebridge.core import clock

    return clock.local_today("Asia/Shanghai")


def make_patient(
    client: httpx.Client, *, name: str = "张小明", birth: date | None = None, sex: str = "female"
) -> tuple[str, str, str]:
    """A patient account with its real-name profile: (token, patient_id, id_number)."""
    username = unique("pat")
    ok(
        client.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD, "display_name": name}),
        201,
    )
    token = login(client, username)
    id_number = make_id_number(birth, sex)
    p = ok(
        client.post(
            "/api/v1/patients", headers=auth(token), json={"name": name, "id_number": id_number, "phone": make_phone()}
        ),
        201,
    )
    return token, p["id"], id_number


def make_visit_type(client: httpx.Client, world: HospitalWorld, fee_fen: int = 1500) -> str:
    r = client.get(f"/api/v1/hospitals/{world.hospital_id}/visit-types")
    existing = [v for v in r.json() if v["code"] == "ordinary"]
    if existing:
        return existing[0]["id"]
    return ok(
        client.post(
            f"/api/v1/hospitals/{world.hospital_id}/visit-types",
            headers=auth(world.admin_token),
            json={"code": "ordinary", "name": "普通门诊", "fee_fen": fee_fen},
        ),
        201,
    )["id"]


def make_schedule(
    client: httpx.Client,
    world: HospitalWorld,
    *,
    days_ahead: int = 1,
    session: str = "morning",
    start: str = "08:00",
    end: str = "10:00",
    slot_minutes: int = 30,
    pools: dict[str, int] | None = None,
    practitioner_id: str | None = None,
) -> dict:
    day = local_today() + timedelta(days=days_ahead)
    return ok(
        client.post(
            f"/api/v1/hospitals/{world.hospital_id}/schedules",
            headers=auth(world.admin_token),
            json={
                "department_id": world.department_id,
                "practitioner_id": practitioner_id or world.practitioner_id,
                "visit_type_id": make_visit_type(client, world),
                "service_date": str(day),
                "session": session,
                "start_time": start,
                "end_time": end,
                "slot_minutes": slot_minutes,
                "pools": pools or {"platform": 3, "onsite": 2},
            },
        ),
        201,
    )


def book(
    client: httpx.Client, token: str, patient_id: str, slot_id: str, key: str | None = None, channel: str = "platform"
) -> httpx.Response:
    headers = auth(token) | ({"Idempotency-Key": key} if key else {})
    return client.post(
        "/api/v1/appointments", headers=headers, json={"patient_id": patient_id, "slot_id": slot_id, "channel": channel}
    )


def make_doctor(client: httpx.Client, world: HospitalWorld, practitioner_id: str | None = None) -> str:
    """A doctor account for a practitioner filed at the world's hospital; returns its username."""
    username = unique("doc")
    body = {
        "username": username,
        "password": PASSWORD,
        "display_name": "王医生",
        "role": "doctor",
        "hospital_id": world.hospital_id,
        "practitioner_id": practitioner_id or world.practitioner_id,
    }
    ok(client.post("/api/v1/users", headers=auth(world.admin_token), json=body), 201)
    return username


@dataclass
class ConsultationWorld:
    world: HospitalWorld
    patient_token: str
    patient_id: str
    doctor_token: str
    consultation_id: str


def make_consultation(
    client: httpx.Client,
    admin: str,
    *,
    kind: str = "text",
    start: bool = True,
    practitioners: int = 1,
    world: HospitalWorld | None = None,
    patient: tuple[str, str] | None = None,
) -> ConsultationWorld:
    """A patient (a new one, or ``patient``: token and patient id) with an offline diagnosis, a doctor, and a
    consultation between them (accepted and started), at a new hospital or at ``world``'s."""
    world = world or make_hospital(client, admin, practitioners=practitioners)
    token, patient_id = patient or make_patient(client)[:2]
    diagnosis = ok(
        client.post(
            f"/api/v1/patients/{patient_id}/offline-diagnoses",
            headers=auth(token),
            json={
                "hospital_name": "北京协和医院",
                "diagnosed_on": "2026-10-01",
                "icd10_code": "I10",
                "diagnosis": "高血压",
            },
        ),
        201,
    )
    c = ok(
        client.post(
            "/api/v1/consultations",
            headers=auth(token),
            json={
                "patient_id": patient_id,
                "hospital_id": world.hospital_id,
                "practitioner_id": world.practitioner_id,
                "kind": kind,
                "offline_diagnosis_id": diagnosis["id"],
                "complaint": "血压控制不佳，想调整用药",
            },
        ),
        201,
    )
    doctor = login(client, make_doctor(client, world))
    if start:
        ok(client.post(f"/api/v1/consultations/{c['id']}/accept", headers=auth(doctor)))
        ok(client.post(f"/api/v1/consultations/{c['id']}/start", headers=auth(doctor)))
    return ConsultationWorld(world, token, patient_id, doctor, c["id"])


def make_staff_account(client: httpx.Client, world: HospitalWorld, role: str = "pharmacist") -> str:
    """A pharmacist (or hospital_admin) account at the world's hospital; returns its username."""
    username = unique(role[:5])
    body = {
        "username": username,
        "password": PASSWORD,
        "display_name": "李药师",
        "role": role,
        "hospital_id": world.hospital_id,
    }
    ok(client.post("/api/v1/users", headers=auth(world.admin_token), json=body), 201)
    return username


def make_staff(client: httpx.Client, world: HospitalWorld, role: str = "pharmacist") -> str:
    """As ``make_staff_account``, logged in: returns the token."""
    return login(client, make_staff_account(client, world, role))


def stored_uuid(server, value: str) -> str:  # type: ignore[no-untyped-def]
    """How a UUID is stored, for raw SQL in tests: hex without dashes on SQLite, native on PostgreSQL."""
    return value.replace("-", "") if server.settings.is_sqlite else value


def demo_formulary_csv() -> str:
    from importlib import resources

    return resources.files("carebridge.demo").joinpath("formulary.csv").read_text("utf-8")


def load_formulary(client: httpx.Client, world: HospitalWorld) -> dict[str, dict]:
    """The demo formulary imported at the world's hospital: {substance: drug}."""
    ok(
        client.post(
            f"/api/v1/hospitals/{world.hospital_id}/formulary/import",
            headers={**auth(world.admin_token), "Content-Type": "text/csv"},
            content=demo_formulary_csv().encode(),
        )
    )
    page = ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/formulary?limit=200", headers=auth(world.admin_token)))
    return {d["substance"]: d for d in page["items"]}


def add_test_event(session: Any, subject_id: str, data: dict[str, Any], type: str = "test.happened") -> None:
    """An outbox event row of no domain (``add_row``: a plain row inside ``rows_together``), for tests of the
    outbox's machinery."""
    add_row(
        session,
        OutboxEvent,
        type=type,
        catalog_version="1",
        occurred_at=clock.now(),
        subject_type="test",
        subject_id=subject_id,
        data=data,
    )
