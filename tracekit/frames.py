"""Column helpers shared by the parsers and span pairing.

Trace columns repeat a few values over millions of rows (function names, call-tree text,
task names, event kinds), so work on them is done once per distinct value and gathered
back: :func:`dictionary` gives the distinct values and a code per row, :func:`by_value`
runs a parse over the distinct values only.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

__all__ = ["dictionary", "by_value"]


def dictionary(s: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(codes, values): ``values.gather(codes)`` equals ``s``, codes are UInt32, null where
    ``s`` is null, and ``values`` (named ``s``) holds each distinct value once.

    A Categorical cast into categories of its own does it in one hashing pass (nothing is
    added to polars' global categories, so memory does not grow from chunk to chunk); the
    unique-and-replace fallback serves polars versions without private categories."""
    try:
        cats = pl.Categories.random()
        cat = s.cast(pl.Categorical(cats))
        # (the categories live as long as a column uses them: read them before dropping it)
        values = cats.to_series().alias("s")
        codes = cat.to_physical().cast(pl.UInt32)
        if len(codes) and (codes.max() or 0) >= len(values) and codes.null_count() < len(codes):
            raise TypeError("categories not as expected")
        return codes, values
    except (AttributeError, TypeError, pl.exceptions.PolarsError):
        uniq = s.unique().drop_nulls().alias("s")
        codes = s.replace_strict(uniq, pl.int_range(len(uniq), dtype=pl.UInt32, eager=True), default=None)
        return codes, uniq


def by_value(s: pl.Series, parse: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """``parse`` (a function of a one-column frame ``s`` to a frame of as many rows) run
    once per distinct value of ``s`` and gathered back to every row of ``s``."""
    codes, values = dictionary(s)
    table = parse(values.to_frame("s"))
    return table.select(pl.all().gather(codes))
