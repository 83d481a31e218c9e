"""State changes as conditional updates: ``UPDATE ... WHERE id = :id AND status IN (:allowed)``.

Two requests racing for the same change (two pharmacists approving, two pharmacy clerks dispensing) both run the
update; the database lets exactly one match, the other gets 409 naming the state it found.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.core.errors import Conflict


async def transition(
    session: AsyncSession, row: Any, *, allowed: tuple[Any, ...], to: Any, values: dict[str, Any], code: str, noun: str
) -> None:
    """Move ``row`` (an ORM object with ``id``, ``status`` and ``updated_at``) to ``to`` if it is in one of
    ``allowed``; 409 ``code`` otherwise. ``row`` is refreshed either way."""
    model = type(row)
    result = await session.execute(
        update(model)
        .where(model.id == row.id, model.status.in_(allowed))
        .values(status=to, updated_at=clock.now(), **values)
    )
    await session.refresh(row)
    if result.rowcount != 1:
        raise Conflict(
            code, f"a {row.status.value} {noun} cannot become {to.value}", details={"status": row.status.value}
        )
