"""The regulator's pages in a real browser: a regulator changes a threshold on the rules page, a doctor's next
prescription trips it, the warning arrives live on the dashboard, its case is opened; the regulator asks the
hospital to rectify, the hospital admin answers on their page, the regulator closes the case."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import PASSWORD, auth, ensure_region, load_formulary, login, make_consultation, ok, unique
from tests.test_pages import DESKTOP, browser, screens  # noqa: F401 (fixtures)
from tests.test_supervision import BASE, _sign_amlodipine, add_rule


def regulator_account(client: httpx.Client, admin: str, region: str = "110000") -> tuple[str, str]:
    """A regulator we can log in with: (username, token)."""
    username = unique("webreg")
    ensure_region(client, admin, "110105")
    body = {
        "username": username,
        "password": PASSWORD,
        "role": "regulator",
        "display_name": "王监管",
        "region_code": region,
    }
    ok(client.post("/api/v1/users", headers=auth(admin), json=body), 201)
    return username, login(client, username)


@pytest.mark.browser
def test_threshold_change_live_warning_case_answered_and_closed(
    screens: Any,  # noqa: F811 (a fixture)
    client: httpx.Client,
    admin_token: str,
) -> None:
    from playwright.sync_api import expect

    cw = make_consultation(client, admin_token)
    drugs = load_formulary(client, cw.world)
    username, token = regulator_account(client, admin_token)
    regulator = auth(token)
    # a rule of this test's own hospital (other tests share the server), far above any prescription for now
    rule = add_rule(client, regulator, cw.world, "high_value_prescription", {"max_total_fen": 10_000_000})

    # the regulator changes the threshold on the rules page
    reg = screens("supervision-regulator", DESKTOP)
    reg.login(username, "/regulator")
    page = reg.page
    expect(page.locator("#feed-state")).to_have_attribute("data-state", "live")
    reg.snap("dashboard")
    page.click("nav a[href='/regulator/rules']")
    page.fill("#rule-search", rule["code"])
    row = page.locator(f"tr[data-rule='{rule['code']}']")
    expect(row).to_have_count(1)
    row.locator("button[data-edit]").click()
    expect(page.locator("#rule-dialog")).to_be_visible()
    expect(page.locator("#rule-versions li")).to_have_count(1)
    page.fill("#param-max_total_fen", "100")
    reg.snap("threshold")
    page.click("#rule-save")
    expect(row).to_contain_text("max_total_fen: 100")
    expect(row.locator("td.num")).to_have_text("2")
    versions = ok(client.get(f"{BASE}/rules/{rule['id']}/versions", headers=regulator))
    assert versions[0]["changed_by"].startswith("regulator:") and versions[0]["after"]["params"]["max_total_fen"] == 100

    # the dashboard is open when the doctor signs: the warning arrives live
    page.click("nav a[href='/regulator']")
    expect(page.locator("#feed-state")).to_have_attribute("data-state", "live")
    assert _sign_amlodipine(client, cw, drugs).status_code == 200
    item = page.locator(f"#sv-feed li[data-rule='{rule['code']}']")
    expect(item).to_have_count(1)
    expect(item).to_have_class("sv-warning sev-warning fresh")
    reg.snap("live-warning")

    # its case: the regulator asks the hospital to rectify
    item.locator("a", has_text="案件").click()
    page.wait_for_url("**/regulator/cases/*")
    case_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("body")).to_have_attribute("data-case-status", "open")
    expect(page.locator("#case-warnings li")).to_have_count(1)
    page.fill("#rectify-text", "请核查该处方金额并说明原因")
    page.fill("#rectify-days", "5")
    page.click("#rectify-form-submit")
    expect(page.locator("body")).to_have_attribute("data-case-status", "rectifying")
    reg.snap("rectification-requested")

    # the hospital admin answers on their page
    hosp = screens("supervision-hospital", DESKTOP)
    hosp.login(cw.world.admin_username, "/admin")
    hosp.page.click("nav a[href='/admin/cases']")
    link = hosp.page.locator(f"tr[data-case-id='{case_id}'] a")
    expect(link).to_have_count(1)
    link.click()
    expect(hosp.page.locator("body")).to_have_attribute("data-case-status", "rectifying")
    expect(hosp.page.locator("#case-history")).to_contain_text("请核查该处方金额并说明原因")
    hosp.page.fill("#answer-text", "已核查：长期用药患者，已加强处方审核")
    hosp.snap("answer")
    hosp.page.click("#answer-form-submit")
    expect(hosp.page.locator("body")).to_have_attribute("data-case-status", "answered")
    hosp.snap("answered")

    # the regulator sees the answer and closes the case
    page.reload()
    expect(page.locator("#case-history")).to_contain_text("已加强处方审核")
    page.select_option("#close-outcome", "resolved")
    page.fill("#close-reason", "医院已整改")
    page.click("#close-form-submit")
    expect(page.locator("body")).to_have_attribute("data-case-status", "resolved")
    expect(page.locator("#reopen-form")).to_be_visible()
    reg.snap("closed")
    case = ok(client.get(f"{BASE}/cases/{case_id}", headers=regulator))
    assert case["case"]["status"] == "resolved" and case["case"]["resolution"] == "医院已整改"
    assert [e["kind"] for e in case["entries"]] == ["opened", "rectification_requested", "answered", "resolved"]

    # the other pages render without script errors: the trace with the consultation's trail, the case list
    page.goto(f"/regulator/trace?consultation={cw.consultation_id}")
    expect(page.locator("#trace-list tr[data-type='prescription.signed']")).to_have_count(1)
    reg.snap("trail")
    page.goto("/regulator/cases?hospital_id=" + cw.world.hospital_id)
    page.select_option("#case-status", "closed")
    expect(page.locator(f"tr[data-case-id='{case_id}']")).to_have_count(1)
    page.goto("/regulator")
    expect(page.locator("#sv-chart svg")).to_have_count(1)
    expect(page.locator(f"#sv-ranking tr[data-hospital-id='{cw.world.hospital_id}']")).to_have_count(1)
    reg.snap("dashboard-after")


def test_supervision_pages_need_a_supervisor(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token, start=False)
    with httpx.Client(base_url=server.base_url, follow_redirects=False) as anonymous:
        r = anonymous.get("/regulator/cases")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    doctor = httpx.Client(base_url=server.base_url, cookies={"cb_session": cw.doctor_token})
    assert doctor.get("/regulator").status_code == 403
    hospital_admin = httpx.Client(base_url=server.base_url, cookies={"cb_session": cw.world.admin_token})
    assert hospital_admin.get("/regulator/rules").status_code == 403
    assert hospital_admin.get("/admin/cases").status_code == 200
    _, token = regulator_account(client, admin_token)
    assert httpx.get(f"{server.base_url}/regulator/trace", cookies={"cb_session": token}).status_code == 200
    assert httpx.get(f"{server.base_url}/admin/cases", cookies={"cb_session": token}).status_code == 403
