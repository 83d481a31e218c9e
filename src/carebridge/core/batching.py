"""Lookups that arrive together, made together.

At a release moment hundreds of requests ask the same kind of question at once (who is behind this token?).
Asked one by one, each is a pooled connection, a statement and its result; the statement's execution, not
the database, is most of the cost. A ``Batcher`` answers the keys that arrive while a lookup is running with
the next one: one statement for all of them. When requests trickle in, a lookup is one key and it adds
nothing but a task switch.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Boolean, any_, bindparam, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from carebridge.database.engine import Database

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batcher(Generic[K, V]):
    """``get(key)`` answers with ``fetch(keys)[key]`` (None when missing), ``fetch`` taking up to ``max_keys``
    distinct keys at a time, one call at a time. A failing ``fetch`` fails the gets it was answering."""

    def __init__(self, fetch: Callable[[list[K]], Awaitable[dict[K, V]]], *, max_keys: int = 256) -> None:
        self._fetch = fetch
        self._max_keys = max_keys
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        answer: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(answer)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        # Each caller awaits a future of its own: one that goes away (cancelled) cancels only that future, and the
        # lookup runs on in its own task for the others (no asyncio.shield, a few microseconds per call).
        return await answer

    async def _run(self) -> None:
        while self._waiting:
            keys = list(self._waiting)[: self._max_keys]
            answers = {key: self._waiting.pop(key) for key in keys}
            try:
                found = await self._fetch(keys)
            except BaseException as exc:
                for futures in answers.values():
                    for f in futures:
                        if not f.done():
                            f.set_exception(exc if isinstance(exc, Exception) else RuntimeError("lookup stopped"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for key, futures in answers.items():
                for f in futures:
                    if not f.done():
                        f.set_result(found.get(key))


class Lookups(Generic[K, V]):
    """One ``Batcher`` per database (per app in a process), each reading with ``read(session, keys)`` in a read
    session of its own: ``await lookups.get(db, key)``."""

    def __init__(self, read: Callable[[AsyncSession, list[K]], Awaitable[dict[K, V]]]) -> None:
        self._read = read
        self._batchers: weakref.WeakKeyDictionary[Database, Batcher[K, V]] = weakref.WeakKeyDictionary()

    async def get(self, db: Database, key: K) -> V | None:
        batcher = self._batchers.get(db)
        if batcher is None:

            async def fetch(keys: list[K]) -> dict[K, V]:
                async with db.read() as session:
                    return await self._read(session, keys)

            batcher = self._batchers[db] = Batcher(fetch)
        return await batcher.get(key)


class InList(ColumnElement[bool]):
    """``column IN (the list bound to name)``, the list given when the statement runs. On PostgreSQL it is
    ``column = ANY(:name)``, the list sent as one array: the SQL text is the same whatever the list's length,
    with nothing to render per execution (an expanding ``IN`` is rendered anew each time, about 7 % of a
    worker's CPU in the booking surge). Elsewhere it is an expanding ``IN``."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement), ("name", InternalTraversal.dp_string)]
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison: no "= 1" after it where booleans are integers (SQLite)

    def __init__(self, column: Any, name: str) -> None:
        self.column = column.__clause_element__() if hasattr(column, "__clause_element__") else column
        self.name = name


def in_list(column: Any, name: str) -> InList:
    return InList(column, name)


def array_rows(**columns: Any) -> Any:
    """``unnest(:a, :b, ...) AS anon(a, b, ...)``, PostgreSQL only: one array per keyword, bound under that name
    when the statement runs (an array of the given column's type), read as rows named the same. Many rows' values
    go in one statement execution (an executemany runs one per row), with one SQL text whatever their number."""
    arrays = [bindparam(name, type_=postgresql.ARRAY(column.type)) for name, column in columns.items()]
    return func.unnest(*arrays).table_valued(*columns).render_derived()


@compiles(InList)
def _expanding_in(element: InList, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw)  # type: ignore[no-any-return]


@compiles(InList, "postgresql")
def _any_array(element: InList, compiler: Any, **kw: Any) -> str:
    array = bindparam(element.name, type_=postgresql.ARRAY(element.column.type))
    return compiler.process(element.column == any_(array), **kw)  # type: ignore[no-any-return]
