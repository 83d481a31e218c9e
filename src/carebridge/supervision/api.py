"""The regulator's API: rules, warnings, cases, the event trace and the pre-check (docs/supervision.md)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.principal import Principal
from carebridge.core import clock, live
from carebridge.database.engine import Database
from carebridge.supervision import cases, dashboard, feed, ingest, platform_cases, service
from carebridge.supervision.models import CaseStatus
from carebridge.supervision.schemas import (
    AssignIn,
    CaseDetailOut,
    CaseEntryOut,
    CaseOut,
    CaseTextIn,
    CloseIn,
    ComputeIn,
    ComputeOut,
    IndicatorOut,
    IngestIn,
    IngestOut,
    PlatformAnswerIn,
    PlatformIn,
    PlatformOut,
    PlatformPatch,
    PlatformTokenOut,
    PrecheckIn,
    PrecheckOut,
    RankedHospitalOut,
    RectificationIn,
    RegionDayOut,
    ReopenIn,
    RuleIn,
    RuleOut,
    RulePatch,
    RuleTypeOut,
    RuleVersionOut,
    SupervisorOut,
    TracedEventOut,
    WarningOut,
)

router = APIRouter(prefix="/api/v1/supervision", tags=["supervision"])


@router.get("/rule-types", response_model=list[RuleTypeOut], summary="The rule types and their parameters")
async def rule_types(principal: Principal = Depends(current_principal)) -> list[RuleTypeOut]:
    service.require_supervisor(principal)
    return [RuleTypeOut.model_validate(t) for t in service.rule_types()]


@router.get("/rules", response_model=list[RuleOut], summary="Every rule instance (enabled or not)")
async def list_rules(
    principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[RuleOut]:
    async with db.read() as session:
        return [RuleOut.model_validate(r) for r in await service.list_rules(session, principal=principal)]


@router.post("/rules", response_model=RuleOut, status_code=201, summary="Add a rule (a scoped variant or a CEL rule)")
async def create_rule(
    body: RuleIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> RuleOut:
    async with db.transaction() as session:
        row = await service.create_rule(session, principal=principal, fields=body.model_dump())
        return RuleOut.model_validate(row)


@router.patch("/rules/{rule_id}", response_model=RuleOut, summary="Change a rule: in effect at once, versioned")
async def update_rule(
    rule_id: uuid.UUID,
    body: RulePatch,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> RuleOut:
    async with db.transaction() as session:
        row = await service.update_rule(
            session, principal=principal, rule_id=rule_id, changes=body.model_dump(exclude_unset=True)
        )
        return RuleOut.model_validate(row)


@router.get("/rules/{rule_id}/versions", response_model=list[RuleVersionOut], summary="A rule's history")
async def rule_versions(
    rule_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[RuleVersionOut]:
    async with db.read() as session:
        rows = await service.rule_versions(session, principal=principal, rule_id=rule_id)
        return [RuleVersionOut.model_validate(v) for v in rows]


@router.get("/warnings", response_model=list[WarningOut], summary="Warnings in your region, newest first")
async def list_warnings(
    hospital_id: uuid.UUID | None = None,
    rule: str | None = Query(None, max_length=64),
    severity: Literal["info", "warning", "block"] | None = None,
    since: datetime | None = None,
    limit: int = Query(100, ge=1, le=500),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[WarningOut]:
    async with db.read() as session:
        rows = await service.list_warnings(
            session,
            principal=principal,
            hospital_id=hospital_id,
            rule_code=rule,
            severity=severity,
            since=since,
            limit=limit,
        )
        return [WarningOut.model_validate(w) for w in rows]


@router.get(
    "/warnings/stream",
    summary="New warnings in your region, live (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def warning_stream(
    request: Request,
    since: datetime | None = Query(None, description="also send warnings created after this (default: now)"),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> StreamingResponse:
    """``event: warnings`` with a JSON list of new warnings (newest first) whenever there are some; a comment
    line as keep-alive. Wakes at once when this worker raises warnings, and re-reads every
    ``FEED_REFRESH_SECONDS`` for those raised by other workers."""
    service.require_supervisor(principal)
    live.bind(asyncio.get_running_loop())
    return StreamingResponse(
        feed.stream(db, principal, since or clock.now(), request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/events", response_model=list[TracedEventOut], summary="Search the event trace")
async def search_events(
    hospital_id: uuid.UUID | None = None,
    practitioner_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    type: str | None = Query(None, max_length=64, description="an event type, or a prefix ending in *"),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=500),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[TracedEventOut]:
    async with db.read() as session:
        rows = await service.search_events(
            session,
            principal=principal,
            hospital_id=hospital_id,
            practitioner_id=practitioner_id,
            patient_id=patient_id,
            type_=type,
            since=since,
            until=until,
            limit=limit,
        )
        return [TracedEventOut.model_validate(e) for e in rows]


@router.get("/events/{event_id}", response_model=TracedEventOut, summary="One kept event (a warning's evidence)")
async def get_event(
    event_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> TracedEventOut:
    async with db.read() as session:
        return TracedEventOut.model_validate(await service.get_event(session, principal=principal, event_id=event_id))


@router.get(
    "/trail/{kind}/{subject_id}",
    response_model=list[TracedEventOut],
    summary="A consultation's or a prescription's whole trail, in order",
)
async def trail(
    kind: Literal["consultation", "prescription"],
    subject_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[TracedEventOut]:
    async with db.read() as session:
        rows = await service.trail(session, principal=principal, kind=kind, subject_id=subject_id)
        return [TracedEventOut.model_validate(e) for e in rows]


@router.post("/precheck", response_model=PrecheckOut, summary="What a proposed action would violate")
async def precheck(
    body: PrecheckIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> PrecheckOut:
    async with db.read() as session:
        findings = await service.precheck_http(session, principal=principal, proposal=body.model_dump())
    return PrecheckOut(
        allowed=not any(str(f.rule.severity) == "block" for f in findings),
        findings=[f.as_dict() for f in findings],
    )


# --- indicators and ranking ------------------------------------------------------------------------------------


@router.get("/indicators", response_model=list[IndicatorOut], summary="Daily indicators of hospitals or doctors")
async def indicator_series(
    kind: Literal["hospital", "practitioner"] = "hospital",
    since: date | None = Query(None, description="first day (default: 29 days before until)"),
    until: date | None = Query(None, description="last day (default: today)"),
    hospital_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = Query(None, description="a hospital or a practitioner id"),
    limit: int = Query(1000, ge=1, le=5000),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[IndicatorOut]:
    async with db.read() as session:
        rows = await dashboard.series(
            session,
            principal=principal,
            kind=kind,
            since=since,
            until=until,
            hospital_id=hospital_id,
            subject_id=subject_id,
            limit=limit,
        )
        return [IndicatorOut.model_validate(r) for r in rows]


@router.get("/indicators/daily", response_model=list[RegionDayOut], summary="Your region's totals, day by day")
async def region_daily(
    since: date | None = None,
    until: date | None = None,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[RegionDayOut]:
    async with db.read() as session:
        rows = await dashboard.region_daily(session, principal=principal, since=since, until=until)
        return [RegionDayOut.model_validate(r) for r in rows]


@router.post("/indicators/compute", response_model=ComputeOut, summary="Compute a day's indicators now")
async def compute_indicators(
    body: ComputeIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ComputeOut:
    async with db.transaction() as session:
        return ComputeOut.model_validate(await dashboard.compute(session, principal=principal, day=body.day))


@router.get("/ranking", response_model=list[RankedHospitalOut], summary="Hospitals ranked by warnings")
async def ranking(
    since: datetime | None = Query(None, description="count warnings from (default: 30 days ago)"),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[RankedHospitalOut]:
    async with db.read() as session:
        rows = await dashboard.ranking(session, principal=principal, since=since, limit=limit)
        return [RankedHospitalOut.model_validate(r) for r in rows]


# --- cases ---------------------------------------------------------------------------------------------------


@router.get("/cases", response_model=list[CaseOut], summary="Cases you may see, most recently active first")
async def list_cases(
    status: Literal["active", "closed", "open", "rectifying", "answered", "resolved", "dismissed"] | None = None,
    hospital_id: uuid.UUID | None = None,
    rule: str | None = Query(None, max_length=64),
    assigned_to_me: bool = False,
    overdue: bool = False,
    limit: int = Query(100, ge=1, le=500),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[CaseOut]:
    async with db.read() as session:
        rows = await cases.list_cases(
            session,
            principal=principal,
            status=status,
            hospital_id=hospital_id,
            rule_code=rule,
            assigned_to_me=assigned_to_me,
            overdue=overdue,
            limit=limit,
        )
        return [CaseOut.model_validate(c) for c in rows]


@router.get("/cases/{case_id}", response_model=CaseDetailOut, summary="A case, its history and its warnings")
async def get_case(
    case_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> CaseDetailOut:
    async with db.read() as session:
        view = await cases.get_case(session, principal=principal, case_id=case_id)
        return CaseDetailOut(
            case=CaseOut.model_validate(view.case),
            assignee_name=view.assignee_name,
            entries=[CaseEntryOut.model_validate(e) for e in view.entries],
            warnings=[WarningOut.model_validate(w) for w in view.warnings],
        )


@router.get("/supervisors", response_model=list[SupervisorOut], summary="Who a case may be assigned to")
async def list_supervisors(
    principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[SupervisorOut]:
    async with db.read() as session:
        return [SupervisorOut.model_validate(u) for u in await cases.list_supervisors(session, principal=principal)]


@router.post("/cases/{case_id}/assign", response_model=CaseOut, summary="Assign the case to a supervisor")
async def assign_case(
    case_id: uuid.UUID,
    body: AssignIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> CaseOut:
    async with db.transaction() as session:
        row = await cases.assign(session, principal=principal, case_id=case_id, assignee_user_id=body.assignee_user_id)
        return CaseOut.model_validate(row)


@router.post("/cases/{case_id}/comments", response_model=CaseOut, summary="Add a comment to the case's history")
async def comment_case(
    case_id: uuid.UUID,
    body: CaseTextIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> CaseOut:
    async with db.transaction() as session:
        return CaseOut.model_validate(
            await cases.comment(session, principal=principal, case_id=case_id, text=body.text)
        )


@router.post("/cases/{case_id}/rectification", response_model=CaseOut, summary="Ask the hospital to rectify")
async def request_rectification(
    case_id: uuid.UUID,
    body: RectificationIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> CaseOut:
    async with db.transaction() as session:
        row = await cases.request_rectification(
            session, principal=principal, case_id=case_id, text=body.text, due_in_days=body.due_in_days
        )
        return CaseOut.model_validate(row)


@router.post("/cases/{case_id}/answer", response_model=CaseOut, summary="The hospital answers a rectification request")
async def answer_case(
    case_id: uuid.UUID,
    body: CaseTextIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> CaseOut:
    async with db.transaction() as session:
        return CaseOut.model_validate(await cases.answer(session, principal=principal, case_id=case_id, text=body.text))


@router.post("/cases/{case_id}/close", response_model=CaseOut, summary="Resolve or dismiss the case, with a reason")
async def close_case(
    case_id: uuid.UUID, body: CloseIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> CaseOut:
    async with db.transaction() as session:
        row = await cases.close(
            session, principal=principal, case_id=case_id, outcome=CaseStatus(body.outcome), reason=body.reason
        )
        return CaseOut.model_validate(row)


@router.post("/cases/{case_id}/reopen", response_model=CaseOut, summary="Reopen a closed case")
async def reopen_case(
    case_id: uuid.UUID,
    body: ReopenIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> CaseOut:
    async with db.transaction() as session:
        return CaseOut.model_validate(
            await cases.reopen(session, principal=principal, case_id=case_id, reason=body.reason)
        )


# --- reporting platforms and ingest ---------------------------------------------------------------------------

INGEST_PATH = re.compile(r"^/api/v1/supervision/ingest$")


@router.post("/platforms", response_model=PlatformTokenOut, status_code=201, summary="Register a reporting platform")
async def register_platform(
    body: PlatformIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> PlatformTokenOut:
    async with db.transaction() as session:
        row, token = await ingest.register_platform(session, principal=principal, **body.model_dump())
        return PlatformTokenOut(platform=PlatformOut.model_validate(row), token=token)


@router.get("/platforms", response_model=list[PlatformOut], summary="The reporting platforms")
async def list_platforms(
    principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[PlatformOut]:
    async with db.read() as session:
        return [PlatformOut.model_validate(p) for p in await ingest.list_platforms(session, principal=principal)]


@router.patch("/platforms/{platform_id}", response_model=PlatformOut, summary="Suspend, resume, change regions")
async def change_platform(
    platform_id: uuid.UUID,
    body: PlatformPatch,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> PlatformOut:
    async with db.transaction() as session:
        row = await ingest.change_platform(
            session, principal=principal, platform_id=platform_id, changes=body.model_dump(exclude_unset=True)
        )
        return PlatformOut.model_validate(row)


@router.post("/platforms/{platform_id}/token", response_model=PlatformTokenOut, summary="Issue a new token")
async def rotate_platform_token(
    platform_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> PlatformTokenOut:
    async with db.transaction() as session:
        row, token = await ingest.rotate_token(session, principal=principal, platform_id=platform_id)
        return PlatformTokenOut(platform=PlatformOut.model_validate(row), token=token)


@router.post(
    "/ingest",
    response_model=IngestOut,
    summary="Report a batch of events (a reporting platform, with its token): each checked on its own",
)
async def ingest_events(
    body: IngestIn,
    authorization: str | None = Header(None, description="Bearer <platform token>"),
    db: Database = Depends(get_db),
) -> IngestOut:
    async with db.transaction() as session:
        platform = await ingest.authenticate(session, _platform_token(authorization))
        result = await ingest.ingest(
            session, platform=platform, catalog_version=body.catalog_version, events=body.events
        )
    return IngestOut.model_validate(result)


def _platform_token(authorization: str | None) -> str | None:
    return authorization.partition(" ")[2].strip() if authorization else None


# --- rectification through the reporting platform (standalone engine) -------------------------------------------

PLATFORM_TOKEN = Header(None, alias="Authorization", description="Bearer <platform token>")


@router.get(
    "/platform/cases",
    response_model=list[CaseOut],
    summary="A reporting platform: cases its hospitals were asked to rectify, most recently active first",
)
async def platform_list_cases(
    status: Literal["open", "rectifying", "answered", "resolved", "dismissed"] | None = None,
    limit: int = Query(100, ge=1, le=500),
    authorization: str | None = PLATFORM_TOKEN,
    db: Database = Depends(get_db),
) -> list[CaseOut]:
    async with db.read() as session:
        platform = await ingest.authenticate(session, _platform_token(authorization))
        rows = await platform_cases.list_cases(session, platform=platform, status=status, limit=limit)
        return [CaseOut.model_validate(c) for c in rows]


@router.get(
    "/platform/cases/{case_id}",
    response_model=CaseDetailOut,
    summary="A reporting platform: one of its hospitals' cases, the part shared with the hospital",
)
async def platform_get_case(
    case_id: uuid.UUID, authorization: str | None = PLATFORM_TOKEN, db: Database = Depends(get_db)
) -> CaseDetailOut:
    async with db.read() as session:
        platform = await ingest.authenticate(session, _platform_token(authorization))
        view = await platform_cases.get_case(session, platform=platform, case_id=case_id)
        return CaseDetailOut(
            case=CaseOut.model_validate(view.case),
            assignee_name=None,
            entries=[CaseEntryOut.model_validate(e) for e in view.entries],
            warnings=[WarningOut.model_validate(w) for w in view.warnings],
        )


@router.post(
    "/platform/cases/{case_id}/answer",
    response_model=CaseOut,
    summary="A reporting platform sends its hospital's answer to a rectification request",
)
async def platform_answer_case(
    case_id: uuid.UUID,
    body: PlatformAnswerIn,
    authorization: str | None = PLATFORM_TOKEN,
    db: Database = Depends(get_db),
) -> CaseOut:
    async with db.transaction() as session:
        platform = await ingest.authenticate(session, _platform_token(authorization))
        row = await platform_cases.answer(
            session, platform=platform, case_id=case_id, text=body.text, answered_by=body.answered_by
        )
        return CaseOut.model_validate(row)
