"""The supervision engine: rules as data, live changes, warnings and cases, CEL rules, the pre-check and its
blocks, timers, redelivery, scope. Tests add rules scoped to their own hospital so that other tests (one
server per run) never meet them."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from carebridge.core import clock
from carebridge.database.engine import Database
from carebridge.events.outbox import Event
from carebridge.supervision.engine import Engine
from carebridge.supervision.models import RuleWarning, TracedEvent
from tests.factories import (
    PASSWORD,
    auth,
    ensure_region,
    load_formulary,
    login,
    make_consultation,
    ok,
    unique,
)

BASE = "/api/v1/supervision"


def make_regulator(client: httpx.Client, admin: str, region: str = "110000") -> str:
    name = unique("reg")
    ensure_region(client, admin, "110105" if region == "110000" else region)
    ok(
        client.post(
            "/api/v1/users",
            headers=auth(admin),
            json={
                "username": name,
                "password": PASSWORD,
                "role": "regulator",
                "display_name": "监管员",
                "region_code": region,
            },
        ),
        201,
    )
    return login(client, name)


def wait_for(fetch, predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {value!r}")
        time.sleep(0.05)


def _item(drug: dict, dose: float, days: int = 7, quantity: int = 1) -> dict:
    return {"drug_id": drug["id"], "dose": dose, "frequency": "qd", "route": "oral", "days": days, "quantity": quantity}


def _sign_amlodipine(client: httpx.Client, cw, drugs: dict, quantity: int = 1) -> httpx.Response:  # type: ignore[no-untyped-def]
    doctor = auth(cw.doctor_token)
    body = {"diagnoses": ["I10"], "items": [_item(drugs["amlodipine"], 5, quantity=quantity)]}
    rx = ok(client.post(f"/api/v1/consultations/{cw.consultation_id}/prescriptions", headers=doctor, json=body), 201)
    return client.post(f"/api/v1/prescriptions/{rx['id']}/sign", headers=doctor, json={"password": PASSWORD})


def add_rule(
    client: httpx.Client,
    regulator: dict,
    world,
    rule_type: str,
    params: dict,
    severity: str = "warning",  # type: ignore[no-untyped-def]
) -> dict:
    """A rule scoped to the test's own hospital."""
    body = {
        "code": unique(rule_type[:8]),
        "rule_type": rule_type,
        "params": params,
        "severity": severity,
        "scope_kind": "hospital",
        "scope_value": world.hospital_id,
    }
    return ok(client.post(f"{BASE}/rules", headers=regulator, json=body), 201)


def test_default_catalog_and_rule_types(client: httpx.Client, admin_token: str) -> None:
    regulator = auth(make_regulator(client, admin_token))
    rules = ok(client.get(f"{BASE}/rules", headers=regulator))
    regulations = {r["regulation"] for r in rules if r["regulation"]}
    for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19):
        assert f"R{n}" in regulations, f"R{n} has no rule"
    types = {t["name"]: t for t in ok(client.get(f"{BASE}/rule-types", headers=regulator))}
    assert types["high_value_prescription"]["params_schema"]["properties"]["max_total_fen"]["type"] == "integer"
    # patients and doctors do not see the regulator's API
    cw = make_consultation(client, admin_token, start=False)
    assert client.get(f"{BASE}/rules", headers=auth(cw.patient_token)).status_code == 403
    assert client.get(f"{BASE}/warnings", headers=auth(cw.doctor_token)).status_code == 403


