"""Visit day and beyond: check-in and the live queue, stopping a session, no-shows and credit, waitlist,
pools and templates, the invariant check."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import datetime, timedelta

import httpx

from carebridge.core import clock
from tests.factories import (
    auth,
    book,
    local_today,
    login,
    make_doctor,
    make_hospital,
    make_patient,
    make_schedule,
    ok,
)


def eventually(fn, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """Events reach consumers through the outbox relay: poll until ``fn`` returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def slots_of(client: httpx.Client, schedule: dict) -> list[dict]:
    return ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"]


def shift_to(moment: datetime) -> None:
    clock.shift(moment - clock.now())


def doctor_token(client: httpx.Client, world, practitioner_id: str) -> str:  # type: ignore[no-untyped-def]
    return login(client, make_doctor(client, world, practitioner_id))


def test_check_in_queue_and_call_next_live(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 3})
    first_slot = slots_of(client, schedule)[0]
    people = [make_patient(client) for _ in range(3)]
    appts = [ok(book(client, t, p, first_slot["id"]), 201) for t, p, _ in people]
    # Too early: check-in happens on the day.
    r = client.post(f"/api/v1/appointments/{appts[0]['id']}/check-in", headers=auth(people[0][0]))
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_visit_day"
    shift_to(datetime.fromisoformat(first_slot["starts_at"]) - timedelta(minutes=30))
    numbers = [
        ok(client.post(f"/api/v1/appointments/{a['id']}/check-in", headers=auth(t)))["queue_number"]
        for a, (t, _, _) in zip(appts, people, strict=True)
    ]
    assert numbers == [1, 2, 3]
    last_token, last_appt = people[2][0], appts[2]
    pos = eventually(
        lambda: (
            (p := ok(client.get(f"/api/v1/appointments/{last_appt['id']}/queue", headers=auth(last_token))))["number"]
            and p
        )
    )
    assert pos["ahead"] == 2 and pos["state"] == "waiting" and pos["estimated_wait_minutes"] > 0

    doctor = doctor_token(client, world, world.practitioner_id)
    board = eventually(
        lambda: len(q := ok(client.get(f"/api/v1/schedules/{schedule['id']}/queue", headers=auth(doctor)))) == 3 and q
    )
    assert [e["number"] for e in board] == [1, 2, 3] and all("*" in e["patient_name"] for e in board)
    # Another hospital's doctor may not call this queue.
    other = make_hospital(client, admin_token)
    stranger = doctor_token(client, other, other.practitioner_id)
    assert client.post(f"/api/v1/schedules/{schedule['id']}/queue/call-next", headers=auth(stranger)).status_code == 403

    seen: list[dict] = []

    async def stream() -> None:
        import json

        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as ac:
            async with ac.stream(
                "GET", f"/api/v1/appointments/{last_appt['id']}/queue/stream", headers=auth(last_token)
            ) as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                async for line in resp.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
                        if seen[-1]["ahead"] == 0 and seen[-1]["now_serving"] == 2:
                            return

    async def drive() -> None:
        task = asyncio.create_task(stream())
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as ac:
            for expected in (1, 2):
                r = await ac.post(f"/api/v1/schedules/{schedule['id']}/queue/call-next", headers=auth(doctor))
                assert r.status_code == 200 and r.json()["queue_number"] == expected
        await asyncio.wait_for(task, 20)

    asyncio.run(drive())
    assert seen[0]["ahead"] == 2 and seen[-1]["ahead"] == 0  # pushed live, not polled by the client
    first = ok(client.get(f"/api/v1/appointments/{appts[0]['id']}", headers=auth(people[0][0])))
    assert first["status"] == "completed"


