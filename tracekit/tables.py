"""Printing rows: one table renderer for every command that lists rows.

Invariants:

* A value is never truncated.  On a terminal the table fits its width, a cell too wide
  for its column folding onto more lines; anywhere else (a pipe, a file, a mail) the
  table is plain ASCII, columns padded with spaces, each row on one line, however wide.
* ``csv`` is RFC 4180 with a header row; ``json`` is a list of row objects.  Nested
  values (structs, lists) are JSON in csv and in tables.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import polars as pl
from rich.console import Console

__all__ = ["OUTPUT_FORMATS", "print_frame", "print_rows", "to_json", "to_csv", "plain_table"]

#: What ``--format`` accepts in the commands that list rows.
OUTPUT_FORMATS = ("table", "csv", "json")


def _jsonable(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and v != v:  # NaN has no JSON spelling
        return None
    return v


def _cell(v: Any) -> str:
    """A value as a table or csv cell: nothing for null, JSON for nested values."""
    if v is None:
        return ""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(_jsonable(v), sort_keys=True)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def to_json(df: pl.DataFrame) -> str:
    """The rows of ``df`` as a JSON list of objects, one per row, keys in column order."""
    return json.dumps([_jsonable(r) for r in df.iter_rows(named=True)], indent=1)


def to_csv(df: pl.DataFrame) -> str:
    """The rows of ``df`` as CSV with a header row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(df.columns)
    for row in df.iter_rows():
        w.writerow([_cell(v) for v in row])
    return buf.getvalue()


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None,
                title: str | None = None) -> str:
    """An ASCII table: a header, a rule of dashes, one line per row, columns two spaces
    apart, ``right``-aligned where asked (numbers); no value shortened."""
    right = list(right) if right is not None else [False] * len(columns)
    widths = [len(c) for c in columns]
    for r in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, r)]

    def line(values: Sequence[str]) -> str:
        cells = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return "  ".join(cells).rstrip()

    out = [title] if title else []
    out += [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"


def print_rows(console: Console, columns: Sequence[str], rows: Sequence[Sequence[str]],
               right: Sequence[bool] | None = None, title: str | None = None) -> None:
    """Print string cells as a table: rich, fitting the width, on a terminal; else
    :func:`plain_table`."""
    if not console.is_terminal:
        console.file.write(plain_table(columns, rows, right, title))
        console.file.flush()
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    right = list(right) if right is not None else [False] * len(columns)
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    for c, r in zip(columns, right):
        t.add_column(c, justify="right" if r else "left", overflow="fold")
    for row in rows:
        t.add_row(*(Text(v) for v in row))  # values from traces are not markup
    console.print(t)


def print_frame(df: pl.DataFrame, fmt: str, console: Console, title: str | None = None) -> None:
    """Print ``df`` as ``fmt`` (one of :data:`OUTPUT_FORMATS`)."""
    if fmt == "json":
        console.file.write(to_json(df) + "\n")
    elif fmt == "csv":
        console.file.write(to_csv(df))
    else:
        right = [dt.is_numeric() for dt in df.dtypes]
        print_rows(console, df.columns, [[_cell(v) for v in r] for r in df.iter_rows()], right, title)
        return
    console.file.flush()
