"""The developer portal in a real browser: a developer signs up and registers an app, a platform admin approves
it on its page, the developer finds the sandbox and its test accounts, changes the redirect URIs, subscribes to
webhooks and sees the delivery log and the usage; the API reference and the CapabilityStatement are browsable; a
hospital admin grants and revokes an app's access to their hospital."""

from __future__ import annotations

import concurrent.futures
import re
from typing import Any

import httpx
import pytest

from carebridge.core import clock
from tests.conftest import ADMIN_PASSWORD
from tests.factories import PASSWORD, auth, login, make_hospital, ok, unique
from tests.test_fhir import FHIR, new_appointment
from tests.test_oauth import REDIRECT, authorize_params, code_exchange, consent, pkce, redirect_query
from tests.test_openplatform import APPS, acts_for, make_developer, patient_app
from tests.test_pages import DESKTOP, browser, eventually, screens  # noqa: F401 (fixtures)


def sandbox_token(client: httpx.Client, app: dict[str, Any], account: dict[str, Any]) -> tuple[str, str]:
    """A token for the sandbox's first test patient (code + PKCE, as the patient's app would), and the patient."""
    person = account["patients"][0]["id"]
    browser_like = httpx.Client(base_url=client.base_url, follow_redirects=False)
    login(browser_like, account["username"], account["password"])
    verifier, challenge = pkce()
    scope = "launch/patient patient/Appointment.cruds user/Slot.rs"
    code = redirect_query(consent(browser_like, authorize_params(client, app, challenge, scope=scope), person))["code"]
    exchange = code_exchange(app, code, verifier)
    return ok(client.post("/oauth/token", data=exchange))["access_token"], person


