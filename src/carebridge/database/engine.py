"""Engine and units of work.

One transaction per request: routers open ``db.transaction()`` around one service call; services never
commit. On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (WAL, busy timeout) and writers in
one process queue on an asyncio lock instead of spinning in SQLite's busy handler; reads use a deferred
``BEGIN`` and run alongside writers (WAL).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import sort_tables

from carebridge.config import Settings

AFTER_COMMIT = "after_commit"


def _json_text(value: Any) -> str:
    """JSON columns' text: orjson, several times faster than the json module on the booking desk's events and
    stored answers; non-string keys become strings, as with the json module."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


JSON_CODEC = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def make_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.database_url,
            **JSON_CODEC,
            echo=settings.database_echo,
            connect_args={"timeout": 30},
            pool_size=settings.database_pool_size,
            max_overflow=0,
            pool_timeout=60,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    # Statements are prepared once per connection and live as long as it does. After five runs PostgreSQL may
    # keep a generic plan, made with the statistics of that moment, until the next ANALYZE of the table: a plan
    # made while a table was empty (a new installation, a bulk load that autovacuum has not analysed yet) scans
    # the whole table until then. ``force_custom_plan`` plans every run instead (measured: 25 % fewer bookings/s).
    connect_args = {"server_settings": {"plan_cache_mode": settings.database_plan_cache_mode}}
    if settings.database_pool_size <= 0:
        return create_async_engine(settings.database_url, poolclass=NullPool, connect_args=connect_args, **JSON_CODEC)
    # A fixed set of connections, no overflow: a connection opened for a burst and closed when it is returned costs
    # a PostgreSQL backend's start and (asyncpg's default) a TLS attempt; at a release moment the token lookups
    # of hundreds of new callers did that over and over (8 % of a worker's CPU). Requests wait for a connection.
    return create_async_engine(
        settings.database_url,
        **JSON_CODEC,
        connect_args=connect_args,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
        max_overflow=0,
        pool_timeout=60,
    )


