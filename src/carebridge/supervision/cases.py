"""Case handling: what supervisors and hospitals do with the warnings the engine groups into cases.

A case moves through::

    open ──request_rectification──▶ rectifying ──answer (hospital)──▶ answered ──resolve / dismiss──▶ closed
      │                                  │                               │
      └────────── resolve / dismiss ─────┴───────────────────────────────┘       closed ──reopen──▶ open

Every step is a conditional update on the status it started from (two supervisors acting at once: one wins, the
other gets 409 ``case_state_changed``), a history entry, an audit record, and in-app notifications: the hospital's
admins when they are asked to rectify, when their case is decided and when they miss a deadline; the assignee
(or, unassigned, the region's supervisors) when a case opens, is answered or is overdue.

Who sees a case: a regulator whose region covers the hospital's, a platform admin, and, once the hospital has been
asked to rectify, that hospital's admins, who see only what is shared with them (the request, their answers, the
decision), never the supervisors' internal comments.

Deadlines: each status has one (``due_at``): a supervisor has ``CASE_DAYS[severity]`` to act on an open or
answered case, a hospital the days given in the request. The sweep escalates every case past its deadline once
per period: the level goes up, the deadline moves on, the assignee and the supervisors a level up are told.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role, User
from carebridge.auth.principal import Principal
from carebridge.core import audit, clock
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, not_found
from carebridge.notifications.service import notify
from carebridge.supervision.catalog import region_prefix, region_within
from carebridge.supervision.models import (
    CLOSED_CASE_STATUSES,
    Case,
    CaseEntry,
    CaseStatus,
    RuleWarning,
    Severity,
)

CASE_DAYS = {Severity.block: 1, Severity.warning: 3, Severity.info: 7}  # a supervisor's time to act
OPEN_STATUSES = (CaseStatus.open, CaseStatus.rectifying, CaseStatus.answered)
MAX_LIST = 500
MAX_WARNINGS_SHOWN = 200


def open_key(rule_id: uuid.UUID | None, source: str, group_key: str) -> str:
    """At most one open case per key: per rule and group for rule cases, per complaint or anomaly otherwise."""
    return f"{rule_id}:{group_key}" if rule_id is not None else f"{source}:{group_key}"


# --- who may see and act --------------------------------------------------------------------------------------


def _visible(principal: Principal) -> ColumnElement[bool] | None:
    """The cases the caller may see (None: all)."""
    if principal.role == Role.platform_admin:
        return None
    if principal.role == Role.regulator:
        return Case.hospital_region.startswith(region_prefix(principal.region_code or "-"), autoescape=True)
    if principal.role == Role.hospital_admin and principal.hospital_id is not None:
        return and_(Case.hospital_id == principal.hospital_id, Case.sent_to_hospital_at.is_not(None))
    raise Forbidden("role_not_allowed", "cases are for supervisors and the hospital concerned")


def _is_supervisor(principal: Principal) -> bool:
    return principal.role in (Role.regulator, Role.platform_admin)


def _require_supervisor(principal: Principal) -> None:
    principal.require_role(Role.regulator, Role.platform_admin)


async def _load(session: AsyncSession, principal: Principal, case_id: uuid.UUID) -> Case:
    """The case, or 404 for one the caller may not see (no telling whether it exists)."""
    query = select(Case).where(Case.id == case_id)
    clause = _visible(principal)
    if clause is not None:
        query = query.where(clause)
    row = await session.scalar(query)
    if row is None:
        raise not_found("case", case_id)
    return row


# --- reading ------------------------------------------------------------------------------------------------


async def list_cases(
    session: AsyncSession,
    *,
    principal: Principal,
    status: str | None,
    hospital_id: uuid.UUID | None,
    rule_code: str | None,
    assigned_to_me: bool,
    overdue: bool,
    limit: int,
) -> list[Case]:
    """Most recently active first. ``status`` is a status, or ``active`` (not closed) or ``closed``."""
    query = select(Case)
    clause = _visible(principal)
    if clause is not None:
        query = query.where(clause)
    if status == "active":
        query = query.where(Case.status.in_(OPEN_STATUSES))
    elif status == "closed":
        query = query.where(Case.status.in_(CLOSED_CASE_STATUSES))
    elif status:
        query = query.where(Case.status == status)
    if hospital_id is not None:
        query = query.where(Case.hospital_id == hospital_id)
    if rule_code:
        query = query.where(Case.rule_code == rule_code)
    if assigned_to_me:
        query = query.where(Case.assignee_user_id == principal.user_id)
    if overdue:
        query = query.where(Case.status.in_(OPEN_STATUSES), Case.due_at <= clock.now())
    query = query.order_by(Case.updated_at.desc(), Case.id.desc()).limit(min(limit, MAX_LIST))
    return list((await session.scalars(query)).all())


@dataclass(slots=True)
class CaseView:
    case: Case
    entries: list[CaseEntry]
    warnings: list[RuleWarning]
    assignee_name: str | None


async def get_case(session: AsyncSession, *, principal: Principal, case_id: uuid.UUID) -> CaseView:
    """The case, its history (hospital admins: the shared part) and its warnings with their evidence."""
    row = await _load(session, principal, case_id)
    return await case_view(session, row, shared_only=not _is_supervisor(principal))


async def case_view(session: AsyncSession, row: Case, *, shared_only: bool) -> CaseView:
    """A case with its history (``shared_only``: what the hospital may read) and its newest warnings."""
    entries_q = select(CaseEntry).where(CaseEntry.case_id == row.id)
    if shared_only:
        entries_q = entries_q.where(CaseEntry.shared.is_(True))
    entries = list((await session.scalars(entries_q.order_by(CaseEntry.at, CaseEntry.id))).all())
    warnings = list(
        (
            await session.scalars(
                select(RuleWarning)
                .where(RuleWarning.case_id == row.id)
                .order_by(RuleWarning.created_at.desc(), RuleWarning.id.desc())
                .limit(MAX_WARNINGS_SHOWN)
            )
        ).all()
    )
    assignee = await session.get(User, row.assignee_user_id) if row.assignee_user_id else None
    return CaseView(row, entries, warnings, assignee.display_name if assignee else None)


# --- acting -------------------------------------------------------------------------------------------------


async def _transition(
    session: AsyncSession,
    principal: Principal | Acting,
    row: Case,
    *,
    allowed_from: tuple[CaseStatus, ...],
    action: str,
    values: dict[str, Any],
) -> None:
    """Apply ``values`` only if the case is still in the status it was read in; 409 otherwise."""
    if row.status not in allowed_from:
        raise Conflict(
            "case_status",
            f"a case that is {row.status} cannot be {action}",
            details={"status": str(row.status), "allowed_from": [str(s) for s in allowed_from]},
        )
    values = {**values, "updated_at": clock.now()}
    try:
        done = await session.scalar(
            update(Case).where(Case.id == row.id, Case.status == row.status).values(**values).returning(Case.id)
        )
    except IntegrityError as exc:  # reopening while a newer case of the same rule and group is open
        raise Conflict(
            "case_already_open",
            "another case of this rule about the same subject is open: handle that one",
            details={"open_key": values.get("open_key")},
        ) from exc
    if done is None:
        raise Conflict("case_state_changed", "someone else changed this case: reload it and try again")
    await session.refresh(row)


@dataclass(frozen=True, slots=True)
class Acting:
    """Who takes a step when it is not a signed-in user: a reporting platform answering for one of its hospitals
    (standalone engine), with the name of the person there who answered."""

    actor: str
    name: str
    role: str
    user_id: uuid.UUID | None = None


def _entry(
    session: AsyncSession,
    principal: Principal | Acting,
    row: Case,
    kind: str,
    text: str | None,
    *,
    shared: bool,
    status_from: CaseStatus | None = None,
) -> None:
    name = principal.name if isinstance(principal, Acting) else principal.username
    role = principal.role if isinstance(principal, Acting) else principal.role.value
    session.add(
        CaseEntry(
            case_id=row.id,
            at=clock.now(),
            actor=principal.actor,
            actor_name=name,
            kind=kind,
            text=text,
            shared=shared,
            status_from=str(status_from) if status_from else None,
            status_to=str(row.status) if status_from else None,
        )
    )
    audit.record(
        session,
        action=f"supervision.case_{kind}",
        subject_type="supervision_case",
        subject_id=row.id,
        actor_user_id=principal.user_id,
        actor_role=role,
        hospital_id=row.hospital_id,
        detail={"number": row.number, "status": str(row.status)},
    )


async def assign(
    session: AsyncSession, *, principal: Principal, case_id: uuid.UUID, assignee_user_id: uuid.UUID
) -> Case:
    """Give the case to a supervisor whose region covers it. 422 ``invalid_assignee``."""
    _require_supervisor(principal)
    row = await _load(session, principal, case_id)
    assignee = await session.get(User, assignee_user_id)
    if (
        assignee is None
        or not assignee.active
        or assignee.role != Role.regulator
        or not region_within(row.hospital_region or "", assignee.region_code or "-")
    ):
        raise InvalidInput(
            "invalid_assignee",
            "a case is assigned to an active regulator whose region covers the hospital",
            details={"field": "assignee_user_id"},
        )
    await _transition(
        session,
        principal,
        row,
        allowed_from=OPEN_STATUSES,
        action="assigned",
        values={"assignee_user_id": assignee.id},
    )
    _entry(session, principal, row, "assigned", f"assigned to {assignee.display_name}", shared=False)
    if assignee.id != principal.user_id:
        _notify(session, [assignee.id], row, "supervision_case_assigned", "案件已分派 Case assigned to you")
    return row


async def comment(session: AsyncSession, *, principal: Principal, case_id: uuid.UUID, text: str) -> Case:
    """A note in the history: internal for supervisors, shared when the hospital admin writes it."""
    row = await _load(session, principal, case_id)
    if row.status in CLOSED_CASE_STATUSES:
        raise Conflict("case_status", "a closed case takes no comments: reopen it first")
    _entry(session, principal, row, "comment", text, shared=not _is_supervisor(principal))
    row.updated_at = clock.now()
    return row


async def request_rectification(
    session: AsyncSession, *, principal: Principal, case_id: uuid.UUID, text: str, due_in_days: int
) -> Case:
    """Ask the hospital to rectify and answer within ``due_in_days``: from now on its admins see the case."""
    _require_supervisor(principal)
    row = await _load(session, principal, case_id)
    if row.hospital_id is None:
        raise Conflict("case_has_no_hospital", "this case concerns no hospital: there is nobody to ask")
    status_from = row.status
    now = clock.now()
    await _transition(
        session,
        principal,
        row,
        allowed_from=(CaseStatus.open, CaseStatus.answered),
        action="sent to the hospital",
        values={
            "status": CaseStatus.rectifying,
            "sent_to_hospital_at": row.sent_to_hospital_at or now,
            "due_at": now + timedelta(days=due_in_days),
            "assignee_user_id": row.assignee_user_id or principal.user_id,
        },
    )
    _entry(session, principal, row, "rectification_requested", text, shared=True, status_from=status_from)
    _notify(
        session,
        await hospital_admins(session, row.hospital_id),
        row,
        "supervision_rectification",
        "整改通知 Rectification requested",
        f"请于{row.due_at:%Y-%m-%d}前整改并答复：{text}",
    )
    return row


async def answer(session: AsyncSession, *, principal: Principal, case_id: uuid.UUID, text: str) -> Case:
    """The hospital's answer to a rectification request; the supervisor decides next."""
    principal.require_role(Role.hospital_admin)
    return await record_answer(session, principal, await _load(session, principal, case_id), text)


