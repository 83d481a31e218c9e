"""The booking desk: patients' bookings that arrive together are decided together.

At a number release thousands of patients book in the same second. Made one by one, each booking is a dozen
statements and a transaction of its own, and the worker's CPU goes on executing statements rather than on the
rules. Each worker's desk takes the bookings that are waiting when it is free (up to ``booking_batch_size``)
and decides them in one transaction, one statement per step for all of them: the places, the patients the
accounts may act for, the patients' booking-state rows, their active bookings and blocks; then each booking's
answer and rows are drafted (appointment, ``appointment.booked`` event, audit and idempotency records), and
only then are the places locked and taken, and the drafts of the bookings that got one written together. The
pools stay locked for the take, the write and the commit, not while answers are made, so the other workers'
batches wait little for them. When bookings trickle in, a batch is one booking and the desk adds nothing.

The rules are ``booking.book``'s, checked with the same functions in the same order, with the same codes; each
booking gets its own answer:

- At most one booking per account and per patient in a batch (a second waits for the next batch). The
  patients' booking-state rows are bumped in patient order before their active bookings are counted, so the
  per-patient limits count a stable set, as for a single booking.
- The batch's pools are locked in id order (PostgreSQL ``FOR NO KEY UPDATE``; on SQLite the write transaction is
  exclusive) and the places granted from what they hold, in arrival order. Locking patients then pools, each in
  order, keeps two workers' batches from deadlocking. The conditional UPDATE and the ``within_capacity`` CHECK
  stay the backstop.
- A batch that fails as a whole (a unique index, a deadlock, anything unexpected) commits nothing; its bookings
  are then made one by one through ``idempotency.write_once`` and ``booking.book``, as without the desk.

A patient's account booking the ``platform`` pool comes here, and one acting through a partner app on that
app's pool (the JSON API and FHIR ``POST Appointment``, each answered in its own shape: ``Shape``); counters,
doctors, reschedules and waitlist offers book one by one (``accepts``).
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Integer, Uuid, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import clock, idempotency
from carebridge.core.batching import in_list
from carebridge.core.context import in_request, request_id_var
from carebridge.core.errors import Conflict, DomainError, not_found
from carebridge.database.engine import (
    Database,
    Viewed,
    add_rows,
    drafted_rows,
    on_commit,
    row_view,
    rows_together,
)
from carebridge.directory import service as directory
from carebridge.patients import service as patients
from carebridge.scheduling import availability, booking, credit, present
from carebridge.scheduling.models import ACTIVE_STATUSES, Appointment, Schedule, Slot, SlotPool
from carebridge.scheduling.rules import effective_rules

log = structlog.get_logger(__name__)

OPERATION = "appointment.book"
Answer = tuple[int, dict[str, Any]]

_POOLS = SlotPool.__table__.c
_POOL, _SCHEDULE, _SLOT = Viewed(SlotPool), Viewed(Schedule), Viewed(Slot)
_PLACES = (  # Core, read as row views: the batch only reads these rows
    select(*_POOL.columns, *_SCHEDULE.columns, *_SLOT.columns)
    .select_from(SlotPool.__table__)
    .join(Schedule.__table__, Schedule.__table__.c.id == _POOLS.schedule_id)
    .join(Slot.__table__, Slot.__table__.c.id == _POOLS.slot_id)
    .where(in_list(_POOLS.slot_id, "slot_ids"), in_list(_POOLS.channel, "channels"))
)
_PLACE_PARTS = (len(_POOL.columns), len(_POOL.columns) + len(_SCHEDULE.columns))
_SLOTS = select(Slot.id, Slot.hospital_id, select(SlotPool.id).where(SlotPool.slot_id == Slot.id).exists()).where(
    in_list(Slot.id, "slot_ids")
)
_LOCK = (
    select(_POOLS.id, _POOLS.capacity, _POOLS.booked, _POOLS.held)
    .where(in_list(_POOLS.id, "pool_ids"))
    .order_by(_POOLS.id)
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE, the lock the UPDATE that follows takes: other
)  # transactions' new appointments hold key-share locks on their pools (the foreign key), which it does not wait for
_TAKE = (
    update(SlotPool.__table__)
    .where(_POOLS.id == bindparam("pool_id"), _POOLS.booked + _POOLS.held + bindparam("n") <= _POOLS.capacity)
    .values(booked=_POOLS.booked + bindparam("n"))
)
# PostgreSQL: the batch's pools locked in id order (FOR NO KEY UPDATE, as _LOCK), then each given min(free,
# asked) places, in one statement: the pools stay locked for one round trip less. Answers each pool's free places
# before the take. The UPDATE finds the rows the CTE locked (their latest versions), the CHECK stays the backstop.
_LOCK_AND_TAKE = text(
    """
    WITH locked AS (
        SELECT id, capacity - booked - held AS free FROM slot_pools
        WHERE id = ANY(:pool_ids) ORDER BY id FOR NO KEY UPDATE
    ), taken AS (
        UPDATE slot_pools AS p SET booked = p.booked + LEAST(w.n, locked.free)
        FROM locked JOIN unnest(:pool_ids, :ns) AS w(pool_id, n) ON w.pool_id = locked.id
        WHERE p.id = locked.id AND locked.free > 0
    )
    SELECT id, free FROM locked
    """
).bindparams(bindparam("pool_ids", type_=postgresql.ARRAY(Uuid())), bindparam("ns", type_=postgresql.ARRAY(Integer())))
_APPT = Appointment.__table__.c
_GROUPS = (_APPT.hospital_id, _APPT.department_id, _APPT.practitioner_id, _APPT.service_date)
_ACTIVE = (  # Core (table columns), as _PLACES
    select(_APPT.patient_id, *_GROUPS, _APPT.schedule_id, func.count())
    .where(
        in_list(_APPT.patient_id, "patient_ids"),
        _APPT.status.in_(ACTIVE_STATUSES),
    )
    .group_by(_APPT.patient_id, *_GROUPS, _APPT.schedule_id)
)


def accepts(principal: Principal, channel: str) -> bool:
    """Whether this booking goes through the desk: a patient's account on the platform pool, or acting through a
    partner app on that app's pool."""
    if principal.role != Role.patient:
        return False
    if principal.partner_channel is not None:
        return channel == principal.partner_channel
    return channel in booking.PATIENT_CHANNELS


