"""Accounts, passwords and bearer tokens."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections import defaultdict, deque
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import HOSPITAL_SCOPED, AccessToken, Role, User
from carebridge.auth.principal import Principal
from carebridge.core import audit, cache, clock
from carebridge.core.batching import in_list
from carebridge.core.errors import Conflict, DomainError, InvalidInput, TooManyRequests, Unauthorized, not_found

# token digest -> (principal, token expiry) or (None, None) for a dead token; TTL from principal_cache_seconds
PRINCIPALS = cache.Cache("principal", setting="principal_cache_seconds")
_hasher = PasswordHasher()
# A hash to verify against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("carebridge-dummy-password")


def configure_hashing(time_cost: int, memory_kib: int) -> None:
    """Set the Argon2id cost for new hashes (existing hashes carry their own parameters)."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
    _DUMMY_HASH = _hasher.hash("carebridge-dummy-password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class IpThrottle:
    """Failed logins per client address in a sliding window (per worker; the per-account lock is shared)."""

    def __init__(
        self,
        limit: int = 20,
        window_s: float = 900.0,
        message: str = "too many failed logins from this address; try later",
    ) -> None:
        self.limit, self.window_s, self.message = limit, window_s, message
        self._fails: dict[str, deque[float]] = defaultdict(deque)

    def _trim(self, ip: str) -> deque[float]:
        q = self._fails[ip]
        cutoff = time.monotonic() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def check(self, ip: str) -> None:
        if len(self._trim(ip)) >= self.limit:
            raise TooManyRequests("login_throttled", self.message)

    def fail(self, ip: str) -> None:
        self._trim(ip).append(time.monotonic())


ip_throttle = IpThrottle()
# Signing with a password (records, prescriptions): 5 wrong passwords per account in 15 minutes, then 429, so a
# stolen session cannot guess the password through the sign endpoints.
reauth_throttle = IpThrottle(limit=5, window_s=900.0, message="too many wrong passwords when signing; try later")


def validate_password(password: str) -> None:
    if len(password) < 8 or password.isdigit() or password.isalpha():
        raise InvalidInput(
            "weak_password",
            "password needs at least 8 characters with letters and digits",
            details={"field": "password"},
        )


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str,
    hospital_id: uuid.UUID | None = None,
    region_code: str | None = None,
    practitioner_id: uuid.UUID | None = None,
) -> User:
    """Create an account. Staff roles need a hospital, regulators a region. Raises 409 ``username_taken``."""
    username = username.lower()
    validate_password(password)
    if role in HOSPITAL_SCOPED and hospital_id is None:
        raise InvalidInput(
            "hospital_required", f"a {role.value} belongs to a hospital", details={"field": "hospital_id"}
        )
    if role == Role.regulator and not region_code:
        raise InvalidInput("region_required", "a regulator is scoped to a region", details={"field": "region_code"})
    if role == Role.doctor and practitioner_id is None:
        raise InvalidInput(
            "practitioner_required", "a doctor account names its practitioner", details={"field": "practitioner_id"}
        )
    if await session.scalar(select(User.id).where(User.username == username)):
        raise Conflict("username_taken", f"username {username!r} is taken")
    user = User(
        username=username,
        password_hash=await hash_password(password),
        role=role,
        display_name=display_name,
        hospital_id=hospital_id if role in HOSPITAL_SCOPED else None,
        region_code=region_code if role == Role.regulator else None,
        practitioner_id=practitioner_id,
    )
    session.add(user)
    await session.flush()
    return user


