"""Rectification through the reporting platform (standalone engine).

A regulator running ``carebridge supervise`` watches hospitals it knows only through the platforms that report
for them: those hospitals have no accounts there. So the platform, signed in with its reporting token, reads the
cases its hospitals have been asked to rectify (the shared part only, as a hospital admin would) and sends the
hospital's answer, naming who at the hospital gave it. Everything else about the case (the conditional step, the
history entry, the audit record, the supervisors' notification) is the same as for a hospital admin's answer.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core.errors import not_found
from carebridge.supervision import cases
from carebridge.supervision.models import Case, CaseStatus, ReportingPlatform, SupervisedHospital


def _of_platform(platform: ReportingPlatform) -> ColumnElement[bool]:
    """Cases of the platform's hospitals that have been sent to the hospital."""
    own = select(SupervisedHospital.id).where(SupervisedHospital.platform_id == platform.id)
    return (Case.hospital_id.in_(own)) & Case.sent_to_hospital_at.is_not(None)


async def list_cases(
    session: AsyncSession, *, platform: ReportingPlatform, status: str | None, limit: int
) -> list[Case]:
    """Most recently active first; ``status`` one of rectifying, answered, resolved, dismissed, open (reopened)."""
    query = select(Case).where(_of_platform(platform))
    if status:
        query = query.where(Case.status == CaseStatus(status))
    query = query.order_by(Case.updated_at.desc(), Case.id.desc()).limit(min(limit, cases.MAX_LIST))
    return list((await session.scalars(query)).all())


async def _load(session: AsyncSession, platform: ReportingPlatform, case_id: uuid.UUID) -> Case:
    row = await session.scalar(select(Case).where(Case.id == case_id, _of_platform(platform)))
    if row is None:
        raise not_found("case", case_id)  # another platform's, never sent, or unknown: no telling which
    return row


async def get_case(session: AsyncSession, *, platform: ReportingPlatform, case_id: uuid.UUID) -> cases.CaseView:
    return await cases.case_view(session, await _load(session, platform, case_id), shared_only=True)


async def answer(
    session: AsyncSession, *, platform: ReportingPlatform, case_id: uuid.UUID, text: str, answered_by: str
) -> Case:
    """The hospital's answer, sent by its platform: 409 ``case_status`` unless the case awaits an answer."""
    row = await _load(session, platform, case_id)
    who = cases.Acting(actor=f"platform:{platform.code}", name=f"{answered_by} ({platform.name})", role="platform")
    return await cases.record_answer(session, who, row, text)
