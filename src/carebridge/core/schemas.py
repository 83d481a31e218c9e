"""Base classes for API input and output.

Input is strict about shape: unknown fields are rejected (422 naming the field) and numbers, strings and
booleans must arrive as JSON numbers, strings and booleans (use pydantic's ``StrictInt``/``StrictStr``/
``StrictBool`` in input models). Dates, times and ids arrive as ISO strings.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Output, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
