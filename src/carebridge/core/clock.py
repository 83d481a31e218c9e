"""The platform's clock. Everything asks ``clock.now()``; tests and demos may shift it.

Times are stored in UTC; hospitals show their local time (``to_local``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

_offset = timedelta(0)


def now() -> datetime:
    return datetime.now(UTC) + _offset


def shift(delta: timedelta) -> None:
    """Move the clock by ``delta`` (tests, demos). Never used by the product itself."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_datetime(day: date, at: time, tz: str) -> datetime:
    """A hospital-local wall time as an aware UTC datetime."""
    return datetime.combine(day, at, tzinfo=zone(tz)).astimezone(UTC)


def to_local(moment: datetime, tz: str) -> datetime:
    return moment.astimezone(zone(tz))


def local_today(tz: str) -> date:
    return to_local(now(), tz).date()