async def record_answer(session: AsyncSession, who: Principal | Acting, row: Case, text: str) -> Case:
    """The hospital's answer (by its admin, or by the platform that reports for it) on a case it may see."""
    status_from = row.status
    await _transition(
        session,
        who,
        row,
        allowed_from=(CaseStatus.rectifying,),
        action="answered",
        values={"status": CaseStatus.answered, "due_at": clock.now() + timedelta(days=CASE_DAYS[row.severity])},
    )
    _entry(session, who, row, "answered", text, shared=True, status_from=status_from)
    _notify(
        session,
        [row.assignee_user_id] if row.assignee_user_id else await supervisors(session, row.hospital_region),
        row,
        "supervision_case_answered",
        "医院已答复 The hospital answered",
        text[:200],
    )
    return row


async def close(
    session: AsyncSession, *, principal: Principal, case_id: uuid.UUID, outcome: CaseStatus, reason: str
) -> Case:
    """Resolve (the problem is dealt with) or dismiss (no problem after all), with the reason."""
    _require_supervisor(principal)
    if outcome not in CLOSED_CASE_STATUSES:
        raise InvalidInput("invalid_outcome", "a case closes as resolved or dismissed", details={"field": "outcome"})
    row = await _load(session, principal, case_id)
    status_from = row.status
    await _transition(
        session,
        principal,
        row,
        allowed_from=OPEN_STATUSES,
        action=str(outcome),
        values={"status": outcome, "closed_at": clock.now(), "resolution": reason, "open_key": None},
    )
    _entry(session, principal, row, str(outcome), reason, shared=True, status_from=status_from)
    if row.sent_to_hospital_at is not None and row.hospital_id is not None:
        title = "案件已办结 Case resolved" if outcome == CaseStatus.resolved else "案件已撤销 Case dismissed"
        _notify(session, await hospital_admins(session, row.hospital_id), row, "supervision_case_closed", title, reason)
    return row


