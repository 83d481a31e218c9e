"""Open platform endpoints: developer accounts, partner apps, their review, and hospitals' grants."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.auth.schemas import UserOut
from carebridge.core.errors import not_found
from carebridge.database.engine import Database
from carebridge.openplatform import sandbox, service
from carebridge.openplatform.limits_api import router as limits_router
from carebridge.openplatform.models import AppStatus
from carebridge.openplatform.oauth_api import router as oauth_router
from carebridge.openplatform.schemas import (
    AppIn,
    AppOut,
    AppPatch,
    DeveloperIn,
    GrantOut,
    ReviewIn,
    SandboxAccountOut,
    SandboxEntry,
    SandboxOut,
    SandboxResetOut,
)
from carebridge.openplatform.webhooks_api import router as webhooks_router

v1 = APIRouter(prefix="/api/v1", tags=["open platform"])


@v1.post("/developers", response_model=UserOut, status_code=201, summary="Create a developer account")
async def register_developer(body: DeveloperIn, db: Database = Depends(get_db)) -> UserOut:
    async with db.transaction() as session:
        return UserOut.model_validate(await service.register_developer(session, **body.model_dump()))


@v1.post("/partner-apps", response_model=AppOut, status_code=201, summary="Register a partner app (developers)")
async def register_app(
    body: AppIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> AppOut:
    async with db.transaction() as session:
        return AppOut.model_validate(await service.register_app(session, principal=principal, data=body))


@v1.get(
    "/partner-apps",
    response_model=list[AppOut],
    summary="Partner apps: a developer's own, every app (platform admins), approved ones (hospital admins)",
)
async def list_apps(
    status: AppStatus | None = None, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[AppOut]:
    async with db.read() as session:
        return [AppOut.model_validate(a) for a in await service.list_apps(session, principal=principal, status=status)]


@v1.get("/partner-apps/{app_id}", response_model=AppOut, summary="One partner app")
async def get_app(
    app_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> AppOut:
    async with db.read() as session:
        return AppOut.model_validate(await service.get_app(session, principal=principal, app_id=app_id))


@v1.patch(
    "/partner-apps/{app_id}",
    response_model=AppOut,
    summary="Change an app's names, redirect URIs, keys or webhook URL (its developer)",
)
async def update_app(
    app_id: uuid.UUID, body: AppPatch, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> AppOut:
    async with db.transaction() as session:
        return AppOut.model_validate(await service.update_app(session, principal=principal, app_id=app_id, data=body))


@v1.get(
    "/partner-apps/{app_id}/sandbox",
    response_model=SandboxOut,
    summary="The app's sandbox hospital and its test patient accounts (its developer, platform admins)",
)
async def get_sandbox(
    app_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> SandboxOut:
    principal.require_role(Role.developer, Role.platform_admin)
    async with db.transaction() as session:  # the read of the test passwords is audited
        app = await service.get_app(session, principal=principal, app_id=app_id)
        box = await sandbox.view(session, principal=principal, app=app)
        if box is None:
            raise not_found("sandbox of partner app", app_id)
        return SandboxOut(
            app_id=app.id,
            hospital_id=box.hospital.id,
            hospital_name=box.hospital.name,
            organization=f"Organization/{box.hospital.id}",
            schedules_until=box.sandbox.schedules_until,
            departments=[SandboxEntry(id=d.id, name=d.name) for d in box.departments],
            practitioners=[SandboxEntry(id=p.id, name=p.name) for p in box.practitioners],
            test_patients=[SandboxAccountOut.model_validate(t) for t in box.test_patients],
        )


@v1.post(
    "/partner-apps/{app_id}/sandbox/reset",
    response_model=SandboxResetOut,
    summary="Reset the sandbox: its booked appointments cancelled, its no-show blocks lifted (its developer)",
)
async def reset_sandbox(
    app_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> SandboxResetOut:
    principal.require_role(Role.developer, Role.platform_admin)
    async with db.transaction() as session:
        app = await service.get_app(session, principal=principal, app_id=app_id)
        counts = await sandbox.reset(session, principal=principal, app=app)
        if counts is None:
            raise not_found("sandbox of partner app", app_id)
    return SandboxResetOut(**counts)


@v1.post("/partner-apps/{app_id}/review", response_model=AppOut, summary="Approve, suspend or reject an app")
async def review_app(
    app_id: uuid.UUID,
    body: ReviewIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> AppOut:
    async with db.transaction() as session:
        app = await service.review(
            session, principal=principal, app_id=app_id, decision=body.decision, reason=body.reason
        )
        return AppOut.model_validate(app)


@v1.get("/partner-apps/{app_id}/grants", response_model=list[GrantOut], summary="Hospitals that granted the app")
async def app_grants(
    app_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[GrantOut]:
    async with db.read() as session:
        return [
            GrantOut.model_validate(g) for g in await service.app_grants(session, principal=principal, app_id=app_id)
        ]


@v1.get("/hospitals/{hospital_id}/partner-apps", response_model=list[GrantOut], summary="A hospital's grants to apps")
async def hospital_grants(
    hospital_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[GrantOut]:
    async with db.read() as session:
        rows = await service.hospital_grants(session, principal=principal, hospital_id=hospital_id)
        return [GrantOut.model_validate(g) for g in rows]


@v1.put(
    "/hospitals/{hospital_id}/partner-apps/{app_id}",
    response_model=GrantOut,
    status_code=201,
    summary="Grant an approved app access to your hospital",
)
async def grant_access(
    hospital_id: uuid.UUID,
    app_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> GrantOut:
    async with db.transaction() as session:
        row = await service.grant(session, principal=principal, app_id=app_id, hospital_id=hospital_id)
        return GrantOut.model_validate(row)


@v1.delete("/hospitals/{hospital_id}/partner-apps/{app_id}", response_model=GrantOut, summary="Revoke an app's access")
async def revoke_access(
    hospital_id: uuid.UUID,
    app_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> GrantOut:
    async with db.transaction() as session:
        row = await service.revoke(session, principal=principal, app_id=app_id, hospital_id=hospital_id)
        return GrantOut.model_validate(row)


router = APIRouter()
router.include_router(v1)
router.include_router(oauth_router)
router.include_router(webhooks_router)
router.include_router(limits_router)
