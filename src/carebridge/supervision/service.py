"""What regulators do with the engine: edit rules (versioned, live), read warnings and the event trace.

Who sees what: a regulator is scoped to a region (GB/T 2260: a province covers its cities and districts) and
sees the warnings, cases and events of hospitals in it; a platform admin sees everything. Rules scoped to
``all`` are edited by platform admins and provincial regulators; a rule scoped to a region or a hospital by a
regulator whose region covers it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, cache, clock
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, not_found
from carebridge.events.catalog import CATALOG
from carebridge.events.outbox import Event
from carebridge.supervision import catalog, cel, precheck, registry
from carebridge.supervision.catalog import region_prefix, region_within
from carebridge.supervision.engine import Finding
from carebridge.supervision.models import Rule, RuleVersion, RuleWarning, ScopeKind, TracedEvent
from carebridge.supervision.rule_types import GROUP_BY, REGISTRY

MAX_LIST = 500


def require_supervisor(principal: Principal) -> None:
    principal.require_role(Role.regulator, Role.platform_admin)


def region_filter(principal: Principal, column: Any) -> Any | None:
    """The WHERE clause that keeps a regulator to their region (None: no limit)."""
    if principal.role == Role.platform_admin:
        return None
    return column.startswith(region_prefix(principal.region_code or "-"), autoescape=True)


def scoped(principal: Principal, query: Select[Any], column: Any) -> Select[Any]:
    clause = region_filter(principal, column)
    return query if clause is None else query.where(clause)


# --- rules -------------------------------------------------------------------------------------------------------


async def _may_edit(
    session: AsyncSession, principal: Principal, scope_kind: ScopeKind, scope_value: str | None
) -> None:
    require_supervisor(principal)
    if principal.role == Role.platform_admin:
        return
    mine = principal.region_code or ""
    if scope_kind == ScopeKind.all:
        if len(region_prefix(mine)) > 2:
            raise Forbidden("rule_scope", "rules for every region are edited by a provincial regulator")
        return
    if scope_kind == ScopeKind.region:
        if not region_within(scope_value or "", mine):
            raise Forbidden("rule_scope", "this region is outside yours")
        return
    hospital_id = _hospital_id(scope_value)
    hospital = (await registry.views(session, [hospital_id])).get(hospital_id)
    if hospital is None or not region_within(hospital.region_code, mine):
        raise Forbidden("rule_scope", "this hospital is outside your region")


def _hospital_id(value: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise InvalidInput(
            "invalid_scope", "a hospital scope names a hospital id", details={"field": "scope_value"}
        ) from exc


def _check_scope(scope_kind: ScopeKind, scope_value: str | None) -> str | None:
    if scope_kind == ScopeKind.all:
        if scope_value:
            raise InvalidInput("invalid_scope", "a rule for all has no scope_value", details={"field": "scope_value"})
        return None
    if not scope_value:
        raise InvalidInput("invalid_scope", f"a {scope_kind} scope needs scope_value", details={"field": "scope_value"})
    if scope_kind == ScopeKind.region and not (scope_value.isdigit() and len(scope_value) == 6):
        raise InvalidInput("invalid_scope", "a region scope is a 6-digit code", details={"field": "scope_value"})
    if scope_kind == ScopeKind.hospital:
        return str(_hospital_id(scope_value))
    return scope_value


def _params(rule_type: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return REGISTRY[rule_type].params.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            "invalid_params",
            f"params.{field}: {first['msg']}",
            details={"field": f"params.{field}" if field else "params", "errors": exc.errors(include_url=False)},
        ) from exc


async def _save_version(session: AsyncSession, row: Rule, before: dict[str, Any] | None, actor: str) -> None:
    session.add(
        RuleVersion(rule_id=row.id, version=row.version, changed_by=actor, before=before, after=catalog.snapshot(row))
    )
    await cache.invalidate(session, catalog.RULES)  # every worker reloads the rule set at commit


async def create_rule(session: AsyncSession, *, principal: Principal, fields: dict[str, Any]) -> Rule:
    """A new rule instance (a scoped variant of a type, or a CEL custom rule). 422 ``unknown_rule_type``,
    ``invalid_params``, ``invalid_scope``, ``invalid_expression``; 409 ``rule_code_taken``; 403 ``rule_scope``."""
    rule_type = fields["rule_type"]
    if rule_type not in REGISTRY:
        raise InvalidInput(
            "unknown_rule_type",
            f"no rule type {rule_type!r}",
            details={"field": "rule_type", "known": sorted(REGISTRY)},
        )
    scope_value = _check_scope(fields["scope_kind"], fields.get("scope_value"))
    await _may_edit(session, principal, fields["scope_kind"], scope_value)
    expression = fields.get("expression")
    if rule_type == "cel":
        cel.compile_rule(expression or "")
    elif expression:
        raise InvalidInput(
            "unexpected_expression", "only cel rules have an expression", details={"field": "expression"}
        )
    kind = REGISTRY[rule_type]
    row = Rule(
        code=fields["code"],
        regulation=kind.regulation,
        rule_type=rule_type,
        name=fields.get("name") or kind.title,
        params=_params(rule_type, fields.get("params") or {}),
        expression=expression,
        severity=fields["severity"],
        enabled=fields.get("enabled", True),
        scope_kind=fields["scope_kind"],
        scope_value=scope_value,
        group_by=fields.get("group_by") or kind.group_by,
        version=1,
        updated_by=principal.actor,
        updated_at=clock.now(),
    )
    if await session.scalar(select(Rule.id).where(Rule.code == row.code)) is not None:
        raise Conflict("rule_code_taken", f"a rule {row.code} exists", details={"field": "code"})
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("rule_code_taken", f"a rule {row.code} exists", details={"field": "code"}) from exc
    await _save_version(session, row, None, principal.actor)
    _audit(session, principal, "supervision.rule_created", row)
    return row


async def update_rule(
    session: AsyncSession, *, principal: Principal, rule_id: uuid.UUID, changes: dict[str, Any]
) -> Rule:
    """Change a rule; every change is a new version. In effect in every worker when this commits. 409
    ``rule_version_conflict`` when ``version`` is given and someone saved in between."""
    row = await get_rule(session, rule_id)
    await _may_edit(session, principal, row.scope_kind, row.scope_value)
    expected = changes.pop("version", None)
    if expected is not None and expected != row.version:
        raise Conflict(
            "rule_version_conflict",
            f"the rule is at version {row.version}; reload it and apply your change again",
            details={"version": row.version},
        )
    before = catalog.snapshot(row)
    if "params" in changes:
        changes["params"] = _params(row.rule_type, {**row.params, **changes["params"]})
    if "expression" in changes:
        if row.rule_type != "cel":
            raise InvalidInput(
                "unexpected_expression", "only cel rules have an expression", details={"field": "expression"}
            )
        cel.compile_rule(changes["expression"] or "")
    if "scope_kind" in changes or "scope_value" in changes:
        kind = changes.get("scope_kind", row.scope_kind)
        changes["scope_kind"] = kind
        changes["scope_value"] = _check_scope(
            kind, changes.get("scope_value", row.scope_value if kind == row.scope_kind else None)
        )
        await _may_edit(session, principal, kind, changes["scope_value"])
    if "group_by" in changes and changes["group_by"] not in GROUP_BY:
        raise InvalidInput(
            "invalid_group_by", "group_by is one of " + ", ".join(GROUP_BY), details={"field": "group_by"}
        )
    for key, value in changes.items():
        setattr(row, key, value)
    if catalog.snapshot(row) == before:
        return row
    row.version += 1
    row.updated_at, row.updated_by = clock.now(), principal.actor
    await session.flush()
    await _save_version(session, row, before, principal.actor)
    _audit(session, principal, "supervision.rule_changed", row)
    return row


def _audit(session: AsyncSession, principal: Principal, action: str, row: Rule) -> None:
    audit.record(
        session,
        action=action,
        subject_type="supervision_rule",
        subject_id=row.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        detail={"code": row.code, "version": row.version},
    )


async def get_rule(session: AsyncSession, rule_id: uuid.UUID) -> Rule:
    row = await session.get(Rule, rule_id)
    if row is None:
        raise not_found("rule", rule_id)
    return row


async def list_rules(session: AsyncSession, *, principal: Principal) -> list[Rule]:
    require_supervisor(principal)
    return list((await session.scalars(select(Rule).order_by(Rule.code))).all())


async def rule_versions(session: AsyncSession, *, principal: Principal, rule_id: uuid.UUID) -> list[RuleVersion]:
    require_supervisor(principal)
    await get_rule(session, rule_id)
    query = select(RuleVersion).where(RuleVersion.rule_id == rule_id).order_by(RuleVersion.version.desc())
    return list((await session.scalars(query)).all())


def rule_types() -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "regulation": t.regulation,
            "title": t.title,
            "events": sorted(t.events),
            "group_by": t.group_by,
            "precheck": t.precheck,
            "params_schema": t.params.model_json_schema(),
        }
        for t in REGISTRY.values()
    ]


# --- warnings and the trace ---------------------------------------------------------------------------------


async def list_warnings(
    session: AsyncSession,
    *,
    principal: Principal,
    hospital_id: uuid.UUID | None,
    rule_code: str | None,
    severity: str | None,
    since: datetime | None,
    limit: int,
) -> list[RuleWarning]:
    """Newest first, in the caller's region."""
    require_supervisor(principal)
    query = scoped(principal, select(RuleWarning), RuleWarning.hospital_region)
    if hospital_id is not None:
        query = query.where(RuleWarning.hospital_id == hospital_id)
    if rule_code:
        query = query.where(RuleWarning.rule_code == rule_code)
    if severity:
        query = query.where(RuleWarning.severity == severity)
    if since is not None:
        query = query.where(RuleWarning.created_at > since)
    query = query.order_by(RuleWarning.created_at.desc(), RuleWarning.id.desc()).limit(min(limit, MAX_LIST))
    return list((await session.scalars(query)).all())


