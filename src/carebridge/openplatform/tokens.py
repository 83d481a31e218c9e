"""What the OAuth2 server stores: authorization codes, access and refresh tokens, used client assertions.

Only SHA-256 digests of codes and tokens are kept. Every change two requests could race on is one conditional
statement: a code is claimed once (a second use revokes what the first one got, RFC 6749 section 4.1.2); a
refresh token rotates once, and presenting a rotated one again revokes its whole family (RFC 9700 section
4.14); a client assertion's ``jti`` is inserted once. The resource side (``accesses_for``) answers who a token
acts for: the app, its scopes, its patient, and the hospitals that granted the app, read at use time so a
revoked grant or a suspended app takes effect at once.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, cast, delete, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import audit, cache, clock
from carebridge.core.batching import in_list
from carebridge.core.ids import new_id
from carebridge.database.engine import insert_for
from carebridge.openplatform.models import (
    AppKind,
    AppStatus,
    AuthorizationCode,
    ClientAssertion,
    HospitalGrant,
    OAuthToken,
    PartnerApp,
)

ACCESS = cache.Cache("partner_access", setting="principal_cache_seconds")
# Partner apps as the token endpoint reads them; a review (suspension) evicts them in every worker.
CLIENTS = cache.Cache("partner_client", setting="principal_cache_seconds", maxsize=10_000)


ACCESS_PREFIX = "cba_"  # access tokens: the JSON API tells them from users' session tokens by it
REFRESH_PREFIX = "cbr_"
# Built once: their parameters change, not the statements. On the table, not the ORM entity: Core, not the ORM's
# bulk insert path (the row is not read back).
_INSERT_TOKEN = insert(OAuthToken.__table__)
_TOKEN_COLUMNS = (
    "id",
    "app_id",
    "user_id",
    "patient_id",
    "scope",
    "access_hash",
    "access_expires_at",
    "refresh_hash",
    "refresh_expires_at",
    "family_id",
    "code_id",
    "created_at",
)


def _insert_token_once_per_assertion() -> object:
    """PostgreSQL: the assertion's ``jti`` recorded and the token written in one statement; no token row when
    the ``jti`` was there already (two requests at once: the unique key decides, the second waits and writes
    nothing)."""
    used_table, tokens = ClientAssertion.__table__, OAuthToken.__table__
    used = (
        postgresql.insert(used_table)
        .values(client_id=bindparam("a_client_id"), jti=bindparam("a_jti"), expires_at=bindparam("a_expires_at"))
        .on_conflict_do_nothing(index_elements=["client_id", "jti"])
        .returning(used_table.c.jti)
        .cte("used")
    )
    values = select(*[cast(bindparam(c), tokens.c[c].type) for c in _TOKEN_COLUMNS]).select_from(used)
    return insert(tokens).from_select(list(_TOKEN_COLUMNS), values).add_cte(used).returning(tokens.c.id)


_INSERT_TOKEN_ONCE = _insert_token_once_per_assertion()


class AssertionReplayed(Exception):
    """A client assertion's ``jti`` was used before (found when the token that used it was being saved)."""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Client:
    """A partner app as the authorization server sees it (Authlib's ``ClientMixin`` is added in
    ``authorization``)."""

    id: uuid.UUID
    client_id: str
    name: str
    organisation: str
    kind: AppKind
    status: AppStatus
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    jwks: dict | None
    rate_limit_per_second: int | None = None  # the app's own limits; None: the platform's defaults
    daily_quota: int | None = None

    @property
    def app_id(self) -> uuid.UUID:  # as ``PartnerAccess`` names it, for the usage meter
        return self.id


@dataclass(frozen=True, slots=True)
class PartnerAccess:
    """Who an OAuth access token acts for, as the FHIR API and the JSON API check it."""

    token_id: uuid.UUID
    app_id: uuid.UUID
    client_id: str
    kind: AppKind
    scopes: tuple[str, ...]
    user_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    hospitals: frozenset[uuid.UUID]
    expires_at: datetime
    rate_limit_per_second: int | None = None
    daily_quota: int | None = None

    @property
    def actor(self) -> str:
        return f"partner_app:{self.client_id}"


async def client(session: AsyncSession, client_id: str) -> Client | None:
    hit = CLIENTS.get(client_id)
    if hit is not None:
        return hit
    app = await session.scalar(select(PartnerApp).where(PartnerApp.client_id == client_id))
    if app is None:
        return None
    found = Client(
        id=app.id,
        client_id=app.client_id,
        name=app.name,
        organisation=app.organisation,
        kind=app.kind,
        status=app.status,
        redirect_uris=tuple(app.redirect_uris),
        scopes=tuple(app.scopes),
        jwks=app.jwks,
        rate_limit_per_second=app.rate_limit_per_second,
        daily_quota=app.daily_quota,
    )
    CLIENTS.set(client_id, found)
    return found


