"""The open platform's first rules: who may register a partner app, who approves it, and which hospitals it may
act for (docs/openplatform.md).

A developer account registers an app (pending). A platform admin approves, suspends or rejects it, each step a
conditional update from the status it was read in. A hospital admin grants an approved app access to their
hospital, and may revoke it; an app acts only for hospitals with an active grant, and not at all while it is
not approved (``granted_hospitals``). Every step is an event and an audit record.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth import service as auth
from carebridge.auth.models import Role, User
from carebridge.auth.principal import Principal
from carebridge.core import audit, cache, clock
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, not_found
from carebridge.core.transitions import transition
from carebridge.events.outbox import append_event
from carebridge.openplatform import sandbox, tokens
from carebridge.openplatform import scopes as smart
from carebridge.openplatform.models import AppKind, AppStatus, HospitalGrant, PartnerApp
from carebridge.openplatform.schemas import AppIn, AppPatch

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_KEYS = 10
# decision -> (the statuses it may start from, the status it leads to)
REVIEW = {
    "approve": ((AppStatus.pending, AppStatus.suspended), AppStatus.approved),
    "suspend": ((AppStatus.approved,), AppStatus.suspended),
    "reject": ((AppStatus.pending,), AppStatus.rejected),
}


async def register_developer(session: AsyncSession, *, username: str, password: str, display_name: str) -> User:
    return await auth.create_user(
        session, username=username, password=password, role=Role.developer, display_name=display_name
    )


def url_problem(url: str, *, what: str) -> str | None:
    """https, or http to this machine (a developer's local app or receiver); absolute; no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return f"{what} is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return f"{what} must be an absolute https URL"
    if parts.scheme == "http" and host not in LOOPBACK:
        return f"{what} must use https (http only to 127.0.0.1 or localhost)"
    if parts.fragment or "#" in url:
        return f"{what} must not have a fragment"
    return None


def _public_jwks(jwks: dict[str, Any]) -> dict[str, Any]:
    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput("bad_jwks", f"jwks is not a valid JWK Set: {exc}", details={"field": "jwks"}) from exc
    if not keys.keys or len(keys.keys) > MAX_KEYS:
        raise InvalidInput("bad_jwks", f"jwks must hold 1-{MAX_KEYS} keys", details={"field": "jwks"})
    if any(k.is_private for k in keys.keys):
        raise InvalidInput(
            "private_key_in_jwks",
            "jwks holds a private key: send only the public half and keep the private key with your server",
            details={"field": "jwks"},
        )
    return jwks


def check_app(data: AppIn) -> dict[str, Any]:
    """The registration's rules beyond its shape; 422 with a code and the field."""
    for i, uri in enumerate(data.redirect_uris):
        if (why := url_problem(uri, what="a redirect URI")) is not None:
            raise InvalidInput("bad_redirect_uri", why, details={"field": f"redirect_uris.{i}", "value": uri})
    if len(set(data.redirect_uris)) != len(data.redirect_uris):
        raise InvalidInput("bad_redirect_uri", "redirect URIs repeat", details={"field": "redirect_uris"})
    for i, scope in enumerate(data.scopes):
        if (why := smart.problem(scope)) is not None:
            raise InvalidInput("unknown_scope", f"{scope!r}: {why}", details={"field": f"scopes.{i}", "value": scope})
    contexts = {smart.context(s) for s in data.scopes} - {None}
    if data.kind == AppKind.patient_facing:
        if not data.redirect_uris:
            raise InvalidInput(
                "redirect_uri_required", "a patient-facing app needs a redirect URI", details={"field": "redirect_uris"}
            )
        if "system" in contexts:
            raise InvalidInput(
                "scope_not_allowed",
                "system/ scopes are for backend apps; a patient-facing app asks for patient/ or user/ scopes",
                details={"field": "scopes"},
            )
        if data.jwks is not None:
            raise InvalidInput(
                "jwks_not_allowed",
                "a patient-facing app is a public client (authorization code with PKCE): it has no keys",
                details={"field": "jwks"},
            )
        jwks = None
    else:
        if data.redirect_uris:
            raise InvalidInput(
                "redirect_uri_not_allowed", "a backend app has no redirect URIs", details={"field": "redirect_uris"}
            )
        if contexts - {"system"} or not contexts:
            raise InvalidInput(
                "scope_not_allowed", "a backend app asks for system/ scopes only", details={"field": "scopes"}
            )
        if data.jwks is None:
            raise InvalidInput(
                "jwks_required",
                "a backend app authenticates with private_key_jwt: send its public keys (jwks)",
                details={"field": "jwks"},
            )
        jwks = _public_jwks(data.jwks)
    if data.webhook_url is not None and (why := url_problem(data.webhook_url, what="webhook_url")):
        raise InvalidInput("bad_webhook_url", why, details={"field": "webhook_url"})
    return {**data.model_dump(), "scopes": list(dict.fromkeys(data.scopes)), "jwks": jwks}


def _emit(session: AsyncSession, principal: Principal, type_: str, app: PartnerApp, **extra: Any) -> None:
    hospital_id = extra.get("hospital_id")
    append_event(
        session,
        type_,
        subject_type="partner_app",
        subject_id=app.id,
        hospital_id=hospital_id,
        actor=principal.actor,
        data={"app_id": app.id, "client_id": app.client_id, "kind": str(app.kind), "status": str(app.status), **extra},
    )
    audit.record(
        session,
        action=type_,
        subject_type="partner_app",
        subject_id=app.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=hospital_id,
        detail={"client_id": app.client_id, "status": str(app.status), **{k: str(v) for k, v in extra.items()}},
    )


async def register_app(session: AsyncSession, *, principal: Principal, data: AppIn) -> PartnerApp:
    principal.require_role(Role.developer)
    values = check_app(data)
    app = PartnerApp(client_id=f"cb_{secrets.token_urlsafe(18)}", owner_user_id=principal.user_id, **values)
    session.add(app)
    await session.flush()
    _emit(session, principal, "partner_app.registered", app)
    return app


async def update_app(session: AsyncSession, *, principal: Principal, app_id: uuid.UUID, data: AppPatch) -> PartnerApp:
    """The app's developer changes names, redirect URIs, keys or the webhook URL, under the registration's rules;
    new keys are in force at the next token request (cached clients are dropped everywhere)."""
    principal.require_role(Role.developer)
    app = await get_app(session, principal=principal, app_id=app_id)
    if app.status == AppStatus.rejected:
        raise Conflict("app_status", "a rejected app cannot be changed: register a new one")
    changes = data.model_dump(exclude_unset=True)
    current = {name: getattr(app, name) for name in AppIn.model_fields}
    values = check_app(AppIn(**{**current, **changes}))
    for field in changes:
        setattr(app, field, values[field])
    app.updated_at = clock.now()
    await session.flush()
    _emit(session, principal, "partner_app.updated", app, changed=sorted(changes))
    await cache.invalidate(session, tokens.CLIENTS)
    return app


def _visible(principal: Principal) -> Any:
    if principal.role == Role.platform_admin:
        return None
    if principal.role == Role.developer:
        return PartnerApp.owner_user_id == principal.user_id
    if principal.role == Role.hospital_admin:
        return PartnerApp.status == AppStatus.approved  # the apps they may grant access to
    raise Forbidden("role_not_allowed", "partner apps are for developers, platform admins and hospital admins")


async def list_apps(session: AsyncSession, *, principal: Principal, status: AppStatus | None) -> list[PartnerApp]:
    query = select(PartnerApp)
    if (clause := _visible(principal)) is not None:
        query = query.where(clause)
    if status is not None:
        query = query.where(PartnerApp.status == status)
    return list((await session.scalars(query.order_by(PartnerApp.created_at.desc()).limit(500))).all())


async def get_app(session: AsyncSession, *, principal: Principal, app_id: uuid.UUID) -> PartnerApp:
    query = select(PartnerApp).where(PartnerApp.id == app_id)
    if (clause := _visible(principal)) is not None:
        query = query.where(clause)
    app = await session.scalar(query)
    if app is None:
        raise not_found("partner app", app_id)
    return app


async def review(
    session: AsyncSession, *, principal: Principal, app_id: uuid.UUID, decision: str, reason: str | None
) -> PartnerApp:
    principal.require_role(Role.platform_admin)
    app = await get_app(session, principal=principal, app_id=app_id)
    allowed_from, to = REVIEW[decision]
    if decision != "approve" and not reason:
        raise InvalidInput("reason_required", f"say why you {decision} the app", details={"field": "reason"})
    if app.status not in allowed_from:
        raise Conflict(
            "app_status",
            f"an app that is {app.status} cannot be {to}",
            details={"status": str(app.status), "allowed_from": [str(s) for s in allowed_from]},
        )
    # the status read above: another admin's decision in between makes this one 409 app_state_changed
    await transition(
        session,
        app,
        allowed=(app.status,),
        to=to,
        values={"status_reason": reason, "reviewed_by": principal.user_id, "reviewed_at": clock.now()},
        code="app_state_changed",
        noun="partner app",
    )
    _emit(session, principal, "partner_app.reviewed", app, decision=decision)
    if decision == "approve":
        box, made = await sandbox.ensure(session, principal=principal, app=app)
        if made:
            _emit(session, principal, "partner_app.sandbox_created", app, hospital_id=box.hospital_id)
    await cache.invalidate(session, tokens.ACCESS)  # rare: every worker re-reads what its tokens may reach
    await cache.invalidate(session, tokens.CLIENTS)
    return app


async def set_limits(
    session: AsyncSession,
    *,
    principal: Principal,
    app_id: uuid.UUID,
    rate_limit_per_second: int | None,
    daily_quota: int | None,
) -> PartnerApp:
    """A platform admin's limits for one app (None: the platform's defaults); in force at once everywhere."""
    principal.require_role(Role.platform_admin)
    app = await get_app(session, principal=principal, app_id=app_id)
    app.rate_limit_per_second = rate_limit_per_second
    app.daily_quota = daily_quota
    app.updated_at = clock.now()
    await session.flush()
    _emit(
        session,
        principal,
        "partner_app.limits_changed",
        app,
        rate_limit_per_second=rate_limit_per_second,
        daily_quota=daily_quota,
    )
    await cache.invalidate(session, tokens.ACCESS)
    await cache.invalidate(session, tokens.CLIENTS)  # the token endpoint's limits
    return app


async def grant(
    session: AsyncSession, *, principal: Principal, app_id: uuid.UUID, hospital_id: uuid.UUID
) -> HospitalGrant:
    """The hospital's consent: 409 ``app_not_approved`` / ``already_granted``."""
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    app = await session.get(PartnerApp, app_id)
    if app is None:
        raise not_found("partner app", app_id)
    if app.status != AppStatus.approved:
        raise Conflict("app_not_approved", f"the app is {app.status}: only approved apps can be granted access")
    row = HospitalGrant(app_id=app.id, hospital_id=hospital_id, granted_by=principal.user_id, granted_at=clock.now())
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("already_granted", "this hospital has already granted the app access") from exc
    _emit(session, principal, "partner_app.access_granted", app, hospital_id=hospital_id)
    await cache.invalidate(session, tokens.ACCESS)
    return row


async def revoke(
    session: AsyncSession, *, principal: Principal, app_id: uuid.UUID, hospital_id: uuid.UUID
) -> HospitalGrant:
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    row = await session.scalar(
        select(HospitalGrant).where(
            HospitalGrant.app_id == app_id, HospitalGrant.hospital_id == hospital_id, HospitalGrant.revoked_at.is_(None)
        )
    )
    app = await session.get(PartnerApp, app_id)
    if row is None or app is None:
        raise not_found("grant", f"{app_id}@{hospital_id}")
    now = clock.now()
    done = await session.execute(
        update(HospitalGrant)
        .where(HospitalGrant.id == row.id, HospitalGrant.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=principal.user_id)
    )
    if done.rowcount != 1:
        raise Conflict("grant_state_changed", "the grant was revoked meanwhile")
    await session.refresh(row)
    _emit(session, principal, "partner_app.access_revoked", app, hospital_id=hospital_id)
    await cache.invalidate(session, tokens.ACCESS)  # the app's tokens stop reaching this hospital at once
    return row


async def hospital_grants(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID
) -> list[HospitalGrant]:
    """A hospital's grants, active and revoked, newest first (its admins and platform admins)."""
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    return await _grants(session, HospitalGrant.hospital_id == hospital_id)


async def app_grants(session: AsyncSession, *, principal: Principal, app_id: uuid.UUID) -> list[HospitalGrant]:
    """The hospitals that granted the app access (its developer and platform admins)."""
    principal.require_role(Role.developer, Role.platform_admin)
    await get_app(session, principal=principal, app_id=app_id)
    return await _grants(session, HospitalGrant.app_id == app_id)


async def _grants(session: AsyncSession, where: Any) -> list[HospitalGrant]:
    """Grants, active and revoked, newest first."""
    query = select(HospitalGrant).where(where).order_by(HospitalGrant.granted_at.desc()).limit(500)
    return list((await session.scalars(query)).all())


async def granted_hospitals(session: AsyncSession, app_id: uuid.UUID) -> list[uuid.UUID]:
    """The hospitals the app may act for now: none unless it is approved (what tokens will be scoped by)."""
    app = await session.get(PartnerApp, app_id)
    if app is None or app.status != AppStatus.approved:
        return []
    query = select(HospitalGrant.hospital_id).where(HospitalGrant.app_id == app_id, HospitalGrant.revoked_at.is_(None))
    return list((await session.scalars(query)).all())
