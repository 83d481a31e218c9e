"""One real database per test run and a real HTTP server in front of it.

``CAREBRIDGE_TEST_DB`` picks the database: ``sqlite`` (a file, default) or ``postgres`` (a fresh database on
``CAREBRIDGE_TEST_PG``, default postgresql+asyncpg://postgres@127.0.0.1:5432, dropped afterwards).
With ``CI=true`` a missing PostgreSQL or browser fails the run instead of skipping.

The app runs in uvicorn on a free loopback port in a thread of this process: requests are real HTTP, and
tests may shift the platform clock (``carebridge.core.clock``). Tests isolate themselves by creating their
own hospitals and patients (see ``factories.py``), so one database serves the whole run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
import uvicorn

from carebridge.config import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
BACKEND = os.environ.get("CAREBRIDGE_TEST_DB", "sqlite")
PG_BASE = os.environ.get("CAREBRIDGE_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
ADMIN_PASSWORD = "Admin-pass-2026"


def pytest_report_header(config: pytest.Config) -> str:
    return f"carebridge test database: {BACKEND}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _pg_admin(sql: str) -> None:
    import asyncpg

    dsn = PG_BASE.replace("postgresql+asyncpg", "postgresql") + "/postgres"
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class Server:
    base_url: str
    settings: Settings
    app: object


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BACKEND == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'carebridge.db'}"
        return
    if BACKEND != "postgres":
        raise pytest.UsageError(f"CAREBRIDGE_TEST_DB must be sqlite or postgres, not {BACKEND!r}")
    name = f"cb_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - reported below
        message = f"PostgreSQL not reachable at {PG_BASE}: {exc}"
        if IN_CI:
            pytest.exit(message, returncode=3)
        pytest.skip(message)
    yield f"{PG_BASE}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the run's kind for one test (a process of its own: ``carebridge supervise``,
    ``carebridge worker``)."""
    if BACKEND == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"cb_fresh_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield f"{PG_BASE}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def start_process(
    args: list[str], env: dict[str, str], *, ready_port: int | None = None, log: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """``carebridge <args>`` in its own process; with ``ready_port``, returned once it answers ``/readyz``.
    Its stderr goes to ``log`` (a file, never a pipe: a full pipe would stall it)."""
    log = log or tempfile.TemporaryFile()
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "carebridge.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=log
    )
    if ready_port is None:
        return proc
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{ready_port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(log.read().decode(errors="replace")[-4000:] or f"carebridge {args[0]} exited")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"carebridge {args[0]} did not start")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from carebridge.app import configure_crypto
    from carebridge.database.migrate import upgrade

    files_dir = tmp_path_factory.mktemp("files")
    s = Settings(
        database_url=database_url,
        environment="test",
        log_level=os.environ.get("CAREBRIDGE_TEST_LOG_LEVEL", "WARNING"),
        token_ttl_seconds=30 * 86400,  # tests move the clock days ahead
        argon2_time_cost=1,
        argon2_memory_kib=1024,  # cheap hashes: tests create hundreds of accounts
        database_pool_size=20,
        sweep_interval_seconds=3600,  # tests run sweeps explicitly
        usage_flush_seconds=0.2,  # partner usage is read back soon after the calls
        files_dir=files_dir,
        max_attachment_bytes=256 * 1024,  # small enough to test the limit cheaply
        ws_max_frame_bytes=64 * 1024,
    )
    configure_crypto(s)
    upgrade(s)
    return s


@pytest.fixture(scope="session")
def server(settings: Settings) -> Iterator[Server]:
    from carebridge.app import create_app

    app = create_app(settings)
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        backlog=2048,
        limit_concurrency=None,
        # Longer than any pause in a test: with uvicorn's 5 s, a test's pooled connection that sat idle while a
        # browser worked was closed by the server just as the test sent its next request on it (seen in CI:
        # "Server disconnected without sending a response").
        timeout_keep_alive=600,
        ws="websockets-sansio",
        ws_max_size=settings.ws_max_frame_bytes,
        ws_per_message_deflate=False,
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    yield Server(base_url=f"http://127.0.0.1:{port}", settings=settings, app=app)
    uv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="session")
def admin_token(server: Server) -> str:
    from carebridge.auth.models import Role
    from carebridge.auth.service import create_user
    from carebridge.database.engine import Database

    async def make() -> None:
        db = Database(server.settings)  # the server thread configured hashing already
        async with db.transaction() as session:
            await create_user(
                session,
                username="root",
                password=ADMIN_PASSWORD,
                role=Role.platform_admin,
                display_name="Platform admin",
            )
        await db.dispose()

    asyncio.run(make())
    r = httpx.post(f"{server.base_url}/api/v1/auth/login", json={"username": "root", "password": ADMIN_PASSWORD})
    r.raise_for_status()
    return r.json()["access_token"]


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        yield c


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    from carebridge.core import clock

    yield
    clock.reset()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("CAREBRIDGE_TEST_ARTIFACTS", "test-artifacts")) / BACKEND
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def testdata() -> Path:
    """``../shared/testdata`` (outside data, never copied into the project): ``CAREBRIDGE_TESTDATA_DIR`` or the
    folder beside the checkout. Absent: the tests that need it are skipped, except with ``CI=true``, where it
    must be there."""
    configured = Settings().testdata_dir
    path = configured or Path(__file__).resolve().parents[2] / "shared" / "testdata"
    if not (path / "SOURCES.md").is_file():
        message = f"no test data at {path}: set CAREBRIDGE_TESTDATA_DIR to ../shared/testdata"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path