async def save_code(
    session: AsyncSession,
    *,
    code: str,
    app: Client,
    user_id: uuid.UUID,
    patient_id: uuid.UUID | None,
    scope: str,
    redirect_uri: str,
    code_challenge: str,
    code_challenge_method: str,
    ttl_seconds: int,
) -> None:
    now = clock.now()
    session.add(
        AuthorizationCode(
            code_hash=digest(code),
            app_id=app.id,
            user_id=user_id,
            patient_id=patient_id,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            expires_at=now + timedelta(seconds=ttl_seconds),
            created_at=now,
        )
    )
    audit.record(
        session,
        action="oauth.consent_given",
        subject_type="partner_app",
        subject_id=app.id,
        actor_user_id=user_id,
        actor_role="patient",
        detail={"client_id": app.client_id, "scope": scope, "patient_id": str(patient_id) if patient_id else None},
    )


async def claim_code(session: AsyncSession, *, code: str, app_id: uuid.UUID) -> AuthorizationCode | None:
    """The code's row, now used; None when it is unknown, another app's, expired or already used (then the
    tokens issued from it are revoked)."""
    now = clock.now()
    claimed = (
        await session.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_hash == digest(code),
                AuthorizationCode.app_id == app_id,
                AuthorizationCode.used_at.is_(None),
                AuthorizationCode.expires_at > now,
            )
            .values(used_at=now)
            .returning(AuthorizationCode.id)
        )
    ).scalar()
    if claimed is not None:
        return await session.get(AuthorizationCode, claimed)
    used = await session.scalar(
        select(AuthorizationCode.id).where(
            AuthorizationCode.code_hash == digest(code), AuthorizationCode.used_at.is_not(None)
        )
    )
    if used is not None:
        await _revoke(session, OAuthToken.code_id == used)
    return None


async def save_token(
    session: AsyncSession,
    *,
    token: dict,
    app: Client,
    user_id: uuid.UUID | None,
    patient_id: uuid.UUID | None,
    family_id: uuid.UUID | None,
    code_id: uuid.UUID | None,
    refresh_ttl: timedelta | None,
    assertion: tuple[str, str, datetime] | None = None,
) -> None:
    """Write the token's row; with the client assertion that authenticated the request (client id, jti, expiry)
    recorded atomically with it (one statement on PostgreSQL, the same transaction on SQLite), so an assertion
    gives one token even to two requests at once (``AssertionReplayed`` for the second)."""
    now = clock.now()
    refresh = token.get("refresh_token")
    row = {
        "id": new_id(),
        "app_id": app.id,
        "user_id": user_id,
        "patient_id": patient_id,
        "scope": token.get("scope", ""),
        "access_hash": digest(token["access_token"]),
        "access_expires_at": now + timedelta(seconds=int(token["expires_in"])),
        "refresh_hash": digest(refresh) if refresh else None,
        "refresh_expires_at": now + refresh_ttl if refresh and refresh_ttl else None,
        "family_id": family_id or uuid.uuid4(),
        "code_id": code_id,
        "created_at": now,
    }
    if assertion is not None and session.bind.dialect.name == "postgresql":
        client_id, jti, expires_at = assertion
        params = {**row, "a_client_id": client_id, "a_jti": jti, "a_expires_at": expires_at}
        if (await session.execute(_INSERT_TOKEN_ONCE, params)).first() is None:  # type: ignore[call-overload]
            raise AssertionReplayed(jti)
        return
    if assertion is not None:
        client_id, jti, expires_at = assertion
        if not await use_assertion(session, client_id=client_id, jti=jti, expires_at=expires_at):
            raise AssertionReplayed(jti)
    await session.execute(_INSERT_TOKEN, row)


async def find_refresh(session: AsyncSession, *, refresh_token: str) -> OAuthToken | None:
    """The live token row of a refresh token; None when unknown, revoked or expired. A rotated one presented
    again is a replay: its family is revoked."""
    row = await session.scalar(select(OAuthToken).where(OAuthToken.refresh_hash == digest(refresh_token)))
    if row is None:
        return None
    if row.rotated_at is not None:
        await _revoke(session, OAuthToken.family_id == row.family_id)
        return None
    if row.revoked_at is not None or row.refresh_expires_at is None or row.refresh_expires_at <= clock.now():
        return None
    return row


async def rotate(session: AsyncSession, *, token_id: uuid.UUID) -> bool:
    """Retire a refresh token (and its access token) for its successor; False when another request did it
    first."""
    now = clock.now()
    done = await session.execute(
        update(OAuthToken)
        .where(OAuthToken.id == token_id, OAuthToken.rotated_at.is_(None), OAuthToken.revoked_at.is_(None))
        .values(rotated_at=now, revoked_at=now)
        .returning(OAuthToken.access_hash)
    )
    access_hash = done.scalar()
    if access_hash is None:
        return False
    await cache.invalidate(session, ACCESS, access_hash)
    return True


