"""Case handling: assignment, comments, a rectification request the hospital answers, deadlines and escalation,
closing and reopening, who sees what, notifications, the audit trail, and two supervisors acting at once."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from sqlalchemy import select

from carebridge.core import clock
from carebridge.core.audit import AuditRecord
from carebridge.database.engine import Database
from carebridge.supervision import cases
from tests.factories import auth, load_formulary, make_consultation, ok
from tests.test_supervision import BASE, _sign_amlodipine, add_rule, make_regulator, wait_for


def _notes(client: httpx.Client, headers: dict, kind: str, case_id: str) -> list[dict]:
    rows = ok(client.get("/api/v1/notifications", headers=headers, params={"limit": 100}))
    return [n for n in rows if n["kind"] == kind and n["data"].get("case_id") == case_id]


def _run(server, fn):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        db = Database(server.settings)
        try:
            async with db.transaction() as session:
                return await fn(session)
        finally:
            await db.dispose()

    return asyncio.run(go())


def _open_case(client: httpx.Client, admin_token: str):  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    regulator = auth(make_regulator(client, admin_token))
    rule = add_rule(client, regulator, cw.world, "high_value_prescription", {"max_total_fen": 1})
    assert _sign_amlodipine(client, cw, drugs).status_code == 200
    warning = wait_for(
        lambda: ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": rule["code"]})),
        lambda ws: len(ws) == 1,
    )[0]
    return cw, drugs, regulator, rule, warning["case_id"]


def test_a_case_from_warning_to_rectification_answer_escalation_and_close(  # noqa: PLR0915
    client: httpx.Client, admin_token: str, server
) -> None:  # type: ignore[no-untyped-def]
    cw, _, regulator, rule, case_id = _open_case(client, admin_token)
    hospital = auth(cw.world.admin_token)

    # the supervisor sees the new case and was told about it
    listed = ok(client.get(f"{BASE}/cases", headers=regulator, params={"status": "active", "rule": rule["code"]}))
    assert [c["id"] for c in listed] == [case_id]
    detail = ok(client.get(f"{BASE}/cases/{case_id}", headers=regulator))
    assert detail["case"]["status"] == "open" and detail["case"]["warning_count"] == 1
    assert detail["case"]["regulation"] == "R13" and not detail["case"]["overdue"]
    assert [e["kind"] for e in detail["entries"]] == ["opened"]
    assert detail["warnings"][0]["evidence"] and detail["warnings"][0]["case_id"] == case_id
    assert _notes(client, regulator, "supervision_case_opened", case_id)

    # the hospital sees nothing until it is asked to rectify; patients and doctors never
    assert client.get(f"{BASE}/cases/{case_id}", headers=hospital).status_code == 404
    assert ok(client.get(f"{BASE}/cases", headers=hospital)) == []
    assert client.get(f"{BASE}/cases", headers=auth(cw.patient_token)).status_code == 403
    assert client.get(f"{BASE}/cases", headers=auth(cw.doctor_token)).status_code == 403

    # assign to a colleague; a patient's account is not a supervisor
    colleague_token = make_regulator(client, admin_token, region="110105")
    colleague = auth(colleague_token)
    me = ok(client.get("/api/v1/auth/me", headers=colleague))
    choices = ok(client.get(f"{BASE}/supervisors", headers=regulator))
    assert me["id"] in {s["id"] for s in choices}
    patient_me = ok(client.get("/api/v1/auth/me", headers=auth(cw.patient_token)))
    bad = client.post(f"{BASE}/cases/{case_id}/assign", headers=regulator, json={"assignee_user_id": patient_me["id"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_assignee"
    assigned = ok(client.post(f"{BASE}/cases/{case_id}/assign", headers=regulator, json={"assignee_user_id": me["id"]}))
    assert assigned["assignee_user_id"] == me["id"]
    assert _notes(client, colleague, "supervision_case_assigned", case_id)
    assert [c["id"] for c in ok(client.get(f"{BASE}/cases", headers=colleague, params={"assigned_to_me": True}))] == [
        case_id
    ]

    # an internal comment, then the request to rectify
    ok(client.post(f"{BASE}/cases/{case_id}/comments", headers=colleague, json={"text": "内部：先核实处方金额"}))
    unknown = client.post(f"{BASE}/cases/{case_id}/rectification", headers=colleague, json={"text": "x", "days": 2})
    assert unknown.status_code == 422  # unknown field
    sent = ok(
        client.post(
            f"{BASE}/cases/{case_id}/rectification",
            headers=colleague,
            json={"text": "请说明该处方金额并整改", "due_in_days": 2},
        )
    )
    assert sent["status"] == "rectifying" and sent["sent_to_hospital_at"]
    assert _notes(client, hospital, "supervision_rectification", case_id)

    # the hospital now sees the case, without the internal comment, and answers; it cannot decide
    seen = ok(client.get(f"{BASE}/cases/{case_id}", headers=hospital))
    assert [e["kind"] for e in seen["entries"]] == ["rectification_requested"]
    assert seen["warnings"] and [c["id"] for c in ok(client.get(f"{BASE}/cases", headers=hospital))] == [case_id]
    denied = client.post(
        f"{BASE}/cases/{case_id}/close", headers=hospital, json={"outcome": "resolved", "reason": "好的"}
    )
    assert denied.status_code == 403
    answered = ok(client.post(f"{BASE}/cases/{case_id}/answer", headers=hospital, json={"text": "已约谈医生并整改"}))
    assert answered["status"] == "answered"
    again = client.post(f"{BASE}/cases/{case_id}/answer", headers=hospital, json={"text": "again"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "case_status"
    assert _notes(client, colleague, "supervision_case_answered", case_id)

    # asked again with one day; the hospital lets it pass: escalated once, not twice
    ok(
        client.post(
            f"{BASE}/cases/{case_id}/rectification", headers=colleague, json={"text": "请补充材料", "due_in_days": 1}
        )
    )
    clock.shift(timedelta(days=2))
    assert ok(client.get(f"{BASE}/cases/{case_id}", headers=colleague))["case"]["overdue"]
    assert case_id in {c["id"] for c in ok(client.get(f"{BASE}/cases", headers=colleague, params={"overdue": True}))}
    assert _run(server, cases.escalate_overdue) >= 1
    _run(server, cases.escalate_overdue)
    after = ok(client.get(f"{BASE}/cases/{case_id}", headers=colleague))
    assert after["case"]["escalation_level"] == 1 and not after["case"]["overdue"]
    assert [e["kind"] for e in after["entries"]].count("escalated") == 1
    assert _notes(client, hospital, "supervision_case_escalated", case_id)
    assert _notes(client, regulator, "supervision_case_escalated", case_id)  # the province, a level up

    # closed with a reason; closing again is refused; the hospital is told
    closed = ok(
        client.post(
            f"{BASE}/cases/{case_id}/close",
            headers=colleague,
            json={"outcome": "resolved", "reason": "材料齐全，已整改"},
        )
    )
    assert closed["status"] == "resolved" and closed["resolution"] == "材料齐全，已整改" and closed["closed_at"]
    twice = client.post(
        f"{BASE}/cases/{case_id}/close", headers=colleague, json={"outcome": "dismissed", "reason": "x1"}
    )
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "case_status"
    assert _notes(client, hospital, "supervision_case_closed", case_id)
    assert ok(client.get(f"{BASE}/cases/{case_id}", headers=hospital))["entries"][-1]["kind"] == "resolved"

    # reopened; then dismissed
    reopened = ok(client.post(f"{BASE}/cases/{case_id}/reopen", headers=regulator, json={"reason": "发现新问题"}))
    assert reopened["status"] == "open" and reopened["closed_at"] is None
    ok(client.post(f"{BASE}/cases/{case_id}/close", headers=regulator, json={"outcome": "dismissed", "reason": "误报"}))

    # every step audited, by whom
    async def audited(session):  # type: ignore[no-untyped-def]
        rows = await session.scalars(
            select(AuditRecord).where(AuditRecord.subject_type == "supervision_case", AuditRecord.subject_id == case_id)
        )
        return [(r.action, r.actor_role) for r in rows]

    actions = _run(server, audited)
    for action in (
        "supervision.case_assigned",
        "supervision.case_comment",
        "supervision.case_rectification_requested",
        "supervision.case_answered",
        "supervision.case_escalated",
        "supervision.case_resolved",
        "supervision.case_reopened",
        "supervision.case_dismissed",
    ):
        assert action in {a for a, _ in actions}, action
    assert ("supervision.case_answered", "hospital_admin") in actions


def test_reopen_refused_while_a_newer_case_is_open_and_one_of_two_closes_wins(
    client: httpx.Client, admin_token: str
) -> None:
    cw, drugs, regulator, rule, case_id = _open_case(client, admin_token)
    ok(
        client.post(
            f"{BASE}/cases/{case_id}/close", headers=regulator, json={"outcome": "resolved", "reason": "已处理"}
        )
    )
    # a new violation opens a new case (the old one is closed)
    assert _sign_amlodipine(client, cw, drugs).status_code == 200
    warnings = wait_for(
        lambda: ok(client.get(f"{BASE}/warnings", headers=regulator, params={"rule": rule["code"]})),
        lambda ws: len(ws) == 2,
    )
    new_case = warnings[0]["case_id"]
    assert new_case != case_id
    clash = client.post(f"{BASE}/cases/{case_id}/reopen", headers=regulator, json={"reason": "再看看"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "case_already_open"
    assert ok(client.get(f"{BASE}/cases/{case_id}", headers=regulator))["case"]["status"] == "resolved"

    # two supervisors close the new case at the same moment: one wins, the other is told it changed
    def close(outcome: str) -> httpx.Response:
        return client.post(
            f"{BASE}/cases/{new_case}/close", headers=regulator, json={"outcome": outcome, "reason": "同时处理"}
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(close, ["resolved", "dismissed"]))
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409).json()["error"]["code"]
    assert loser in ("case_state_changed", "case_status")
    entries = ok(client.get(f"{BASE}/cases/{new_case}", headers=regulator))["entries"]
    assert [e["kind"] for e in entries].count("resolved") + [e["kind"] for e in entries].count("dismissed") == 1

    # bad ids and a regulator elsewhere
    assert client.get(f"{BASE}/cases/{uuid.uuid4()}", headers=regulator).status_code == 404
    assert client.get(f"{BASE}/cases/not-a-uuid", headers=regulator).status_code == 422
    far = auth(make_regulator(client, admin_token, region="310000"))
    assert client.get(f"{BASE}/cases/{new_case}", headers=far).status_code == 404
