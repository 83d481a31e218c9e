"""Real-name patients: ID validation, encryption at rest, masking, audit, family, isolation."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
from sqlalchemy import text

from carebridge.database.engine import Database
from tests.factories import PASSWORD, auth, login, make_hospital, make_id_number, make_patient, ok, unique


def _raw(server, sql: str, **params):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        db = Database(server.settings)
        try:
            async with db.read() as session:
                return (await session.execute(text(sql), params)).all()
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_id_number_checksum_and_birth_date(client: httpx.Client) -> None:
    username = unique("p")
    ok(
        client.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD, "display_name": "甲"}),
        201,
    )
    token = login(client, username)
    good = make_id_number(date(1990, 2, 3), "male")
    bad_check = good[:17] + ("0" if good[17] != "0" else "1")
    r = client.post("/api/v1/patients", headers=auth(token), json={"name": "王五", "id_number": bad_check})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_id_number"
    r = client.post("/api/v1/patients", headers=auth(token), json={"name": "王五", "id_number": good, "phone": "12345"})
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "phone"
    p = ok(client.post("/api/v1/patients", headers=auth(token), json={"name": "王五", "id_number": good}), 201)
    assert p["birth_date"] == "1990-02-03" and p["sex"] == "male" and p["region"] == "110105"
    assert p["id_number"] == good and p["masked"] is False


def test_raw_row_holds_no_plaintext_and_reads_are_audited(server, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    token, patient_id, id_number = make_patient(client, name="李秀英")
    me = ok(client.get(f"/api/v1/patients/{patient_id}", headers=auth(token)))
    phone = me["phone"]
    rows = _raw(server, "SELECT * FROM patients WHERE id_number_index IS NOT NULL")
    dump = repr(rows)
    assert id_number not in dump and phone not in dump and "李秀英" not in dump
    audits = _raw(server, "SELECT action FROM audit_records WHERE subject_id = :sid", sid=str(patient_id))
    assert any(a[0] == "patient.personal_data.read" for a in audits)


def test_family_members_and_isolation_between_accounts(client: httpx.Client) -> None:
    token, patient_id, id_number = make_patient(client, name="陈大文")
    child = ok(
        client.post(
            "/api/v1/patients",
            headers=auth(token),
            json={"name": "陈小文", "id_number": make_id_number(date(2019, 5, 1), "male"), "relation": "child"},
        ),
        201,
    )
    mine = ok(client.get("/api/v1/patients", headers=auth(token)))
    assert {p["id"] for p in mine} == {patient_id, child["id"]}
    other_token, _, _ = make_patient(client, name="刘强")
    r = client.get(f"/api/v1/patients/{patient_id}", headers=auth(other_token))
    assert r.status_code == 404
    # Claiming someone's ID number under another name is refused.
    r = client.post(
        "/api/v1/patients",
        headers=auth(other_token),
        json={"name": "冒名", "id_number": id_number, "relation": "other"},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "identity_mismatch"


def test_hospital_lookup_is_masked_and_scoped(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    other = make_hospital(client, admin_token)
    token, patient_id, id_number = make_patient(client, name="周杰")
    ok(
        client.post(
            f"/api/v1/patients/{patient_id}/medical-cards",
            headers=auth(token),
            json={"hospital_id": world.hospital_id, "card_number": unique("C")[:20]},
        ),
        201,
    )
    found = ok(
        client.post(
            f"/api/v1/hospitals/{world.hospital_id}/patients/lookup",
            headers=auth(world.admin_token),
            json={"id_number": id_number},
        )
    )
    assert found["masked"] is True and found["name"] == "周*" and id_number not in found["id_number"]
    r = client.post(
        f"/api/v1/hospitals/{world.hospital_id}/patients/lookup",
        headers=auth(other.admin_token),
        json={"id_number": id_number},
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/hospitals/{other.hospital_id}/patients/lookup",
        headers=auth(other.admin_token),
        json={"id_number": id_number},
    )
    assert r.status_code == 404


def _register(client: httpx.Client, username: str) -> None:
    account = {"username": username, "password": PASSWORD, "display_name": "x"}
    ok(client.post("/api/v1/auth/register", json=account), 201)


def test_tokens_looked_up_together_each_get_their_own_caller(server, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """New tokens used at the same moment are resolved together (core.batching): each request acts as its own
    account, sees only its own patient, and a logged-out or unknown token among them is still refused."""
    people = []
    for i in range(24):
        username = unique("tok")
        _register(client, username)
        first = login(client, username)
        mine = ok(
            client.post(
                "/api/v1/patients",
                headers=auth(first),
                json={"name": f"同时{i}", "id_number": make_id_number()},
            ),
            201,
        )
        people.append((login(client, username), mine["id"]))  # a second token, never used yet
    username = unique("out")
    _register(client, username)
    logged_out = login(client, username)
    assert client.post("/api/v1/auth/logout", headers=auth(logged_out)).status_code == 204

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as ac:
            calls = [ac.get("/api/v1/patients", headers=auth(token)) for token, _ in people]
            calls += [ac.get("/api/v1/patients", headers=auth(t)) for t in (logged_out, "cb_unknown_token")]
            return await asyncio.gather(*calls)

    answers = asyncio.run(together())
    for r, (_, patient_id) in zip(answers, people, strict=False):
        assert [p["id"] for p in ok(r)] == [patient_id]
    assert [r.status_code for r in answers[-2:]] == [401, 401]