async def find_token(session: AsyncSession, *, token: str, hint: str | None) -> tuple[OAuthToken, str] | None:
    """A token row and which of its tokens this is (``access_token`` or ``refresh_token``), whatever its state
    (revocation and introspection). A wrong hint only widens the search (RFC 7009 section 2.1)."""
    h = digest(token)
    kinds = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        kinds.reverse()
    for kind in kinds:
        column = OAuthToken.access_hash if kind == "access_token" else OAuthToken.refresh_hash
        row = await session.scalar(select(OAuthToken).where(column == h))
        if row is not None:
            return row, kind
    return None


async def revoke_family(session: AsyncSession, *, family_id: uuid.UUID) -> None:
    await _revoke(session, OAuthToken.family_id == family_id)


async def _revoke(session: AsyncSession, where: object) -> None:
    done = await session.execute(
        update(OAuthToken)
        .where(where, OAuthToken.revoked_at.is_(None))  # type: ignore[arg-type]
        .values(revoked_at=clock.now())
        .returning(OAuthToken.access_hash)
    )
    for access_hash in done.scalars():
        await cache.invalidate(session, ACCESS, access_hash)


async def use_assertion(session: AsyncSession, *, client_id: str, jti: str, expires_at: datetime) -> bool:
    """Record a client assertion's ``jti``; False if the app used it before (a replay). One statement: the
    key decides, even for two requests at the same moment (no savepoint and flush around it)."""
    statement = (
        insert_for(session, ClientAssertion)
        .on_conflict_do_nothing(index_elements=["client_id", "jti"])
        .returning(ClientAssertion.jti)
    )
    recorded = await session.execute(statement, {"client_id": client_id, "jti": jti, "expires_at": expires_at})
    return recorded.first() is not None


async def forget_expired(session: AsyncSession) -> int:
    """Delete used assertions past their expiry (they could not be replayed anyway) and codes past theirs."""
    now = clock.now()
    gone = await session.execute(delete(ClientAssertion).where(ClientAssertion.expires_at < now))
    await session.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at < now - timedelta(days=1)))
    return gone.rowcount or 0


_ACCESS = (
    select(
        OAuthToken.access_hash,
        OAuthToken.id,
        OAuthToken.app_id,
        PartnerApp.client_id,
        PartnerApp.kind,
        PartnerApp.status,
        OAuthToken.scope,
        OAuthToken.user_id,
        OAuthToken.patient_id,
        OAuthToken.access_expires_at,
        OAuthToken.revoked_at,
        PartnerApp.rate_limit_per_second,
        PartnerApp.daily_quota,
    )
    .join(PartnerApp, PartnerApp.id == OAuthToken.app_id)
    .where(in_list(OAuthToken.access_hash, "hashes"))
)
_GRANTS = select(HospitalGrant.app_id, HospitalGrant.hospital_id).where(
    in_list(HospitalGrant.app_id, "app_ids"), HospitalGrant.revoked_at.is_(None)
)
UNKNOWN = object()  # ``cached_access``: not in this worker's cache


def cached_access(h: str) -> PartnerAccess | None | object:
    """What this worker remembers of the token with digest ``h``: its access, None when it has expired, or
    ``UNKNOWN``."""
    hit = ACCESS.get(h)
    if hit is None:
        return UNKNOWN
    return hit if hit.expires_at > clock.now() else None


async def accesses_for(session: AsyncSession, hashes: list[str]) -> dict[str, PartnerAccess]:
    """Who many live access tokens (by their ``digest``) act for, in two statements (the tokens, their apps'
    grants); a token that is unknown, expired, revoked or whose app is not approved is missing."""
    now = clock.now()
    rows = [
        row
        for row in (await session.execute(_ACCESS, {"hashes": hashes})).all()
        if row.revoked_at is None and row.access_expires_at > now and row.status == AppStatus.approved
    ]
    if not rows:
        return {}
    granted: dict[uuid.UUID, set[uuid.UUID]] = {row.app_id: set() for row in rows}
    for app_id, hospital_id in (await session.execute(_GRANTS, {"app_ids": list(granted)})).all():
        granted[app_id].add(hospital_id)
    found = {}
    for row in rows:
        access = PartnerAccess(
            token_id=row.id,
            app_id=row.app_id,
            client_id=row.client_id,
            kind=row.kind,
            scopes=tuple(row.scope.split()),
            user_id=row.user_id,
            patient_id=row.patient_id,
            hospitals=frozenset(granted[row.app_id]),
            expires_at=row.access_expires_at,
            rate_limit_per_second=row.rate_limit_per_second,
            daily_quota=row.daily_quota,
        )
        ACCESS.set(row.access_hash, access)
        found[row.access_hash] = access
    return found
