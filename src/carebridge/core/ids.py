"""Identifiers: UUIDv7 everywhere (time ordered, so primary-key indexes stay compact)."""

from __future__ import annotations

import uuid

import uuid_utils
from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    return uuid7()


def request_id() -> str:
    """A new request's id: 32 random hex digits. uuid_utils draws them from a generator seeded once by the
    system; ``uuid.uuid4()`` asks the kernel for every one (a system call per request, slow on this machine)."""
    return uuid_utils.uuid4().hex


def parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
