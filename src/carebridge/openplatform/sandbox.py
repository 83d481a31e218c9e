"""Every approved partner app gets a sandbox hospital to develop against (docs/openplatform.md#sandbox).

Made in the transaction that first approves the app, from the demo generator's people and names: one
secondary hospital in the sandbox region (990000, under no province, so no regulator's dashboards count it),
four departments with two practitioners each, schedules every day for the next two weeks with a pool for the
app's own channel, realistic booking rules, the demo formulary, and two test patient accounts (the first with a
child) whose passwords the developer sees in the portal. The app holds a grant to it from the start. Sandbox
hospitals stay out of public searches and of the supervision registry; the sweep keeps their schedules two
weeks ahead. An app approved again after a suspension keeps its sandbox.
"""

from __future__ import annotations

import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth import service as auth
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, clock, crypto
from carebridge.database.engine import Database
from carebridge.demo import generator, names
from carebridge.directory.models import (
    Campus,
    Department,
    FilingKind,
    Hospital,
    HospitalLevel,
    Practitioner,
    PractitionerFiling,
    PractitionerTitle,
    Region,
)
from carebridge.openplatform.models import HospitalGrant, PartnerApp, Sandbox, SandboxPatient
from carebridge.patients.models import Patient, PatientLink, Relation
from carebridge.scheduling import booking, credit
from carebridge.scheduling.models import BookingRule, NoShowPolicy, ScheduleTemplate, Session, VisitType

REGIONS = (("990000", "开发者沙箱", None), ("990100", "沙箱测试区", "990000"))
REGION = "990100"
LEVEL = "secondary"
DAYS_AHEAD = 14
DEPARTMENTS = 4
PRACTITIONERS_PER_DEPARTMENT = 2
SESSIONS = {Session.morning: (time(8, 0), time(12, 0)), Session.afternoon: (time(13, 30), time(17, 0))}
# places per half hour: the app's own pool holds most, so its bookings never wait on the platform's patients
POOLS = {"platform": 1, "onsite": 1}
APP_POOL = 4


@dataclass(frozen=True)
class TestPatient:
    username: str
    password: str
    user_id: uuid.UUID
    patients: list[dict[str, Any]]  # {"id", "name", "relation"}


@dataclass(frozen=True)
class SandboxView:
    sandbox: Sandbox
    hospital: Hospital
    departments: list[Department]
    practitioners: list[Practitioner]
    test_patients: list[TestPatient]


async def ensure(session: AsyncSession, *, principal: Principal, app: PartnerApp) -> tuple[Sandbox, bool]:
    """The app's sandbox, and whether it was made now (the first approval); kept afterwards."""
    existing = await session.scalar(select(Sandbox).where(Sandbox.app_id == app.id))
    if existing is not None:
        return existing, False
    today = clock.local_today("Asia/Shanghai")
    rng = random.Random(f"carebridge-sandbox:{app.id}")
    await _regions(session)
    hospital = Hospital(
        region_code=REGION,
        name=f"{app.name[:60]}·沙箱医院",
        short_name="沙箱医院",
        level=HospitalLevel.secondary,
        licence_number=f"SANDBOX-{app.id.hex}",
        licence_expires_on=today + timedelta(days=5 * 365),
        licence_verified_on=today,
        is_internet_hospital=True,
        address="开发者沙箱（测试数据，非真实医院）",
        sandbox_app_id=app.id,
    )
    session.add(hospital)
    await session.flush()
    campus = Campus(hospital_id=hospital.id, name="本部", address=hospital.address)
    session.add(campus)
    visit_types = {
        code: VisitType(hospital_id=hospital.id, code=code, name=label, fee_fen=names.visit_fee(rng, *fees[LEVEL]))
        for code, label, fees in names.VISIT_TYPES
        if LEVEL in fees
    }
    session.add_all(visit_types.values())
    session.add(
        BookingRule(
            hospital_id=hospital.id,
            department_id=None,
            window_days=DAYS_AHEAD,
            opens_at=None,
            same_day_cutoff=None,
            cancel_deadline_minutes=60,
            max_per_practitioner_per_day=1,
            max_per_department=3,
            max_total=10,
            auto_release_hours=None,
        )
    )
    session.add(NoShowPolicy(hospital_id=hospital.id, enabled=False))
    await session.flush()
    for spec in names.department_plan(rng, "general", LEVEL)[:DEPARTMENTS]:
        department = Department(
            hospital_id=hospital.id,
            campus_id=campus.id,
            name=spec.name,
            standard_code=spec.standard_code,
            description=f"{spec.name}：{'；'.join(spec.specialties)}",
        )
        session.add(department)
        await session.flush()
        for n in range(PRACTITIONERS_PER_DEPARTMENT):
            await _practitioner(session, rng, today, hospital, department, spec, visit_types, app, expert=n == 0)
    await generator.load_formulary(session, [hospital.id])
    sandbox = Sandbox(app_id=app.id, hospital_id=hospital.id, schedules_until=today - timedelta(days=1))
    session.add(sandbox)
    await session.flush()
    await _test_patients(session, rng, today, sandbox)
    await roll_forward(session, sandbox, today)
    session.add(HospitalGrant(app_id=app.id, hospital_id=hospital.id, granted_by=principal.user_id))
    await session.flush()
    return sandbox, True