@pytest.mark.browser
def test_developer_portal_from_sign_up_to_deliveries_and_usage(  # noqa: PLR0915 - one developer's whole walk
    screens: Any,  # noqa: F811 (a fixture)
    client: httpx.Client,
    admin_token: str,
) -> None:
    from playwright.sync_api import expect

    dev = screens("portal-developer", DESKTOP)
    page = dev.page
    username = unique("devp")
    page.goto("/portal/signup")
    page.fill("#dev-username", username)
    page.fill("#dev-display", "某健康科技")
    page.fill("#dev-password", PASSWORD)
    dev.snap("signup")
    page.click("#dev-submit")
    page.wait_for_url("**/portal")
    expect(page.locator("#app-table tbody")).to_contain_text("No apps yet")

    # register a patient-facing app: default scopes ticked, one redirect URI, a webhook URL
    page.click("text=注册应用 Register an app")
    page.wait_for_url("**/portal/apps/new")
    page.fill("#app-organisation", "某健康科技有限公司")
    page.fill("#app-name", "掌上挂号")
    page.fill("#app-redirects", REDIRECT)
    page.fill("#app-webhook", "http://127.0.0.1:9/hooks")  # nothing listens: deliveries fail and retry
    expect(page.locator("input[name=scope][value='patient/Appointment.cruds']")).to_be_checked()
    dev.snap("register")
    page.click("#app-submit")
    page.wait_for_url(re.compile(r".*/portal/apps/[0-9a-f-]{36}$"))
    app_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#app-status")).to_contain_text("Pending")
    expect(page.locator("#scope-table")).to_contain_text("patient/Appointment.cruds")
    expect(page.locator("#sandbox-body")).to_contain_text("An approved app gets a sandbox hospital")
    dev.snap("pending")

    # the platform admin approves it on the same page
    adm = screens("portal-admin", DESKTOP)
    adm.page.goto("/login?next=" + f"/portal/apps/{app_id}")
    adm.page.fill("#username", "root")
    adm.page.fill("#password", ADMIN_PASSWORD)
    adm.page.click("#login-submit")
    adm.page.wait_for_url(f"**/portal/apps/{app_id}")
    adm.page.click("#review-form button[data-decision=approve]")
    expect(adm.page.locator("#app-status")).to_contain_text("Approved")
    expect(adm.page.locator("#sandbox-hospital")).to_contain_text("沙箱医院")
    adm.snap("approved")

    # the developer sees the sandbox and its test accounts
    page.reload()
    expect(page.locator("#app-status")).to_contain_text("Approved")
    expect(page.locator("#test-patients tbody tr")).to_have_count(2)
    dev_token = login(client, username)
    app = ok(client.get(f"{APPS}/{app_id}", headers=auth(dev_token)))
    box = ok(client.get(f"{APPS}/{app_id}/sandbox", headers=auth(dev_token)))
    expect(page.locator("#test-patients")).to_contain_text(box["test_patients"][0]["password"])
    dev.snap("sandbox")

    # a bad redirect URI is refused and changes nothing; a good one is saved
    page.fill("#edit-redirects", "http://app.example/cb")
    page.click("#keys-save")
    expect(page.locator("#flash")).to_contain_text("bad_redirect_uri")
    assert ok(client.get(f"{APPS}/{app_id}", headers=auth(dev_token)))["redirect_uris"] == [REDIRECT]
    page.fill("#edit-redirects", f"{REDIRECT}\nhttp://localhost:8765/callback")
    page.click("#keys-save")
    expect(page.locator("#flash")).to_contain_text("Saved")
    saved = ok(client.get(f"{APPS}/{app_id}", headers=auth(dev_token)))["redirect_uris"]
    assert saved == [REDIRECT, "http://localhost:8765/callback"]

    # subscribe to appointment events: the secret is shown once
    page.click("#subscribe-form button")
    expect(page.locator("#webhook-secret")).to_be_visible()
    expect(page.locator("#subscription-table tbody tr")).to_have_count(1)
    dev.snap("subscribed")

    # the app books in its sandbox as a test patient: a delivery (failing) and usage figures follow
    token, patient = sandbox_token(client, app, box["test_patients"][0])
    h = auth(token)
    free = {"status": "free", "start": f"ge{clock.now().isoformat()}", "_count": 3}
    slots = ok(client.get(f"{FHIR}/Slot", headers=h, params=free))["entry"]
    fhir_json = {**h, "Content-Type": "application/fhir+json"}
    booked = client.post(
        f"{FHIR}/Appointment", headers=fhir_json, json=new_appointment(slots[-1]["resource"]["id"], patient)
    )
    assert booked.status_code == 201, booked.text
    assert client.get(f"{FHIR}/Appointment/{uuid_like()}", headers=h).status_code == 404

    def logged() -> list[dict]:
        return ok(client.get(f"{APPS}/{app_id}/webhook-deliveries", headers=auth(dev_token)))

    assert eventually(lambda: any(d["attempts"] >= 1 for d in logged()), timeout=30)
    assert eventually(
        lambda: ok(client.get(f"{APPS}/{app_id}/usage", headers=auth(dev_token)))["calls_today"] >= 3  # flushed
    )
    page.reload()
    row = page.locator("#delivery-table tbody tr").first
    expect(row).to_contain_text("appointment.booked")
    expect(row).to_contain_text("Pending")
    expect(page.locator("#endpoint-table")).to_contain_text("POST /fhir/R4/Appointment")
    expect(page.locator("#usage-chart svg")).to_be_visible()
    before = logged()[0]["attempts"]
    row.locator("button").click()  # redeliver now
    assert eventually(lambda: logged()[0]["attempts"] > before, timeout=30)
    dev.snap("deliveries-and-usage")

    # the developer resets the sandbox (after confirming): the booking is cancelled, its place free again
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#sandbox-reset")
    expect(page.locator("#flash")).to_contain_text("Sandbox reset: 1 appointments cancelled")
    appointment = ok(client.get(f"{FHIR}/Appointment/{booked.json()['id']}", headers=h))
    assert appointment["status"] == "cancelled"
    dev.snap("sandbox-reset")

    # a hospital admin or a patient may not open the portal; anonymous visitors go to the login page
    anon = screens("portal-anonymous", DESKTOP)
    anon.page.goto(f"/portal/apps/{app_id}")
    anon.page.wait_for_url("**/login?next=*")