async def search_events(
    session: AsyncSession,
    *,
    principal: Principal,
    hospital_id: uuid.UUID | None,
    practitioner_id: uuid.UUID | None,
    patient_id: uuid.UUID | None,
    type_: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[TracedEvent]:
    """After-the-fact tracing: the events kept, newest first, in the caller's region."""
    require_supervisor(principal)
    query = scoped(principal, select(TracedEvent), TracedEvent.hospital_region)
    for column, value in (
        (TracedEvent.hospital_id, hospital_id),
        (TracedEvent.practitioner_id, practitioner_id),
        (TracedEvent.patient_id, patient_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if type_:
        query = query.where(
            TracedEvent.type.startswith(type_.rstrip("*"), autoescape=True)
            if type_.endswith("*")
            else TracedEvent.type == type_
        )
    if since is not None:
        query = query.where(TracedEvent.occurred_at >= since)
    if until is not None:
        query = query.where(TracedEvent.occurred_at < until)
    query = query.order_by(TracedEvent.occurred_at.desc(), TracedEvent.id.desc()).limit(min(limit, MAX_LIST))
    return list((await session.scalars(query)).all())


async def get_event(session: AsyncSession, *, principal: Principal, event_id: uuid.UUID) -> TracedEvent:
    """One kept event (a warning's evidence), in the caller's region; 404 otherwise."""
    require_supervisor(principal)
    query = scoped(principal, select(TracedEvent).where(TracedEvent.id == event_id), TracedEvent.hospital_region)
    row = await session.scalar(query)
    if row is None:
        raise not_found("event", event_id)
    return row


async def trail(session: AsyncSession, *, principal: Principal, kind: str, subject_id: uuid.UUID) -> list[TracedEvent]:
    """A consultation's or a prescription's whole trail, oldest first: its own events, and for a consultation
    its prescriptions', for a prescription its deliveries'."""
    require_supervisor(principal)
    if kind == "consultation":
        clause = TracedEvent.consultation_id == subject_id
    else:
        clause = TracedEvent.prescription_id == subject_id
    query = scoped(principal, select(TracedEvent).where(clause), TracedEvent.hospital_region)
    rows = list((await session.scalars(query.order_by(TracedEvent.occurred_at, TracedEvent.id).limit(2000))).all())
    if not rows:
        raise not_found(kind, subject_id)
    return rows


# --- the pre-check over HTTP ---------------------------------------------------------------------------------


async def precheck_http(session: AsyncSession, *, principal: Principal, proposal: dict[str, Any]) -> list[Finding]:
    """The pre-check for callers outside the process. 422 ``unknown_event_type`` / ``invalid_event_data``."""
    principal.require_role(Role.regulator, Role.platform_admin, Role.doctor, Role.pharmacist, Role.hospital_admin)
    type_ = proposal["type"]
    if type_ not in CATALOG:
        raise InvalidInput("unknown_event_type", f"no event type {type_!r}", details={"field": "type"})
    try:
        data = CATALOG[type_].model_validate(proposal["data"]).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            "invalid_event_data", f"data.{field}: {first['msg']}", details={"field": f"data.{field}"}
        ) from exc
    hospital_id = proposal.get("hospital_id")
    if principal.role in (Role.doctor, Role.pharmacist, Role.hospital_admin):
        if hospital_id is None:
            raise InvalidInput("hospital_required", "name your hospital", details={"field": "hospital_id"})
        principal.require_hospital(hospital_id)
    event = Event(
        id=uuid.uuid4(),
        type=type_,
        occurred_at=clock.now(),
        hospital_id=hospital_id,
        region=proposal.get("region"),
        actor=proposal.get("actor") or principal.actor,
        subject_type=proposal["subject"]["type"],
        subject_id=proposal["subject"]["id"],
        data=data,
    )
    return await precheck.check(session, event)
