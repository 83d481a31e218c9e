"""CPU per booking and per sold-out rejection, in one process: the app on ``httpx.ASGITransport``, one client,
requests one after another, no relay. It measures the code's own cost without the machine's noise of a
multi-process run (no HTTP parsing, no scheduling between processes), so two commits compare reliably.

    .venv/bin/python benchmarks/booking_cpu.py --db postgres --bookings 1000 --rejections 3000
    # --profile out.txt: a profile of each phase, out.bookings.txt and out.rejections.txt
    #   (pyinstrument, pip install pyinstrument; out.pstats: cProfile)
    # --client asgi: the ASGI app called directly (the server's own CPU; default httpx.ASGITransport)
    # --together 64: bookings sent 64 at a time, decided by the desk in batches as at a release

Prints one JSON object: ``cpu_ms_per_booking``, ``cpu_ms_per_rejection``, the statement counts per request, and
the wall time of each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import event

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import surge_fixture  # noqa: E402
from booking_surge import BenchDatabase, migrate  # noqa: E402

from carebridge.app import create_app  # noqa: E402
from carebridge.config import Settings  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--bookings", type=int, default=1000)
    p.add_argument("--rejections", type=int, default=3000)
    p.add_argument("--doctors", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--together",
        type=int,
        default=1,
        help="bookings sent at once, as at a release (the desk decides them in one batch); default one at a time",
    )
    p.add_argument("--profile", help="profile each phase (.pstats: cProfile; .html or text: pyinstrument)")
    p.add_argument(
        "--client",
        choices=["httpx", "asgi"],
        default="httpx",
        help="httpx: httpx.ASGITransport; asgi: the ASGI app called directly (the server's own CPU, no client)",
    )
    return p.parse_args(argv)


@contextlib.contextmanager
def profiled(path: str | None, phase: str) -> Iterator[None]:
    """Profile one phase into ``<path stem>.<phase><suffix>``: cProfile for ``.pstats``, else pyinstrument
    (``.html``, or text)."""
    if not path:
        yield
        return
    base = Path(path)
    out = base.with_name(f"{base.stem}.{phase}{base.suffix}")
    if path == "callgrind":  # under valgrind --tool=callgrind: the phase's instructions alone (steady on a busy box)
        import os
        import subprocess

        subprocess.run(["callgrind_control", "--zero", str(os.getpid())], check=True, capture_output=True)
        try:
            yield
        finally:
            subprocess.run(["callgrind_control", "--dump=" + phase, str(os.getpid())], check=True, capture_output=True)
        return
    if base.suffix == ".pstats":
        import cProfile

        profile = cProfile.Profile(time.process_time)  # CPU time: a coroutine waiting on the database costs none
        profile.enable()
        try:
            yield
        finally:
            profile.disable()
            profile.dump_stats(out)
        return
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        out.write_text(profiler.output_html() if base.suffix == ".html" else profiler.output_text(unicode=True))


class _Answer:
    """What the checks below read of an answer: its status and, on a surprise, its text."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.text = body.decode(errors="replace")