class Database:
    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings)
        self.is_sqlite = settings.is_sqlite
        self._writes = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Reads: a deferred BEGIN on SQLite (a WAL snapshot beside the writer); on PostgreSQL no transaction at
        # all (autocommit: each statement sees committed data, as READ COMMITTED would, without BEGIN/ROLLBACK).
        read_engine = (
            self.engine.execution_options(sqlite_begin="DEFERRED")
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._reads = async_sessionmaker(read_engine, expire_on_commit=False, autoflush=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction, committed when the block ends without an exception.

        Callables registered with ``on_commit(session, fn)`` run after the commit succeeded.
        """
        lock = self._write_lock or contextlib.nullcontext()
        async with lock:  # type: ignore[attr-defined]
            async with self._writes() as session:
                async with session.begin():
                    yield session
        for fn in session.info.get(AFTER_COMMIT, ()):
            fn()

    @contextlib.asynccontextmanager
    async def single_statement(self) -> AsyncIterator[AsyncSession]:
        """For a write that is one statement, atomic by itself: on PostgreSQL it runs in autocommit (no BEGIN
        and COMMIT round trips; each statement commits as it ends, so never put two dependent writes here);
        on SQLite it is a ``transaction()``."""
        if self.is_sqlite:
            async with self.transaction() as session:
                yield session
            return
        async with self._reads() as session:  # the autocommit engine
            yield session

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """For reads only: nothing written here is kept."""
        async with self._reads() as session:
            yield session  # autobegins; closing the session rolls back

    async def dispose(self) -> None:
        await self.engine.dispose()


def on_commit(session: AsyncSession, fn: Callable[[], None]) -> None:
    """Run ``fn`` after the session's transaction commits (never if it rolls back)."""
    session.info.setdefault(AFTER_COMMIT, []).append(fn)


def insert_for(session: AsyncSession, model: Any) -> Any:
    """The dialect's INSERT (for ON CONFLICT) on the model's table: a Core statement, so a list of rows is one
    executemany (the ORM's bulk path splits rows whose None columns differ into separate statements)."""
    return (postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert)(model.__table__)


ROWS = "rows_together"


def add_row(session: AsyncSession, model: Any, **values: Any) -> None:
    """A new row of ``model`` (its attributes as keyword arguments): an ORM object added to the session, or, inside
    ``rows_together(session)``, a plain row written with the others of its table at the end of that block."""
    rows = session.info.get(ROWS)
    if rows is None:
        session.add(model(**values))
    else:
        rows.append((model, values))


@contextlib.contextmanager
def drafted_rows(session: AsyncSession) -> Iterator[list[tuple[Any, dict[str, Any]]]]:
    """The rows ``add_row`` makes in the block are kept aside in the list it yields, not added to the session:
    ``add_rows`` adds them later in the transaction, or they are dropped."""
    outer = session.info.get(ROWS)
    drafted: list[tuple[Any, dict[str, Any]]] = []
    session.info[ROWS] = drafted
    try:
        yield drafted
    finally:
        if outer is None:
            session.info.pop(ROWS, None)
        else:
            session.info[ROWS] = outer


def add_rows(session: AsyncSession, rows: Iterable[tuple[Any, dict[str, Any]]]) -> None:
    """Rows kept by ``drafted_rows``, added as ``add_row`` would (inside ``rows_together``: written with its
    others, as they are)."""
    together = session.info.get(ROWS)
    if together is not None:
        together.extend(rows)
        return
    for model, values in rows:
        session.add(model(**values))


def row_view(model: Any, values: dict[str, Any]) -> Any:
    """A read-only view of ``values`` (a row given to ``add_row``) with ``model``'s column attributes, to be read
    as the row it will be: a plain object, not an ORM one (an ORM attribute read is a Python call through its
    descriptor, and the booking desk reads every column of every appointment it answers). Never added to a
    session; a column not in ``values`` reads as None, as on a new object before its flush; relationships and
    the model's own methods are not there."""
    view = _view_class(model)()
    view.__dict__.update(values)
    return view


class Viewed:
    """``model``'s table columns, to be selected (``columns``) in a Core statement and read back as ``row_view``s
    (``view(row[start:end])``): a Core select skips the ORM's per-statement compile state and per-row loading,
    which for a few rows cost more than running the statement."""

    __slots__ = ("model", "columns", "_names", "_class")

    def __init__(self, model: Any) -> None:
        by_key = {key: attr for attr, key in _columns(model).items()}
        table: Table = model.__table__
        self.model = model
        self.columns = [column for column in table.columns if column.key in by_key]
        self._names = tuple(by_key[column.key] for column in self.columns)
        self._class = _view_class(model)

    def view(self, values: Sequence[Any]) -> Any:
        """The model's values in ``columns``' order as a ``row_view``."""
        view = self._class()
        view.__dict__.update(zip(self._names, values, strict=True))
        return view


@functools.cache
def _view_class(model: Any) -> type:
    """``model``'s columns as class attributes set to None, for ``row_view``."""
    return type(f"{model.__name__}Row", (), {"__module__": __name__, **dict.fromkeys(_columns(model))})


@contextlib.asynccontextmanager
async def rows_together(session: AsyncSession) -> AsyncIterator[None]:
    """New rows made in the block, by ``add_row`` and as ORM objects added to the session, are written when it
    ends: one INSERT per table and set of columns for all of them (on PostgreSQL, all of those in one statement).
    The ORM objects leave the session (they stay readable, detached).

    For many plain new rows at once (the booking desk's appointments, events, audit and idempotency records): the
    unit of work's flush tracks, orders and refreshes each object, and building the objects alone cost more CPU
    than deciding the bookings. Column defaults and types apply as in a flush; no relationship cascades, no server
    values read back; tables are written parents first (foreign keys), rows in the order they were made."""
    rows: list[tuple[Any, dict[str, Any]]] = []
    session.info[ROWS] = rows
    try:
        yield
    finally:
        session.info.pop(ROWS, None)
    groups: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for model, values in rows:
        row = values if _same_keys(model) else {_columns(model)[key]: value for key, value in values.items()}
        groups.setdefault((model.__table__, tuple(row)), []).append(row)
    for obj in sorted(session.new, key=lambda obj: inspect(obj).insert_order):
        state = inspect(obj)
        row = {key: obj.__dict__[attr] for attr, key in _columns(type(obj)).items() if attr in obj.__dict__}
        groups.setdefault((state.mapper.local_table, tuple(row)), []).append(row)
        session.expunge(obj)
    ordered = [
        (table, columns, group)
        for table in sort_tables({table for table, _ in groups})
        for (of, columns), group in groups.items()
        if of is table
    ]
    if session.bind.dialect.name != "postgresql":
        for table, _, group in ordered:
            await session.execute(table.insert(), group)
        return
    # PostgreSQL: every table's rows in one statement, ``WITH w0 AS (INSERT ... SELECT FROM unnest(an array of the
    # table's row type)), w1 AS (...) SELECT 1``: one round trip for the whole block, and a text that does not
    # change with the number of rows (a multi-row VALUES list has a text per number of rows: measured, about 3 MB
    # more per worker in prepared statements, docs/performance.md). The foreign keys are checked at the end of the
    # statement, so parents and children go in together. Each row is one element of the array: asyncpg checks
    # every element of an array for being itself an array, a Python call per value when there was one array per
    # column (about 9 % of a batched booking's instructions, docs/performance.md).
    shapes: list[tuple[Table, tuple[str, ...]]] = []
    params: dict[str, list[tuple[Any, ...]]] = {}
    dialect = session.bind.dialect
    for table, columns, group in ordered:
        try:
            extra = _with_defaults(table, columns)
        except ValueError:  # a default PostgreSQL computes per row: these rows on their own
            await session.execute(table.insert(), group)
            continue
        given = dict(zip(columns, zip(*(row.values() for row in group), strict=True), strict=True))
        for c, default in extra:
            given[c] = tuple(default() for _ in group)
        by_name: dict[str, Sequence[Any]] = {}
        for c, values in given.items():
            column = table.c[c]
            process = column.type._cached_bind_processor(dialect)
            by_name[column.name] = values if process is None else [process(v) for v in values]
        nones = (None,) * len(group)
        layout = await _row_layout(session, table)
        if not by_name.keys() <= set(layout):
            raise ValueError(f"{table.name}: columns {sorted(by_name.keys() - set(layout))} not in the database")
        params[f"w{len(shapes)}"] = list(zip(*(by_name.get(name, nones) for name in layout), strict=True))
        shapes.append((table, tuple(by_name)))
    if shapes:
        await session.execute(_insert_all(dialect, tuple(shapes)), params)


_ROW_LAYOUTS: dict[tuple[Any, str], tuple[str, ...]] = {}
_LAYOUT = text(
    "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:table AS regclass) AND attnum > 0 AND NOT attisdropped"
    " ORDER BY attnum"
)


async def _row_layout(session: AsyncSession, table: Table) -> tuple[str, ...]:
    """The table's columns in the order of its row type in the database (read once per database and table): the
    order of a row's values in an array of that type."""
    key = (session.bind.url, table.fullname)  # a URL is immutable and hashable: nothing rendered per batch
    layout = _ROW_LAYOUTS.get(key)
    if layout is None:
        quoted = session.bind.dialect.identifier_preparer.format_table(table)
        layout = _ROW_LAYOUTS[key] = tuple((await session.scalars(_LAYOUT, {"table": quoted})).all())
    return layout


def _with_defaults(table: Table, columns: tuple[str, ...]) -> list[tuple[str, Callable[[], Any]]]:
    """The table's columns missing from ``columns`` that have a default made in Python, each with a function
    giving it (what Core's INSERT fills in itself)."""
    out: list[tuple[str, Callable[[], Any]]] = []
    for column in table.columns:
        default = column.default
        if column.key in columns or default is None:
            continue
        if default.is_callable:  # a plain function, which Core wraps to take (and ignore) a context
            out.append((column.key, functools.partial(default.arg, None)))  # type: ignore[attr-defined]
        elif default.is_scalar:
            out.append((column.key, lambda value=default.arg: value))  # type: ignore[attr-defined,misc]
        else:  # a SQL expression or a sequence: not made in Python
            raise ValueError(f"{table.name}.{column.key}: a default the rows cannot be given in Python")
    return out


@functools.cache
def _insert_all(dialect: Any, shapes: tuple[tuple[Table, tuple[str, ...]], ...]) -> Any:
    """One INSERT per (table, columns) as data-modifying CTEs of one statement, each reading the given columns of
    an array of the table's row type bound as ``w<n>``."""
    quote = dialect.identifier_preparer
    inserts = []
    for n, (table, names) in enumerate(shapes):
        into = quote.format_table(table)
        listed = ", ".join(quote.quote(name) for name in names)
        picked = ", ".join(f"r.{quote.quote(name)}" for name in names)
        inserts.append(
            f"w{n} AS (INSERT INTO {into} ({listed}) SELECT {picked} FROM unnest(CAST(:w{n} AS {into}[])) AS r)"
        )
    return text(f"WITH {', '.join(inserts)} SELECT 1").bindparams(*(bindparam(f"w{n}") for n in range(len(shapes))))


@functools.cache
def _same_keys(model: Any) -> bool:
    """Whether every column attribute of ``model`` is named as its column's key (rows need no renaming)."""
    return all(attr == key for attr, key in _columns(model).items())


@functools.cache
def _columns(model: Any) -> dict[str, str]:
    """A mapped class's column attributes: attribute name -> column key."""
    return {prop.key: prop.columns[0].key for prop in inspect(model).column_attrs}
