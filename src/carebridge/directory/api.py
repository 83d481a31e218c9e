"""Directory endpoints: public reads and searches; admin writes (thin: parse, call the service, shape)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query

from carebridge.auth.dependencies import get_db, require
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core.schemas import Page
from carebridge.database.engine import Database
from carebridge.directory import service
from carebridge.directory.models import HospitalLevel, PractitionerFiling, PractitionerTitle
from carebridge.directory.schemas import (
    LICENSED_FIELDS,
    CampusIn,
    CampusOut,
    DepartmentIn,
    DepartmentOut,
    DepartmentPatch,
    FilingIn,
    FilingOut,
    FilingPatch,
    HospitalIn,
    HospitalOut,
    HospitalPatch,
    PractitionerIn,
    PractitionerOut,
    PractitionerPatch,
    RegionIn,
    RegionOut,
)

router = APIRouter(prefix="/api/v1", tags=["directory"])
admins = require(Role.platform_admin, Role.hospital_admin)
platform_admin = require(Role.platform_admin)

Limit = Query(50, ge=1, le=service.MAX_PAGE)
Offset = Query(0, ge=0, le=1_000_000)
RegionCode = Query(None, pattern=r"^\d{6}$")


def filing_out(f: PractitionerFiling) -> FilingOut:
    return FilingOut(
        id=f.id,
        practitioner_id=f.practitioner_id,
        hospital_id=f.hospital_id,
        department_id=f.department_id,
        kind=f.kind,
        valid_from=f.valid_from,
        valid_to=f.valid_to,
        revoked=f.revoked_at is not None,
    )


@router.post("/regions", response_model=RegionOut, status_code=201)
async def create_region(
    body: RegionIn, principal: Principal = Depends(platform_admin), db: Database = Depends(get_db)
) -> RegionOut:
    async with db.transaction() as session:
        region = await service.create_region(session, principal=principal, **body.model_dump())
    return RegionOut.model_validate(region)


@router.get("/regions", response_model=list[RegionOut])
async def list_regions(parent_code: str | None = RegionCode, db: Database = Depends(get_db)) -> list[RegionOut]:
    async with db.read() as session:
        return [RegionOut.model_validate(r) for r in await service.list_regions(session, parent_code=parent_code)]


@router.post("/hospitals", response_model=HospitalOut, status_code=201)
async def create_hospital(
    body: HospitalIn, principal: Principal = Depends(platform_admin), db: Database = Depends(get_db)
) -> HospitalOut:
    async with db.transaction() as session:
        hospital = await service.create_hospital(session, principal=principal, **body.model_dump())
    return HospitalOut.model_validate(hospital)


@router.patch("/hospitals/{hospital_id}", response_model=HospitalOut)
async def update_hospital(
    hospital_id: uuid.UUID, body: HospitalPatch, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> HospitalOut:
    async with db.transaction() as session:
        hospital = await service.update_hospital(
            session,
            principal=principal,
            hospital_id=hospital_id,
            changes=body.model_dump(exclude_unset=True),
            licensed_fields=LICENSED_FIELDS,
        )
    return HospitalOut.model_validate(hospital)


@router.get("/hospitals", response_model=Page[HospitalOut], summary="Search hospitals (public)")
async def search_hospitals(
    region: str | None = RegionCode,
    q: str | None = Query(None, max_length=60),
    level: HospitalLevel | None = None,
    internet: bool = False,
    limit: int = Limit,
    offset: int = Offset,
    db: Database = Depends(get_db),
) -> Page[HospitalOut]:
    async with db.read() as session:
        rows, total = await service.search_hospitals(
            session, region_code=region, q=q, level=level, internet_only=internet, limit=limit, offset=offset
        )
    return Page(items=[HospitalOut.model_validate(h) for h in rows], total=total, limit=limit, offset=offset)


@router.get("/hospitals/{hospital_id}", response_model=HospitalOut)
async def get_hospital(hospital_id: uuid.UUID, db: Database = Depends(get_db)) -> HospitalOut:
    async with db.read() as session:
        return HospitalOut.model_validate(await service.get_hospital(session, hospital_id))


@router.post("/hospitals/{hospital_id}/campuses", response_model=CampusOut, status_code=201)
async def create_campus(
    hospital_id: uuid.UUID, body: CampusIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> CampusOut:
    async with db.transaction() as session:
        campus = await service.create_campus(session, principal=principal, hospital_id=hospital_id, **body.model_dump())
    return CampusOut.model_validate(campus)


@router.get("/hospitals/{hospital_id}/campuses", response_model=list[CampusOut])
async def list_campuses(hospital_id: uuid.UUID, db: Database = Depends(get_db)) -> list[CampusOut]:
    async with db.read() as session:
        return [CampusOut.model_validate(c) for c in await service.list_campuses(session, hospital_id=hospital_id)]


@router.post("/hospitals/{hospital_id}/departments", response_model=DepartmentOut, status_code=201)
async def create_department(
    hospital_id: uuid.UUID, body: DepartmentIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> DepartmentOut:
    async with db.transaction() as session:
        department = await service.create_department(
            session, principal=principal, hospital_id=hospital_id, **body.model_dump()
        )
    return DepartmentOut.model_validate(department)


@router.get("/hospitals/{hospital_id}/departments", response_model=list[DepartmentOut])
async def list_departments(
    hospital_id: uuid.UUID,
    q: str | None = Query(None, max_length=40),
    standard_code: str | None = Query(None, pattern=r"^\d{2}(\.\d{2}){0,2}$"),
    db: Database = Depends(get_db),
) -> list[DepartmentOut]:
    async with db.read() as session:
        rows = await service.list_departments(session, hospital_id=hospital_id, q=q, standard_code=standard_code)
    return [DepartmentOut.model_validate(d) for d in rows]


@router.get("/departments/{department_id}", response_model=DepartmentOut)
async def get_department(department_id: uuid.UUID, db: Database = Depends(get_db)) -> DepartmentOut:
    async with db.read() as session:
        return DepartmentOut.model_validate(await service.get_department(session, department_id))


@router.patch("/departments/{department_id}", response_model=DepartmentOut)
async def update_department(
    department_id: uuid.UUID,
    body: DepartmentPatch,
    principal: Principal = Depends(admins),
    db: Database = Depends(get_db),
) -> DepartmentOut:
    async with db.transaction() as session:
        department = await service.update_department(
            session, principal=principal, department_id=department_id, changes=body.model_dump(exclude_unset=True)
        )
    return DepartmentOut.model_validate(department)


@router.post("/practitioners", response_model=PractitionerOut, status_code=201)
async def create_practitioner(
    body: PractitionerIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> PractitionerOut:
    fields = body.model_dump(exclude={"filing"})
    filing = body.filing.model_dump() if body.filing else None
    async with db.transaction() as session:
        practitioner = await service.create_practitioner(session, principal=principal, filing=filing, **fields)
        filings = await service.filings_of(session, [practitioner.id])
    return _practitioner_out(practitioner, filings[practitioner.id])


def _practitioner_out(practitioner, filings: list[PractitionerFiling]) -> PractitionerOut:  # type: ignore[no-untyped-def]
    out = PractitionerOut.model_validate(practitioner)
    out.filings = [filing_out(f) for f in filings]
    return out


@router.patch("/practitioners/{practitioner_id}", response_model=PractitionerOut)
async def update_practitioner(
    practitioner_id: uuid.UUID,
    body: PractitionerPatch,
    principal: Principal = Depends(admins),
    db: Database = Depends(get_db),
) -> PractitionerOut:
    async with db.transaction() as session:
        practitioner = await service.update_practitioner(
            session, principal=principal, practitioner_id=practitioner_id, changes=body.model_dump(exclude_unset=True)
        )
        filings = await service.filings_of(session, [practitioner.id])
    return _practitioner_out(practitioner, filings[practitioner.id])


@router.get("/practitioners", response_model=Page[PractitionerOut], summary="Search practitioners (public)")
async def search_practitioners(
    region: str | None = RegionCode,
    hospital_id: uuid.UUID | None = None,
    department_id: uuid.UUID | None = None,
    name: str | None = Query(None, max_length=40),
    specialty: str | None = Query(None, max_length=40),
    title: PractitionerTitle | None = None,
    limit: int = Limit,
    offset: int = Offset,
    db: Database = Depends(get_db),
) -> Page[PractitionerOut]:
    async with db.read() as session:
        rows, total = await service.search_practitioners(
            session,
            region_code=region,
            hospital_id=hospital_id,
            department_id=department_id,
            name=name,
            specialty=specialty,
            title=title,
            limit=limit,
            offset=offset,
        )
        filings = await service.filings_of(session, [p.id for p in rows])
    return Page(items=[_practitioner_out(p, filings[p.id]) for p in rows], total=total, limit=limit, offset=offset)


@router.get("/practitioners/{practitioner_id}", response_model=PractitionerOut)
async def get_practitioner(practitioner_id: uuid.UUID, db: Database = Depends(get_db)) -> PractitionerOut:
    async with db.read() as session:
        practitioner = await service.get_practitioner(session, practitioner_id)
        filings = await service.filings_of(session, [practitioner_id])
    return _practitioner_out(practitioner, filings[practitioner_id])


@router.post("/practitioners/{practitioner_id}/filings", response_model=FilingOut, status_code=201)
async def file_practitioner(
    practitioner_id: uuid.UUID, body: FilingIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> FilingOut:
    async with db.transaction() as session:
        filing = await service.file_practitioner(
            session, principal=principal, practitioner_id=practitioner_id, **body.model_dump()
        )
    return filing_out(filing)


@router.patch("/filings/{filing_id}", response_model=FilingOut)
async def update_filing(
    filing_id: uuid.UUID, body: FilingPatch, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> FilingOut:
    async with db.transaction() as session:
        filing = await service.update_filing(session, principal=principal, filing_id=filing_id, **body.model_dump())
    return filing_out(filing)
