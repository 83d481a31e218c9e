"""Reporting platforms and the ingest API: per-platform tokens, per-event validation with reasons (the rest of
the batch kept), catalog versions, scope, idempotency by event id; and ``carebridge supervise``, the standalone
engine, run as its own process with its own database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import _free_port, start_process
from tests.factories import auth, ok, unique
from tests.test_supervision import BASE, make_regulator, wait_for

INGEST = f"{BASE}/ingest"


def hospital_registered(hospital_id: str, region: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    data = {
        "hospital_id": hospital_id,
        "name": "南山互联网医院",
        "region_code": region,
        "level": "secondary",
        "is_internet_hospital": True,
        "licence_expires_on": "2030-01-01",
        **extra,
    }
    return envelope("hospital.registered", hospital_id, ("hospital", hospital_id), data)


def consultation_requested(hospital_id: str, practice_years: int = 1) -> dict:
    consultation_id = str(uuid.uuid4())
    data = {
        "consultation_id": consultation_id,
        "patient_id": str(uuid.uuid4()),
        "practitioner_id": str(uuid.uuid4()),
        "department_id": str(uuid.uuid4()),
        "kind": "text",
        "status": "requested",
        "follows_up_icd10": "I10",
        "practice_years": practice_years,
        "practitioner_status": "active",
        "filing_kind": "main",
    }
    return envelope("consultation.requested", hospital_id, ("consultation", consultation_id), data)


def envelope(type_: str, hospital_id: str | None, subject: tuple[str, str], data: dict) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": type_,
        "occurred_at": datetime.now(UTC).isoformat(),
        "hospital_id": hospital_id,
        "region": None,
        "actor": "doctor:1",
        "subject": {"type": subject[0], "id": subject[1]},
        "data": data,
    }


def register_platform(client: httpx.Client, admin: str, regions: list[str]) -> tuple[dict, str]:
    body = {"code": unique("plat"), "name": "某互联网医院平台", "regions": regions}
    out = ok(client.post(f"{BASE}/platforms", headers=auth(admin), json=body), 201)
    return out["platform"], out["token"]


def test_ingest_keeps_good_events_and_rejects_bad_ones_with_reasons(  # noqa: PLR0915
    client: httpx.Client, admin_token: str
) -> None:
    platform, token = register_platform(client, admin_token, ["440300"])
    other, other_token = register_platform(client, admin_token, ["440300"])
    regulator = auth(make_regulator(client, admin_token, region="440000"))
    rule = ok(
        client.post(
            f"{BASE}/rules",
            headers=regulator,
            json={
                "code": unique("cel-ingest"),
                "rule_type": "cel",
                "expression": 'event.type == "consultation.requested" && event.data.practice_years < 2',
                "severity": "warning",
                "scope_kind": "region",
                "scope_value": "440300",
            },
        ),
        201,
    )
    h1, h2, h3 = (str(uuid.uuid4()) for _ in range(3))
    good = consultation_requested(h1)
    extra_field = {**consultation_requested(h1), "extra": 1}
    future = {**consultation_requested(h1), "occurred_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    naive = {**consultation_requested(h1), "occurred_at": "2026-11-22T08:00:00"}
    missing = consultation_requested(h1)
    del missing["data"]["patient_id"]
    batch = [
        hospital_registered(h1, "440305"),  # 0
        good,  # 1
        "not an object",  # 2
        extra_field,  # 3
        {**consultation_requested(h1), "catalog_version": "9.9"},  # 4
        {**hospital_registered(str(uuid.uuid4()), "440305"), "catalog_version": "1.3"},  # 5
        {**consultation_requested(h1), "type": "consultation.teleported"},  # 6
        missing,  # 7
        hospital_registered(h2, "310101"),  # 8
        consultation_requested(h3),  # 9
        good,  # 10: the same event twice
        future,  # 11
        naive,  # 12
    ]
    sent = ok(client.post(INGEST, headers=auth(token), json={"catalog_version": "1.4", "events": batch}))
    assert sent["received"] == 13 and sent["accepted"] == 2
    assert sent["duplicates"] == [{"index": 10, "id": good["id"]}]
    rejected = {r["index"]: r for r in sent["rejected"]}
    assert {i: r["code"] for i, r in rejected.items()} == {
        2: "malformed",
        3: "malformed",
        4: "unknown_catalog_version",
        5: "type_not_in_version",
        6: "unknown_event_type",
        7: "invalid_event_data",
        8: "out_of_scope",
        9: "unknown_hospital",
        11: "occurred_in_future",
        12: "malformed",
    }
    assert rejected[3]["field"] == "extra" and rejected[7]["field"] == "data.patient_id"
    assert rejected[8]["field"] == "data.region_code" and "310101" in rejected[8]["reason"]
    assert all(r["reason"] for r in sent["rejected"]) and rejected[4]["id"] == batch[4]["id"]
    assert sent["warnings"] >= 2  # the CEL rule and the default R3 rule (practice years)

    warnings = wait_for(
        lambda: ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": rule["code"]})),
        lambda ws: len(ws) == 1,
    )
    assert warnings[0]["hospital_region"] == "440305" and warnings[0]["evidence"] == [good["id"]]
    traced = ok(client.get(f"{BASE}/events", headers=regulator, params={"hospital_id": h1}))
    assert {e["id"] for e in traced} == {batch[0]["id"], good["id"]}

    # the same batch again (a retry after a timeout): nothing new, the same answers
    again = ok(client.post(INGEST, headers=auth(token), json={"catalog_version": "1.4", "events": batch}))
    assert again["accepted"] == 0 and again["warnings"] == 0
    assert [d["index"] for d in again["duplicates"]] == [0, 1, 10]
    assert len(ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": rule["code"]}))) == 1

    # another platform may not report for this hospital, nor register it again
    theirs = ok(
        client.post(
            INGEST,
            headers=auth(other_token),
            json={"catalog_version": "1.4", "events": [consultation_requested(h1), hospital_registered(h1, "440305")]},
        )
    )
    assert [r["code"] for r in theirs["rejected"]] == ["out_of_scope", "out_of_scope"] and theirs["accepted"] == 0
    # moving a hospital outside the platform's regions is refused
    moved = envelope(
        "hospital.changed",
        h1,
        ("hospital", h1),
        {"hospital_id": h1, "fields": ["region_code"], "region_code": "310101"},
    )
    out = ok(client.post(INGEST, headers=auth(token), json={"catalog_version": "1.4", "events": [moved]}))
    assert out["rejected"][0]["code"] == "out_of_scope"

    # the batch envelope itself
    for body, status in (
        ({"catalog_version": "1.4", "events": []}, 422),
        ({"catalog_version": "1.4", "events": [good] * 1001}, 422),
        ({"catalog_version": "1.4", "events": [good], "sender": "x"}, 422),
        ({"catalog_version": "1.4", "events": "nope"}, 422),
    ):
        r = client.post(INGEST, headers=auth(token), json=body)
        assert r.status_code == status, r.text
    huge = client.post(
        INGEST,
        headers={**auth(token), "Content-Type": "application/json"},
        content=b'{"events": [' + b'"x",' * 1_200_000 + b'"x"]}',
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
    bad_json = client.post(
        INGEST, headers={**auth(token), "Content-Type": "application/json"}, content=b'{"events": [}'
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "malformed_json"

    # tokens: none, a user's, a rotated one, a suspended platform
    assert client.post(INGEST, json={"events": [good]}).status_code == 401
    user = client.post(INGEST, headers=auth(admin_token), json={"events": [good]})
    assert user.status_code == 401 and user.json()["error"]["code"] == "invalid_platform_token"
    rotated = ok(client.post(f"{BASE}/platforms/{platform['id']}/token", headers=auth(admin_token)))
    assert client.post(INGEST, headers=auth(token), json={"events": [good]}).status_code == 401
    assert ok(client.post(INGEST, headers=auth(rotated["token"]), json={"catalog_version": "1.4", "events": [good]}))[
        "duplicates"
    ]
    ok(client.patch(f"{BASE}/platforms/{other['id']}", headers=auth(admin_token), json={"active": False}))
    suspended = client.post(INGEST, headers=auth(other_token), json={"events": [good]})
    assert suspended.status_code == 403 and suspended.json()["error"]["code"] == "platform_suspended"
    # only platform admins register platforms; the counters add up
    assert (
        client.post(
            f"{BASE}/platforms", headers=regulator, json={"code": "x1", "name": "xx", "regions": ["440300"]}
        ).status_code
        == 403
    )
    listed = {p["id"]: p for p in ok(client.get(f"{BASE}/platforms", headers=auth(admin_token)))}
    assert listed[platform["id"]]["events_accepted"] == 2 and listed[platform["id"]]["events_rejected"] == 10 + 10 + 1
    assert listed[platform["id"]]["last_catalog_version"] == "1.4" and "token" not in listed[platform["id"]]


# --- the standalone engine ------------------------------------------------------------------------------------


def _cli(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "carebridge.cli", "supervise", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """``carebridge supervise`` in its own process, once it answers ``/readyz``."""
    return start_process(["supervise", "--host", "127.0.0.1", "--port", str(port)], env, ready_port=port)


def test_carebridge_supervise_runs_alone_and_takes_reports(fresh_database_url: str) -> None:
    env = {
        **os.environ,
        "CAREBRIDGE_DATABASE_URL": fresh_database_url,
        "CAREBRIDGE_ARGON2_TIME_COST": "1",
        "CAREBRIDGE_ARGON2_MEMORY_KIB": "1024",
        "CAREBRIDGE_LOG_LEVEL": "WARNING",
        "CAREBRIDGE_NEW_PASSWORD": "Supervise-2026!",
    }
    reg = _cli(env, "add-user", "--username", "nanshan", "--region", "440305", "--region-name", "南山区")
    assert reg["role"] == "regulator"
    plat = _cli(env, "add-platform", "--code", "shenzhen-ih", "--name", "深圳互联网医院平台", "--region", "440300")
    assert plat["token"].startswith("cbp_")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(env, port)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            # a regulator's engine, not a hospital platform: no booking, consultations or prescriptions
            for path in ("/api/v1/appointments", "/api/v1/consultations", "/api/v1/prescriptions"):
                assert c.get(path).status_code == 404, path
            token = ok(c.post("/api/v1/auth/login", json={"username": "nanshan", "password": "Supervise-2026!"}))[
                "access_token"
            ]
            regulator = auth(token)
            # the default catalog is in place
            assert any(r["code"] == "R3-practice-years" for r in ok(c.get(f"{BASE}/rules", headers=regulator)))
            h = str(uuid.uuid4())
            req = consultation_requested(h, practice_years=1)
            out = ok(
                c.post(
                    INGEST,
                    headers=auth(plat["token"]),
                    json={"catalog_version": "1.4", "events": [hospital_registered(h, "440305"), req]},
                )
            )
            assert out["accepted"] == 2 and out["rejected"] == [] and out["warnings"] >= 1
            warnings = ok(c.get(f"{BASE}/warnings", headers=regulator, params={"rule": "R3-practice-years"}))
            assert len(warnings) == 1 and warnings[0]["evidence"] == [req["id"]]
            cases = ok(c.get(f"{BASE}/cases", headers=regulator, params={"status": "active"}))
            assert warnings[0]["case_id"] in [x["id"] for x in cases], cases
            notes = ok(c.get("/api/v1/notifications", headers=regulator))
            assert any(n["kind"] == "supervision_case_opened" for n in notes)
            # the hospital has no account here: its platform carries the rectification request and the answer
            case_id = warnings[0]["case_id"]
            ok(c.post(f"{BASE}/cases/{case_id}/rectification", headers=regulator, json={"text": "请整改"}))
            waiting = ok(c.get(f"{BASE}/platform/cases", headers=auth(plat["token"]), params={"status": "rectifying"}))
            assert [x["id"] for x in waiting] == [case_id]
            body = {"text": "已整改", "answered_by": "医务科"}
            answered = c.post(f"{BASE}/platform/cases/{case_id}/answer", headers=auth(plat["token"]), json=body)
            assert ok(answered)["status"] == "answered"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # restarted on the same database: the same report is a duplicate, no second warning
    proc = _start(env, port)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            out = ok(c.post(INGEST, headers=auth(plat["token"]), json={"catalog_version": "1.4", "events": [req]}))
            assert out["accepted"] == 0 and out["duplicates"] == [{"index": 0, "id": req["id"]}]
            token = ok(c.post("/api/v1/auth/login", json={"username": "nanshan", "password": "Supervise-2026!"}))[
                "access_token"
            ]
            warnings = ok(c.get(f"{BASE}/warnings", headers=auth(token), params={"rule": "R3-practice-years"}))
            assert len(warnings) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- rectification through the reporting platform -------------------------------------------------------------


def test_a_platform_reads_and_answers_its_hospitals_rectification_requests(  # noqa: PLR0915
    client: httpx.Client, admin_token: str
) -> None:
    platform, token = register_platform(client, admin_token, ["440300"])
    other, other_token = register_platform(client, admin_token, ["440300"])
    regulator = auth(make_regulator(client, admin_token, region="440000"))
    h = str(uuid.uuid4())
    sent = ok(
        client.post(
            INGEST,
            headers=auth(token),
            json={
                "catalog_version": "1.4",
                "events": [hospital_registered(h, "440305"), consultation_requested(h, practice_years=1)],
            },
        )
    )
    assert sent["accepted"] == 2 and sent["warnings"] >= 1, sent
    case = next(
        c
        for c in ok(client.get(f"{BASE}/cases", headers=regulator, params={"hospital_id": h}))
        if c["rule_code"] == "R3-practice-years"
    )
    mine = f"{BASE}/platform/cases"
    # not yet sent to the hospital: the platform does not see it
    assert case["id"] not in [c["id"] for c in ok(client.get(mine, headers=auth(token)))]
    assert client.get(f"{mine}/{case['id']}", headers=auth(token)).status_code == 404
    ok(client.post(f"{BASE}/cases/{case['id']}/comments", headers=regulator, json={"text": "内部意见，不给医院看"}))
    ok(
        client.post(
            f"{BASE}/cases/{case['id']}/rectification",
            headers=regulator,
            json={"text": "请核实该医师的执业年限并整改", "due_in_days": 5},
        )
    )
    listed = ok(client.get(mine, headers=auth(token), params={"status": "rectifying"}))
    assert [c["id"] for c in listed] == [case["id"]] and listed[0]["status"] == "rectifying"
    detail = ok(client.get(f"{mine}/{case['id']}", headers=auth(token)))
    texts = [e["text"] for e in detail["entries"]]
    assert "请核实该医师的执业年限并整改" in texts and "内部意见，不给医院看" not in texts
    assert detail["assignee_name"] is None and detail["warnings"][0]["rule_code"] == "R3-practice-years"
    # another platform's hospitals are not this platform's business
    assert case["id"] not in [c["id"] for c in ok(client.get(mine, headers=auth(other_token)))]
    assert client.get(f"{mine}/{case['id']}", headers=auth(other_token)).status_code == 404
    answer = f"{mine}/{case['id']}/answer"
    body = {"text": "已暂停该医师线上接诊，补充执业证明", "answered_by": "医务科 王主任"}
    assert client.post(answer, headers=auth(other_token), json=body).status_code == 404
    # bad input changes nothing
    for bad, status, code in (
        ({**body, "extra": 1}, 422, None),
        ({"text": body["text"]}, 422, None),
        ({**body, "answered_by": 7}, 422, None),
    ):
        r = client.post(answer, headers=auth(token), json=bad)
        assert r.status_code == status, (bad, r.text)
        assert r.json()["error"]["code"] == (code or r.json()["error"]["code"])
    assert client.post(answer, json=body).json()["error"]["code"] == "invalid_platform_token"
    assert client.post(answer, headers=auth("cbp_nope"), json=body).status_code == 401
    assert client.post(answer, headers=auth(admin_token), json=body).status_code == 401  # a user token is not one
    assert ok(client.get(f"{mine}/{case['id']}", headers=auth(token)))["case"]["status"] == "rectifying"
    # the answer
    answered = ok(client.post(answer, headers=auth(token), json=body))
    assert answered["status"] == "answered"
    again = client.post(answer, headers=auth(token), json=body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "case_status"
    entries = ok(client.get(f"{BASE}/cases/{case['id']}", headers=regulator))["entries"]
    last = entries[-1]
    assert last["kind"] == "answered" and last["actor"] == f"platform:{platform['code']}"
    assert "医务科 王主任" in last["actor_name"] and last["text"] == body["text"]
    notes = ok(client.get("/api/v1/notifications", headers=regulator))
    assert any(n["kind"] == "supervision_case_answered" and n["data"]["case_id"] == case["id"] for n in notes)
    # a suspended platform cannot answer or read
    ok(client.patch(f"{BASE}/platforms/{platform['id']}", headers=auth(admin_token), json={"active": False}))
    assert client.get(mine, headers=auth(token)).status_code == 403
    assert other["id"] != platform["id"]