async def asgi_post(app: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> _Answer:
    """One POST through the ASGI app itself: the server's own CPU, without HTTP parsing or a client."""
    payload = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    chunks: list[bytes] = []
    status: list[int] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # no disconnect while the answer is made
        sent = True
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return _Answer(status[0], b"".join(chunks))


def postgres_cpu() -> float:
    """CPU seconds used so far by the machine's PostgreSQL processes (the server this process talks to)."""
    total = 0.0
    for p in psutil.process_iter(["name", "cpu_times"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if p.info["name"] == "postgres":
                total += p.info["cpu_times"].user + p.info["cpu_times"].system
    return total


async def measure(args: argparse.Namespace, url: str, fixture: surge_fixture.Fixture) -> dict[str, Any]:
    settings = Settings(database_url=url, event_relay=False, background_tasks=False, log_level="WARNING")
    app = create_app(settings)
    statements = 0

    async with app.router.lifespan_context(app):
        engine = app.state.db.engine.sync_engine

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        event.listen(engine, "before_cursor_execute", count)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            places = [p.slot_id for p in fixture.release for _ in range(p.capacity)]
            people = fixture.people

            async def book(i: int, slot_id: str) -> Any:
                person = people[i % len(people)]
                body = {"slot_id": slot_id, "patient_id": person.patient_id}
                headers = {"Authorization": f"Bearer {person.token}", "Idempotency-Key": uuid.uuid4().hex}
                if args.client == "asgi":
                    return await asgi_post(app, "/api/v1/appointments", body, headers)
                return await client.post("/api/v1/appointments", json=body, headers=headers)

            # warm-up: statements compiled, connections opened, caches filled
            for i, place in enumerate(fixture.warmup[:50]):
                await book(len(people) - 1 - i, place.slot_id)

            with profiled(args.profile, "bookings"):
                statements, cpu0, wall0, pg0 = 0, time.process_time(), time.perf_counter(), postgres_cpu()
                booked = 0
                wanted = places[: args.bookings]
                for start in range(0, len(wanted), args.together):
                    group = wanted[start : start + args.together]
                    answers = await asyncio.gather(*(book(start + j, s) for j, s in enumerate(group)))
                    for j, r in enumerate(answers):
                        if r.status_code != 201:
                            raise SystemExit(f"booking {start + j}: {r.status_code} {r.text}")
                    booked += len(answers)
                book_cpu, book_wall = time.process_time() - cpu0, time.perf_counter() - wall0
                book_pg = postgres_cpu() - pg0
                book_statements = statements

            full = [p.slot_id for p in fixture.release if p.capacity][: max(1, args.bookings // 50)]
            with profiled(args.profile, "rejections"):
                statements, cpu0, wall0, pg0 = 0, time.process_time(), time.perf_counter(), postgres_cpu()
                for i in range(args.rejections):
                    r = await book(booked + i, full[i % len(full)])
                    if r.status_code != 409:
                        raise SystemExit(f"rejection {i}: {r.status_code} {r.text}")
                rej_cpu, rej_wall = time.process_time() - cpu0, time.perf_counter() - wall0
                rej_pg = postgres_cpu() - pg0
                rej_statements = statements
    return {
        "db": args.db,
        "client": args.client,
        "together": args.together,
        "bookings": booked,
        "rejections": args.rejections,
        "cpu_ms_per_booking": round(book_cpu / max(booked, 1) * 1000, 3),
        "cpu_ms_per_rejection": round(rej_cpu / max(args.rejections, 1) * 1000, 3),
        # the database server's CPU (PostgreSQL; SQLite runs inside this process, in the figures above)
        "pg_cpu_ms_per_booking": round(book_pg / max(booked, 1) * 1000, 3) if args.db == "postgres" else None,
        "pg_cpu_ms_per_rejection": round(rej_pg / max(args.rejections, 1) * 1000, 3) if args.db == "postgres" else None,
        "statements_per_booking": round(book_statements / max(booked, 1), 2),
        "statements_per_rejection": round(rej_statements / max(args.rejections, 1), 2),
        "booking_wall_s": round(book_wall, 2),
        "rejection_wall_s": round(rej_wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench_db = BenchDatabase(args.db)
    try:
        bench_db.create()
        migrate(bench_db.url)
        settings = Settings(database_url=bench_db.url)
        fixture = asyncio.run(
            surge_fixture.preload(
                settings,
                places=args.bookings,
                doctors=args.doctors,
                people=args.bookings + 64,
                warmup_places=50,
                warmup_people=64,
                argon2_time_cost=1,
                argon2_memory_kib=1024,
                seed=args.seed,
            )
        )
        fixture.people.extend(fixture.warmup_people)
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:  # pragma: no cover
            runner = asyncio.run
        result = runner(measure(args, bench_db.url, fixture))
    finally:
        bench_db.drop(keep=False)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
