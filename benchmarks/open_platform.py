"""Open-platform benchmark: token issuance (client credentials), FHIR Slot search over 1,000,000 slots, and
Appointment create through FHIR, against the real server.

    python benchmarks/open_platform.py [--db postgres|sqlite] [--slots 1000000] [--workers 2] [--clients 64]

It migrates a fresh database, bulk-loads hospitals, doctors, sessions and slots (each slot with one place in a
patient-facing app's pool), that app and a backend app (approved, granted by every hospital), and patients
with the app's OAuth access tokens (issued as the token endpoint would, only their SHA-256 stored); then
starts ``carebridge serve`` with an event worker and measures, from this process with keep-alive HTTP/1.1
clients:

1. ``POST /oauth/token``: client credentials with ``private_key_jwt`` (ES256), each with a fresh assertion
   signed beforehand (signing is the client's cost, not the server's);
2. ``GET /fhir/R4/Slot?schedule=<a session>&status=free`` and ``GET /fhir/R4/Slot?start=ge..&start=lt..``
   (an hour of one day across every hospital, first page of 20);
3. ``POST /fhir/R4/Appointment``: each patient books one free slot.

It prints one JSON object. Targets (issue 5): Slot search p95 <= 50 ms with 1,000,000 slots; Appointment create
>= 500/s; token issuance >= 1,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import secrets
import sys
import time
import uuid
from collections import Counter
from datetime import date, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import booking_surge as surge  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import ECKey  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from surge_fixture import _id_number  # noqa: E402
from surge_load import RawClient  # noqa: E402

from carebridge.app import configure_crypto  # noqa: E402
from carebridge.auth.models import Role, User  # noqa: E402
from carebridge.config import Settings  # noqa: E402
from carebridge.core import clock, crypto  # noqa: E402
from carebridge.core.ids import new_id  # noqa: E402
from carebridge.database.engine import Database  # noqa: E402
from carebridge.directory.models import (  # noqa: E402
    Department,
    FilingKind,
    Hospital,
    HospitalLevel,
    Practitioner,
    PractitionerFiling,
    PractitionerTitle,
    Region,
)
from carebridge.openplatform.models import (  # noqa: E402
    AppKind,
    AppStatus,
    HospitalGrant,
    OAuthToken,
    PartnerApp,
    partner_channel,
)
from carebridge.patients.models import Patient, PatientLink, Relation, Sex  # noqa: E402
from carebridge.scheduling.models import (  # noqa: E402
    BookingRule,
    Schedule,
    ScheduleStatus,
    Session,
    Slot,
    SlotPool,
    VisitType,
)

TZ = "Asia/Shanghai"
REGION = "110105"
SLOTS_PER_SESSION = 20
SLOT_MINUTES = 15
SESSION_START = {Session.morning: dtime(8, 0), Session.afternoon: dtime(13, 30)}
PATIENT_SCOPES = "launch/patient patient/Patient.r patient/Slot.rs patient/Schedule.rs patient/Appointment.cruds"
CHUNK = 5000


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="open_platform", description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--workers", type=int, help="server workers (default: 2 on postgres, 1 on sqlite)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients for tokens and bookings")
    parser.add_argument(
        "--search-clients", type=int, default=8, help="concurrent clients for the searches (their latency is measured)"
    )
    parser.add_argument("--slots", type=int, default=1_000_000, help="slots loaded (rounded to whole sessions)")
    parser.add_argument("--hospitals", type=int, default=40)
    parser.add_argument("--doctors", type=int, default=25, help="doctors per hospital")
    parser.add_argument("--tokens", type=int, default=3000, help="client-credentials requests")
    parser.add_argument("--searches", type=int, default=2000, help="Slot searches of each kind")
    parser.add_argument("--bookings", type=int, default=3000, help="Appointment creates (one patient each)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = 2 if args.db == "postgres" else 1
    return args


async def _insert(session: Any, model: type, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), CHUNK):
        await session.execute(insert(model), rows[i : i + CHUNK])


async def preload(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Write the fixture with bulk INSERTs, one hospital per transaction."""
    configure_crypto(settings)
    rng = random.Random(args.seed)
    sessions_per_doctor_day = len(SESSION_START)
    per_hospital_day = args.doctors * sessions_per_doctor_day * SLOTS_PER_SESSION
    days = max(1, round(args.slots / (args.hospitals * per_hospital_day)))
    first_day = clock.local_today(TZ) + timedelta(days=1)
    app_id, backend_id = new_id(), new_id()
    channel = partner_channel(app_id)
    key = ECKey.generate_key("P-256", parameters={"kid": "bench"})
    owner = new_id()
    db = Database(settings)
    schedules_by_day: dict[date, list[str]] = {}
    bookable: list[str] = []  # one slot per (doctor, day) of the first week, for the booking phase
    slots = 0
    try:
        async with db.transaction() as session:
            await _insert(
                session,
                Region,
                [
                    {"code": "110000", "name": "北京市", "parent_code": None},
                    {"code": REGION, "name": "朝阳区", "parent_code": "110000"},
                ],
            )
            await _insert(
                session,
                User,
                [
                    {
                        "id": owner,
                        "username": "bench-dev",
                        "password_hash": "x",
                        "role": Role.developer,
                        "display_name": "bench",
                        "active": True,
                        "failed_logins": 0,
                    }
                ],
            )
            common = {
                "owner_user_id": owner,
                "organisation": "基准",
                "status": AppStatus.approved,
                "webhook_url": None,
                # throughput is measured, not the limiter: it still runs on every call, with limits out of reach
                "rate_limit_per_second": 100_000,
                "daily_quota": 100_000_000,
            }
            await _insert(
                session,
                PartnerApp,
                [
                    {
                        **common,
                        "id": app_id,
                        "client_id": "cb_bench_patient",
                        "name": "患者应用",
                        "kind": AppKind.patient_facing,
                        "redirect_uris": ["http://127.0.0.1:8765/cb"],
                        "scopes": PATIENT_SCOPES.split(),
                        "jwks": None,
                    },
                    {
                        **common,
                        "id": backend_id,
                        "client_id": "cb_bench_backend",
                        "name": "后台应用",
                        "kind": AppKind.backend,
                        "redirect_uris": [],
                        "scopes": ["system/Slot.rs", "system/Appointment.rs"],
                        "jwks": {"keys": [key.as_dict(private=False)]},
                    },
                ],
            )
        for h in range(args.hospitals):
            hospital_id, department_id, visit_type_id = new_id(), new_id(), new_id()
            rows: dict[type, list[dict[str, Any]]] = {
                m: [] for m in (Practitioner, PractitionerFiling, Schedule, Slot, SlotPool)
            }
            for d in range(args.doctors):
                doctor_id = new_id()
                rows[Practitioner].append(
                    {
                        "id": doctor_id,
                        "name": f"医生{h:02d}{d:02d}",
                        "sex": "female",
                        "title": PractitionerTitle("attending_physician"),
                        "specialty": "内科",
                        "licence_number": f"B{args.seed}{h:03d}{d:03d}{rng.randrange(10**9)}",
                        "practice_started_on": date(2010, 1, 1),
                        "introduction": None,
                    }
                )
                rows[PractitionerFiling].append(
                    {
                        "practitioner_id": doctor_id,
                        "hospital_id": hospital_id,
                        "department_id": department_id,
                        "kind": FilingKind.main,
                        "valid_from": date(2015, 1, 1),
                        "valid_to": None,
                    }
                )
                for day_n in range(days):
                    day = first_day + timedelta(days=day_n)
                    for session_kind, start_time in SESSION_START.items():
                        schedule_id = new_id()
                        start = clock.local_datetime(day, start_time, TZ)
                        step = timedelta(minutes=SLOT_MINUTES)
                        rows[Schedule].append(
                            {
                                "id": schedule_id,
                                "hospital_id": hospital_id,
                                "department_id": department_id,
                                "practitioner_id": doctor_id,
                                "visit_type_id": visit_type_id,
                                "template_id": None,
                                "service_date": day,
                                "session": session_kind,
                                "starts_at": start,
                                "ends_at": start + step * SLOTS_PER_SESSION,
                                "fee_fen": 1000,
                                "status": ScheduleStatus.open,
                                "queue_seq": 0,
                            }
                        )
                        schedules_by_day.setdefault(day, []).append(str(schedule_id))
                        for i in range(SLOTS_PER_SESSION):
                            slot_id = new_id()
                            begins = start + step * i
                            rows[Slot].append(
                                {
                                    "id": slot_id,
                                    "schedule_id": schedule_id,
                                    "hospital_id": hospital_id,
                                    "starts_at": begins,
                                    "ends_at": begins + step,
                                }
                            )
                            rows[SlotPool].append(
                                {
                                    "id": new_id(),
                                    "slot_id": slot_id,
                                    "schedule_id": schedule_id,
                                    "hospital_id": hospital_id,
                                    "channel": channel,
                                    "starts_at": begins,
                                    "capacity": 1,
                                    "booked": 0,
                                    "held": 0,
                                }
                            )
                            if i == 0 and session_kind == Session.morning and day_n < 6:
                                bookable.append(str(slot_id))
                        slots += SLOTS_PER_SESSION
            async with db.transaction() as session:
                await _insert(
                    session,
                    Hospital,
                    [
                        {
                            "id": hospital_id,
                            "region_code": REGION,
                            "name": f"基准医院{h:02d}",
                            "short_name": None,
                            "level": HospitalLevel("tertiary"),
                            "licence_number": f"OPB{args.seed}{h:04d}{rng.randrange(10**9)}",
                            "licence_expires_on": first_day + timedelta(days=700),
                            "is_internet_hospital": True,
                            "timezone": TZ,
                        }
                    ],
                )
                await _insert(
                    session,
                    Department,
                    [
                        {
                            "id": department_id,
                            "hospital_id": hospital_id,
                            "campus_id": None,
                            "name": "内科",
                            "standard_code": "03",
                            "description": None,
                        }
                    ],
                )
                await _insert(
                    session,
                    VisitType,
                    [
                        {
                            "id": visit_type_id,
                            "hospital_id": hospital_id,
                            "code": "ordinary",
                            "name": "普通号",
                            "fee_fen": 1000,
                        }
                    ],
                )
                await _insert(
                    session,
                    BookingRule,
                    [
                        {
                            "hospital_id": hospital_id,
                            "department_id": None,
                            "window_days": 7,
                            "opens_at": dtime(0, 0),
                            "same_day_cutoff": None,
                            "cancel_deadline_minutes": 120,
                            "max_per_practitioner_per_day": 1,
                            "max_per_department": 10,
                            "max_total": 10,
                            "auto_release_hours": None,
                        }
                    ],
                )
                for model in (Practitioner, PractitionerFiling, Schedule, Slot, SlotPool):
                    await _insert(session, model, rows[model])
                await _insert(
                    session,
                    HospitalGrant,
                    [{"app_id": a, "hospital_id": hospital_id, "granted_by": owner} for a in (app_id, backend_id)],
                )
            if h % 10 == 9:
                log(f"loaded {h + 1}/{args.hospitals} hospitals, {slots:,} slots")
        # patients, each with the patient-facing app's access token (as /oauth/token would issue it)
        cipher = crypto.cipher()
        people: list[tuple[str, str]] = []
        users, patients, links, tokens = [], [], [], []
        expires = clock.now() + timedelta(hours=6)
        for n in range(args.bookings):
            user_id, patient_id, token = new_id(), new_id(), f"cba_{secrets.token_urlsafe(32)}"
            id_number, phone = _id_number(args.seed * 100_000 + n), f"138{n:08d}"
            users.append(
                {
                    "id": user_id,
                    "username": f"opb{n}",
                    "password_hash": "x",
                    "role": Role.patient,
                    "display_name": f"患者{n}",
                    "active": True,
                    "failed_logins": 0,
                }
            )
            patients.append(
                {
                    "id": patient_id,
                    "region": REGION,
                    "name": f"测试患者{n}",
                    "id_number": id_number,
                    "id_number_index": cipher.blind_index("id_number", id_number),
                    "phone": phone,
                    "phone_index": cipher.blind_index("phone", phone),
                    "key_version": cipher.current_version,
                    "birth_date": date(1980, 1, 1),
                    "sex": Sex("female"),
                }
            )
            links.append({"user_id": user_id, "patient_id": patient_id, "relation": Relation.self})
            tokens.append(
                {
                    "app_id": app_id,
                    "user_id": user_id,
                    "patient_id": patient_id,
                    "scope": PATIENT_SCOPES,
                    "access_hash": hashlib.sha256(token.encode()).hexdigest(),
                    "access_expires_at": expires,
                    "family_id": uuid.uuid4(),
                }
            )
            people.append((token, str(patient_id)))
        async with db.transaction() as session:
            for model, chunk in ((User, users), (Patient, patients), (PatientLink, links), (OAuthToken, tokens)):
                await _insert(session, model, chunk)
        if not db.is_sqlite:
            async with db.transaction() as session:
                await session.execute(text("ANALYZE"))
    finally:
        await db.dispose()
    return {
        "slots": slots,
        "days": days,
        "key": key,
        "schedules_by_day": schedules_by_day,
        "bookable": bookable,
        "people": people,
        "first_day": first_day,
    }