@dataclass(frozen=True, slots=True)
class Booked:
    principal: Principal
    appointment: Appointment
    patient: patients.OwnedPatient
    request_id: str | None = None  # the booking request's, for its audit record


class Shape:
    """How a booking is answered: ``batch`` for bookings decided together (their patients already read),
    ``alone`` for one made on its own in ``session``. The JSON API's answer, by default.

    ``batch`` makes the answers only; ``record`` then adds to the session what showing one of them leaves behind
    (its audit record). The desk makes both before it knows which bookings get a place, and keeps the records of
    those that do."""

    operation = OPERATION

    async def batch(self, session: AsyncSession, booked: list[Booked]) -> list[dict[str, Any]]:
        names = {b.appointment.patient_id: b.patient.name for b in booked}
        answers = await present.appointments_with_names(session, [b.appointment for b in booked], names)
        return [a.model_dump(mode="json") for a in answers]

    def record(self, session: AsyncSession, booked: Booked) -> None:
        """The owner is shown their patient's name: audited as a single booking's answer is."""
        with in_request(booked.request_id):
            patients.audit_owner_read(session, booked.principal, booked.patient.facts, "booking")

    async def alone(self, session: AsyncSession, principal: Principal, appointment: Appointment) -> dict[str, Any]:
        out = await present.appointments_out(session, principal, [appointment], purpose="booking")
        return out[0].model_dump(mode="json")


JSON = Shape()


def slot_full(slot_id: uuid.UUID, channel: str) -> Conflict:
    return Conflict("slot_full", "no places left in this slot", details={"slot_id": str(slot_id), "channel": channel})


@dataclass(slots=True)
class Request:
    principal: Principal
    patient_id: uuid.UUID
    slot_id: uuid.UUID
    channel: str
    key: str | None
    payload_hash: str
    shape: Shape
    answer: asyncio.Future[Answer]
    request_id: str | None = None


@dataclass(slots=True)
class _Going:
    """A request still in the running, and what the batch has learnt about it."""

    index: int
    request: Request
    pool: SlotPool | None = None
    schedule: Schedule | None = None
    slot: Slot | None = None
    patient: patients.OwnedPatient | None = None
    today: Any = None
    rules: Any = None
    answer: dict[str, Any] | None = None  # drafted before the places are taken
    rows: list[Any] | None = None  # the rows the booking writes if it gets its place


