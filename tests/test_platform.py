"""The platform's plumbing: health, the error shape, body limits, auth basics."""

from __future__ import annotations

import httpx

from tests.factories import PASSWORD, auth, login, ok, unique


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    from alembic.script import ScriptDirectory

    from carebridge.database.migrate import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert ready.status_code == 200 and ready.json()["schema"] == head
    assert "x-request-id" in ready.headers


def test_unknown_route_uses_the_error_shape(client: httpx.Client) -> None:
    r = client.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_oversize_body_is_413_and_changes_nothing(client: httpx.Client) -> None:
    big = {"username": "x" * 70_000, "password": "y"}
    r = client.post("/api/v1/auth/register", json=big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


def test_malformed_json_and_unknown_fields(client: httpx.Client) -> None:
    r = client.post("/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    r = client.post("/api/v1/auth/login", json={"username": "a", "password": "b", "admin": True})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["errors"][0]["field"] == "admin"
    r = client.post("/api/v1/auth/login", json={"username": 5, "password": "b"})
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "username"


def test_register_login_me_logout(client: httpx.Client) -> None:
    name = unique("pat")
    ok(client.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD, "display_name": "张三"}), 201)
    token = login(client, name)
    assert ok(client.get("/api/v1/auth/me", headers=auth(token)))["role"] == "patient"
    assert client.post("/api/v1/auth/logout", headers=auth(token)).status_code == 204
    r = client.get("/api/v1/auth/me", headers=auth(token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


def test_no_token_and_bad_token(client: httpx.Client) -> None:
    assert client.get("/api/v1/auth/me").json()["error"]["code"] == "not_authenticated"
    r = client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_authorization_header"


def test_wrong_password_then_lock(client: httpx.Client) -> None:
    name = unique("lock")
    ok(client.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD, "display_name": "李四"}), 201)
    codes = [
        client.post("/api/v1/auth/login", json={"username": name, "password": "wrong-pass-1"}).json()["error"]["code"]
        for _ in range(5)
    ]
    assert codes == ["invalid_credentials"] * 5
    r = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "account_locked"


def test_password_change_revokes_other_tokens(client: httpx.Client) -> None:
    name = unique("pw")
    ok(client.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD, "display_name": "赵六"}), 201)
    first, second = login(client, name), login(client, name)
    r = client.post(
        "/api/v1/auth/password",
        headers=auth(first),
        json={"current_password": PASSWORD, "new_password": "N3w-password"},
    )
    assert r.status_code == 204
    assert client.get("/api/v1/auth/me", headers=auth(first)).status_code == 200
    assert client.get("/api/v1/auth/me", headers=auth(second)).status_code == 401
    assert login(client, name, "N3w-password")


def test_expired_token_is_401(client: httpx.Client) -> None:
    from datetime import timedelta

    from carebridge.core import clock

    name = unique("exp")
    ok(client.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD, "display_name": "钱七"}), 201)
    token = login(client, name)
    clock.shift(timedelta(days=31))
    r = client.get("/api/v1/auth/me", headers=auth(token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
