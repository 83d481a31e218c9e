"""Base classes for API input and output.

Input is strict about shape: unknown fields are rejected (422 naming the field) and numbers, strings and
booleans must arrive as JSON numbers, strings and booleans (use pydantic's ``StrictInt``/``StrictStr``/
``StrictBool`` in input models). Dates, times and ids arrive as ISO strings.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

T = TypeVar("T")


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Patch(Input):
    """A partial update: fields left out keep their value. ``NOT_NULL`` names the fields that may be left out
    but not sent as ``null`` (their column has no empty value): a ``null`` for one is a 422 naming it, never a
    failed write."""

    NOT_NULL: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Patch:
        errors = [
            InitErrorDetails(
                type=PydanticCustomError("null_not_allowed", "may not be null: leave the field out to keep its value"),
                loc=(name,),
                input=None,
            )
            for name in sorted(self.model_fields_set & self.NOT_NULL)
            if getattr(self, name) is None
        ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Output, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
