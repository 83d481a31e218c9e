"""FastAPI dependencies: the database, the caller, role checks.

Callers authenticate with ``Authorization: Bearer <token>``; the web pages send the same token in the
``cb_session`` cookie, and every unsafe cookie-authenticated request must echo the ``cb_csrf`` cookie in an
``X-CSRF-Token`` header (double submit). A partner app's OAuth access token (``cba_...``) is accepted only on
the endpoints marked with ``partner_scope``: the SMART scope the endpoint needs decides, and the patient the
principal stands for is limited to the token's reach (``openplatform.json_access`` resolves these tokens; it
registers itself here, so auth does not import the open platform). Resolved principals are cached per worker for
``principal_cache_seconds`` (never past the token's own expiry); logout and a password change evict them in
every worker when they commit (``core.cache``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from carebridge.auth import service
from carebridge.auth.models import Role
from carebridge.auth.principal import PartnerReach, Principal
from carebridge.core import clock
from carebridge.core.batching import Lookups
from carebridge.core.errors import Forbidden, Unauthorized
from carebridge.database.engine import Database

SESSION_COOKIE = "cb_session"
CSRF_COOKIE = "cb_csrf"
_SAFE = {"GET", "HEAD", "OPTIONS"}
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ScopeNeed:
    """The SMART scope a JSON endpoint needs from a partner token: ``resource`` and one of ``c r u d s``."""

    resource: str
    permission: str


PartnerResolver = Callable[[HTTPConnection, str, ScopeNeed], Awaitable[PartnerReach]]
_PARTNER_RESOLVERS: dict[str, PartnerResolver] = {}


def accept_partner_tokens(prefix: str, resolver: PartnerResolver) -> None:
    """Tokens starting with ``prefix`` are resolved by ``resolver`` (which checks the token, meters the call
    and the scope, and answers what the token reaches)."""
    _PARTNER_RESOLVERS[prefix] = resolver


def partner_scope(resource: str, permission: str) -> Callable[[_Endpoint], _Endpoint]:
    """Mark an endpoint as open to partner apps' tokens holding a scope for ``permission`` on ``resource``
    (put it under the router's decorator)."""

    def mark(endpoint: _Endpoint) -> _Endpoint:
        endpoint.__smart__ = ScopeNeed(resource, permission)  # type: ignore[attr-defined]
        note = (  # FastAPI takes the docstring as the operation's description in the OpenAPI
            f"Open to partner apps' OAuth tokens with a SMART scope for `{resource}.{permission}` (for example "
            f"`patient/{resource}.{permission}`), within the token's patients and the hospitals that granted the "
            "app (docs/openplatform.md)."
        )
        endpoint.__doc__ = f"{endpoint.__doc__.strip()}\n\n{note}" if endpoint.__doc__ else note
        return endpoint

    return mark


async def partner_reach(request: HTTPConnection, token: str) -> PartnerReach | None:
    """What a partner token reaches on this endpoint; None when ``token`` is not a partner token. 403
    ``partner_token_not_accepted`` on an endpoint not open to partner apps."""
    resolver = next((r for prefix, r in _PARTNER_RESOLVERS.items() if token.startswith(prefix)), None)
    if resolver is None:
        return None
    need = getattr(request.scope.get("endpoint"), "__smart__", None)
    if need is None:
        raise Forbidden(
            "partner_token_not_accepted",
            "partner apps' tokens are not accepted here: see the endpoints open to them in docs/openplatform.md",
        )
    return await resolver(request, token, need)


def _acting_patient(reach: PartnerReach) -> Principal:
    if reach.user_id is None:
        raise Forbidden("patient_context_required", "this needs a patient's token (authorization code flow)")
    return Principal(
        user_id=reach.user_id,
        username=reach.client_id,
        role=Role.patient,
        partner_channel=reach.channel,
        reach=reach,
    )


async def get_db(request: Request) -> Database:
    return request.app.state.db


def bearer_token(request: HTTPConnection) -> tuple[str | None, bool]:
    """The token and whether it came from the cookie (requests and WebSockets alike)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("bad_authorization_header", "use 'Authorization: Bearer <token>'")
        return value.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


async def resolve(request: HTTPConnection, token: str) -> Principal | None:
    digest = service.token_digest(token)
    hit = service.PRINCIPALS.get(digest)
    if hit is not None and (hit[1] is None or hit[1] > clock.now()):
        return hit[0]
    found = await _LOOKUPS.get(request.app.state.db, digest)
    principal, expires_at = found or (None, None)
    service.PRINCIPALS.set(digest, (principal, expires_at))
    return principal


# Tokens not in the cache are looked up together (a release moment's new callers: one statement).
_LOOKUPS: Lookups[str, tuple[Principal | None, datetime | None]] = Lookups(service.principals_for_digests)


async def optional_principal(request: Request) -> Principal | None:
    token, from_cookie = bearer_token(request)
    if token is None:
        return None
    reach = None if from_cookie else await partner_reach(request, token)
    if reach is not None:
        principal = _acting_patient(reach)
        request.state.principal = principal
        return principal
    principal = await resolve(request, token)
    if principal is None:
        if from_cookie:
            return None
        raise Unauthorized("invalid_token", "the token is unknown, expired or revoked")
    if from_cookie and request.method not in _SAFE:
        sent = request.headers.get("x-csrf-token", "")
        expected = request.cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent, expected):
            raise Forbidden("csrf_failed", "missing or wrong X-CSRF-Token header")
    request.state.principal = principal
    return principal


async def optional_partner(request: Request) -> PartnerReach | None:
    """For public endpoints that answer partner apps differently (their own pool, their hospitals): what a
    partner token reaches; None for anyone else (the endpoint ignores other tokens)."""
    token, from_cookie = bearer_token(request)
    if token is None or from_cookie:
        return None
    return await partner_reach(request, token)


async def current_principal(principal: Principal | None = Depends(optional_principal)) -> Principal:
    if principal is None:
        raise Unauthorized("not_authenticated", "log in and send 'Authorization: Bearer <token>'")
    return principal


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require_role(*roles)
        return principal

    return dependency
