"""Daily indicators, anomaly rules over them, and patients' ratings and complaints (a complaint opens a case).

The anomaly test reports eleven days of a made-up year (2021) through the engine, so no other test's events
fall on those days; the peer comparison is among that test's own six hospitals of a level no demo hospital has.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
from sqlalchemy import select

from carebridge.core.audit import AuditRecord
from carebridge.core.ids import new_id
from carebridge.database.engine import Database
from carebridge.events.outbox import Event
from carebridge.supervision.engine import Engine
from tests.factories import auth, make_consultation, make_patient, ok, unique
from tests.test_supervision import BASE, make_regulator, wait_for
from tests.test_supervision_cases import _run

FIRST = date(2021, 3, 1)
DAYS = 11  # ten usual days, then the day that stands out
LEVEL = "tertiary"


def _event(type_: str, day: date, hospital: uuid.UUID, subject: tuple[str, str], data: dict) -> Event:
    moment = datetime(day.year, day.month, day.day, 3, random.randint(0, 59), tzinfo=UTC)  # 11:xx in Shanghai
    return Event(
        id=new_id(),
        type=type_,
        occurred_at=moment,
        hospital_id=hospital,
        region="110105",
        actor="test",
        subject_type=subject[0],
        subject_id=subject[1],
        data={k: str(v) if isinstance(v, uuid.UUID) else v for k, v in data.items()},
    )


def _history(hospitals: list[uuid.UUID], doctors: list[uuid.UUID], region: str) -> list[Event]:
    """Each hospital: 20 prescriptions checked a day, 2 of them with an antibiotic; its doctor 10-13
    consultations a day. On the last day hospital 0 tries antibiotics in 18 of 20 and doctor 1 takes 60."""
    rng = random.Random(7)
    events = [
        _event(
            "hospital.registered",
            FIRST,
            h,
            ("hospital", str(h)),
            {
                "hospital_id": h,
                "name": f"测试医院{i}",
                "region_code": region,
                "level": LEVEL,
                "is_internet_hospital": True,
                "licence_expires_on": "2030-01-01",
                "licence_verified_on": "2021-01-01",
            },
        )
        for i, h in enumerate(hospitals)
    ]
    for d in range(DAYS):
        day = FIRST + timedelta(days=d)
        last = d == DAYS - 1
        for i, (h, doctor) in enumerate(zip(hospitals, doctors, strict=True)):
            antibiotic = 18 if last and i == 0 else 2
            for n in range(20):
                rx = new_id()
                item = {"drug_code": "X", "antibiotic_grade": "restricted" if n < antibiotic else None}
                data = {"prescription_id": rx, "practitioner_id": doctor, "items": [item], "blocks": []}
                events.append(_event("prescription.checked", day, h, ("prescription", str(rx)), data))
            for _ in range(60 if last and i == 1 else rng.randint(10, 13)):
                c = new_id()
                data = {"consultation_id": c, "practitioner_id": doctor, "patient_id": new_id()}
                events.append(_event("consultation.accepted", day, h, ("consultation", str(c)), data))
    return events


def test_daily_indicators_and_anomalies_raise_warnings_and_cases(
    client: httpx.Client, admin_token: str, server
) -> None:  # type: ignore[no-untyped-def]
    region = "110105"
    regulator = auth(make_regulator(client, admin_token))
    hospitals = [new_id() for _ in range(6)]
    doctors = [new_id() for _ in range(6)]
    # a regulator's own anomaly rule, scoped to the district: consultations against the doctor's own history
    bad = {
        "code": unique("own"),
        "rule_type": "anomaly_own_history",
        "params": {"metric": "nope"},
        "severity": "warning",
    }
    assert client.post(f"{BASE}/rules", headers=regulator, json=bad).json()["error"]["code"] == "invalid_params"
    own = ok(
        client.post(
            f"{BASE}/rules",
            headers=regulator,
            json={
                "code": unique("own"),
                "rule_type": "anomaly_own_history",
                "params": {"metric": "consultations", "min_base": 10, "z": 4},
                "severity": "warning",
                "scope_kind": "region",
                "scope_value": region,
            },
        ),
        201,
    )
    assert own["group_by"] == "practitioner"

    async def report() -> None:
        db = Database(server.settings)
        async with db.transaction() as session:
            await Engine().process(session, _history(hospitals, doctors, region))
        await db.dispose()

    asyncio.run(report())
    results = [
        ok(client.post(f"{BASE}/indicators/compute", headers=regulator, json={"day": str(FIRST + timedelta(days=d))}))
        for d in range(DAYS)
    ]
    assert all(r["complete"] and r["rows"] >= 12 for r in results)
    assert all(r["anomalies"] == 0 for r in results[:-1]), results
    assert results[-1]["anomalies"] >= 2, results[-1]

    last = str(FIRST + timedelta(days=DAYS - 1))
    series = ok(
        client.get(
            f"{BASE}/indicators",
            headers=regulator,
            params={"kind": "hospital", "hospital_id": str(hospitals[0]), "since": str(FIRST), "until": last},
        )
    )
    assert [r["day"] for r in series] == [str(FIRST + timedelta(days=d)) for d in range(DAYS)]
    assert series[-1]["metrics"]["prescriptions_checked"] == 20 and series[-1]["metrics"]["antibiotic_rate"] == 0.9
    doctor = ok(
        client.get(
            f"{BASE}/indicators",
            headers=regulator,
            params={"kind": "practitioner", "subject_id": str(doctors[1]), "since": last, "until": last},
        )
    )
    assert doctor[0]["metrics"]["consultations"] == 60 and doctor[0]["hospital_id"] == str(hospitals[1])

    # the default peer rule (A3) found hospital 0; the district's own rule found doctor 1
    peer = ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": "A3-antibiotic-rate-peers"}))
    mine = [w for w in peer if w["hospital_id"] == str(hospitals[0])]
    assert len(mine) == 1 and mine[0]["details"]["compared_with"] == f"peer_hospitals:{LEVEL}"
    assert mine[0]["details"]["value"] == 0.9 and mine[0]["details"]["z"] >= 3.5 and mine[0]["case_id"]
    assert not [w for w in peer if w["hospital_id"] in {str(h) for h in hospitals[1:]}]
    found = ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": own["code"]}))
    assert [(w["subject_type"], w["subject_id"], w["source"]) for w in found] == [
        ("practitioner", str(doctors[1]), "anomaly")
    ]
    assert found[0]["details"]["sample_size"] == DAYS - 1 and found[0]["details"]["value"] == 60
    case = ok(client.get(f"{BASE}/cases/{mine[0]['case_id']}", headers=regulator))["case"]
    assert case["source"] == "anomaly" and case["subject_type"] == "hospital"

    # computing the day again changes nothing
    again = ok(client.post(f"{BASE}/indicators/compute", headers=regulator, json={"day": last}))
    assert again["anomalies"] == 0 and again["rows"] == results[-1]["rows"]
    assert len(ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": own["code"]}))) == 1

    totals = ok(client.get(f"{BASE}/indicators/daily", headers=regulator, params={"since": str(FIRST), "until": last}))
    assert len(totals) == DAYS and totals[-1]["complete"] and totals[-1]["metrics"]["prescriptions_checked"] >= 120
    # every hospital of the region with a warning (the suite's other tests make more than the default 100)
    everyone = {"since": "2000-01-01T00:00:00Z", "limit": 1000}
    ranked = ok(client.get(f"{BASE}/ranking", headers=regulator, params=everyone))
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    assert [r["warnings"] for r in ranked] == sorted((r["warnings"] for r in ranked), reverse=True)
    assert str(hospitals[0]) in {r["hospital_id"] for r in ranked}

    # bad input
    tomorrow = str(date.today() + timedelta(days=3))
    assert client.post(f"{BASE}/indicators/compute", headers=regulator, json={"day": tomorrow}).status_code == 422
    assert client.post(f"{BASE}/indicators/compute", headers=regulator, json={"day": "x"}).status_code == 422
    wrong = client.get(f"{BASE}/indicators", headers=regulator, params={"since": last, "until": str(FIRST)})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_range"
    assert client.get(f"{BASE}/indicators", headers=regulator, params={"kind": "patient"}).status_code == 422


def test_ratings_and_complaints(client: httpx.Client, admin_token: str, server) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    patient, doctor = auth(cw.patient_token), auth(cw.doctor_token)
    url = f"/api/v1/consultations/{cw.consultation_id}"
    early = client.post(f"{url}/rating", headers=patient, json={"stars": 5})
    assert early.status_code == 409 and early.json()["error"]["code"] == "consultation_not_finished"
    ok(client.post(f"{url}/close", headers=doctor, json={"reason": "已完成"}))
    for body in ({"stars": 6}, {"stars": "5"}, {"stars": 4, "tags": ["nope"]}, {"stars": 4, "extra": 1}):
        assert client.post(f"{url}/rating", headers=patient, json=body).status_code == 422, body
    assert client.post(f"{url}/rating", headers=doctor, json={"stars": 5}).status_code == 403
    rated = ok(
        client.post(
            f"{url}/rating", headers=patient, json={"stars": 2, "tags": ["slow_reply", "rushed"], "comment": "回复太慢"}
        ),
        201,
    )
    assert rated["tags"] == ["rushed", "slow_reply"]
    twice = client.post(f"{url}/rating", headers=patient, json={"stars": 5})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_rated"
    assert ok(client.get(f"{url}/rating", headers=doctor))["stars"] == 2
    stranger, _, _ = make_patient(client)
    assert client.get(f"{url}/rating", headers=auth(stranger)).status_code == 404
    assert (
        client.post(
            f"{url}/complaints", headers=auth(stranger), json={"category": "other", "text": "不相关的投诉"}
        ).status_code
        == 404
    )

    # a complaint opens a case for the regulator, who reads its words (audited); the event does not carry them
    regulator = auth(make_regulator(client, admin_token))
    assert (
        client.post(
            f"{url}/complaints", headers=patient, json={"category": "rude", "text": "态度很差的医生"}
        ).status_code
        == 422
    )
    filed = ok(
        client.post(
            f"{url}/complaints", headers=patient, json={"category": "attitude", "text": "医生回复敷衍，态度很差"}
        ),
        201,
    )
    assert filed["number"].startswith("TS")
    assert [c["id"] for c in ok(client.get("/api/v1/complaints", headers=patient))] == [filed["id"]]
    cases = wait_for(
        lambda: ok(
            client.get(
                f"{BASE}/cases", headers=regulator, params={"rule": "C1-complaint", "hospital_id": cw.world.hospital_id}
            )
        ),
        lambda cs: len(cs) == 1,
    )
    assert cases[0]["source"] == "complaint" and cases[0]["subject_id"] == filed["id"]
    trail = ok(client.get(f"{BASE}/trail/consultation/{cw.consultation_id}", headers=regulator))
    assert "consultation.rated" in [e["type"] for e in trail]
    traced = ok(
        client.get(
            f"{BASE}/events", headers=regulator, params={"type": "complaint.filed", "hospital_id": cw.world.hospital_id}
        )
    )
    assert len(traced) == 1 and "text" not in traced[0]["data"] and traced[0]["data"]["category"] == "attitude"
    words = ok(client.get(f"/api/v1/complaints/{filed['id']}", headers=regulator))
    assert words["text"] == "医生回复敷衍，态度很差"
    assert client.get(f"/api/v1/complaints/{filed['id']}", headers=doctor).status_code == 404
    hospital_admin = auth(cw.world.admin_token)
    assert ok(client.get(f"/api/v1/complaints/{filed['id']}", headers=hospital_admin))["category"] == "attitude"

    async def audited(session):  # type: ignore[no-untyped-def]
        rows = await session.scalars(
            select(AuditRecord).where(AuditRecord.subject_type == "complaint", AuditRecord.subject_id == filed["id"])
        )
        return sorted((r.action, r.actor_role) for r in rows)

    assert _run(server, audited) == [("complaint.read", "hospital_admin"), ("complaint.read", "regulator")]
    for _ in range(2):
        ok(
            client.post(f"{url}/complaints", headers=patient, json={"category": "other", "text": "再次投诉这个问题"}),
            201,
        )
    limit = client.post(f"{url}/complaints", headers=patient, json={"category": "other", "text": "第四次投诉"})
    assert limit.status_code == 409 and limit.json()["error"]["code"] == "complaint_limit"


def test_warning_stream_sends_new_warnings_live(client: httpx.Client, admin_token: str, server) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    regulator = auth(make_regulator(client, admin_token))
    assert client.get(f"{BASE}/warnings/stream", headers=auth(cw.patient_token)).status_code == 403
    url = f"/api/v1/consultations/{cw.consultation_id}/complaints"
    with httpx.Client(base_url=str(client.base_url), timeout=20) as streamer:
        with streamer.stream("GET", f"{BASE}/warnings/stream", headers=regulator) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert next(lines) == ": connected"
            filed = ok(
                client.post(url, headers=auth(cw.patient_token), json={"category": "fees", "text": "收费项目不明确"}),
                201,
            )
            got: list[dict] = []
            deadline = time.monotonic() + 15
            for line in lines:
                assert time.monotonic() < deadline, f"no warning for the complaint in 15 s; got {got}"
                if line.startswith("data: "):
                    got.extend(json.loads(line[6:]))
                    if any(w["subject_id"] == filed["id"] for w in got):
                        break
            mine = [w for w in got if w["subject_id"] == filed["id"]]
            assert len(mine) == 1 and mine[0]["rule_code"] == "C1-complaint" and mine[0]["source"] == "complaint"
