"""Webhooks end to end: a real receiver over HTTP gets signed events of the patients who consented to the app,
at hospitals that granted it; failures are retried with backoff, then dead-lettered, and redelivered on
request."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from carebridge.core import clock
from tests.factories import auth, book, make_patient, ok
from tests.test_fhir import FHIR, World, new_appointment
from tests.test_openplatform import APPS
from tests.test_supervision import wait_for


class Receiver:
    """An app's webhook endpoint: records every request, answers the queued statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.always: int | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.always or (receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_signed_deliveries_retries_dead_letters_and_redelivery(
    client: httpx.Client, admin_token: str, receiver: Receiver
) -> None:
    world = World(client, admin_token)
    dev = auth(world.developer)
    hooks = f"{APPS}/{world.app['id']}/webhooks"
    # bad subscriptions change nothing
    for body, code in (
        ({"event_types": ["spaceship.*"], "url": receiver.url}, "unknown_event_type"),
        ({"event_types": ["hospital.*"], "url": receiver.url}, "event_type_not_offered"),
        ({"event_types": ["appointment.*"], "url": "http://hooks.example.cn/x"}, "bad_webhook_url"),
    ):
        r = client.post(hooks, headers=dev, json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == code, r.text
    assert client.post(
        hooks, headers=auth(world.x.admin_token), json={"event_types": ["appointment.*"]}
    ).status_code in (
        403,
        404,
    )
    sub = ok(client.post(hooks, headers=dev, json={"event_types": ["appointment.*"], "url": receiver.url}), 201)
    secret = sub["secret"]
    assert secret.startswith("whsec_") and "secret" not in ok(client.get(hooks, headers=dev))[0]

    # a patient who never used the app books at the same hospital: not the app's business
    stranger_token, stranger_patient, _ = make_patient(client, name="王芳")
    slots = ok(client.get(f"/api/v1/schedules/{world.schedule['id']}"))["slots"]
    ok(book(client, stranger_token, stranger_patient, slots[-1]["id"]), 201)
    # the consented patient books through the app
    h = auth(world.token)
    found = client.get(f"{FHIR}/Slot", params={"schedule": world.schedule["id"], "status": "free"}, headers=h).json()
    slot_id = found["entry"][0]["resource"]["id"]
    booked = client.post(f"{FHIR}/Appointment", json=new_appointment(slot_id, world.patient_id), headers=h).json()
    events = wait_for(receiver.events, lambda e: len(e) >= 1)
    assert [e["type"] for e in events] == ["appointment.booked"]
    assert events[0]["subject"]["id"] == booked["id"] and events[0]["data"]["patient_id"] == world.patient_id
    headers, body = receiver.requests[0]
    stamp, mac = (part.split("=", 1)[1] for part in headers["carebridge-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected) and headers["carebridge-event-type"] == "appointment.booked"

    # the receiver fails once: retried after the backoff
    receiver.statuses = [500]
    cancel = {**booked, "status": "cancelled"}
    assert client.put(f"{FHIR}/Appointment/{booked['id']}", json=cancel, headers=h).status_code == 200
    log_url = f"{APPS}/{world.app['id']}/webhook-deliveries"
    failed = wait_for(lambda: ok(client.get(log_url, headers=dev)), lambda log: log[0]["last_status_code"] == 500)[0]
    assert failed["event_type"] == "appointment.cancelled" and failed["status"] == "pending" and failed["attempts"] == 1
    assert failed["last_error"] == "HTTP 500" and failed["next_attempt_at"] > failed["last_attempt_at"]
    clock.shift(timedelta(seconds=15))
    done = wait_for(lambda: ok(client.get(log_url, headers=dev)), lambda log: log[0]["status"] == "delivered")[0]
    assert done["attempts"] == 2 and done["last_status_code"] == 200
    assert [e["type"] for e in receiver.events()] == [
        "appointment.booked",
        "appointment.cancelled",
        "appointment.cancelled",
    ]

    # a receiver down for 24 hours: the delivery is dead-lettered; redelivered on request
    receiver.always = 503
    again = client.post(f"{FHIR}/Appointment", json=new_appointment(slot_id, world.patient_id), headers=h).json()
    wait_for(lambda: ok(client.get(log_url, headers=dev)), lambda log: log[0]["last_status_code"] == 503)
    clock.shift(timedelta(hours=25))
    dead = wait_for(lambda: ok(client.get(f"{log_url}?status=dead", headers=dev)), lambda log: len(log) == 1)[0]
    assert dead["event_id"] and dead["attempts"] == 2
    alerts = ok(client.get(f"{APPS}/{world.app['id']}/alerts", headers=dev))
    assert any(a["kind"] == "webhook_dead" and a["level"] == "critical" for a in alerts), alerts
    receiver.always = None
    ok(client.post(f"{log_url}/{dead['id']}/redeliver", headers=dev))
    wait_for(
        lambda: ok(client.get(log_url, headers=dev)),
        lambda log: any(d["id"] == dead["id"] and d["status"] == "delivered" for d in log),
    )
    delivered = [e for e in receiver.events() if e["subject"]["id"] == again["id"]]
    assert len(delivered) >= 3 and delivered[-1]["type"] == "appointment.booked"
    # nothing about the stranger ever went out; another developer sees no log
    assert all(e["data"].get("patient_id") == world.patient_id for e in receiver.events())
    assert client.get(log_url, headers=auth(admin_token)).status_code == 200
    from tests.test_openplatform import make_developer

    assert client.get(log_url, headers=auth(make_developer(client))).status_code == 404
    # unsubscribing stops deliveries
    assert client.delete(f"{hooks}/{sub['id']}", headers=dev).status_code == 204
    assert client.delete(f"{hooks}/{sub['id']}", headers=dev).status_code == 404