async def reopen(session: AsyncSession, *, principal: Principal, case_id: uuid.UUID, reason: str) -> Case:
    """A closed case back to open (new warnings of its rule and group join it again). 409 ``case_already_open``
    when a newer case of the same rule and group is open."""
    _require_supervisor(principal)
    row = await _load(session, principal, case_id)
    status_from = row.status
    await _transition(
        session,
        principal,
        row,
        allowed_from=CLOSED_CASE_STATUSES,
        action="reopened",
        values={
            "status": CaseStatus.open,
            "closed_at": None,
            "resolution": None,
            "open_key": open_key(row.rule_id, row.source, row.group_key),
            "due_at": clock.now() + timedelta(days=CASE_DAYS[row.severity]),
        },
    )
    _entry(session, principal, row, "reopened", reason, shared=True, status_from=status_from)
    if row.sent_to_hospital_at is not None and row.hospital_id is not None:
        _notify(
            session, await hospital_admins(session, row.hospital_id), row, "supervision_case_reopened",
            "案件已重新打开 Case reopened", reason,
        )  # fmt: skip
    return row


# --- deadlines ----------------------------------------------------------------------------------------------


async def escalate_overdue(session: AsyncSession, *, limit: int = 500) -> int:
    """Escalate every case past its deadline, once per period (a conditional update claims each case, so two
    sweepers never escalate one twice). Returns how many were escalated."""
    now = clock.now()
    escalated: list[Case] = []
    for severity, days in CASE_DAYS.items():
        ids = (
            await session.scalars(
                update(Case)
                .where(
                    Case.id.in_(
                        select(Case.id)
                        .where(Case.status.in_(OPEN_STATUSES), Case.due_at <= now, Case.severity == severity)
                        .limit(limit)
                        .scalar_subquery()
                    ),
                    Case.due_at <= now,
                    Case.status.in_(OPEN_STATUSES),
                )
                .values(
                    escalation_level=Case.escalation_level + 1,
                    escalated_at=now,
                    due_at=now + timedelta(days=days),
                    updated_at=now,
                )
                .returning(Case.id)
            )
        ).all()
        if ids:
            escalated.extend((await session.scalars(select(Case).where(Case.id.in_(list(ids))))).all())
    regulators = await _regulators(session) if escalated else []
    for row in escalated:
        missed_by = "the hospital" if row.status == CaseStatus.rectifying else "the supervisor"
        session.add(
            CaseEntry(
                case_id=row.id,
                at=now,
                actor="system",
                actor_name="system",
                kind="escalated",
                text=f"deadline missed by {missed_by}; escalation level {row.escalation_level}",
                shared=row.status == CaseStatus.rectifying,
            )
        )
        audit.record(
            session,
            action="supervision.case_escalated",
            subject_type="supervision_case",
            subject_id=row.id,
            actor_user_id=None,
            actor_role="system",
            hospital_id=row.hospital_id,
            detail={"number": row.number, "level": row.escalation_level, "missed_by": missed_by},
        )
        covering = [u for u in regulators if region_within(row.hospital_region or "", u.region_code or "-")]
        targets = {row.assignee_user_id} if row.assignee_user_id else {u.id for u in covering}
        targets |= {u.id for u in _level_above(covering)}
        if row.status == CaseStatus.rectifying and row.hospital_id is not None:
            targets |= set(await hospital_admins(session, row.hospital_id))
        _notify(
            session,
            sorted(t for t in targets if t is not None),
            row,
            "supervision_case_escalated",
            "案件逾期升级 Case overdue, escalated",
            f"{row.number}: deadline missed by {missed_by} (level {row.escalation_level})",
        )
    return len(escalated)


