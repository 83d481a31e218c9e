"""The consultation chat over a real WebSocket: order, resends, delivery, read receipts, resume, bad frames,
attachments, video signalling, and many writers at once."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.factories import ConsultationWorld, auth, login, make_consultation, make_doctor, make_patient, ok
from tests.test_consultations import _count


def _ws_url(server: Any, cid: str, after: int | None = None) -> str:  # type: ignore[no-untyped-def]
    url = server.base_url.replace("http://", "ws://") + f"/api/v1/consultations/{cid}/chat"
    return url if after is None else f"{url}?after={after}"


def _open(server: Any, token: str, cid: str, after: int | None = None) -> ClientConnection:
    ws = connect(_ws_url(server, cid, after), additional_headers=auth(token), open_timeout=10, legacy=True)
    hello = _next(ws, "hello")
    assert hello["consultation_id"] == cid
    return ws


def _next(ws: ClientConnection, *types: str, timeout: float = 10) -> dict[str, Any]:
    """The next frame of one of ``types`` (others are skipped: typing, read marks...)."""
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        if not types or frame["type"] in types:
            return frame


def _quiet(ws: ClientConnection, seconds: float = 0.3) -> list[dict[str, Any]]:
    frames = []
    try:
        while True:
            frames.append(json.loads(ws.recv(timeout=seconds)))
    except TimeoutError:
        return frames


def _send(ws: ClientConnection, frame: Any) -> None:
    ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))


def _png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_chat_both_ways_with_resends_receipts_and_resume(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    patient = _open(server, cw.patient_token, cw.consultation_id)
    doctor = _open(server, cw.doctor_token, cw.consultation_id)

    _send(patient, {"type": "message", "client_id": "p-1", "text": "医生您好，我最近血压 150/95"})
    ack = _next(patient, "ack")
    assert ack == {"type": "ack", "client_id": "p-1", "seq": 1, "sent_at": ack["sent_at"], "duplicate": False}
    got = _next(doctor, "message")
    assert got["seq"] == 1 and got["sender"] == "patient" and got["text"].startswith("医生您好")

    _send(doctor, {"type": "message", "client_id": "d-1", "text": "请继续服药，一周后复测"})
    assert _next(doctor, "ack")["seq"] == 2
    assert _next(patient, "message")["text"] == "请继续服药，一周后复测"

    # a resend (same client id) is the same message: acknowledged with its number, not delivered again
    _send(patient, {"type": "message", "client_id": "p-1", "text": "医生您好，我最近血压 150/95"})
    again = _next(patient, "ack")
    assert again["seq"] == 1 and again["duplicate"] is True
    assert [f for f in _quiet(doctor) if f["type"] == "message"] == []

    _send(doctor, {"type": "read", "seq": 1})
    assert _next(patient, "read") == {"type": "read", "by": "doctor", "seq": 1}
    _send(patient, {"type": "typing"})
    assert _next(doctor, "typing")["by"] == "patient"
    patient.close()

    # the patient comes back having seen message 1: message 2 comes first, then live ones
    back = _open(server, cw.patient_token, cw.consultation_id, after=1)
    assert _next(back, "message")["seq"] == 2
    _send(doctor, {"type": "message", "client_id": "d-2", "text": "还有其他不适吗？"})
    assert _next(back, "message")["seq"] == 3
    back.close()
    doctor.close()

    history = ok(client.get(f"/api/v1/consultations/{cw.consultation_id}/messages", headers=auth(cw.patient_token)))
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3]
    assert history["read"] == {"patient": 0, "doctor": 1} and history["last_seq"] == 3
    # sealed at rest, reads audited
    assert _count(server, "SELECT count(*) FROM consultation_messages WHERE body LIKE '%血压%'") == 0
    reads = "SELECT count(*) FROM audit_records WHERE action = 'consultation.chat.read' AND subject_id = :c"
    assert (
        _count(server, reads, c=cw.consultation_id.replace("-", "")) + _count(server, reads, c=cw.consultation_id) >= 4
    )


def test_bad_frames_get_errors_and_change_nothing(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    ws = _open(server, cw.patient_token, cw.consultation_id)
    cases = [
        ("{not json", "malformed_json"),
        ({"type": "shout", "text": "hi"}, "invalid_frame"),
        ({"type": "message", "client_id": "x", "text": "hi", "colour": "red"}, "invalid_frame"),
        ({"type": "message", "client_id": 12, "text": "hi"}, "invalid_frame"),
        ({"type": "message", "client_id": "bad id!", "text": "hi"}, "invalid_frame"),
        ({"type": "message", "client_id": "x2", "text": "   "}, "empty_message"),
        ({"type": "message", "client_id": "x3", "text": "长" * 4001}, "message_too_long"),
        ({"type": "read", "seq": "1"}, "invalid_frame"),
        ({"type": "signal", "kind": "offer", "data": {"sdp": "v=0"}}, "not_a_video_consultation"),
        ({"type": "message", "client_id": "x4", "attachment_id": "8d6f2f5e-2b8e-4e8e-9a55-3d0c0d6a1e10"}, "not_found"),
        (b"\x00\x01binary", "binary_frame"),
    ]
    for frame, code in cases:
        _send(ws, frame)
        error = _next(ws, "error")
        assert error["code"] == code, (frame, error)
    _send(ws, {"type": "ping"})
    assert _next(ws, "pong") == {"type": "pong"}  # the connection is still usable
    history = ok(client.get(f"/api/v1/consultations/{cw.consultation_id}/messages", headers=auth(cw.patient_token)))
    assert history["messages"] == [] and history["last_seq"] == 0

    # a frame over the size limit closes the connection with 1009; nothing was stored
    with pytest.raises(ConnectionClosed) as closed:
        _send(ws, json.dumps({"type": "message", "client_id": "big", "text": "x" * (70 * 1024)}))
        _next(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    # messages to a closed consultation are refused
    ws = _open(server, cw.patient_token, cw.consultation_id)
    ok(
        client.post(
            f"/api/v1/consultations/{cw.consultation_id}/close", headers=auth(cw.doctor_token), json={"reason": "好"}
        )
    )
    assert _next(ws, "status")["status"] == "closed"
    _send(ws, {"type": "message", "client_id": "late", "text": "还在吗"})
    error = _next(ws, "error")
    assert error["code"] == "consultation_not_open" and error["ref"] == "late"
    ws.close()
    history = ok(client.get(f"/api/v1/consultations/{cw.consultation_id}/messages", headers=auth(cw.doctor_token)))
    assert history["messages"] == []


def _refused(server: Any, cid: str, headers: dict[str, str] | None, after: str | None = None) -> tuple[int, str]:
    url = _ws_url(server, cid) + (f"?after={after}" if after is not None else "")
    with connect(url, additional_headers=headers or {}, open_timeout=10) as ws:
        error = _next(ws, "error")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, error["code"]


def test_who_may_connect(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token, practitioners=2)
    cid = cw.consultation_id
    other_doctor = login(client, make_doctor(client, cw.world, cw.world.extra_practitioners[0]))
    other_patient, _, _ = make_patient(client)
    assert _refused(server, cid, None) == (4401, "not_authenticated")
    assert _refused(server, cid, auth("not-a-token")) == (4401, "invalid_token")
    assert _refused(server, cid, auth(other_doctor)) == (4404, "not_found")
    assert _refused(server, cid, auth(other_patient)) == (4404, "not_found")
    assert _refused(server, "not-a-uuid", auth(cw.patient_token)) == (4400, "bad_id")
    assert _refused(server, cid, auth(cw.patient_token), after="-1") == (4400, "bad_after")
    # the session cookie alone is not enough from another site's page
    cookies = {"Cookie": f"cb_session={cw.patient_token}; cb_csrf=x", "Origin": "http://evil.example"}
    assert _refused(server, cid, cookies) == (4403, "bad_origin")


def test_attachments(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token)
    url = f"/api/v1/consultations/{cw.consultation_id}/attachments"
    png = _png()
    up = ok(client.post(url, headers=auth(cw.patient_token), files={"file": ("血压记录.png", png, "image/png")}), 201)
    assert up["content_type"] == "image/png" and up["size"] == len(png) and up["filename"] == "血压记录.png"
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    form = ok(
        client.post(
            url,
            headers=auth(cw.patient_token),
            files={"file": ("../../report.pdf", pdf, "application/pdf")},
            data={"purpose": "form"},
        ),
        201,
    )
    assert form["filename"] == "report.pdf" and form["purpose"] == "form"

    def refused(
        files: dict[str, Any], token: str = cw.patient_token, data: dict[str, str] | None = None
    ) -> tuple[int, str]:
        r = client.post(url, headers=auth(token), files=files, data=data or {})
        return r.status_code, r.json()["error"]["code"]

    assert refused({"file": ("a.png", b"just text, not an image", "image/png")}) == (422, "unsupported_file_type")
    assert refused({"file": ("a.pdf", png, "application/pdf")}) == (422, "file_type_mismatch")
    assert refused({"file": ("a.png", b"", "image/png")}) == (422, "empty_file")
    big = png + b"\x00" * (256 * 1024)
    assert refused({"file": ("big.png", big, "image/png")})[0] == 413
    assert refused({"file": ("a.png", png, "image/png")}, data={"purpose": "selfie"})[1] == "invalid_input"
    stranger, _, _ = make_patient(client)
    assert refused({"file": ("a.png", png, "image/png")}, token=stranger) == (404, "not_found")
    assert len(ok(client.get(url, headers=auth(cw.doctor_token)))) == 2

    # the doctor reads it (audited); on disk it is sealed
    got = client.get(up["url"], headers=auth(cw.doctor_token))
    assert got.status_code == 200 and got.content == png and got.headers["content-type"] == "image/png"
    files = [p for p in server.settings.files_dir.rglob("*") if p.is_file()]
    assert files and all(png not in p.read_bytes() for p in files)
    assert _count(server, "SELECT count(*) FROM audit_records WHERE action = 'consultation.attachment.read'") >= 1

    # sent in the chat: the other side sees it; someone else's upload cannot be sent
    patient = _open(server, cw.patient_token, cw.consultation_id)
    doctor = _open(server, cw.doctor_token, cw.consultation_id)
    _send(patient, {"type": "message", "client_id": "img-1", "attachment_id": up["id"]})
    assert _next(patient, "ack")["seq"] == 1
    message = _next(doctor, "message")
    assert message["attachment"]["id"] == up["id"] and message["text"] is None
    _send(doctor, {"type": "message", "client_id": "img-2", "attachment_id": up["id"]})
    assert _next(doctor, "error")["code"] == "not_found"
    patient.close()
    doctor.close()


def test_video_call_signalling(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    cw = make_consultation(client, admin_token, kind="video")
    patient = _open(server, cw.patient_token, cw.consultation_id)
    doctor = _open(server, cw.doctor_token, cw.consultation_id)
    offer = {"type": "offer", "sdp": "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\n"}
    _send(doctor, {"type": "signal", "kind": "offer", "data": offer})
    got = _next(patient, "signal")
    assert got == {"type": "signal", "kind": "offer", "data": offer, "from": "doctor"}
    _send(
        patient,
        {
            "type": "signal",
            "kind": "ice",
            "data": {"candidate": "candidate:1 1 udp 2122260223 10.0.0.2 54321 typ host"},
        },
    )
    assert _next(doctor, "signal")["kind"] == "ice"
    _send(patient, {"type": "signal", "kind": "answer", "data": {"type": "answer", "sdp": "v=0\r\n"}})
    assert _next(doctor, "signal")["kind"] == "answer"
    started = _next(doctor, "call")
    assert started["state"] == "started"
    assert _next(patient, "call")["state"] == "started"
    _send(patient, {"type": "signal", "kind": "answer", "data": {"type": "answer", "sdp": "v=0\r\n"}})  # renegotiation
    # the hang-up goes after the renegotiation has passed (two sockets: otherwise either may arrive first, and an
    # answer after a hang-up rightly starts a new call)
    assert _next(doctor, "signal")["kind"] == "answer"
    _send(doctor, {"type": "signal", "kind": "hangup"})
    ended = _next(patient, "call")
    assert ended["state"] == "ended" and ended["call_id"] == started["call_id"] and ended["duration_seconds"] >= 0
    too_big = {"type": "signal", "kind": "offer", "data": {"sdp": "a" * (17 * 1024)}}
    _send(doctor, too_big)
    assert _next(doctor, "error")["code"] == "signal_too_large"
    patient.close()
    doctor.close()
    events = "SELECT count(*) FROM outbox WHERE subject_id = :c AND type = :t"
    for c in (cw.consultation_id, cw.consultation_id.replace("-", "")):
        if _count(server, events, c=c, t="call.started"):
            assert _count(server, events, c=c, t="call.started") == 1
            assert _count(server, events, c=c, t="call.ended") == 1
            break
    else:
        raise AssertionError("no call events")


def test_many_writers_at_once_get_one_gapless_order(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    cw: ConsultationWorld = make_consultation(client, admin_token)
    per_sender, senders = 30, 6  # three patient devices and three doctor devices, all writing at once

    async def run() -> list[list[dict[str, Any]]]:
        tokens = [cw.patient_token] * 3 + [cw.doctor_token] * 3
        url = _ws_url(server, cw.consultation_id)

        async def sender(n: int) -> list[dict[str, Any]]:
            frames: list[dict[str, Any]] = []
            async with aconnect(url, additional_headers=auth(tokens[n])) as ws:
                for i in range(per_sender):
                    await ws.send(json.dumps({"type": "message", "client_id": f"s{n}-{i}", "text": f"{n}:{i}"}))
                    if i % 7 == 0:  # a resend in the middle of the stream
                        await ws.send(json.dumps({"type": "message", "client_id": f"s{n}-{i}", "text": f"{n}:{i}"}))
                    await asyncio.sleep(0.01)
                acks = 0
                while acks < per_sender + (per_sender + 6) // 7:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    frames.append(frame)
                    acks += frame["type"] == "ack"
                # stay until every other sender's messages arrived too
                total = per_sender * senders
                deadline = asyncio.get_running_loop().time() + 15
                while len({f["seq"] for f in frames if f["type"] in ("message", "ack")}) < total:
                    if asyncio.get_running_loop().time() > deadline:
                        break
                    try:
                        frames.append(json.loads(await asyncio.wait_for(ws.recv(), 1)))
                    except TimeoutError:
                        continue
            return frames

        return await asyncio.gather(*(sender(n) for n in range(senders)))

    results = asyncio.run(run())
    total = per_sender * senders
    for frames in results:
        seqs = [f["seq"] for f in frames if f["type"] == "message"]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))  # in order, never twice
        seen = {f["seq"] for f in frames if f["type"] in ("message", "ack")}
        assert seen == set(range(1, total + 1))  # every message reached every connection
    history = ok(client.get(f"/api/v1/consultations/{cw.consultation_id}/messages", headers=auth(cw.doctor_token)))
    assert [m["seq"] for m in history["messages"]] == list(range(1, total + 1))
    assert sorted(m["client_id"] for m in history["messages"]) == sorted(
        f"s{n}-{i}" for n in range(senders) for i in range(per_sender)
    )


def test_handover_moves_the_consultation_and_closes_the_old_doctors_socket(  # type: ignore[no-untyped-def]
    server, client: httpx.Client, admin_token: str
) -> None:
    cw = make_consultation(client, admin_token, practitioners=2)
    cid = cw.consultation_id
    colleague = login(client, make_doctor(client, cw.world, cw.world.extra_practitioners[0]))
    old = _open(server, cw.doctor_token, cid)
    patient = _open(server, cw.patient_token, cid)
    url = f"/api/v1/consultations/{cid}/handover"
    same = client.post(
        url, headers=auth(cw.doctor_token), json={"practitioner_id": cw.world.practitioner_id, "reason": "x"}
    )
    assert same.status_code == 409 and same.json()["error"]["code"] == "same_practitioner"
    assert (
        client.post(
            url,
            headers=auth(cw.patient_token),
            json={"practitioner_id": cw.world.extra_practitioners[0], "reason": "x"},
        ).status_code
        == 403
    )  # noqa: E501
    assert (
        client.post(
            url, headers=auth(colleague), json={"practitioner_id": cw.world.extra_practitioners[0], "reason": "x"}
        ).status_code
        == 404
    )  # noqa: E501
    moved = ok(
        client.post(
            url,
            headers=auth(cw.doctor_token),
            json={"practitioner_id": cw.world.extra_practitioners[0], "reason": "下班交接"},
        )
    )
    assert moved["practitioner_id"] == cw.world.extra_practitioners[0] and moved["status"] == "in_progress"
    # the old doctor's socket is closed; the patient sees the platform's line and the change
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            _next(old)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    line = _next(patient, "message")
    assert line["sender"] == "system" and line["seq"] == 1
    assert _next(patient, "status")["practitioner_id"] == cw.world.extra_practitioners[0]
    assert _refused(server, cid, auth(cw.doctor_token)) == (4404, "not_found")
    new = _open(server, colleague, cid)
    assert _next(new, "message")["seq"] == 1
    _send(new, {"type": "message", "client_id": "n-1", "text": "您好，我接手您的问诊"})
    assert _next(patient, "message")["text"] == "您好，我接手您的问诊"
    for ws in (new, patient):
        ws.close()
    assert _count(server, "SELECT count(*) FROM outbox WHERE type = 'consultation.handed_over'") >= 1


def test_convert_to_an_in_person_visit(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import make_schedule

    cw = make_consultation(client, admin_token)
    schedule = make_schedule(client, cw.world, pools={"onsite": 1})
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    url = f"/api/v1/consultations/{cw.consultation_id}/convert"
    assert client.post(url, headers=auth(cw.patient_token), json={"slot_id": slot_id}).status_code == 403
    bad = client.post(url, headers=auth(cw.doctor_token), json={"slot_id": slot_id, "channel": "partner:x"})
    assert bad.status_code == 422
    done = ok(client.post(url, headers=auth(cw.doctor_token), json={"slot_id": slot_id}))
    assert done["consultation"]["status"] == "closed" and done["appointment_id"]
    mine = ok(client.get("/api/v1/appointments", headers=auth(cw.patient_token)))
    assert any(a["id"] == done["appointment_id"] and a["channel"] == "onsite" for a in mine)
    assert client.post(url, headers=auth(cw.doctor_token), json={"slot_id": slot_id}).status_code == 409

    # the slot is now full: a second conversion is refused and its consultation stays as it was
    second = make_consultation(client, admin_token, world=cw.world)
    full = client.post(
        f"/api/v1/consultations/{second.consultation_id}/convert",
        headers=auth(second.doctor_token),
        json={"slot_id": slot_id},
    )
    assert full.status_code == 409 and full.json()["error"]["code"] == "slot_full"
    state = ok(client.get(f"/api/v1/consultations/{second.consultation_id}", headers=auth(second.doctor_token)))
    assert state["status"] == "in_progress"
    # a doctor of another hospital cannot book a visit here
    elsewhere = make_consultation(client, admin_token)
    r = client.post(
        f"/api/v1/consultations/{elsewhere.consultation_id}/convert",
        headers=auth(elsewhere.doctor_token),
        json={"slot_id": slot_id},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "other_hospital"
