"""The booking engine through real HTTP: oversell, idempotency, rules, limits, deadlines, reschedule."""

from __future__ import annotations

import asyncio
import gc
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from carebridge.auth.service import principals_for_digests, token_digest
from carebridge.core import clock, idempotency
from carebridge.core.errors import Conflict
from carebridge.database.engine import Database
from carebridge.scheduling.desk import Desk, Request, _Going
from carebridge.scheduling.invariants import run_invariant_check
from carebridge.scheduling.schemas import BookIn
from tests.factories import auth, book, make_hospital, make_id_number, make_patient, make_schedule, ok


def _invariants_hold(server) -> None:  # type: ignore[no-untyped-def]
    assert asyncio.run(run_invariant_check(server.settings)) == []


def _audited_requests(server, patient_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The request ids of the audited reads of a patient's personal data made by booking answers."""

    async def run() -> list[str]:
        db = Database(server.settings)
        async with db.read() as session:
            rows = await session.scalars(
                text(
                    "SELECT request_id FROM audit_records WHERE action = 'patient.personal_data.read' "
                    "AND subject_id = :p AND CAST(detail AS TEXT) LIKE '%booking%'"
                ),
                {"p": patient_id},
            )
            found = [str(r) for r in rows]
        await db.dispose()
        return found

    return asyncio.run(run())


def _count(server, sql: str, **params: Any) -> int:  # type: ignore[no-untyped-def]
    async def run() -> int:
        db = Database(server.settings)
        async with db.read() as session:
            found = int((await session.execute(text(sql), params)).scalar_one())
        await db.dispose()
        return found

    return asyncio.run(run())


def test_200_concurrent_bookings_for_5_places(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 5}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    patients = [make_patient(client) for _ in range(40)]

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=120) as ac:
            requests = []
            for i in range(200):
                token, patient_id, _ = patients[i % len(patients)]
                requests.append(
                    ac.post(
                        "/api/v1/appointments",
                        headers=auth(token) | {"Idempotency-Key": str(uuid.uuid4())},
                        json={"patient_id": patient_id, "slot_id": slot_id},
                    )
                )
            return await asyncio.gather(*requests)

    responses = asyncio.run(fire())
    statuses = [r.status_code for r in responses]
    codes = [r.json()["error"]["code"] for r in responses if r.status_code != 201]
    assert statuses.count(201) == 5, statuses
    # The 40 patients retry: a patient who already holds a place gets already_booked, the rest slot_full.
    assert all(c in ("slot_full", "already_booked") for c in codes), set(codes)
    assert codes.count("slot_full") + codes.count("already_booked") == 195
    detail = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))
    assert detail["slots"][0]["pools"][0]["booked"] == 5 and detail["slots"][0]["free"] == 0
    _invariants_hold(server)


def test_200_concurrent_distinct_patients_give_5_and_195_slot_full(
    server,
    client: httpx.Client,  # type: ignore[no-untyped-def]
    admin_token: str,
) -> None:
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 5}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    token, _, _ = make_patient(client)
    # One family account managing 200 people would exceed the account limit, so use 200 accounts.
    people = [make_patient(client) for _ in range(200)]

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=120) as ac:
            return await asyncio.gather(
                *[
                    ac.post(
                        "/api/v1/appointments",
                        headers=auth(t) | {"Idempotency-Key": str(uuid.uuid4())},
                        json={"patient_id": pid, "slot_id": slot_id},
                    )
                    for t, pid, _ in people
                ]
            )

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses].count(201) == 5
    assert [r.json()["error"]["code"] for r in responses if r.status_code != 201] == ["slot_full"] * 195
    _invariants_hold(server)


