"""Partner apps' OAuth tokens on the JSON API (docs/openplatform.md, "The JSON API for partner apps"): the SMART
scopes mapped onto the scheduling endpoints, through real HTTP. A token books from its app's own pool, for the
patients its scopes reach, at the hospitals that granted the app, and is refused everywhere else."""

from __future__ import annotations

import httpx

from tests.factories import auth, make_id_number, make_schedule, ok
from tests.test_fhir import SCOPES, World, backend_token

API = "/api/v1"


def error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    return body


def slot_ids(client: httpx.Client, schedule_id: str, headers: dict[str, str]) -> list[str]:
    return [s["id"] for s in ok(client.get(f"{API}/schedules/{schedule_id}", headers=headers))["slots"]]


def csrf(browser: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": browser.cookies["cb_csrf"]}


def test_patient_token_books_from_its_pool_within_its_reach(client: httpx.Client, admin_token: str) -> None:  # noqa: PLR0915
    world = World(client, admin_token, scopes=[*SCOPES, "user/Appointment.rs"])
    # launch/patient patient/*.rs patient/Appointment.cruds user/Slot.rs offline_access: the app may ask for
    # user/Appointment.rs too (below), but this token did not
    h = auth(world.login(client, world.browser, world.patient_id, scope=" ".join(SCOPES)))
    channel = world.app["channel"]
    x, sid = world.x.hospital_id, world.schedule["id"]

    # schedules: the public sees the platform's pool, the app its own (one place in each of the four slots)
    public = ok(client.get(f"{API}/schedules", params={"hospital_id": x}))
    assert [s["free"] for s in public if s["id"] == sid] == [8]
    mine = ok(client.get(f"{API}/schedules", params={"hospital_id": x}, headers=h))
    assert [s["free"] for s in mine if s["id"] == sid] == [4]
    session = ok(client.get(f"{API}/schedules/{sid}", headers=h))
    assert {p["channel"] for slot in session["slots"] for p in slot["pools"]} == {channel}
    error(
        client.get(f"{API}/schedules", params={"hospital_id": world.y.hospital_id}, headers=h),
        403,
        "hospital_not_granted",
    )
    error(client.get(f"{API}/schedules/{world.other_schedule['id']}", headers=h), 403, "hospital_not_granted")
    by_doctor = ok(client.get(f"{API}/schedules", params={"practitioner_id": world.y.practitioner_id}, headers=h))
    assert by_doctor == []  # hospital Y's doctor: nothing the app may see
    error(
        client.get(f"{API}/schedules", params={"hospital_id": x, "channel": "platform"}, headers=h),
        403,
        "channel_not_allowed",
    )
    error(client.get(f"{API}/schedules", params={"hospital_id": x}, headers=auth("cba_forged")), 401, "invalid_token")

    # booking: from the app's pool, idempotent with a key; the platform's pool is not the app's to take
    first, second, third, _fourth = slot_ids(client, sid, h)
    key = {"Idempotency-Key": "partner-json-1"}
    booked = ok(
        client.post(f"{API}/appointments", headers=h | key, json={"patient_id": world.patient_id, "slot_id": first}),
        201,
    )
    assert booked["channel"] == channel and booked["status"] == "booked"
    # the answer shows the patient's name to the app the patient consented to: the read is audited as the app's
    trail = ok(
        client.get(
            "/fhir/R4/AuditEvent",
            params={"patient": world.patient_id, "subtype": "patient.personal_data.read"},
            headers=auth(admin_token),
        )
    )
    assert world.app["client_id"] in {e["resource"]["agent"][0].get("altId") for e in trail["entry"]}
    again = client.post(f"{API}/appointments", headers=h | key, json={"patient_id": world.patient_id, "slot_id": first})
    assert again.status_code in (200, 201) and again.json()["id"] == booked["id"]
    error(
        client.post(
            f"{API}/appointments",
            headers=h,
            json={"patient_id": world.patient_id, "slot_id": second, "channel": "platform"},
        ),
        403,
        "channel_not_allowed",
    )
    assert [s["free"] for s in ok(client.get(f"{API}/schedules", params={"hospital_id": x})) if s["id"] == sid] == [8]
    assert [
        s["free"] for s in ok(client.get(f"{API}/schedules", params={"hospital_id": x}, headers=h)) if s["id"] == sid
    ] == [3]

    # a slot at hospital Y (even one with a pool for the app), an unknown slot, a patient outside the token
    at_y = make_schedule(client, world.y, pools={"platform": 1, channel: 1}, days_ahead=2)
    y_slot = ok(client.get(f"{API}/schedules/{at_y['id']}"))["slots"][0]["id"]
    error(
        client.post(f"{API}/appointments", headers=h, json={"patient_id": world.patient_id, "slot_id": y_slot}),
        403,
        "hospital_not_granted",
    )
    error(
        client.post(
            f"{API}/appointments", headers=h, json={"patient_id": world.patient_id, "slot_id": world.x.hospital_id}
        ),
        404,
        "not_found",
    )
    family = {"name": "李建国", "id_number": make_id_number(), "relation": "parent"}
    parent = ok(world.browser.post(f"{API}/patients", json=family, headers=csrf(world.browser)), 201)["id"]
    error(
        client.post(f"{API}/appointments", headers=h, json={"patient_id": parent, "slot_id": second}),
        403,
        "patient_not_in_context",
    )

    # the parent's own booking, made on CareBridge's pages: the patient-context token does not see it
    theirs = ok(
        world.browser.post(
            f"{API}/appointments", json={"patient_id": parent, "slot_id": second}, headers=csrf(world.browser)
        ),
        201,
    )
    assert [a["id"] for a in ok(client.get(f"{API}/appointments", headers=h))] == [booked["id"]]
    error(client.get(f"{API}/appointments/{theirs['id']}", headers=h), 404, "not_found")
    error(client.get(f"{API}/appointments/{theirs['id']}/queue", headers=h), 404, "not_found")
    error(client.post(f"{API}/appointments/{theirs['id']}/cancel", headers=h, json={}), 404, "not_found")
    # a user/ token reaches every patient of the account (read only here)
    wide = auth(world.login(client, world.browser, world.patient_id, scope="launch/patient user/Appointment.rs"))
    assert sorted(a["id"] for a in ok(client.get(f"{API}/appointments", headers=wide))) == sorted(
        [booked["id"], theirs["id"]]
    )
    error(client.post(f"{API}/appointments/{booked['id']}/cancel", headers=wide, json={}), 403, "scope_missing")

    # the app's own booking: read, queue, reschedule within its pool, cancel
    assert ok(client.get(f"{API}/appointments/{booked['id']}", headers=h))["slot_id"] == first
    assert ok(client.get(f"{API}/appointments/{booked['id']}/queue", headers=h))["appointment_id"] == booked["id"]
    moved = ok(client.post(f"{API}/appointments/{booked['id']}/reschedule", headers=h, json={"slot_id": third}))
    assert moved["slot_id"] == third and moved["channel"] == channel
    cancelled = ok(client.post(f"{API}/appointments/{moved['id']}/cancel", headers=h, json={"reason": "改期"}))
    assert cancelled["status"] == "cancelled"
    # the patient's own booking on CareBridge's pages stays in the platform's pool: the app may not move it
    later = make_schedule(client, world.x, pools={"platform": 2, channel: 1}, days_ahead=3)
    a, b = slot_ids(client, later["id"], {})[:2]
    own = ok(
        world.browser.post(
            f"{API}/appointments", json={"patient_id": world.patient_id, "slot_id": a}, headers=csrf(world.browser)
        ),
        201,
    )
    error(
        client.post(f"{API}/appointments/{own['id']}/reschedule", headers=h, json={"slot_id": b}),
        403,
        "channel_not_allowed",
    )
    assert ok(client.get(f"{API}/appointments/{own['id']}", headers=h))["status"] == "booked"  # nothing changed


def test_scopes_and_endpoints_a_token_may_not_use(client: httpx.Client, admin_token: str) -> None:
    world = World(client, admin_token)
    narrow = auth(world.login(client, world.browser, world.patient_id, scope="launch/patient user/Slot.rs"))
    sid = world.schedule["id"]
    first = slot_ids(client, sid, narrow)[0]
    error(
        client.post(f"{API}/appointments", headers=narrow, json={"patient_id": world.patient_id, "slot_id": first}),
        403,
        "scope_missing",
    )
    error(client.get(f"{API}/appointments", headers=narrow), 403, "scope_missing")
    only_appointments = auth(
        world.login(client, world.browser, world.patient_id, scope="launch/patient patient/Appointment.rs")
    )
    error(client.get(f"{API}/schedules/{sid}", headers=only_appointments), 403, "scope_missing")

    # endpoints not open to partner apps refuse their tokens, whatever the scopes: the patient's profile,
    # check-in, the waitlist, the doctor's pages, admin
    h = auth(world.token)
    for method, path in [
        ("GET", f"{API}/patients"),
        ("GET", f"{API}/patients/{world.patient_id}"),
        ("GET", f"{API}/waitlist"),
        ("GET", f"{API}/doctor/schedules"),
        ("GET", f"{API}/auth/me"),
        ("GET", f"{API}/hospitals/{world.x.hospital_id}/schedules"),
    ]:
        error(client.request(method, path, headers=h), 403, "partner_token_not_accepted")
    appointment = ok(
        client.post(f"{API}/appointments", headers=h, json={"patient_id": world.patient_id, "slot_id": first}), 201
    )
    error(client.post(f"{API}/appointments/{appointment['id']}/check-in", headers=h), 403, "partner_token_not_accepted")
    # the patient's own session still does all of it
    assert ok(world.browser.get(f"{API}/patients"))


def test_backend_token_reads_its_view_and_acts_for_no_patient(client: httpx.Client, admin_token: str) -> None:
    world = World(client, admin_token)
    h = auth(backend_token(client, admin_token, world, ["system/Slot.rs", "system/Appointment.crs"]))
    sid = world.schedule["id"]
    # its own pool at the hospital that granted it: no places (the hospital gave them to the other app)
    rows = ok(client.get(f"{API}/schedules", params={"hospital_id": world.x.hospital_id}, headers=h))
    assert [s["free"] for s in rows if s["id"] == sid] == [0]
    first = ok(client.get(f"{API}/schedules/{sid}", headers=h))["slots"][0]["id"]
    body = {"patient_id": world.patient_id, "slot_id": first}
    error(client.post(f"{API}/appointments", headers=h, json=body), 403, "patient_context_required")
    error(client.get(f"{API}/appointments", headers=h), 403, "patient_context_required")
    slotless = auth(backend_token(client, admin_token, world, ["system/Appointment.rs"]))
    error(client.get(f"{API}/schedules/{sid}", headers=slotless), 403, "scope_missing")
