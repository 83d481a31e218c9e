"""Booking surge: the release moment of a popular day, against the real server. Prints one JSON object.

    .venv/bin/python benchmarks/booking_surge.py --db postgres      # or: carebridge bench booking --db postgres
    .venv/bin/python benchmarks/booking_surge.py --db sqlite

1. a fresh database (PostgreSQL: ``cb_bench_<random>`` on 127.0.0.1:5432, dropped at the end; SQLite: a
   temporary file), migrated, and the fixture written with bulk INSERTs (``surge_fixture.py``);
2. ``carebridge serve --workers W`` as a subprocess on 127.0.0.1, background tasks off (the distributed
   layout runs them in ``carebridge worker``), WARNING logs;
3. a separate load process (``surge_load.py``): C clients open their connections, warm up on a small
   session, then book the release until every place is gone, then R more attempts at the sold-out slots;
4. the database is checked: ``oversold`` (per pool, the larger of booked - capacity and holding
   appointments - capacity, summed) and ``carebridge.scheduling.invariants.violations``;
5. with the server stopped, the same booking transaction as plain SQL on fresh pools (``surge_raw.py``).

Progress goes to stderr; stdout carries only the JSON. ``--profile DIR`` records each worker with py-spy
during the load (``pip install py-spy``). Targets live in docs/performance.md, not here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the helper modules, also when run through `carebridge bench` (runpy)

import psutil  # noqa: E402
import surge_fixture  # noqa: E402
import surge_raw  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from carebridge.config import Settings  # noqa: E402
from carebridge.database.engine import Database  # noqa: E402
from carebridge.scheduling.invariants import PLACE_HOLDING, violations  # noqa: E402
from carebridge.scheduling.models import Appointment, SlotPool  # noqa: E402

HOST = "127.0.0.1"
PG_ADMIN = f"postgresql://postgres@{HOST}:5432/postgres"
LOAD_TIMEOUT_S = 420


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="booking_surge", description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, help="server workers (default: 2 on postgres, 1 on sqlite)")
    parser.add_argument("--clients", type=int, default=256, help="concurrent clients")
    parser.add_argument("--slots", type=int, default=2000, help="places in the release")
    parser.add_argument("--doctors", type=int, default=20)
    parser.add_argument("--rejections", type=int, default=5000, help="attempts at sold-out slots after the surge")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load client: raw (minimal HTTP/1.1, least CPU) or httpx",
    )
    parser.add_argument("--warmup", type=int, default=200, help="places booked before the release moment")
    parser.add_argument(
        "--raw-connections",
        type=int,
        help="PostgreSQL connections for the plain-SQL baseline (default: what the server's "
        "workers may hold, workers x 2 x pool size)",
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy record every worker during the load into DIR")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server, e.g. CAREBRIDGE_PRINCIPAL_CACHE_SECONDS=300 (repeatable)",
    )
    parser.add_argument(
        "--events",
        choices=["worker", "in-api"],
        default="worker",
        help="who relays the outbox to the event consumers (supervision, queue board, notifications): one "
        "`carebridge worker` process beside the API workers (the distributed layout, default), or the API workers",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (prints where) for inspection")
    parser.add_argument(
        "--latency-log",
        metavar="FILE",
        help="write every surge request as JSON [client, sent (monotonic s), latency ms, status] to FILE: "
        "where in the surge the slow answers were",
    )
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = 2 if args.db == "postgres" else 1
    if min(args.workers, args.clients, args.slots, args.doctors) < 1 or args.rejections < 0:
        parser.error("workers, clients, slots and doctors must be positive")
    return args


# ------------------------------------------------------------------------------------------------ database


async def _pg_admin(sql: str, dsn: str | None = None) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn or PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class BenchDatabase:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.tmp = Path(tempfile.mkdtemp(prefix="cb_bench_"))
        if kind == "postgres":
            self.name = f"cb_bench_{secrets.token_hex(4)}"
            self.url = f"postgresql+asyncpg://postgres@{HOST}:5432/{self.name}"
            self.dsn = f"postgresql://postgres@{HOST}:5432/{self.name}"
        else:
            self.name = str(self.tmp / "bench.db")
            self.url = f"sqlite+aiosqlite:///{self.name}"
            self.dsn = self.name

    def create(self) -> None:
        if self.kind == "postgres":
            asyncio.run(_pg_admin(f'CREATE DATABASE "{self.name}"'))
        log(f"database {self.name}")

    def drop(self, keep: bool) -> None:
        if keep:
            log(f"kept database {self.url}")
            return
        if self.kind == "postgres":
            try:
                asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            except Exception as exc:  # noqa: BLE001 - report and go on cleaning up
                log(f"could not drop {self.name}: {exc}")
        shutil.rmtree(self.tmp, ignore_errors=True)


def carebridge_command() -> list[str]:
    script = Path(sys.executable).with_name("carebridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "carebridge.cli"]


def server_env(url: str, extra: list[str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CAREBRIDGE_DATABASE_URL": url,
            "CAREBRIDGE_LOG_LEVEL": "WARNING",
            "CAREBRIDGE_BACKGROUND_TASKS": "false",
            # Logins are not measured (tokens are pre-issued), so password hashing may be cheap.
            "CAREBRIDGE_ARGON2_TIME_COST": "1",
            "CAREBRIDGE_ARGON2_MEMORY_KIB": "1024",
        }
    )
    for item in extra or []:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def migrate(url: str) -> None:
    started = time.perf_counter()
    subprocess.run(
        [*carebridge_command(), "migrate"],
        env=server_env(url),
        check=True,
        stdout=sys.stderr,
        stderr=sys.stderr,
        timeout=300,
    )
    log(f"migrated in {time.perf_counter() - started:.1f} s")


async def check_database(url: str, pool_ids: list[str] | None = None) -> dict[str, Any]:
    """``oversold``: per pool, the larger excess of booked or place-holding appointments over capacity."""
    import uuid

    db = Database(Settings(database_url=url))
    try:
        async with db.read() as session:
            holding = (
                select(Appointment.pool_id, func.count().label("n"))
                .where(Appointment.status.in_(PLACE_HOLDING))
                .group_by(Appointment.pool_id)
                .subquery()
            )
            query = select(SlotPool.id, SlotPool.capacity, SlotPool.booked, func.coalesce(holding.c.n, 0)).outerjoin(
                holding, holding.c.pool_id == SlotPool.id
            )
            if pool_ids is not None:
                query = query.where(SlotPool.id.in_([uuid.UUID(p) for p in pool_ids]))
            oversold = booked = appointments = 0
            for _pool_id, capacity, pool_booked, appts in await session.execute(query):
                oversold += max(0, pool_booked - capacity, appts - capacity)
                booked += pool_booked
                appointments += appts
            found = await violations(session) if pool_ids is None else []
    finally:
        await db.dispose()
    return {
        "oversold": oversold,
        "booked": booked,
        "appointments": appointments,
        "invariant_violations": len(found),
        "invariant_examples": found[:5],
    }


# -------------------------------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, url: str, workers: int, tmp: Path, extra_env: list[str]) -> None:
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = tmp / "server.log"
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*carebridge_command(), "serve", "--host", HOST, "--port", str(self.port), "--workers", str(workers)],
            env=server_env(url, extra_env),
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers_wanted = workers

    def wait_ready(self, timeout: float = 90.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if (
                    httpx.get(f"{self.base_url}/readyz", timeout=2.0).status_code == 200
                    and len(self.worker_processes()) >= self.workers_wanted
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{self.tail()}")

    def worker_processes(self) -> list[psutil.Process]:
        """The processes that serve requests: uvicorn's spawned workers, or the server itself with one worker."""
        try:
            root = psutil.Process(self.proc.pid)
            if self.workers_wanted == 1:
                return [root]
            return [
                p
                for p in root.children(recursive=True)
                if "multiprocessing.spawn" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())
            ]
        except psutil.Error:
            return []

    def tail(self, lines: int = 30) -> str:
        self.log_file.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log_file.close()


