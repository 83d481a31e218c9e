"""Every approved app's sandbox hospital: made at approval, granted to the app, hidden from the public directory
and the regulators, bookable through FHIR by its test patients, kept across suspensions, rolled forward."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, text

from carebridge.core import clock
from carebridge.database.engine import Database
from carebridge.directory import service as directory
from carebridge.openplatform import sandbox
from carebridge.openplatform.models import Sandbox
from carebridge.scheduling.models import BookingBlock
from tests.factories import auth, login, ok
from tests.test_fhir import FHIR, SCOPES, new_appointment
from tests.test_oauth import authorize_params, code_exchange, consent, pkce, redirect_query
from tests.test_openplatform import APPS, backend_app, make_developer, patient_app


def test_sandbox_made_at_approval_and_hidden(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    dev = auth(make_developer(client))
    admin = auth(admin_token)
    app = ok(client.post(APPS, headers=dev, json=patient_app(scopes=SCOPES)), 201)
    box_url = f"{APPS}/{app['id']}/sandbox"
    assert client.get(box_url, headers=dev).status_code == 404  # pending: no sandbox yet
    ok(client.post(f"{APPS}/{app['id']}/review", headers=admin, json={"decision": "approve"}))
    box = ok(client.get(box_url, headers=dev))
    assert box["organization"] == f"Organization/{box['hospital_id']}" and "沙箱" in box["hospital_name"]
    assert len(box["departments"]) == 4 and len(box["practitioners"]) == 8
    first, second = box["test_patients"]
    assert [p["relation"] for p in first["patients"]] == ["self", "child"] and len(second["patients"]) == 1
    assert box["schedules_until"] == (clock.local_today("Asia/Shanghai") + timedelta(days=13)).isoformat()
    # its developer and platform admins see it; another developer, a patient and hospital admins do not
    assert ok(client.get(box_url, headers=admin))["hospital_id"] == box["hospital_id"]
    assert client.get(box_url, headers=auth(make_developer(client))).status_code == 404
    assert client.get(box_url, headers=auth(login(client, first["username"], first["password"]))).status_code == 403
    # granted to the app from the start
    grants = ok(client.get(f"{APPS}/{app['id']}/grants", headers=dev))
    assert [g["hospital_id"] for g in grants] == [box["hospital_id"]]
    # not in the public directory: hospitals, practitioners
    names = {h["id"] for h in ok(client.get("/api/v1/hospitals", params={"q": "沙箱", "limit": 100}))["items"]}
    assert box["hospital_id"] not in names
    doctor = box["practitioners"][0]["name"]
    found = ok(client.get("/api/v1/practitioners", params={"name": doctor, "limit": 100}))["items"]
    assert box["practitioners"][0]["id"] not in {p["id"] for p in found}

    # a suspension and a new approval keep the same sandbox
    review = f"{APPS}/{app['id']}/review"
    ok(client.post(review, headers=admin, json={"decision": "suspend", "reason": "复核中"}))
    ok(client.post(review, headers=admin, json={"decision": "approve"}))
    assert ok(client.get(box_url, headers=dev))["hospital_id"] == box["hospital_id"]

    # a backend app gets one too
    backend = ok(client.post(APPS, headers=dev, json=backend_app()), 201)
    ok(client.post(f"{APPS}/{backend['id']}/review", headers=admin, json={"decision": "approve"}))
    other = ok(client.get(f"{APPS}/{backend['id']}/sandbox", headers=dev))
    assert other["hospital_id"] != box["hospital_id"]

    async def stored() -> tuple[list[str], list[str], int, str]:
        db = Database(server.settings)
        try:
            async with db.transaction() as session:
                raw = (await session.execute(text("SELECT password FROM partner_sandbox_patients"))).scalars().all()
                profiles = [str(p["hospital_id"]) for p in await directory.hospital_profiles(session)]
                row = await session.scalar(select(Sandbox).where(Sandbox.app_id == uuid.UUID(app["id"])))
                assert row is not None
                # the sweep's roll forward: three days later, three more days of schedules
                later = clock.local_today("Asia/Shanghai") + timedelta(days=3)
                made = await sandbox.roll_forward(session, row, later)
                return list(raw), profiles, made, row.schedules_until.isoformat()
        finally:
            await db.dispose()

    raw, profiles, made, until = asyncio.run(stored())
    assert first["password"] not in raw and all(raw)  # sealed at rest
    assert box["hospital_id"] not in profiles  # the supervision registry never hears of it
    assert made == 3 * 8 and until == (clock.local_today("Asia/Shanghai") + timedelta(days=16)).isoformat()


def _block(server, hospital_id: str, patient_id: str) -> None:  # type: ignore[no-untyped-def]
    """A no-show block, as the credit policy would write it."""

    async def write() -> None:
        db = Database(server.settings)
        try:
            async with db.transaction() as session:
                session.add(
                    BookingBlock(
                        hospital_id=uuid.UUID(hospital_id),
                        patient_id=uuid.UUID(patient_id),
                        ends_on=clock.now().date() + timedelta(days=90),
                        no_show_count=3,
                        reason="3 no-shows in 90 days",
                    )
                )
        finally:
            await db.dispose()

    asyncio.run(write())


def _lift_reasons(server, patient_id: str) -> list[str | None]:  # type: ignore[no-untyped-def]
    async def read() -> list[str | None]:
        db = Database(server.settings)
        try:
            async with db.read() as session:
                query = select(BookingBlock.lift_reason).where(BookingBlock.patient_id == uuid.UUID(patient_id))
                return list((await session.scalars(query)).all())
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_test_patient_books_in_the_sandbox_through_fhir(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    dev = auth(make_developer(client))
    app = ok(client.post(APPS, headers=dev, json=patient_app(scopes=SCOPES)), 201)
    ok(client.post(f"{APPS}/{app['id']}/review", headers=auth(admin_token), json={"decision": "approve"}))
    box = ok(client.get(f"{APPS}/{app['id']}/sandbox", headers=dev))
    account = box["test_patients"][0]
    child = next(p for p in account["patients"] if p["relation"] == "child")
    # the developer signs in as the test patient on the consent page and picks the child
    browser = httpx.Client(base_url=client.base_url, follow_redirects=False)
    login(browser, account["username"], account["password"])
    verifier, challenge = pkce()
    params = authorize_params(client, app, challenge, scope=" ".join(SCOPES))
    code = redirect_query(consent(browser, params, child["id"]))["code"]
    exchange = code_exchange(app, code, verifier)
    token = ok(client.post("/oauth/token", data=exchange))
    assert token["patient"] == child["id"]
    h = auth(token["access_token"])
    start = clock.now().isoformat()
    slots = ok(client.get(f"{FHIR}/Slot", headers=h, params={"start": f"ge{start}", "status": "free", "_count": 5}))
    assert slots["entry"], "the sandbox has free slots from now on"
    slot = slots["entry"][0]["resource"]
    booked = client.post(
        f"{FHIR}/Appointment",
        headers={**h, "Content-Type": "application/fhir+json"},
        json=new_appointment(slot["id"], child["id"]),
    )
    assert booked.status_code == 201, booked.text
    assert booked.json()["participant"][0]["actor"]["reference"] == f"Patient/{child['id']}"

    # the developer resets the sandbox: the booking is cancelled by the system and the place is free again
    before = ok(client.get(f"{FHIR}/Slot/{slot['id']}", headers=h))["comment"]
    reset = f"{APPS}/{app['id']}/sandbox/reset"
    assert client.post(reset, headers=auth(make_developer(client))).status_code == 404  # not theirs
    assert client.post(reset, headers=auth(login(client, account["username"], account["password"]))).status_code == 403
    myself = next(p for p in account["patients"] if p["relation"] == "self")
    _block(server, box["hospital_id"], myself["id"])  # the test patient had missed three visits
    assert ok(client.post(reset, headers=dev)) == {"appointments_cancelled": 1, "blocks_lifted": 1}
    assert _lift_reasons(server, myself["id"]) == ["沙箱重置 sandbox reset"]
    appointment = ok(client.get(f"{FHIR}/Appointment/{booked.json()['id']}", headers=h))
    assert appointment["status"] == "cancelled" and "sandbox reset" in appointment["cancelationReason"]["text"]
    after = ok(client.get(f"{FHIR}/Slot/{slot['id']}", headers=h))
    assert after["status"] == "free" and after["comment"] != before
    assert ok(client.post(reset, headers=dev)) == {"appointments_cancelled": 0, "blocks_lifted": 0}
    pending = ok(client.post(APPS, headers=dev, json=patient_app(scopes=SCOPES)), 201)
    assert client.post(f"{APPS}/{pending['id']}/sandbox/reset", headers=dev).status_code == 404
