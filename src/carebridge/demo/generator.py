"""Deterministic demo data: ``carebridge demo-data`` and the benchmarks' fixtures.

One seed gives the same hospitals, practitioners, patients, ID and licence numbers on every run (UUIDs,
password hashes and ciphertexts differ; dates are relative to today). All directory, account and patient rows
are written in one transaction, so a failed run leaves nothing behind and a rerun starts clean; schedules are
generated afterwards, hospital by hospital, by the scheduling domain's own ``generate_schedules``.
"""

from __future__ import annotations

import random
import time as _time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role, User
from carebridge.config import Settings
from carebridge.consultations.models import OfflineDiagnosis
from carebridge.core import clock, crypto
from carebridge.core.ids import new_id
from carebridge.database.base import Base
from carebridge.database.engine import Database
from carebridge.demo import names
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
from carebridge.patients.models import Patient, PatientLink, Relation, Sex
from carebridge.scheduling.models import (
    BookingRule,
    NoShowPolicy,
    Schedule,
    ScheduleTemplate,
    Session,
    VisitType,
)

DEMO_PASSWORD = "Demo-2026!"
FLUSH_EVERY = 5000
SCHEDULE_HOSPITALS_PER_TRANSACTION = 50
MAX_BENCH_PATIENTS = 50_000
SESSION_TIMES = {"morning": (time(8, 0), time(12, 0)), "afternoon": (time(13, 30), time(17, 0))}


@dataclass
class DemoLogin:
    username: str
    role: str
    hospital: str | None = None
    note: str = ""
    password: str = DEMO_PASSWORD


@dataclass
class DemoSummary:
    regions: int = 0
    hospitals: int = 0
    departments: int = 0
    practitioners: int = 0
    patients: int = 0
    users: int = 0
    schedules: int = 0
    formulary_drugs: int = 0
    logins: list[DemoLogin] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    already_present: bool = False
    seed: int | None = None
    seconds: float = 0.0
    data_seconds: float = 0.0  # everything but schedules

    def describe(self) -> str:
        head = (
            "Demo data already present; nothing written."
            if self.already_present
            else (
                f"Demo data loaded (seed {self.seed}) in {self.seconds:.1f} s ({self.data_seconds:.1f} s "
                f"directory and people, {self.seconds - self.data_seconds:.1f} s schedules)."
            )
        )
        lines = [head, ""]
        for label in (
            "regions",
            "hospitals",
            "departments",
            "practitioners",
            "patients",
            "users",
            "schedules",
            "formulary_drugs",
        ):
            lines.append(f"  {label:<14}{getattr(self, label):>10,}")
        lines += [f"  note: {note}" for note in self.notes]
        if self.logins:
            lines += ["", "Demo logins:", f"  {'username':<12}{'password':<12}{'role':<16}hospital / note"]
            for login in self.logins:
                where = " · ".join(part for part in (login.hospital, login.note) if part) or "-"
                lines.append(f"  {login.username:<12}{login.password:<12}{login.role:<16}{where}")
        return "\n".join(lines)


async def load_demo_data(
    settings: Settings, *, hospitals: int = 5, seed: int = 7, days: int = 14, today: date | None = None
) -> DemoSummary:
    """Load the demo data set into the (migrated) database of ``settings``.

    Does nothing, and says so, when a user named ``admin`` already exists. ``today`` (default: the local
    date) anchors licence expiries, practice start dates, birth dates and the schedule window.
    """
    from carebridge.app import configure_crypto

    if hospitals < 1:
        raise ValueError("at least one hospital")
    configure_crypto(settings)
    started = _time.perf_counter()
    today = today or clock.local_today(settings.default_timezone)
    db = Database(settings)
    try:
        async with db.transaction() as session:
            if await session.scalar(select(User.id).where(User.username == "admin")) is not None:
                summary = await _existing_summary(session)
                summary.already_present = True
                return summary
            builder = _Builder(session, seed=seed, today=today)
            await builder.build(hospitals)
            builder.summary.formulary_drugs = await load_formulary(session, builder.hospital_ids)
        summary = builder.summary
        summary.seed = seed
        summary.data_seconds = _time.perf_counter() - started
        summary.schedules = await _generate_schedules(db, builder.hospital_ids, today, days, summary.notes)
    finally:
        await db.dispose()
    summary.seconds = _time.perf_counter() - started
    return summary