def uuid_like() -> str:
    return "00000000-0000-7000-8000-000000000000"


@pytest.mark.browser
def test_api_reference_and_capability_statement_are_browsable(screens: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    visitor = screens("portal-docs", DESKTOP)
    page = visitor.page
    page.goto("/portal/docs")
    visitor.snap("docs")
    page.click("#link-api")
    page.wait_for_url("**/portal/docs/api")
    expect(page.locator("#swagger-ui .title")).to_contain_text("CareBridge API")
    page.locator("#swagger-ui h3", has_text="open platform").first.click()  # the tags start folded
    expect(page.locator("#swagger-ui")).to_contain_text("/api/v1/partner-apps/{app_id}/sandbox")
    visitor.snap("api-reference")
    page.goto("/portal/docs/fhir")
    slot = page.locator("#fhir-resources tr[data-resource=Slot]")
    expect(slot).to_contain_text("search-type")
    expect(slot).to_contain_text("start (date)")
    expect(page.locator("#fhir-security")).to_contain_text("token")
    visitor.snap("capability-statement")


def acting_for(server: Any, app_id: str) -> list[str]:
    """``acts_for`` from outside Playwright's event loop (the sync API runs one in this thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(acts_for, server, app_id).result()


@pytest.mark.browser
def test_hospital_admin_grants_and_revokes_an_app(
    server: Any,
    screens: Any,  # noqa: F811 (a fixture)
    client: httpx.Client,
    admin_token: str,
) -> None:
    """A hospital admin sees the approved apps, grants one access to their hospital and revokes it again; the
    app then acts for the hospital and stops acting for it."""
    from playwright.sync_api import expect

    dev = auth(make_developer(client))
    app = ok(client.post(APPS, headers=dev, json=patient_app()), 201)
    pending = ok(client.post(APPS, headers=dev, json=patient_app()), 201)
    ok(client.post(f"{APPS}/{app['id']}/review", headers=auth(admin_token), json={"decision": "approve"}))
    world = make_hospital(client, admin_token)

    screen = screens("admin-partners", DESKTOP)
    page = screen.page
    screen.login(world.admin_username, lands_on="/admin")
    page.click("nav a[href='/admin/partners']")
    page.wait_for_url("**/admin/partners")
    row = page.locator(f"#partner-table tr[data-app-id='{app['id']}']")
    expect(row).to_contain_text(app["name"])
    expect(row).to_contain_text(app["channel"])
    expect(row.locator(".access")).to_contain_text("Not granted")
    expect(page.locator(f"#partner-table tr[data-app-id='{pending['id']}']")).to_have_count(0)  # not approved
    screen.snap("before")

    row.locator("button", has_text="Grant").click()
    expect(page.locator("#flash")).to_contain_text("Access granted")
    expect(row.locator(".access")).to_contain_text("Granted")
    expect(page.locator("#grant-history tbody tr")).to_have_count(1)
    screen.snap("granted")
    grants = ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/partner-apps", headers=auth(world.admin_token)))
    assert [(g["app_id"], g["revoked_at"]) for g in grants] == [(app["id"], None)]
    assert world.hospital_id in acting_for(server, app["id"])

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button", has_text="Revoke").click()
    expect(page.locator("#flash")).to_contain_text("Access revoked")
    expect(row.locator(".access")).to_contain_text("Not granted")
    expect(page.locator("#grant-history tbody tr").first).not_to_contain_text("—")
    screen.snap("revoked")
    grants = ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/partner-apps", headers=auth(world.admin_token)))
    assert len(grants) == 1 and grants[0]["revoked_at"] is not None
    assert world.hospital_id not in acting_for(server, app["id"])
