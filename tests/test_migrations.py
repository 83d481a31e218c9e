"""The Alembic migrations build exactly the schema the models describe, on this run's database."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from carebridge.database.models import metadata


def test_models_match_migrations(settings) -> None:  # type: ignore[no-untyped-def]
    async def diff() -> list:  # type: ignore[type-arg]
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                    )
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []
