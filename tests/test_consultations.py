"""Online consultations through real HTTP: rules R1, R3, R10, the life of a consultation, scoping, expiry."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import httpx
from sqlalchemy import text

from carebridge.core import clock
from carebridge.database.engine import Database
from tests.factories import (
    auth,
    login,
    make_doctor,
    make_hospital,
    make_id_number,
    make_patient,
    make_schedule,
    ok,
    stored_uuid,
    unique,
)


def _diagnosis(client: httpx.Client, token: str, patient_id: str, code: str = "I10") -> dict:
    return ok(
        client.post(
            f"/api/v1/patients/{patient_id}/offline-diagnoses",
            headers=auth(token),
            json={
                "hospital_name": "北京协和医院",
                "diagnosed_on": "2026-10-01",
                "icd10_code": code,
                "diagnosis": "高血压",
            },
        ),
        201,
    )


def _request(client: httpx.Client, token: str, patient_id: str, world, **extra) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = {
        "patient_id": patient_id,
        "hospital_id": world.hospital_id,
        "practitioner_id": world.practitioner_id,
        "complaint": "血压控制不佳，想调整用药",
        **extra,
    }
    return client.post("/api/v1/consultations", headers=auth(token), json=body)


def _count(server, sql: str, **params: object) -> int:  # type: ignore[no-untyped-def]
    async def run() -> int:
        db = Database(server.settings)
        async with db.read() as session:
            value = await session.scalar(text(sql), params)
        await db.dispose()
        return int(value or 0)

    return asyncio.run(run())


def test_first_visit_is_refused_online(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    token, patient_id, _ = make_patient(client)
    r = _request(client, token, patient_id, world)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "first_visit_not_online"
    assert r.json()["error"]["details"]["rule"] == "R1"
    assert _count(server, "SELECT count(*) FROM consultations WHERE patient_id = :p", p=patient_id) == 0
    bad = client.post(
        f"/api/v1/patients/{patient_id}/offline-diagnoses",
        headers=auth(token),
        json={"hospital_name": "北京协和医院", "diagnosed_on": "2026-10-01", "icd10_code": "XYZ9", "diagnosis": "?"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_icd10_code"


def test_a_whole_consultation(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token, practitioners=2)
    token, patient_id, _ = make_patient(client)
    diagnosis = _diagnosis(client, token, patient_id, code="E119")
    assert diagnosis["icd10_code"] == "E11.9" and "diabetes" in diagnosis["icd10_title"]
    c = ok(_request(client, token, patient_id, world, offline_diagnosis_id=diagnosis["id"], allergies="青霉素"), 201)
    assert c["status"] == "requested" and c["allergies"] == "青霉素" and c["follows_up"]["id"] == diagnosis["id"]
    again = _request(client, token, patient_id, world, offline_diagnosis_id=diagnosis["id"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "consultation_open"

    doctor = login(client, make_doctor(client, world))
    other_doctor = login(client, make_doctor(client, world, world.extra_practitioners[0]))
    inbox = ok(client.get("/api/v1/consultations", headers=auth(doctor), params={"status": "requested"}))
    mine = next(i for i in inbox if i["id"] == c["id"])
    assert mine["patient"]["masked"] and mine["patient"]["name"] != "张小明"
    assert all(i["id"] != c["id"] for i in ok(client.get("/api/v1/consultations", headers=auth(other_doctor))))
    assert client.post(f"/api/v1/consultations/{c['id']}/accept", headers=auth(other_doctor)).status_code == 404
    assert client.post(f"/api/v1/consultations/{c['id']}/accept", headers=auth(token)).status_code == 403
    assert client.post(f"/api/v1/consultations/{c['id']}/start", headers=auth(doctor)).status_code == 409

    assert ok(client.post(f"/api/v1/consultations/{c['id']}/accept", headers=auth(doctor)))["status"] == "accepted"
    second = client.post(f"/api/v1/consultations/{c['id']}/accept", headers=auth(doctor))
    assert second.status_code == 409 and second.json()["error"]["code"] == "bad_consultation_state"
    assert ok(client.post(f"/api/v1/consultations/{c['id']}/start", headers=auth(doctor)))["status"] == "in_progress"
    detail = ok(client.get(f"/api/v1/consultations/{c['id']}", headers=auth(doctor)))
    assert detail["complaint"].startswith("血压")
    closed = ok(
        client.post(f"/api/v1/consultations/{c['id']}/close", headers=auth(doctor), json={"reason": "已调整用药"})
    )
    assert closed["status"] == "closed" and closed["ended_by"] == "doctor"
    cancel = client.post(f"/api/v1/consultations/{c['id']}/cancel", headers=auth(token), json={"reason": "x"})
    assert cancel.status_code == 409

    types = _count(
        server,
        "SELECT count(DISTINCT type) FROM outbox WHERE subject_id = :s AND type LIKE 'consultation.%'",
        s=c["id"],
    )
    assert types == 4  # requested, accepted, started, closed
    # the form is sealed at rest and its reads are audited
    assert _count(server, "SELECT count(*) FROM consultations WHERE complaint LIKE '%血压%'") == 0
    assert _count(server, "SELECT count(*) FROM audit_records WHERE action = 'consultation.form.read'") >= 2


def test_doctor_needs_three_years_of_practice(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    junior = ok(
        client.post(
            "/api/v1/practitioners",
            headers=auth(world.admin_token),
            json={
                "name": "赵医生",
                "title": "resident_physician",
                "specialty": "高血压",
                "licence_number": unique("11").ljust(15, "0")[:32],
                "practice_started_on": str(date.today() - timedelta(days=400)),
                "filing": {
                    "hospital_id": world.hospital_id,
                    "department_id": world.department_id,
                    "kind": "main",
                    "valid_from": "2020-01-01",
                },
            },
        ),
        201,
    )
    token, patient_id, _ = make_patient(client)
    d = _diagnosis(client, token, patient_id)
    r = _request(client, token, patient_id, world, practitioner_id=junior["id"], offline_diagnosis_id=d["id"])
    assert r.status_code == 409 and r.json()["error"]["details"]["rule"] == "R3"


def test_child_under_six_needs_a_guardian(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    parent_token, _, _ = make_patient(client, name="李妈妈")
    child = ok(
        client.post(
            "/api/v1/patients",
            headers=auth(parent_token),
            json={
                "name": "李小宝",
                "id_number": make_id_number(date.today() - timedelta(days=3 * 365)),
                "relation": "child",
            },
        ),
        201,
    )
    d = _diagnosis(client, parent_token, child["id"], code="J45")
    r = _request(client, parent_token, child["id"], world, offline_diagnosis_id=d["id"])
    assert r.status_code == 422 and r.json()["error"]["details"]["rule"] == "R10"
    ok(_request(client, parent_token, child["id"], world, offline_diagnosis_id=d["id"], guardian_name="李妈妈"), 201)


def test_unanswered_request_lapses(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    token, patient_id, _ = make_patient(client)
    d = _diagnosis(client, token, patient_id)
    c = ok(_request(client, token, patient_id, world, offline_diagnosis_id=d["id"]), 201)
    doctor = login(client, make_doctor(client, world))
    clock.shift(timedelta(minutes=31))
    r = client.post(f"/api/v1/consultations/{c['id']}/accept", headers=auth(doctor))
    assert r.status_code == 409 and r.json()["error"]["code"] == "consultation_expired"
    assert ok(client.post("/api/v1/ops/sweep", headers=auth(admin_token)))["consultations_expired"] >= 1
    assert ok(client.get(f"/api/v1/consultations/{c['id']}", headers=auth(token)))["status"] == "expired"


def test_bad_input(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    token, patient_id, _ = make_patient(client)
    for body in (
        {"patient_id": patient_id, "hospital_id": world.hospital_id, "practitioner_id": world.practitioner_id},
        {
            "patient_id": "nope",
            "hospital_id": world.hospital_id,
            "practitioner_id": world.practitioner_id,
            "complaint": "头痛头痛",
        },
        {
            "patient_id": patient_id,
            "hospital_id": world.hospital_id,
            "practitioner_id": world.practitioner_id,
            "complaint": 12,
        },
        {
            "patient_id": patient_id,
            "hospital_id": world.hospital_id,
            "practitioner_id": world.practitioner_id,
            "complaint": "头痛头痛",
            "x": 1,
        },
        {
            "patient_id": patient_id,
            "hospital_id": world.hospital_id,
            "practitioner_id": world.practitioner_id,
            "complaint": "头痛头痛",
            "kind": "fax",
        },
    ):
        r = client.post("/api/v1/consultations", headers=auth(token), json=body)
        assert r.status_code == 422, body
    assert client.get("/api/v1/consultations/not-a-uuid", headers=auth(token)).status_code == 422
    assert client.post(f"/api/v1/consultations/{world.hospital_id}/accept", headers=auth(token)).status_code in (
        403,
        404,
    )


def test_booked_into_an_online_clinic_session(client: httpx.Client, admin_token: str, server) -> None:  # type: ignore[no-untyped-def]
    """A schedule with an ``online`` pool is an online clinic session: requesting a consultation with one of
    its slots books the place through the booking engine and starts the consultation accepted."""
    world = make_hospital(client, admin_token, practitioners=2)
    schedule = make_schedule(client, world, pools={"online": 1, "platform": 1})
    slot = schedule["slots"][0]["id"] if "slots" in schedule else None
    if slot is None:
        slot = ok(client.get(f"/api/v1/schedules/{schedule['id']}?channel=online"))["slots"][0]["id"]
    online = ok(client.get(f"/api/v1/schedules/{schedule['id']}?channel=online"))
    assert online["slots"][0]["pools"][0]["channel"] == "online"
    token, patient_id, _ = make_patient(client)
    dx = _diagnosis(client, token, patient_id)
    # the online pool is not bookable as an ordinary appointment
    r = client.post(
        "/api/v1/appointments",
        headers=auth(token),
        json={"patient_id": patient_id, "slot_id": slot, "channel": "online"},
    )
    assert r.status_code in (403, 422), r.text
    # another doctor's slot is refused, and nothing is booked
    r = _request(
        client,
        token,
        patient_id,
        world,
        offline_diagnosis_id=dx["id"],
        slot_id=slot,
        practitioner_id=world.extra_practitioners[0],
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "slot_not_this_practitioner"
    c = ok(_request(client, token, patient_id, world, offline_diagnosis_id=dx["id"], slot_id=slot), 201)
    assert c["status"] == "accepted" and c["appointment_id"]
    # the single online place is gone: a second patient gets slot_full, and no consultation is left behind
    token2, patient2, _ = make_patient(client)
    dx2 = _diagnosis(client, token2, patient2)
    r = _request(client, token2, patient2, world, offline_diagnosis_id=dx2["id"], slot_id=slot)
    assert r.status_code == 409 and r.json()["error"]["code"] == "slot_full"
    assert (
        _count(server, "SELECT count(*) FROM consultations WHERE patient_id = :p", p=stored_uuid(server, patient2)) == 0
    )
    # the doctor starts and closes it: the appointment is completed
    doctor = login(client, make_doctor(client, world))
    ok(client.post(f"/api/v1/consultations/{c['id']}/start", headers=auth(doctor)))
    ok(client.post(f"/api/v1/consultations/{c['id']}/close", headers=auth(doctor), json={"reason": "done"}))
    appt = ok(client.get(f"/api/v1/appointments/{c['appointment_id']}", headers=auth(token)))
    assert appt["status"] == "completed"


def test_a_booked_online_visit_the_doctor_never_starts_lapses_without_a_no_show(
    client: httpx.Client, admin_token: str
) -> None:
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"online": 1})
    slot = ok(client.get(f"/api/v1/schedules/{schedule['id']}?channel=online"))["slots"][0]
    token, patient_id, _ = make_patient(client)
    dx = _diagnosis(client, token, patient_id)
    c = ok(_request(client, token, patient_id, world, offline_diagnosis_id=dx["id"], slot_id=slot["id"]), 201)
    clock.shift(timedelta(days=2))  # the session is over; the doctor never started the consultation
    ok(client.post("/api/v1/ops/sweep", headers=auth(admin_token)))
    assert ok(client.get(f"/api/v1/consultations/{c['id']}", headers=auth(token)))["status"] == "expired"
    appt = ok(client.get(f"/api/v1/appointments/{c['appointment_id']}", headers=auth(token)))
    assert appt["status"] == "cancelled"  # released by the system: not the patient's no-show
