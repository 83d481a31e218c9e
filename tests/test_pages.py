"""The web pages in a real browser: Debian's chromium driven by Playwright against the real test server.

Each test builds its own hospital and people through the API (``factories``), acts through the pages as a
patient, a hospital admin or a doctor would, and checks the outcome both on the page and through the API.
Every step leaves a PNG in ``artifacts_dir``.
"""

from __future__ import annotations

import os
import time as wall
from collections.abc import Iterator
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from carebridge.core import clock
from tests.conftest import IN_CI
from tests.factories import (
    PASSWORD,
    auth,
    book,
    local_today,
    login,
    make_doctor,
    make_hospital,
    make_id_number,
    make_phone,
    make_schedule,
    make_visit_type,
    ok,
    unique,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium; `make browser`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    # Live pages (queue stream, doctor board) update within seconds, not instantly.
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Screen:
    """One browser context (its own cookies) with a page, collecting script errors and numbered screenshots."""

    def __init__(self, browser: Any, base_url: str, artifacts: Path, name: str, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(
            base_url=base_url, viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai"
        )
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("console", self._console)
        self.artifacts = artifacts
        self.name = name
        self.step = 0

    def _console(self, message: Any) -> None:
        # Failed API calls are logged by chromium as resource errors; the page shows them, tests check that.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")

    def snap(self, label: str) -> None:
        self.step += 1
        self.page.evaluate("window.scrollTo(0, 0)")  # sticky bars render mid-page in a scrolled full-page shot
        self.page.screenshot(path=str(self.artifacts / f"{self.name}-{self.step:02d}-{label}.png"), full_page=True)

    def login(self, username: str, lands_on: str) -> None:
        page = self.page
        page.goto("/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        self.snap("login")
        page.click("#login-submit")
        page.wait_for_url(f"**{lands_on}")

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors


@pytest.fixture
def screens(browser: Any, server: Any, artifacts_dir: Path) -> Iterator[Any]:
    opened: list[Screen] = []

    def open_screen(name: str, viewport: dict[str, int] = PHONE) -> Screen:
        screen = Screen(browser, server.base_url, artifacts_dir, name, viewport)
        opened.append(screen)
        return screen

    yield open_screen
    for screen in opened:
        screen.close()


def patient_account(client: httpx.Client, *, name: str = "李小红", profile: bool = True) -> tuple[str, str, str | None]:
    """A patient account we can log in with: (username, token, patient_id or None)."""
    username = unique("webpat")
    ok(
        client.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD, "display_name": name}),
        201,
    )
    token = login(client, username)
    if not profile:
        return username, token, None
    patient = ok(
        client.post(
            "/api/v1/patients",
            headers=auth(token),
            json={"name": name, "id_number": make_id_number(), "phone": make_phone()},
        ),
        201,
    )
    return username, token, patient["id"]


def slot_free(client: httpx.Client, schedule_id: str, slot_id: str) -> int:
    slots = ok(client.get(f"/api/v1/schedules/{schedule_id}"))["slots"]
    return next(s["free"] for s in slots if s["id"] == slot_id)


def eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = wall.monotonic() + timeout
    while True:
        result = check()
        if result or wall.monotonic() > deadline:
            return result
        wall.sleep(0.1)


@pytest.mark.browser
def test_patient_books_a_free_slot_and_cancels_it(
    server,
    client: httpx.Client,
    admin_token: str,  # type: ignore[no-untyped-def]
    screens,
) -> None:
    from playwright.sync_api import expect

    world = make_hospital(client, admin_token)
    hospital = ok(client.get(f"/api/v1/hospitals/{world.hospital_id}"))
    schedule = make_schedule(client, world, days_ahead=1, pools={"platform": 3, "onsite": 2})
    first_slot = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    username, token, _ = patient_account(client, profile=False)  # the page adds the real-name profile

    screen = screens("patient")
    page = screen.page
    page.goto("/patient")
    page.wait_for_url("**/login?next=%2Fpatient")  # no session: the page sends us to log in first
    screen.login(username, lands_on="/patient")

    page.fill("#hospital-q", hospital["name"])
    page.click("#hospital-search button[type=submit]")
    hospital_link = page.locator(f"a[data-hospital-id='{world.hospital_id}']")
    expect(hospital_link).to_contain_text(hospital["name"])
    expect(page.locator("#hospital-list > li")).to_have_count(1)
    screen.snap("hospital-search")
    hospital_link.click()

    page.wait_for_url(f"**/patient/hospitals/{world.hospital_id}")
    expect(page.locator("#hospital-name")).to_have_text(hospital["name"])
    screen.snap("departments")
    page.click(f"a[data-department-id='{world.department_id}']")

    tomorrow = str(local_today() + timedelta(days=1))
    expect(page.locator(f"button.day[data-day='{tomorrow}']")).to_have_attribute("aria-pressed", "true")
    session = page.locator(f"a[data-schedule-id='{schedule['id']}']")
    expect(session).to_contain_text("王医生")
    expect(session).to_contain_text("余 12 号")  # 4 slots x 3 platform places; on-site places are not offered
    screen.snap("doctors-by-day")
    session.click()

    page.wait_for_url(f"**/patient/schedules/{schedule['id']}")
    slot = page.locator(f"button.slot[data-slot-id='{first_slot}']")
    expect(slot).to_contain_text("余 3")
    slot.click()
    expect(slot).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#patient-form")).to_be_visible()  # no patient yet: the form is open
    expect(page.locator("#book-button")).to_be_disabled()
    screen.snap("slot-chosen-no-patient")
    page.fill("#pf-name", "李小红")
    page.fill("#pf-id", make_id_number())
    page.fill("#pf-phone", make_phone())
    page.click("#save-patient")
    expect(page.locator("#patients input[type=radio]")).to_be_checked()
    expect(page.locator("#patient-form")).to_be_hidden()
    expect(page.locator("#book-button")).to_be_enabled()
    screen.snap("confirm")
    page.click("#book-button")

    booked = page.locator("#booked")
    expect(booked).to_be_visible()
    expect(booked).to_contain_text("李小红")
    appointment_id = booked.get_attribute("data-appointment-id")
    assert appointment_id
    screen.snap("booked")
    assert slot_free(client, schedule["id"], first_slot) == 2

    page.click("#to-appointments")
    page.wait_for_url("**/patient/appointments")
    item = page.locator(f"li[data-appointment-id='{appointment_id}']")
    expect(item).to_have_attribute("data-status", "booked")
    expect(item).to_contain_text("王医生")
    screen.snap("my-appointments")
    item.locator("[data-action=cancel]").click()
    screen.snap("confirm-cancel")
    item.locator("[data-action=confirm-cancel]").click()
    expect(page.locator("#flash")).to_contain_text("已取消")
    expect(item).to_have_attribute("data-status", "cancelled")
    expect(item.locator(".badge")).to_have_text("已取消 Cancelled")
    expect(item.locator("[data-action=cancel]")).to_have_count(0)
    screen.snap("cancelled")

    assert ok(client.get(f"/api/v1/appointments/{appointment_id}", headers=auth(token)))["status"] == "cancelled"
    assert slot_free(client, schedule["id"], first_slot) == 3


@pytest.mark.browser
def test_patient_reschedules_to_another_day(
    server,
    client: httpx.Client,
    admin_token: str,  # type: ignore[no-untyped-def]
    screens,
) -> None:
    from playwright.sync_api import expect

    world = make_hospital(client, admin_token)
    first = make_schedule(client, world, days_ahead=1, pools={"platform": 2})
    later = make_schedule(
        client, world, days_ahead=3, session="afternoon", start="14:00", end="15:00", pools={"platform": 2}
    )
    username, token, patient_id = patient_account(client)
    old_slot = ok(client.get(f"/api/v1/schedules/{first['id']}"))["slots"][0]["id"]
    new_slot = ok(client.get(f"/api/v1/schedules/{later['id']}"))["slots"][1]["id"]
    appt = ok(book(client, token, patient_id, old_slot, key=unique("k")), 201)

    screen = screens("reschedule")
    page = screen.page
    screen.login(username, lands_on="/patient")
    page.click("nav a[href='/patient/appointments']")
    page.locator(f"li[data-appointment-id='{appt['id']}'] [data-action=reschedule]").click()
    page.wait_for_url(f"**/patient/appointments/{appt['id']}/reschedule")
    expect(page.locator(f"button.slot[data-slot-id='{old_slot}']")).to_be_disabled()  # the current place
    page.click(f"button.day[data-day='{local_today() + timedelta(days=3)}']")
    page.click(f"button.slot[data-slot-id='{new_slot}']")
    expect(page.locator("#reschedule-button")).to_be_enabled()
    screen.snap("new-slot")
    page.click("#reschedule-button")
    page.wait_for_url("**/patient/appointments")
    expect(page.locator("#flash")).to_contain_text("改约成功")
    screen.snap("rescheduled")

    mine = ok(client.get("/api/v1/appointments", headers=auth(token)))
    active = [a for a in mine if a["status"] == "booked"]
    assert [a["slot_id"] for a in active] == [new_slot]
    assert slot_free(client, first["id"], old_slot) == 2 and slot_free(client, later["id"], new_slot) == 1


@pytest.mark.browser
def test_hospital_admin_moves_places_between_channels(
    server,
    client: httpx.Client,
    admin_token: str,  # type: ignore[no-untyped-def]
    screens,
) -> None:
    from playwright.sync_api import expect

    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, days_ahead=1, pools={"platform": 3, "onsite": 2})

    screen = screens("admin", DESKTOP)
    page = screen.page
    screen.login(world.admin_username, lands_on="/admin")
    # every link of the hospital admin's menu is on screen, none scrolled out of sight
    nav = page.locator("nav.nav")
    expect(nav.locator("a")).to_have_count(7)
    hidden = nav.evaluate(
        """n => { const edge = n.getBoundingClientRect();
                  return [...n.querySelectorAll('a')].map(a => a.getBoundingClientRect())
                    .filter(b => b.left < edge.left || b.right > edge.right || b.right > innerWidth).length; }"""
    )
    assert hidden == 0 and nav.evaluate("n => n.scrollWidth <= n.clientWidth")
    card = page.locator(f".schedule[data-schedule-id='{schedule['id']}']")
    platform = card.locator("tbody td[data-channel=platform]")
    onsite = card.locator("tbody td[data-channel=onsite]")
    expect(platform).to_have_count(4)
    for i in range(4):
        expect(platform.nth(i)).to_have_attribute("data-capacity", "3")
        expect(onsite.nth(i)).to_have_attribute("data-capacity", "2")
    screen.snap("schedules")

    card.locator("summary", has_text="调整号源").click()
    form = card.locator("form.move-form")
    form.locator("select[name=slot]").select_option("")
    form.locator("select[name=from]").select_option("onsite")
    form.locator("select[name=to]").select_option("platform")
    form.locator("input[name=amount]").fill("2")
    screen.snap("move-form")
    form.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("4 个时段")
    for i in range(4):
        expect(platform.nth(i)).to_have_attribute("data-capacity", "5")
        expect(platform.nth(i)).to_contain_text("容量 5")
        expect(onsite.nth(i)).to_have_attribute("data-capacity", "0")
    expect(card.locator("tfoot td[data-channel=platform]")).to_have_attribute("data-capacity", "20")
    screen.snap("moved")

    detail = ok(
        client.get(f"/api/v1/hospitals/{world.hospital_id}/schedules/{schedule['id']}", headers=auth(world.admin_token))
    )
    for slot in detail["slots"]:
        assert {p["channel"]: p["capacity"] for p in slot["pools"]} == {"platform": 5, "onsite": 0}

    # Nothing left on-site: the next move is refused, and the page says why.
    card.locator("summary", has_text="调整号源").click()
    form.locator("select[name=from]").select_option("onsite")
    form.locator("select[name=to]").select_option("platform")
    form.locator("input[name=amount]").fill("1")
    form.locator("button[type=submit]").click()
    flash = page.locator("#flash.error")
    expect(flash).to_contain_text("号源不足")
    expect(flash).to_contain_text("insufficient_capacity")
    screen.snap("refused")


