"""Idempotency keys: a retried write with the same ``Idempotency-Key`` gets the first answer again.

The record is written in the same transaction as the change it describes, so either both exist or neither.
Two concurrent requests with one key: the unique constraint makes the second wait for (PostgreSQL) or follow
(SQLite, serialised writers) the first, and then it replays the stored answer.

A key is remembered for ``idempotency_retention_hours`` (24 h by default), then forgotten by the sweep.

Each worker also knows which keys may have a stored answer (``KNOWN``, a Bloom filter of the retention
window's keys). On PostgreSQL it is loaded when the worker's notification listener connects and fed by a
trigger's ``NOTIFY`` on every new record, delivered when the inserting transaction commits; on SQLite (one
process) it is loaded at start and fed by the process's own writes. A request whose key is surely new
skips the replay read: a booking refused from the sold-out cache then costs no database work at all. While
the filter is not loaded (start-up, a lost listener) every request reads. See docs/booking.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
import rbloom
import structlog
from sqlalchemy import Index, String, UniqueConstraint, bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock, crypto, notify
from carebridge.core.errors import Conflict, DomainError, InvalidInput
from carebridge.database.base import Base, IdMixin
from carebridge.database.engine import Database, add_row

MAX_KEY_LENGTH = 128
CHANNEL = "carebridge_idempotency"  # the trigger of migration 0015 sends "<user id>:<key>" on every insert
log = structlog.get_logger(__name__)


class IdempotencyRecord(IdMixin, Base):
    __tablename__ = "idempotency_records"

    user_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    operation: Mapped[str] = mapped_column(String(80))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_idempotency_records_created_at", "created_at"),
    )


_STORED = select(IdempotencyRecord).where(
    IdempotencyRecord.user_id == bindparam("user_id"),
    IdempotencyRecord.key == bindparam("key"),
    IdempotencyRecord.created_at >= bindparam("since"),
)
_RECENT_KEYS = select(IdempotencyRecord.user_id, IdempotencyRecord.key).where(
    IdempotencyRecord.created_at >= bindparam("since")
)
RETENTION = timedelta(hours=24)  # replaced from settings by ``configure``


def configure(settings: Any) -> None:
    global RETENTION
    RETENTION = timedelta(hours=settings.idempotency_retention_hours)


class KnownKeys:
    """The keys of one worker's deployment that may have a stored answer: no false negatives once loaded.

    ``might_exist`` is True until the filter is loaded, and again from the moment the listener reconnects
    until the reload is done. Keys are added when this worker stores them (before its commit: a key whose
    transaction rolls back only costs a read later) and when another worker's insert is announced. A filter
    that has taken more keys than it was sized for reloads itself, bigger (its false positives grow, never
    its false negatives)."""

    MIN_SIZE = 100_000
    FALSE_POSITIVE_RATE = 0.001

    def __init__(self) -> None:
        self._db: Database | None = None
        self._bloom: rbloom.Bloom | None = None
        self._ready = False
        self._capacity = 0
        self._count = 0
        self._generation = 0
        self._loading: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    def bind(self, db: Database) -> None:
        """Use the filter with this database. PostgreSQL: the listener loads it when it connects. SQLite (one
        process, which stores every key itself): loaded now."""
        self._db = db
        self.reset()
        if db.is_sqlite:
            self.reload()

    def unbind(self) -> None:
        self._db = None
        self.reset()

    def might_exist(self, user_id: uuid.UUID, key: str) -> bool:
        return not self._ready or f"{user_id}:{key}" in self._bloom  # type: ignore[operator]

    def stored(self, user_id: uuid.UUID, key: str) -> None:
        """This account's key is stored (or about to be, in a transaction on its way to commit)."""
        self.add(f"{user_id}:{key}")

    def add(self, item: str) -> None:
        if self._bloom is None:
            return
        self._bloom.add(item)
        self._count += 1
        if self._count > self._capacity:
            self.reload()

    def reset(self) -> None:
        """Forget everything; reads go to the database until a reload finishes."""
        self._generation += 1
        self._ready = False
        self._bloom = None

    def reload(self, size_hint: int | None = None) -> None:
        """Start from an empty filter that takes announcements at once, then add the stored keys: a key stored
        while loading is in one or the other. Called (synchronously) when the listener (re)connects."""
        if self._db is None:
            return
        self.reset()
        self._capacity = max(self.MIN_SIZE, 2 * (size_hint or self._count))
        self._count = 0
        self._bloom = rbloom.Bloom(self._capacity, self.FALSE_POSITIVE_RATE)
        self._loading = asyncio.get_running_loop().create_task(self._load(self._generation))

    async def wait_loaded(self) -> None:
        """Until the last reload started has finished (tests and tools)."""
        while self._loading is not None and not self._loading.done():
            await asyncio.shield(self._loading)

    async def _load(self, generation: int) -> None:
        assert self._db is not None
        try:
            async with self._db.read() as session:
                rows = (await session.execute(_RECENT_KEYS, {"since": clock.now() - RETENTION})).all()
        except Exception as exc:  # noqa: BLE001 - stay unloaded (every request reads); the next reconnect retries
            log.warning("idempotency_filter_load_failed", error=type(exc).__name__)
            return
        if generation != self._generation or self._bloom is None:
            return  # a newer reset or reload took over
        if len(rows) * 2 > self._capacity:
            self.reload(size_hint=len(rows))
            return
        self._bloom.update(f"{user_id}:{key}" for user_id, key in rows)
        self._count += len(rows)
        self._ready = True
        log.debug("idempotency_filter_loaded", keys=len(rows), capacity=self._capacity)


