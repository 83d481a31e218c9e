"""Every route, fed bad input, answers a clear 4xx in the one error shape: never a 500."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.factories import auth, login

BAD_BODIES = [
    b"{not json",
    b"[]",
    b'{"unexpected_field": 1}',
    b'{"patient_id": 5, "slot_id": true, "reason": 7, "name": ["x"], "amount": "9", "days": -1}',
    b"\xff\xfe garbage",
]


def _routes(server) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    return [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if not path.startswith("/static")
    ]


def test_openapi_lists_the_api(server) -> None:  # type: ignore[no-untyped-def]
    routes = _routes(server)
    assert ("POST", "/api/v1/appointments") in routes and len(routes) > 50


# Paths where a user's valid token is still 401: logging in, the reporting platforms' own endpoints (their
# token is the platform's, docs/reporting.md), and the FHIR API (partner apps' OAuth tokens only).
NOT_USER_TOKEN_PATHS = ("/api/v1/auth/", "/api/v1/supervision/platform/", "/api/v1/supervision/ingest", "/fhir/")


@pytest.mark.parametrize("path_value", ["not-a-uuid", str(uuid.UUID(int=0)), "%00", "9" * 300])
def test_bad_ids_and_bodies_never_500(server, admin_token: str, path_value: str) -> None:  # type: ignore[no-untyped-def]
    failures = []
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        # A token of its own: the sweep calls /auth/logout, which revokes the token it is sent with.
        token = login(client, "root", ADMIN_PASSWORD)
        for method, path in _routes(server):
            if path == "/api/v1/auth/logout":
                continue  # it would revoke the sweep's token; logout has its own tests
            url = re.sub(r"\{[^}]+\}", path_value, path)
            for headers in ({}, auth(token)):
                bodies = BAD_BODIES if method in ("POST", "PUT", "PATCH") else [None]
                for body in bodies:
                    request = client.build_request(
                        method,
                        url,
                        content=body,
                        headers=headers | {"content-type": "application/json"},
                        params={"date_from": "yesterday", "limit": "x"},
                    )
                    r = client.send(request, stream=True)  # a live stream that opened is left there
                    if "text/event-stream" not in r.headers.get("content-type", ""):
                        r.read()
                    r.close()
                    assert r.status_code != 401 or not headers or path.startswith(NOT_USER_TOKEN_PATHS), (
                        method,
                        url,
                        r.text,
                    )
                    if r.status_code >= 500:
                        failures.append(f"{method} {url} -> {r.status_code} {r.text[:200]}")
                    elif r.status_code >= 400 and "text/event-stream" not in r.headers.get("content-type", ""):
                        if path.startswith("/fhir/"):
                            assert r.json()["resourceType"] == "OperationOutcome", (method, url, r.text)
                        elif path.startswith("/oauth/"):  # OAuth's own shape, RFC 6749 section 5.2
                            assert set(r.json()) == {"error", "error_description"}, (method, url, r.text)
                        elif r.headers.get("content-type", "").startswith("application/json"):
                            assert set(r.json()) == {"error"}, (method, url, r.text)
    assert not failures, "\n".join(failures)
