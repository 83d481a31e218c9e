"""The supervision engine: events in, warnings and cases out, everything in the caller's transaction.

``process`` takes a batch of events (from the bus in embedded mode, from the ingest API in standalone mode):

1. hospital registry events update what the engine knows of hospitals (scope, licence);
2. every event is kept in the trace; its id is the primary key, so an event seen before is skipped here and
   never evaluated twice (redelivery, a platform re-sending a batch, a restart mid-way);
3. the facts, counts and hospitals the batch's rules need are read in a few queries;
4. each event is checked against the enabled rules for its type and scope, in order; facts and counts move on
   as the batch goes, so a later event sees an earlier one;
5. violations become warnings, warnings open or join cases, timers are set or cancelled, state is written.

A rule that fails on an event (a custom rule's runtime error) is skipped for that event and reported on the
rule; the other rules go on. ``precheck`` runs the same rules on a proposed action without writing anything.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import String, Uuid, and_, any_, bindparam, case, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.core.ids import new_id
from carebridge.database.engine import insert_for, on_commit
from carebridge.events.outbox import Event
from carebridge.supervision import cases, cel, registry
from carebridge.supervision.catalog import CompiledRule, RuleSet, ruleset
from carebridge.supervision.models import (
    SEVERITY_RANK,
    Case,
    CaseEntry,
    Counter,
    Fact,
    Rule,
    RuleError,
    RuleWarning,
    Severity,
    Timer,
    TimerStatus,
    TracedEvent,
)
from carebridge.supervision.rule_types import CounterSpec, TimerDue, Violation

# Called after a batch that raised warnings commits (the live feed); set by the app.
_listeners: list[Callable[[list[dict[str, Any]]], None]] = []


def on_warnings(listener: Callable[[list[dict[str, Any]]], None]) -> None:
    if listener not in _listeners:  # an app created again (tests) registers once
        _listeners.append(listener)


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@dataclass(slots=True)
class Finding:
    """A violation with its rule: what the pre-check answers and what becomes a warning."""

    rule: CompiledRule
    violation: Violation

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.code,
            "regulation": self.rule.regulation,
            "severity": str(self.rule.severity),
            "name": self.rule.name,
            "message": self.violation.message,
            "details": self.violation.details,
        }


@dataclass
class Batch:
    """What one batch reads and changes, applied to the database at the end."""

    facts: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    changed_facts: set[str] = field(default_factory=set)
    # per rule and subject: the count of each day, as stored plus what this batch added so far
    counts: dict[tuple[uuid.UUID, str], dict[date, int]] = field(default_factory=dict)
    increments: dict[tuple[uuid.UUID, str, date], int] = field(default_factory=lambda: defaultdict(int))
    timers: dict[tuple[uuid.UUID, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    errors: dict[uuid.UUID, tuple[uuid.UUID, str, int]] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)


class EvalContext:
    """What a rule type sees while it evaluates one event."""

    __slots__ = ("batch", "rule", "event", "hospital", "precheck", "_count", "_zone")

    def __init__(self, batch: Batch, precheck: bool, zone: str) -> None:
        self.batch = batch
        self.precheck = precheck
        self.rule: CompiledRule | None = None
        self.event: Event | None = None
        self.hospital: registry.HospitalView | None = None
        self._count: tuple[int, int] = (0, 0)
        self._zone = zone

    def fact(self, key: str) -> dict[str, Any] | None:
        return self.batch.facts.get(key)

    def count(self) -> tuple[int, int]:
        """The rule's count for this event's subject over its window: (before this event, with it)."""
        return self._count

    def local_day(self, moment: datetime) -> date:
        return clock.to_local(moment, self._zone).date()

    def _timer(self, key: str, op: str, **payload: Any) -> None:
        if self.precheck or self.rule is None or self.event is None:
            return
        self.batch.timers[(self.rule.id, key)] = (op, {"event": self.event, "rule": self.rule, **payload})

    def set_timer(self, key: str, due_at: datetime, *, details: dict[str, Any]) -> None:
        """Due at ``due_at`` unless cancelled; setting a key that exists (pending or done) changes nothing."""
        self._timer(key, "set", due_at=due_at, details=details)

    def reset_timer(self, key: str, due_at: datetime, *, details: dict[str, Any]) -> None:
        """Due at ``due_at``, replacing whatever the key held (a licence verified again)."""
        self._timer(key, "reset", due_at=due_at, details=details)

    def cancel_timer(self, key: str) -> None:
        self._timer(key, "cancel")


def activation(ev: Event) -> dict[str, Any]:
    """The event as a CEL expression reads it (``event``); ``occurred_at`` is a timestamp."""
    return {
        "event": {
            "id": str(ev.id),
            "type": ev.type,
            "catalog_version": ev.catalog_version,
            "occurred_at": ev.occurred_at,
            "hospital_id": str(ev.hospital_id) if ev.hospital_id else None,
            "region": ev.region,
            "actor": ev.actor,
            "subject": {"type": ev.subject_type, "id": ev.subject_id},
            "data": ev.data,
        }
    }


def _group_value(rule: CompiledRule, ev_data: dict[str, Any], hospital_id: Any, subject: tuple[str, str]) -> str:
    if rule.group_by == "practitioner" and ev_data.get("practitioner_id"):
        return f"practitioner:{ev_data['practitioner_id']}"
    if rule.group_by == "patient" and ev_data.get("patient_id"):
        return f"patient:{ev_data['patient_id']}"
    if rule.group_by == "hospital" and hospital_id:
        return f"hospital:{hospital_id}"
    return f"{subject[0]}:{subject[1]}"


# --- the projection of facts ---------------------------------------------------------------------------------


def projection_key(ev: Event) -> str | None:
    if ev.type.startswith("consultation.") and ev.data.get("consultation_id"):
        return f"consultation:{ev.data['consultation_id']}"
    if ev.type.startswith("prescription.") and ev.type != "prescription.checked" and ev.data.get("prescription_id"):
        return f"prescription:{ev.data['prescription_id']}"
    return None


def project(batch: Batch, ev: Event) -> None:
    key = projection_key(ev)
    if key is None:
        return
    fact = dict(batch.facts.get(key) or {})
    d = ev.data
    if key.startswith("consultation:"):
        fact.update(status=d.get("status"), practitioner_id=d.get("practitioner_id"), patient_id=d.get("patient_id"))
        if ev.type == "consultation.requested":
            fact.update(follows_up_icd10=d.get("follows_up_icd10"), event_id=str(ev.id))
    else:
        if ev.type == "prescription.signed":
            fact.update(
                consultation_id=d.get("consultation_id"), practitioner_id=d.get("practitioner_id"), event_id=str(ev.id)
            )
        fact["status"] = {"signed": "signed", "approved": "approved", "rejected": "rejected"}.get(
            ev.type.split(".", 1)[1], d.get("status")
        )
    batch.facts[key] = fact
    batch.changed_facts.add(key)


# --- the engine ----------------------------------------------------------------------------------------------


class Engine:
    def __init__(self, *, zone: str = "Asia/Shanghai") -> None:
        self.zone = zone

    async def process(
        self, session: AsyncSession, events: Sequence[Event], *, platform_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        """Check a batch of events; returns the warnings raised (as dicts). Writes only in ``session``."""
        if not events:
            return []
        await registry.apply_events(session, [e for e in events if e.type in registry.EVENT_TYPES], platform_id)
        hospitals = await registry.views(session, {e.hospital_id for e in events if e.hospital_id})
        new_ids = await self._trace(session, events, hospitals, platform_id)
        fresh = [e for e in events if e.id in new_ids]
        if not fresh:
            return []
        rules = await ruleset(session)
        batch = Batch()
        plan = [(ev, self._applicable(rules, ev, hospitals)) for ev in fresh]
        await self._load_facts(session, batch, plan)
        counter_specs = await self._load_counts(session, batch, plan)
        ctx = EvalContext(batch, precheck=False, zone=self.zone)
        for i, (ev, applicable) in enumerate(plan):
            ctx.event = ev
            ctx.hospital = hospitals.get(ev.hospital_id) if ev.hospital_id else None
            memo: dict[str, Any] = {}
            for rule in applicable:
                try:
                    found = self._check(rule, ev, ctx, counter_specs.get((i, rule.id)), memo)
                except Exception as exc:  # one rule's failure never stops the others
                    prev = batch.errors.get(rule.id)
                    batch.errors[rule.id] = (ev.id, str(exc)[:480] or type(exc).__name__, (prev[2] if prev else 0) + 1)
                    continue
                for violation in found:
                    batch.warnings.append(self._warning(rule, violation, ev, ctx.hospital, source=rule.type.source))
            project(batch, ev)
        await self._write(session, batch)
        return await self.raise_warnings(session, batch.warnings)

    def _check(
        self, rule: CompiledRule, ev: Event, ctx: EvalContext, spec: CounterSpec | None, memo: dict[str, Any]
    ) -> list[Violation]:
        """One rule on one event; ``memo`` holds what the event's rules share (its CEL activation)."""
        ctx.rule = rule
        if spec is not None:
            ctx._count = self._advance(ctx.batch, rule, spec)
        if rule.cel is not None:
            if "activation" not in memo:
                memo["activation"] = activation(ev)
            return [Violation(rule.params.message)] if cel.evaluate(rule.cel, memo["activation"]) else []
        return list(rule.type.evaluate(rule.params, ev, ctx))

    def _applicable(
        self, rules: RuleSet, ev: Event, hospitals: dict[uuid.UUID, registry.HospitalView]
    ) -> list[CompiledRule]:
        hospital = hospitals.get(ev.hospital_id) if ev.hospital_id else None
        region = hospital.region_code if hospital else None
        return [r for r in rules.for_type(ev.type) if r.in_scope(ev.hospital_id, region)]

    async def _trace(
        self,
        session: AsyncSession,
        events: Sequence[Event],
        hospitals: dict[uuid.UUID, registry.HospitalView],
        platform_id: uuid.UUID | None,
    ) -> set[uuid.UUID]:
        rows = []
        now = clock.now()
        for ev in events:
            hospital = hospitals.get(ev.hospital_id) if ev.hospital_id else None
            d = ev.data
            rows.append(
                {
                    "id": ev.id,
                    "type": ev.type,
                    "catalog_version": ev.catalog_version,
                    "occurred_at": ev.occurred_at,
                    "received_at": now,
                    "hospital_id": ev.hospital_id,
                    "hospital_region": hospital.region_code if hospital else None,
                    "region": ev.region,
                    "actor": ev.actor,
                    "subject_type": ev.subject_type,
                    "subject_id": ev.subject_id,
                    "practitioner_id": _uuid(d.get("practitioner_id")),
                    "patient_id": _uuid(d.get("patient_id")),
                    "consultation_id": _uuid(d.get("consultation_id")),
                    "prescription_id": _uuid(d.get("prescription_id")),
                    "platform_id": platform_id,
                    "data": d,
                }
            )
        stmt = insert_for(session, TracedEvent).on_conflict_do_nothing(index_elements=["id"])
        if session.bind.dialect.name != "sqlite":
            return set((await session.scalars(stmt.returning(TracedEvent.id), rows)).all())
        # SQLite: RETURNING turns the batch into row-by-row statements; the writer holds the database's write lock
        # (BEGIN IMMEDIATE), so the ids already kept, read first, are exact.
        ids = [r["id"] for r in rows]
        known = set((await session.scalars(select(TracedEvent.id).where(TracedEvent.id.in_(ids)))).all())
        fresh = [r for r in rows if r["id"] not in known]
        if fresh:
            await session.execute(stmt, fresh)
        return {r["id"] for r in fresh}

    async def _load_facts(
        self, session: AsyncSession, batch: Batch, plan: list[tuple[Event, list[CompiledRule]]]
    ) -> None:
        keys: set[str] = set()
        for ev, applicable in plan:
            key = projection_key(ev)
            if key:
                keys.add(key)
            for rule in applicable:
                if rule.cel is None:
                    keys.update(rule.type.facts(ev))
        batch.facts.update(await load_facts(session, keys))

    async def _load_counts(
        self, session: AsyncSession, batch: Batch, plan: list[tuple[Event, list[CompiledRule]]]
    ) -> dict[tuple[int, uuid.UUID], CounterSpec]:
        specs: dict[tuple[int, uuid.UUID], CounterSpec] = {}
        wanted: dict[uuid.UUID, tuple[set[str], date, date]] = {}
        for i, (ev, applicable) in enumerate(plan):
            for rule in applicable:
                if rule.cel is not None:
                    continue
                spec = rule.type.counter(rule.params, ev)
                if spec is None:
                    continue
                specs[(i, rule.id)] = spec
                first = spec.day - timedelta(days=spec.window_days - 1)
                keys, lo, hi = wanted.get(rule.id, (set(), first, spec.day))
                keys.add(spec.subject_key)
                wanted[rule.id] = (keys, min(lo, first), max(hi, spec.day))
        if wanted:  # one query for every counting rule (a day outside a rule's window is ignored when summed)
            all_keys = set().union(*(keys for keys, _, _ in wanted.values()))
            lo = min(lo for _, lo, _ in wanted.values())
            hi = max(hi for _, _, hi in wanted.values())
            batch.counts.update(await load_counts(session, list(wanted), all_keys, lo, hi))
        return specs

    @staticmethod
    def _advance(batch: Batch, rule: CompiledRule, spec: CounterSpec) -> tuple[int, int]:
        first = spec.day - timedelta(days=spec.window_days - 1)
        days = batch.counts.setdefault((rule.id, spec.subject_key), {})
        before = sum(n for day, n in days.items() if first <= day <= spec.day)
        days[spec.day] = days.get(spec.day, 0) + 1
        batch.increments[(rule.id, spec.subject_key, spec.day)] += 1
        return before, before + 1

    def _warning(
        self,
        rule: CompiledRule,
        violation: Violation,
        ev: Event,
        hospital: registry.HospitalView | None,
        *,
        source: str,
        dedup: str | None = None,
        subject: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        subject = subject or (ev.subject_type, ev.subject_id)
        d = ev.data
        return {
            "id": new_id(),
            "rule_id": rule.id,
            "rule_code": rule.code,
            "regulation": rule.regulation,
            "severity": rule.severity,
            "message": violation.message[:500],
            "subject_type": subject[0],
            "subject_id": subject[1],
            "hospital_id": ev.hospital_id,
            "hospital_region": hospital.region_code if hospital else None,
            "practitioner_id": _uuid(d.get("practitioner_id")),
            "patient_id": _uuid(d.get("patient_id")),
            "evidence": [str(ev.id), *violation.evidence],
            "details": violation.details,
            "source": source,
            "occurred_at": ev.occurred_at,
            "created_at": clock.now(),
            "case_id": None,
            "dedup_key": dedup or f"{rule.id}:{ev.id}",
            "_group": _group_value(rule, d, ev.hospital_id, subject),
            "_rule_name": rule.name,
        }

    async def _write(self, session: AsyncSession, batch: Batch) -> None:
        now = clock.now()
        if batch.changed_facts:
            stmt = insert_for(session, Fact)
            stmt = stmt.on_conflict_do_update(
                index_elements=["key"], set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at}
            )
            await session.execute(
                stmt, [{"key": k, "data": batch.facts[k], "updated_at": now} for k in sorted(batch.changed_facts)]
            )
        if batch.increments:
            stmt = insert_for(session, Counter)
            stmt = stmt.on_conflict_do_update(
                index_elements=["rule_id", "subject_key", "day"], set_={"count": Counter.count + stmt.excluded.count}
            )
            await session.execute(
                stmt,
                [{"rule_id": r, "subject_key": k, "day": d, "count": n} for (r, k, d), n in batch.increments.items()],
            )
        await self._write_timers(session, batch)
        for rule_id, (event_id, message, n) in batch.errors.items():
            session.add(RuleError(rule_id=rule_id, event_id=event_id, error=message))
            await session.execute(
                update(Rule)
                .where(Rule.id == rule_id)
                .values(error_count=Rule.error_count + n, last_error=message, last_error_at=now)
            )

    async def _write_timers(self, session: AsyncSession, batch: Batch) -> None:
        inserts, resets = [], []
        cancels: dict[uuid.UUID, list[str]] = defaultdict(list)
        for (rule_id, key), (op, p) in batch.timers.items():
            if op == "cancel":
                cancels[rule_id].append(key)
                continue
            ev: Event = p["event"]
            data = ev.data
            row = {
                "id": new_id(),
                "rule_id": rule_id,
                "timer_key": key,
                "due_at": p["due_at"],
                "status": TimerStatus.pending,
                "subject_type": ev.subject_type,
                "subject_id": ev.subject_id,
                "hospital_id": ev.hospital_id,
                "hospital_region": None,
                "practitioner_id": _uuid(data.get("practitioner_id")),
                "patient_id": _uuid(data.get("patient_id")),
                "evidence": [str(ev.id)],
                "details": p["details"],
                "created_at": clock.now(),
                "fired_at": None,
            }
            (resets if op == "reset" else inserts).append(row)
        if cancels:  # one statement for every rule's cancelled timers
            table = Timer.__table__
            await session.execute(
                table.update()
                .where(
                    or_(*(and_(table.c.rule_id == r, table.c.timer_key.in_(keys)) for r, keys in cancels.items())),
                    table.c.status == TimerStatus.pending,
                )
                .values(status=TimerStatus.cancelled)
            )
        if inserts:
            await session.execute(
                insert_for(session, Timer).on_conflict_do_nothing(index_elements=["rule_id", "timer_key"]), inserts
            )
        if resets:
            stmt = insert_for(session, Timer)
            stmt = stmt.on_conflict_do_update(
                index_elements=["rule_id", "timer_key"],
                set_={
                    "due_at": stmt.excluded.due_at,
                    "status": stmt.excluded.status,
                    "details": stmt.excluded.details,
                    "evidence": stmt.excluded.evidence,
                    "fired_at": None,
                },
            )
            await session.execute(stmt, resets)

    async def raise_warnings(self, session: AsyncSession, warnings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Open or join a case per rule and group, then store the warnings."""
        if not warnings:
            return []
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for w in warnings:
            if w["severity"] != Severity.info:
                groups[cases.open_key(w["rule_id"], w["source"], w["_group"])].append(w)
        opened: list[dict[str, Any]] = []
        for open_key, (case_id, new_case) in (await join_or_open_cases(session, groups)).items():
            for w in groups[open_key]:
                w["case_id"] = case_id
            if new_case is not None:
                opened.append(new_case)
        await cases.notify_opened(session, opened)
        rows = [{k: v for k, v in w.items() if not k.startswith("_")} for w in warnings]
        await session.execute(
            insert_for(session, RuleWarning).on_conflict_do_nothing(index_elements=["dedup_key"]), rows
        )
        out = [public_warning(w) for w in warnings]
        if _listeners:
            for listener in _listeners:
                on_commit(session, lambda listener=listener: listener(out))
        return out

    async def fire_timers(self, session: AsyncSession, *, limit: int = 500) -> list[dict[str, Any]]:
        """Turn due timers into warnings; each timer fires once even with several sweepers."""
        now = clock.now()
        due = (
            await session.scalars(
                select(Timer)
                .where(Timer.status == TimerStatus.pending, Timer.due_at <= now)
                .order_by(Timer.due_at)
                .limit(limit)
            )
        ).all()
        if not due:
            return []
        claimed = set(
            (
                await session.scalars(
                    update(Timer)
                    .where(Timer.id.in_([t.id for t in due]), Timer.status == TimerStatus.pending)
                    .values(status=TimerStatus.fired, fired_at=now)
                    .returning(Timer.id)
                )
            ).all()
        )
        rules = await ruleset(session)
        hospitals = await registry.views(session, {t.hospital_id for t in due if t.hospital_id})
        warnings = []
        for t in due:
            rule = rules.by_id.get(t.rule_id)
            if t.id not in claimed or rule is None:  # fired elsewhere, or the rule is now disabled
                continue
            hospital = hospitals.get(t.hospital_id) if t.hospital_id else None
            if not rule.in_scope(t.hospital_id, hospital.region_code if hospital else None):
                continue
            violation = rule.type.on_timer(
                rule.params, TimerDue(t.timer_key, t.subject_type, t.subject_id, t.evidence, t.details, t.due_at)
            )
            if violation is None:
                continue
            pseudo = Event(
                id=uuid.UUID(t.evidence[0]) if t.evidence else t.id,
                type="timer",
                occurred_at=t.due_at,
                hospital_id=t.hospital_id,
                region=None,
                actor=None,
                subject_type=t.subject_type,
                subject_id=t.subject_id,
                data={
                    "practitioner_id": str(t.practitioner_id) if t.practitioner_id else None,
                    "patient_id": str(t.patient_id) if t.patient_id else None,
                },
            )
            violation.evidence = t.evidence[1:]
            warnings.append(
                self._warning(rule, violation, pseudo, hospital, source="timer", dedup=f"{rule.id}:timer:{t.id}")
            )
        return await self.raise_warnings(session, warnings)

    async def precheck(
        self,
        session: AsyncSession,
        ev: Event,
    ) -> list[Finding]:
        """What the proposed action (shaped as the event it would produce) would violate. Writes nothing."""
        rules = await ruleset(session)
        hospitals = await registry.views(session, {ev.hospital_id} if ev.hospital_id else set())
        applicable = [r for r in self._applicable(rules, ev, hospitals) if r.cel is not None or r.type.precheck]
        if not applicable:
            return []
        batch = Batch()
        await self._load_facts(session, batch, [(ev, applicable)])
        specs = await self._load_counts(session, batch, [(ev, applicable)])
        ctx = EvalContext(batch, precheck=True, zone=self.zone)
        ctx.event = ev
        ctx.hospital = hospitals.get(ev.hospital_id) if ev.hospital_id else None
        findings: list[Finding] = []
        memo: dict[str, Any] = {}
        for rule in applicable:
            try:
                found = self._check(rule, ev, ctx, specs.get((0, rule.id)), memo)
            except Exception:  # reported when the event itself is processed
                continue
            findings.extend(Finding(rule, v) for v in found)
        findings.sort(key=lambda f: -SEVERITY_RANK[f.rule.severity])
        return findings


def public_warning(w: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(w["id"]),
        "rule": w["rule_code"],
        "rule_name": w.get("_rule_name"),
        "regulation": w["regulation"],
        "severity": str(w["severity"]),
        "message": w["message"],
        "subject": {"type": w["subject_type"], "id": w["subject_id"]},
        "hospital_id": str(w["hospital_id"]) if w["hospital_id"] else None,
        "hospital_region": w["hospital_region"],
        "practitioner_id": str(w["practitioner_id"]) if w["practitioner_id"] else None,
        "evidence": w["evidence"],
        "details": w["details"],
        "case_id": str(w["case_id"]) if w["case_id"] else None,
        "occurred_at": w["occurred_at"].isoformat(),
        "created_at": w["created_at"].isoformat(),
    }


def _in(column: Any, name: str, dialect: str, type_: Any) -> Any:
    """``column IN :name`` for a prebuilt statement: on PostgreSQL ``= ANY(:name)`` (one statement text, prepared
    once, for any number of values), on SQLite an expanding IN."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(type_)))
    return column.in_(bindparam(name, expanding=True))


# The per-batch (and pre-check) reads, prebuilt per dialect as Core statements on the tables: building them, and
# the ORM's handling of a select of mapped attributes, cost more than the reads themselves.
_FACTS_T, _COUNTERS_T = Fact.__table__.c, Counter.__table__.c
_FACTS_READ = {
    d: select(_FACTS_T.key, _FACTS_T.data).where(_in(_FACTS_T.key, "keys", d, String)) for d in ("postgresql", "sqlite")
}
_COUNTS_READ = {
    d: select(_COUNTERS_T.rule_id, _COUNTERS_T.subject_key, _COUNTERS_T.day, _COUNTERS_T.count).where(
        _in(_COUNTERS_T.rule_id, "rule_ids", d, Uuid),
        _in(_COUNTERS_T.subject_key, "keys", d, String),
        _COUNTERS_T.day.between(bindparam("lo"), bindparam("hi")),
    )
    for d in ("postgresql", "sqlite")
}


async def load_facts(session: AsyncSession, keys: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    wanted = sorted(set(keys))
    found: dict[str, dict[str, Any] | None] = dict.fromkeys(wanted)
    stmt = _FACTS_READ[session.bind.dialect.name]
    for i in range(0, len(wanted), 500):
        rows = await session.execute(stmt, {"keys": wanted[i : i + 500]})
        for key, data in rows.all():
            found[key] = data
    return found


async def load_counts(
    session: AsyncSession, rule_ids: list[uuid.UUID], keys: set[str], lo: date, hi: date
) -> dict[tuple[uuid.UUID, str], dict[date, int]]:
    counts: dict[tuple[uuid.UUID, str], dict[date, int]] = {}
    wanted = sorted(keys)
    stmt = _COUNTS_READ[session.bind.dialect.name]
    for i in range(0, len(wanted), 500):
        params = {"rule_ids": rule_ids, "keys": wanted[i : i + 500], "lo": lo, "hi": hi}
        rows = await session.execute(stmt, params)
        for rule_id, key, day, n in rows.all():
            counts.setdefault((rule_id, key), {})[day] = n
    return counts


def case_number(case_id: uuid.UUID, at: datetime) -> str:
    return f"SV{at.astimezone(UTC):%Y%m%d}-{case_id.hex[-6:].upper()}"


_SEVERITY_RANK_SQL = case((Case.severity == "block", 2), (Case.severity == "warning", 1), else_=0)


def _new_case_row(open_key: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    first = members[0]
    last = max(w["created_at"] for w in members)
    severity = Severity(max((w["severity"] for w in members), key=lambda s: SEVERITY_RANK[Severity(s)]))
    case_id = new_id()
    subject_type, subject_id = first["_group"].split(":", 1)
    return {
        "id": case_id,
        "number": case_number(case_id, last),
        "rule_id": first["rule_id"],
        "rule_code": first["rule_code"],
        "regulation": first["regulation"],
        "title": f"{first['_rule_name']}: {first['message']}"[:300],
        "severity": severity,
        "status": "open",
        "group_key": first["_group"],
        "open_key": open_key,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "hospital_id": first["hospital_id"],
        "hospital_region": first["hospital_region"],
        "source": "rule" if first["source"] in ("event", "timer") else first["source"],
        "assignee_user_id": None,
        "sent_to_hospital_at": None,
        "opened_at": last,
        "due_at": last + timedelta(days=cases.CASE_DAYS[Severity(severity)]),
        "escalation_level": 0,
        "escalated_at": None,
        "closed_at": None,
        "resolution": None,
        "warning_count": len(members),
        "last_warning_at": last,
        "updated_at": last,
    }


async def join_or_open_cases(
    session: AsyncSession, groups: dict[str, list[dict[str, Any]]]
) -> dict[str, tuple[uuid.UUID, dict[str, Any] | None]]:
    """For each open key, the open case with the new warnings counted in, or a new case (then also its summary,
    for its notifications). A few statements for the whole batch: one read of the open cases, one update per
    joined case (one executemany on SQLite), one insert of the new cases and their history entries."""
    table = Case.__table__
    out: dict[str, tuple[uuid.UUID, dict[str, Any] | None]] = {}
    pending = dict(groups)
    for _ in range(3):
        if not pending:
            return out
        found = dict(
            (await session.execute(select(Case.open_key, Case.id).where(Case.open_key.in_(list(pending))))).all()
        )
        joins = [
            {
                "b_id": found[key],
                "b_key": key,
                "b_n": len(members),
                "b_last": max(w["created_at"] for w in members),
                "b_sev": Severity(max((w["severity"] for w in members), key=lambda s: SEVERITY_RANK[Severity(s)])),
                "b_rank": max(SEVERITY_RANK[Severity(w["severity"])] for w in members),
            }
            for key, members in pending.items()
            if key in found
        ]
        if joins:
            stmt = (
                table.update()
                .where(table.c.id == bindparam("b_id"), table.c.open_key == bindparam("b_key"))
                .values(
                    warning_count=table.c.warning_count + bindparam("b_n"),
                    last_warning_at=bindparam("b_last"),
                    updated_at=bindparam("b_last"),
                    severity=case(
                        (_SEVERITY_RANK_SQL < bindparam("b_rank"), bindparam("b_sev")), else_=table.c.severity
                    ),
                )
            )
            if session.bind.dialect.name == "sqlite":  # one writer: the count of rows changed is exact
                if (await session.execute(stmt, joins)).rowcount == len(joins):
                    joined = {j["b_key"] for j in joins}
                else:
                    joined = set()
            else:
                joined = set()
                for j in joins:
                    if (await session.execute(stmt, j)).rowcount == 1:
                        joined.add(j["b_key"])
            for key in joined:
                out[key] = (found[key], None)
                del pending[key]
            if len(joined) < len(joins):
                continue  # a case closed meanwhile: read again
        new = [_new_case_row(key, members) for key, members in pending.items() if key not in found]
        if not new:
            continue
        stmt = insert_for(session, Case).on_conflict_do_nothing(index_elements=["open_key"])
        if session.bind.dialect.name == "sqlite":
            await session.execute(stmt, new)
            inserted = {r["id"] for r in new}
        else:
            inserted = set((await session.scalars(stmt.returning(Case.id), new)).all())
        entries = []
        for row in new:
            if row["id"] not in inserted:
                continue  # opened by another worker meanwhile: joined on the next round
            entries.append(
                {
                    "id": new_id(),
                    "case_id": row["id"],
                    "at": row["opened_at"],
                    "actor": "system",
                    "actor_name": "system",
                    "kind": "opened",
                    "text": None,
                    "shared": False,
                    "status_from": None,
                    "status_to": "open",
                }
            )
            summary = {k: row[k] for k in ("id", "number", "title", "hospital_region")}
            out[row["open_key"]] = (row["id"], summary)
            del pending[row["open_key"]]
        if entries:
            await session.execute(insert_for(session, CaseEntry), entries)
    if pending:
        raise RuntimeError(f"could not open or join cases for {sorted(pending)}")
    return out
