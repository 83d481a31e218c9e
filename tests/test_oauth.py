"""OAuth2 / SMART on FHIR through real HTTP: a patient's consent with PKCE, refresh rotation, revocation and
introspection; a backend app's client credentials with private_key_jwt; every refusal in OAuth's error shape."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.factories import PASSWORD, auth, login, make_id_number, make_phone, ok, unique
from tests.test_openplatform import APPS, backend_app, make_developer, patient_app

REDIRECT = "http://127.0.0.1:8765/cb"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def approved(client: httpx.Client, admin_token: str, body: dict) -> dict:
    """An approved app, with its developer's token under ``developer_token``."""
    token = make_developer(client)
    app = ok(client.post(APPS, headers=auth(token), json=body), 201)
    ok(client.post(f"{APPS}/{app['id']}/review", headers=auth(admin_token), json={"decision": "approve"}))
    return {**app, "developer_token": token}


def patient_browser(base_url: httpx.URL, region: str = "110105") -> tuple[httpx.Client, str]:
    """A browser-like client logged in as a new patient (session and CSRF cookies, an ID number of ``region``),
    and the patient's id."""
    browser = httpx.Client(base_url=base_url, follow_redirects=False)
    username = unique("pat")
    body = {"username": username, "password": PASSWORD, "display_name": "李华"}
    ok(browser.post("/api/v1/auth/register", json=body), 201)
    token = login(browser, username)
    profile = {"name": "李华", "id_number": make_id_number(region=region), "phone": make_phone()}
    patient = ok(browser.post("/api/v1/patients", headers=auth(token), json=profile), 201)
    return browser, patient["id"]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(client: httpx.Client, app: dict, challenge: str, **extra: str) -> dict:
    return {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "launch/patient patient/Appointment.rs user/Slot.rs offline_access",
        "state": "st-123",
        "aud": str(client.base_url).rstrip("/") + "/fhir/R4",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def consent(browser: httpx.Client, params: dict, patient_id: str, decision: str = "allow") -> httpx.Response:
    page = browser.get("/oauth/authorize", params=params)
    assert page.status_code == 200, page.text
    form = {**params, "decision": decision, "patient_id": patient_id, "csrf": browser.cookies["cb_csrf"]}
    return browser.post("/oauth/authorize", data=form)


def code_exchange(app: dict, code: str, verifier: str) -> dict[str, str]:
    """The token request that redeems an authorization code (the app's redirect URI and PKCE verifier)."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": app["client_id"],
        "code_verifier": verifier,
    }


def redirect_query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def oauth_error(response: httpx.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"


def test_discovery(client: httpx.Client) -> None:
    for path in ("/.well-known/smart-configuration", "/fhir/R4/.well-known/smart-configuration"):
        config = ok(client.get(path))
        assert config["token_endpoint"].endswith("/oauth/token")
        assert config["code_challenge_methods_supported"] == ["S256"]
        assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
        assert {"launch-standalone", "client-public", "client-confidential-asymmetric", "permission-v2"} <= set(
            config["capabilities"]
        )


def test_patient_consents_with_pkce_then_refresh_rotates(client: httpx.Client, admin_token: str) -> None:  # noqa: PLR0915
    app = approved(
        client, admin_token, patient_app(scopes=["launch/patient", "patient/*.rs", "user/Slot.rs", "offline_access"])
    )
    browser, patient_id = patient_browser(client.base_url)
    verifier, challenge = pkce()
    params = authorize_params(client, app, challenge)

    # not logged in: to the login page, coming back here afterwards
    with httpx.Client(base_url=client.base_url) as anonymous:
        r = anonymous.get("/oauth/authorize", params=params, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Foauth%2Fauthorize%3F"), (
            r.status_code,
            r.headers.get("location"),
        )

    page = browser.get("/oauth/authorize", params=params)
    assert page.status_code == 200 and app["name"] in page.text and "patient/Appointment.rs" in page.text
    assert "127.0.0.1:8765" in page.headers["content-security-policy"]  # the form may be redirected to the app

    answer = redirect_query(consent(browser, params, patient_id))
    assert answer["state"] == "st-123" and answer["code"]
    exchange = code_exchange(app, answer["code"], verifier)
    token = ok(client.post("/oauth/token", data=exchange))
    assert token["token_type"] == "Bearer" and token["patient"] == patient_id
    assert token["scope"] == params["scope"] and token["refresh_token"].startswith("cbr_")
    assert token["expires_in"] == 3600

    introspect = {"token": token["access_token"], "client_id": app["client_id"]}
    seen = ok(client.post("/oauth/introspect", data=introspect))
    assert seen["active"] is True and seen["patient"] == patient_id and seen["client_id"] == app["client_id"]
    assert seen["scope"] == params["scope"] and seen["aud"].endswith("/fhir/R4")

    # the code works once; a second use revokes what the first one gave (RFC 6749 4.1.2)
    oauth_error(client.post("/oauth/token", data=exchange), "invalid_grant")
    assert ok(client.post("/oauth/introspect", data=introspect))["active"] is False

    # a new consent; a wrong verifier fails, and that code is spent
    verifier, challenge = pkce()
    params = authorize_params(client, app, challenge)
    code = redirect_query(consent(browser, params, patient_id))["code"]
    bad = {**exchange, "code": code, "code_verifier": secrets.token_urlsafe(48)}
    oauth_error(client.post("/oauth/token", data=bad), "invalid_grant")
    code = redirect_query(consent(browser, params, patient_id))["code"]
    token = ok(client.post("/oauth/token", data={**exchange, "code": code, "code_verifier": verifier}))

    # refresh: a narrower scope may be asked; a wider one not; each use rotates the refresh token
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": app["client_id"]}
    oauth_error(client.post("/oauth/token", data={**refresh, "scope": "patient/*.cruds"}), "invalid_scope")
    second = ok(client.post("/oauth/token", data=refresh))
    assert second["refresh_token"] != token["refresh_token"] and second["patient"] == patient_id
    old = {"token": token["access_token"], "client_id": app["client_id"]}
    assert ok(client.post("/oauth/introspect", data=old))["active"] is False  # the old access token went with it
    # the rotated refresh token presented again: a replay, and the whole family is revoked
    oauth_error(client.post("/oauth/token", data=refresh), "invalid_grant")
    newest = {"token": second["access_token"], "client_id": app["client_id"]}
    assert ok(client.post("/oauth/introspect", data=newest))["active"] is False

    # revocation ends a grant: access and refresh token together
    code = redirect_query(consent(browser, params, patient_id))["code"]
    third = ok(client.post("/oauth/token", data={**exchange, "code": code, "code_verifier": verifier}))
    ok(client.post("/oauth/revoke", data={"token": third["refresh_token"], "client_id": app["client_id"]}))
    check = {"token": third["access_token"], "client_id": app["client_id"]}
    assert ok(client.post("/oauth/introspect", data=check))["active"] is False
    again = {**refresh, "refresh_token": third["refresh_token"]}
    oauth_error(client.post("/oauth/token", data=again), "invalid_grant")
    # an unknown token revokes as success (RFC 7009), and introspects as inactive
    ok(client.post("/oauth/revoke", data={"token": "cba_nothing", "client_id": app["client_id"]}))
    assert ok(client.post("/oauth/introspect", data={**check, "token": "cba_nothing"})) == {"active": False}
    browser.close()


def test_authorization_refusals(client: httpx.Client, admin_token: str) -> None:
    app = approved(client, admin_token, patient_app())
    browser, patient_id = patient_browser(client.base_url)
    _verifier, challenge = pkce()
    good = authorize_params(client, app, challenge, scope="launch/patient patient/Appointment.rs")

    def refused(error: str, **change: str) -> None:
        params = {**good, **change}
        params = {k: v for k, v in params.items() if v != ""}
        answer = redirect_query(browser.get("/oauth/authorize", params=params))
        assert answer["error"] == error and answer["state"] == "st-123", answer

    refused("invalid_request", code_challenge="", code_challenge_method="")  # PKCE is required
    refused("invalid_request", code_challenge_method="plain")
    refused("invalid_scope", scope="patient/Observation.rs")  # not registered
    refused("invalid_scope", scope="patient/Spaceship.rs")
    refused("invalid_request", aud="https://elsewhere.example/fhir")
    refused("unsupported_response_type", response_type="token")
    # a client or redirect URI that does not check out: an error page, never a redirect
    for change in ({"client_id": "cb_unknown"}, {"redirect_uri": "https://evil.example/cb"}):
        r = browser.get("/oauth/authorize", params={**good, **change})
        assert r.status_code == 400 and "location" not in r.headers, r.text
    # the patient declines
    assert redirect_query(consent(browser, good, patient_id, decision="deny"))["error"] == "access_denied"
    # the form needs the CSRF token and the patient's own profile
    form = {**good, "decision": "allow", "patient_id": patient_id}
    assert browser.post("/oauth/authorize", data=form).status_code == 403
    _other_browser, other_patient = patient_browser(client.base_url)
    form = {**form, "patient_id": other_patient, "csrf": browser.cookies["cb_csrf"]}
    r = browser.post("/oauth/authorize", data=form)
    assert r.status_code == 400 and "location" not in r.headers
    # only patients consent for patient-facing apps
    staff = httpx.Client(base_url=client.base_url)
    dev = unique("dev")
    ok(staff.post("/api/v1/developers", json={"username": dev, "password": PASSWORD, "display_name": "d"}), 201)
    login(staff, dev)
    assert staff.get("/oauth/authorize", params=good).status_code == 403
    # a suspended app cannot start a grant
    review = f"{APPS}/{app['id']}/review"
    ok(client.post(review, headers=auth(admin_token), json={"decision": "suspend", "reason": "审查中"}))
    assert browser.get("/oauth/authorize", params=good).status_code == 400
    # the token endpoint reads forms only, and names what is missing
    oauth_error(client.post("/oauth/token", json={"grant_type": "authorization_code"}), "invalid_request")
    oauth_error(client.post("/oauth/token", data={"grant_type": "password"}), "unsupported_grant_type")
    oauth_error(
        client.post("/oauth/token", data={"grant_type": "authorization_code", "client_id": "cb_x"}), "invalid_client"
    )
    for c in (browser, staff, _other_browser):
        c.close()


def assertion(key: ECKey, client_id: str, audience: str, **claims: object) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "exp": now + 240,
        "jti": secrets.token_hex(16),
        **claims,
    }
    return jwt.encode({"alg": "ES384", "kid": key.kid, "typ": "JWT"}, body, key, algorithms=["ES384"])


def test_backend_app_client_credentials_with_private_key_jwt(client: httpx.Client, admin_token: str) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    body = backend_app(jwks={"keys": [key.as_dict(private=False)]}, scopes=["system/Appointment.rs", "system/Slot.rs"])
    app = approved(client, admin_token, body)
    audience = str(client.base_url).rstrip("/") + "/oauth/token"

    def request(signed: str, scope: str = "system/Slot.rs") -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        }
        return client.post("/oauth/token", data=form)

    signed = assertion(key, app["client_id"], audience)
    token = ok(request(signed))
    assert token["expires_in"] == 300 and "refresh_token" not in token and token["scope"] == "system/Slot.rs"
    introspect = {
        "token": token["access_token"],
        "client_id": app["client_id"],
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(key, app["client_id"], audience),
    }
    assert ok(client.post("/oauth/introspect", data=introspect))["active"] is True

    oauth_error(request(signed), "invalid_client")  # the same jti again: a replay
    other = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    oauth_error(request(assertion(other, app["client_id"], audience)), "invalid_client")  # not its key
    oauth_error(request(assertion(key, app["client_id"], "https://elsewhere.example/token")), "invalid_client")
    oauth_error(request(assertion(key, app["client_id"], audience, exp=int(time.time()) + 3600)), "invalid_client")
    oauth_error(request(assertion(key, app["client_id"], audience, exp=int(time.time()) - 120)), "invalid_client")
    oauth_error(request(assertion(key, app["client_id"], audience), scope="system/Patient.r"), "invalid_scope")
    oauth_error(request(assertion(key, app["client_id"], audience), scope="patient/Slot.rs"), "invalid_scope")
    oauth_error(request("not.a.jwt"), "invalid_client")
    form = {"grant_type": "client_credentials", "scope": "system/Slot.rs", "client_id": app["client_id"]}
    oauth_error(client.post("/oauth/token", data=form), "invalid_client")  # no assertion at all

    # ten requests with one assertion at the same moment: exactly one token
    signed = assertion(key, app["client_id"], audience)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: request(signed).status_code, range(10)))
    assert sorted(answers) == [200] + [400] * 9, answers

    # revoked by the app itself; a suspended app gets nothing
    fresh = ok(request(assertion(key, app["client_id"], audience)))
    revoke = {
        "token": fresh["access_token"],
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(key, app["client_id"], audience),
    }
    ok(client.post("/oauth/revoke", data=revoke))
    introspect["client_assertion"] = assertion(key, app["client_id"], audience)
    assert ok(client.post("/oauth/introspect", data={**introspect, "token": fresh["access_token"]}))["active"] is False
    review = f"{APPS}/{app['id']}/review"
    ok(client.post(review, headers=auth(admin_token), json={"decision": "suspend", "reason": "审查中"}))
    oauth_error(request(assertion(key, app["client_id"], audience)), "invalid_client")