async def load_formulary(session: AsyncSession, hospital_ids: list[uuid.UUID]) -> int:
    """Every demo hospital gets the demo formulary (demo/formulary.csv), through the import's own checks."""
    from importlib import resources

    from carebridge.prescribing import formulary, knowledge

    text = resources.files("carebridge.demo").joinpath("formulary.csv").read_text("utf-8")
    rows, report = formulary.parse_csv(text, knowledge.current())
    if report.errors:
        raise ValueError(f"demo formulary: {report.errors[:3]}")
    for hospital_id in hospital_ids:
        formulary.add_rows(session, hospital_id, rows)
    await session.flush()
    return len(rows) * len(hospital_ids)


# ------------------------------------------------------------------------------------------------ building


@dataclass
class _Dept:
    id: uuid.UUID
    spec: names.DepartmentSpec


@dataclass
class _Doc:
    id: uuid.UUID
    spec: names.PractitionerSpec
    hospital_index: int
    department: _Dept
    sessions: list[tuple[int, str]]


@dataclass
class _Hosp:
    id: uuid.UUID
    spec: names.HospitalSpec
    departments: list[_Dept]
    visit_types: dict[str, uuid.UUID]
    doctors: list[_Doc] = field(default_factory=list)


class _Builder:
    """Adds rows in parent-before-child order and flushes in chunks; keeps only ids, not ORM objects."""

    def __init__(self, session: AsyncSession, *, seed: int, today: date) -> None:
        self.session = session
        self.seed = seed
        self.today = today
        self.pending: dict[Table, tuple[type[Base], list[dict[str, Any]]]] = {}
        self.pending_count = 0
        self.summary = DemoSummary()
        self.hospitals: list[_Hosp] = []
        self.hospital_ids: list[uuid.UUID] = []
        self.licence_serial = 0

    def rng(self, stream: str) -> random.Random:
        # One independent stream per part, so adding patients never changes a hospital's name.
        return random.Random(f"carebridge-demo:{self.seed}:{stream}")

    async def add(self, model: type[Base], **row: Any) -> None:
        self.pending.setdefault(model.__table__, (model, []))[1].append(row)
        self.pending_count += 1
        if self.pending_count >= FLUSH_EVERY:
            await self.flush()

    async def flush(self) -> None:
        """Insert what is pending, table by table in foreign-key order (parents first).

        ORM bulk INSERTs (one executemany per table) rather than ``add_all``: the same models, types and
        defaults (encryption, UTC datetimes, ids), without the unit of work's per-object bookkeeping, which
        made 1,500 hospitals take twice as long.
        """
        for table in Base.metadata.sorted_tables:
            model, rows = self.pending.pop(table, (None, []))
            if rows:
                await self.session.execute(insert(model), rows)
        self.pending_count = 0

    async def build(self, hospital_count: int) -> None:
        await self._regions()
        specs = names.make_hospitals(self.rng("hospitals"), hospital_count, self.today)
        for index, spec in enumerate(specs):
            await self._hospital(index, spec)
        await self._multi_site()
        await self._accounts_and_patients(hospital_count)
        await self.flush()

    async def _regions(self) -> None:
        for region in names.regions():
            await self.add(Region, code=region.code, name=region.name, parent_code=region.parent_code)
            self.summary.regions += 1

    async def _hospital(self, index: int, spec: names.HospitalSpec) -> None:
        rng = self.rng(f"hospital:{index}")
        hospital_id = new_id()
        await self.add(
            Hospital,
            id=hospital_id,
            region_code=spec.district.code,
            name=spec.name,
            short_name=spec.short_name,
            level=HospitalLevel(spec.level),
            licence_number=spec.licence_number,
            licence_expires_on=spec.licence_expires_on,
            # Verified by the regulator within the year (R18), the last one of every ten about to fall due.
            licence_verified_on=self.today
            - timedelta(days=355 if index % 10 == 9 else self.rng(f"licence:{index}").randint(20, 300)),
            is_internet_hospital=spec.is_internet_hospital,
            address=spec.address,
            phone=spec.phone,
        )
        self.summary.hospitals += 1
        campuses: list[uuid.UUID] = []
        for name, district in names.campus_names(rng, spec):
            campus_id = new_id()
            campuses.append(campus_id)
            campus_address = spec.address if district == spec.district else names.address(rng, district)
            await self.add(Campus, id=campus_id, hospital_id=hospital_id, name=name, address=campus_address)

        departments: list[_Dept] = []
        for position, dept in enumerate(names.department_plan(rng, spec.kind, spec.level)):
            # A second campus hosts a few of the departments (the later, optional ones).
            on_second = len(campuses) > 1 and position >= 4 and rng.random() < 0.4
            dept_id = new_id()
            departments.append(_Dept(dept_id, dept))
            await self.add(
                Department,
                id=dept_id,
                hospital_id=hospital_id,
                campus_id=campuses[1 if on_second else 0],
                name=dept.name,
                standard_code=dept.standard_code,
                description=f"{dept.name}：{'；'.join(dept.specialties)}",
            )
            self.summary.departments += 1

        visit_types: dict[str, uuid.UUID] = {}
        for code, label, fees in names.VISIT_TYPES:
            if spec.level in fees:
                visit_types[code] = new_id()
                fee = names.visit_fee(rng, *fees[spec.level])
                await self.add(
                    VisitType, id=visit_types[code], hospital_id=hospital_id, code=code, name=label, fee_fen=fee
                )
        await self.add(
            BookingRule,
            hospital_id=hospital_id,
            department_id=None,
            window_days=7,
            opens_at=time(7, 0),
            same_day_cutoff=time(17, 0) if rng.random() < 0.5 else None,
            cancel_deadline_minutes=120,
            max_per_practitioner_per_day=1,
            max_per_department=2,
            max_total=5,
            auto_release_hours=24,
        )
        await self.add(NoShowPolicy, hospital_id=hospital_id, enabled=True, threshold=3, window_days=90, block_days=90)
        hosp = _Hosp(hospital_id, spec, departments, visit_types)
        self.hospitals.append(hosp)
        self.hospital_ids.append(hospital_id)

        for d_index, dept in enumerate(departments):
            count = rng.randint(3, 8)
            for p_index in range(count):
                # The first hospital's first department always has one practitioner under three years of
                # independent practice, so the demo can show rule R3 (no online consultations for them).
                junior = True if (index == 0 and d_index == 0 and p_index == count - 1) else None
                title = "resident_physician" if junior else None
                await self._practitioner(rng, hosp, index, dept, title=title, junior=junior)

    async def _practitioner(
        self,
        rng: random.Random,
        hosp: _Hosp,
        index: int,
        dept: _Dept,
        *,
        title: str | None,
        junior: bool | None,
    ) -> None:
        self.licence_serial += 1
        spec = names.make_practitioner(
            rng,
            dept.spec,
            hosp.spec.level,
            hosp.spec.district.code,
            self.licence_serial,
            self.today,
            title=title,
            junior=junior,
        )
        doc_id = new_id()
        await self.add(
            Practitioner,
            id=doc_id,
            name=spec.name,
            sex=spec.sex,
            title=PractitionerTitle(spec.title),
            specialty=spec.specialty,
            licence_number=spec.licence_number,
            practice_started_on=spec.practice_started_on,
            introduction=spec.introduction,
        )
        self.summary.practitioners += 1
        years_here = rng.randint(1, 8)
        valid_from = max(spec.practice_started_on, _years_ago(self.today, years_here))
        await self.add(
            PractitionerFiling,
            practitioner_id=doc_id,
            hospital_id=hosp.id,
            department_id=dept.id,
            kind=FilingKind.main,
            valid_from=valid_from,
            valid_to=None,
        )
        sessions = names.weekly_sessions(rng, rng.randint(2, 4))
        doc = _Doc(doc_id, spec, index, dept, sessions)
        hosp.doctors.append(doc)
        for weekday, session in sessions:
            await self._template(rng, hosp, doc, dept, weekday, session)

    async def _template(
        self, rng: random.Random, hosp: _Hosp, doc: _Doc, dept: _Dept, weekday: int, session: str
    ) -> None:
        visit = _visit_type_for(rng, doc.spec.title, hosp.visit_types)
        start, end = SESSION_TIMES[session]
        await self.add(
            ScheduleTemplate,
            hospital_id=hosp.id,
            department_id=dept.id,
            practitioner_id=doc.id,
            visit_type_id=hosp.visit_types[visit],
            weekday=weekday,
            session=Session(session),
            start_time=start,
            end_time=end,
            slot_minutes=30,
            pools=names.slot_pools(rng, visit),
        )

    async def _multi_site(self) -> None:
        """About 3% of the experienced practitioners also practise at a second hospital of the same city."""
        if len(self.hospitals) < 2:
            return
        rng = self.rng("multi-site")
        by_city: dict[str, list[_Hosp]] = {}
        for hosp in self.hospitals:
            by_city.setdefault(hosp.spec.district.city_code, []).append(hosp)
        chosen: list[tuple[_Doc, _Hosp]] = []
        # The demo's doctor2 (see _accounts) practises at hospital 2 as well.
        first = _seniors(self.hospitals[0])
        if len(first) > 1:
            chosen.append((first[1], self.hospitals[1]))
        for hosp in self.hospitals:
            peers = [h for h in by_city[hosp.spec.district.city_code] if h is not hosp] or [
                h for h in self.hospitals if h is not hosp
            ]
            for doc in _seniors(hosp):
                if rng.random() < 0.03 and not (chosen and doc is chosen[0][0]):
                    chosen.append((doc, rng.choice(peers)))
        for doc, other in chosen:
            same = [d for d in other.departments if d.spec.name == doc.department.spec.name]
            related = [
                d for d in other.departments if d.spec.standard_code[:2] == doc.department.spec.standard_code[:2]
            ]
            dept = (same or related or [rng.choice(other.departments)])[0]
            await self.add(
                PractitionerFiling,
                practitioner_id=doc.id,
                hospital_id=other.id,
                department_id=dept.id,
                kind=FilingKind.multi_site,
                valid_from=self.today - timedelta(days=rng.randint(30, 700)),
                valid_to=None,
            )
            for weekday, session in names.weekly_sessions(rng, 1, taken=doc.sessions):
                doc.sessions.append((weekday, session))
                await self._template(rng, other, doc, dept, weekday, session)

    async def _accounts_and_patients(self, hospital_count: int) -> None:
        rng = self.rng("people")
        password_hash = PasswordHasher().hash(DEMO_PASSWORD)  # slow by design: hash once, share it
        first = self.hospitals[0]
        logins = self.summary.logins

        async def user(username: str, role: Role, display: str, note: str = "", **links: Any) -> uuid.UUID:
            user_id = new_id()
            await self.add(
                User,
                id=user_id,
                username=username,
                password_hash=password_hash,
                role=role,
                display_name=display[:80],
                **links,
            )
            hospital = next((h.spec.name for h in self.hospitals if h.id == links.get("hospital_id")), None)
            logins.append(DemoLogin(username, role.value, hospital, note))
            self.summary.users += 1
            return user_id

        await user("admin", Role.platform_admin, "平台管理员")
        for n, hosp in enumerate(self.hospitals[:5], start=1):
            await user(f"hadmin{n}", Role.hospital_admin, f"{hosp.spec.short_name}管理员", hospital_id=hosp.id)

        doctors = _demo_doctors(first, self.today)
        for n, doc in enumerate(doctors, start=1):
            years = (self.today - doc.spec.practice_started_on).days / 365.25
            note = (
                f"{doc.department.spec.name} {names.TITLE_NAMES[doc.spec.title]} {doc.spec.name}, "
                f"{years:.1f} years of practice"
            )
            await user(f"doctor{n}", Role.doctor, doc.spec.name, note, hospital_id=first.id, practitioner_id=doc.id)

        self.licence_serial += 1
        pharmacist = names.make_pharmacist(rng, first.spec.district.code, self.licence_serial, self.today)
        pharmacist_id = new_id()
        await self.add(
            Practitioner,
            id=pharmacist_id,
            name=pharmacist.name,
            sex=pharmacist.sex,
            title=PractitionerTitle(pharmacist.title),
            specialty=pharmacist.specialty,
            licence_number=pharmacist.licence_number,
            practice_started_on=pharmacist.practice_started_on,
            introduction=pharmacist.introduction,
        )
        self.summary.practitioners += 1
        await user(
            "pharm1",
            Role.pharmacist,
            pharmacist.name,
            f"药师 {pharmacist.name}",
            hospital_id=first.id,
            practitioner_id=pharmacist_id,
        )

        province = names.province_code(first.spec.district.code)
        province_name = next(r.name for r in names.regions() if r.code == province)
        await user(
            "regulator1",
            Role.regulator,
            f"{province_name}卫生健康委员会",
            f"region {province} {province_name}",
            region_code=province,
        )
        await user("dev1", Role.developer, "某健康科技 开发者", "developer portal /portal")

        used_ids: set[str] = set()
        home = first.spec.district.code
        for n in (1, 2, 3):
            me = names.make_patient(rng, self.today, used_ids, min_age=25, max_age=45, region=home if n == 1 else None)
            family: list[tuple[Relation, names.PatientSpec]] = [(Relation.self, me)]
            if n == 1:
                surname = me.name[:1]
                family.append(
                    (
                        Relation.child,
                        names.make_patient(
                            rng,
                            self.today,
                            used_ids,
                            min_age=3,
                            max_age=10,
                            surname=surname,
                            phone=me.phone,
                            region=home,
                        ),
                    )
                )
                family.append(
                    (
                        Relation.parent,
                        names.make_patient(
                            rng,
                            self.today,
                            used_ids,
                            min_age=60,
                            max_age=78,
                            sex_="male",
                            surname=surname,
                            region=home,
                        ),
                    )
                )
            note = ", ".join(f"{relation.value}: {p.name}" for relation, p in family)
            user_id = await user(f"patient{n}", Role.patient, me.name, note)
            for relation, person in family:
                patient_id = await self._patient(person)
                await self.add(PatientLink, user_id=user_id, patient_id=patient_id, relation=relation)
                if relation == Relation.self:
                    # Diagnosed in person before, so the demo patient can ask for an online follow-up (rule R1).
                    await self.add(
                        OfflineDiagnosis,
                        id=new_id(),
                        patient_id=patient_id,
                        hospital_name=self.hospitals[0].spec.name,
                        diagnosed_on=self.today - timedelta(days=60),
                        icd10_code="I10",
                        diagnosis="原发性高血压",  # sealed by the column type
                        recorded_by_user_id=user_id,
                        created_at=clock.now(),
                    )

        # Patients without accounts, for benchmarks.
        bench = min(max(200, 20 * hospital_count), MAX_BENCH_PATIENTS)
        for _ in range(bench):
            await self._patient(names.make_patient(rng, self.today, used_ids))

    async def _patient(self, person: names.PatientSpec) -> uuid.UUID:
        row = patient_row(person)
        await self.add(Patient, **row)
        self.summary.patients += 1
        return row["id"]


