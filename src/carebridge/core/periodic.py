"""A step run every ``interval`` seconds in the background (sweeps): its counts logged when any moved, a failure
logged and retried on the next tick, never silent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from carebridge.database.engine import Database

log = structlog.get_logger(__name__)


class Periodic:
    def __init__(
        self, db: Database, interval: float, step: Callable[[Database], Awaitable[dict[str, int]]], name: str
    ) -> None:
        self.db = db
        self.interval = interval
        self.step = step
        self.name = name
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                done = await self.step(self.db)
                if any(done.values()):
                    log.info(self.name, **done)
            except Exception:
                log.exception(f"{self.name}_failed")