class EventWorker:
    """``carebridge worker``: relays the outbox to every consumer while the API workers only answer requests."""

    def __init__(self, url: str, tmp: Path, extra_env: list[str]) -> None:
        self.log_path = tmp / "worker.log"
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*carebridge_command(), "worker"],
            env=server_env(url, extra_env),
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log_file.close()


async def outbox_backlog(url: str) -> int:
    from carebridge.events.models import OutboxEvent

    db = Database(Settings(database_url=url))
    try:
        async with db.read() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
                )
                or 0
            )
    finally:
        await db.dispose()


def drain(url: str, timeout: float = 300.0) -> tuple[int, float | None]:
    """The events not yet relayed when the load ended, and the seconds until none were left (None: not within
    ``timeout``)."""
    started = time.perf_counter()
    backlog = left = asyncio.run(outbox_backlog(url))
    while left and time.perf_counter() - started < timeout:
        time.sleep(0.5)
        left = asyncio.run(outbox_backlog(url))
    return backlog, (round(time.perf_counter() - started, 1) if not left else None)


class Sampler(threading.Thread):
    """Peak RSS of each worker, sampled every 0.25 s while the load runs."""

    def __init__(self, processes: list[psutil.Process]) -> None:
        super().__init__(daemon=True)
        self.processes = processes
        self.peak = {p.pid: 0 for p in processes}
        self.done = threading.Event()

    def sample(self) -> None:
        for p in self.processes:
            with suppress(psutil.Error):
                self.peak[p.pid] = max(self.peak[p.pid], p.memory_info().rss)

    def run(self) -> None:
        while not self.done.wait(0.25):
            self.sample()


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in processes:
        with suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def cpu_by_command() -> dict[str, float]:
    """CPU seconds used so far, summed per command name (postgres backends, workers, the load, ...)."""
    out: dict[str, float] = {}
    for p in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        with suppress(psutil.Error, TypeError):
            cmd = " ".join(p.info["cmdline"] or [])
            name = (
                "load"
                if "surge_load.py" in cmd
                else "server"
                if " serve " in cmd or "multiprocessing" in cmd
                else "event-worker"
                if cmd.endswith(" worker")
                else "py-spy"
                if "py-spy" in cmd
                else p.info["name"]
            )
            t = p.info["cpu_times"]
            out[name] = out.get(name, 0.0) + t.user + t.system
    return out