def patient_row(person: names.PatientSpec) -> dict[str, Any]:
    """A demo person as a patients row: sealed columns take the plaintext, blind indexes for exact lookup."""
    cipher = crypto.cipher()
    return {
        "id": new_id(),
        "region": person.region,
        "name": person.name,
        "id_number": person.id_number,
        "id_number_index": cipher.blind_index("id_number", person.id_number),
        "phone": person.phone,
        "phone_index": cipher.blind_index("phone", person.phone),
        "key_version": cipher.current_version,
        "birth_date": person.birth_date,
        "sex": Sex(person.sex),
    }


def _years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


def _visit_type_for(rng: random.Random, title: str, available: dict[str, uuid.UUID]) -> str:
    if title in ("chief_physician", "associate_chief_physician"):
        if title == "chief_physician" and "special_needs" in available and rng.random() < 0.3:
            return "special_needs"
        return "expert"
    return "ordinary"


def _seniors(hosp: _Hosp) -> list[_Doc]:
    return [doc for doc in hosp.doctors if doc.spec.title != "resident_physician"]


def _demo_doctors(hosp: _Hosp, today: date) -> list[_Doc]:
    """doctor1-3: experienced practitioners of three different departments; doctor4: a junior one (R3)."""
    picked: list[_Doc] = []
    seen: set[str] = set()
    for doc in _seniors(hosp):
        if doc.department.spec.name not in seen:
            picked.append(doc)
            seen.add(doc.department.spec.name)
        if len(picked) == 3:
            break
    juniors = [
        doc
        for doc in hosp.doctors
        if doc.spec.title == "resident_physician" and doc.spec.practice_started_on > _years_ago(today, 3)
    ]
    return picked + juniors[:1]


