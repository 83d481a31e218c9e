"""The distributed layout: API workers that do not relay events (``CAREBRIDGE_EVENT_RELAY=false``) and a
``carebridge worker`` process that relays them to every consumer, each in its own process on one database."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from carebridge.config import Settings
from carebridge.core import clock
from carebridge.database.engine import Database
from carebridge.events.models import OutboxEvent
from carebridge.supervision.models import TracedEvent
from tests.conftest import BACKEND, _free_port, start_process
from tests.factories import auth, ok


def _counts(url: str) -> tuple[int, int, int]:
    """Outbox rows, of which published, and events in the supervision trace."""

    async def read() -> tuple[int, int, int]:
        db = Database(Settings(database_url=url))
        try:
            async with db.read() as session:
                total = await session.scalar(select(func.count()).select_from(OutboxEvent))
                published = await session.scalar(
                    select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_not(None))
                )
                traced = await session.scalar(select(func.count()).select_from(TracedEvent))
        finally:
            await db.dispose()
        return int(total or 0), int(published or 0), int(traced or 0)

    return asyncio.run(read())


def _book_a_place(c: httpx.Client) -> str:
    token = ok(c.post("/api/v1/auth/login", json={"username": "patient2", "password": "Demo-2026!"}))["access_token"]
    me = ok(c.get("/api/v1/patients", headers=auth(token)))[0]
    hospital = ok(c.get("/api/v1/hospitals"))["items"][0]
    tomorrow = (clock.local_today("Asia/Shanghai") + timedelta(days=1)).isoformat()
    found = ok(c.get("/api/v1/schedules", params={"hospital_id": hospital["id"], "date_from": tomorrow}))
    for item in found:
        for slot in ok(c.get(f"/api/v1/schedules/{item['id']}"))["slots"]:
            if slot["free"] > 0:
                booked = c.post(
                    "/api/v1/appointments",
                    headers={**auth(token), "Idempotency-Key": "worker-test-1"},
                    json={"patient_id": me["id"], "slot_id": slot["id"], "channel": "platform"},
                )
                return ok(booked, 201)["id"]
    raise AssertionError("the demo data has no free place tomorrow")


def _wait(predicate, seconds: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_api_without_relay_and_a_worker_that_relays(fresh_database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "CAREBRIDGE_DATABASE_URL": fresh_database_url,
        "CAREBRIDGE_ARGON2_TIME_COST": "1",
        "CAREBRIDGE_ARGON2_MEMORY_KIB": "1024",
        "CAREBRIDGE_LOG_LEVEL": "INFO",
        "CAREBRIDGE_BACKGROUND_TASKS": "false",
    }
    start_process(["migrate"], env).wait(timeout=120)
    assert start_process(["demo-data", "--hospitals", "1", "--days", "3"], env).wait(timeout=300) == 0
    port = _free_port()
    api = start_process(
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        {**env, "CAREBRIDGE_EVENT_RELAY": "false"},
        ready_port=port,
    )
    worker = None
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            _book_a_place(c)
            time.sleep(2.5)  # more than the relay's idle poll: an API process that relayed would have by now
            total, published, traced = _counts(fresh_database_url)
            assert total >= 1 and published == 0 and traced == 0, (total, published, traced)

            with open(tmp_path / "worker.log", "w+b") as log:
                worker = start_process(["worker"], env, log=log)
                assert _wait(lambda: _counts(fresh_database_url)[1] == total), _counts(fresh_database_url)
                # every consumer ran in the worker: the supervision engine traced the booking
                assert _wait(lambda: _counts(fresh_database_url)[2] >= 1)
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=30) == 0
                log.seek(0)
                text = log.read().decode(errors="replace")
            assert "worker_started" in text and "worker_stopped" in text, text[-2000:]
            assert "Traceback" not in text, text[-4000:]
    finally:
        for proc in (api, worker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


def test_sqlite_serves_from_one_process_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The embedded mode's caches are fed and evicted by its one process: several workers on SQLite are refused
    with a clear message, before anything starts."""
    import subprocess
    import sys

    env = {**os.environ, "CAREBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/one.db"}
    done = subprocess.run(
        [sys.executable, "-m", "carebridge.cli", "serve", "--workers", "2", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "SQLite runs in one process" in done.stderr, done.stderr
    assert not (tmp_path / "one.db").exists()


@pytest.mark.skipif(BACKEND != "postgres", reason="several API workers: PostgreSQL (SQLite is one process)")
def test_api_workers_each_listen_and_are_kept_running(fresh_database_url: str) -> None:
    """``serve --workers 2``: two processes, each with its own socket on the port (carebridge.serving); one that
    dies is replaced; SIGTERM stops them all."""
    import psutil

    env = {**os.environ, "CAREBRIDGE_DATABASE_URL": fresh_database_url, "CAREBRIDGE_BACKGROUND_TASKS": "false"}
    assert start_process(["migrate"], env).wait(timeout=120) == 0
    port = _free_port()
    api = start_process(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"], env, ready_port=port)
    try:
        parent = psutil.Process(api.pid)

        def workers() -> list[int]:
            return [p.pid for p in parent.children() if "resource_tracker" not in " ".join(p.cmdline())]

        def listening() -> set[int]:
            return {
                pid
                for pid in workers()
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            }

        assert _wait(lambda: len(workers()) == 2), workers()
        assert _wait(lambda: len(listening()) == 2), listening()  # a socket of each worker's own
        first = workers()[0]
        os.kill(first, signal.SIGKILL)
        assert _wait(lambda: len(workers()) == 2 and first not in workers()), workers()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert all(c.get("/healthz").status_code == 200 for _ in range(20))
        remaining = workers()
        api.send_signal(signal.SIGTERM)
        assert api.wait(timeout=30) == 0
        assert not [pid for pid in remaining if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    finally:
        if api.poll() is None:
            api.kill()