def test_same_idempotency_key_twice_gives_one_booking(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world)
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    token, patient_id, _ = make_patient(client)
    first = book(client, token, patient_id, slot_id, key="retry-me")
    second = book(client, token, patient_id, slot_id, key="retry-me")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]

    slot2 = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][1]["id"]
    t2, p2, _ = make_patient(client)

    async def concurrent() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as ac:
            return await asyncio.gather(
                *[
                    ac.post(
                        "/api/v1/appointments",
                        headers=auth(t2) | {"Idempotency-Key": "k2"},
                        json={"patient_id": p2, "slot_id": slot2},
                    )
                    for _ in range(10)
                ]
            )

    answers = asyncio.run(concurrent())
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    mine = ok(client.get("/api/v1/appointments", headers=auth(token)))
    assert len(mine) == 1
    reused = book(
        client,
        token,
        patient_id,
        ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][2]["id"],
        key="retry-me",
    )
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
    _invariants_hold(server)


def test_booking_window_and_same_day_cutoff(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    ok(
        client.put(
            f"/api/v1/hospitals/{world.hospital_id}/booking-rules",
            headers=auth(world.admin_token),
            json={"window_days": 2, "opens_at": "07:00"},
        )
    )
    far = make_schedule(client, world, days_ahead=5)
    token, patient_id, _ = make_patient(client)
    r = book(client, token, patient_id, ok(client.get(f"/api/v1/schedules/{far['id']}"))["slots"][0]["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "booking_window_closed"
    assert r.json()["error"]["details"]["reason"] == "not_open"
    # Rules are data: widen the window and the same request succeeds at once.
    ok(
        client.put(
            f"/api/v1/hospitals/{world.hospital_id}/booking-rules",
            headers=auth(world.admin_token),
            json={"window_days": 7},
        )
    )
    assert (
        book(client, token, patient_id, ok(client.get(f"/api/v1/schedules/{far['id']}"))["slots"][0]["id"]).status_code
        == 201
    )
    # A department override wins over the hospital.
    ok(
        client.put(
            f"/api/v1/departments/{world.department_id}/booking-rules",
            headers=auth(world.admin_token),
            json={"window_days": 1},
        )
    )
    eff = ok(client.get(f"/api/v1/departments/{world.department_id}/booking-rules/effective"))
    assert eff["window_days"] == 1 and eff["cancel_deadline_minutes"] == 120


def test_per_patient_limits(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token, practitioners=2)
    morning = make_schedule(client, world, session="morning")
    afternoon = make_schedule(client, world, session="afternoon", start="14:00", end="16:00")
    other_doctor = make_schedule(client, world, practitioner_id=world.extra_practitioners[0])
    token, patient_id, _ = make_patient(client)
    slot = lambda s, i=0: ok(client.get(f"/api/v1/schedules/{s['id']}"))["slots"][i]["id"]  # noqa: E731
    assert book(client, token, patient_id, slot(morning)).status_code == 201
    r = book(client, token, patient_id, slot(morning, 1))
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_booked"
    r = book(client, token, patient_id, slot(afternoon))
    assert r.status_code == 409 and r.json()["error"]["code"] == "limit_exceeded"
    assert r.json()["error"]["details"]["limit"] == "max_per_practitioner_per_day"
    assert book(client, token, patient_id, slot(other_doctor)).status_code == 201
    third = make_schedule(client, world, days_ahead=2, practitioner_id=world.extra_practitioners[0])
    r = book(client, token, patient_id, slot(third))
    assert r.status_code == 409 and r.json()["error"]["details"]["limit"] == "max_per_department"


def test_cancel_deadline_and_release(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1})
    slots = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"]
    token, patient_id, _ = make_patient(client)
    appt = ok(book(client, token, patient_id, slots[0]["id"]), 201)
    assert ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["free"] == 0
    cancelled = ok(client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth(token), json={}))
    assert cancelled["status"] == "cancelled"
    assert ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["free"] == 1
    again = ok(book(client, token, patient_id, slots[0]["id"]), 201)
    # Within 2 hours of the start, the patient can no longer cancel.
    starts = datetime.fromisoformat(again["starts_at"])
    clock.shift(starts - timedelta(minutes=90) - clock.now())
    r = client.post(f"/api/v1/appointments/{again['id']}/cancel", headers=auth(token), json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "cancellation_deadline_passed"
    _invariants_hold(server)


def test_reschedule_is_atomic_under_contention(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1}, end="09:00")
    first, second = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][:2]
    holders = [make_patient(client) for _ in range(6)]
    t0, p0, _ = holders[0]
    appt = ok(book(client, t0, p0, first["id"]), 201)
    # Six patients race for the one place in the second slot: the holder of the first by rescheduling.
    others = holders[1:]

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as ac:
            calls = [
                ac.post(
                    f"/api/v1/appointments/{appt['id']}/reschedule", headers=auth(t0), json={"slot_id": second["id"]}
                )
            ]
            calls += [
                ac.post("/api/v1/appointments", headers=auth(t), json={"patient_id": p, "slot_id": second["id"]})
                for t, p, _ in others
            ]
            return await asyncio.gather(*calls)

    results = asyncio.run(race())
    assert [r.status_code for r in results].count(201) + [r.status_code for r in results].count(200) == 1
    detail = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"]
    if results[0].status_code == 200:  # the reschedule won: the first slot is free again
        assert detail[0]["free"] == 1 and detail[1]["free"] == 0
    else:  # it lost: nothing changed for the holder
        assert results[0].json()["error"]["code"] == "slot_full"
        assert ok(client.get(f"/api/v1/appointments/{appt['id']}", headers=auth(t0)))["status"] == "booked"
        assert detail[0]["free"] == 0 and detail[1]["free"] == 0
    _invariants_hold(server)