async def _regions(session: AsyncSession) -> None:
    for code, name, parent in REGIONS:
        if await session.get(Region, code) is None:
            session.add(Region(code=code, name=name, parent_code=parent))
            await session.flush()


async def _practitioner(
    session: AsyncSession,
    rng: random.Random,
    today: date,
    hospital: Hospital,
    department: Department,
    spec: names.DepartmentSpec,
    visit_types: dict[str, VisitType],
    app: PartnerApp,
    *,
    expert: bool,
) -> None:
    title = "associate_chief_physician" if expert else "attending_physician"
    while True:  # a licence number no other sandbox's practitioner holds
        person = names.make_practitioner(rng, spec, LEVEL, REGION, rng.randrange(10_000_000), today, title=title)
        taken = await session.scalar(
            select(Practitioner.id).where(Practitioner.licence_number == person.licence_number)
        )
        if taken is None:
            break
    practitioner = Practitioner(
        name=person.name,
        sex=person.sex,
        title=PractitionerTitle(person.title),
        specialty=person.specialty,
        licence_number=person.licence_number,
        practice_started_on=person.practice_started_on,
        introduction=person.introduction,
    )
    session.add(practitioner)
    await session.flush()
    session.add(
        PractitionerFiling(
            practitioner_id=practitioner.id,
            hospital_id=hospital.id,
            department_id=department.id,
            kind=FilingKind.main,
            valid_from=today - timedelta(days=365),
            valid_to=None,
        )
    )
    visit_type = visit_types["expert" if expert else "ordinary"]
    # every day of the week, the experts in the morning and the others in the afternoon: a developer always
    # finds free slots today or tomorrow
    sess = Session.morning if expert else Session.afternoon
    start, end = SESSIONS[sess]
    for weekday in range(7):
        session.add(
            ScheduleTemplate(
                hospital_id=hospital.id,
                department_id=department.id,
                practitioner_id=practitioner.id,
                visit_type_id=visit_type.id,
                weekday=weekday,
                session=sess,
                start_time=start,
                end_time=end,
                slot_minutes=30,
                pools={**POOLS, app.channel: APP_POOL},
            )
        )
    await session.flush()


async def _test_patients(session: AsyncSession, rng: random.Random, today: date, sandbox: Sandbox) -> None:
    """Two accounts of fictitious people; the first also manages a child (the consent page's patient choice)."""
    tag = sandbox.app_id.hex[-10:]  # the random end of the id (its start is a timestamp)
    for n in (1, 2):
        me = await _person(session, rng, today, min_age=25, max_age=50)
        family = [(Relation.self, me)]
        if n == 1:
            family.append((Relation.child, await _person(session, rng, today, min_age=4, max_age=12)))
        password = f"Sbx-{secrets.token_urlsafe(9)}"
        user = await auth.create_user(
            session, username=f"sbx{tag}p{n}", password=password, role=Role.patient, display_name=me.name
        )
        for relation, person in family:
            row = generator.patient_row(person)
            session.add(Patient(**row))
            await session.flush()
            session.add(PatientLink(user_id=user.id, patient_id=row["id"], relation=relation))
        session.add(SandboxPatient(sandbox_id=sandbox.id, user_id=user.id, username=user.username, password=password))
    await session.flush()


async def _person(
    session: AsyncSession, rng: random.Random, today: date, *, min_age: int, max_age: int
) -> names.PatientSpec:
    """A fictitious person whose ID number no patient on the platform has (patients are unique by it)."""
    cipher = crypto.cipher()
    while True:
        person = names.make_patient(rng, today, set(), min_age=min_age, max_age=max_age)
        index = cipher.blind_index("id_number", person.id_number)
        if await session.scalar(select(Patient.id).where(Patient.id_number_index == index)) is None:
            return person


