"""OAuth2 / SMART on FHIR endpoints: discovery, the authorization (consent) page, token, revocation,
introspection. They answer in OAuth's own error shape (RFC 6749 section 5.2: ``{"error", "error_description"}``),
which every OAuth client library reads, not the JSON API's (docs/openplatform.md)."""

from __future__ import annotations

import base64
import hmac
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError, OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from carebridge.auth.dependencies import CSRF_COOKIE
from carebridge.auth.models import Role
from carebridge.openplatform import scopes as smart
from carebridge.openplatform import tokens, usage
from carebridge.openplatform.authorization import DEFER_JTI, ISSUER, Consent, SmartAuthorizationServer
from carebridge.openplatform.authorization import Request as OAuthRequest
from carebridge.patients import service as patients
from carebridge.web.pages import render, session_principal

router = APIRouter(tags=["OAuth2 / SMART on FHIR"])
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# what the consent form may carry besides the authorization request itself
CONSENT_FIELDS = ("decision", "patient_id", "csrf")


def issuer(request: Request) -> str:
    return request.app.state.settings.public_url or str(request.base_url).rstrip("/")


def fhir_base(request: Request) -> str:
    return f"{issuer(request)}/fhir/R4"


def server(request: Request) -> SmartAuthorizationServer:
    found = getattr(request.app.state, "oauth", None)
    if found is None:
        found = request.app.state.oauth = SmartAuthorizationServer(request.app.state.db, request.app.state.settings)
    return found


def _error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=NO_STORE)


def _answer(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    if status in (301, 302, 303):
        return Response(status_code=302, headers={**dict(headers), **NO_STORE})
    extra = {k: v for k, v in headers if k.lower() != "content-type"}
    return JSONResponse(body, status_code=status, headers={**extra, **NO_STORE})


async def _read(request: Request, *, form_only: bool) -> OAuthRequest | JSONResponse:
    """The request as Authlib reads it; a body that is not a form is refused (invalid_request)."""
    ISSUER.set(issuer(request))
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
            return _error("invalid_request", f"send the parameters as {FORM}")
        form = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
    query = [] if form_only else list(request.query_params.multi_items())
    uri = f"{issuer(request)}{request.url.path}"
    try:
        return OAuthRequest(request.method, uri, dict(request.headers), query, form)
    except OAuth2Error as exc:  # insecure_transport: plain http to a host that is not this machine
        return _error(exc.error, exc.get_error_description())


def smart_configuration(request: Request) -> dict[str, Any]:
    base = issuer(request)
    return {
        "issuer": base,
        "jwks_uri": None,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384", "RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": [
            *smart.OTHER_SCOPES,
            *(f"{c}/{r}.cruds" for c in ("patient", "user", "system") for r in ("*", *smart.FHIR_RESOURCES)),
        ],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "permission-patient",
            "permission-user",
            "permission-v2",
            "permission-offline",
            "permission-online",
        ],
    }


@router.get("/.well-known/smart-configuration", summary="SMART on FHIR discovery (also under /fhir/R4)")
@router.get("/fhir/R4/.well-known/smart-configuration", include_in_schema=False)
async def discovery(request: Request) -> JSONResponse:
    config = smart_configuration(request)
    config.pop("jwks_uri")  # access tokens are opaque: there are no platform keys to publish
    return JSONResponse(config)


def _claimed_client_id(values: dict[str, str]) -> str | None:
    """The client a token-endpoint request says it is (``client_id``, or the ``sub`` of its client assertion),
    before anything is verified: only to find the app's limits."""
    if values.get("client_id"):
        return values["client_id"][:80]
    parts = values.get("client_assertion", "").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub[:80] if isinstance(sub, str) else None


async def _limited_client(request: Request, form: dict[str, str]) -> tokens.Client | None:
    client_id = _claimed_client_id(form)
    if client_id is None:
        return None
    found = tokens.CLIENTS.get(client_id)
    if found is None:
        async with request.app.state.db.read() as session:
            found = await tokens.client(session, client_id)
    return found


async def _form_endpoint(request: Request, method: str, *args: str) -> Response:
    """A form POST answered by one of Authlib's server methods (``create_token_response``, ...).

    The app's rate limit and daily quota apply (docs/openplatform.md): a request finding them used up is
    429 (OAuth's error shape, with ``Retry-After``); only a successful answer takes from them, so requests
    that merely name an app (its client id is public) cannot use up its limits."""
    oauth = await _read(request, form_only=True)
    if isinstance(oauth, Response):
        return oauth
    client = await _limited_client(request, oauth.form)
    if client is not None:
        rate, quota = usage.limits(request.app.state.settings, client.rate_limit_per_second, client.daily_quota)
        refusal = usage.METER.refusal(client.id, rate=rate, daily_quota=quota)
        if refusal is not None:
            response = _error(refusal.code, refusal.message, status=429)
            response.headers.update(refusal.headers or {})
            return response
    srv = server(request)
    answer = _answer(await srv.respond(getattr(srv, method), *args, oauth))
    if client is not None and answer.status_code < 400:
        usage.METER.charge(client.id)
        request.state.partner = client  # counted in the app's usage
    return answer


@router.post("/oauth/token", summary="Token endpoint: authorization_code (PKCE), refresh_token, client_credentials")
async def token(request: Request) -> Response:
    DEFER_JTI.set(True)
    return await _form_endpoint(request, "create_token_response")


