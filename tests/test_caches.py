"""Per-worker caches (core.cache): changes show at once, in this worker and (PostgreSQL) in the others."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import text

from carebridge.core import cache
from carebridge.database.engine import Database
from tests.conftest import BACKEND
from tests.factories import auth, book, make_hospital, make_patient, make_schedule, ok


def _practitioner_name(client: httpx.Client, hospital_id: str) -> str:
    return ok(client.get("/api/v1/schedules", params={"hospital_id": hospital_id}))[0]["practitioner_name"]


def test_directory_names_change_at_once(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    make_schedule(client, world)
    assert _practitioner_name(client, world.hospital_id) == "王医生"  # now cached
    ok(
        client.patch(
            f"/api/v1/practitioners/{world.practitioner_id}", headers=auth(world.admin_token), json={"name": "王新名"}
        )
    )
    assert _practitioner_name(client, world.hospital_id) == "王新名"


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite runs one process: there are no other workers to notify")
def test_another_workers_change_evicts_the_cache(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    """What another worker's commit looks like from here: a row changed and a NOTIFY in that transaction."""
    world = make_hospital(client, admin_token)
    make_schedule(client, world)
    assert _practitioner_name(client, world.hospital_id) == "王医生"

    async def change_elsewhere(notify: bool) -> None:
        db = Database(server.settings)
        async with db.transaction() as session:
            await session.execute(
                text("UPDATE practitioners SET name = :n WHERE id = :i"),
                {"n": "李另名" if notify else "未通知", "i": world.practitioner_id},
            )
            if notify:
                await session.execute(
                    text("SELECT pg_notify('carebridge_cache', :p)"), {"p": f"directory_names:{world.practitioner_id}"}
                )
        await db.dispose()

    asyncio.run(change_elsewhere(notify=False))
    assert _practitioner_name(client, world.hospital_id) == "王医生"  # still cached: nobody said it changed
    asyncio.run(change_elsewhere(notify=True))
    deadline = time.monotonic() + 5
    while _practitioner_name(client, world.hospital_id) != "李另名":
        assert time.monotonic() < deadline, "the notification did not evict the cached name"
        time.sleep(0.05)


