"""The regulator's API: rules, warnings, the event trace and the pre-check (docs/supervision.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.principal import Principal
from carebridge.database.engine import Database
from carebridge.supervision import service
from carebridge.supervision.schemas import (
    PrecheckIn,
    PrecheckOut,
    RuleIn,
    RuleOut,
    RulePatch,
    RuleTypeOut,
    RuleVersionOut,
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
