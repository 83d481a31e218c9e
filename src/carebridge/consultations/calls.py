"""Video calls inside a video consultation.

The media goes peer to peer (WebRTC); the platform only relays the signalling (offer, answer, ICE candidates,
hang-up) over the chat connection and keeps the record: a call starts when the callee's answer passes through,
ends on a hang-up from either side or when the consultation ends, and each is an event (``call.started``,
``call.ended`` with the duration). At most one call runs per consultation (a partial unique index).
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.consultations import hub
from carebridge.consultations.models import Call, Consultation, ConsultationKind, ConsultationStatus
from carebridge.core import clock
from carebridge.core.errors import Conflict
from carebridge.events.outbox import append_event


def require_video(c: Consultation, *, running: bool = True) -> None:
    """409 unless ``c`` is a video consultation (and, with ``running``, in progress)."""
    if c.kind != ConsultationKind.video:
        raise Conflict("not_a_video_consultation", "calls belong to video consultations")
    if running and c.status != ConsultationStatus.in_progress:
        raise Conflict("consultation_not_open", "calls can be made only while the consultation is in progress")


def _emit(session: AsyncSession, type_: str, c: Consultation, call: Call, actor: str, **extra: object) -> None:
    append_event(
        session,
        type_,
        subject_type="consultation",
        subject_id=c.id,
        hospital_id=c.hospital_id,
        region=c.region,
        actor=actor,
        data={
            "call_id": call.id,
            "consultation_id": c.id,
            "patient_id": c.patient_id,
            "practitioner_id": c.practitioner_id,
            "started_by": call.started_by,
            "started_at": call.started_at,
            **extra,
        },
    )


def call_frame(call: Call) -> dict[str, object]:
    """What the consultation's sockets are told (``call`` frame, docs/chat.md)."""
    frame: dict[str, object] = {
        "type": "call",
        "state": "ended" if call.ended_at else "started",
        "call_id": str(call.id),
    }
    if call.ended_at is not None:
        frame["duration_seconds"] = call.duration_seconds
    return frame


async def open_call(session: AsyncSession, c: Consultation) -> Call | None:
    return await session.scalar(select(Call).where(Call.consultation_id == c.id, Call.ended_at.is_(None)))


async def start_call(session: AsyncSession, c: Consultation, *, side: str, actor: str) -> Call | None:
    """Record a call's start and tell the sockets; ``None`` if one is already running (a repeated answer, a
    renegotiation)."""
    require_video(c)
    if await open_call(session, c) is not None:
        return None
    call = Call(consultation_id=c.id, started_by=side, started_at=clock.now())
    try:
        async with session.begin_nested():
            session.add(call)
            await session.flush()
    except IntegrityError:  # the other side's answer won the race
        return None
    _emit(session, "call.started", c, call, actor)
    await hub.publish(session, c.id, call_frame(call))
    return call


async def end_call(session: AsyncSession, c: Consultation, *, by: str, actor: str) -> Call | None:
    """End the running call, if any (a hang-up, or the consultation ending), and tell the sockets."""
    call = await open_call(session, c)
    if call is None:
        return None
    now = clock.now()
    duration = max(0, int((now - call.started_at).total_seconds()))
    result = await session.execute(
        update(Call)
        .where(Call.id == call.id, Call.ended_at.is_(None))
        .values(ended_at=now, ended_by=by, duration_seconds=duration)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None  # the other side hung up at the same moment
    call.ended_at, call.ended_by, call.duration_seconds = now, by, duration
    _emit(session, "call.ended", c, call, actor, ended_by=by, ended_at=now, duration_seconds=duration)
    await hub.publish(session, c.id, call_frame(call))
    return call
