"""The open platform's partners: developer accounts, partner apps and their rules, a platform admin's review, and
hospitals granting and revoking access (an app acts only for hospitals that granted it)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import uuid

import httpx
from joserfc.jwk import ECKey

from carebridge.database.engine import Database
from carebridge.openplatform import service
from tests.factories import PASSWORD, auth, login, make_hospital, ok, unique
from tests.test_supervision import wait_for

APPS = "/api/v1/partner-apps"


def make_developer(client: httpx.Client) -> str:
    username = unique("dev")
    body = {"username": username, "password": PASSWORD, "display_name": "某健康科技 开发者"}
    assert ok(client.post("/api/v1/developers", json=body), 201)["role"] == "developer"
    return login(client, username)


def patient_app(**extra) -> dict:  # type: ignore[no-untyped-def]
    return {
        "organisation": "某健康科技有限公司",
        "name": unique("约号助手"),
        "kind": "patient_facing",
        "redirect_uris": ["https://app.example.cn/callback", "http://127.0.0.1:8765/cb"],
        "scopes": ["launch/patient", "openid", "fhirUser", "patient/Appointment.crs", "user/Slot.rs"],
        "webhook_url": "https://app.example.cn/hooks/carebridge",
        **extra,
    }


def backend_app(**extra) -> dict:  # type: ignore[no-untyped-def]
    key = ECKey.generate_key("P-256")
    return {
        "organisation": "某保险公司",
        "name": unique("理赔后台"),
        "kind": "backend",
        "scopes": ["system/Appointment.rs", "system/Patient.r"],
        "jwks": {"keys": [key.as_dict(private=False)]},
        **extra,
    }


def test_developers_register_apps_with_checked_uris_scopes_and_keys(client: httpx.Client) -> None:
    dev = auth(make_developer(client))
    app = ok(client.post(APPS, headers=dev, json=patient_app()), 201)
    assert app["status"] == "pending" and app["client_id"].startswith("cb_") and app["jwks"] is None
    backend = ok(client.post(APPS, headers=dev, json=backend_app()), 201)
    assert backend["kind"] == "backend" and backend["jwks"]["keys"][0]["kty"] == "EC"
    private = ECKey.generate_key("P-256").as_dict(private=True)
    cases = [
        (patient_app(redirect_uris=["http://evil.example.com/cb"]), "bad_redirect_uri", "redirect_uris.0"),
        (patient_app(redirect_uris=["https://a.cn/cb#frag"]), "bad_redirect_uri", "redirect_uris.0"),
        (patient_app(redirect_uris=["notaurl"]), "bad_redirect_uri", "redirect_uris.0"),
        (patient_app(redirect_uris=[]), "redirect_uri_required", "redirect_uris"),
        (patient_app(scopes=["patient/Spaceship.rs"]), "unknown_scope", "scopes.0"),
        (patient_app(scopes=["patient/Appointment.write"]), "unknown_scope", "scopes.0"),
        (patient_app(scopes=["patient/Appointment.dc"]), "unknown_scope", "scopes.0"),
        (patient_app(scopes=["system/Appointment.rs"]), "scope_not_allowed", "scopes"),
        (patient_app(jwks=backend_app()["jwks"]), "jwks_not_allowed", "jwks"),
        (patient_app(webhook_url="http://hooks.example.cn/x"), "bad_webhook_url", "webhook_url"),
        (backend_app(jwks=None), "jwks_required", "jwks"),
        (backend_app(jwks={"keys": [private]}), "private_key_in_jwks", "jwks"),
        (backend_app(jwks={"keys": [{"kty": "RSA", "n": "abc"}]}), "bad_jwks", "jwks"),
        (backend_app(jwks={"keys": []}), "bad_jwks", "jwks"),
        (backend_app(scopes=["patient/Appointment.rs"]), "scope_not_allowed", "scopes"),
        (backend_app(redirect_uris=["https://a.cn/cb"]), "redirect_uri_not_allowed", "redirect_uris"),
    ]
    for body, code, field in cases:
        r = client.post(APPS, headers=dev, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == code and r.json()["error"]["details"]["field"] == field, r.text
    # shape errors: unknown fields, wrong types, no scopes
    for body in (patient_app(extra=1), patient_app(scopes="openid"), patient_app(scopes=[]), patient_app(kind="bot")):
        assert client.post(APPS, headers=dev, json=body).status_code == 422
    # only developers register; nothing was stored by the refusals
    other_developer = make_developer(client)
    with httpx.Client(base_url=client.base_url) as anonymous:
        assert anonymous.post(APPS, json=patient_app()).status_code == 401
    mine = ok(client.get(APPS, headers=dev))
    assert {a["id"] for a in mine} == {app["id"], backend["id"]}
    # another developer sees none of them
    other = auth(other_developer)
    assert ok(client.get(APPS, headers=other)) == []
    assert client.get(f"{APPS}/{app['id']}", headers=other).status_code == 404


def acts_for(server, app_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The hospitals the app may act for now, as token issuance will ask (``granted_hospitals``)."""

    async def read() -> list[str]:
        db = Database(server.settings)
        try:
            async with db.read() as session:
                return [str(h) for h in await service.granted_hospitals(session, uuid.UUID(app_id))]
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_review_and_hospital_grants(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]  # noqa: PLR0915
    dev = auth(make_developer(client))
    app = ok(client.post(APPS, headers=dev, json=patient_app()), 201)
    admin = auth(admin_token)
    x, y = make_hospital(client, admin_token), make_hospital(client, admin_token)
    hx, hy = auth(x.admin_token), auth(y.admin_token)
    grant_x = f"/api/v1/hospitals/{x.hospital_id}/partner-apps/{app['id']}"
    # a pending app is not offered to hospitals and cannot be granted
    assert app["id"] not in [a["id"] for a in ok(client.get(APPS, headers=hx))]
    r = client.put(grant_x, headers=hx)
    assert r.status_code == 409 and r.json()["error"]["code"] == "app_not_approved"
    # only platform admins review; suspending and rejecting need a reason
    review = f"{APPS}/{app['id']}/review"
    assert client.post(review, headers=dev, json={"decision": "approve"}).status_code == 403
    assert client.post(review, headers=hx, json={"decision": "approve"}).status_code == 403
    r = client.post(review, headers=admin, json={"decision": "suspend", "reason": "还没批准"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "app_status"
    assert client.post(review, headers=admin, json={"decision": "approve", "extra": 1}).status_code == 422
    # two admins approve at once: one wins
    with concurrent.futures.ThreadPoolExecutor(2) as pool, httpx.Client(base_url=client.base_url) as c2:
        answers = list(pool.map(lambda c: c.post(review, headers=admin, json={"decision": "approve"}), [client, c2]))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    assert ok(client.get(f"{APPS}/{app['id']}", headers=dev))["status"] == "approved"
    # a hospital admin grants their own hospital only
    assert app["id"] in [a["id"] for a in ok(client.get(APPS, headers=hx, params={"status": "approved"}))]
    assert client.put(grant_x, headers=hy).status_code == 403
    granted = ok(client.put(grant_x, headers=hx), 201)
    assert granted["hospital_id"] == x.hospital_id and granted["revoked_at"] is None
    again = client.put(grant_x, headers=hx)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_granted"
    assert [g["app_id"] for g in ok(client.get(f"/api/v1/hospitals/{x.hospital_id}/partner-apps", headers=hx))] == [
        app["id"]
    ]
    assert client.get(f"/api/v1/hospitals/{x.hospital_id}/partner-apps", headers=hy).status_code == 403
    assert ok(client.get(f"/api/v1/hospitals/{y.hospital_id}/partner-apps", headers=hy)) == []
    # the app's own sandbox hospital is granted from the approval on
    sandbox = ok(client.get(f"{APPS}/{app['id']}/sandbox", headers=dev))["hospital_id"]
    grants = ok(client.get(f"{APPS}/{app['id']}/grants", headers=dev))
    assert sorted(g["hospital_id"] for g in grants) == sorted([x.hospital_id, sandbox])
    assert sorted(acts_for(server, app["id"])) == sorted([x.hospital_id, sandbox])
    # suspended: the grant stays as consent, but the app acts for no hospital until approved again
    ok(client.post(review, headers=admin, json={"decision": "suspend", "reason": "数据使用超出申报范围"}))
    assert app["id"] not in [a["id"] for a in ok(client.get(APPS, headers=hx))]
    assert client.put(f"/api/v1/hospitals/{y.hospital_id}/partner-apps/{app['id']}", headers=hy).status_code == 409
    assert acts_for(server, app["id"]) == []
    ok(client.post(review, headers=admin, json={"decision": "approve"}))
    assert sorted(acts_for(server, app["id"])) == sorted([x.hospital_id, sandbox])  # the same sandbox, kept
    # revoke: another hospital cannot, then the hospital does; revoking twice is 404
    assert client.delete(grant_x, headers=hy).status_code == 403
    revoked = ok(client.delete(grant_x, headers=hx))
    assert revoked["revoked_at"] is not None
    assert client.delete(grant_x, headers=hx).status_code == 404
    assert acts_for(server, app["id"]) == [sandbox]
    regranted = ok(client.put(grant_x, headers=hx), 201)  # consent may be given again
    assert regranted["id"] != granted["id"]
    history = ok(client.get(f"/api/v1/hospitals/{x.hospital_id}/partner-apps", headers=hx))
    assert len(history) == 2 and sum(1 for g in history if g["revoked_at"] is None) == 1
    # unknown ids
    assert client.put(f"/api/v1/hospitals/{x.hospital_id}/partner-apps/{x.hospital_id}", headers=hx).status_code == 404
    assert client.get(f"{APPS}/not-a-uuid", headers=dev).status_code == 422

    # every step is an event for the regulator's trace and for webhooks later
    def trace() -> list[str]:
        params = {"type": "partner_app.*", "hospital_id": x.hospital_id}
        return [e["type"] for e in ok(client.get("/api/v1/supervision/events", headers=admin, params=params))]

    kinds = wait_for(trace, lambda k: k.count("partner_app.access_granted") == 2)
    assert kinds.count("partner_app.access_revoked") == 1, kinds


def test_rejected_apps_stay_rejected(client: httpx.Client, admin_token: str) -> None:
    dev = auth(make_developer(client))
    body = copy.deepcopy(backend_app())
    app = ok(client.post(APPS, headers=dev, json=body), 201)
    review = f"{APPS}/{app['id']}/review"
    assert client.post(review, headers=auth(admin_token), json={"decision": "reject"}).status_code == 422
    ok(client.post(review, headers=auth(admin_token), json={"decision": "reject", "reason": "材料不全"}))
    r = client.post(review, headers=auth(admin_token), json={"decision": "approve"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "app_status"
    shown = ok(client.get(f"{APPS}/{app['id']}", headers=dev))
    assert shown["status"] == "rejected" and shown["status_reason"] == "材料不全"


def test_developer_changes_names_uris_and_keys(client: httpx.Client) -> None:
    dev = auth(make_developer(client))
    app = ok(client.post(APPS, headers=dev, json=patient_app()), 201)
    url = f"{APPS}/{app['id']}"
    changed = ok(client.patch(url, headers=dev, json={"name": "新名字", "redirect_uris": ["https://app.example/cb2"]}))
    assert changed["name"] == "新名字" and changed["redirect_uris"] == ["https://app.example/cb2"]
    cases = [
        ({"redirect_uris": ["http://app.example/cb"]}, "bad_redirect_uri"),
        ({"redirect_uris": []}, "redirect_uri_required"),
        ({"redirect_uris": None}, "invalid_input"),
        ({"scopes": ["patient/*.cruds"]}, "invalid_input"),  # what was approved stays
        ({"jwks": {"keys": []}}, "jwks_not_allowed"),
    ]
    for body, code in cases:
        r = client.patch(url, headers=dev, json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == code, (body, r.text)
    assert ok(client.get(url, headers=dev))["redirect_uris"] == ["https://app.example/cb2"]  # nothing changed
    assert client.patch(url, headers=auth(make_developer(client)), json={"name": "别人的"}).status_code == 404
    # a backend app rotates its keys
    backend = ok(client.post(APPS, headers=dev, json=backend_app()), 201)
    new_key = ECKey.generate_key("P-256").as_dict(private=False)
    rotated = ok(client.patch(f"{APPS}/{backend['id']}", headers=dev, json={"jwks": {"keys": [new_key]}}))
    assert rotated["jwks"]["keys"][0]["x"] == new_key["x"]