def _level_above(covering: list[User]) -> list[User]:
    """The supervisors one administrative level above the most local ones covering a case."""
    if not covering:
        return []
    depths = sorted({len(region_prefix(u.region_code or "")) for u in covering}, reverse=True)
    if len(depths) < 2:
        return []
    return [u for u in covering if len(region_prefix(u.region_code or "")) == depths[1]]


# --- who is told --------------------------------------------------------------------------------------------


async def _regulators(session: AsyncSession) -> list[User]:
    query = select(User).where(User.role == Role.regulator, User.active.is_(True))
    return list((await session.scalars(query)).all())


def _most_local(regulators: list[User], region: str | None) -> list[User]:
    """The most local regulators whose region covers ``region`` (a district's before its city's)."""
    covering = [u for u in regulators if region and region_within(region, u.region_code or "-")]
    if not covering:
        return []
    deepest = max(len(region_prefix(u.region_code or "")) for u in covering)
    return [u for u in covering if len(region_prefix(u.region_code or "")) == deepest]


async def supervisors(session: AsyncSession, region: str | None) -> list[uuid.UUID]:
    return [u.id for u in _most_local(await _regulators(session), region)]


async def hospital_admins(session: AsyncSession, hospital_id: uuid.UUID) -> list[uuid.UUID]:
    query = select(User.id).where(
        User.role == Role.hospital_admin, User.hospital_id == hospital_id, User.active.is_(True)
    )
    return list((await session.scalars(query)).all())