async def login(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    client_ip: str,
    ttl_seconds: int,
    max_failures: int,
    lock_seconds: int,
) -> tuple[str, AccessToken, User] | DomainError:
    """Check the password and issue a bearer token.

    A failed attempt is *returned* as the error to raise once the caller has committed the failure count:
    401 ``invalid_credentials`` (same answer for unknown user and wrong password), 429 ``account_locked``
    after ``max_failures`` in a row. Raises 429 ``login_throttled`` when one address fails too often.
    """
    ip_throttle.check(client_ip)
    user = await session.scalar(select(User).where(User.username == username.lower()))
    now = clock.now()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        raise TooManyRequests(
            "account_locked",
            "too many failed logins; the account is locked for a while",
            details={"locked_until": user.locked_until.isoformat()},
        )
    ok = await _verify(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or not user.active:
        ip_throttle.fail(client_ip)
        if user is not None:
            failures = user.failed_logins + 1
            user.failed_logins = 0 if failures >= max_failures else failures
            if failures >= max_failures:
                user.locked_until = now + timedelta(seconds=lock_seconds)
        return Unauthorized("invalid_credentials", "wrong username or password")
    user.failed_logins = 0
    user.locked_until = None
    token = secrets.token_urlsafe(32)
    row = AccessToken(token_hash=token_digest(token), user_id=user.id, expires_at=now + timedelta(seconds=ttl_seconds))
    session.add(row)
    await session.flush()
    return token, row, user


_TOKEN, _USER = AccessToken.__table__.c, User.__table__.c
_PRINCIPALS_QUERY = (  # Core (table columns): run for every batch of new callers, without the ORM's work
    select(
        _TOKEN.token_hash,
        _TOKEN.expires_at,
        _TOKEN.revoked_at,
        _USER.id,
        _USER.username,
        _USER.role,
        _USER.hospital_id,
        _USER.region_code,
        _USER.practitioner_id,
        _USER.active,
    )
    .select_from(AccessToken.__table__)
    .join(User.__table__, _USER.id == _TOKEN.user_id)
    .where(in_list(_TOKEN.token_hash, "digests"))
)


async def principals_for_digests(
    session: AsyncSession, digests: list[str]
) -> dict[str, tuple[Principal | None, datetime | None]]:
    """The callers behind many bearer tokens (by their ``token_digest``) in one statement, each with until when
    that answer holds: (None, None) for a dead token; an unknown digest is missing from the answer."""
    rows = (await session.execute(_PRINCIPALS_QUERY, {"digests": digests})).all()
    return {row[0]: _principal_of(row[1:]) for row in rows}


def _principal_of(row: Any) -> tuple[Principal | None, datetime | None]:
    expires_at, revoked_at, user_id, username, role, hospital_id, region_code, practitioner_id, active = row
    if revoked_at is not None or expires_at <= clock.now() or not active:
        return None, None
    principal = Principal(
        user_id=user_id,
        username=username,
        role=role,
        hospital_id=hospital_id,
        region_code=region_code,
        practitioner_id=practitioner_id,
    )
    return principal, expires_at


async def logout(session: AsyncSession, *, token: str) -> None:
    digest = token_digest(token)
    await session.execute(
        update(AccessToken)
        .where(AccessToken.token_hash == digest, AccessToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    await cache.invalidate(session, PRINCIPALS, digest)


async def change_password(
    session: AsyncSession, *, principal: Principal, current: str, new: str, keep_token: str
) -> None:
    """Change the caller's password and revoke every other token of theirs. 401 if ``current`` is wrong."""
    user = await session.get(User, principal.user_id)
    if user is None:
        raise not_found("user", principal.user_id)
    if not await _verify(user.password_hash, current):
        raise Unauthorized("invalid_credentials", "the current password is wrong")
    validate_password(new)
    user.password_hash = await hash_password(new)
    user.password_changed_at = clock.now()
    await session.execute(
        update(AccessToken)
        .where(
            AccessToken.user_id == user.id,
            AccessToken.revoked_at.is_(None),
            AccessToken.token_hash != token_digest(keep_token),
        )
        .values(revoked_at=clock.now())
    )
    await cache.invalidate(session, PRINCIPALS)  # rare: every worker forgets every cached token
    audit.record(
        session,
        action="user.password_changed",
        subject_type="user",
        subject_id=user.id,
        actor_user_id=user.id,
        actor_role=user.role.value,
    )


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


async def reauthenticate(session: AsyncSession, *, principal: Principal, password: str) -> None:
    """Proof that the person at the keyboard is the account's owner, now (rule R5: a doctor signs records and
    prescriptions in a real-name session). 401 ``reauthentication_failed`` for a wrong password; 429
    ``login_throttled`` after 5 wrong ones in 15 minutes (per account, per worker)."""
    key = str(principal.user_id)
    reauth_throttle.check(key)
    user = await session.get(User, principal.user_id)
    if user is None or not user.active or not await _verify(user.password_hash, password):
        reauth_throttle.fail(key)
        raise Unauthorized("reauthentication_failed", "the password is wrong: signing needs your own password")