def test_threshold_change_applies_to_the_next_event_and_opens_a_case(client: httpx.Client, admin_token: str) -> None:
    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    regulator = auth(make_regulator(client, admin_token))
    rule = add_rule(client, regulator, cw.world, "high_value_prescription", {"max_total_fen": 1_000_000})
    assert rule["version"] == 1 and rule["group_by"] == "practitioner"
    # under the threshold: nothing (once the engine has seen it: rules apply when an event is checked)
    assert _sign_amlodipine(client, cw, drugs).status_code == 200
    wait_for(
        lambda: ok(client.get(f"{BASE}/trail/consultation/{cw.consultation_id}", headers=regulator)),
        lambda es: [e["type"] for e in es].count("prescription.signed") == 1,
    )
    # the regulator lowers it; the next prescription trips it
    changed = ok(
        client.patch(
            f"{BASE}/rules/{rule['id']}", headers=regulator, json={"version": 1, "params": {"max_total_fen": 1}}
        )
    )
    assert changed["version"] == 2 and changed["params"] == {"max_total_fen": 1}
    stale = client.patch(f"{BASE}/rules/{rule['id']}", headers=regulator, json={"version": 1, "severity": "info"})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "rule_version_conflict"
    versions = ok(client.get(f"{BASE}/rules/{rule['id']}/versions", headers=regulator))
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["before"]["params"] == {"max_total_fen": 1_000_000}
    assert versions[0]["after"]["params"] == {"max_total_fen": 1} and versions[0]["changed_by"].startswith("regulator:")
    assert _sign_amlodipine(client, cw, drugs).status_code == 200
    warnings = wait_for(
        lambda: ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": rule["code"]})),
        lambda ws: len(ws) == 1,
    )
    w = warnings[0]
    assert w["severity"] == "warning" and w["regulation"] == "R13" and w["case_id"]
    assert w["hospital_id"] == cw.world.hospital_id and w["practitioner_id"] == cw.world.practitioner_id
    # the evidence is the event, and the trail shows the prescription's story in order
    trail = ok(client.get(f"{BASE}/trail/prescription/{w['subject_id']}", headers=regulator))
    assert [e["type"] for e in trail][-1] == "prescription.signed" and trail[-1]["id"] == w["evidence"][0]
    consultation_trail = ok(client.get(f"{BASE}/trail/consultation/{cw.consultation_id}", headers=regulator))
    types = [e["type"] for e in consultation_trail]
    assert types[:3] == ["consultation.requested", "consultation.accepted", "consultation.started"]
    assert types.count("prescription.signed") == 2
    # a second violation by the same doctor joins the same case
    assert _sign_amlodipine(client, cw, drugs).status_code == 200
    warnings = wait_for(
        lambda: ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": rule["code"]})),
        lambda ws: len(ws) == 2,
    )
    assert warnings[0]["case_id"] == warnings[1]["case_id"]
    # the trace search
    found = ok(
        client.get(
            f"{BASE}/events",
            headers=regulator,
            params={"practitioner_id": cw.world.practitioner_id, "type": "prescription.*"},
        )
    )
    assert {e["type"] for e in found} == {"prescription.checked", "prescription.signed"}