def test_sold_out_pool_reopens_when_a_place_is_freed(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    (t1, p1, _), (t2, p2, _) = make_patient(client), make_patient(client)
    first = ok(book(client, t1, p1, slot_id), 201)
    for _ in range(3):  # the pool is now known full: answered from memory
        r = book(client, t2, p2, slot_id)
        assert r.status_code == 409 and r.json()["error"]["code"] == "slot_full"
    ok(client.post(f"/api/v1/appointments/{first['id']}/cancel", headers=auth(t1), json={"reason": "改期"}))
    ok(book(client, t2, p2, slot_id), 201)


def test_rule_change_applies_to_the_next_booking(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 3})
    slots = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"]
    token, patient_id, _ = make_patient(client)
    ok(book(client, token, patient_id, slots[0]["id"]), 201)  # rules are cached now
    ok(
        client.put(
            f"/api/v1/hospitals/{world.hospital_id}/booking-rules",
            headers=auth(world.admin_token),
            json={"window_days": 0},
        )
    )
    other_token, other_patient, _ = make_patient(client)
    r = book(client, other_token, other_patient, slots[1]["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "booking_window_closed"


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite runs one process: there are no other workers to notify")
def test_a_freed_place_reopens_a_sold_out_pool_in_every_worker(server, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    """A cancellation announces the freed pool (what other workers hear), and such an announcement from another
    worker reopens a pool this worker had seen full, long before its sold-out entry would run out."""
    import asyncpg

    world = make_hospital(client, admin_token)
    schedule = make_schedule(client, world, pools={"platform": 1}, end="08:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{schedule['id']}"))["slots"][0]["id"]
    (t1, p1, _), (t2, p2, _) = make_patient(client), make_patient(client)
    first = ok(book(client, t1, p1, slot_id), 201)
    dsn = server.settings.database_url.replace("postgresql+asyncpg", "postgresql")

    async def cancel_and_listen() -> list[str]:
        heard: list[str] = []
        conn = await asyncpg.connect(dsn)
        try:
            await conn.add_listener("carebridge_cache", lambda _c, _pid, _ch, payload: heard.append(payload))
            cancelled = await asyncio.to_thread(
                client.post, f"/api/v1/appointments/{first['id']}/cancel", headers=auth(t1), json={"reason": "改期"}
            )
            ok(cancelled)
            for _ in range(100):
                if heard:
                    break
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        return heard

    assert f"sold_out:{slot_id}:platform" in asyncio.run(cancel_and_listen())

    second = ok(book(client, t2, p2, slot_id), 201)  # the pool is full again, and this worker knows it
    (t3, p3, _) = make_patient(client)
    assert book(client, t3, p3, slot_id).json()["error"]["code"] == "slot_full"

    async def free_elsewhere() -> None:  # another worker's cancellation: rows changed, the pool announced
        db = Database(server.settings)
        async with db.transaction() as session:
            await session.execute(
                text("UPDATE appointments SET status = 'cancelled' WHERE id = :i"), {"i": second["id"]}
            )
            await session.execute(
                text("UPDATE slot_pools SET booked = booked - 1 WHERE slot_id = :s AND channel = 'platform'"),
                {"s": slot_id},
            )
            await session.execute(
                text("SELECT pg_notify('carebridge_cache', :p)"), {"p": f"sold_out:{slot_id}:platform"}
            )
        await db.dispose()

    asyncio.run(free_elsewhere())
    deadline = time.monotonic() + 5  # the sold-out entry would last 30 s
    while (r := book(client, t3, p3, slot_id)).status_code != 201:
        assert r.json()["error"]["code"] == "slot_full" and time.monotonic() < deadline, r.text
        time.sleep(0.05)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cache_entry_lives_its_ttl_and_a_full_cache_drops_the_oldest() -> None:
    clock = _Clock()
    ttl_cache = cache.Cache("test_ttl", setting="unused", ttl=10.0, maxsize=8, timer=clock)
    try:
        ttl_cache.set("a", 1)
        clock.now += 9.9
        assert ttl_cache.get("a") == 1
        ttl_cache.set("a", 2)  # set again: lives another TTL from now
        clock.now += 9.9
        assert ttl_cache.get("a") == 2
        clock.now += 0.1
        assert ttl_cache.get("a", "gone") == "gone" and len(ttl_cache) == 0  # expired on read

        for n in range(8):
            ttl_cache.set(n, n)
            clock.now += 1
        ttl_cache.set("one more", 9)  # full, nothing expired: the oldest quarter (0, 1) makes room
        assert [ttl_cache.get(n) for n in range(8)] == [None, None, 2, 3, 4, 5, 6, 7]
        assert ttl_cache.get("one more") == 9 and len(ttl_cache) == 7

        clock.now += 6.5  # 2, 3 and 4 were set 10 s ago or more
        ttl_cache.set("x", 1)
        ttl_cache.set("y", 1)  # full again: the expired entries go, the live ones stay
        assert len(ttl_cache) == 6
        assert [ttl_cache.get(n) for n in (2, 3, 4, 5, 6, 7)] == [None, None, None, 5, 6, 7]

        ttl_cache.configure(ttl=0)  # a TTL of 0 turns the cache off
        ttl_cache.set("z", 1)
        assert ttl_cache.get("z") is None and not ttl_cache.enabled
    finally:
        cache.REGISTRY.pop("test_ttl", None)


def test_a_lookup_goes_on_for_the_others_when_one_caller_goes_away() -> None:
    """``core.batching.Batcher``: keys asked while a lookup runs are looked up together; a caller that goes away
    (cancelled) gets nothing, and the others still get their own answers from the same lookup."""
    from carebridge.core.batching import Batcher

    asked: list[list[str]] = []
    release = asyncio.Event()

    async def fetch(keys: list[str]) -> dict[str, str]:
        asked.append(keys)
        await release.wait()
        return {key: key.upper() for key in keys}

    async def run() -> tuple[list[str | None], bool]:
        batcher: Batcher[str, str] = Batcher(fetch)
        first = asyncio.create_task(batcher.get("a"))
        await asyncio.sleep(0)  # the lookup of "a" is running
        later = [asyncio.create_task(batcher.get(key)) for key in ("b", "c", "d")]
        await asyncio.sleep(0)
        later[1].cancel()  # "c" goes away while waiting
        release.set()
        answers = [await first, await later[0], await later[2]]
        try:
            await later[1]
        except asyncio.CancelledError:
            return answers, True
        return answers, False

    answers, cancelled = asyncio.run(run())
    assert answers == ["A", "B", "D"] and cancelled
    assert asked == [["a"], ["b", "c", "d"]]  # the keys that arrived meanwhile, in one lookup