@pytest.mark.browser
def test_doctor_calls_the_queue_while_the_patient_watches(
    server,
    client: httpx.Client,  # type: ignore[no-untyped-def]
    admin_token: str,
    screens,
) -> None:
    from playwright.sync_api import expect

    world = make_hospital(client, admin_token)
    doctor = make_doctor(client, world)
    today = local_today()
    # Book before the session starts (07:30 hospital time), then check in once it has begun (08:05).
    clock.shift(clock.local_datetime(today, time(7, 30), "Asia/Shanghai") - clock.now())
    schedule = make_schedule(client, world, days_ahead=0, start="08:00", end="10:00", pools={"platform": 3})
    slot = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    people = [patient_account(client, name=name) for name in ("赵一", "钱二")]
    appts = [ok(book(client, token, pid, slot, key=unique("k")), 201) for _, token, pid in people]
    clock.shift(clock.local_datetime(today, time(8, 5), "Asia/Shanghai") - clock.now())
    for (_, token, _), appt in zip(people, appts, strict=True):
        ok(client.post(f"/api/v1/appointments/{appt['id']}/check-in", headers=auth(token)))
    doctor_token = login(client, doctor)
    assert eventually(
        lambda: len(ok(client.get(f"/api/v1/schedules/{schedule['id']}/queue", headers=auth(doctor_token)))) == 2
    ), "queue board never filled"

    watcher = screens("queue-patient")
    watcher.login(people[1][0], lands_on="/patient")
    watcher.page.goto(f"/patient/appointments/{appts[1]['id']}/queue")
    status = watcher.page.locator("#queue-status")
    expect(status).to_have_attribute("data-state", "waiting")
    expect(watcher.page.locator("#queue-number")).to_have_text("2")
    expect(watcher.page.locator("#queue-ahead")).to_have_text("1")
    watcher.snap("waiting")

    screen = screens("doctor")
    page = screen.page
    screen.login(doctor, lands_on="/doctor")
    card = page.locator(f".session[data-schedule-id='{schedule['id']}']")
    rows = card.locator("tr.queue-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-state", "waiting")
    expect(rows.nth(0)).to_contain_text("赵*")  # the queue API masks names, even for the treating doctor
    screen.snap("queue")

    card.locator("button.call-next").click()
    expect(page.locator("#flash")).to_contain_text("请 1 号")
    expect(rows.nth(0)).to_have_attribute("data-state", "called")
    expect(card.locator(".now-serving")).to_contain_text("1 号 赵*")
    screen.snap("called-1")
    expect(watcher.page.locator("#queue-ahead")).to_have_text("0")  # pushed over the event stream
    expect(watcher.page.locator("#queue-serving")).to_have_text("1")

    card.locator("button.call-next").click()
    expect(page.locator("#flash")).to_contain_text("请 2 号")
    expect(rows.nth(0)).to_have_attribute("data-state", "done")
    expect(rows.nth(1)).to_have_attribute("data-state", "called")
    screen.snap("called-2")
    expect(status).to_have_attribute("data-state", "called")
    expect(watcher.page.locator("#queue-state")).to_contain_text("请到诊室就诊")
    watcher.snap("called")

    first = ok(client.get(f"/api/v1/appointments/{appts[0]['id']}", headers=auth(people[0][1])))
    second = ok(client.get(f"/api/v1/appointments/{appts[1]['id']}", headers=auth(people[1][1])))
    assert first["status"] == "completed"
    assert second["status"] == "checked_in" and second["called"] is True


