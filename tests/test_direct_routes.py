"""Direct routes (core.direct) answer exactly as FastAPI's routes do: the same inputs, bad and good, sent to the
test server (direct routes on, the default) and to an app of the same database with them turned off."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from carebridge.app import create_app
from carebridge.core.direct import DirectRoutesMiddleware
from tests.factories import auth, make_hospital, make_patient, make_schedule, ok

JSON = {"content-type": "application/json"}


def _cases(token: str, patient_id: str, slot_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(what, httpx request arguments) for POST /api/v1/appointments; none of them books."""
    headers = auth(token) | JSON
    good = {"patient_id": patient_id, "slot_id": slot_id}
    return [
        ("malformed JSON", {"content": b'{"patient_id": ', "headers": headers}),
        ("not JSON at all", {"content": b"\xff\xfe", "headers": headers}),
        ("unknown field", {"json": good | {"admin": True}, "headers": auth(token)}),
        ("wrong type", {"json": {"patient_id": 5, "slot_id": slot_id}, "headers": auth(token)}),
        ("bad id", {"json": {"patient_id": "p-1", "slot_id": slot_id}, "headers": auth(token)}),
        ("missing field", {"json": {"patient_id": patient_id}, "headers": auth(token)}),
        ("empty body", {"content": b"", "headers": headers}),
        ("null body", {"content": b"null", "headers": headers}),
        ("a list", {"json": [good], "headers": auth(token)}),
        ("a string", {"json": "book me", "headers": auth(token)}),
        ("text/plain", {"content": b'{"a": 1}', "headers": auth(token) | {"content-type": "text/plain"}}),
        ("no content type", {"content": b'{"patient_id": 1}', "headers": auth(token)}),
        ("+json content type", {"json": good | {"x": 1}, "headers": auth(token) | {"content-type": "a/b+json"}}),
        ("channel too long", {"json": good | {"channel": "c" * 49}, "headers": auth(token)}),
        ("channel not a string", {"json": good | {"channel": 7}, "headers": auth(token)}),
        ("no token", {"json": good}),
        ("bad token", {"json": good, "headers": auth("nope")}),
        ("basic auth", {"json": good, "headers": {"Authorization": "Basic abc"}}),
        ("key too long", {"json": good, "headers": auth(token) | {"Idempotency-Key": "k" * 300}}),
        ("unknown slot", {"json": {"patient_id": patient_id, "slot_id": str(uuid.uuid4())}, "headers": auth(token)}),
        ("not my patient", {"json": {"patient_id": str(uuid.uuid4()), "slot_id": slot_id}, "headers": auth(token)}),
        ("other channel", {"json": good | {"channel": "onsite"}, "headers": auth(token)}),
    ]


def _comparable(response: httpx.Response) -> tuple[int, Any, str | None]:
    return response.status_code, response.json(), response.headers.get("www-authenticate")


def test_direct_booking_route_answers_as_fastapi_does(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    token, patient_id, _ = make_patient(client)
    cases = _cases(token, patient_id, slot_id)
    with httpx.Client(base_url=server.base_url) as fresh:  # no cookies from other tests' logins
        direct = [_comparable(fresh.post("/api/v1/appointments", **kwargs)) for _, kwargs in cases]
    # an app of its own on the same database, in this process (its lifespan is not run: it would rebind the
    # test server's process-wide listeners)
    app = create_app(server.settings.model_copy(update={"direct_routes": False, "background_tasks": False}))

    async def through_fastapi() -> list[tuple[int, Any, str | None]]:
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://off") as ac:
                return [_comparable(await ac.post("/api/v1/appointments", **kwargs)) for _, kwargs in cases]
        finally:
            await app.state.db.dispose()

    routed = asyncio.run(through_fastapi())
    # the test server did serve it directly: the middleware is in its app, with the route in its table
    on = create_app(server.settings.model_copy(update={"background_tasks": False}))
    (direct_layer,) = [m for m in on.user_middleware if m.cls is DirectRoutesMiddleware]
    assert server.settings.direct_routes and ("POST", "/api/v1/appointments") in direct_layer.kwargs["table"]
    for (what, _), got, expected in zip(cases, direct, routed, strict=True):
        assert got == expected, what
        assert 400 <= got[0] < 500, what  # every one refused, none booked
    assert ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["pools"][0]["booked"] == 0
    # and a booking made directly is answered as one made through FastAPI's route would be (test_booking)
    booked = client.post(
        "/api/v1/appointments", json={"patient_id": patient_id, "slot_id": slot_id}, headers=auth(token)
    )
    assert booked.status_code == 201 and booked.json()["slot_id"] == slot_id


def test_a_client_gone_mid_body_is_answered_as_fastapi_does(server) -> None:  # type: ignore[no-untyped-def]
    """The body never arrives (the client went away): 400 ``bad_request`` both ways, nothing logged as a crash."""

    async def answer(direct_routes: bool) -> tuple[int, Any]:
        app = create_app(server.settings.model_copy(update={"direct_routes": direct_routes, "background_tasks": False}))
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/appointments",
            "raw_path": b"/api/v1/appointments",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        try:
            await app(scope, receive, send)
        finally:
            await app.state.db.dispose()
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], json.loads(body)

    direct, routed = asyncio.run(answer(True)), asyncio.run(answer(False))
    assert direct == routed and direct[0] == 400 and direct[1]["error"]["code"] == "bad_request"