class Desk:
    def __init__(self, db: Database, *, batch_size: int) -> None:
        self.db = db
        self.batch_size = batch_size
        self._waiting: list[Request] = []
        self._runner: asyncio.Task[None] | None = None

    async def book(
        self,
        principal: Principal,
        *,
        patient_id: uuid.UUID,
        slot_id: uuid.UUID,
        channel: str,
        key: str | None,
        payload_hash: Callable[[], str],
        shape: Shape = JSON,
        check: Callable[[AsyncSession], Awaitable[None]] | None = None,
    ) -> Answer:
        """Book as ``booking.book`` would, decided with the bookings waiting beside it. Returns (201, answer);
        raises the booking's ``DomainError``. A stored answer to the Idempotency-Key comes first, then ``check``
        (the caller's own reads that may refuse, as with ``idempotency.write_once``). A caller that goes away
        does not undo a booking already on its way (its answer is kept under its Idempotency-Key).
        ``payload_hash`` gives the request's hash for its Idempotency-Key; it is called only when needed (a
        sold-out answer from memory, with a key no worker stored, needs none)."""
        digest: str | None = None
        if (key and idempotency.KNOWN.might_exist(principal.user_id, key)) or check is not None:
            async with self.db.read() as session:
                if key:
                    digest = payload_hash()
                    stored = await idempotency.stored_answer(session, principal.user_id, key, shape.operation, digest)
                    if stored:
                        return stored
                if check is not None:
                    await check(session)
        if availability.known_full(slot_id, channel):  # a sold-out pool costs no database work
            raise slot_full(slot_id, channel)
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        request = Request(
            principal,
            patient_id,
            slot_id,
            channel,
            key,
            digest or payload_hash(),
            shape,
            answer,
            request_id_var.get(),
        )
        if self.batch_size == 0:  # the desk turned off: each booking on its own
            outcome = await self._alone(request)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        self._waiting.append(request)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        # The request's own future: a caller that goes away cancels it, and the desk's task decides the booking all
        # the same (it skips answers already done; the answer stays under the Idempotency-Key).
        try:
            return await answer
        finally:
            # A refusal raised here from the future keeps this frame in its traceback while the future keeps the
            # refusal: without these names the frame does not lead back to the future, and the request's objects
            # are freed at once rather than left to the garbage collector, whose pauses (tens of milliseconds
            # for a surge's cycles) every waiting request would share.
            del answer, request

    async def _run(self) -> None:
        while self._waiting:
            batch: list[Request] = []
            later: list[Request] = []
            accounts: set[uuid.UUID] = set()
            people: set[uuid.UUID] = set()
            for request in self._waiting:
                if (
                    len(batch) < self.batch_size
                    and request.principal.user_id not in accounts
                    and request.patient_id not in people
                ):
                    batch.append(request)
                    accounts.add(request.principal.user_id)
                    people.add(request.patient_id)
                else:
                    later.append(request)
            self._waiting = later
            try:
                await self._settle(batch)
            except Exception as exc:  # noqa: BLE001 - its requests were answered; the desk goes on for the rest
                log.error("booking_desk_error", size=len(batch), error=type(exc).__name__)

    async def _settle(self, batch: list[Request]) -> None:
        try:
            try:
                outcomes: list[Answer | BaseException] = list(await self._decide(batch))
            except Exception as exc:  # noqa: BLE001 - nothing was committed: one by one, as without the desk
                log.warning("booking_batch_failed", size=len(batch), error=type(exc).__name__)
                outcomes = [await self._alone(request) for request in batch]
            else:
                try:
                    await self._answered_meanwhile(batch, outcomes)
                except Exception as exc:  # noqa: BLE001 - the refusals stand as they were decided
                    log.warning("booking_replay_failed", error=type(exc).__name__)
            for request, outcome in zip(batch, outcomes, strict=True):
                if request.answer.done():
                    continue
                if isinstance(outcome, BaseException):
                    request.answer.set_exception(outcome)
                else:
                    request.answer.set_result(outcome)
        finally:  # cancelled (shutting down): no request waits for ever
            for request in batch:
                if not request.answer.done():
                    request.answer.set_exception(RuntimeError("the booking desk stopped"))

    async def _answered_meanwhile(self, batch: list[Request], outcomes: list[Answer | BaseException]) -> None:
        """A refused booking whose Idempotency-Key was answered since it arrived (the same request sent twice at
        once, the other one decided first, here or in another worker) gets that first answer, as with
        ``idempotency.write_once``."""
        refused = [
            i
            for i, (r, outcome) in enumerate(zip(batch, outcomes, strict=True))
            if r.key and isinstance(outcome, DomainError) and idempotency.KNOWN.might_exist(r.principal.user_id, r.key)
        ]
        if not refused:
            return
        async with self.db.read() as session:
            for i in refused:
                r = batch[i]
                try:
                    stored = await idempotency.stored_answer(
                        session,
                        r.principal.user_id,
                        r.key,
                        OPERATION,
                        r.payload_hash,  # type: ignore[arg-type]
                    )
                except DomainError as exc:
                    stored, outcomes[i] = None, exc.with_traceback(None)
                if stored:
                    outcomes[i] = stored

    async def _alone(self, request: Request) -> Answer | BaseException:
        async def write(session: AsyncSession) -> dict[str, Any]:
            appt = await booking.book(
                session,
                principal=request.principal,
                patient_id=request.patient_id,
                slot_id=request.slot_id,
                channel=request.channel,
            )
            return await request.shape.alone(session, request.principal, appt)

        async def check(session: AsyncSession) -> None:
            await booking.check_reach(
                session, request.principal, patient_id=request.patient_id, slot_id=request.slot_id
            )
            if await booking.pool_is_full(session, request.slot_id, request.channel):
                raise slot_full(request.slot_id, request.channel)

        try:
            return await idempotency.write_once(
                self.db,
                user_id=request.principal.user_id,
                key=request.key,
                operation=request.shape.operation,
                payload_hash=request.payload_hash,
                check=check,
                write=write,
                duplicate=Conflict("already_booked", "the patient already has a booking in this session"),
            )
        except Exception as exc:  # noqa: BLE001 - handed to the request that made it
            # a refusal is handed on without the frames it was raised in (see book); an error keeps its traceback
            return exc.with_traceback(None) if isinstance(exc, DomainError) else exc

    async def _decide(self, batch: list[Request]) -> list[Answer | BaseException]:
        outcomes: list[Answer | BaseException | None] = [None] * len(batch)
        going = [_Going(i, r) for i, r in enumerate(batch)]

        def keep(check: Any) -> None:
            """Run ``check(item)`` for each request still going; a DomainError is that request's answer."""
            nonlocal going
            still = []
            for item in going:
                try:
                    check(item)
                except DomainError as exc:
                    outcomes[item.index] = exc.with_traceback(None)
                else:
                    still.append(item)
            going = still

        now = clock.now()
        async with self.db.transaction() as session:
            places, hospitals = await self._places(session, {r.slot_id for r in batch}, {r.channel for r in batch})
            owned = await patients.owned_patients(session, [(r.principal.user_id, r.patient_id) for r in batch])

            def place_checks(item: _Going) -> None:
                r = item.request
                found = places.get(r.slot_id)
                reach = r.principal.reach
                if reach is not None:  # through a partner app: its patients, its granting hospitals
                    reach.require_patient(r.patient_id)
                    if r.slot_id not in hospitals:
                        raise not_found("slot", r.slot_id)
                    reach.require_hospital(hospitals[r.slot_id])
                place = found.get(r.channel) if found else None
                if place is not None and place[0].capacity - place[0].booked - place[0].held <= 0:
                    availability.mark_full(r.slot_id, r.channel)  # as the pre-check of a single booking
                    raise slot_full(r.slot_id, r.channel)
                item.patient = owned.get((r.principal.user_id, r.patient_id))
                if item.patient is None:
                    raise not_found("patient", r.patient_id)
                if found is None:
                    raise not_found("slot", r.slot_id)
                if place is None:
                    raise Conflict(
                        "slot_full",
                        f"this slot offers no places on the {r.channel} channel",
                        details={"slot_id": str(r.slot_id), "channel": r.channel},
                    )
                item.pool, item.schedule, item.slot = place
                booking.authorise_channel(r.principal, r.channel, item.schedule)

            keep(place_checks)
            settings: dict[tuple[uuid.UUID, uuid.UUID], tuple[str, Any, Any]] = {}  # zones, rules, local dates
            for item in list(going):
                try:
                    await self._window(session, item, now, settings)
                except DomainError as exc:
                    outcomes[item.index] = exc.with_traceback(None)
                    going.remove(item)
            if going:
                await self._limits(session, going, outcomes)
                going = [item for item in going if outcomes[item.index] is None]
            if going:  # everything but the places is made before they are locked: the locks are held briefly
                await self._draft(session, going, now)
                going = await self._take(session, going, outcomes)
            if going:
                async with rows_together(session):
                    for item in going:
                        add_rows(session, item.rows)  # type: ignore[arg-type]
                        outcomes[item.index] = (201, item.answer)
                        if item.request.key:
                            idempotency.KNOWN.stored(item.request.principal.user_id, item.request.key)
        return [o if o is not None else RuntimeError("booking left undecided") for o in outcomes]

    @staticmethod
    async def _places(
        session: AsyncSession, slot_ids: set[uuid.UUID], channels: set[str]
    ) -> tuple[dict[uuid.UUID, dict[str, tuple[SlotPool, Schedule, Slot]]], dict[uuid.UUID, uuid.UUID]]:
        """The asked-for pools of the slots, by slot and channel (a slot with pools on other channels only maps to
        an empty dict; one without pools, or unknown, is missing), and each known slot's hospital."""
        asked = {"slot_ids": list(slot_ids), "channels": list(channels)}
        rows = (await session.execute(_PLACES, asked)).all()
        places: dict[uuid.UUID, dict[str, tuple[SlotPool, Schedule, Slot]]] = {}
        hospitals: dict[uuid.UUID, uuid.UUID] = {}
        a, b = _PLACE_PARTS
        for row in rows:
            pool, schedule, slot = _POOL.view(row[:a]), _SCHEDULE.view(row[a:b]), _SLOT.view(row[b:])
            places.setdefault(pool.slot_id, {})[pool.channel] = (pool, schedule, slot)
            hospitals[slot.id] = slot.hospital_id
        if missing := [i for i in slot_ids if i not in places]:
            for slot_id, hospital_id, has_pools in (await session.execute(_SLOTS, {"slot_ids": missing})).all():
                hospitals[slot_id] = hospital_id
                if has_pools:
                    places[slot_id] = {}
        return places, hospitals

    @staticmethod
    async def _window(
        session: AsyncSession,
        item: _Going,
        now: datetime,
        settings: dict[tuple[uuid.UUID, uuid.UUID], tuple[str, Any, Any]],
    ) -> None:
        """The booking window, by the hospital's zone and the department's rules (each read once per batch)."""
        assert item.schedule is not None and item.pool is not None
        hospital_id, department_id = item.schedule.hospital_id, item.schedule.department_id
        found = settings.get((hospital_id, department_id))
        if found is None:
            zone = await directory.timezone_of(session, hospital_id)
            rules = await effective_rules(session, hospital_id=hospital_id, department_id=department_id)
            found = settings[(hospital_id, department_id)] = (zone, rules, clock.to_local(now, zone).date())
        zone, item.rules, item.today = found
        booking.check_window(item.schedule, item.pool, item.rules, zone, now)

    @staticmethod
    async def _limits(session: AsyncSession, going: list[_Going], outcomes: list[Any]) -> None:
        """The patients' rows bumped in order, then their blocks and active bookings, each in one statement."""
        patient_ids = sorted({item.request.patient_id for item in going})
        await booking.serialise_patients(session, patient_ids)
        active = (await session.execute(_ACTIVE, {"patient_ids": patient_ids})).all()
        by_patient: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for row in active:
            by_patient[row[0]].append(row)
        blocked = await credit.maybe_blocked(
            session,
            [(item.schedule.hospital_id, item.request.patient_id) for item in going],  # type: ignore[union-attr]
            since=min(item.today for item in going),
        )
        for item in going:
            schedule, patient_id = item.schedule, item.request.patient_id
            assert schedule is not None
            try:
                if (schedule.hospital_id, patient_id) in blocked:
                    await credit.ensure_not_blocked(
                        session, hospital_id=schedule.hospital_id, patient_id=patient_id, today=item.today
                    )
                total = in_department = with_doctor_that_day = in_session = 0
                for _, hospital_id, department_id, doctor, service_date, schedule_id, n in by_patient[patient_id]:
                    if hospital_id != schedule.hospital_id:
                        continue
                    total += n
                    in_department += n if department_id == schedule.department_id else 0
                    same_day = doctor == schedule.practitioner_id and service_date == schedule.service_date
                    with_doctor_that_day += n if same_day else 0
                    in_session += n if schedule_id == schedule.id else 0
                booking.check_counts(
                    item.rules,
                    total=total,
                    in_department=in_department,
                    with_doctor_that_day=with_doctor_that_day,
                    in_session=in_session,
                )
            except DomainError as exc:
                outcomes[item.index] = exc.with_traceback(None)

    @staticmethod
    async def _take(session: AsyncSession, going: list[_Going], outcomes: list[Any]) -> list[_Going]:
        """Lock the pools in id order, grant their free places in arrival order, take them. On PostgreSQL one
        statement does the three (``_LOCK_AND_TAKE``: a pool gives min(free, asked), as granted here); elsewhere
        the lock, then the takes."""
        wanted: dict[uuid.UUID, list[_Going]] = defaultdict(list)
        for item in going:
            wanted[item.pool.id].append(item)  # type: ignore[union-attr]
        pool_ids = sorted(wanted)
        postgres = session.bind.dialect.name == "postgresql"
        if postgres:
            asked = {"pool_ids": pool_ids, "ns": [len(wanted[pool_id]) for pool_id in pool_ids]}
            free_of = {pool_id: free for pool_id, free in (await session.execute(_LOCK_AND_TAKE, asked)).all()}
        else:
            locked = (await session.execute(_LOCK, {"pool_ids": pool_ids})).all()
            free_of = {pool_id: capacity - booked - held for pool_id, capacity, booked, held in locked}
        takes, granted = [], []
        for pool_id in pool_ids:
            items = wanted[pool_id]
            free = max(0, free_of.get(pool_id, 0))
            for item in items[free:]:
                outcomes[item.index] = slot_full(item.request.slot_id, item.request.channel)
            if free <= len(items):  # none left once this commits (or already none)
                first = items[0].request
                if free == 0:
                    availability.mark_full(first.slot_id, first.channel)
                else:
                    on_commit(session, lambda s=first.slot_id, c=first.channel: availability.mark_full(s, c))
            if free:
                takes.append({"pool_id": pool_id, "n": min(free, len(items))})
                granted.extend(items[:free])
        if takes and not postgres:
            await session.execute(_TAKE, takes)
        return sorted(granted, key=lambda item: item.index)

    @staticmethod
    async def _draft(session: AsyncSession, going: list[_Going], now: datetime) -> None:
        """Each booking's answer and rows (appointment, ``appointment.booked`` event, audit and idempotency
        records), as if it gets its place."""
        by_shape: dict[int, list[tuple[_Going, Booked]]] = defaultdict(list)
        for item in going:
            r, owned = item.request, item.patient
            assert owned is not None and item.pool and item.schedule and item.slot
            values = booking.appointment_values(r.principal, owned.facts, item.pool, item.schedule, item.slot, now=now)
            booked = Booked(r.principal, row_view(Appointment, values), owned, r.request_id)
            by_shape[id(r.shape)].append((item, booked))
            item.rows = [(Appointment, values)]
        for group in by_shape.values():
            shape = group[0][0].request.shape
            answers = await shape.batch(session, [booked for _, booked in group])
            for (item, booked), body in zip(group, answers, strict=True):
                r = item.request
                with drafted_rows(session) as rows:
                    booking.emit(session, "appointment.booked", booked.appointment, r.principal.actor)
                    shape.record(session, booked)
                    if r.key:  # added to idempotency.KNOWN once the place is taken
                        idempotency.remember(
                            session,
                            user_id=r.principal.user_id,
                            key=r.key,
                            operation=shape.operation,
                            payload_hash=r.payload_hash,
                            status_code=201,
                            response=body,
                            known=False,
                        )
                item.rows.extend(rows)  # type: ignore[union-attr]
                item.answer = body


_DESKS: weakref.WeakKeyDictionary[Database, Desk] = weakref.WeakKeyDictionary()


def desk_for(db: Database) -> Desk:
    """The worker's desk for this database."""
    desk = _DESKS.get(db)
    if desk is None:
        desk = _DESKS[db] = Desk(db, batch_size=db.settings.booking_batch_size)
    return desk
