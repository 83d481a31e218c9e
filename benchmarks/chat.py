"""Chat load: C consultations chatting at once through the real server's WebSockets. Prints one JSON object.

    .venv/bin/python benchmarks/chat.py --db postgres      # or: carebridge bench chat --db postgres
    .venv/bin/python benchmarks/chat.py --db sqlite

1. a fresh database (as ``booking_surge.py``), migrated; C consultations in progress, each with its patient
   and its doctor (D doctors share them), accounts with pre-issued tokens, written with bulk INSERTs;
2. ``carebridge serve --workers W`` as a subprocess;
3. a separate load process opens 2 x C WebSockets (each consultation's patient and doctor), then both sides
   send messages at a combined R messages/s for S seconds (open loop: a slow server shows as latency, not as a
   lower offered rate), each with a unique client id, 2% of them sent twice (resends); before that, a
   warm-up at R/4 for a few seconds, not measured (a server that has been up has compiled its statements);
4. delivery latency = the other side's receipt time - the send time (one clock, one process); every receiver
   must get every message of its consultation exactly once and in order;
5. the database is checked: per consultation, numbers 1..n without gaps, each client id once, n = messages
   sent (resends not counted twice), ``last_seq`` = n.

Progress goes to stderr; stdout carries only the JSON. Targets live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from booking_surge import (  # noqa: E402
    BenchDatabase,
    Sampler,
    Server,
    cpu_seconds,
    log,
    machine,
    migrate,
    run_async,
    start_profilers,
    stop_profilers,
)
from sqlalchemy import func, insert, select  # noqa: E402

from carebridge.app import configure_crypto  # noqa: E402
from carebridge.auth.models import AccessToken, Role, User  # noqa: E402
from carebridge.auth.service import token_digest  # noqa: E402
from carebridge.config import Settings  # noqa: E402
from carebridge.consultations.models import (  # noqa: E402
    ChatMessage,
    Consultation,
    ConsultationKind,
    ConsultationStatus,
    OfflineDiagnosis,
)
from carebridge.core import clock  # noqa: E402
from carebridge.core.ids import new_id  # noqa: E402
from carebridge.database.engine import Database  # noqa: E402
from carebridge.directory.models import Practitioner  # noqa: E402

RESEND_SHARE = 0.02


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chat", description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, help="server workers (default: 2 on postgres, 1 on sqlite)")
    parser.add_argument("--consultations", type=int, default=500)
    parser.add_argument("--doctors", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2000.0, help="messages per second offered, both sides together")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the load runs")
    parser.add_argument("--warmup-seconds", type=float, default=3.0, help="at a quarter of the rate, not measured")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the database (prints where)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy record every worker during the load into DIR")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--load", metavar="SPEC", help=argparse.SUPPRESS)  # internal: run as the load process
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = 2 if args.db == "postgres" else 1
    if min(args.workers, args.consultations, args.doctors) < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("workers, consultations, doctors, rate and seconds must be positive")
    return args


# ------------------------------------------------------------------------------------------------ fixture


async def preload(settings: Settings, *, consultations: int, doctors: int, seed: int) -> list[dict[str, str]]:
    """Consultations in progress, with their patients' and doctors' tokens."""
    import surge_fixture

    base = await surge_fixture.preload(
        settings,
        places=doctors,
        doctors=doctors,
        people=consultations,
        warmup_places=0,
        warmup_people=0,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        seed=seed,
    )
    configure_crypto(settings)
    db = Database(settings)
    rng = random.Random(seed)
    now = clock.now()
    expires = now + timedelta(hours=12)
    try:
        async with db.read() as session:
            practitioner_ids = list((await session.scalars(select(Practitioner.id).order_by(Practitioner.id))).all())
        users, tokens, diagnoses, rows, doctor_tokens = [], [], [], [], {}
        for n, pid in enumerate(practitioner_ids):
            user_id, token = new_id(), secrets.token_urlsafe(32)
            users.append(
                {
                    "id": user_id,
                    "username": f"benchdoc{n}",
                    "password_hash": "!",  # never logs in: the token is pre-issued
                    "role": Role.doctor,
                    "display_name": f"医生{n}",
                    "hospital_id": uuid.UUID(base.hospital_id),
                    "practitioner_id": pid,
                    "active": True,
                    "failed_logins": 0,
                }
            )
            tokens.append({"token_hash": token_digest(token), "user_id": user_id, "expires_at": expires})
            doctor_tokens[pid] = token
        spec = []
        for person in base.people:
            pid = rng.choice(practitioner_ids)
            diagnosis_id, consultation_id = new_id(), new_id()
            diagnoses.append(
                {
                    "id": diagnosis_id,
                    "patient_id": uuid.UUID(person.patient_id),
                    "hospital_name": "基准测试医院",
                    "diagnosed_on": date(2026, 10, 1),
                    "icd10_code": "I10",
                    "diagnosis": "高血压",
                    "recorded_by_user_id": uuid.UUID(person.user_id),
                    "created_at": now,
                }
            )
            rows.append(
                {
                    "id": consultation_id,
                    "hospital_id": uuid.UUID(base.hospital_id),
                    "region": person.region,
                    "patient_id": uuid.UUID(person.patient_id),
                    "requested_by_user_id": uuid.UUID(person.user_id),
                    "practitioner_id": pid,
                    "department_id": uuid.UUID(base.department_id),
                    "kind": ConsultationKind.text,
                    "status": ConsultationStatus.in_progress,
                    "offline_diagnosis_id": diagnosis_id,
                    "complaint": "复诊：血压控制",
                    "requested_at": now,
                    "expires_at": now + timedelta(minutes=30),
                    "accepted_at": now,
                    "started_at": now,
                    "last_seq": 0,
                    "patient_read_seq": 0,
                    "doctor_read_seq": 0,
                }
            )
            spec.append(
                {"consultation_id": str(consultation_id), "patient": person.token, "doctor": doctor_tokens[pid]}
            )
        async with db.transaction() as session:
            for model, chunk in (
                (User, users),
                (AccessToken, tokens),
                (OfflineDiagnosis, diagnoses),
                (Consultation, rows),
            ):
                for i in range(0, len(chunk), 2000):
                    await session.execute(insert(model), chunk[i : i + 2000])
    finally:
        await db.dispose()
    return spec


# ------------------------------------------------------------------------------------------------ load


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    """The load process: connect everyone, send at the offered rate, collect what each side received."""
    from websockets.asyncio.client import connect

    base = spec["ws_url"]
    pairs = spec["pairs"]
    rate, seconds = spec["rate"], spec["seconds"]
    rng = random.Random(spec["seed"])
    sent_at: dict[str, float] = {}  # client id -> when it was first sent
    sent_by: dict[str, str] = {}  # client id -> the sending side
    echoes = 0  # own messages that came back as message frames (a gap filled before the ack): allowed
    received: dict[tuple[int, str], list[tuple[int, str]]] = {}  # (pair, side) -> [(seq, client_id)]
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (sent at, latency): where the slow ones were
    ack_latencies: list[float] = []
    errors: dict[str, int] = {}
    sockets: dict[tuple[int, str], Any] = {}

    async def reader(key: tuple[int, str], ws: Any) -> None:
        got = received.setdefault(key, [])
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame["type"]
            now = time.perf_counter()
            if kind == "message":
                got.append((frame["seq"], frame["client_id"]))
                if sent_by.get(frame["client_id"]) == key[1]:
                    nonlocal echoes
                    echoes += 1
                elif (t := sent_at.get(frame["client_id"])) is not None:
                    latencies.append(now - t)
                    timeline.append((t, now - t))
            elif kind == "ack":
                if not frame["duplicate"] and (t := sent_at.get(frame["client_id"])) is not None:
                    ack_latencies.append(now - t)
            elif kind == "error":
                errors[frame["code"]] = errors.get(frame["code"], 0) + 1

    log(f"load: opening {2 * len(pairs)} sockets")
    readers = []
    for i, pair in enumerate(pairs):
        for side in ("patient", "doctor"):
            ws = await connect(
                f"{base}/api/v1/consultations/{pair['consultation_id']}/chat",
                additional_headers={"Authorization": f"Bearer {pair[side]}"},
                open_timeout=60,
                max_queue=None,
            )
            sockets[(i, side)] = ws
            readers.append(asyncio.create_task(reader((i, side), ws)))
    await asyncio.sleep(1.0)  # every hello and (empty) history is in

    resends = 0
    counter = 0

    async def phase(phase_rate: float, phase_seconds: float, prefix: str) -> int:
        nonlocal resends, counter
        count = int(phase_rate * phase_seconds)
        begun = time.perf_counter()
        n = 0
        while n < count:
            delay = begun + n / phase_rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            while n < count and begun + n / phase_rate <= now:  # a late loop catches up in a burst: open loop
                i = rng.randrange(len(pairs))
                side = "patient" if rng.random() < 0.5 else "doctor"
                client_id = f"{prefix}{n}"
                frame = json.dumps({"type": "message", "client_id": client_id, "text": f"消息 {n}：今天血压 128/82"})
                sent_at[client_id] = time.perf_counter()
                sent_by[client_id] = side
                ws = sockets[(i, side)]
                await ws.send(frame)
                if rng.random() < RESEND_SHARE:
                    await ws.send(frame)
                    resends += 1
                n += 1
                counter += 1
        return count

    warm = spec["warmup_seconds"]
    if warm > 0:
        log(f"load: warm-up, {rate / 4:.0f} messages/s for {warm:.0f} s (not measured)")
        warm_count = await phase(rate / 4, warm, "w")
        deadline = time.perf_counter() + 60
        while len(latencies) < warm_count and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        latencies.clear()
        ack_latencies.clear()
        timeline.clear()
    log(f"load: {rate:.0f} messages/s for {seconds:.0f} s")
    started = time.perf_counter()
    total = await phase(rate, seconds, "m")
    send_seconds = time.perf_counter() - started
    # wait for the tail to arrive
    expected_deliveries = total
    deadline = time.perf_counter() + 60
    while len(latencies) < expected_deliveries and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    wall = time.perf_counter() - started
    await asyncio.sleep(0.5)
    for ws in sockets.values():
        await ws.close()
    for task in readers:
        task.cancel()

    # every side must have every message of its consultation from the other side exactly once, in order
    lost = duplicated = out_of_order = 0
    per_pair: dict[int, set[int]] = {}
    for (i, _side), got in received.items():
        seqs = [s for s, _ in got]
        duplicated += len(seqs) - len(set(seqs))
        out_of_order += sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a)
        per_pair.setdefault(i, set()).update(seqs)
    latencies.sort()
    ack_latencies.sort()
    slow_seconds: dict[int, int] = {}
    for t, lat in timeline:
        if lat > 0.1:
            second = int(t - started)
            slow_seconds[second] = slow_seconds.get(second, 0) + 1

    def pct(values: list[float], p: float) -> float | None:
        return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 1) if values else None

    delivered = len(latencies)
    lost = total - delivered if delivered < total else 0
    return {
        "sent": total,
        "sent_in_warmup": counter - total,
        "resends": resends,
        "send_seconds": round(send_seconds, 2),
        "wall_seconds": round(wall, 2),
        "delivered": delivered,
        "messages_per_s": round(delivered / wall, 1),
        "delivery_ms": {
            "p50": pct(latencies, 0.5),
            "p90": pct(latencies, 0.9),
            "p99": pct(latencies, 0.99),
            "max": pct(latencies, 1.0),
        },
        "ack_ms": {"p50": pct(ack_latencies, 0.5), "p99": pct(ack_latencies, 0.99)},
        "lost_in_delivery": lost,
        "duplicated_in_delivery": duplicated,
        "echoes": echoes,
        "out_of_order": out_of_order,
        "errors": errors,
        "over_100ms_by_second": dict(sorted(slow_seconds.items())),
    }


async def check_database(url: str, sent: int) -> dict[str, Any]:
    db = Database(Settings(database_url=url))
    try:
        async with db.read() as session:
            stored = await session.scalar(select(func.count()).select_from(ChatMessage))
            distinct_ids = await session.scalar(select(func.count(func.distinct(ChatMessage.client_id))))
            rows = (
                await session.execute(
                    select(
                        Consultation.id,
                        Consultation.last_seq,
                        func.count(ChatMessage.id),
                        func.min(ChatMessage.seq),
                        func.max(ChatMessage.seq),
                    )
                    .outerjoin(ChatMessage, ChatMessage.consultation_id == Consultation.id)
                    .group_by(Consultation.id, Consultation.last_seq)
                )
            ).all()
    finally:
        await db.dispose()
    gaps = sum(1 for _, last, n, lo, hi in rows if n and (lo != 1 or hi != n or last != n))
    return {
        "stored": stored,
        "distinct_client_ids": distinct_ids,
        "missing_in_database": max(0, sent - (stored or 0)),
        "stored_twice": (stored or 0) - (distinct_ids or 0),
        "consultations_with_gaps": gaps,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench_db = BenchDatabase(args.db)
    server: Server | None = None
    try:
        bench_db.create()
        migrate(bench_db.url)
        t0 = time.perf_counter()
        settings = Settings(database_url=bench_db.url)
        pairs = asyncio.run(preload(settings, consultations=args.consultations, doctors=args.doctors, seed=args.seed))
        log(f"fixture: {len(pairs)} consultations in {time.perf_counter() - t0:.1f} s")
        server = Server(bench_db.url, args.workers, bench_db.tmp, args.server_env)
        server.wait_ready()
        workers = server.worker_processes()
        spec_path = Path(tempfile.mkdtemp(prefix="cb_chat_")) / "spec.json"
        spec_path.write_text(
            json.dumps(
                {
                    "ws_url": server.base_url.replace("http://", "ws://"),
                    "pairs": pairs,
                    "rate": args.rate,
                    "seconds": args.seconds,
                    "warmup_seconds": args.warmup_seconds,
                    "seed": args.seed,
                }
            )
        )
        cpu_before = cpu_seconds(workers)
        sampler = Sampler(workers)
        sampler.start()
        profilers = start_profilers(workers, args.profile) if args.profile else []
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--load", str(spec_path)],
            capture_output=True,
            text=True,
            timeout=args.seconds + 600,
        )
        stop_profilers(profilers)
        sampler.done.set()
        sampler.join()
        cpu_after = cpu_seconds(workers)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"load process failed:\n{proc.stderr[-3000:]}\n{server.tail()}")
        result = json.loads(proc.stdout)
        checked = asyncio.run(check_database(bench_db.url, result["sent"] + result["sent_in_warmup"]))
        server_cpu = sum(cpu_after.get(pid, 0) - cpu_before.get(pid, 0) for pid in cpu_before)
        return {
            "benchmark": "chat",
            "db": args.db,
            "workers": args.workers,
            "consultations": args.consultations,
            "sockets": 2 * args.consultations,
            "offered_rate": args.rate,
            **result,
            "database": checked,
            "server_cpu_seconds": round(server_cpu, 1),
            "server_cpu_ms_per_message": round(server_cpu * 1000 / max(1, result["delivered"]), 3),
            "peak_rss_mb_per_worker": round(max(sampler.peak.values(), default=0) / 2**20, 1),
            "machine": machine(),
        }
    finally:
        if server is not None:
            server.stop()
        bench_db.drop(args.keep)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load:
        import gc

        gc.disable()  # the load generator's own collections would show up as server latency
        spec = json.loads(Path(args.load).read_text())
        print(json.dumps(run_async(load(spec))))
        return 0
    result = run(args)
    print(json.dumps(result, ensure_ascii=False))
    ok = (
        result["lost_in_delivery"] == 0
        and result["duplicated_in_delivery"] == 0
        and result["out_of_order"] == 0
        and result["database"]["missing_in_database"] == 0
        and result["database"]["stored_twice"] == 0
        and result["database"]["consultations_with_gaps"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