def test_stopping_a_session_cancels_and_notifies(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world)
    token, patient_id, _ = make_patient(client)
    appt = ok(book(client, token, patient_id, slots_of(client, schedule)[0]["id"]), 201)
    assert ok(
        client.post(
            f"/api/v1/schedules/{schedule['id']}/stop", headers=auth(world.admin_token), json={"reason": "医生外出会诊"}
        )
    ) == {"cancelled_appointments": 1}
    assert ok(client.get(f"/api/v1/appointments/{appt['id']}", headers=auth(token)))["status"] == "cancelled"
    notes = eventually(lambda: ok(client.get("/api/v1/notifications", headers=auth(token))))
    assert notes[0]["kind"] == "appointment_cancelled" and notes[0]["data"]["appointment_id"] == appt["id"]
    r = book(client, token, patient_id, slots_of(client, schedule)[1]["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] in ("schedule_stopped", "slot_full")
    assert subprocess_check(server) == 0


def subprocess_check(server) -> int:  # type: ignore[no-untyped-def]
    env = {"CAREBRIDGE_DATABASE_URL": server.settings.database_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "carebridge.cli", "check", "invariants"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    ).returncode


def test_no_shows_block_booking_until_lifted(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token, practitioners=3)
    ok(
        client.put(
            f"/api/v1/hospitals/{world.hospital_id}/no-show-policy",
            headers=auth(world.admin_token),
            json={"threshold": 2, "window_days": 90, "block_days": 30},
        )
    )
    token, patient_id, _ = make_patient(client)
    whitelisted, white_id, _ = make_patient(client)
    ok(
        client.post(
            f"/api/v1/hospitals/{world.hospital_id}/no-show-exemptions",
            headers=auth(world.admin_token),
            json={"patient_id": white_id, "reason": "行动不便的长期患者"},
        ),
        201,
    )
    doctors = [world.practitioner_id, *world.extra_practitioners]
    missed = []
    for doctor in doctors[:2]:
        schedule = make_schedule(client, world, practitioner_id=doctor)
        slot = slots_of(client, schedule)[0]["id"]
        missed.append(ok(book(client, token, patient_id, slot), 201))
        ok(book(client, whitelisted, white_id, slot), 201)
    shift_to(datetime.fromisoformat(missed[0]["starts_at"]) + timedelta(hours=6))
    swept = ok(client.post("/api/v1/ops/sweep", headers=auth(admin_token)))
    assert swept["no_shows"] >= 4  # other tests' sessions may have ended too
    assert ok(client.get(f"/api/v1/appointments/{missed[0]['id']}", headers=auth(token)))["status"] == "no_show"
    later = make_schedule(client, world, practitioner_id=doctors[2], days_ahead=2)
    slot = slots_of(client, later)[0]["id"]
    r = book(client, token, patient_id, slot)
    assert r.status_code == 403 and r.json()["error"]["code"] == "booking_blocked"
    ends_on = r.json()["error"]["details"]["ends_on"]
    assert ends_on == str(local_today() + timedelta(days=30))
    assert book(client, whitelisted, white_id, slot).status_code == 201  # the whitelist is never blocked
    blocks = ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/booking-blocks", headers=auth(world.admin_token)))
    assert [b["patient_id"] for b in blocks] == [patient_id]
    r = client.post(f"/api/v1/booking-blocks/{blocks[0]['id']}/lift", headers=auth(world.admin_token), json={})
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "reason"
    ok(
        client.post(
            f"/api/v1/booking-blocks/{blocks[0]['id']}/lift",
            headers=auth(world.admin_token),
            json={"reason": "患者说明情况，予以恢复"},
        )
    )
    assert book(client, token, patient_id, slot).status_code == 201
    notes = eventually(
        lambda: [
            n for n in ok(client.get("/api/v1/notifications", headers=auth(token))) if n["kind"] == "booking_blocked"
        ]
    )
    assert notes


def test_waitlist_offer_hold_expiry_and_accept(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1}, end="08:30")
    slot = slots_of(client, schedule)[0]["id"]
    holder, holder_patient, _ = make_patient(client)
    first, first_patient, _ = make_patient(client)
    second, second_patient, _ = make_patient(client)
    r = client.post(
        "/api/v1/waitlist", headers=auth(first), json={"patient_id": first_patient, "schedule_id": schedule["id"]}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "places_available"
    appt = ok(book(client, holder, holder_patient, slot), 201)
    w1 = ok(
        client.post(
            "/api/v1/waitlist", headers=auth(first), json={"patient_id": first_patient, "schedule_id": schedule["id"]}
        ),
        201,
    )
    w2 = ok(
        client.post(
            "/api/v1/waitlist", headers=auth(second), json={"patient_id": second_patient, "schedule_id": schedule["id"]}
        ),
        201,
    )
    ok(client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth(holder), json={}))
    # The freed place is held for the first in line, not open to everyone.
    assert slots_of(client, schedule)[0]["free"] == 0
    r = book(client, holder, holder_patient, slot)
    assert r.status_code == 409 and r.json()["error"]["code"] == "slot_full"
    assert ok(client.get("/api/v1/waitlist", headers=auth(first)))[0]["status"] == "offered"
    # The first does not answer; the hold expires and passes to the second.
    clock.shift(timedelta(minutes=server.settings.waitlist_hold_minutes + 1))
    ok(client.post("/api/v1/ops/sweep", headers=auth(admin_token)))
    r = client.post(f"/api/v1/waitlist/{w1['id']}/accept", headers=auth(first))
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_offer"
    accepted = ok(client.post(f"/api/v1/waitlist/{w2['id']}/accept", headers=auth(second)), 201)
    assert accepted["status"] == "booked" and accepted["patient_id"] == second_patient
    assert subprocess_check(server) == 0


def test_move_capacity_and_auto_release(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    other = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1, "onsite": 3, "referral": 1})
    admin = auth(world.admin_token)
    move = {"from_channel": "onsite", "to_channel": "platform", "amount": 2}
    assert (
        client.post(
            f"/api/v1/schedules/{schedule['id']}/pools/move", headers=auth(other.admin_token), json=move
        ).status_code
        == 403
    )
    assert (
        ok(client.post(f"/api/v1/schedules/{schedule['id']}/pools/move", headers=admin, json=move))["slots_changed"]
        == 4
    )
    pools = {p["channel"]: p for p in slots_of(client, schedule)[0]["pools"]}
    assert pools["platform"]["capacity"] == 3
    r = client.post(
        f"/api/v1/schedules/{schedule['id']}/pools/move",
        headers=admin,
        json={"from_channel": "onsite", "to_channel": "platform", "amount": 5},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_capacity"
    r = client.post(
        f"/api/v1/schedules/{schedule['id']}/pools/move",
        headers=admin,
        json={"from_channel": "onsite", "to_channel": "partner:Bad App", "amount": 1},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_channel"
    # Unused referral and onsite places release to the platform 24 hours before the start.
    ok(
        client.put(
            f"/api/v1/hospitals/{world.hospital_id}/booking-rules", headers=admin, json={"auto_release_hours": 24}
        )
    )
    first_start = datetime.fromisoformat(slots_of(client, schedule)[0]["starts_at"])
    shift_to(first_start - timedelta(hours=20))  # all four slots (08:00-10:00) are now within 24 hours
    released = ok(client.post("/api/v1/ops/sweep", headers=auth(admin_token)))["places_released"]
    assert released >= 4 * 2  # 1 onsite + 1 referral per slot
    pools = {
        p["channel"]: p
        for p in ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/schedules/{schedule['id']}", headers=admin))[
            "slots"
        ][0]["pools"]
    }
    assert (
        pools["platform"]["capacity"] == 5 and pools["onsite"]["capacity"] == 0 and pools["referral"]["capacity"] == 0
    )
    assert subprocess_check(server) == 0


def test_templates_generate_weeks_once(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    admin = auth(world.admin_token)
    visit_type = ok(
        client.post(
            f"/api/v1/hospitals/{world.hospital_id}/visit-types",
            headers=admin,
            json={"code": "expert", "name": "专家门诊", "fee_fen": 5000},
        ),
        201,
    )
    for weekday in (0, 3):
        ok(
            client.post(
                f"/api/v1/hospitals/{world.hospital_id}/schedule-templates",
                headers=admin,
                json={
                    "department_id": world.department_id,
                    "practitioner_id": world.practitioner_id,
                    "visit_type_id": visit_type["id"],
                    "weekday": weekday,
                    "session": "morning",
                    "start_time": "08:00",
                    "end_time": "11:30",
                    "slot_minutes": 30,
                    "pools": {"platform": 4, "onsite": 2},
                },
            ),
            201,
        )
    start = local_today() + timedelta(days=1)
    body = {"start": str(start), "days": 14}
    assert (
        ok(client.post(f"/api/v1/hospitals/{world.hospital_id}/schedules/generate", headers=admin, json=body))[
            "created"
        ]
        == 4
    )
    assert (
        ok(client.post(f"/api/v1/hospitals/{world.hospital_id}/schedules/generate", headers=admin, json=body))[
            "created"
        ]
        == 0
    )
    found = ok(
        client.get(
            "/api/v1/schedules",
            params={
                "practitioner_id": world.practitioner_id,
                "date_from": str(start),
                "date_to": str(start + timedelta(days=13)),
            },
        )
    )
    assert len(found) == 4 and all(s["fee_fen"] == 5000 and s["free"] == 7 * 4 for s in found)
    assert {datetime.fromisoformat(s["service_date"]).weekday() for s in found} == {0, 3}
    r = client.post(
        f"/api/v1/hospitals/{world.hospital_id}/schedule-templates",
        headers=admin,
        json={
            "department_id": world.department_id,
            "practitioner_id": world.practitioner_id,
            "visit_type_id": visit_type["id"],
            "weekday": 9,
            "session": "noon",
            "start_time": "25:00",
            "end_time": "11:30",
            "slot_minutes": "30",
            "pools": {},
            "color": "red",
        },
    )
    fields = {e["field"] for e in r.json()["error"]["details"]["errors"]}
    assert r.status_code == 422 and {"weekday", "session", "start_time", "slot_minutes", "color"} <= fields


def test_invariant_check_names_broken_rows(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from carebridge.database.engine import Database

    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 2})
    token, patient_id, _ = make_patient(client)
    appt = ok(book(client, token, patient_id, slots_of(client, schedule)[0]["id"]), 201)

    async def corrupt(delta: int) -> str:
        db = Database(server.settings)
        try:
            async with db.transaction() as session:
                pool_id = (
                    await session.execute(
                        text("SELECT pool_id FROM appointments WHERE id = :id"),
                        {"id": appt["id"] if not db.is_sqlite else appt["id"].replace("-", "")},
                    )
                ).scalar_one()
                await session.execute(
                    text("UPDATE slot_pools SET booked = booked + :d WHERE id = :p"), {"d": delta, "p": pool_id}
                )
                return str(pool_id)
        finally:
            await db.dispose()

    pool_id = asyncio.run(corrupt(1))
    try:
        env = {"CAREBRIDGE_DATABASE_URL": server.settings.database_url, "PATH": "/usr/bin:/bin"}
        result = subprocess.run(
            [sys.executable, "-m", "carebridge.cli", "check", "invariants"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1
        assert "booked=2 but 1 appointments hold a place" in result.stdout
        assert pool_id.replace("-", "") in result.stdout.replace("-", "")
    finally:
        asyncio.run(corrupt(-1))
    assert subprocess_check(server) == 0
