"""Paged searches that every domain's partner-facing search uses (the FHIR facade's): a page by limit and
offset, the total only when it is cheap or asked for, and time bounds from FHIR's date prefixes."""

from __future__ import annotations

import operator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

# a time condition: (operator, instant), operator one of ">=", ">", "<=", "<"
Bound = tuple[str, datetime]
_OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def bounded(column: Any, bounds: list[Bound]) -> list[Any]:
    return [_OPERATORS[op](column, at) for op, at in bounds]


async def page(
    session: AsyncSession, query: Select[Any], limit: int, offset: int, exact_total: bool
) -> tuple[list[Any], int | None]:
    """A page of rows and the total: known when this is the last page; otherwise counted only if asked
    (a count over a large result costs more than the page itself), else None (more pages follow)."""
    rows = list((await session.execute(query.limit(limit + 1).offset(offset))).all())
    if len(rows) <= limit:
        return rows, offset + len(rows)
    if not exact_total:
        return rows[:limit], None
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return rows[:limit], int(total or 0)
