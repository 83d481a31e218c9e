from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request, Response

from carebridge.auth import service
from carebridge.auth.dependencies import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    bearer_token,
    current_principal,
    get_db,
    require,
)
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.auth.schemas import LoginIn, PasswordChangeIn, RegisterIn, TokenOut, UserCreateIn, UserOut
from carebridge.core.errors import DomainError, Forbidden
from carebridge.database.engine import Database
from carebridge.directory import service as directory

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/login", response_model=TokenOut, summary="Log in; returns a bearer token")
async def login(body: LoginIn, request: Request, response: Response, db: Database = Depends(get_db)) -> TokenOut:
    settings = request.app.state.settings
    async with db.transaction() as session:
        result = await service.login(
            session,
            username=body.username,
            password=body.password,
            client_ip=request.client.host if request.client else "?",
            ttl_seconds=settings.token_ttl_seconds,
            max_failures=settings.login_max_failures,
            lock_seconds=settings.login_lock_seconds,
        )
    if isinstance(result, DomainError):
        raise result
    token, row, user = result
    # Pages use the same token as an HttpOnly cookie plus a CSRF cookie for double submit.
    cookie_args = {"secure": settings.secure_cookies, "samesite": "strict", "max_age": settings.token_ttl_seconds}
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **cookie_args)
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(16), httponly=False, **cookie_args)
    return TokenOut(access_token=token, expires_at=row.expires_at, user=UserOut.model_validate(user))


@router.post("/auth/logout", status_code=204, summary="Revoke the current token")
async def logout(
    request: Request, response: Response, db: Database = Depends(get_db), _: Principal = Depends(current_principal)
) -> Response:
    token, _cookie = bearer_token(request)
    assert token is not None
    async with db.transaction() as session:
        await service.logout(session, token=token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.post("/auth/register", response_model=UserOut, status_code=201, summary="Create a patient account")
async def register(body: RegisterIn, db: Database = Depends(get_db)) -> UserOut:
    async with db.transaction() as session:
        user = await service.create_user(
            session, username=body.username, password=body.password, role=Role.patient, display_name=body.display_name
        )
    return UserOut.model_validate(user)


@router.get("/auth/me", response_model=UserOut)
async def me(principal: Principal = Depends(current_principal), db: Database = Depends(get_db)) -> UserOut:
    async with db.read() as session:
        return UserOut.model_validate(await service.get_user(session, principal.user_id))


@router.post("/auth/password", status_code=204, summary="Change password; other tokens are revoked")
async def change_password(
    body: PasswordChangeIn,
    request: Request,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> Response:
    token, _cookie = bearer_token(request)
    assert token is not None
    async with db.transaction() as session:
        await service.change_password(
            session, principal=principal, current=body.current_password, new=body.new_password, keep_token=token
        )
    return Response(status_code=204)


@router.post("/users", response_model=UserOut, status_code=201, summary="Create a staff or regulator account")
async def create_user(
    body: UserCreateIn,
    principal: Principal = Depends(require(Role.platform_admin, Role.hospital_admin)),
    db: Database = Depends(get_db),
) -> UserOut:
    if principal.role == Role.hospital_admin:
        # A hospital admin creates staff of their own hospital only.
        if body.role not in (Role.doctor, Role.pharmacist, Role.hospital_admin):
            raise Forbidden("role_not_allowed", "hospital admins create doctor, pharmacist and hospital_admin accounts")
        if body.hospital_id != principal.hospital_id:
            raise Forbidden("other_hospital", "you may only create accounts for your own hospital")
    async with db.transaction() as session:
        if body.role == Role.doctor and body.practitioner_id is not None:
            # A doctor's account belongs to a practitioner filed at the account's hospital.
            await directory.require_filed_at(session, body.practitioner_id, body.hospital_id)
        user = await service.create_user(session, **body.model_dump())
    return UserOut.model_validate(user)
