"""A hospital's formulary: the drugs its doctors may prescribe, and the CSV import that fills it.

The import is all or nothing: every line is validated first and, if any line has an error, nothing is written
and the answer lists each error with its line number and column (422 ``formulary_import_invalid``). Lines whose
substance the knowledge base does not know import with a warning: interactions cannot be checked for them.
Rows are matched on the hospital's drug code: a known code is updated, a new one created.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit
from carebridge.core.errors import Forbidden, InvalidInput, not_found
from carebridge.directory import service as directory
from carebridge.prescribing import knowledge
from carebridge.prescribing.models import AntibioticGrade, Drug, SpecialControl

COLUMNS = (
    "code",
    "generic_name",
    "substance",
    "atc_code",
    "form",
    "strength",
    "unit",
    "dose_unit",
    "price_fen",
    "category",
    "special_control",
    "antibiotic_grade",
    "usual_daily_dose",
    "max_daily_dose",
    "active",
)
REQUIRED = {
    c
    for c in COLUMNS
    if c not in ("special_control", "antibiotic_grade", "usual_daily_dose", "max_daily_dose", "active")
}
MAX_ROWS = 20_000
MAX_LIST = 200
ATC = re.compile(r"^[A-Z]\d{2}[A-Z]{2}\d{2}$")  # a full (level 5) WHO ATC code


class DrugFields(BaseModel):
    """One formulary line, as the API and the CSV import accept it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: StrictStr = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
    generic_name: StrictStr = Field(min_length=1, max_length=120)
    substance: StrictStr = Field(min_length=2, max_length=80)
    atc_code: StrictStr = Field(min_length=7, max_length=7)
    form: StrictStr = Field(min_length=1, max_length=40)
    strength: StrictStr = Field(min_length=1, max_length=60)
    unit: StrictStr = Field(min_length=1, max_length=16)
    dose_unit: StrictStr = Field(min_length=1, max_length=16)
    price_fen: StrictInt = Field(ge=0, le=100_000_000)
    category: StrictStr = Field(min_length=1, max_length=60)
    special_control: SpecialControl | None = None
    antibiotic_grade: AntibioticGrade | None = None
    usual_daily_dose: StrictFloat | None = Field(default=None, gt=0, le=1_000_000)
    max_daily_dose: StrictFloat | None = Field(default=None, gt=0, le=1_000_000)
    active: StrictBool = True

    @field_validator("atc_code")
    @classmethod
    def _atc(cls, value: str) -> str:
        value = value.upper()
        if not ATC.match(value):
            raise ValueError("an ATC code has 7 characters like C08CA01")
        return value

    @field_validator("substance")
    @classmethod
    def _substance(cls, value: str) -> str:
        return re.sub(r"[\s-]+", "_", value.strip().lower())

    @model_validator(mode="after")
    def _doses(self) -> DrugFields:
        if self.usual_daily_dose and self.max_daily_dose and self.usual_daily_dose > self.max_daily_dose:
            raise ValueError("usual_daily_dose is above max_daily_dose")
        return self


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def require_formulary_admin(principal: Principal, hospital_id: uuid.UUID) -> None:
    if not principal.can_manage_hospital(hospital_id):
        raise Forbidden("other_hospital", "only this hospital's admins manage its formulary")


def require_formulary_reader(principal: Principal, hospital_id: uuid.UUID) -> None:
    """Staff of the hospital (doctors, pharmacists, admins), platform admins and regulators read a formulary."""
    if principal.role in (Role.platform_admin, Role.regulator):
        return
    if principal.role == Role.patient or principal.hospital_id != hospital_id:
        raise Forbidden("other_hospital", "only this hospital's staff read its formulary")


def _cell(column: str, value: str | None) -> Any:
    """A CSV cell as the type its column holds; ValueError names what was expected."""
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if column == "price_fen":
        if not re.fullmatch(r"\d+", value):
            raise ValueError("a whole number of fen, like 1250")
        return int(value)
    if column in ("usual_daily_dose", "max_daily_dose"):
        try:
            return float(value)
        except ValueError:
            raise ValueError("a number, like 500 or 0.25") from None
    if column == "active":
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("true or false")
        return value.lower() in ("true", "1", "yes")
    return value


