"""Partner apps' rate limits and daily quotas (429 with Retry-After, as OperationOutcomes), their usage figures
by hour, endpoint and status, and alerts on error-rate spikes."""

from __future__ import annotations

import uuid

import httpx

from tests.factories import auth, ok
from tests.test_fhir import FHIR, World
from tests.test_openplatform import APPS, make_developer
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
    assert figures["rate_limit_per_second"] == 2 and figures["calls_today"] == len(statuses)
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