# ------------------------------------------------------------------------------------------------ schedules


async def _generate_schedules(
    db: Database, hospital_ids: list[uuid.UUID], start: date, days: int, notes: list[str]
) -> int:
    if days <= 0:
        return 0
    try:
        from carebridge.scheduling.templates import MAX_GENERATE_DAYS, generate_schedules
    except ImportError as exc:
        notes.append(f"schedules not generated: carebridge.scheduling.templates.generate_schedules unavailable ({exc})")
        return 0
    total = 0
    for batch in _chunks(hospital_ids, SCHEDULE_HOSPITALS_PER_TRANSACTION):
        async with db.transaction() as session:
            for hospital_id in batch:
                # generate_schedules takes a bounded number of days per call
                for offset in range(0, days, MAX_GENERATE_DAYS):
                    total += await generate_schedules(
                        session,
                        hospital_id=hospital_id,
                        start=start + timedelta(days=offset),
                        days=min(MAX_GENERATE_DAYS, days - offset),
                    )
    return total


def _chunks(items: list[uuid.UUID], size: int) -> Iterable[list[uuid.UUID]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------------------- already loaded


_DEMO_USERNAMES = (
    "admin",
    *(f"hadmin{n}" for n in range(1, 6)),
    *(f"doctor{n}" for n in range(1, 5)),
    "pharm1",
    "regulator1",
    "dev1",
    "patient1",
    "patient2",
    "patient3",
)


async def _existing_summary(session: AsyncSession) -> DemoSummary:
    async def count(model: Any) -> int:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    summary = DemoSummary(
        regions=await count(Region),
        hospitals=await count(Hospital),
        departments=await count(Department),
        practitioners=await count(Practitioner),
        patients=await count(Patient),
        users=await count(User),
        schedules=await count(Schedule),
    )
    rows = await session.execute(
        select(User.username, User.role, Hospital.name)
        .outerjoin(Hospital, Hospital.id == User.hospital_id)
        .where(User.username.in_(_DEMO_USERNAMES))
    )
    order = {name: i for i, name in enumerate(_DEMO_USERNAMES)}
    for username, role, hospital in sorted(rows, key=lambda r: order[r[0]]):
        summary.logins.append(DemoLogin(username, Role(role).value, hospital))
    return summary