def parse_csv(text: str, kb: knowledge.Knowledge) -> tuple[list[DrugFields], ImportReport]:
    """Validate every line; the report lists each error with its line (the header is line 1) and column."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = sorted(REQUIRED - set(header))
    unknown = [h for h in header if h not in COLUMNS]
    if missing or unknown:
        if missing:
            report.errors.append(
                {"line": 1, "column": None, "code": "missing_columns", "message": f"missing: {', '.join(missing)}"}
            )
        if unknown:
            report.errors.append(
                {"line": 1, "column": None, "code": "unknown_columns", "message": f"unknown: {', '.join(unknown)}"}
            )
        return [], report
    rows: list[DrugFields] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(reader, start=2):
        report.rows += 1
        if report.rows > MAX_ROWS:
            report.errors.append(
                {"line": number, "column": None, "code": "too_many_rows", "message": f"at most {MAX_ROWS} rows"}
            )
            break
        if None in raw:  # more cells than the header has columns
            report.errors.append(
                {"line": number, "column": None, "code": "extra_cells", "message": "more cells than columns"}
            )
            continue
        values: dict[str, Any] = {}
        bad = False
        for key, cell in raw.items():
            try:
                values[key.strip()] = _cell(key.strip(), cell)
            except ValueError as exc:
                report.errors.append({"line": number, "column": key.strip(), "code": "wrong_type", "message": str(exc)})
                bad = True
        if bad:
            continue
        try:
            row = DrugFields.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            for err in exc.errors():
                column = str(err["loc"][0]) if err["loc"] else None
                report.errors.append({"line": number, "column": column, "code": err["type"], "message": err["msg"]})
            continue
        if row.code in seen:
            report.errors.append(
                {
                    "line": number,
                    "column": "code",
                    "code": "duplicate_code",
                    "message": f"code also on line {seen[row.code]}",
                }
            )
            continue
        seen[row.code] = number
        if kb.substance_key(row.substance) is None:
            report.warnings.append(
                {
                    "line": number,
                    "column": "substance",
                    "code": "unknown_substance",
                    "message": f"{row.substance!r} is unknown to the medication knowledge base: no interaction checks",
                }
            )
        rows.append(row)
    return rows, report


async def import_csv(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID, text: str, dry_run: bool = False
) -> ImportReport:
    """Create or update the hospital's drugs from CSV (columns: ``COLUMNS``). 422 ``formulary_import_invalid``
    with ``details.errors`` (line by line) and nothing written if any line is wrong."""
    require_formulary_admin(principal, hospital_id)
    await directory.get_hospital(session, hospital_id)  # 404 for a hospital that does not exist
    rows, report = parse_csv(text, knowledge.current())
    if report.errors:
        raise InvalidInput(
            "formulary_import_invalid",
            f"{len(report.errors)} error(s) in the file; nothing was imported",
            details={"errors": report.errors[:500], "rows": report.rows},
        )
    if report.rows == 0:
        raise InvalidInput("formulary_import_empty", "the file has no drug lines")
    existing = {
        d.code: d
        for d in await session.scalars(
            select(Drug).where(Drug.hospital_id == hospital_id, Drug.code.in_([r.code for r in rows]))
        )
    }
    for row in rows:
        values = row.model_dump()
        drug = existing.get(row.code)
        if drug is None:
            report.created += 1
            if not dry_run:
                session.add(Drug(hospital_id=hospital_id, **values))
        elif any(getattr(drug, k) != v for k, v in values.items()):
            report.updated += 1
            if not dry_run:
                for k, v in values.items():
                    setattr(drug, k, v)
        else:
            report.unchanged += 1
    if not dry_run:
        await session.flush()
        audit.record(
            session,
            action="formulary.imported",
            subject_type="hospital",
            subject_id=hospital_id,
            actor_user_id=principal.user_id,
            actor_role=principal.role.value,
            hospital_id=hospital_id,
            detail={"created": report.created, "updated": report.updated},
        )
    return report


def add_rows(session: AsyncSession, hospital_id: uuid.UUID, rows: list[DrugFields]) -> None:
    """New drugs from validated rows (the demo loader; the import decides create or update itself)."""
    session.add_all([Drug(hospital_id=hospital_id, **row.model_dump()) for row in rows])


async def add_drug(session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID, fields: DrugFields) -> Drug:
    require_formulary_admin(principal, hospital_id)
    await directory.get_hospital(session, hospital_id)  # 404 for a hospital that does not exist
    taken = await session.scalar(select(Drug.id).where(Drug.hospital_id == hospital_id, Drug.code == fields.code))
    if taken is not None:
        raise InvalidInput(
            "drug_code_taken", f"drug code {fields.code!r} is already in this formulary", details={"field": "code"}
        )
    drug = Drug(hospital_id=hospital_id, **fields.model_dump())
    session.add(drug)
    await session.flush()
    return drug


async def change_drug(
    session: AsyncSession, *, principal: Principal, drug_id: uuid.UUID, changes: dict[str, Any]
) -> Drug:
    drug = await session.get(Drug, drug_id)
    if drug is None:
        raise not_found("drug", drug_id)
    require_formulary_admin(principal, drug.hospital_id)
    try:  # the whole line must stay valid
        merged = DrugFields.model_validate({**{c: getattr(drug, c) for c in COLUMNS}, **changes})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(
            "invalid_drug", f"the drug would not be valid: {first['msg']}", details={"field": where}
        ) from None
    for k, v in merged.model_dump().items():
        setattr(drug, k, v)
    await session.flush()
    return drug


async def search(
    session: AsyncSession,
    *,
    principal: Principal,
    hospital_id: uuid.UUID,
    q: str | None,
    include_inactive: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Drug], int]:
    require_formulary_reader(principal, hospital_id)
    query = select(Drug).where(Drug.hospital_id == hospital_id)
    if not include_inactive:
        query = query.where(Drug.active.is_(True))
    if q:
        like = f"%{q.strip().lower()}%"
        query = query.where(
            or_(
                func.lower(Drug.generic_name).like(like),
                func.lower(Drug.code).like(like),
                func.lower(Drug.substance).like(like),
                func.lower(Drug.category).like(like),
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(Drug.code).limit(min(limit, MAX_LIST)).offset(offset))
    return list(rows), total