async def roll_forward(session: AsyncSession, sandbox: Sandbox, today: date) -> int:
    """Schedules up to ``DAYS_AHEAD`` days from today (what was generated before is kept); how many were made."""
    from carebridge.scheduling.templates import generate_schedules

    last = today + timedelta(days=DAYS_AHEAD - 1)
    start = max(today, sandbox.schedules_until + timedelta(days=1))
    if start > last:
        return 0
    made = await generate_schedules(session, hospital_id=sandbox.hospital_id, start=start, days=(last - start).days + 1)
    sandbox.schedules_until = last
    await session.flush()
    return made


async def roll_step(db: Database) -> dict[str, int]:
    """The sweep's step: sandboxes whose schedules end within two weeks get the missing days."""
    today = clock.local_today("Asia/Shanghai")
    horizon = today + timedelta(days=DAYS_AHEAD - 1)
    async with db.read() as session:
        due = list((await session.scalars(select(Sandbox.id).where(Sandbox.schedules_until < horizon))).all())
    made = 0
    for sandbox_id in due:
        async with db.transaction() as session:
            sandbox = await session.get(Sandbox, sandbox_id, with_for_update=True)
            if sandbox is not None:
                made += await roll_forward(session, sandbox, today)
    return {"sandbox_schedules_made": made}


RESET_REASON = "沙箱重置 sandbox reset"


async def reset(session: AsyncSession, *, principal: Principal, app: PartnerApp) -> dict[str, int] | None:
    """Give the developer a clean sandbox again: every booked appointment there cancelled (the places back in
    the app's pool, an ``appointment.cancelled`` event each, so the app's webhooks see them) and every no-show
    block lifted. Sessions, people and history stay. None before approval (no sandbox)."""
    sandbox = await session.scalar(select(Sandbox).where(Sandbox.app_id == app.id))
    if sandbox is None:
        return None
    cancelled = await booking.cancel_all_booked(
        session, hospital_id=sandbox.hospital_id, reason=RESET_REASON, actor=principal.actor
    )
    lifted = await credit.lift_all(
        session,
        hospital_id=sandbox.hospital_id,
        reason=RESET_REASON,
        actor=principal.actor,
        actor_user_id=principal.user_id,
    )
    counts = {"appointments_cancelled": cancelled, "blocks_lifted": lifted}
    audit.record(
        session,
        action="partner_app.sandbox_reset",
        subject_type="partner_app",
        subject_id=app.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=sandbox.hospital_id,
        detail=counts,
    )
    return counts


async def view(session: AsyncSession, *, principal: Principal, app: PartnerApp) -> SandboxView | None:
    """The sandbox as its developer sees it, test passwords included (each read audited); None before approval."""
    sandbox = await session.scalar(select(Sandbox).where(Sandbox.app_id == app.id))
    if sandbox is None:
        return None
    hospital = await session.get(Hospital, sandbox.hospital_id)
    assert hospital is not None
    departments = list(
        (
            await session.scalars(
                select(Department).where(Department.hospital_id == hospital.id).order_by(Department.standard_code)
            )
        ).all()
    )
    practitioners = list(
        (
            await session.scalars(
                select(Practitioner)
                .join(PractitionerFiling, PractitionerFiling.practitioner_id == Practitioner.id)
                .where(PractitionerFiling.hospital_id == hospital.id)
                .order_by(Practitioner.name)
            )
        ).all()
    )
    accounts = (
        await session.scalars(
            select(SandboxPatient).where(SandboxPatient.sandbox_id == sandbox.id).order_by(SandboxPatient.username)
        )
    ).all()
    people = await session.execute(
        select(PatientLink.user_id, PatientLink.relation, Patient.id, Patient.name)
        .join(Patient, Patient.id == PatientLink.patient_id)
        .where(PatientLink.user_id.in_([a.user_id for a in accounts]))
    )
    by_user: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for user_id, relation, patient_id, name in people:
        by_user.setdefault(user_id, []).append({"id": patient_id, "name": name, "relation": str(relation)})
    audit.record(
        session,
        action="partner_app.sandbox_read",
        subject_type="partner_app",
        subject_id=app.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=hospital.id,
        detail={"test_accounts": str(len(accounts))},
    )
    return SandboxView(
        sandbox,
        hospital,
        departments,
        practitioners,
        [
            TestPatient(a.username, a.password, a.user_id, sorted(by_user.get(a.user_id, []), key=_self_first))
            for a in accounts
        ],
    )


def _self_first(person: dict[str, Any]) -> bool:
    return person["relation"] != "self"
