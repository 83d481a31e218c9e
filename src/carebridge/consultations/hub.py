"""The chat hub of one worker: who is connected to which consultation, the batching message writer, and the
relay of frames to the other workers.

- A ``Connection`` is one open WebSocket. Frames for it go into its queue; its sender task writes them out in
  order. Message frames carry ``seq``: a connection never sends a number twice and never skips one (a gap is
  filled from the database first), so a client sees every message exactly once, in order, whichever worker
  stored it. A client too slow to take its frames (``QUEUE_LIMIT`` waiting) is disconnected with 4408 and
  resumes from its last ``seq`` when it reconnects: nothing is lost, memory stays bounded.
- The writer stores what arrives while the previous batch commits, in one transaction per batch
  (``chat.store_messages``), then hands the messages to the local connections and answers each sender with
  an ``ack``. There is no waiting to fill a batch: a lone message is stored at once.
- Other workers (PostgreSQL deployments) get the same frames through ``core.notify`` in the batch's own
  transaction, sealed with the data key (chat text is personal data even in flight) and split into parts that
  fit a notification. A worker that lost its listening connection catches up from the database.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.consultations import chat
from carebridge.core import crypto, notify
from carebridge.core.errors import DomainError
from carebridge.database.engine import Database, on_commit

CHANNEL = "carebridge_chat"
WORKER = os.urandom(6).hex()  # this process, in notifications it sends
QUEUE_LIMIT = 2000
BATCH_LIMIT = 500
PART_BYTES = 5000  # of base64 text per notification part (the payload limit is 7,900 bytes)
log = structlog.get_logger(__name__)


class SlowConsumer(Exception):
    pass


@dataclass(eq=False)
class Connection:
    consultation_id: uuid.UUID
    side: str  # patient | doctor
    user_id: uuid.UUID
    practitioner_id: uuid.UUID | None
    send: Callable[[dict[str, Any]], Any]  # coroutine function writing one frame
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    sent_seq: int = 0
    overflowed: bool = False

    def push(self, frame: dict[str, Any]) -> None:
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True
        self.queue.put_nowait(frame)


@dataclass(slots=True)
class _Pending:
    item: chat.Outgoing
    origin: Connection | None
    future: asyncio.Future[chat.Stored | DomainError] | None


class Hub:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.rooms: dict[uuid.UUID, set[Connection]] = defaultdict(set)
        self._inbox: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._parts: dict[str, tuple[float, list[str | None]]] = {}
        self.stats = {"batches": 0, "messages": 0}

    # --- life ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        _HUBS.add(self)
        notify.subscribe(CHANNEL, _on_notification, on_reconnect=_on_reconnect)
        self._writer = asyncio.create_task(self._write_loop(), name="chat-writer")

    async def stop(self) -> None:
        log.info("chat_writer_stats", **self.stats)
        _HUBS.discard(self)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    # --- connections -----------------------------------------------------------------------------------

    def join(self, conn: Connection) -> None:
        self.rooms[conn.consultation_id].add(conn)

    def leave(self, conn: Connection) -> None:
        room = self.rooms.get(conn.consultation_id)
        if room is not None:
            room.discard(conn)
            if not room:
                del self.rooms[conn.consultation_id]

    def deliver(
        self,
        consultation_id: uuid.UUID,
        frame: dict[str, Any],
        *,
        to_side: str | None = None,
        skip: Connection | None = None,
    ) -> None:
        """Push ``frame`` to the consultation's connections here (only one side's, if given; not ``skip``)."""
        for conn in self.rooms.get(consultation_id, ()):
            if conn is not skip and (to_side is None or conn.side == to_side):
                conn.push(frame)

    async def _fill(self, conn: Connection, upto: int | None) -> None:
        """Send ``conn`` the stored messages after its last one, up to ``upto`` (or all), page by page."""
        while True:
            async with self.db.read() as session:
                page = await chat.history(session, conn.consultation_id, after=conn.sent_seq, upto=upto)
            for f in page:
                await conn.send(f)
                conn.sent_seq = f["seq"]
            if len(page) < chat.HISTORY_PAGE:
                return

    async def run_sender(self, conn: Connection) -> None:
        """Write ``conn``'s frames in order until it is closed; message numbers are sent once and without gaps."""
        while True:
            frame = await conn.queue.get()
            if conn.overflowed:
                raise SlowConsumer
            kind = frame["type"]
            if kind == "_catchup":
                await self._fill(conn, None)
                continue
            if kind in ("message", "ack"):
                seq = frame["seq"]
                if kind == "message" and seq <= conn.sent_seq:
                    continue  # already sent (history and live delivery overlap)
                if seq > conn.sent_seq + 1:  # a gap: what came through another worker is still on its way
                    await self._fill(conn, seq - 1)
                conn.sent_seq = max(conn.sent_seq, seq)
            await conn.send(frame)

    # --- sending ---------------------------------------------------------------------------------------

    def submit(self, item: chat.Outgoing, origin: Connection | None) -> None:
        """Queue a participant's message; the answer (``ack`` or ``error``) goes to ``origin``."""
        self._inbox.put_nowait(_Pending(item, origin, None))

    async def post(self, item: chat.Outgoing) -> chat.Stored | DomainError:
        """Store a message and wait for the answer (system messages, the HTTP fallback)."""
        future: asyncio.Future[chat.Stored | DomainError] = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(_Pending(item, None, future))
        return await future

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            while len(batch) < BATCH_LIMIT and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            try:
                results = await self._store(batch)
            except IntegrityError:  # a resend raced itself through two workers: one at a time settles it
                results = []
                for p in batch:
                    try:
                        results.extend(await self._store([p]))
                    except Exception as exc:  # noqa: BLE001 - answered as not stored, the client resends
                        results.append(_not_stored(exc))
            except Exception as exc:  # noqa: BLE001 - the database is away: every sender hears it
                results = [_not_stored(exc)] * len(batch)
            self.stats["batches"] += 1
            self.stats["messages"] += len(batch)
            for p, r in zip(batch, results, strict=True):
                self._answer(p, r)

    async def _store(self, batch: list[_Pending]) -> list[chat.Stored | DomainError]:
        async with self.db.transaction() as session:
            results = await chat.store_messages(session, [p.item for p in batch])
            frames: list[tuple[uuid.UUID, dict[str, Any], str | None]] = []
            for p, r in zip(batch, results, strict=True):
                if isinstance(r, chat.Stored) and not r.duplicate:
                    r.frame = chat.message_frame(
                        seq=r.seq,
                        sender=p.item.sender,
                        client_id=p.item.client_id,
                        body=p.item.body,
                        attachment=p.item.attachment,
                        sent_at=r.sent_at,
                    )
                    frames.append((p.item.consultation_id, r.frame, None))
            await relay(session, frames)
        return results

    def _answer(self, p: _Pending, r: chat.Stored | DomainError) -> None:
        cid = p.item.consultation_id
        if isinstance(r, chat.Stored) and not r.duplicate:
            self.deliver(cid, r.frame, skip=p.origin)
        if p.future is not None and not p.future.done():
            p.future.set_result(r)
        if p.origin is None:
            return
        if isinstance(r, chat.Stored):
            p.origin.push(
                {
                    "type": "ack",
                    "client_id": p.item.client_id,
                    "seq": r.seq,
                    "sent_at": r.sent_at.isoformat(),
                    "duplicate": r.duplicate,
                }
            )
        else:
            p.origin.push(error_frame(r, ref=p.item.client_id))

    # --- frames that are not stored (typing, read marks, call signals, status) ---------------------------

    def receive(self, payload: str) -> None:
        """A notification from the channel: frames another worker's commit produced."""
        key, i, n, part = payload.split("|", 3)
        if key.partition(".")[0] == WORKER:
            return  # this worker delivered them already
        count = int(n)
        if count == 1:
            text = part
        else:
            now = time.monotonic()
            for stale in [k for k, (t, _) in self._parts.items() if now - t > 30]:
                del self._parts[stale]
            parts = self._parts.setdefault(key, (now, [None] * count))[1]
            parts[int(i)] = part
            if any(p is None for p in parts):
                return
            del self._parts[key]
            text = "".join(parts)  # type: ignore[arg-type]
        frames = orjson.loads(crypto.cipher().decrypt_bytes(base64.b64decode(text)))
        for cid, frame, to_side in frames:
            consultation_id = uuid.UUID(cid)
            if consultation_id in self.rooms:
                self.deliver(consultation_id, frame, to_side=to_side)

    def catch_up(self) -> None:
        for room in self.rooms.values():
            for conn in room:
                conn.push({"type": "_catchup"})


