"""A whole online consultation through the pages, in real browsers: a patient (phone) and a doctor (desktop) in
two contexts, then a pharmacist and the hospital admin.

request -> accept -> start -> chat both ways -> record signed -> one prescription blocked (special-control
drug), one passing -> pharmacist approval -> delivery requested by the patient -> dispensed, shipped, handed
over with the patient's code -> the record's QC defect resolved by the hospital admin.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.factories import PASSWORD, auth, load_formulary, make_doctor, make_hospital, make_staff_account, ok
from tests.test_pages import DESKTOP, PHONE, browser, patient_account, screens  # noqa: F401 (fixtures)


@pytest.mark.browser
def test_a_whole_consultation_through_the_pages(server, client: httpx.Client, admin_token: str, screens) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.sync_api import expect

    world = make_hospital(client, admin_token)
    drugs = load_formulary(client, world)
    special = next(d for d in drugs.values() if d["special_control"])
    doctor_name = make_doctor(client, world)
    pharmacist_name = make_staff_account(client, world)
    username, token, patient_id = patient_account(client)
    dx = ok(
        client.post(
            f"/api/v1/patients/{patient_id}/offline-diagnoses",
            headers=auth(token),
            json={
                "hospital_name": "北京协和医院",
                "diagnosed_on": "2026-10-01",
                "icd10_code": "I10",
                "diagnosis": "高血压",
            },
        ),
        201,
    )

    # --- the patient asks (phone) ---
    patient = screens("consult-patient", PHONE)
    p = patient.page
    patient.login(username, lands_on="/patient")
    p.goto("/patient/consultations")
    p.select_option("#c-patient", patient_id)
    p.select_option("#c-hospital", world.hospital_id)
    expect(p.locator(f"#c-practitioner option[value='{world.practitioner_id}']")).to_have_count(1)
    p.select_option("#c-practitioner", world.practitioner_id)
    expect(p.locator(f"#c-diagnosis option[value='{dx['id']}']")).to_have_count(1)
    p.select_option("#c-diagnosis", dx["id"])
    p.fill("#c-complaint", "血压控制不佳，想调整用药")
    p.fill("#c-allergies", "无")
    patient.snap("request-form")
    p.click("#consult-form [type=submit]")
    p.wait_for_url(re.compile(r".*/patient/consultations/[0-9a-f-]{36}$"))
    consultation_id = p.url.rsplit("/", 1)[1]
    expect(p.locator("#status")).to_have_attribute("data-status", "requested")

    # --- the doctor accepts and starts (desktop, another context) ---
    doctor = screens("consult-doctor", DESKTOP)
    d = doctor.page
    doctor.login(doctor_name, lands_on="/doctor")
    d.goto("/doctor/consultations")
    d.click(f".inbox-item[data-id='{consultation_id}']")
    d.click("#accept")
    expect(d.locator("#status")).to_have_attribute("data-status", "accepted")
    d.click("#start")
    expect(d.locator("#status")).to_have_attribute("data-status", "in_progress")
    expect(p.locator("#status")).to_have_attribute("data-status", "in_progress")  # pushed over the socket

    # --- chat both ways ---
    p.fill("#chat-input", "医生您好，最近血压 160/100")
    p.click("#chat-send")
    expect(d.locator(".msg[data-side='patient'] .msg-body").last).to_have_text("医生您好，最近血压 160/100")
    d.fill("#chat-input", "请继续服药，我为您开处方")
    d.click("#chat-send")
    expect(p.locator(".msg[data-side='doctor'] .msg-body").last).to_have_text("请继续服药，我为您开处方")
    patient.snap("chat")

    # --- the record: written, signed with the password (advice left out: a QC defect) ---
    d.fill("#r-chief_complaint", "血压控制不佳一月")
    d.fill("#r-present_illness", "服用氨氯地平，血压 160/100")
    d.fill("#r-past_history", "高血压 5 年")
    d.fill("#r-allergies", "无")
    d.fill("#r-diagnoses", "I10")
    d.click("#record-save")
    expect(d.locator("#record-status")).to_have_attribute("data-status", "draft")
    d.fill("#record-password", PASSWORD)
    d.click("#record-sign")
    expect(d.locator("#record-status")).to_have_attribute("data-status", "signed")
    expect(d.locator("#record-qc .defect[data-code='missing_advice']")).to_have_count(1)
    doctor.snap("record-signed")

    # --- a blocked prescription: a special-control drug (R9) cannot be signed ---
    d.fill("#rx-diagnoses", "I10")
    row = d.locator("#rx-items .rx-row").first
    row.locator(".rx-drug").select_option(special["id"])
    row.locator(".rx-dose").fill("10")
    row.locator(".rx-frequency").select_option("qd")
    row.locator(".rx-route").select_option("oral")
    row.locator(".rx-days").fill("3")
    row.locator(".rx-quantity").fill("1")
    expect(d.locator("#rx-findings .finding[data-level='block'][data-code='special_control_drug']")).to_have_count(1)
    d.fill("#rx-password", PASSWORD)
    d.click("#rx-sign")
    expect(d.locator("#flash")).to_be_visible()
    doctor.snap("rx-blocked")
    signed = [
        rx
        for rx in ok(client.get(f"/api/v1/consultations/{consultation_id}/prescriptions", headers=auth(token)))
        if rx["status"] != "draft"
    ]
    assert signed == []

    # --- a passing prescription ---
    d.click("#rx-new")
    d.fill("#rx-diagnoses", "I10")
    row = d.locator("#rx-items .rx-row").first
    row.locator(".rx-drug").select_option(drugs["amlodipine"]["id"])
    row.locator(".rx-dose").fill("5")
    row.locator(".rx-frequency").select_option("qd")
    row.locator(".rx-route").select_option("oral")
    row.locator(".rx-days").fill("28")
    row.locator(".rx-quantity").fill("1")
    expect(d.locator("#rx-findings .finding[data-level='block']")).to_have_count(0)
    d.fill("#rx-password", PASSWORD)
    d.click("#rx-sign")
    expect(d.locator("#rx-status")).to_have_attribute("data-status", "pending_review")
    rx_id = d.locator("#rx-status").get_attribute("data-id")
    doctor.snap("rx-signed")

    # --- the pharmacist approves ---
    pharmacist = screens("consult-pharmacist", DESKTOP)
    ph = pharmacist.page
    pharmacist.login(pharmacist_name, lands_on="/pharmacist")
    card = ph.locator(f".rx-card[data-id='{rx_id}']")
    expect(card).to_contain_text("氨氯地平")
    pharmacist.snap("queue")
    card.locator(".approve").click()
    expect(card).to_have_count(0)

    # --- the patient asks for delivery ---
    rx = p.locator(f"#prescriptions .rx[data-id='{rx_id}']")
    expect(rx).to_have_attribute("data-status", "approved")
    form = rx.locator("form.delivery-form")
    form.locator("[name=recipient_name]").fill("李小红")
    form.locator("[name=recipient_phone]").fill("13900001111")
    form.locator("[name=address]").fill("北京市朝阳区某某路 1 号")
    form.locator("[type=submit]").click()
    delivery = rx.locator(".delivery")
    expect(delivery).to_have_attribute("data-status", "created")
    code = rx.locator(".handover-code").inner_text().strip()
    assert re.fullmatch(r"\d{6}", code)
    patient.snap("delivery-created")

    # --- the pharmacy dispenses, ships and hands over with the patient's code ---
    delivery_id = ok(client.get(f"/api/v1/prescriptions/{rx_id}", headers=auth(token)))["delivery_id"]
    ph.reload()
    order = ph.locator(f"#orders .order-card[data-id='{delivery_id}']")
    expect(order).to_have_count(1)
    order.locator(".dispense").click()
    expect(order).to_have_attribute("data-status", "dispensed")
    order.locator(".carrier").fill("顺丰速运")
    order.locator(".tracking").fill("SF1234567890")
    order.locator(".ship").click()
    expect(order).to_have_attribute("data-status", "shipped")
    order.locator(".handover-code").fill(code)
    order.locator(".deliver").click()
    expect(order).to_have_attribute("data-status", "delivered")
    pharmacist.snap("delivered")
    expect(delivery).to_have_attribute("data-status", "delivered")
    patient.snap("delivered")

    # --- the hospital admin works through the QC list ---
    admin = screens("consult-admin", DESKTOP)
    a = admin.page
    admin.login(world.admin_username, lands_on="/admin")
    a.goto("/admin/qc")
    item = a.locator(".qc-item").first
    expect(item.locator(".defect[data-code='missing_advice']")).to_have_count(1)
    admin.snap("qc-list")
    item.locator(".resolve-note").fill("已提醒医生补充医嘱")
    item.locator(".resolve").click()
    expect(a.locator(".qc-item")).to_have_count(0)
    qc = ok(
        client.get(f"/api/v1/hospitals/{world.hospital_id}/record-qc?status=resolved", headers=auth(world.admin_token))
    )
    assert qc["total"] == 1
