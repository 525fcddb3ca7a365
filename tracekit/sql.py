"""SQL over the store (``tracekit sql``): DuckDB views of its four tables.

``runs`` is one row per membership of a committed run (as :meth:`Store.runs` reads it);
``spans``, ``events`` and ``windows`` are views over the Parquet parts the committed runs'
rows name (:meth:`tracekit.store.Store.parts`), joined on run_id with the memberships, so
each row carries ``patch``, ``arch``, ``label`` and ``run_id`` (a run in two patches or
labels shows once in each), and a run being written or left by a crash is never seen.  A
table with no part is an empty view with the store's columns.  The columns and their
units are those of :mod:`tracekit.schema` (docs/store.md).

Example::

    SELECT func, count(*) AS calls, median(dur_ns) AS median_ns
    FROM spans WHERE complete GROUP BY func ORDER BY calls DESC LIMIT 10
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from tracekit.errors import TracekitError
from tracekit.store import Store

if TYPE_CHECKING:
    import duckdb

__all__ = ["VIEWS", "QueryError", "connect", "view_sql", "query"]

#: The views every connection has, one per table of the store.
VIEWS: tuple[str, ...] = ("runs", "spans", "events", "windows")

#: The columns every row of spans, events and windows gets from its run's membership.
_MEMBERS = ("patch", "arch", "label", "run_id")


class QueryError(TracekitError):
    """A query DuckDB refuses (syntax, unknown column or table): DuckDB's own message."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(store: Store, table: str) -> str | None:
    """``CREATE VIEW`` of ``table`` (spans, events or windows) over its committed parts,
    joined with the ``runs`` view; None when the table has no part."""
    parts = store.parts(table)
    if not parts.height:
        return None
    paths = "[" + ", ".join(_literal(p) for p in parts["location"].to_list()) + "]"
    data = [c for c in store.schema(table) if c not in _MEMBERS]
    cols = ", ".join(f"d.{c}" for c in data)
    return (f"CREATE OR REPLACE VIEW {table} AS SELECT {cols}, r.patch, r.arch, r.label, r.run_id "
            f"FROM read_parquet({paths}, union_by_name = true) AS d JOIN runs AS r ON d.run_id = r.run_id")


def connect(store: Store) -> "duckdb.DuckDBPyConnection":
    """An in-memory DuckDB connection with the views :data:`VIEWS` over ``store``."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.register("_runs", store.runs().collect().to_arrow())
    con.execute("CREATE OR REPLACE VIEW runs AS SELECT * FROM _runs")
    for table in VIEWS[1:]:
        sql = view_sql(store, table)
        if sql is None:  # an empty view with the table's columns
            con.register(f"_empty_{table}", pl.DataFrame(schema=store.schema(table)).to_arrow())
            sql = f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM _empty_{table}"
        con.execute(sql)
    return con


def query(store: Store, sql: str) -> pl.DataFrame:
    """The result of ``sql`` over ``store``'s views (an empty frame for a statement that
    returns no rows); :class:`QueryError` for what DuckDB refuses."""
    import duckdb

    con = connect(store)
    try:
        rel = con.sql(sql)
        return rel.pl() if rel is not None else pl.DataFrame()
    except duckdb.Error as e:
        said = " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
        raise QueryError(f"sql: {said}") from e
    finally:
        con.close()