def test_isolation_between_patients_and_hospitals(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    other = make_hospital(client, admin_token)
    schedule = make_schedule(client, world)
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    token, patient_id, _ = make_patient(client)
    stranger, stranger_patient, _ = make_patient(client)
    appt = ok(book(client, token, patient_id, slot_id), 201)
    assert client.get(f"/api/v1/appointments/{appt['id']}", headers=auth(stranger)).status_code == 404
    r = client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers=auth(stranger), json={})
    assert r.status_code == 404
    r = book(client, stranger, patient_id, slot_id)  # booking for someone not on your account
    assert r.status_code == 404
    assert client.get(f"/api/v1/appointments/{appt['id']}", headers=auth(other.admin_token)).status_code == 404
    r = client.post(f"/api/v1/schedules/{schedule['id']}/stop", headers=auth(other.admin_token), json={"reason": "x"})
    assert r.status_code == 403
    seen = ok(client.get(f"/api/v1/appointments/{appt['id']}", headers=auth(world.admin_token)))
    assert seen["patient_name"] != "张小明" and "*" in seen["patient_name"]
    r = book(client, token, patient_id, slot_id, channel="onsite")
    assert r.status_code == 403 and r.json()["error"]["code"] == "channel_not_allowed"


def test_bookings_arriving_together_get_their_own_answers(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    """A worker decides the bookings waiting together in one transaction (scheduling.desk): each still gets its
    own answer with the single booking's codes, places go in arrival order, and one account's two patients
    (a family) are both booked."""
    world = make_hospital(client, admin_token, practitioners=2)
    scarce = make_schedule(client, world, pools={"platform": 3}, end="08:30")
    roomy = make_schedule(client, world, pools={"platform": 10}, practitioner_id=world.extra_practitioners[0])
    scarce_slot = ok(client.get(f"/api/v1/schedules/{scarce['id']}"))["slots"][0]["id"]
    roomy_slots = [s["id"] for s in ok(client.get(f"/api/v1/schedules/{roomy['id']}"))["slots"]]
    racers = [make_patient(client, name=f"抢号{i}") for i in range(12)]
    holder_token, holder, _ = make_patient(client)
    ok(book(client, holder_token, holder, roomy_slots[0]), 201)  # already holds a place in that session
    parent_token, parent, _ = make_patient(client, name="王大伟")
    child = ok(
        client.post(
            "/api/v1/patients",
            headers=auth(parent_token),
            json={"name": "王小宝", "id_number": make_id_number(sex="male"), "relation": "child"},
        ),
        201,
    )["id"]
    stranger_token, _, _ = make_patient(client)
    race = uuid.uuid4().hex

    async def together() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as ac:

            def post(token: str, patient_id: str, slot_id: str, request_id: str | None = None) -> Any:
                return ac.post(
                    "/api/v1/appointments",
                    headers=auth(token)
                    | {"Idempotency-Key": f"{race}-{request_id}" if request_id else str(uuid.uuid4())}
                    | ({"X-Request-ID": request_id} if request_id else {}),
                    json={"patient_id": patient_id, "slot_id": slot_id},
                )

            calls = [post(t, p, scarce_slot, f"race-{i}-{p[:8]}") for i, (t, p, _) in enumerate(racers)]
            calls += [
                post(holder_token, holder, roomy_slots[1]),  # already_booked
                post(parent_token, parent, roomy_slots[1]),
                post(parent_token, child, roomy_slots[1]),
                post(stranger_token, parent, roomy_slots[2]),  # not the stranger's patient: 404
                post(stranger_token, racers[0][1], str(uuid.uuid4())),  # not theirs either, unknown slot: 404
            ]
            return await asyncio.gather(*calls)

    answers = asyncio.run(together())
    races, (held, for_parent, for_child, strangers, unknown) = answers[:12], answers[12:]
    assert [r.status_code for r in races].count(201) == 3
    assert {r.json()["error"]["code"] for r in races if r.status_code != 201} == {"slot_full"}
    for i, (r, (_, patient_id, _)) in enumerate(zip(races, racers, strict=True)):
        if r.status_code == 201:  # the owner sees their own patient's name, and that read is audited
            assert r.json()["patient_id"] == patient_id and r.json()["patient_name"].startswith("抢号")
            # decided in a batch with others, the audit record still names this request
            assert _audited_requests(server, patient_id) == [f"race-{i}-{patient_id[:8]}"]
        else:  # an answer drafted for a booking that did not get its place leaves nothing behind
            assert _audited_requests(server, patient_id) == []
    # one event and one stored answer per place taken, none for the refused
    booked_events = "SELECT count(*) FROM outbox WHERE type = 'appointment.booked' AND CAST(data AS TEXT) LIKE :slot"
    assert _count(server, booked_events, slot=f"%{scarce_slot}%") == 3
    assert _count(server, "SELECT count(*) FROM idempotency_records WHERE key LIKE :race", race=f"{race}-%") == 3
    assert held.status_code == 409 and held.json()["error"]["code"] == "already_booked"
    assert ok(for_parent, 201)["patient_name"] == "王大伟" and ok(for_child, 201)["patient_name"] == "王小宝"
    assert strangers.status_code == 404 and strangers.json()["error"]["details"]["id"] == parent
    assert unknown.status_code == 404
    detail = ok(client.get(f"/api/v1/schedules/{roomy['id']}"))["slots"]
    assert detail[1]["pools"][0]["booked"] == 2 and detail[2]["pools"][0]["booked"] == 0
    _invariants_hold(server)


def test_bookings_one_by_one_when_the_desk_is_off(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    """CAREBRIDGE_BOOKING_BATCH_SIZE=0: each booking is its own transaction, with the same answers (an app of
    its own on the same database, in this process; its lifespan is not run, which would rebind the test
    server's process-wide listeners)."""
    from carebridge.app import create_app

    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    (t1, p1, _), (t2, p2, _) = make_patient(client), make_patient(client)
    app = create_app(server.settings.model_copy(update={"booking_batch_size": 0, "background_tasks": False}))

    async def one_by_one() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://off") as ac:

                def post(token: str, patient_id: str, key: str) -> Any:
                    body = {"patient_id": patient_id, "slot_id": slot_id}
                    return ac.post("/api/v1/appointments", headers=auth(token) | {"Idempotency-Key": key}, json=body)

                first = await post(t1, p1, "off-1")
                return [first, await post(t2, p2, "off-2"), await post(t1, p1, "off-1")]
        finally:
            await app.state.db.dispose()

    first, full, again = asyncio.run(one_by_one())
    assert first.status_code == 201 and first.json()["patient_name"] == "张小明"
    assert full.status_code == 409 and full.json()["error"]["code"] == "slot_full"
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    _invariants_hold(server)


def test_a_booking_whose_caller_goes_away_is_still_decided(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    """A request waiting at the desk whose caller goes away (its task cancelled) does not take the others' batch
    down and is decided all the same: its place is taken and its answer kept under its Idempotency-Key, so the
    same request sent again gets it."""
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 3}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    (gone_token, gone_patient, _), (stays_token, stays_patient, _) = make_patient(client), make_patient(client)
    gone_key, stays_key = uuid.uuid4().hex, uuid.uuid4().hex

    async def run() -> tuple[bool, tuple[int, dict[str, Any]]]:
        db = Database(server.settings)
        try:
            async with db.read() as session:
                found = await principals_for_digests(session, [token_digest(gone_token), token_digest(stays_token)])
            (gone, _), (stays, _) = found[token_digest(gone_token)], found[token_digest(stays_token)]
            desk = Desk(db, batch_size=8)

            def booking(principal: Any, patient_id: str, key: str) -> Any:
                return desk.book(
                    principal,
                    patient_id=uuid.UUID(patient_id),
                    slot_id=uuid.UUID(slot_id),
                    channel="platform",
                    key=key,
                    payload_hash=lambda: idempotency.request_hash(  # as the API hashes the same request
                        BookIn(patient_id=patient_id, slot_id=slot_id, channel="platform").model_dump(mode="json")
                    ),
                )

            leaving = asyncio.create_task(booking(gone, gone_patient, gone_key))
            staying = asyncio.create_task(booking(stays, stays_patient, stays_key))
            await asyncio.sleep(0)  # both are waiting at the desk
            leaving.cancel()
            answer = await staying
            try:
                await leaving
            except asyncio.CancelledError:
                cancelled = True
            else:
                cancelled = False
            return cancelled, answer
        finally:
            await db.dispose()

    cancelled, (status, answer) = asyncio.run(run())
    assert cancelled and status == 201 and answer["patient_id"] == stays_patient

    def held() -> list[str]:  # the slots the patient holds a place in
        mine = ok(client.get("/api/v1/appointments", headers=auth(gone_token)))
        return [a["slot_id"] for a in mine if a["status"] == "booked"]

    assert held() == [slot_id]  # decided, though nobody waited for the answer
    again = ok(book(client, gone_token, gone_patient, slot_id, key=gone_key), 201)  # the kept answer
    assert again["patient_id"] == gone_patient and held() == [slot_id]
    detail = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["pools"][0]
    assert detail["booked"] == 2
    _invariants_hold(server)


def test_refusals_decided_together_leave_no_cycles(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    """Bookings refused in a batch (here ``slot_full``) are freed as soon as they are answered: a refusal keeps no
    traceback through the batch's frames, and the frame that raised it from its future does not lead back to that
    future. Left as reference cycles, a surge's requests piled up for the garbage collector, whose pauses (35 to
    160 ms measured) every waiting request shared."""
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    people = [make_patient(client) for _ in range(4)]

    async def run() -> tuple[list[int], list[str]]:
        db = Database(server.settings)
        try:
            async with db.read() as session:
                found = await principals_for_digests(session, [token_digest(token) for token, _, _ in people])
            desk = Desk(db, batch_size=8)

            async def one(token: str, patient_id: str) -> int:
                try:
                    status, _ = await desk.book(
                        found[token_digest(token)][0],  # type: ignore[arg-type]
                        patient_id=uuid.UUID(patient_id),
                        slot_id=uuid.UUID(slot_id),
                        channel="platform",
                        key=uuid.uuid4().hex,
                        payload_hash=lambda: "-",
                    )
                except Conflict as exc:
                    assert exc.code == "slot_full"
                    return 409
                return status

            gc.collect()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                statuses = await asyncio.gather(*(one(token, patient_id) for token, patient_id, _ in people))
                gc.collect()
                left = [type(o).__qualname__ for o in gc.garbage if type(o) in (Request, _Going, Conflict)]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
            return sorted(statuses), left
        finally:
            await db.dispose()

    statuses, left = asyncio.run(run())
    assert statuses == [201, 409, 409, 409]
    assert left == []
