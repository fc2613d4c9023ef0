"""Direct statements: Core statements compiled once per dialect and run on the driver's cursor.

Why not ``Connection.execute``: per call, SQLAlchemy builds an execution context, result
metadata and processed parameters, which costs 40-90 µs of Python for a one-row statement,
while SQLite itself needs 5-15 µs (measured: bench/send_throughput.py and the notes in
ARCHITECTURE.md). The send and delivery paths run a fixed handful of statements for every
message, so they run them here instead. They are still written in SQLAlchemy Core against the
one schema and still use SQLAlchemy's compiler and each column type's own bind and result
processors; only the per-call machinery is skipped. They run on the DBAPI connection under the
given ``sa.Connection``, so they share its transaction with any Core statement around them.

Limits, checked when a statement is first compiled: no expanding (``IN``) parameters (use
``one_of``, whose text does not depend on the number of values), and an INSERT binds exactly
the keys it is given (plus scalar Python-side column defaults).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.sql.visitors import InternalTraversal

Processor = Callable[[Any], Any] | None
Row = dict[str, Any]
Merge = Callable[[Sequence[Mapping[str, Any]]], Sequence[Mapping[str, Any]]]
Statement = sa.Select[Any] | sa.CompoundSelect[Any] | UpdateBase

_PYFORMAT_NAME = re.compile(r"%\((\w+)\)s")
# A plain one-row INSERT as compiled for PostgreSQL: its table and columns, nothing after the row.
_PLAIN_INSERT = re.compile(
    r"INSERT INTO (\S+) \(([^()]*)\) VALUES \((?:[^()]|\(\w+\))*\)", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # bind names, in the order a positional driver takes them
    positional: bool
    processors: tuple[Processor, ...]  # one per name
    fixed: Mapping[str, Any]  # values compiled into the statement (literals, column defaults)
    columns: tuple[str, ...]  # result column names
    results: tuple[Processor, ...]  # one per result column
    # Derived, for binding and reading without a Python step per plain value (most are
    # strings and numbers that need no processing): every bind value in one C call, then only
    # the positions that have a processor.
    values: Callable[[Mapping[str, Any]], Sequence[Any]]
    processed: tuple[tuple[int, Callable[[Any], Any]], ...]  # (bind position, processor)
    converted: tuple[tuple[str, Callable[[Any], Any]], ...]  # (result column, processor)
    #: PostgreSQL, a plain INSERT: the COPY that writes the same rows (see ``executemany``).
    copy_sql: str | None = None


class _StringList(sa.types.TypeDecorator[list[str]]):
    """A list of strings bound as one value: an array on PostgreSQL, JSON text elsewhere."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(sa.String))
        return dialect.type_descriptor(sa.JSON())


class _OneOf(sa.ColumnElement[bool]):
    __visit_name__ = "msgine_one_of"
    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True  # a condition as it stands (no "= 1" where booleans are ints)
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: sa.ColumnElement[str], name: str) -> None:
        self.column = column
        self.values = sa.bindparam(name, type_=_StringList())


def one_of(column: sa.ColumnElement[str], name: str) -> sa.ColumnElement[bool]:
    """``column`` is one of the strings in the list bound as ``name``.

    Unlike an expanding ``IN``, the statement's text is the same for any number of values, so
    a ``Direct`` statement can hold it and PostgreSQL prepares it once: ``= ANY(array)`` there,
    ``IN (SELECT value FROM json_each(json))`` on SQLite."""
    return _OneOf(column, name)