@pytest.mark.browser
def test_admin_templates_rules_and_stopping_a_session_tells_the_patient(
    server,
    client: httpx.Client,  # type: ignore[no-untyped-def]
    admin_token: str,
    screens,
) -> None:
    from playwright.sync_api import expect

    world = make_hospital(client, admin_token)
    make_visit_type(client, world)
    tomorrow = local_today() + timedelta(days=1)
    admin = auth(world.admin_token)

    screen = screens("admin-settings", DESKTOP)
    page = screen.page
    screen.login(world.admin_username, lands_on="/admin")
    expect(page.locator("#schedule-list")).to_contain_text("没有排班")
    page.click("nav a[href='/admin/templates']")
    page.wait_for_url("**/admin/templates")
    expect(page.locator("#template-table")).to_contain_text("还没有模板")
    page.select_option("#tpl-practitioner", world.practitioner_id)
    page.select_option("#tpl-weekday", str(tomorrow.weekday()))
    page.fill("#tpl-start", "08:00")
    page.fill("#tpl-end", "10:00")
    page.fill("#tpl-platform", "2")
    page.fill("#tpl-onsite", "1")
    page.click("#template-form button[type=submit]")
    expect(page.locator("#template-table tbody tr[data-template-id]")).to_have_count(1)
    expect(page.locator("#template-table")).to_contain_text("平台 Platform 2")
    page.fill("#gen-start", str(tomorrow))
    page.fill("#gen-days", "1")
    page.click("#generate-button")
    expect(page.locator("#flash")).to_contain_text("已生成 1 个出诊")
    screen.snap("templates")
    generated = ok(
        client.get(
            f"/api/v1/hospitals/{world.hospital_id}/schedules",
            headers=admin,
            params={"date_from": str(tomorrow), "date_to": str(tomorrow)},
        )
    )
    assert len(generated) == 1 and generated[0]["practitioner_id"] == world.practitioner_id

    page.click("nav a[href='/admin/rules']")
    page.wait_for_url("**/admin/rules")
    expect(page.locator("#r-window_days")).to_be_enabled()  # the form opens once it shows the stored rules
    page.fill("#r-window_days", "10")
    page.fill("#r-cancel_deadline_minutes", "60")
    page.click("#rules-form button[type=submit]")
    expect(page.locator("#flash")).to_contain_text("预约规则已保存")
    expect(page.locator("#p-threshold")).to_be_enabled()
    page.check("#p-enabled")
    page.fill("#p-threshold", "2")
    page.click("#policy-form button[type=submit]")
    expect(page.locator("#flash")).to_contain_text("爽约策略已保存")
    screen.snap("rules")
    rules = ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/booking-rules", headers=admin))
    own = next(r for r in rules if r["department_id"] is None)
    assert own["window_days"] == 10 and own["cancel_deadline_minutes"] == 60 and own["max_total"] is None
    policy = ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/no-show-policy", headers=admin))
    assert policy["enabled"] is True and policy["threshold"] == 2

    page.click("nav a[href='/admin/no-shows']")
    expect(page.locator("#block-table")).to_contain_text("没有爽约限制")
    expect(page.locator("#policy-line")).to_contain_text("爽约 2 次")
    screen.snap("no-shows")

    # A patient books the generated session; the admin stops it; the patient is told.
    username, token, patient_id = patient_account(client)
    schedule_id = generated[0]["id"]
    slot = ok(client.get(f"/api/v1/schedules/{schedule_id}"))["slots"][0]["id"]
    appt = ok(book(client, token, patient_id, slot, key=unique("k")), 201)
    page.click("nav a[href='/admin']")
    card = page.locator(f".schedule[data-schedule-id='{schedule_id}']")
    expect(card.locator("tfoot td[data-channel=platform]")).to_have_attribute("data-booked", "1")
    card.locator("summary", has_text="停诊").click()
    card.locator("form.stop-form input[name=reason]").fill("医生外出会诊")
    card.locator("form.stop-form button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("取消预约 1 个")
    expect(card).to_have_attribute("data-status", "stopped")
    expect(card).to_contain_text("医生外出会诊")
    screen.snap("stopped")
    assert ok(client.get(f"/api/v1/appointments/{appt['id']}", headers=auth(token)))["status"] == "cancelled"

    assert eventually(lambda: ok(client.get("/api/v1/notifications", headers=auth(token)))), "no notification"
    patient = screens("notifications")
    patient.login(username, lands_on="/patient")
    patient.page.click("nav a[href='/patient/notifications']")
    item = patient.page.locator("#notification-list li[data-kind=appointment_cancelled]")
    expect(item).to_contain_text("预约已取消")
    expect(item).to_have_class("list-item unread")
    patient.snap("notifications")
    patient.page.click("#mark-all")
    expect(item).to_have_class("list-item")
    assert all(n["read_at"] for n in ok(client.get("/api/v1/notifications", headers=auth(token))))


def test_pages_need_a_session_and_the_right_role(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    for path in ("/patient", "/patient/appointments", "/admin", "/admin/rules", "/doctor"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), (path, r.status_code)
    landing = client.get("/")
    assert landing.status_code == 200 and "text/html" in landing.headers["content-type"]
    assert "script-src 'self'" in landing.headers["content-security-policy"]
    assert landing.headers["cache-control"] == "no-store"

    _, token, _ = patient_account(client)
    with httpx.Client(base_url=server.base_url, cookies={"cb_session": token}) as patient:
        assert patient.get("/patient").status_code == 200
        forbidden = patient.get("/admin")
        assert forbidden.status_code == 403 and "无权访问" in forbidden.text
    # A cookie that resolves to nobody is the same as none.
    with httpx.Client(base_url=server.base_url, cookies={"cb_session": "nonsense"}) as stranger:
        assert stranger.get("/patient", follow_redirects=False).status_code == 303


def test_static_files_are_served_from_the_package_with_caching(server, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/login").text
    script = next(part.split('"')[0] for part in page.split('src="')[1:] if part.startswith("/static/js/app.js"))
    assert "?v=" in script
    versioned = client.get(script)
    assert versioned.status_code == 200 and "javascript" in versioned.headers["content-type"]
    assert "immutable" in versioned.headers["cache-control"]
    bare = client.get("/static/css/app.css")
    assert bare.status_code == 200 and bare.headers["content-type"].startswith("text/css")
    assert bare.headers["cache-control"] == "no-cache"
    again = client.get("/static/css/app.css", headers={"If-None-Match": bare.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"
    assert client.get("/static/%2e%2e/pages.py").status_code == 404  # no way out of the static folder
    assert client.get("/static/nothing.js").json()["error"]["code"] == "not_found"
