"""Records, formulary, prescriptions, pharmacist review and delivery through real HTTP."""

from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import timedelta

import httpx
from sqlalchemy import text

from carebridge.core import clock
from carebridge.database.engine import Database
from tests.factories import (
    PASSWORD,
    auth,
    demo_formulary_csv,
    load_formulary,
    login,
    make_consultation,
    make_doctor,
    make_hospital,
    make_patient,
    make_staff,
    ok,
    stored_uuid,
)


def _sql(server, sql: str, **params: object) -> list:  # type: ignore[no-untyped-def]
    async def run() -> list:
        db = Database(server.settings)
        async with db.transaction() as session:
            result = await session.execute(text(sql), params)
            rows = list(result.all()) if result.returns_rows else []
        await db.dispose()
        return rows

    return asyncio.run(run())


def _events(server, subject_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    rows = _sql(server, "SELECT type FROM outbox WHERE subject_id = :s ORDER BY occurred_at, id", s=subject_id)
    return [r[0] for r in rows]


def _item(drug: dict, dose: float, frequency: str = "qd", days: int = 7, quantity: int = 1) -> dict:
    return {
        "drug_id": drug["id"],
        "dose": dose,
        "frequency": frequency,
        "route": "oral",
        "days": days,
        "quantity": quantity,
    }


# --- records -----------------------------------------------------------------------------------------------


def test_record_is_signed_immutable_amended_and_quality_checked(client: httpx.Client, admin_token: str, server) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    url = f"/api/v1/consultations/{cw.consultation_id}/record"
    draft = {"chief_complaint": "头晕一周", "present_illness": "血压 160/100", "diagnoses": ["I10"], "allergies": "无"}
    # the patient cannot write it; bad codes and unknown fields are refused
    assert client.put(url, headers=auth(cw.patient_token), json=draft).status_code == 403
    bad = client.put(url, headers=auth(cw.doctor_token), json={**draft, "diagnoses": ["XYZ.1"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_icd10_code"
    assert client.put(url, headers=auth(cw.doctor_token), json={**draft, "mood": "ok"}).status_code == 422
    v1 = ok(client.put(url, headers=auth(cw.doctor_token), json=draft))
    assert v1["status"] == "draft" and v1["version"] == 1 and v1["diagnoses"][0]["title"]
    # signing needs the doctor's own password
    wrong = client.post(f"{url}/sign", headers=auth(cw.doctor_token), json={"password": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "reauthentication_failed"
    signed = ok(client.post(f"{url}/sign", headers=auth(cw.doctor_token), json={"password": PASSWORD}))
    assert signed["status"] == "signed" and signed["integrity"] == "verified" and len(signed["content_sha256"]) == 64
    # quality control ran: no past history, no advice, I10 is fine as a leaf code
    defects = {d["code"] for d in signed["quality"]["defects"]}
    assert defects == {"missing_past_history", "missing_advice"}
    assert signed["quality"]["score"] == 100 - 5 - 5
    # a signed record does not change; a new version with a reason does
    again = client.put(url, headers=auth(cw.doctor_token), json={**draft, "advice": "低盐饮食"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "record_signed"
    full = {**draft, "past_history": "无", "advice": "低盐饮食，两周后复诊", "amend_reason": "补充医嘱"}
    v2 = ok(client.put(url, headers=auth(cw.doctor_token), json=full))
    assert v2["version"] == 2 and v2["status"] == "draft"
    v2 = ok(client.post(f"{url}/sign", headers=auth(cw.doctor_token), json={"password": PASSWORD}))
    assert v2["quality"]["defect_count"] == 0 and v2["quality"]["status"] == "clean"
    versions = ok(client.get(url, headers=auth(cw.patient_token)))
    assert [v["version"] for v in versions] == [1, 2]
    assert [e for e in _events(server, versions[0]["id"]) if e.startswith("record.")] == [
        "record.signed",
        "record.qc_scored",
    ]
    assert "record.amended" in _events(server, v2["id"])
    # health data is sealed at rest, and tampering with a signed version shows
    assert _sql(server, "SELECT count(*) FROM medical_records WHERE chief_complaint LIKE '%头晕%'")[0][0] == 0
    _sql(
        server,
        "UPDATE medical_records SET diagnoses = :d WHERE id = :i",
        d='[{"code": "E11.9", "title": "x"}]',
        i=stored_uuid(server, versions[0]["id"]),
    )
    versions = ok(client.get(url, headers=auth(cw.doctor_token)))
    assert versions[0]["integrity"] == "tampered" and versions[1]["integrity"] == "verified"
    # the hospital admin's QC list: v1 was superseded by v2, so nothing is open; metrics count v2 only
    qc = ok(client.get(f"/api/v1/hospitals/{cw.world.hospital_id}/record-qc", headers=auth(cw.world.admin_token)))
    assert qc["total"] == 0
    metrics = ok(
        client.get(f"/api/v1/hospitals/{cw.world.hospital_id}/record-qc/metrics", headers=auth(cw.world.admin_token))
    )
    assert metrics["records"] == 1 and metrics["defects_per_record"] == 0
    other = make_hospital(client, admin_token)
    denied = client.get(f"/api/v1/hospitals/{cw.world.hospital_id}/record-qc", headers=auth(other.admin_token))
    assert denied.status_code == 403
    assert client.get(url, headers=auth(other.admin_token)).status_code == 404


def test_late_record_is_a_defect_on_the_qc_list(client: httpx.Client, admin_token: str) -> None:
    cw = make_consultation(client, admin_token)
    url = f"/api/v1/consultations/{cw.consultation_id}/record"
    ok(client.put(url, headers=auth(cw.doctor_token), json={"chief_complaint": "复诊", "diagnoses": ["E11"]}))
    ok(
        client.post(
            f"/api/v1/consultations/{cw.consultation_id}/close", headers=auth(cw.doctor_token), json={"reason": "done"}
        )
    )
    clock.shift(timedelta(hours=25))
    signed = ok(client.post(f"{url}/sign", headers=auth(cw.doctor_token), json={"password": PASSWORD}))
    codes = {d["code"]: d for d in signed["quality"]["defects"]}
    assert codes["late_signature"]["rule"] == "R15" and codes["late_signature"]["details"]["hours"] >= 25
    assert "unspecific_diagnosis_code" in codes  # E11 is a category: E11.9 and friends exist
    qc = ok(client.get(f"/api/v1/hospitals/{cw.world.hospital_id}/record-qc", headers=auth(cw.world.admin_token)))
    assert qc["total"] == 1 and qc["items"][0]["record_id"] == signed["id"]
    resolved = ok(
        client.post(
            f"/api/v1/record-qc/{qc['items'][0]['id']}/resolve",
            headers=auth(cw.world.admin_token),
            json={"note": "已约谈医生"},
        )
    )
    assert resolved["status"] == "resolved"
    again = client.post(
        f"/api/v1/record-qc/{qc['items'][0]['id']}/resolve", headers=auth(cw.world.admin_token), json={"note": "x2"}
    )
    assert again.status_code == 409
    metrics = ok(
        client.get(f"/api/v1/hospitals/{cw.world.hospital_id}/record-qc/metrics", headers=auth(cw.world.admin_token))
    )
    doctor = metrics["doctors"][0]
    assert doctor["records"] == 1 and doctor["defects"] == len(codes) and doctor["defects_per_record"] == len(codes)


# --- formulary ---------------------------------------------------------------------------------------------


def test_formulary_import_reports_every_bad_line_and_writes_nothing(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    url = f"/api/v1/hospitals/{world.hospital_id}/formulary/import"
    headers = {**auth(world.admin_token), "Content-Type": "text/csv"}
    lines = demo_formulary_csv().strip().splitlines()
    header, first, second = lines[0], lines[1], lines[2]
    cells = first.split(",")
    cells[header.split(",").index("price_fen")] = "12.5"
    broken = second.split(",")
    broken[header.split(",").index("atc_code")] = "XX"
    body = "\n".join([header, ",".join(cells), ",".join(broken), lines[3], lines[3]])
    r = client.post(url, headers=headers, content=body.encode())
    assert r.status_code == 422 and r.json()["error"]["code"] == "formulary_import_invalid"
    errors = r.json()["error"]["details"]["errors"]
    assert {(e["line"], e["column"]) for e in errors} == {(2, "price_fen"), (3, "atc_code"), (5, "code")}
    page = ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/formulary", headers=auth(world.admin_token)))
    assert page["total"] == 0
    # the wrong media type, a missing column, a patient
    assert client.post(url, headers=auth(world.admin_token), json={"a": 1}).status_code == 422
    missing = client.post(url, headers=headers, content=b"code,generic_name\nA1,x\n")
    assert missing.json()["error"]["details"]["errors"][0]["code"] == "missing_columns"
    # a dry run reports without writing; the real import creates, a second one finds nothing changed
    dry = ok(client.post(f"{url}?dry_run=true", headers=headers, content=demo_formulary_csv().encode()))
    assert dry["created"] == len(lines) - 1 and dry["dry_run"]
    assert (
        ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/formulary", headers=auth(world.admin_token)))["total"]
        == 0
    )
    done = ok(client.post(url, headers=headers, content=demo_formulary_csv().encode()))
    assert done["created"] == len(lines) - 1 and done["errors"] == []
    assert ok(client.post(url, headers=headers, content=demo_formulary_csv().encode()))["unchanged"] == len(lines) - 1
    other = make_hospital(client, admin_token)
    assert (
        client.post(
            url, headers={**auth(other.admin_token), "Content-Type": "text/csv"}, content=body.encode()
        ).status_code
        == 403
    )
    assert (
        client.get(f"/api/v1/hospitals/{world.hospital_id}/formulary", headers=auth(other.admin_token)).status_code
        == 403
    )


# --- prescriptions -----------------------------------------------------------------------------------------


def test_prescribe_block_warn_sign_review_deliver(client: httpx.Client, admin_token: str, server) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    doctor, patient = auth(cw.doctor_token), auth(cw.patient_token)
    base = f"/api/v1/consultations/{cw.consultation_id}/prescriptions"
    special = next(d for d in drugs.values() if d["special_control"])
    # a special-control drug: the live check and the saved draft both block; signing is refused
    body = {"diagnoses": ["I10"], "items": [_item(special, dose=10)]}
    live = ok(client.post(f"{base}/check", headers=doctor, json=body))
    assert not live["can_sign"] and live["findings"][0]["rule"] == "R9"
    blocked = ok(client.post(base, headers=doctor, json=body), 201)
    assert blocked["status"] == "draft" and not blocked["can_sign"]
    r = client.post(f"/api/v1/prescriptions/{blocked['id']}/sign", headers=doctor, json={"password": PASSWORD})
    assert r.status_code == 409 and r.json()["error"]["code"] == "prescription_blocked"
    assert r.json()["error"]["details"]["rules"] == ["R9"]
    ok(client.post(f"/api/v1/prescriptions/{blocked['id']}/cancel", headers=doctor, json={"reason": "换药"}))
    # bad input: unknown field, wrong type, unknown frequency, a drug of another hospital
    assert client.post(base, headers=doctor, json={**body, "extra": 1}).status_code == 422
    assert (
        client.post(
            base, headers=doctor, json={"diagnoses": ["I10"], "items": [{**_item(drugs["amlodipine"], 5), "dose": "5"}]}
        ).status_code
        == 422
    )
    r = client.post(
        base,
        headers=doctor,
        json={"diagnoses": ["I10"], "items": [_item(drugs["amlodipine"], 5, frequency="often")]},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_frequency"
    other = make_hospital(client, admin_token)
    other_drugs = load_formulary(client, other)
    r = client.post(base, headers=doctor, json={"diagnoses": ["I10"], "items": [_item(other_drugs["amlodipine"], 5)]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "drug_not_in_formulary"
    # a passing prescription with one warning: amlodipine for 4 weeks (I10 is chronic: a long prescription)
    # plus a pair the knowledge base rates moderate
    warn_pair = _moderate_pair(drugs)
    items = [_item(drugs["amlodipine"], 5, days=28, quantity=2)] + [_item(drugs[s], d) for s, d in warn_pair]
    rx = ok(client.post(base, headers=doctor, json={"diagnoses": ["I10"], "items": items}), 201)
    assert rx["can_sign"] and rx["long_term"] and rx["overrides_needed"]
    url = f"/api/v1/prescriptions/{rx['id']}"
    r = client.post(f"{url}/sign", headers=doctor, json={"password": PASSWORD})
    assert r.status_code == 422 and r.json()["error"]["code"] == "override_required"
    r = client.post(f"{url}/sign", headers=doctor, json={"password": PASSWORD, "overrides": {"nonsense:9": "x"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_override"
    overrides = {k: "已告知患者，监测" for k in rx["overrides_needed"]}
    signed = ok(client.post(f"{url}/sign", headers=doctor, json={"password": PASSWORD, "overrides": overrides}))
    assert signed["status"] == "pending_review" and signed["integrity"] == "verified"
    assert [o["reason"] for o in signed["overrides"]] == list(overrides.values())
    # the pharmacist of another hospital does not see it; this hospital's does
    other_pharmacist = make_staff(client, other)
    assert client.post(f"{url}/approve", headers=auth(other_pharmacist), json={}).status_code == 404
    pharmacist = auth(make_staff(client, cw.world))
    queue = ok(client.get("/api/v1/pharmacy/review-queue", headers=pharmacist))
    assert [p["id"] for p in queue] == [rx["id"]]
    assert client.post(f"{url}/approve", headers=doctor, json={}).status_code == 403
    # rejected, revised (a new revision), signed again, approved
    ok(client.post(f"{url}/reject", headers=pharmacist, json={"reason": "请注明用法"}))
    revised = ok(client.put(url, headers=doctor, json={"diagnoses": ["I10"], "items": items}))
    assert revised["status"] == "draft" and revised["revision"] == 2
    ok(client.post(f"{url}/sign", headers=doctor, json={"password": PASSWORD, "overrides": overrides}))
    approved = ok(client.post(f"{url}/approve", headers=pharmacist, json={"note": "合理"}))
    assert approved["status"] == "approved"
    # delivery: the patient asks, the pharmacy dispenses, ships, hands over with the patient's code
    address = {"recipient_name": "张小明", "recipient_phone": "13900001111", "address": "北京市朝阳区某某路1号"}
    order = ok(client.post(f"{url}/delivery", headers=patient, json=address), 201)
    assert order["handover_code"] and not order["masked"]
    assert client.post(f"{url}/delivery", headers=patient, json=address).status_code == 409
    oid = order["id"]
    ok(client.post(f"/api/v1/delivery-orders/{oid}/dispense", headers=pharmacist))
    assert client.post(f"/api/v1/delivery-orders/{oid}/dispense", headers=pharmacist).status_code == 409
    assert ok(client.get(url, headers=doctor))["status"] == "dispensed"
    ship = {"carrier": "顺丰", "tracking_number": "SF1234567890"}
    ok(client.post(f"/api/v1/delivery-orders/{oid}/ship", headers=pharmacist, json=ship))
    wrong = client.post(
        f"/api/v1/delivery-orders/{oid}/deliver",
        headers=pharmacist,
        json={"handover_code": "000000" if order["handover_code"] != "000000" else "111111"},
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "wrong_handover_code"
    done = ok(
        client.post(
            f"/api/v1/delivery-orders/{oid}/deliver", headers=pharmacist, json={"handover_code": order["handover_code"]}
        )
    )
    assert done["status"] == "delivered" and done["handover_code"] is None
    # the address is sealed at rest and masked to the hospital's admin
    assert _sql(server, "SELECT count(*) FROM delivery_orders WHERE address LIKE '%朝阳%'")[0][0] == 0
    seen = ok(client.get(f"/api/v1/delivery-orders/{oid}", headers=auth(cw.world.admin_token)))
    assert seen["masked"] and "某某路" not in seen["address"] and seen["recipient_phone"] != "13900001111"
    events = _events(server, rx["id"])
    for expected in ("prescription.checked", "prescription.signed", "prescription.rejected", "prescription.approved"):
        assert expected in events
    assert _events(server, oid) == ["delivery.created", "delivery.dispensed", "delivery.shipped", "delivery.delivered"]


def _moderate_pair(drugs: dict[str, dict]) -> list[tuple[str, float]]:
    """Two formulary drugs the knowledge base says interact moderately, with doses inside their ranges."""
    from carebridge.prescribing import knowledge

    kb = knowledge.current()
    names = [s for s in drugs if not drugs[s]["special_control"] and s != "amlodipine"]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            hit = kb.interaction(kb.refs(a, drugs[a]["atc_code"]), kb.refs(b, drugs[b]["atc_code"]))
            shared = kb.refs(a, drugs[a]["atc_code"]) & kb.refs(b, drugs[b]["atc_code"])
            if hit is not None and hit.severity == "moderate" and not shared:
                dose = lambda s: drugs[s]["usual_daily_dose"] or 1  # noqa: E731
                return [(a, dose(a)), (b, dose(b))]
    raise AssertionError("the demo formulary has no moderately interacting pair")


def test_prescription_expires_and_cannot_be_approved_or_dispensed(client: httpx.Client, admin_token: str) -> None:
    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    doctor = auth(cw.doctor_token)
    body = {"diagnoses": ["I10"], "items": [_item(drugs["amlodipine"], 5)]}
    rx = ok(client.post(f"/api/v1/consultations/{cw.consultation_id}/prescriptions", headers=doctor, json=body), 201)
    ok(client.post(f"/api/v1/prescriptions/{rx['id']}/sign", headers=doctor, json={"password": PASSWORD}))
    clock.shift(timedelta(days=3, minutes=1))
    pharmacist = auth(make_staff(client, cw.world))
    r = client.post(f"/api/v1/prescriptions/{rx['id']}/approve", headers=pharmacist, json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "prescription_expired"
    assert ok(client.post("/api/v1/ops/sweep", headers=auth(admin_token)))["prescriptions_expired"] >= 1
    assert ok(client.get(f"/api/v1/prescriptions/{rx['id']}", headers=doctor))["status"] == "expired"


def test_two_pharmacists_review_at_once_one_wins(client: httpx.Client, admin_token: str, server) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    doctor = auth(cw.doctor_token)
    body = {"diagnoses": ["I10"], "items": [_item(drugs["amlodipine"], 5)]}
    rx = ok(client.post(f"/api/v1/consultations/{cw.consultation_id}/prescriptions", headers=doctor, json=body), 201)
    ok(client.post(f"/api/v1/prescriptions/{rx['id']}/sign", headers=doctor, json={"password": PASSWORD}))
    tokens = [make_staff(client, cw.world) for _ in range(4)]

    def review(n: int) -> int:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            action = "approve" if n % 2 == 0 else "reject"
            payload = {} if action == "approve" else {"reason": "剂量不合理"}
            return c.post(
                f"/api/v1/prescriptions/{rx['id']}/{action}", headers=auth(tokens[n]), json=payload
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(review, range(4)))
    assert statuses == [200, 409, 409, 409]
    reviewed = [e for e in _events(server, rx["id"]) if e in ("prescription.approved", "prescription.rejected")]
    assert len(reviewed) == 1


def test_prescribing_scope_and_state(client: httpx.Client, admin_token: str) -> None:
    cw = make_consultation(client, admin_token, practitioners=2)
    drugs = load_formulary(client, cw.world)
    body = {"diagnoses": ["I10"], "items": [_item(drugs["amlodipine"], 5)]}
    # another doctor of the same hospital cannot write in this consultation
    colleague = login(client, make_doctor(client, cw.world, cw.world.extra_practitioners[0]))
    r = client.post(f"/api/v1/consultations/{cw.consultation_id}/prescriptions", headers=auth(colleague), json=body)
    assert r.status_code == 404
    # a patient cannot prescribe; a closed consultation takes no prescription
    r = client.post(
        f"/api/v1/consultations/{cw.consultation_id}/prescriptions", headers=auth(cw.patient_token), json=body
    )
    assert r.status_code == 403
    ok(
        client.post(
            f"/api/v1/consultations/{cw.consultation_id}/close", headers=auth(cw.doctor_token), json={"reason": "ok"}
        )
    )
    r = client.post(
        f"/api/v1/consultations/{cw.consultation_id}/prescriptions", headers=auth(cw.doctor_token), json=body
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "consultation_not_in_progress"


def test_follow_up_reminder_notifies_the_patient(client: httpx.Client, admin_token: str) -> None:
    cw = make_consultation(client, admin_token)
    url = f"/api/v1/consultations/{cw.consultation_id}/follow-ups"
    today = clock.local_today("Asia/Shanghai")
    r = client.post(url, headers=auth(cw.doctor_token), json={"due_on": today.isoformat()})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_follow_up_date"
    due = (today + timedelta(days=14)).isoformat()
    f = ok(client.post(url, headers=auth(cw.doctor_token), json={"due_on": due, "note": "复查血压"}), 201)
    assert f["status"] == "scheduled"
    ok(client.post("/api/v1/ops/sweep", headers=auth(admin_token)))
    assert ok(client.get(url, headers=auth(cw.patient_token)))[0]["status"] == "scheduled"
    clock.shift(timedelta(days=15))
    assert ok(client.post("/api/v1/ops/sweep", headers=auth(admin_token)))["follow_ups_reminded"] >= 1
    notes = ok(client.get("/api/v1/notifications", headers=auth(cw.patient_token)))
    assert any(n["kind"] == "follow_up.due" for n in notes)
    assert ok(client.get(url, headers=auth(cw.patient_token)))[0]["status"] == "notified"


def test_offline_diagnosis_document(client: httpx.Client, admin_token: str) -> None:
    cw = make_consultation(client, admin_token, practitioners=2)
    dx = ok(client.get(f"/api/v1/consultations/{cw.consultation_id}", headers=auth(cw.patient_token)))[
        "offline_diagnosis_id"
    ]
    url = f"/api/v1/patients/{cw.patient_id}/offline-diagnoses/{dx}/document"
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    r = client.post(url, headers=auth(cw.patient_token), files={"file": ("letter.txt", b"hello", "text/plain")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unsupported_file_type"
    out = ok(client.post(url, headers=auth(cw.patient_token), files={"file": ("出院小结.pdf", pdf, "application/pdf")}))
    assert out["document"]["content_type"] == "application/pdf"
    read = client.get(f"/api/v1/offline-diagnoses/{dx}/document", headers=auth(cw.doctor_token))
    assert read.status_code == 200 and read.content == pdf
    colleague = login(client, make_doctor(client, cw.world, cw.world.extra_practitioners[0]))
    assert client.get(f"/api/v1/offline-diagnoses/{dx}/document", headers=auth(colleague)).status_code == 404
    stranger, _, _ = make_patient(client)
    r = client.post(url, headers=auth(stranger), files={"file": ("a.pdf", pdf, "application/pdf")})
    assert r.status_code == 404


def test_password_guessing_through_signing_is_throttled(client: httpx.Client, admin_token: str) -> None:
    cw = make_consultation(client, admin_token)
    url = f"/api/v1/consultations/{cw.consultation_id}/record"
    ok(client.put(url, headers=auth(cw.doctor_token), json={"chief_complaint": "复诊", "diagnoses": ["I10"]}))
    codes = [
        client.post(f"{url}/sign", headers=auth(cw.doctor_token), json={"password": f"guess{n}"}).status_code
        for n in range(6)
    ]
    assert codes == [401] * 5 + [429]
    # even the right password waits now: the draft stays unsigned
    r = client.post(f"{url}/sign", headers=auth(cw.doctor_token), json={"password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "login_throttled"
    assert ok(client.get(url, headers=auth(cw.doctor_token)))[0]["status"] == "draft"
