"""The consultation's WebSocket: chat, read receipts, typing and video-call signalling (docs/chat.md).

``GET /api/v1/consultations/{id}/chat?after=<seq>`` upgrades to a WebSocket. The caller authenticates with
``Authorization: Bearer <token>`` or, from the pages, the session cookie (then the ``Origin`` must be this
host's: no other site can open a socket with a visitor's cookie). Only the consultation's participants connect.

Every frame is one JSON object with a ``type``. A bad frame is answered with an ``error`` frame (``code``,
``message``, ``details``, and ``ref``: the frame's ``client_id`` when it had one) and changes nothing; the
connection stays usable. The connection is closed only when it cannot go on, with a close code:
4400 bad request (consultation id, ``after``), 4401 not authenticated, 4403 not allowed (another site's page,
handed over to a colleague), 4404 not a consultation of yours, 4408 too slow to take its frames (reconnect
with ``after``), 1009 a frame over the size limit, 1011 an unexpected server error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
import structlog
from fastapi import APIRouter, WebSocket
from pydantic import Field, StrictInt, StrictStr, TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from carebridge.auth.dependencies import CSRF_COOKIE, bearer_token, resolve
from carebridge.auth.principal import Principal
from carebridge.consultations import attachments, calls, chat, hub, service
from carebridge.consultations.models import Consultation
from carebridge.core.errors import DomainError, Forbidden, InvalidInput, TooManyRequests, Unauthorized
from carebridge.core.schemas import Input
from carebridge.database.engine import Database

router = APIRouter(tags=["consultations"])
log = structlog.get_logger(__name__)

SIGNAL_MAX_BYTES = 16 * 1024
RATE_PER_SECOND = 20.0  # frames a connection may send per second, with bursts of RATE_BURST
RATE_BURST = 40.0
_CLOSE_CODES = {400: 4400, 401: 4401, 403: 4403, 404: 4404, 422: 4400}
_SIDES = ("patient", "doctor")


class MessageFrame(Input):
    type: Literal["message"]
    client_id: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")
    text: StrictStr | None = Field(default=None, max_length=16000)
    attachment_id: uuid.UUID | None = None


class ReadFrame(Input):
    type: Literal["read"]
    seq: StrictInt = Field(ge=1)


class TypingFrame(Input):
    type: Literal["typing"]


class PingFrame(Input):
    type: Literal["ping"]


class SignalFrame(Input):
    type: Literal["signal"]
    kind: Literal["offer", "answer", "ice", "hangup"]
    data: dict[str, Any] | None = None


Frame = Annotated[MessageFrame | ReadFrame | TypingFrame | PingFrame | SignalFrame, Field(discriminator="type")]
FRAME = TypeAdapter(Frame)


class Closing(Exception):
    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


async def _authenticate(ws: WebSocket) -> Principal:
    token, from_cookie = bearer_token(ws)
    if token is None:
        raise Unauthorized("not_authenticated", "log in and send 'Authorization: Bearer <token>'")
    if from_cookie:  # WebSocket has no CORS: only the platform's own pages may use the visitor's cookie
        origin = ws.headers.get("origin")
        if not origin or urlsplit(origin).netloc != ws.headers.get("host") or not ws.cookies.get(CSRF_COOKIE):
            raise Forbidden("bad_origin", "a cookie-authenticated socket must come from this site's own pages")
    principal = await resolve(ws, token)
    if principal is None:
        raise Unauthorized("invalid_token", "the token is unknown, expired or revoked")
    return principal


async def _open(ws: WebSocket, db: Database, consultation_id: str) -> tuple[Principal, Consultation, int]:
    principal = await _authenticate(ws)
    try:
        cid = uuid.UUID(consultation_id)
    except ValueError:
        raise InvalidInput(
            "bad_id", "the consultation id is not a UUID", details={"field": "consultation_id"}
        ) from None
    raw_after = ws.query_params.get("after", "0")
    if not raw_after.isdigit() or len(raw_after) > 12:
        raise InvalidInput(
            "bad_after", "after is the last message number you have (0 or more)", details={"field": "after"}
        )
    async with db.transaction() as session:  # the conversation is personal data: opening it is audited
        c = await service.authorised(session, principal=principal, consultation_id=cid)
        await service.audit_chat_read(session, principal, c, after=int(raw_after))
    return principal, c, int(raw_after)


@router.websocket("/consultations/{consultation_id}/chat")
async def chat_socket(ws: WebSocket, consultation_id: str) -> None:
    db: Database = ws.app.state.db
    the_hub: hub.Hub = ws.app.state.chat
    await ws.accept()
    try:
        principal, c, after = await _open(ws, db, consultation_id)
    except DomainError as exc:
        await ws.send_text(orjson.dumps(hub.error_frame(exc)).decode())
        await ws.close(code=_CLOSE_CODES.get(exc.status, 4400), reason=exc.code)
        return

    async def send(frame: dict[str, Any]) -> None:
        await ws.send_text(orjson.dumps(frame).decode())
        if frame["type"] == "status":
            _after_status(conn, frame)

    side = service.side_of(principal)
    conn = hub.Connection(
        consultation_id=c.id, side=side, user_id=principal.user_id, practitioner_id=principal.practitioner_id, send=send
    )
    conn.sent_seq = min(after, c.last_seq)
    the_hub.join(conn)
    conn.push(
        {
            "type": "hello",
            "consultation_id": str(c.id),
            "kind": c.kind.value,
            "status": c.status.value,
            "you": side,
            "last_seq": c.last_seq,
            "read": {"patient": c.patient_read_seq, "doctor": c.doctor_read_seq},
            "ice_servers": db.settings.ice_servers if c.kind.value == "video" else [],
            "limits": {
                "max_chars": db.settings.chat_max_chars,
                "max_frame_bytes": db.settings.ws_max_frame_bytes,
                "frames_per_second": RATE_PER_SECOND,
            },
        }
    )
    conn.push({"type": "_catchup"})
    reader = Reader(ws, db, the_hub, principal, c, conn)
    tasks = {
        asyncio.create_task(the_hub.run_sender(conn), name="chat-send"),
        asyncio.create_task(reader.run(), name="chat-read"),
    }
    code, reason = 1000, ""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if isinstance(exc, hub.SlowConsumer):
                code, reason = 4408, "slow_consumer"
            elif isinstance(exc, Closing):
                code, reason = exc.code, exc.reason
            elif exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                log.error("chat_connection_failed", error=type(exc).__name__)
                code, reason = 1011, "internal_error"
    finally:
        the_hub.leave(conn)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(code=code, reason=reason)


def _after_status(conn: hub.Connection, frame: dict[str, Any]) -> None:
    """A doctor's socket closes once the consultation is handed to a colleague."""
    if conn.side == "doctor" and frame.get("practitioner_id") not in (None, str(conn.practitioner_id)):
        raise Closing(4403, "handed_over")