@compiles(_OneOf)
def _one_of_json(element: _OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = (compiler.process(part, **kw) for part in (element.column, element.values))
    # Compiled text of a column and a bind placeholder: no value is formatted in.
    return f"{column} IN (SELECT value FROM json_each({values}))"  # noqa: S608


@compiles(_OneOf, "postgresql")
def _one_of_array(element: _OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = (compiler.process(part, **kw) for part in (element.column, element.values))
    return f"{column} = ANY({values})"


class Direct:
    """One Core statement, run without SQLAlchemy's per-execution machinery.

    Parameters and rows are plain dicts keyed as in Core (bind names, column keys); values go
    through the column types' processors, so aware datetimes, JSON and bytes behave exactly as
    with ``Connection.execute``.
    """

    __slots__ = ("_plans", "merge", "statement")

    def __init__(self, statement: Statement, *, merge: Merge | None = None) -> None:
        self.statement = statement
        #: Folds deferred rows before they are written (e.g. counter increments of one key
        #: summed into one row), so a batch writes each key once.
        self.merge = merge
        self._plans: dict[tuple[str, str, str, tuple[str, ...]], _Plan] = {}

    def __repr__(self) -> str:
        return f"Direct({str(self.statement).splitlines()[0][:60]!r})"

    def first(self, conn: sa.Connection, params: Mapping[str, Any]) -> Row | None:
        plan, cursor = self._run(conn, params)
        row = cursor.fetchone()
        cursor.close()
        return None if row is None else _row(plan, row)

    def all(self, conn: sa.Connection, params: Mapping[str, Any]) -> list[Row]:
        plan, cursor = self._run(conn, params)
        rows = cursor.fetchall()
        cursor.close()
        return [_row(plan, row) for row in rows]

    def scalar(self, conn: sa.Connection, params: Mapping[str, Any]) -> Any:
        row = self.first(conn, params)
        return None if row is None else next(iter(row.values()))

    def scalars(self, conn: sa.Connection, params: Mapping[str, Any]) -> list[Any]:
        plan, cursor = self._run(conn, params)
        rows = cursor.fetchall()
        cursor.close()
        process = plan.results[0]
        return [row[0] if process is None else process(row[0]) for row in rows]

    def execute(self, conn: sa.Connection, params: Mapping[str, Any]) -> int:
        """Run a DML statement; returns the number of rows it matched."""
        _plan, cursor = self._run(conn, params)
        count = int(cursor.rowcount)
        cursor.close()
        return count

    def executemany(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a DML statement once per row; every row must have the same keys.

        Several rows of a plain INSERT on PostgreSQL are written with COPY instead: psycopg's
        ``executemany`` sends one INSERT per row (in a pipeline, one round trip), at about
        20 µs of Python per row, against 8 µs through COPY, whose rows are formatted in C
        (and which the server also takes in more cheaply). Defaults, constraints and
        triggers apply as for INSERT."""
        if not rows:
            return
        plan = self._plan(conn.dialect, rows[0])
        cursor = _driver(conn).cursor()
        try:
            if plan.copy_sql is not None and len(rows) > 1:
                with cursor.copy(plan.copy_sql) as copy:
                    for row in rows:
                        copy.write_row(_values(plan, row))
            else:
                cursor.executemany(plan.sql, [_bind(plan, row) for row in rows])
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn.dialect, plan, exc) from exc
        finally:
            cursor.close()

    def defer(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue rows for this DML statement until the group-commit writer flushes them, in
        one ``executemany`` per statement for its whole batch instead of one per caller.

        Only for rows nobody reads back in the same transaction. Outside the writer (no
        batch to join) the rows are written at once.
        """
        pending: dict[tuple[Direct, tuple[str, ...]], list[Mapping[str, Any]]] | None
        pending = conn.info.get(_DEFERRED)
        if pending is None:
            self.executemany(conn, rows if self.merge is None else self.merge(rows))
            return
        for row in rows:
            pending.setdefault((self, tuple(row)), []).append(row)

    def _run(self, conn: sa.Connection, params: Mapping[str, Any]) -> tuple[_Plan, Any]:
        plan = self._plan(conn.dialect, params)
        cursor = _driver(conn).cursor()
        try:
            cursor.execute(plan.sql, _bind(plan, params))
        except conn.dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise _wrapped(conn.dialect, plan, exc) from exc
        return plan, cursor

    def _plan(self, dialect: Dialect, params: Mapping[str, Any]) -> _Plan:
        # DML compiles differently per set of keys (the columns it sets); a SELECT does not.
        keys = tuple(params) if isinstance(self.statement, UpdateBase) else ()
        # By kind of dialect, not by object: engines come and go (and an id can be reused).
        key = (dialect.name, dialect.driver, dialect.paramstyle, keys)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _compile(self.statement, dialect, keys)
        return plan


_DEFERRED = "msgine.deferred_rows"
_MEMO = "msgine.batch_memo"


def start_deferring(conn: sa.Connection) -> None:
    """Let ``Direct.defer`` queue rows on ``conn`` until ``flush_deferred``, and open the
    batch's memo (``batch_memo``)."""
    conn.info[_DEFERRED] = {}
    conn.info[_MEMO] = {}


def stop_deferring(conn: sa.Connection) -> None:
    conn.info.pop(_DEFERRED, None)
    conn.info.pop(_MEMO, None)


def batch_memo(conn: sa.Connection) -> dict[Any, Any] | None:
    """A dict that lives as long as the group-commit writer's current transaction (None
    outside one), for values every write of a batch reads alike: an account's policy is
    then read once per batch, not once per send (a round trip each on PostgreSQL). A write
    that changes such a value updates or drops its entry; a failed write's rollback clears
    the memo."""
    memo: dict[Any, Any] | None = conn.info.get(_MEMO)
    return memo


def discard_deferred(conn: sa.Connection) -> None:
    """Drop the queued rows of a write that failed (its savepoint is rolled back), and the
    memo, which may hold what it read or wrote."""
    pending = conn.info.get(_DEFERRED)
    if pending:
        pending.clear()
    memo = conn.info.get(_MEMO)
    if memo:
        memo.clear()


class KeyedSelect:
    """A select of the rows whose ``column`` holds one of some values: for one value a point
    lookup (the cheapest statement), for several one ``one_of`` statement of fixed text.

    Measured per lookup of N values (SQLite; PostgreSQL on the same host):
    N = 1: point 4 us (132 us), one_of 8 us (146 us); N = 8: points one by one 30 us
    (1,018 us), one_of 9 us (146 us), an expanding IN 50 us (216 us); N = 40: one_of 16 us
    (152 us), an expanding IN 74 us (275 us).
    """

    __slots__ = ("_many", "_one")

    def __init__(self, select: sa.Select[Any], column: sa.ColumnElement[str]) -> None:
        self._one = Direct(select.where(column == sa.bindparam("keyed_value")))
        self._many = Direct(select.where(one_of(column, "keyed_values")))

    def __repr__(self) -> str:
        return f"KeyedSelect({self._one!r})"

    def all(
        self, conn: sa.Connection, params: Mapping[str, Any], values: Sequence[str]
    ) -> list[Row]:
        statement, bound = self._for(params, values)
        return [] if statement is None else statement.all(conn, bound)

    def scalars(
        self, conn: sa.Connection, params: Mapping[str, Any], values: Sequence[str]
    ) -> list[Any]:
        statement, bound = self._for(params, values)
        return [] if statement is None else statement.scalars(conn, bound)

    def _for(
        self, params: Mapping[str, Any], values: Sequence[str]
    ) -> tuple[Direct | None, Mapping[str, Any]]:
        if not values:
            return None, params
        if len(values) == 1:
            return self._one, {**params, "keyed_value": values[0]}
        return self._many, {**params, "keyed_values": list(values)}


def flush_deferred(conn: sa.Connection) -> None:
    """Write the queued rows, statement by statement in the order first queued."""
    pending = conn.info.get(_DEFERRED)
    if not pending:
        return
    batches = list(pending.items())
    pending.clear()
    for (statement, _keys), rows in batches:
        statement.executemany(conn, rows if statement.merge is None else statement.merge(rows))


def _driver(conn: sa.Connection) -> Any:
    """The DBAPI connection under ``conn``, after SQLAlchemy has begun its transaction."""
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.driver_connection


def _wrapped(dialect: Dialect, plan: _Plan, exc: Exception) -> sa.exc.StatementError:
    """The driver's error as SQLAlchemy raises it (IntegrityError, OperationalError...), so
    callers and error handlers treat both kinds of statement alike; parameters are hidden."""
    return sa.exc.DBAPIError.instance(
        plan.sql, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
    )


def _bind(plan: _Plan, params: Mapping[str, Any]) -> Any:
    values = _values(plan, params)
    return values if plan.positional else dict(zip(plan.names, values, strict=True))


def _values(plan: _Plan, params: Mapping[str, Any]) -> list[Any]:
    """The statement's parameters for ``params``, in order, through the types' processors."""
    if plan.fixed:
        params = {**plan.fixed, **params}
    values = list(plan.values(params))
    for position, process in plan.processed:
        value = values[position]
        if value is not None:
            values[position] = process(value)
    return values


def _row(plan: _Plan, row: Sequence[Any]) -> Row:
    found = dict(zip(plan.columns, row, strict=True))
    for name, process in plan.converted:
        value = found[name]
        if value is not None:
            found[name] = process(value)
    return found


def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Sequence[Any]]:
    """The values of ``names`` from a mapping, in order, as a sequence."""
    if not names:
        return lambda _params: ()
    if len(names) == 1:
        name = names[0]
        return lambda params: (params[name],)
    return operator.itemgetter(*names)


def _compile(statement: Statement, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
    if isinstance(statement, Insert):
        statement = statement.inline()  # no implicit RETURNING of generated keys
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
    sql = compiled.string
    if "POSTCOMPILE" in sql:
        raise TypeError("direct statements take no expanding (IN) parameters")
    positional = compiled.positiontup is not None
    names = tuple(compiled.positiontup or _PYFORMAT_NAME.findall(sql))
    fixed: dict[str, Any] = {}
    for name in names:
        bind = compiled.binds[name]
        if name not in keys and not bind.required:
            fixed[name] = bind.effective_value
    for column in getattr(compiled, "insert_prefetch", ()):
        if column.key not in keys:
            default = column.default
            if default is None or not default.is_scalar:
                raise TypeError(f"{column.key}: only scalar Python-side defaults are supported")
            fixed[column.key] = default.arg
    processors = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    selected = list(getattr(statement, "exported_columns", ()))
    columns = tuple(column.key for column in selected)
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in selected
    )
    plain = _PLAIN_INSERT.fullmatch(sql) if dialect.name == "postgresql" else None
    return _Plan(
        sql=sql,
        names=names,
        positional=positional,
        processors=processors,
        fixed=fixed,
        columns=columns,
        results=results,
        values=_getter(names),
        processed=tuple((i, p) for i, p in enumerate(processors) if p is not None),
        converted=tuple((c, p) for c, p in zip(columns, results, strict=True) if p is not None),
        copy_sql=None if plain is None else f"COPY {plain[1]} ({plain[2]}) FROM STDIN",
    )
