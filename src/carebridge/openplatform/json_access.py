"""Partner apps' OAuth access tokens: admitting a call (the token, the app's limits) for the FHIR API and the
JSON API, and what a token reaches on the JSON endpoints open to partner apps (docs/openplatform.md, "The JSON
API for partner apps").

On the JSON API a token acts for the patient account that authorised it, and only within its SMART scopes:
the endpoint's scope (``auth.dependencies.partner_scope``) must be granted in some context; the patients it
reaches are the account's linked patients for a ``user/`` scope and the launch patient for a ``patient/`` one;
the hospitals are those that granted the app. A backend token (client credentials) has no patient: it may
read the public endpoints in its app's view and nothing that acts for a patient.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from carebridge.auth.dependencies import ScopeNeed, accept_partner_tokens
from carebridge.auth.principal import PartnerReach
from carebridge.core.batching import Lookups
from carebridge.core.errors import Forbidden, Unauthorized
from carebridge.openplatform import scopes as smart
from carebridge.openplatform import tokens, usage
from carebridge.openplatform.models import partner_channel
from carebridge.patients import service as patients

TOKEN_PREFIX = tokens.ACCESS_PREFIX
_WORDS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


async def admit(request: HTTPConnection, token: str) -> tokens.PartnerAccess:
    """The access behind a partner token, the call counted in the app's usage and let through its rate limit
    and daily quota; 401 ``invalid_token``, 429 ``rate_limited`` / ``quota_exceeded``."""
    h = tokens.digest(token)
    access = tokens.cached_access(h)
    if access is tokens.UNKNOWN:
        access = await _LOOKUPS.get(request.app.state.db, h)
    if not isinstance(access, tokens.PartnerAccess):
        raise Unauthorized("invalid_token", "the token is unknown, expired or revoked, or its app is not approved")
    request.state.partner = access  # the call is counted in the app's usage, refused or not
    rate, quota = usage.limits(request.app.state.settings, access.rate_limit_per_second, access.daily_quota)
    usage.METER.admit(access.app_id, rate=rate, daily_quota=quota)
    return access


# Tokens not in the cache are looked up together (many patients' apps booking at once: two statements).
_LOOKUPS: Lookups[str, tokens.PartnerAccess] = Lookups(tokens.accesses_for)


def contexts(access: tokens.PartnerAccess, resource: str, permission: str) -> set[str]:
    """The contexts (``patient``, ``user``, ``system``) in which the token may do ``permission`` on
    ``resource``; 403 ``scope_missing`` when none."""
    found = smart.permits(list(access.scopes), resource, permission)
    if not found:
        raise Forbidden(
            "scope_missing",
            f"the token has no scope to {_WORDS[permission]} {resource} (for example patient/{resource}.{permission})",
            details={"resource": resource, "permission": permission},
        )
    return found


async def reached_patients(session: AsyncSession, access: tokens.PartnerAccess, found: set[str]) -> set[uuid.UUID]:
    """The patients a token reaches in the contexts ``found``: the consenting account's patients with a
    ``user/`` scope, the launch patient with a ``patient/`` one (a ``system/`` scope reaches no one in
    particular: the caller decides what it means)."""
    reached: set[uuid.UUID] = set()
    if "user" in found and access.user_id is not None:
        reached.update(await patients.linked_patient_ids(session, user_id=access.user_id))
    if "patient" in found and access.patient_id is not None:
        reached.add(access.patient_id)
    return reached


async def reach(request: HTTPConnection, token: str, need: ScopeNeed) -> PartnerReach:
    access = await admit(request, token)
    found = contexts(access, need.resource, need.permission)
    reached: set[uuid.UUID] = set()
    if access.user_id is not None:  # on the JSON API a token acts for the consenting account's patients only
        async with request.app.state.db.read() as session:
            reached = await reached_patients(session, access, found)
    return PartnerReach(
        app_id=access.app_id,
        client_id=access.client_id,
        channel=partner_channel(access.app_id),
        hospitals=access.hospitals,
        patients=frozenset(reached),
        user_id=access.user_id,
    )


def register() -> None:
    accept_partner_tokens(TOKEN_PREFIX, reach)