class Reader:
    """Reads the client's frames one by one and acts on them."""

    def __init__(
        self, ws: WebSocket, db: Database, the_hub: hub.Hub, principal: Principal, c: Consultation, conn: hub.Connection
    ) -> None:
        self.ws, self.db, self.hub, self.principal, self.c, self.conn = ws, db, the_hub, principal, c, conn
        self.tokens = RATE_BURST
        self.refilled = time.monotonic()

    def _allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.refilled) * RATE_PER_SECOND)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def run(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            ref = None
            try:
                raw = message.get("text")
                if raw is None:
                    raise InvalidInput("binary_frame", "frames are JSON text; send files through the upload endpoint")
                if not self._allow():
                    raise TooManyRequests(
                        "too_many_frames", f"at most {RATE_PER_SECOND:g} frames per second", details={"dropped": True}
                    )
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    raise InvalidInput("malformed_json", "the frame is not valid JSON") from None
                if isinstance(data, dict) and isinstance(data.get("client_id"), str):
                    ref = data["client_id"][:64]
                try:
                    frame = FRAME.validate_python(data)
                except ValidationError as exc:
                    errors = [
                        {
                            "field": ".".join(str(p) for p in e["loc"][1:]) or "type",
                            "type": e["type"],
                            "message": e["msg"],
                        }
                        for e in exc.errors(include_url=False)
                    ]
                    raise InvalidInput(
                        "invalid_frame", "the frame does not fit the protocol", details={"errors": errors}
                    ) from None
                await self.handle(frame)
            except DomainError as exc:
                self.conn.push(hub.error_frame(exc, ref=ref))

    async def handle(self, frame: Any) -> None:
        if isinstance(frame, MessageFrame):
            await self.message(frame)
        elif isinstance(frame, ReadFrame):
            async with self.db.transaction() as session:
                if await chat.mark_read(session, self.c.id, self.conn.side, frame.seq):
                    await hub.publish(
                        session, self.c.id, {"type": "read", "by": self.conn.side, "seq": frame.seq}, skip=self.conn
                    )
        elif isinstance(frame, TypingFrame):
            await self.ephemeral({"type": "typing", "by": self.conn.side})
        elif isinstance(frame, PingFrame):
            self.conn.push({"type": "pong"})
        else:
            await self.signal(frame)

    async def message(self, frame: MessageFrame) -> None:
        text = frame.text if frame.text is None else frame.text.strip() or None
        if text is None and frame.attachment_id is None:
            raise InvalidInput("empty_message", "a message has text, an attachment or both", details={"field": "text"})
        limit = self.db.settings.chat_max_chars
        if text is not None and len(text) > limit:
            raise InvalidInput(
                "message_too_long",
                f"a message has at most {limit} characters",
                details={"field": "text", "limit": limit},
            )
        shown = None
        if frame.attachment_id is not None:
            async with self.db.read() as session:
                row = await attachments.for_message(
                    session, principal=self.principal, consultation_id=self.c.id, attachment_id=frame.attachment_id
                )
                shown = chat.attachment_frame(row)
        self.hub.submit(
            chat.Outgoing(
                consultation_id=self.c.id,
                region=self.c.region,
                sender=self.conn.side,
                sender_user_id=self.principal.user_id,
                client_id=frame.client_id,
                body=text,
                attachment=shown,
            ),
            self.conn,
        )

    async def ephemeral(self, frame: dict[str, Any], *, to_side: str | None = None) -> None:
        """Frames nobody stores (typing, call signals): to this worker's connections now, to others by NOTIFY."""
        self.hub.deliver(self.c.id, frame, to_side=to_side, skip=self.conn)
        if not self.db.is_sqlite:
            async with self.db.read() as session:  # autocommit on PostgreSQL: the notification leaves at once
                await hub.relay(session, [(self.c.id, frame, to_side)])

    async def signal(self, frame: SignalFrame) -> None:
        if frame.data is not None and len(orjson.dumps(frame.data)) > SIGNAL_MAX_BYTES:
            raise InvalidInput(
                "signal_too_large", f"signal data is limited to {SIGNAL_MAX_BYTES} bytes", details={"field": "data"}
            )
        other = _SIDES[1 - _SIDES.index(self.conn.side)]
        out = {"type": "signal", "kind": frame.kind, "data": frame.data, "from": self.conn.side}
        if frame.kind in ("answer", "hangup"):  # these change the call's record: one transaction, in order
            async with self.db.transaction() as session:
                c = await service.get_consultation(session, self.c.id)
                calls.require_video(c, running=frame.kind == "answer")
                await hub.publish(session, c.id, out, to_side=other)
                if frame.kind == "answer":
                    await calls.start_call(session, c, side=self.conn.side, actor=self.principal.actor)
                else:
                    await calls.end_call(session, c, by=self.conn.side, actor=self.principal.actor)
            return
        async with self.db.read() as session:
            calls.require_video(await service.get_consultation(session, self.c.id))
        await self.ephemeral(out, to_side=other)