def test_block_rule_stops_signing_and_a_regulator_elsewhere_sees_nothing(
    client: httpx.Client, admin_token: str
) -> None:
    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    regulator = auth(make_regulator(client, admin_token))
    code = add_rule(client, regulator, cw.world, "excess_quantity", {"max_quantity": 2}, "block")["code"]
    r = _sign_amlodipine(client, cw, drugs, quantity=3)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "supervision_blocked" and error["details"]["rules"] == [code]
    assert code in error["message"]
    # within the limit it goes through
    assert _sign_amlodipine(client, cw, drugs, quantity=2).status_code == 200
    # the HTTP pre-check says the same
    proposal = {
        "type": "prescription.signed",
        "hospital_id": cw.world.hospital_id,
        "actor": f"doctor:{uuid.uuid4()}",
        "subject": {"type": "prescription", "id": str(uuid.uuid4())},
        "data": {
            "prescription_id": str(uuid.uuid4()),
            "consultation_id": cw.consultation_id,
            "patient_id": cw.patient_id,
            "practitioner_id": cw.world.practitioner_id,
            "revision": 1,
            "status": "pending_review",
            "diagnoses": ["I10"],
            "items": [
                {
                    "line": 1,
                    "drug_code": "X",
                    "substance": "amlodipine",
                    "atc_code": "C08CA01",
                    "special_control": None,
                    "antibiotic_grade": None,
                    "dose": 5,
                    "dose_unit": "mg",
                    "frequency": "qd",
                    "route": "oral",
                    "days": 7,
                    "quantity": 9,
                    "amount_fen": 900,
                }
            ],
            "total_fen": 900,
            "long_term": False,
            "content_sha256": "0" * 64,
            "signed_at": clock.now().isoformat(),
            "expires_at": clock.now().isoformat(),
            "overrides": [],
        },
    }
    result = ok(client.post(f"{BASE}/precheck", headers=regulator, json=proposal))
    assert not result["allowed"] and [f["rule"] for f in result["findings"]] == [code]
    bad = client.post(f"{BASE}/precheck", headers=regulator, json={**proposal, "data": {"total_fen": "x"}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_event_data"
    # a regulator of another province sees none of this hospital's warnings and cannot scope rules to it
    other = auth(make_regulator(client, admin_token, region="310000"))
    assert all(w["hospital_id"] != cw.world.hospital_id for w in ok(client.get(f"{BASE}/warnings", headers=other)))
    r = client.post(
        f"{BASE}/rules",
        headers=other,
        json={
            "code": unique("x"),
            "rule_type": "excess_quantity",
            "severity": "info",
            "scope_kind": "hospital",
            "scope_value": cw.world.hospital_id,
        },
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "rule_scope"


def test_cel_rules_validate_match_and_fail_alone(client: httpx.Client, admin_token: str, server) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    regulator = auth(make_regulator(client, admin_token))
    scope = {"scope_kind": "hospital", "scope_value": cw.world.hospital_id}

    def create(expression: str, code: str | None = None) -> httpx.Response:
        return client.post(
            f"{BASE}/rules",
            headers=regulator,
            json={
                "code": code or unique("cel"),
                "rule_type": "cel",
                "expression": expression,
                "params": {"message": "一次开药数量偏多"},
                "severity": "warning",
                **scope,
            },
        )

    for bad, why in [
        ("event.type == ", "syntax"),
        ("event.data.totl_fen > 1", "totl_fen"),
        ('event.type == "prescription.signd"', "prescription.signd"),
        ("event.data.items.exists(i, i.qty > 1)", "qty"),
        ("size(event.data.items) > " + "1 + " * 600 + "1", "longer"),
    ]:
        r = create(bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_expression", (bad, r.text)
        assert why in r.json()["error"]["message"], (why, r.json())
    good = ok(create('event.type == "prescription.signed" && event.data.items.exists(i, i.quantity >= 2)'), 201)
    # a rule that fails at run time on this event (the data has no such key for this type)
    broken = ok(create('event.type == "prescription.signed" && event.data.fields.size() > 0'), 201)
    assert _sign_amlodipine(client, cw, drugs, quantity=2).status_code == 200
    warnings = wait_for(
        lambda: ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": good["code"]})),
        lambda ws: len(ws) == 1,
    )
    assert warnings[0]["message"] == "一次开药数量偏多"
    rules = wait_for(
        lambda: {r["code"]: r for r in ok(client.get(f"{BASE}/rules", headers=regulator))},
        lambda rs: rs[broken["code"]]["error_count"] >= 1,
    )
    assert rules[broken["code"]]["last_error"]
    assert not ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": broken["code"]}))


def test_redelivered_events_are_evaluated_once(client: httpx.Client, admin_token: str, server) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    regulator = auth(make_regulator(client, admin_token))
    code = add_rule(client, regulator, cw.world, "high_value_prescription", {"max_total_fen": 0})["code"]
    assert _sign_amlodipine(client, cw, drugs).status_code == 200
    wait_for(
        lambda: ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": code})), lambda ws: len(ws) == 1
    )

    async def redeliver() -> tuple[int, int]:
        db = Database(server.settings)
        async with db.transaction() as session:
            from carebridge.events.models import OutboxEvent

            rows = await session.scalars(
                select(OutboxEvent).where(OutboxEvent.hospital_id == uuid.UUID(cw.world.hospital_id))
            )
            events = [Event.from_row(r) for r in rows.all()]
            again = await Engine().process(session, events)
        async with db.read() as session:
            n = await session.scalar(select(func.count()).select_from(RuleWarning).where(RuleWarning.rule_code == code))
            traced = await session.scalar(
                select(func.count()).select_from(TracedEvent).where(TracedEvent.id.in_([e.id for e in events]))
            )
        await db.dispose()
        assert len(events) == traced
        return len(again), int(n or 0)

    raised, total = asyncio.run(redeliver())
    assert raised == 0 and total == 1


def test_record_missing_fires_when_the_timer_comes_due(client: httpx.Client, admin_token: str, server) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    regulator = auth(make_regulator(client, admin_token))
    code = add_rule(client, regulator, cw.world, "record_missing", {"hours": 2})["code"]
    ok(
        client.post(
            f"/api/v1/consultations/{cw.consultation_id}/close",
            headers=auth(cw.doctor_token),
            json={"reason": "已完成"},
        )
    )
    wait_for(
        lambda: ok(
            client.get(
                f"{BASE}/events",
                headers=regulator,
                params={"hospital_id": cw.world.hospital_id, "type": "consultation.closed"},
            )
        ),
        lambda es: len(es) == 1,
    )
    from carebridge.supervision.precheck import State

    async def fire() -> int:
        db = Database(server.settings)
        async with db.transaction() as session:
            fired = await State.engine.fire_timers(session)
        await db.dispose()
        return len([w for w in fired if w["rule"] == code])

    assert asyncio.run(fire()) == 0  # not yet due
    clock.shift(timedelta(hours=3))
    assert asyncio.run(fire()) == 1
    assert asyncio.run(fire()) == 0  # fires once
    warnings = ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": code}))
    assert len(warnings) == 1 and warnings[0]["source"] == "timer"
    assert warnings[0]["subject_type"] == "consultation" and warnings[0]["subject_id"] == cw.consultation_id


def test_daily_volume_counts_and_warns_once_when_crossed(client: httpx.Client, admin_token: str) -> None:
    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    regulator = auth(make_regulator(client, admin_token))
    code = add_rule(client, regulator, cw.world, "daily_prescription_volume", {"max_per_day": 1})["code"]
    for _ in range(3):
        assert _sign_amlodipine(client, cw, drugs).status_code == 200
    wait_for(
        lambda: ok(client.get(f"{BASE}/trail/consultation/{cw.consultation_id}", headers=regulator)),
        lambda es: [e["type"] for e in es].count("prescription.signed") == 3,
    )
    warnings = ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": code}))
    assert len(warnings) == 1 and warnings[0]["details"]["count"] == 2
