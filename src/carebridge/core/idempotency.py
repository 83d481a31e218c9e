"""Idempotency keys: a retried write with the same ``Idempotency-Key`` gets the first answer again.

The record is written in the same transaction as the change it describes, so either both exist or neither.
Two concurrent requests with one key: the unique constraint makes the second wait for (PostgreSQL) or follow
(SQLite, serialised writers) the first, and then it replays the stored answer.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import String, UniqueConstraint, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.core.errors import Conflict, DomainError, InvalidInput
from carebridge.database.base import Base, IdMixin
from carebridge.database.engine import Database

MAX_KEY_LENGTH = 128


class IdempotencyRecord(IdMixin, Base):
    __tablename__ = "idempotency_records"

    user_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    operation: Mapped[str] = mapped_column(String(80))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (UniqueConstraint("user_id", "key"),)


_STORED = select(IdempotencyRecord).where(
    IdempotencyRecord.user_id == bindparam("user_id"), IdempotencyRecord.key == bindparam("key")
)


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not (1 <= len(key) <= MAX_KEY_LENGTH) or not key.isprintable():
        raise InvalidInput(
            "bad_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
            details={"field": "Idempotency-Key"},
        )
    return key


def request_hash(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def replay(
    session: AsyncSession, *, user_id: uuid.UUID, key: str, operation: str, payload_hash: str
) -> IdempotencyRecord | None:
    """The stored answer for this key, or None. 409 ``idempotency_key_reused`` if the key was used for a
    different request."""
    row = await session.scalar(_STORED, {"user_id": user_id, "key": key})
    if row is not None and (row.operation != operation or row.request_hash != payload_hash):
        raise Conflict("idempotency_key_reused", "this Idempotency-Key was used for a different request")
    return row


def remember(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    operation: str,
    payload_hash: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    session.add(
        IdempotencyRecord(
            user_id=user_id,
            key=key,
            operation=operation,
            request_hash=payload_hash,
            status_code=status_code,
            response=response,
        )
    )


async def write_once(
    db: Database,
    *,
    user_id: uuid.UUID,
    key: str | None,
    operation: str,
    payload_hash: str,
    check: Callable[[AsyncSession], Awaitable[None]],
    write: Callable[[AsyncSession], Awaitable[dict[str, Any]]],
    duplicate: DomainError,
    status_code: int = 201,
) -> tuple[int, dict[str, Any]]:
    """A keyed write, answered once: a replay of the stored answer, or ``check`` (cheap reads that may refuse,
    in the same read as the replay lookup) then ``write`` in one transaction with the record of its answer.

    A concurrent request with the same key may win the race (its change is why this one failed): then this
    one answers as it did. An ``IntegrityError`` otherwise means ``duplicate``."""
    async with db.read() as session:
        if key and (
            stored := await replay(session, user_id=user_id, key=key, operation=operation, payload_hash=payload_hash)
        ):
            return stored.status_code, stored.response
        await check(session)
    try:
        async with db.transaction() as session:
            answer = await write(session)
            if key:
                remember(
                    session,
                    user_id=user_id,
                    key=key,
                    operation=operation,
                    payload_hash=payload_hash,
                    status_code=status_code,
                    response=answer,
                )
    except (IntegrityError, DomainError) as exc:
        if key:
            async with db.read() as session:
                stored = await replay(session, user_id=user_id, key=key, operation=operation, payload_hash=payload_hash)
            if stored:
                return stored.status_code, stored.response
        if isinstance(exc, IntegrityError):
            raise duplicate from None
        raise
    return status_code, answer
