"""Idempotency keys: remembered for the retention, then forgotten; on PostgreSQL each worker's filter of
stored keys (``core.idempotency.KNOWN``) learns another worker's keys through the database's notifications, so
skipping the replay read for surely-new keys never skips a stored answer."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import insert, select

from carebridge.core import clock, idempotency
from carebridge.core.idempotency import IdempotencyRecord, KnownKeys
from carebridge.database.engine import Database
from carebridge.scheduling.events import forget_keys_step
from carebridge.scheduling.schemas import BookIn
from tests.conftest import BACKEND
from tests.factories import auth, book, make_hospital, make_patient, make_schedule, ok

postgres_only = pytest.mark.skipif(BACKEND != "postgres", reason="notifications between workers: PostgreSQL")


def _wait_for(predicate, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _run(server, work):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        db = Database(server.settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(go())


def test_a_key_is_sealed_at_rest_and_forgotten_after_the_retention(  # type: ignore[no-untyped-def]
    server, client: httpx.Client, admin_token: str
) -> None:
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, days_ahead=3)
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    token, patient_id, _ = make_patient(client)
    first = book(client, token, patient_id, slot_id, key="kept-a-day")
    assert first.status_code == 201 and first.json()["patient_name"] == "张小明"

    async def raw_answer(db: Database) -> str:
        async with db.read() as session:
            return str(
                await session.scalar(select(IdempotencyRecord.response).where(IdempotencyRecord.key == "kept-a-day"))
            )

    raw = _run(server, raw_answer)
    assert "张小明" not in raw and first.json()["id"] not in raw  # sealed at rest, opened to replay
    assert book(client, token, patient_id, slot_id, key="kept-a-day").json()["id"] == first.json()["id"]

    clock.shift(timedelta(hours=server.settings.idempotency_retention_hours, minutes=5))
    again = book(client, token, patient_id, slot_id, key="kept-a-day")  # a new attempt, not the stored answer
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_booked", again.text

    async def sweep(db: Database) -> tuple[dict[str, int], int]:
        done = await forget_keys_step(db)
        async with db.read() as session:
            left = (
                await session.scalars(select(IdempotencyRecord.id).where(IdempotencyRecord.key == "kept-a-day"))
            ).all()
        return done, len(left)

    done, left = _run(server, sweep)
    assert done["idempotency_keys_forgotten"] >= 1 and left == 0


@postgres_only
def test_another_workers_stored_answer_is_replayed_on_a_sold_out_pool(  # type: ignore[no-untyped-def]
    server, client: httpx.Client, admin_token: str
) -> None:
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    token_a, patient_a, _ = make_patient(client)
    token_b, patient_b, _ = make_patient(client)
    assert book(client, token_a, patient_a, slot_id, key=str(uuid.uuid4())).status_code == 201
    refused = book(client, token_b, patient_b, slot_id, key=str(uuid.uuid4()))  # this worker now knows it full
    assert refused.json()["error"]["code"] == "slot_full"
    assert _wait_for(lambda: idempotency.KNOWN.ready), "the filter of stored keys did not load"
    user_b = uuid.UUID(ok(client.get("/api/v1/auth/me", headers=auth(token_b)))["id"])
    key = f"stored-by-another-worker-{uuid.uuid4()}"
    assert not idempotency.KNOWN.might_exist(user_b, key)  # so a request with it would skip the replay read

    body = BookIn(patient_id=uuid.UUID(patient_b), slot_id=uuid.UUID(slot_id), channel="platform")  # as `book` sends
    stored = {"id": str(uuid.uuid4()), "note": "the answer another worker gave"}

    async def store_elsewhere(db: Database) -> None:  # another process's insert: only the trigger tells us
        async with db.transaction() as session:
            await session.execute(
                insert(IdempotencyRecord).values(
                    id=uuid.uuid4(),
                    user_id=user_b,
                    key=key,
                    operation="appointment.book",
                    request_hash=idempotency.request_hash(body.model_dump(mode="json")),
                    status_code=201,
                    response=stored,
                    created_at=clock.now(),
                )
            )

    _run(server, store_elsewhere)
    assert _wait_for(lambda: idempotency.KNOWN.might_exist(user_b, key)), "the insert was not announced"
    replayed = book(client, token_b, patient_b, slot_id, key=key)
    assert replayed.status_code == 201 and replayed.json() == stored


@postgres_only
def test_the_filter_loads_stored_keys_and_grows(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world)
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    token, patient_id, _ = make_patient(client)
    assert book(client, token, patient_id, slot_id, key="loaded-at-start").status_code == 201
    user = uuid.UUID(ok(client.get("/api/v1/auth/me", headers=auth(token)))["id"])

    async def check(db: Database) -> None:
        known = KnownKeys()
        assert known.might_exist(user, "anything")  # not loaded: every request reads
        known.bind(db)
        known.reload()
        assert known.might_exist(user, "anything")  # loading
        await known.wait_loaded()
        assert known.ready
        assert known.might_exist(user, "loaded-at-start")
        assert not known.might_exist(user, f"never-used-{uuid.uuid4()}")
        for i in range(KnownKeys.MIN_SIZE + 1):  # more keys than it was sized for: it reloads, bigger
            known.add(f"{user}:extra-{i}")
        assert not known.ready
        await known.wait_loaded()
        assert known.ready and known.might_exist(user, "loaded-at-start")
        known.unbind()
        assert known.might_exist(user, "anything")

    _run(server, check)


def test_a_retry_on_a_pool_sold_out_since_gets_its_first_answer(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    """On both databases (SQLite: the process's own filter, loaded at start): the sold-out cache never answers
    a retried booking that holds the place."""
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    (t1, p1, _), (t2, p2, _) = make_patient(client), make_patient(client)
    first = ok(book(client, t1, p1, slot_id, key="first-try"), 201)
    assert book(client, t2, p2, slot_id, key="other").json()["error"]["code"] == "slot_full"  # now known full
    assert book(client, t2, p2, slot_id, key="other-again").json()["error"]["code"] == "slot_full"
    again = book(client, t1, p1, slot_id, key="first-try")
    assert again.status_code == 201 and again.json()["id"] == first["id"]