# ------------------------------------------------------------------------------------------------ the load


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def drive(base_url: str, clients: int, requests: list[tuple[str, str, dict[str, str], bytes | None, str]]):  # type: ignore[no-untyped-def]
    """Send the requests from ``clients`` keep-alive connections; (elapsed seconds, latencies ms, statuses)."""
    queue: asyncio.Queue[tuple[str, str, dict[str, str], bytes | None, str]] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    samples: dict[int, bytes] = {}

    async def worker() -> None:
        client = RawClient(base_url)
        try:
            while not queue.empty():
                method, path, headers, body, content_type = queue.get_nowait()
                start = time.perf_counter()
                status, payload = await client.request(method, path, headers, body, content_type=content_type)
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[status] += 1
                samples.setdefault(status, payload[:300])
        finally:
            await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started, latencies, statuses, samples


def phase_result(
    name: str, elapsed: float, latencies: list[float], statuses: Counter[int], samples: dict[int, bytes], ok: int
) -> dict[str, Any]:
    good = sum(n for s, n in statuses.items() if s == ok)
    errors = {str(s): n for s, n in statuses.items() if s != ok}
    if errors:
        log(f"{name}: non-{ok} answers {errors}: {[samples[int(s)].decode(errors='replace') for s in errors]}")
    return {
        "requests": sum(statuses.values()),
        "ok": good,
        "errors": errors,
        "per_s": round(good / elapsed, 1) if elapsed else None,
        "p50_ms": percentile(latencies, 0.5),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    database = surge.BenchDatabase(args.db)
    database.create()
    server = worker = None
    try:
        surge.migrate(database.url)
        started = time.perf_counter()
        fixture = asyncio.run(preload(Settings(database_url=database.url), args))
        log(f"preloaded {fixture['slots']:,} slots in {time.perf_counter() - started:.0f} s")
        extra = ["CAREBRIDGE_EVENT_RELAY=false"]
        worker = surge.EventWorker(database.url, database.tmp, [])
        server = surge.Server(database.url, args.workers, database.tmp, extra)
        server.wait_ready()
        base = server.base_url
        rng = random.Random(args.seed)

        # 1. tokens
        audience = f"{base}/oauth/token"
        now = int(time.time())
        token_requests = []
        for _ in range(args.tokens):
            claims = {
                "iss": "cb_bench_backend",
                "sub": "cb_bench_backend",
                "aud": audience,
                "exp": now + 280,
                "jti": secrets.token_hex(16),
            }
            signed = jwt.encode({"alg": "ES256", "kid": "bench"}, claims, fixture["key"])
            form = (
                f"grant_type=client_credentials&scope=system%2FSlot.rs&client_assertion_type="
                f"urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={signed}"
            )
            token_requests.append(("POST", "/oauth/token", {}, form.encode(), "application/x-www-form-urlencoded"))
        warm = token_requests[:50]
        asyncio.run(drive(base, 8, warm))
        cpu = CpuMeter(server)
        tokens = phase_result("tokens", *_phase(base, args.clients, token_requests[50:]), 200)
        tokens_cpu = cpu.per_request_ms(len(token_requests) - 50)
        log(f"tokens: {tokens} {tokens_cpu}")

        # 2. slot searches, with a patient's token
        patient_token = fixture["people"][-1][0]
        auth = {"Authorization": f"Bearer {patient_token}"}
        days = sorted(fixture["schedules_by_day"])
        by_schedule = []
        by_start = []
        for _ in range(args.searches):
            day = rng.choice(days)
            schedule = rng.choice(fixture["schedules_by_day"][day])
            by_schedule.append(("GET", f"/fhir/R4/Slot?schedule={schedule}&status=free", auth, None, ""))
            hour = rng.choice([8, 9, 10, 13, 14])
            lo = clock.local_datetime(day, dtime(hour, 0), TZ).isoformat()
            hi = clock.local_datetime(day, dtime(hour + 1, 0), TZ).isoformat()
            q = f"start=ge{lo}&start=lt{hi}&_count=20".replace("+", "%2B")
            by_start.append(("GET", f"/fhir/R4/Slot?{q}", auth, None, ""))
        asyncio.run(drive(base, 8, by_schedule[:50] + by_start[:50]))
        cpu = CpuMeter(server)
        search_schedule = phase_result("slot search by schedule", *_phase(base, args.search_clients, by_schedule), 200)
        log(f"slot search by schedule: {search_schedule}")
        search_start = phase_result("slot search by start", *_phase(base, args.search_clients, by_start), 200)
        log(f"slot search by start: {search_start}")
        search_cpu = cpu.per_request_ms(2 * args.searches)

        # 3. bookings: each patient one free slot of the first week
        slots = fixture["bookable"][:]
        rng.shuffle(slots)
        bookings = []
        for (token, patient_id), slot_id in zip(fixture["people"][: args.bookings - 1], slots, strict=False):
            body = orjson.dumps(
                {
                    "resourceType": "Appointment",
                    "status": "booked",
                    "slot": [{"reference": f"Slot/{slot_id}"}],
                    "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
                }
            )
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
            bookings.append(("POST", "/fhir/R4/Appointment", headers, body, "application/fhir+json"))
        cpu = CpuMeter(server)
        created = phase_result("appointment create", *_phase(base, args.clients, bookings), 201)
        created_cpu = cpu.per_request_ms(len(bookings))
        log(f"appointment create: {created} {created_cpu}")
        rss = [round(p.memory_info().rss / 2**20, 1) for p in server.worker_processes()]
    finally:
        if server is not None:
            server.stop()
        if worker is not None:
            worker.stop()
        database.drop(args.keep)
    return {
        "db": args.db,
        "workers": args.workers,
        "clients": args.clients,
        "search_clients": args.search_clients,
        "slots": fixture["slots"],
        "hospitals": args.hospitals,
        "token_issuance_per_s": tokens["per_s"],
        "token_p99_ms": tokens["p99_ms"],
        "token_errors": tokens["errors"],
        "slot_search_by_schedule_p95_ms": search_schedule["p95_ms"],
        "slot_search_by_schedule_p50_ms": search_schedule["p50_ms"],
        "slot_search_by_start_p95_ms": search_start["p95_ms"],
        "slot_search_by_start_p50_ms": search_start["p50_ms"],
        "slot_search_per_s": search_schedule["per_s"],
        "search_errors": {**search_schedule["errors"], **search_start["errors"]},
        "appointment_create_per_s": created["per_s"],
        "appointment_create_p99_ms": created["p99_ms"],
        "appointment_errors": created["errors"],
        "booked": created["ok"],
        "rss_mb_per_worker": rss,
        "cpu_ms_per_request": {"token": tokens_cpu, "slot_search": search_cpu, "appointment_create": created_cpu},
        "targets": {"slot_search_p95_ms": 50, "appointment_create_per_s": 500, "token_issuance_per_s": 1000},
    }


def _phase(base: str, clients: int, requests: list[Any]) -> tuple[float, list[float], Counter[int], dict[int, bytes]]:
    return asyncio.run(drive(base, clients, requests))


class CpuMeter:
    """CPU per request of a phase: the API workers' own, and the whole machine's (workers, PostgreSQL, the event
    worker and this load generator). Unlike requests per second, these do not move when the machine is slower
    or busier for a while, so runs made hours apart compare (docs/performance.md)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.start = self._read()

    def _read(self) -> tuple[float, float]:
        workers = sum(sum(p.cpu_times()[:2]) for p in self.server.worker_processes())
        machine = psutil.cpu_times()
        return workers, machine.user + machine.system + getattr(machine, "softirq", 0.0)

    def per_request_ms(self, requests: int) -> dict[str, float]:
        (w0, m0), (w1, m1) = self.start, self._read()
        self.start = (w1, m1)
        n = max(1, requests)
        return {"worker_cpu_ms": round((w1 - w0) * 1000 / n, 2), "machine_cpu_ms": round((m1 - m0) * 1000 / n, 2)}


def main(argv: list[str] | None = None) -> int:
    result = run(parse_args(argv))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
