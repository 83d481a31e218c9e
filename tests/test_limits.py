"""Partner apps' rate limits and daily quotas (429 with Retry-After, as OperationOutcomes), their usage figures
by hour, endpoint and status, and alerts on error-rate spikes."""

from __future__ import annotations

import uuid

import httpx

from tests.factories import auth, ok
from tests.test_fhir import FHIR, World
from tests.test_oauth import ASSERTION_TYPE, approved, assertion, oauth_error
from tests.test_openplatform import APPS, backend_app, make_developer
from tests.test_supervision import wait_for


def test_rate_limit_quota_usage_and_alerts(client: httpx.Client, admin_token: str) -> None:
    world = World(client, admin_token)
    app_id = world.app["id"]
    limits = f"{APPS}/{app_id}/limits"
    admin, dev = auth(admin_token), auth(world.developer)
    # only platform admins set limits; bad values change nothing
    assert client.put(limits, headers=dev, json={"rate_limit_per_second": 2}).status_code == 403
    for body in ({"rate_limit_per_second": 0}, {"daily_quota": "many"}, {"rate_limit_per_second": 2, "burst": 1}):
        assert client.put(limits, headers=admin, json=body).status_code == 422
    assert ok(client.put(limits, headers=admin, json={"rate_limit_per_second": 2}))["rate_limit_per_second"] == 2

    h = auth(world.token)
    search = f"{FHIR}/Slot?schedule={world.schedule['id']}"
    answers = [client.get(search, headers=h) for _ in range(12)]
    statuses = [r.status_code for r in answers]
    assert statuses[:4] == [200] * 4 and 429 in statuses, statuses  # a burst of twice the rate, then refused
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "rate_limited"

    # usage by endpoint and status, as the developer sees it
    usage_url = f"{APPS}/{app_id}/usage"

    def rows() -> dict[tuple[str, int], int]:
        found = ok(client.get(usage_url, headers=dev))
        return {(r["endpoint"], r["status"]): r["count"] for r in found["rows"]}

    seen = wait_for(rows, lambda r: r.get(("GET /fhir/R4/Slot", 429), 0) == statuses.count(429))
    assert seen[("GET /fhir/R4/Slot", 200)] == statuses.count(200)
    figures = ok(client.get(usage_url, headers=dev))
    # the calls: the searches, and the code exchange at the token endpoint that gave the patient's token
    assert figures["rate_limit_per_second"] == 2 and figures["calls_today"] == len(statuses) + 1
    assert seen[("POST /oauth/token", 200)] == 1
    assert client.get(usage_url, headers=auth(make_developer(client))).status_code == 404

    # a daily quota: once used up, every call is refused until midnight (UTC)
    ok(client.put(limits, headers=admin, json={"rate_limit_per_second": 1000, "daily_quota": len(statuses) + 3}))
    answers = [client.get(f"{FHIR}/Patient/{uuid.uuid4()}", headers=h) for _ in range(25)]
    codes = [r.json()["issue"][0]["details"]["coding"][0]["code"] for r in answers]
    assert codes.count("not_found") <= 3 + 1 and "quota_exceeded" in codes, codes

    # 25 errors of 37 calls: an error-rate alert for the developer and the platform admins
    alerts = wait_for(
        lambda: ok(client.get(f"{APPS}/{app_id}/alerts", headers=dev)),
        lambda a: any(x["kind"] == "error_rate" for x in a),
    )
    assert alerts[0]["client_id"] == world.app["client_id"] and alerts[0]["level"] == "warning"
    everyone = ok(client.get("/api/v1/partner-app-alerts", headers=admin))
    assert any(a["app_id"] == app_id and a["kind"] == "error_rate" for a in everyone)
    assert client.get("/api/v1/partner-app-alerts", headers=dev).status_code == 403
    # back to the defaults
    assert ok(client.put(limits, headers=admin, json={}))["daily_quota"] is None
    assert client.get(search, headers=h).status_code == 200


def test_token_endpoint_limits_are_taken_only_by_answered_requests(client: httpx.Client, admin_token: str) -> None:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    app = approved(
        client, admin_token, backend_app(jwks={"keys": [key.as_dict(private=False)]}, scopes=["system/Slot.rs"])
    )
    ok(client.put(f"{APPS}/{app['id']}/limits", headers=auth(admin_token), json={"rate_limit_per_second": 1}))
    audience = str(client.base_url).rstrip("/") + "/oauth/token"

    def request(signing_key: ECKey) -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "scope": "system/Slot.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(signing_key, app["client_id"], audience),
        }
        return client.post("/oauth/token", data=form)

    # anyone may name the app (its client id is public): forged requests are refused and take nothing
    forger = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    for _ in range(6):
        oauth_error(request(forger), "invalid_client")
    # the app's own: a burst of twice its rate, then 429 in OAuth's shape with Retry-After
    answers = [request(key) for _ in range(6)]
    statuses = [r.status_code for r in answers]
    assert statuses[:2] == [200, 200] and 429 in statuses, statuses
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1
    assert refused.headers["cache-control"] == "no-store"
    # a new limit is in force at once
    ok(client.put(f"{APPS}/{app['id']}/limits", headers=auth(admin_token), json={"rate_limit_per_second": 1000}))
    assert request(key).status_code == 200
