"""The chat's storage rules: messages numbered in order, resends recognised, read receipts, history.

Messages are stored in batches (the hub's writer collects what arrives while the previous batch commits), in
one transaction per batch:

1. the client message ids already stored are looked up (a resend gets the stored message's number back);
2. ``UPDATE consultations SET last_seq = last_seq + <n> WHERE id IN (...) AND status = 'in_progress'
   RETURNING id, last_seq`` reserves ``n`` numbers per consultation at once: numbers have no gaps, two
   workers writing to one consultation queue on its row, and a consultation that is no longer in progress
   returns no row, so its messages are refused (409 ``consultation_not_open``);
3. the messages are inserted (bodies sealed with the data key), and on PostgreSQL the other workers are told
   which consultations have new messages.

A unique index on (consultation, sender, client id) is the backstop against a resend racing itself through two
workers: the batch then fails as a whole and is retried one message per transaction.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.consultations.models import Attachment, ChatMessage, Consultation, ConsultationStatus
from carebridge.core import clock
from carebridge.core.errors import Conflict, DomainError
from carebridge.core.ids import new_id

HISTORY_PAGE = 500
# The hot path uses the tables directly (SQLAlchemy Core): the ORM's bulk machinery costs more than the SQL.
_MESSAGES = ChatMessage.__table__
_CONSULTATIONS = Consultation.__table__


@dataclass(slots=True)
class Outgoing:
    """A message a participant sent, waiting to be stored."""

    consultation_id: uuid.UUID
    region: str
    sender: str  # patient | doctor | system
    sender_user_id: uuid.UUID | None
    client_id: str | None
    body: str | None
    attachment: dict[str, Any] | None = None  # the attachment as shown in frames, already checked


@dataclass(slots=True)
class Stored:
    seq: int
    sent_at: datetime
    duplicate: bool = False
    frame: dict[str, Any] = field(default_factory=dict)


def message_frame(
    *,
    seq: int,
    sender: str,
    client_id: str | None,
    body: str | None,
    attachment: dict[str, Any] | None,
    sent_at: datetime,
) -> dict[str, Any]:
    return {
        "type": "message",
        "seq": seq,
        "sender": sender,
        "client_id": client_id,
        "text": body,
        "attachment": attachment,
        "sent_at": sent_at.isoformat(),
    }


def attachment_frame(a: Attachment) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "url": f"/api/v1/consultations/{a.consultation_id}/attachments/{a.id}",
    }


def not_open() -> Conflict:
    return Conflict("consultation_not_open", "messages can be sent only while the consultation is in progress")


async def store_messages(session: AsyncSession, items: Sequence[Outgoing]) -> list[Stored | DomainError]:
    """Store a batch; the answer for each item in order: where it was stored, or why it was refused."""
    results: list[Stored | DomainError | int | None] = [None] * len(items)
    keyed = [i for i, it in enumerate(items) if it.client_id is not None]
    existing: dict[tuple[Any, ...], Stored] = {}
    if keyed:
        m = _MESSAGES.c
        rows = await session.execute(
            # one index probe per message (an OR of equalities; SQLite scans for a row-value IN)
            select(m.consultation_id, m.sender_user_id, m.client_id, m.seq, m.sent_at).where(
                or_(
                    *(
                        and_(m.consultation_id == cid, m.sender_user_id == uid, m.client_id == client_id)
                        for cid, uid, client_id in {
                            (items[i].consultation_id, items[i].sender_user_id, items[i].client_id) for i in keyed
                        }
                    )
                )
            )
        )
        for cid, uid, client_id, seq, sent_at in rows:
            existing[(cid, uid, client_id)] = Stored(seq, sent_at, duplicate=True)
    first: dict[tuple[Any, ...], int] = {}
    fresh: list[int] = []
    for i, it in enumerate(items):
        key = (it.consultation_id, it.sender_user_id, it.client_id)
        if it.client_id is not None and key in existing:
            results[i] = existing[key]
        elif it.client_id is not None and key in first:
            results[i] = first[key]  # the same message twice in one batch: answered like the first
        else:
            if it.client_id is not None:
                first[key] = i
            fresh.append(i)
    counts = Counter(items[i].consultation_id for i in fresh)
    if counts:
        c = _CONSULTATIONS.c
        reserved = await session.execute(
            update(_CONSULTATIONS)
            .where(c.id.in_(list(counts)), c.status == ConsultationStatus.in_progress.value)
            .values(last_seq=c.last_seq + case(dict(counts), value=c.id))
            .returning(c.id, c.last_seq)
        )
        next_seq = {cid: top - counts[cid] + 1 for cid, top in reserved.all()}
        now = clock.now()
        rows_out = []
        for i in fresh:
            it = items[i]
            if it.consultation_id not in next_seq:
                results[i] = not_open()
                continue
            seq = next_seq[it.consultation_id]
            next_seq[it.consultation_id] = seq + 1
            rows_out.append(
                {
                    "id": new_id(),
                    "consultation_id": it.consultation_id,
                    "region": it.region,
                    "seq": seq,
                    "sender": it.sender,
                    "sender_user_id": it.sender_user_id,
                    "client_id": it.client_id,
                    "body": it.body,
                    "attachment_id": uuid.UUID(it.attachment["id"]) if it.attachment else None,
                    "sent_at": now,
                }
            )
            results[i] = Stored(seq, now)
        if rows_out:
            await session.execute(insert(_MESSAGES), rows_out)
    out: list[Stored | DomainError] = []
    for r in results:
        if isinstance(r, int):
            r = results[r]
            if isinstance(r, Stored):
                r = Stored(r.seq, r.sent_at, duplicate=True)
        assert r is not None and not isinstance(r, int)
        out.append(r)
    return out


async def history(
    session: AsyncSession, consultation_id: uuid.UUID, *, after: int, upto: int | None = None, limit: int = HISTORY_PAGE
) -> list[dict[str, Any]]:
    """Message frames with ``after < seq <= upto``, oldest first."""
    query = (
        select(ChatMessage, Attachment)
        .outerjoin(Attachment, Attachment.id == ChatMessage.attachment_id)
        .where(ChatMessage.consultation_id == consultation_id, ChatMessage.seq > after)
        .order_by(ChatMessage.seq)
        .limit(limit)
    )
    if upto is not None:
        query = query.where(ChatMessage.seq <= upto)
    return [
        message_frame(
            seq=m.seq,
            sender=m.sender,
            client_id=m.client_id,
            body=m.body,
            attachment=attachment_frame(a) if a is not None else None,
            sent_at=m.sent_at,
        )
        for m, a in (await session.execute(query)).all()
    ]


async def mark_read(session: AsyncSession, consultation_id: uuid.UUID, side: str, seq: int) -> bool:
    """Move a side's read mark forward to ``seq`` (never back, never past the last message)."""
    column = Consultation.patient_read_seq if side == "patient" else Consultation.doctor_read_seq
    result = await session.execute(
        update(Consultation)
        .where(Consultation.id == consultation_id, column < seq, Consultation.last_seq >= seq)
        .values({column: seq})
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