KNOWN = KnownKeys()
notify.subscribe(CHANNEL, KNOWN.add, on_reconnect=KNOWN.reload)


async def forget_expired(session: AsyncSession) -> int:
    """Delete the records older than the retention (the sweep); their keys are no longer answered."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < clock.now() - RETENTION)
    )
    return int(result.rowcount or 0)


SEALED = "sealed"


def answer_of(record: IdempotencyRecord) -> dict[str, Any]:
    """The stored answer, opened (a record written before answers were sealed is returned as it is)."""
    response = record.response
    if isinstance(response, dict) and set(response) == {SEALED}:
        return orjson.loads(crypto.cipher().decrypt(response[SEALED]))  # type: ignore[no-any-return]
    return response


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
    row = await session.scalar(_STORED, {"user_id": user_id, "key": key, "since": clock.now() - RETENTION})
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
    known: bool = True,
) -> None:
    """Store the answer to this key in the session's transaction. ``known=False``: the caller adds the key to
    ``KNOWN`` itself, once the row is sure to be written (the booking desk drafts rows it may drop)."""
    if known:
        KNOWN.stored(user_id, key)
    # The answer is what its owner saw (names unmasked): sealed with the personal-data key, as those fields are.
    sealed = {SEALED: crypto.cipher().encrypt(orjson.dumps(response).decode())}
    add_row(
        session,
        IdempotencyRecord,
        user_id=user_id,
        key=key,
        operation=operation,
        request_hash=payload_hash,
        status_code=status_code,
        response=sealed,
    )


async def stored_answer(
    session: AsyncSession, user_id: uuid.UUID, key: str, operation: str, payload_hash: str
) -> tuple[int, dict[str, Any]] | None:
    """The first answer to this key (status, body), or None; no database work for a key no worker has stored
    (``KNOWN``). 409 ``idempotency_key_reused`` if the key was used for a different request."""
    if not KNOWN.might_exist(user_id, key):
        return None
    stored = await replay(session, user_id=user_id, key=key, operation=operation, payload_hash=payload_hash)
    return (stored.status_code, answer_of(stored)) if stored else None


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
        if key and (stored := await stored_answer(session, user_id, key, operation, payload_hash)):
            return stored
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
                return stored.status_code, answer_of(stored)
        if isinstance(exc, IntegrityError):
            raise duplicate from None
        raise
    return status_code, answer
