"""The plain-SQL baseline: the booking transaction with no application around it.

Per booking, in one transaction: the conditional ``UPDATE slot_pools SET booked = booked + 1 WHERE id = :id
AND booked + held < capacity``, then INSERTs of the appointment, its outbox event and the idempotency record,
then COMMIT. C concurrent tasks book fresh pools (the fixture's ``raw`` set) until every place is gone; a task
whose UPDATE finds the pool full rolls back and drops that pool, as the surge's clients do.

PostgreSQL: asyncpg with a pool of as many connections as the server's workers may hold in total. SQLite:
aiosqlite on one connection, transactions queued on an asyncio lock with ``BEGIN IMMEDIATE`` (what the
server's engine does in its one process), same PRAGMAs as the server.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from carebridge.core.ids import new_id
from carebridge.events.catalog import CATALOG_VERSION

UPDATE = "UPDATE slot_pools SET booked = booked + 1 WHERE id = {p} AND booked + held < capacity RETURNING booked"
INSERT_APPOINTMENT = (
    "INSERT INTO appointments (id, hospital_id, region, patient_id, booked_by_user_id, schedule_id, slot_id, pool_id, "
    "channel, practitioner_id, department_id, service_date, starts_at, ends_at, fee_fen, status, created_at) "
    "VALUES ({ps})"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (id, type, catalog_version, occurred_at, hospital_id, region, actor, subject_type, "
    "subject_id, data, attempts) VALUES ({ps})"
)
INSERT_IDEMPOTENCY = (
    "INSERT INTO idempotency_records (id, user_id, key, operation, request_hash, status_code, response, "
    "created_at) VALUES ({ps})"
)


def _sql(template: str, count: int, postgres: bool) -> str:
    marks = [f"${i + 1}" for i in range(count)] if postgres else ["?"] * count
    return template.format(p=marks[0], ps=", ".join(marks))


class _Work:
    """The pools still open and the patients still to book, shared by the tasks."""

    def __init__(self, pools: list[dict[str, Any]], people: list[dict[str, str]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.open = [p for p in pools if p["capacity"] > 0]
        self.left = {p["pool_id"]: p["capacity"] for p in self.open}
        self.people = list(reversed(people))
        self.booked = 0
        self.full = 0

    def pick(self) -> dict[str, Any] | None:
        return self.open[self.rng.randrange(len(self.open))] if self.open else None

    def drop(self, pool: dict[str, Any]) -> None:
        if pool in self.open:
            self.open.remove(pool)

    def took(self, pool: dict[str, Any]) -> None:
        self.booked += 1
        self.left[pool["pool_id"]] -= 1
        if self.left[pool["pool_id"]] <= 0:
            self.drop(pool)


def _values(pool: dict[str, Any], person: dict[str, str], now: datetime, postgres: bool) -> tuple[list[Any], ...]:
    def u(value: Any) -> Any:
        value = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        return value if postgres else value.hex

    def t(value: datetime) -> Any:
        value = value.astimezone(UTC)
        return value if postgres else value.replace(tzinfo=None).isoformat(sep=" ")

    appt_id = new_id()
    appointment = [
        u(appt_id),
        u(pool["hospital_id"]),
        person["region"],
        u(person["patient_id"]),
        u(person["user_id"]),
        u(pool["schedule_id"]),
        u(pool["slot_id"]),
        u(pool["pool_id"]),
        "platform",
        u(pool["practitioner_id"]),
        u(pool["department_id"]),
        pool["service_date"] if postgres else pool["service_date"].isoformat(),
        t(pool["starts_at"]),
        t(pool["ends_at"]),
        1000,
        "booked",
        t(now),
    ]
    data = orjson.dumps(
        {
            "appointment_id": str(appt_id),
            "patient_id": person["patient_id"],
            "slot_id": str(pool["slot_id"]),
            "schedule_id": str(pool["schedule_id"]),
        }
    ).decode()
    outbox = [
        u(new_id()),
        "appointment.booked",
        CATALOG_VERSION,
        t(now),
        u(pool["hospital_id"]),
        person["region"],
        f"patient:{person['user_id']}",
        "appointment",
        str(appt_id),
        data,
        0,
    ]
    idem = [u(new_id()), u(person["user_id"]), uuid.uuid4().hex, "appointment.book", "0" * 64, 201, data, t(now)]
    return appointment, outbox, idem


async def _drive(work: _Work, tasks: int, attempt: Any) -> tuple[float, float]:
    """``tasks`` patients at a time take places with ``attempt(pool, person) -> took``; wall and CPU seconds."""

    async def run() -> None:
        while work.open and work.people:
            person = work.people.pop()
            while True:
                pool = work.pick()
                if pool is None:
                    return
                if not await attempt(pool, person):
                    work.full += 1
                    work.drop(pool)
                    continue
                work.took(pool)
                break

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(run() for _ in range(tasks)))
    return time.perf_counter() - started, time.process_time() - cpu


def _report(work: _Work, seconds: float, cpu: float, *, connections: int, tasks: int) -> dict[str, Any]:
    return {
        "booked": work.booked,
        "full_attempts": work.full,
        "seconds": round(seconds, 3),
        "bookings_per_s": round(work.booked / seconds, 1),
        "connections": connections,
        "tasks": tasks,
        "client_cpu_ms_per_booking": round(1000 * cpu / max(work.booked, 1), 2),
    }


async def run_postgres(
    dsn: str, pools: list[dict[str, Any]], people: list[dict[str, str]], *, tasks: int, connections: int, seed: int
) -> dict[str, Any]:
    import asyncpg

    work = _Work(pools, people, seed)
    update, appt_sql = _sql(UPDATE, 1, True), _sql(INSERT_APPOINTMENT, 17, True)
    outbox_sql, idem_sql = _sql(INSERT_OUTBOX, 11, True), _sql(INSERT_IDEMPOTENCY, 8, True)
    pg = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)

    async def attempt(pool: dict[str, Any], person: dict[str, str]) -> bool:
        appointment, outbox, idem = _values(pool, person, datetime.now(UTC), True)
        async with pg.acquire() as conn, conn.transaction():
            took = await conn.fetchval(update, uuid.UUID(str(pool["pool_id"])))
            if took is not None:
                await conn.execute(appt_sql, *appointment)
                await conn.execute(outbox_sql, *outbox)
                await conn.execute(idem_sql, *idem)
        return took is not None

    try:
        seconds, cpu = await _drive(work, tasks, attempt)
    finally:
        await pg.close()
    return _report(work, seconds, cpu, connections=connections, tasks=tasks)


async def run_sqlite(
    path: str, pools: list[dict[str, Any]], people: list[dict[str, str]], *, tasks: int, seed: int
) -> dict[str, Any]:
    import aiosqlite

    work = _Work(pools, people, seed)
    update, appt_sql = _sql(UPDATE, 1, False), _sql(INSERT_APPOINTMENT, 17, False)
    outbox_sql, idem_sql = _sql(INSERT_OUTBOX, 11, False), _sql(INSERT_IDEMPOTENCY, 8, False)
    conn = await aiosqlite.connect(path, timeout=30, isolation_level=None)
    for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
        await conn.execute(f"PRAGMA {pragma}")
    lock = asyncio.Lock()

    async def attempt(pool: dict[str, Any], person: dict[str, str]) -> bool:
        appointment, outbox, idem = _values(pool, person, datetime.now(UTC), False)
        async with lock:
            await conn.execute("BEGIN IMMEDIATE")
            cursor = await conn.execute(update, (uuid.UUID(str(pool["pool_id"])).hex,))
            took = await cursor.fetchone()
            await cursor.close()
            if took is None:
                await conn.execute("ROLLBACK")
                return False
            await conn.execute(appt_sql, appointment)
            await conn.execute(outbox_sql, outbox)
            await conn.execute(idem_sql, idem)
            await conn.execute("COMMIT")
        return True

    try:
        seconds, cpu = await _drive(work, tasks, attempt)
    finally:
        await conn.close()
    return _report(work, seconds, cpu, connections=1, tasks=tasks)
