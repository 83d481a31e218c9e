"""The supervision engine's speed: throughput, commit-to-warning latency (embedded) and the pre-check.

    .venv/bin/python benchmarks/supervision.py                 # or: carebridge bench supervision
    .venv/bin/python benchmarks/supervision.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Set-up: a fresh database (a temporary SQLite file, or a new PostgreSQL database beside the one named), migrated;
the 27 default rules plus 14 scoped variants (per-region thresholds) and 5 CEL rules: 46 enabled instances;
20 hospitals in 4 regions, registered through ``hospital.registered`` events.

1. **throughput**: a realistic event mix (whole online visits: request, accept, start, prescription checked,
   signed, approved, delivery created, dispensed, shipped, delivered, consultation closed, record signed and
   scored; plus appointments and no-shows; a few percent of them break a rule) fed to ``Engine.process`` in
   relay-sized batches (200), each in its own transaction, as the embedded consumer gets them. Everything the
   engine does is in the time: trace insert, facts, counters, timers, warnings, cases, notifications, commit.
   One process, one event loop: one core for the engine (PostgreSQL's own work runs in its server).
2. **commit-to-warning** (embedded): the real outbox, relay and bus; a steady background mix appended by
   services' transactions, and probe events that trip a rule; the time from the probe's commit to the commit of
   its warning (the engine's ``on_warnings`` hook runs after that commit).
3. **pre-check**: ``Engine.precheck`` on proposed signed prescriptions against the full rule set, call by call.

Prints one JSON object. Targets (issue 4): >= 5,000 events/s; commit-to-warning p99 <= 100 ms; pre-check
p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from carebridge.app import settle_collector
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.config import Settings
from carebridge.core import clock
from carebridge.database.engine import Database
from carebridge.database.migrate import upgrade
from carebridge.events.bus import MemoryBus
from carebridge.events.outbox import Event, append_event
from carebridge.events.relay import OutboxRelay
from carebridge.supervision import catalog, engine, service
from carebridge.supervision.engine import Engine

REGIONS = ["440305", "440306", "110105", "310101"]
ADMIN = Principal(user_id=uuid.uuid4(), username="bench", role=Role.platform_admin)
CEL_RULES = [
    'event.type == "prescription.signed" && event.data.total_fen > 30000',
    'event.type == "prescription.signed" && size(event.data.items) >= 5 && !event.data.long_term',
    'event.type == "consultation.requested" && event.data.patient_age_years < 14 && !event.data.guardian_named',
    'event.type == "record.qc_scored" && event.data.defect_count >= 3',
    'event.type == "delivery.returned" && event.data.pharmacy_kind == "partner"',
]
DRUGS = [
    # code, substance, atc, special control, antibiotic grade, unit price (fen)
    ("D001", "amlodipine", "C08CA01", None, None, 1200),
    ("D002", "metformin", "A10BA02", None, None, 800),
    ("D003", "atorvastatin", "C10AA05", None, None, 2600),
    ("D004", "losartan", "C09CA01", None, None, 1900),
    ("D005", "amoxicillin", "J01CA04", None, "unrestricted", 900),
    ("D006", "levofloxacin", "J01MA12", None, "restricted", 2100),
    ("D007", "meropenem", "J01DH02", None, "special", 16000),
    ("D008", "omeprazole", "A02BC01", None, None, 1500),
    ("D009", "insulin glargine", "A10AE04", None, None, 9800),
    ("D010", "tramadol", "N02AX02", "psychotropic_2", None, 2400),
]


def _id() -> str:
    return str(uuid.uuid4())


def _ev(type_: str, hospital: str, subject: tuple[str, str], data: dict[str, Any], at: datetime) -> Event:
    return Event(
        id=uuid.uuid4(),
        type=type_,
        occurred_at=at,
        hospital_id=uuid.UUID(hospital),
        region=None,
        actor="doctor:bench",
        subject_type=subject[0],
        subject_id=subject[1],
        data=data,
    )


class World:
    def __init__(self, rng: random.Random, hospitals: int = 20, doctors_per_hospital: int = 10) -> None:
        self.rng = rng
        self.hospitals = [(_id(), REGIONS[i % len(REGIONS)]) for i in range(hospitals)]
        self.doctors = {h: [(_id(), _id()) for _ in range(doctors_per_hospital)] for h, _ in self.hospitals}
        self.patients = [_id() for _ in range(5000)]

    def registrations(self, at: datetime) -> list[Event]:
        out = []
        for n, (h, region) in enumerate(self.hospitals):
            data = {
                "hospital_id": h,
                "name": f"互联网医院{n}",
                "region_code": region,
                "level": ["primary", "secondary", "tertiary"][n % 3],
                "is_internet_hospital": True,
                "licence_expires_on": "2030-12-31",
                "licence_verified_on": (at - timedelta(days=30)).date().isoformat(),
                "active": True,
            }
            out.append(_ev("hospital.registered", h, ("hospital", h), data, at))
        return out

    def lines(self, count: int) -> list[dict[str, Any]]:
        rng = self.rng
        common = [d for d in DRUGS if d[3] is None and d[4] != "special"]
        picks = rng.sample(common if rng.random() > 0.01 else DRUGS, count)
        out = []
        for n, (code, substance, atc, special, grade, price) in enumerate(picks, 1):
            days = rng.choice([3, 5, 7, 7, 7]) if rng.random() < 0.99 else 14
            quantity = rng.choice([1, 1, 2, 2, 3]) if rng.random() < 0.99 else 12
            out.append(
                {
                    "line": n,
                    "drug_code": code,
                    "substance": substance,
                    "atc_code": atc,
                    "special_control": special,
                    "antibiotic_grade": grade,
                    "dose": 10.0,
                    "dose_unit": "mg",
                    "frequency": "qd",
                    "route": "oral",
                    "days": days,
                    "quantity": quantity,
                    "amount_fen": price * quantity,
                }
            )
        return out

    def visit(self, at: datetime) -> list[Event]:
        """One online follow-up visit, start to end (14 events), with the odd rule broken."""
        rng = self.rng
        h, _ = rng.choice(self.hospitals)
        doctor, department = rng.choice(self.doctors[h])
        patient = rng.choice(self.patients)
        c = _id()
        base = {
            "consultation_id": c,
            "patient_id": patient,
            "practitioner_id": doctor,
            "department_id": department,
            "kind": "text",
        }
        eligibility = {
            "practice_years": rng.choice([5, 8, 12, 20]) if rng.random() > 0.01 else 2,
            "practitioner_status": "active",
            "filing_kind": "main" if rng.random() > 0.1 else "multi_site",
        }
        age = rng.randint(1, 90)
        diagnosis = rng.choice(["I10", "E11.9", "J45.9", "K21.0"])
        t = [at + timedelta(minutes=m) for m in range(20)]
        cons = ("consultation", c)
        evs = [
            _ev(
                "consultation.requested",
                h,
                cons,
                {
                    **base,
                    "status": "requested",
                    "follows_up_icd10": diagnosis if rng.random() > 0.005 else "",
                    "appointment_id": None,
                    "patient_age_years": age,
                    "guardian_named": age >= 6 or rng.random() > 0.02,
                    "identity_verified": rng.random() > 0.002,
                    **eligibility,
                },
                t[0],
            ),
            _ev("consultation.accepted", h, cons, {**base, "status": "accepted", **eligibility}, t[1]),
            _ev("consultation.started", h, cons, {**base, "status": "in_progress"}, t[2]),
        ]
        rx = _id()
        items = self.lines(rng.choice([1, 1, 1, 2, 2, 3]) if rng.random() > 0.003 else 6)
        total = sum(i["amount_fen"] for i in items)
        rx_base = {
            "prescription_id": rx,
            "consultation_id": c,
            "patient_id": patient,
            "practitioner_id": doctor,
            "revision": 1,
        }
        presc = ("prescription", rx)
        evs += [
            _ev(
                "prescription.checked",
                h,
                presc,
                {
                    **rx_base,
                    "status": "draft",
                    "diagnoses": [diagnosis],
                    "items": items,
                    "total_fen": total,
                    "blocks": [],
                    "warnings": ["interaction"] if rng.random() < 0.05 else [],
                    "rules": [],
                },
                t[3],
            ),
            _ev(
                "prescription.signed",
                h,
                presc,
                {
                    **rx_base,
                    "status": "signed",
                    "diagnoses": [diagnosis],
                    "items": items,
                    "total_fen": total,
                    "long_term": False,
                    "content_sha256": "0" * 64,
                    "signed_at": t[4].isoformat(),
                    "expires_at": (t[4] + timedelta(days=3)).isoformat(),
                    "overrides": [],
                },
                t[4],
            ),
        ]
        approved = rng.random() > 0.003
        if approved:
            evs.append(
                _ev(
                    "prescription.approved",
                    h,
                    presc,
                    {**rx_base, "status": "approved", "pharmacist_user_id": _id(), "reason": None},
                    t[5],
                )
            )
        d = _id()
        d_base = {
            "delivery_id": d,
            "prescription_id": rx,
            "patient_id": patient,
            "pharmacy_kind": "hospital",
            "pharmacy_name": "院内药房",
        }
        deliv = ("delivery", d)
        evs += [
            _ev("delivery.created", h, deliv, {**d_base, "status": "created", "total_fen": total}, t[6]),
            _ev("delivery.dispensed", h, deliv, {**d_base, "status": "dispensed", "reason": None}, t[7]),
            _ev(
                "delivery.shipped",
                h,
                deliv,
                {**d_base, "status": "shipped", "carrier": "SF", "tracking_number": "SF1"},
                t[8],
            ),
            _ev("delivery.delivered", h, deliv, {**d_base, "status": "delivered", "reason": "handover_code"}, t[9]),
            _ev("consultation.closed", h, cons, {**base, "status": "closed", "reason": "done"}, t[10]),
        ]
        r = _id()
        hours = rng.uniform(0.1, 6) if rng.random() > 0.01 else 30.0
        evs += [
            _ev(
                "record.signed",
                h,
                ("record", r),
                {
                    "record_id": r,
                    "consultation_id": c,
                    "patient_id": patient,
                    "practitioner_id": doctor,
                    "version": 1,
                    "diagnoses": [diagnosis],
                    "content_sha256": "0" * 64,
                    "signed_at": t[11].isoformat(),
                    "consultation_ended_at": t[10].isoformat(),
                    "hours_after_consultation": hours,
                    "amend_reason": None,
                },
                t[11],
            ),
            _ev(
                "record.qc_scored",
                h,
                ("record", r),
                {
                    "record_id": r,
                    "consultation_id": c,
                    "practitioner_id": doctor,
                    "version": 1,
                    "score": 92,
                    "defect_count": 0 if rng.random() > 0.02 else 3,
                    "defects": [],
                },
                t[12],
            ),
        ]
        return evs

    def appointment(self, at: datetime) -> list[Event]:
        rng = self.rng
        h, _ = rng.choice(self.hospitals)
        doctor, department = rng.choice(self.doctors[h])
        a = _id()
        data = {
            "appointment_id": a,
            "patient_id": rng.choice(self.patients),
            "practitioner_id": doctor,
            "department_id": department,
            "schedule_id": _id(),
            "slot_id": _id(),
            "channel": "platform",
            "service_date": at.date().isoformat(),
            "starts_at": at.isoformat(),
            "fee_fen": 1500,
        }
        last = "appointment.no_show" if rng.random() < 0.08 else "appointment.completed"
        return [
            _ev("appointment.booked", h, ("appointment", a), data, at),
            _ev(last, h, ("appointment", a), data, at + timedelta(hours=1)),
        ]

    def mix(self, start: datetime) -> Iterator[Event]:
        at = start
        while True:
            at += timedelta(seconds=2)
            yield from self.visit(at) if self.rng.random() < 0.6 else self.appointment(at)


async def prepare(db: Database) -> int:
    """Defaults, 14 scoped variants and 5 CEL rules; returns the number of enabled instances."""
    async with db.transaction() as session:
        await catalog.ensure_defaults(session)
    variants = [
        ("high_value_prescription", {"max_total_fen": 25_000}),
        ("excess_quantity", {"max_quantity": 5}),
        ("daily_prescription_volume", {"max_per_day": 40}),
        ("record_late", {"hours": 12}),
    ]
    n = 0
    async with db.transaction() as session:
        for region in REGIONS[:3]:
            for rule_type, params in variants:
                n += 1
                await service.create_rule(
                    session,
                    principal=ADMIN,
                    fields={
                        "code": f"B-{rule_type}-{region}",
                        "rule_type": rule_type,
                        "params": params,
                        "severity": "warning",
                        "scope_kind": "region",
                        "scope_value": region,
                    },
                )
        for region, rule_type, params in (
            ("310101", "practice_years", {"min_years": 5}),
            ("310101", "too_many_items", {"max_items": 3}),
        ):
            await service.create_rule(
                session,
                principal=ADMIN,
                fields={
                    "code": f"B-{rule_type}-{region}",
                    "rule_type": rule_type,
                    "params": params,
                    "severity": "warning",
                    "scope_kind": "region",
                    "scope_value": region,
                },
            )
        for i, expression in enumerate(CEL_RULES):
            await service.create_rule(
                session,
                principal=ADMIN,
                fields={
                    "code": f"B-cel-{i}",
                    "rule_type": "cel",
                    "expression": expression,
                    "severity": "warning",
                    "scope_kind": "all",
                },
            )
    async with db.read() as session:
        return len((await catalog.ruleset(session)).rules)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))], 3)


async def analyze(db: Database) -> None:
    """On PostgreSQL, what autovacuum does within a minute of a load like this one: fresh planner statistics, so
    statements prepared while the tables were empty are planned again (a running system has them; without it
    the fact reads keep a sequential-scan plan, 2.4 ms each after 50,000 events instead of 0.3 ms)."""
    if not db.is_sqlite:
        async with db.transaction() as session:
            await session.execute(text("ANALYZE"))


async def throughput(db: Database, world: World, events: int, batch: int, history: int) -> dict[str, Any]:
    eng = Engine()
    start = clock.now() - timedelta(days=1)
    async with db.transaction() as session:
        await eng.process(session, world.registrations(start - timedelta(hours=1)))
    stream = world.mix(start)
    # a history before the measured events (caches, prepared statements, tables that are not empty), analysed
    for _ in range(max(5, history // batch)):
        async with db.transaction() as session:
            await eng.process(session, [next(stream) for _ in range(batch)])
    await analyze(db)
    batches = [[next(stream) for _ in range(batch)] for _ in range(events // batch)]
    warnings = 0
    per_batch = []
    started = time.perf_counter()
    cpu = time.process_time()
    for b in batches:
        t0 = time.perf_counter()
        async with db.transaction() as session:
            warnings += len(await eng.process(session, b))
        per_batch.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - started
    cpu_used = time.process_time() - cpu
    total = len(batches) * batch
    return {
        "events": total,
        "batch": batch,
        "seconds": round(wall, 2),
        "events_per_second": round(total / wall),
        "engine_process_cpu_seconds": round(cpu_used, 2),
        "events_per_cpu_second": round(total / cpu_used),
        "batch_ms_p50": pct(per_batch, 0.5),
        "batch_ms_p99": pct(per_batch, 0.99),
        "warnings": warnings,
        "warnings_per_1000_events": round(warnings * 1000 / total, 1),
    }


async def commit_to_warning(db: Database, world: World, probes: int, rate: float, background: float) -> dict:
    """The real outbox, relay and bus; the probe's commit to its warning's commit."""
    bus = MemoryBus(db)
    eng = Engine()

    async def process(session: Any, events: list[Event]) -> None:
        await eng.process(session, events)

    bus.subscribe_batch("supervision", "*", process)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    def seen(warnings: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        for w in warnings:
            t = sent.pop(w["subject"]["id"], None) if w["rule"] == "B-cel-0" else None
            if t is not None:
                latencies.append((now - t) * 1000)
        if len(latencies) >= probes:
            done.set()

    engine.on_warnings(seen)
    relay = OutboxRelay(db, bus)
    await relay.start()
    stream = world.mix(clock.now())

    async def append(events: list[Event]) -> None:
        async with db.transaction() as session:
            for ev in events:
                append_event(
                    session,
                    ev.type,
                    subject_type=ev.subject_type,
                    subject_id=ev.subject_id,
                    data=ev.data,
                    hospital_id=ev.hospital_id,
                    actor=ev.actor,
                )

    async def background_load() -> None:
        per_tick = max(1, int(background / 20))
        while not done.is_set():
            await append([next(stream) for _ in range(per_tick)])
            await asyncio.sleep(0.05)

    loader = asyncio.create_task(background_load())
    await asyncio.sleep(1)
    for _ in range(probes):
        ev = next(e for e in stream if e.type == "prescription.signed")
        data = {**ev.data, "total_fen": 99_000}  # trips B-cel-0 (and R13)
        probe = dataclasses.replace(ev, data=data)
        key = probe.subject_id
        async with db.transaction() as session:
            append_event(
                session,
                probe.type,
                subject_type=probe.subject_type,
                subject_id=probe.subject_id,
                data=probe.data,
                hospital_id=probe.hospital_id,
                actor=probe.actor,
            )
        sent[key] = time.perf_counter()
        await asyncio.sleep(1 / rate)
    try:
        await asyncio.wait_for(done.wait(), 30)
    except TimeoutError:
        pass
    loader.cancel()
    await relay.stop()
    return {
        "probes": probes,
        "measured": len(latencies),
        "background_events_per_second": background,
        "p50_ms": pct(latencies, 0.5) if latencies else None,
        "p95_ms": pct(latencies, 0.95) if latencies else None,
        "p99_ms": pct(latencies, 0.99) if latencies else None,
        "max_ms": round(max(latencies), 3) if latencies else None,
    }


async def precheck(db: Database, world: World, runs: int) -> dict[str, Any]:
    eng = Engine()
    stream = world.mix(clock.now())
    proposals = []
    while len(proposals) < runs:
        ev = next(stream)
        if ev.type == "prescription.signed":
            proposals.append(ev)
    timings = []
    findings = 0
    async with db.read() as session:
        for ev in proposals[:200]:
            await eng.precheck(session, ev)
        for ev in proposals:
            t0 = time.perf_counter_ns()
            found = await eng.precheck(session, ev)
            timings.append((time.perf_counter_ns() - t0) / 1e6)
            findings += len(found)
    return {
        "runs": runs,
        "p50_ms": pct(timings, 0.5),
        "p99_ms": pct(timings, 0.99),
        "mean_ms": round(statistics.fmean(timings), 3),
        "findings": findings,
    }


async def _pg(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    tmp = None
    if args.database_url:
        base, _, _ = args.database_url.rpartition("/")
        name = f"cb_bench_supervision_{uuid.uuid4().hex[:8]}"
        await _pg(args.database_url, f'CREATE DATABASE "{name}"')
        url = f"{base}/{name}"
    else:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'supervision.db'}"
    settings = Settings(database_url=url, log_level="WARNING", database_pool_size=10)
    await asyncio.to_thread(upgrade, settings)
    db = Database(settings)
    try:
        rules = await prepare(db)
        world = World(rng)
        settle_collector(settings)  # the collector as the server sets it up at start (the engine runs there)
        async with db.read() as session:
            cel_rules = sum(1 for r in (await catalog.ruleset(session)).rules if r.cel is not None)
        out: dict[str, Any] = {
            "benchmark": "supervision",
            "database": "postgresql" if args.database_url else "sqlite",
            "rules_enabled": rules,
            "cel_rules": cel_rules,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        progress(f"{rules} rules ({cel_rules} CEL); throughput over {args.events} events")
        out["throughput"] = await throughput(db, world, args.events, args.batch, args.history)
        await analyze(db)
        progress(f"throughput {out['throughput']['events_per_second']}/s; pre-check")
        out["precheck"] = await precheck(db, world, args.precheck_runs)
        progress(f"pre-check p99 {out['precheck']['p99_ms']} ms; commit-to-warning")
        out["commit_to_warning"] = await commit_to_warning(db, world, args.probes, args.probe_rate, args.background)
        out["targets"] = {
            "events_per_second": 5000,
            "commit_to_warning_p99_ms": 100,
            "precheck_p99_ms": 5,
            "rules_enabled": 46,
            "cel_rules": 5,
        }
        return out
    finally:
        await db.dispose()
        if args.database_url:
            await _pg(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL URL (a new database is made beside it); default SQLite")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--history", type=int, default=10_000, help="events processed (not measured) before")
    parser.add_argument("--precheck-runs", type=int, default=5000)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--probe-rate", type=float, default=20.0, help="probe events per second")
    parser.add_argument("--background", type=float, default=200.0, help="background events per second")
    parser.add_argument("--seed", type=int, default=11)
    print(json.dumps(asyncio.run(main(parser.parse_args())), ensure_ascii=False))
