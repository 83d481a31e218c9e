"""Page routes: each checks the session cookie on the server, then renders a shell its script fills from the API.

A page that needs a role redirects to ``/login?next=<path>`` without a valid session and answers 403 (a page)
for another role. Pages carry what their scripts cannot know from the browser: the ids in the path and the
hospital's local "today" by the platform clock (tests and demos shift it; the browser's clock is not).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from carebridge.auth.dependencies import SESSION_COOKIE, resolve
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.directory import service as directory
from carebridge.web.assets import SWAGGER_VERSION, TEMPLATES_DIR, static_url

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["static_url"] = static_url

ROLE_HOME = {
    Role.patient: "/patient",
    Role.hospital_admin: "/admin",
    Role.doctor: "/doctor",
    Role.pharmacist: "/pharmacist",
    Role.regulator: "/regulator",
    Role.platform_admin: "/regulator",
    Role.developer: "/portal",
}
ROLE_LABEL = {
    Role.patient: "患者 Patient",
    Role.doctor: "医生 Doctor",
    Role.pharmacist: "药师 Pharmacist",
    Role.hospital_admin: "医院管理员 Hospital admin",
    Role.regulator: "监管 Regulator",
    Role.platform_admin: "平台管理员 Platform admin",
    Role.developer: "开发者 Developer",
}
NAV = {
    Role.patient: [
        ("/patient", "预约挂号", "Book"),
        ("/patient/appointments", "我的预约", "My appointments"),
        ("/patient/consultations", "在线问诊", "Consult online"),
        ("/patient/notifications", "消息", "Messages"),
    ],
    Role.hospital_admin: [
        ("/admin", "排班", "Schedules"),
        ("/admin/templates", "模板", "Templates"),
        ("/admin/rules", "规则", "Rules"),
        ("/admin/no-shows", "爽约", "No-shows"),
        ("/admin/qc", "病历质控", "Record QC"),
        ("/admin/cases", "监管整改", "Rectification"),
        ("/admin/partners", "合作应用", "Partner apps"),
    ],
    Role.doctor: [("/doctor", "今日出诊", "Today"), ("/doctor/consultations", "在线诊室", "Online clinic")],
    Role.pharmacist: [("/pharmacist", "处方审核与配送", "Review and delivery")],
    Role.regulator: [
        ("/regulator", "监管总览", "Dashboard"),
        ("/regulator/cases", "案件", "Cases"),
        ("/regulator/rules", "规则配置", "Rules"),
        ("/regulator/trace", "追溯", "Trace"),
    ],
}
NAV[Role.developer] = [
    ("/portal", "我的应用", "My apps"),
    ("/portal/apps/new", "注册应用", "Register an app"),
    ("/portal/docs", "文档", "Docs"),
]
NAV[Role.platform_admin] = [*NAV[Role.regulator], ("/portal", "开放平台", "Open platform")]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(
    request: Request, template: str, *, principal: Principal | None, page: str, status_code: int = 200, **context: Any
) -> Response:
    nav = NAV.get(principal.role, []) if principal else []
    path = request.url.path
    active = max((href for href, _zh, _en in nav if path == href or path.startswith(href + "/")), key=len, default=None)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "page": page,
            "nav": nav,
            "active": active,
            "role_label": ROLE_LABEL.get(principal.role) if principal else None,
            "home": ROLE_HOME.get(principal.role, "/") if principal else "/",
            "now": clock.now().isoformat(),
            **context,
        },
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


async def session_principal(request: Request) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    return await resolve(request, token) if token else None


async def guard(request: Request, *roles: Role) -> Principal | Response:
    """The caller when their role may see this page; otherwise the redirect or 403 page to answer."""
    principal = await session_principal(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    if principal.role not in roles:
        return render(
            request,
            "forbidden.html",
            principal=principal,
            page="forbidden",
            status_code=403,
            needed=[ROLE_LABEL[r] for r in roles],
        )
    return principal


async def hospital_today(request: Request, principal: Principal) -> tuple[str, str]:
    """(local date as ISO, zone) of the caller's hospital, or of the platform's default zone."""
    zone = request.app.state.settings.default_timezone
    if principal.hospital_id is not None:
        async with request.app.state.db.read() as session:
            zone = (await directory.get_hospital(session, principal.hospital_id)).timezone
    return clock.local_today(zone).isoformat(), zone


# --- everyone -------------------------------------------------------------------------------------------


@router.get("/")
async def landing(request: Request) -> Response:
    return render(request, "index.html", principal=await session_principal(request), page="landing")


@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(request, "login.html", principal=await session_principal(request), page="login")


@router.get("/register")
async def register_page(request: Request) -> Response:
    return render(request, "register.html", principal=await session_principal(request), page="register")


@router.get("/logout")
async def logout_page(request: Request) -> Response:
    # The script posts /api/v1/auth/logout (CSRF-protected) and then goes to /login: a GET never logs out.
    return render(request, "logout.html", principal=await session_principal(request), page="logout")


# --- patients -------------------------------------------------------------------------------------------


async def _patient_page(request: Request, template: str, page: str, **ids: uuid.UUID) -> Response:
    principal = await guard(request, Role.patient)
    if isinstance(principal, Response):
        return principal
    today, zone = await hospital_today(request, principal)
    return render(
        request, template, principal=principal, page=page, today=today, tz=zone, ids={k: str(v) for k, v in ids.items()}
    )


@router.get("/patient")
async def patient_home(request: Request) -> Response:
    return await _patient_page(request, "patient/hospitals.html", "patient-hospitals")


@router.get("/patient/hospitals/{hospital_id}")
async def patient_hospital(request: Request, hospital_id: uuid.UUID) -> Response:
    return await _patient_page(request, "patient/departments.html", "patient-departments", hospital=hospital_id)


@router.get("/patient/departments/{department_id}")
async def patient_department(request: Request, department_id: uuid.UUID) -> Response:
    return await _patient_page(request, "patient/schedules.html", "patient-schedules", department=department_id)


@router.get("/patient/schedules/{schedule_id}")
async def patient_schedule(request: Request, schedule_id: uuid.UUID) -> Response:
    return await _patient_page(request, "patient/book.html", "patient-book", schedule=schedule_id)


@router.get("/patient/appointments")
async def patient_appointments(request: Request) -> Response:
    return await _patient_page(request, "patient/appointments.html", "patient-appointments")


@router.get("/patient/appointments/{appointment_id}/reschedule")
async def patient_reschedule(request: Request, appointment_id: uuid.UUID) -> Response:
    return await _patient_page(request, "patient/reschedule.html", "patient-reschedule", appointment=appointment_id)


@router.get("/patient/appointments/{appointment_id}/queue")
async def patient_queue(request: Request, appointment_id: uuid.UUID) -> Response:
    return await _patient_page(request, "patient/queue.html", "patient-queue", appointment=appointment_id)


@router.get("/patient/consultations")
async def patient_consultations(request: Request) -> Response:
    return await _patient_page(request, "patient/consultations.html", "patient-consultations")


@router.get("/patient/consultations/{consultation_id}")
async def patient_consultation(request: Request, consultation_id: uuid.UUID) -> Response:
    return await _patient_page(
        request, "patient/consultation.html", "patient-consultation", consultation=consultation_id
    )


@router.get("/patient/notifications")
async def patient_notifications(request: Request) -> Response:
    return await _patient_page(request, "patient/notifications.html", "patient-notifications")


# --- hospital admins ------------------------------------------------------------------------------------


async def _admin_page(request: Request, template: str, page: str, **ids: uuid.UUID) -> Response:
    principal = await guard(request, Role.hospital_admin)
    if isinstance(principal, Response):
        return principal
    today, zone = await hospital_today(request, principal)
    return render(
        request,
        template,
        principal=principal,
        page=page,
        today=today,
        tz=zone,
        hospital_id=str(principal.hospital_id),
        ids={k: str(v) for k, v in ids.items()},
        wide=True,
    )


@router.get("/admin")
async def admin_schedules(request: Request) -> Response:
    return await _admin_page(request, "admin/schedules.html", "admin-schedules")


@router.get("/admin/templates")
async def admin_templates(request: Request) -> Response:
    return await _admin_page(request, "admin/templates.html", "admin-templates")


@router.get("/admin/rules")
async def admin_rules(request: Request) -> Response:
    return await _admin_page(request, "admin/rules.html", "admin-rules")


@router.get("/admin/qc")
async def admin_qc(request: Request) -> Response:
    return await _admin_page(request, "admin/qc.html", "admin-qc")


@router.get("/admin/cases")
async def admin_cases(request: Request) -> Response:
    return await _admin_page(request, "supervision/cases.html", "admin-cases")


@router.get("/admin/cases/{case_id}")
async def admin_case(request: Request, case_id: uuid.UUID) -> Response:
    return await _admin_page(request, "supervision/case.html", "admin-case", case=case_id)


@router.get("/admin/no-shows")
async def admin_no_shows(request: Request) -> Response:
    return await _admin_page(request, "admin/no_shows.html", "admin-no-shows")


@router.get("/admin/partners")
async def admin_partners(request: Request) -> Response:
    return await _admin_page(request, "admin/partners.html", "admin-partners")


# --- doctors --------------------------------------------------------------------------------------------


@router.get("/doctor")
async def doctor_today(request: Request) -> Response:
    principal = await guard(request, Role.doctor)
    if isinstance(principal, Response):
        return principal
    today, zone = await hospital_today(request, principal)
    return render(request, "doctor/today.html", principal=principal, page="doctor-today", today=today, tz=zone)


@router.get("/doctor/consultations")
async def doctor_workbench(request: Request) -> Response:
    """The online clinic: inbox, chat, record and prescription forms (``?c=<consultation id>`` opens one)."""
    principal = await guard(request, Role.doctor)
    if isinstance(principal, Response):
        return principal
    today, zone = await hospital_today(request, principal)
    return render(
        request,
        "doctor/workbench.html",
        principal=principal,
        page="doctor-workbench",
        today=today,
        tz=zone,
        hospital_id=str(principal.hospital_id),
        wide=True,
    )


# --- pharmacists ----------------------------------------------------------------------------------------


@router.get("/pharmacist")
async def pharmacist_queue(request: Request) -> Response:
    principal = await guard(request, Role.pharmacist)
    if isinstance(principal, Response):
        return principal
    today, zone = await hospital_today(request, principal)
    return render(
        request,
        "pharmacist/queue.html",
        principal=principal,
        page="pharmacist-queue",
        today=today,
        tz=zone,
        hospital_id=str(principal.hospital_id),
        wide=True,
    )


# --- regulators (and platform admins, who supervise every region) --------------------------------------------


async def _regulator_page(request: Request, template: str, page: str, **ids: uuid.UUID) -> Response:
    principal = await guard(request, Role.regulator, Role.platform_admin)
    if isinstance(principal, Response):
        return principal
    today, zone = await hospital_today(request, principal)
    return render(
        request,
        template,
        principal=principal,
        page=page,
        today=today,
        tz=zone,
        ids={k: str(v) for k, v in ids.items()},
        region=principal.region_code or "",
        wide=True,
    )


@router.get("/regulator")
async def regulator_dashboard(request: Request) -> Response:
    return await _regulator_page(request, "supervision/dashboard.html", "regulator-dashboard")


@router.get("/regulator/cases")
async def regulator_cases(request: Request) -> Response:
    return await _regulator_page(request, "supervision/cases.html", "regulator-cases")


@router.get("/regulator/cases/{case_id}")
async def regulator_case(request: Request, case_id: uuid.UUID) -> Response:
    return await _regulator_page(request, "supervision/case.html", "regulator-case", case=case_id)


@router.get("/regulator/rules")
async def regulator_rules(request: Request) -> Response:
    return await _regulator_page(request, "supervision/rules.html", "regulator-rules")


@router.get("/regulator/trace")
async def regulator_trace(request: Request) -> Response:
    return await _regulator_page(request, "supervision/trace.html", "regulator-trace")


# --- the developer portal (developers; platform admins review apps there) -----------------------------------


async def _portal_page(request: Request, template: str, page: str, *roles: Role, **ids: uuid.UUID) -> Response:
    principal = await guard(request, *(roles or (Role.developer, Role.platform_admin)))
    if isinstance(principal, Response):
        return principal
    return render(
        request,
        template,
        principal=principal,
        page=page,
        ids={k: str(v) for k, v in ids.items()},
        public_url=request.app.state.settings.public_url or str(request.base_url).rstrip("/"),
        wide=True,
    )


@router.get("/portal")
async def portal_apps(request: Request) -> Response:
    return await _portal_page(request, "portal/apps.html", "portal-apps")


@router.get("/portal/apps/new")
async def portal_new_app(request: Request) -> Response:
    return await _portal_page(request, "portal/new_app.html", "portal-new-app", Role.developer)


@router.get("/portal/apps/{app_id}")
async def portal_app(request: Request, app_id: uuid.UUID) -> Response:
    return await _portal_page(request, "portal/app.html", "portal-app", app=app_id)


@router.get("/portal/signup")
async def portal_signup(request: Request) -> Response:
    return render(request, "portal/signup.html", principal=await session_principal(request), page="portal-signup")


@router.get("/portal/docs")
async def portal_docs(request: Request) -> Response:
    """The docs are public: a developer reads them before signing up."""
    principal = await session_principal(request)
    return render(request, "portal/docs.html", principal=principal, page="portal-docs", wide=True)


@router.get("/portal/docs/api")
async def portal_api_reference(request: Request) -> Response:
    principal = await session_principal(request)
    return render(
        request, "portal/api.html", principal=principal, page="portal-api", wide=True, swagger_version=SWAGGER_VERSION
    )


@router.get("/portal/docs/fhir")
async def portal_fhir_reference(request: Request) -> Response:
    principal = await session_principal(request)
    return render(request, "portal/fhir.html", principal=principal, page="portal-fhir", wide=True)