def error_frame(exc: DomainError, *, ref: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message, "details": exc.details}
    if ref is not None:
        frame["ref"] = ref
    return frame


def _not_stored(exc: Exception) -> DomainError:
    log.warning("chat_store_failed", error=type(exc).__name__)
    return DomainError(
        "not_stored", "the message could not be stored; send it again with the same client_id", status=503
    )


_HUBS: set[Hub] = set()


def _on_notification(payload: str) -> None:
    for hub in list(_HUBS):
        hub.receive(payload)


def _on_reconnect() -> None:
    for hub in list(_HUBS):
        hub.catch_up()


_part_ids = itertools.count()


async def relay(session: AsyncSession, frames: list[tuple[uuid.UUID, dict[str, Any], str | None]]) -> None:
    """Send ``(consultation, frame, only to this side)`` to the other workers when ``session`` commits."""
    if not frames or session.bind.dialect.name != "postgresql":
        return
    sealed = crypto.cipher().encrypt_bytes(orjson.dumps([[str(c), f, s] for c, f, s in frames]))
    text = base64.b64encode(sealed).decode()
    parts = [text[i : i + PART_BYTES] for i in range(0, len(text), PART_BYTES)]
    key = f"{WORKER}.{next(_part_ids)}"
    await notify.notify(session, CHANNEL, [f"{key}|{i}|{len(parts)}|{part}" for i, part in enumerate(parts)])


async def publish(
    session: AsyncSession,
    consultation_id: uuid.UUID,
    frame: dict[str, Any],
    *,
    to_side: str | None = None,
    skip: Connection | None = None,
) -> None:
    """Deliver ``frame`` to the consultation's connections in every worker once ``session`` commits: typing,
    read marks, call signals, and the ``status`` frames services send when a consultation changes."""

    def local() -> None:
        for hub in list(_HUBS):
            hub.deliver(consultation_id, frame, to_side=to_side, skip=skip)

    on_commit(session, local)
    await relay(session, [(consultation_id, frame, to_side)])
