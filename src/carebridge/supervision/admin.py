"""Setting up a standalone engine from the command line (``carebridge supervise add-platform | add-user``):
the first accounts and the reporting platforms, before anyone can log in to do it through the API."""

from __future__ import annotations

from typing import Any

from carebridge.auth import service as accounts
from carebridge.auth.models import Role
from carebridge.config import Settings
from carebridge.database.engine import Database
from carebridge.directory.models import Region
from carebridge.supervision import ingest


async def add_platform(settings: Settings, *, code: str, name: str, regions: list[str]) -> dict[str, Any]:
    db = Database(settings)
    try:
        async with db.transaction() as session:
            row, token = await ingest.create_platform(session, actor="cli", code=code, name=name, regions=regions)
            return {"id": str(row.id), "code": row.code, "regions": row.regions, "token": token}
    finally:
        await db.dispose()


async def add_user(
    settings: Settings,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str,
    region: str | None,
    region_name: str | None,
) -> dict[str, Any]:
    """An account; a regulator's region is created if this engine does not know it yet (with its province)."""
    db = Database(settings)
    try:
        async with db.transaction() as session:
            if region:
                province = region[:2] + "0000"
                for code, label in ((province, province), (region, region_name or region)):
                    if await session.get(Region, code) is None:
                        parent = None if code == province else province
                        session.add(Region(code=code, name=label, parent_code=parent))
                        await session.flush()
            user = await accounts.create_user(
                session,
                username=username,
                password=password,
                role=Role(role),
                display_name=display_name,
                region_code=region if role == Role.regulator else None,
            )
            return {"id": str(user.id), "username": user.username, "role": role, "region": region}
    finally:
        await db.dispose()