def _notify(
    session: AsyncSession,
    user_ids: list[uuid.UUID],
    row: Case,
    kind: str,
    title: str,
    body: str | None = None,
) -> None:
    for user_id in dict.fromkeys(user_ids):
        notify(
            session,
            user_id=user_id,
            kind=kind,
            title=title,
            body=(body or f"{row.number} {row.title}")[:1000],
            data={"case_id": str(row.id), "number": row.number, "status": str(row.status)},
        )


async def notify_opened(session: AsyncSession, cases: list[dict[str, Any]]) -> None:
    """New cases to the region's most local supervisors (called by the engine in the same transaction)."""
    if not cases:
        return
    regulators = await _regulators(session)
    for c in cases:
        for user in _most_local(regulators, c["hospital_region"]):
            notify(
                session,
                user_id=user.id,
                kind="supervision_case_opened",
                title="新案件 New case",
                body=f"{c['number']} {c['title']}"[:1000],
                data={"case_id": str(c["id"]), "number": c["number"], "status": "open"},
            )


async def list_supervisors(session: AsyncSession, *, principal: Principal) -> list[User]:
    """The regulators a case in the caller's region may be assigned to: those inside it, and the caller."""
    _require_supervisor(principal)
    mine = principal.region_code or ""
    rows = await _regulators(session)
    if principal.role != Role.platform_admin:
        rows = [u for u in rows if region_within(u.region_code or "-", mine) or u.id == principal.user_id]
    return sorted(rows, key=lambda u: (u.region_code or "", u.display_name))