def start_profilers(processes: list[psutil.Process], directory: str) -> list[subprocess.Popen[bytes]]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    Path(directory).mkdir(parents=True, exist_ok=True)
    procs = []
    for n, p in enumerate(processes):
        for fmt, ext in (("raw", "txt"),):
            procs.append(
                subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(p.pid),
                        "--rate",
                        "200",
                        "--format",
                        fmt,
                        "--nonblocking",
                        *(["--idle"] if os.environ.get("BENCH_PYSPY_IDLE") else []),
                        "--output",
                        str(Path(directory) / f"worker{n}.{ext}"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=sys.stderr,
                )
            )
    return procs


def stop_profilers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        with suppress(ProcessLookupError):
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


# ---------------------------------------------------------------------------------------------------- main


def run_async(coro: Any) -> Any:
    """uvloop when installed, as the server runs."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def machine() -> dict[str, Any]:
    model = ""
    with suppress(OSError):
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench_db = BenchDatabase(args.db)
    server: Server | None = None
    event_worker: EventWorker | None = None
    profilers: list[subprocess.Popen[bytes]] = []
    try:
        bench_db.create()
        migrate(bench_db.url)
        started = time.perf_counter()
        settings = Settings(database_url=bench_db.url)
        people = args.slots + args.clients + 64  # one booking each; those holding a request at sell-out spare
        warmup_people = args.warmup + args.clients if args.warmup else 0
        fixture = asyncio.run(
            surge_fixture.preload(
                settings,
                places=args.slots,
                doctors=args.doctors,
                people=people,
                warmup_places=args.warmup,
                warmup_people=warmup_people,
                argon2_time_cost=1,
                argon2_memory_kib=1024,
                seed=args.seed,
            )
        )
        if args.db == "postgres":  # what autovacuum has done by 7 a.m. over the night's data: planner statistics
            asyncio.run(_pg_admin("ANALYZE", bench_db.dsn))
        preload_s = time.perf_counter() - started
        log(
            f"fixture: {fixture.places} places on {len(fixture.release)} slots of {args.doctors} doctors, "
            f"{len(fixture.people) + len(fixture.warmup_people)} patients with tokens, {preload_s:.1f} s"
        )

        api_env = [*(["CAREBRIDGE_EVENT_RELAY=false"] if args.events == "worker" else []), *args.server_env]
        server = Server(bench_db.url, args.workers, bench_db.tmp, api_env)
        if args.events == "worker":
            event_worker = EventWorker(bench_db.url, bench_db.tmp, args.server_env)
        server.wait_ready()
        workers = server.worker_processes()
        log(f"server {server.base_url}: workers {[p.pid for p in workers]}")

        spec = {
            "base_url": server.base_url,
            "clients": args.clients,
            "rejections": args.rejections,
            "seed": args.seed,
            "client": args.client,
            "release": [vars(p) for p in fixture.release],
            "warmup": [vars(p) for p in fixture.warmup],
            "people": [vars(p) for p in fixture.people],
            "warmup_people": [vars(p) for p in fixture.warmup_people],
            "latency_log": os.path.abspath(args.latency_log) if args.latency_log else None,
        }
        spec_path, out_path = bench_db.tmp / "spec.json", bench_db.tmp / "load.json"
        spec_path.write_text(json.dumps(spec))
        sampler = Sampler(workers)
        sampler.sample()
        sampler.start()
        cpu_before = cpu_seconds(workers)
        machine_before = psutil.cpu_times()
        commands_before = cpu_by_command()
        if args.profile:
            profilers = start_profilers(workers, args.profile)
        load_started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(HERE / "surge_load.py"), str(spec_path), str(out_path)],
            check=True,
            timeout=LOAD_TIMEOUT_S,
            stdout=sys.stderr,
            stderr=sys.stderr,
        )
        load_s = time.perf_counter() - load_started
        sampler.done.set()
        sampler.join()
        sampler.sample()
        cpu_after = cpu_seconds(workers)
        machine_after = psutil.cpu_times()
        commands_after = cpu_by_command()
        cpu_use = {k: round(v - commands_before.get(k, 0.0), 1) for k, v in commands_after.items()}
        cpu_use = dict(sorted(((k, v) for k, v in cpu_use.items() if v >= 0.5), key=lambda kv: -kv[1]))
        busy = sum(
            getattr(machine_after, f) - getattr(machine_before, f) for f in ("user", "system", "nice", "irq", "softirq")
        )
        total = busy + (machine_after.idle - machine_before.idle) + (machine_after.iowait - machine_before.iowait)
        if profilers:
            stop_profilers(profilers)
            profilers = []
            log(f"profiles in {args.profile}")
        phases = json.loads(out_path.read_text())
        backlog, drain_s = drain(bench_db.url)
        log(f"events: {backlog} not yet relayed when the load ended, all relayed after {drain_s} s")
        if event_worker is not None:
            event_worker.stop()
            event_worker = None
        if server.proc.poll() is not None or any(phases[p]["errors"] for p in ("surge", "rejections")):
            log(f"server log tail (errors during the load):\n{server.tail()}")
        server.stop()
        server = None

        checked = asyncio.run(check_database(bench_db.url))
        log(f"database check: {checked}")

        pool_size = int(
            dict(e.partition("=")[::2] for e in args.server_env).get(
                "CAREBRIDGE_DATABASE_POOL_SIZE", settings.database_pool_size
            )
        )
        raw_pools = fixture.raw
        raw_people = [vars(p) for p in fixture.people]
        raw_cpu_before = cpu_by_command()
        if args.db == "postgres":
            connections = args.raw_connections or args.workers * pool_size
            raw = run_async(
                asyncio.wait_for(
                    surge_raw.run_postgres(
                        bench_db.dsn, raw_pools, raw_people, tasks=args.clients, connections=connections, seed=args.seed
                    ),
                    timeout=300,
                )
            )
        else:
            raw = run_async(
                asyncio.wait_for(
                    surge_raw.run_sqlite(bench_db.dsn, raw_pools, raw_people, tasks=args.clients, seed=args.seed),
                    timeout=300,
                )
            )
        raw_cpu = {k: round(v - raw_cpu_before.get(k, 0.0), 1) for k, v in cpu_by_command().items()}
        raw["cpu_s_by_process"] = dict(sorted(((k, v) for k, v in raw_cpu.items() if v >= 0.3), key=lambda kv: -kv[1]))
        raw_check = asyncio.run(check_database(bench_db.url, [str(p["pool_id"]) for p in raw_pools]))
        raw["oversold"] = raw_check["oversold"]
        log(f"plain SQL: {raw}")

        surge, rejections = phases["surge"], phases["rejections"]
        bookings_per_s = surge["booked"] / surge["seconds"] if surge["seconds"] else 0.0
        rejections_per_s = rejections["rejected_full"] / rejections["seconds"] if rejections["attempts"] else None
        rss = {pid: round(v / 2**20, 1) for pid, v in sampler.peak.items()}
        return {
            "db": args.db,
            "workers": args.workers,
            "clients": args.clients,
            "attempts": surge["attempts"] + rejections["attempts"],
            "booked": surge["booked"],
            "rejected_full": surge["rejected_full"] + rejections["rejected_full"],
            "errors": surge["errors"] + rejections["errors"],
            "oversold": checked["oversold"],
            "bookings_per_s": round(bookings_per_s, 1),
            "rejections_per_s": round(rejections_per_s, 1) if rejections_per_s is not None else None,
            "p50_ms": surge["p50_ms"],
            "p99_ms": surge["p99_ms"],
            "rss_mb_per_worker": max(rss.values()) if rss else None,
            "raw_db_bookings_per_s": raw["bookings_per_s"],
            "ratio_to_raw_db": round(bookings_per_s / raw["bookings_per_s"], 3) if raw["bookings_per_s"] else None,
            # extra detail
            "places": fixture.places,
            "doctors": args.doctors,
            "slots": len(fixture.release),
            "load_client": args.client,
            "latency_scope": "p50_ms/p99_ms: every request of the surge (bookings and its slot_full answers); "
            "the rejection phase's own percentiles are under phases.rejections",
            "rss_scope": "peak RSS of the busiest worker, sampled every 0.25 s during the load",
            "rss_mb_workers": list(rss.values()),
            "worker_cpu_s": [round(cpu_after.get(p, 0) - cpu_before.get(p, 0), 1) for p in cpu_before],
            "machine_cpu_busy_pct": round(100 * busy / total, 1) if total else None,
            "cpu_s_by_process": cpu_use,
            "invariant_violations": checked["invariant_violations"],
            "invariant_examples": checked["invariant_examples"],
            "db_booked_total": checked["booked"],
            "phases": phases,
            "raw_db": raw,
            "seconds": {"preload": round(preload_s, 1), "load_process": round(load_s, 1)},
            "server_pool_size": pool_size,
            "server_env": args.server_env,
            "events": args.events,
            "events_backlog_at_end": backlog,
            "events_drain_s": drain_s,
            "machine": machine(),
        }
    finally:
        stop_profilers(profilers)
        if server is not None:
            log(f"server log tail:\n{server.tail()}")
            server.stop()
        if event_worker is not None:
            event_worker.stop()
        bench_db.drop(args.keep)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