@router.post("/oauth/revoke", summary="Revoke a token (RFC 7009): the access token and its refresh token")
async def revoke(request: Request) -> Response:
    return await _form_endpoint(request, "create_endpoint_response", "revocation")


@router.post("/oauth/introspect", summary="Introspect one of the app's own tokens (RFC 7662)")
async def introspect(request: Request) -> Response:
    return await _form_endpoint(request, "create_endpoint_response", "introspection")


# --- the authorization endpoint: a page where the patient consents ------------------------------------------


def _page_error(request: Request, principal: Any, title: str, description: str, status: int = 400) -> Response:
    return render(
        request,
        "oauth/error.html",
        principal=principal,
        page="oauth-error",
        status_code=status,
        title=title,
        description=description,
    )


def _redirect_error(uri: str, error: OAuth2Error, state: str | None) -> Response:
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    if state:
        params.append(("state", state))
    return Response(status_code=302, headers={"Location": add_params_to_uri(uri, params), **NO_STORE})


async def _consent_grant(request: Request, oauth: OAuthRequest, principal: Any) -> Any:
    """Authlib's check of the authorization request, and SMART's ``aud``; an error page when the client or its
    redirect URI is wrong (never a redirect to an unchecked URI), else a redirect with the error."""
    srv = server(request)
    try:
        grant = await srv.respond(srv.get_consent_grant, oauth, None)
    except OAuth2Error as exc:
        if exc.redirect_uri:
            return _redirect_error(exc.redirect_uri, exc, oauth.payload.state)
        description = f"{exc.error}: {exc.get_error_description()}"
        return _page_error(request, principal, "授权请求无效 Invalid request", description)
    redirect_uri = oauth.payload.redirect_uri or grant.client.get_default_redirect_uri()
    aud = oauth.payload.data.get("aud")
    if aud != fhir_base(request):
        problem = InvalidRequestError(f"aud must be this server's FHIR base URL, {fhir_base(request)}")
        return _redirect_error(redirect_uri, problem, oauth.payload.state)
    grant.redirect_uri = redirect_uri
    return grant


def _consent_headers(response: Response, redirect_uri: str) -> Response:
    # the form posts here and is then redirected to the app: the browser checks form-action on both
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(redirect_uri))
    csp = response.headers["Content-Security-Policy"].replace("form-action 'self'", f"form-action 'self' {origin}")
    response.headers["Content-Security-Policy"] = csp
    return response


@router.get("/oauth/authorize", include_in_schema=False)
async def authorize_page(request: Request) -> Response:
    principal = await session_principal(request)
    oauth = await _read(request, form_only=False)
    if isinstance(oauth, Response):
        return oauth
    grant = await _consent_grant(request, oauth, principal)
    if isinstance(grant, Response):
        return grant
    if principal is None:
        target = f"{request.url.path}?{request.url.query}"
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    if principal.role != Role.patient:
        return _page_error(
            request,
            principal,
            "仅限患者账号 Patients only",
            "患者应用只能由患者本人授权。A patient's app is authorized by the patient: log in with a patient account.",
            status=403,
        )
    db = request.app.state.db
    async with db.transaction() as session:
        choices = await patients.my_patients(session, principal=principal)
    app = grant.client.app
    requested = oauth.payload.scope.split()
    response = render(
        request,
        "oauth/consent.html",
        principal=principal,
        page="oauth-consent",
        app=app,
        scopes=[(s, *smart.describe(s)) for s in requested],
        patients=choices,
        fields=[(k, v) for k, v in oauth.payload.data.items() if k not in CONSENT_FIELDS],
        csrf=request.cookies.get(CSRF_COOKIE, ""),
        redirect_host=urlsplit(grant.redirect_uri).netloc,
    )
    return _consent_headers(response, grant.redirect_uri)


@router.post("/oauth/authorize", include_in_schema=False)
async def authorize_decision(request: Request) -> Response:
    principal = await session_principal(request)
    oauth = await _read(request, form_only=True)
    if isinstance(oauth, Response):
        return oauth
    if principal is None or principal.role != Role.patient:
        return _page_error(request, principal, "请先登录 Log in first", "log in with a patient account", status=401)
    sent = oauth.payload.data.get("csrf", "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent, expected):
        return _page_error(request, principal, "请求已失效 Expired form", "reload the page and try again", status=403)
    grant = await _consent_grant(request, oauth, principal)
    if isinstance(grant, Response):
        return grant
    state = oauth.payload.state
    if oauth.payload.data.get("decision") != "allow":
        return _redirect_error(grant.redirect_uri, AccessDeniedError("the patient declined"), state)
    try:
        patient_id = uuid.UUID(oauth.payload.data.get("patient_id", ""))
    except ValueError:
        return _page_error(request, principal, "请选择就诊人 Choose a patient", "choose who the app acts for")
    db = request.app.state.db
    async with db.read() as session:
        relation = await patients.linked_relation(session, user_id=principal.user_id, patient_id=patient_id)
    if relation is None:
        return _page_error(request, principal, "就诊人无效 Unknown patient", "that patient is not linked to you")
    srv = server(request)
    consent = Consent(user_id=principal.user_id, patient_id=patient_id)
    return _answer(await srv.respond(srv.create_authorization_response, oauth, consent, grant))
