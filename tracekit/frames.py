"""Column helpers shared by the parsers and span pairing.

Trace columns repeat a few values over millions of rows (function names, call-tree text,
task names, event kinds), so work on them is done once per distinct value and gathered
back: :func:`dictionary` gives the distinct values and a code per row, :func:`by_value`
runs a parse over the distinct values only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
from tracekit.jit import njit

__all__ = ["dictionary", "by_value", "codes", "masked"]


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


#: polars' integer types with the numpy and Arrow types of their values
_INTS = ((pl.Int8, np.int8, "int8"), (pl.Int32, np.int32, "int32"), (pl.Int64, np.int64, "int64"),
         (pl.UInt32, np.uint32, "uint32"))


def masked(name: str, values: np.ndarray, valid: np.ndarray, dtype: pl.DataType) -> pl.Series:
    """``values`` as an integer column of ``dtype``, null where not ``valid``: the numbers
    are handed to Arrow as they are, with a validity bitmap (a numpy masked array costs ten
    times as much).  Values that ``dtype`` cannot hold take polars' own conversion."""
    import pyarrow as pa

    np_type = next((t for p, t, _ in _INTS if dtype == p), None)
    if np_type is None or (len(values) and not _fits(values, valid, np.iinfo(np_type))):
        return pl.Series(name, np.ma.masked_array(values, mask=~valid), dtype=dtype)
    vals = np.ascontiguousarray(values, dtype=np_type)
    if valid.all():
        return pl.Series(name, vals, dtype=dtype)
    arrow = getattr(pa, next(a for p, _, a in _INTS if dtype == p))()
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pl.Series(name, pa.Array.from_buffers(arrow, len(vals), [bitmap, pa.py_buffer(vals)]), dtype=dtype)


def _fits(values: np.ndarray, valid: np.ndarray, info: np.iinfo) -> bool:
    """The ``valid`` ``values`` are within ``info``'s range."""
    return bool(values.max(initial=info.min, where=valid) <= info.max and values.min(initial=info.max, where=valid) >= info.min)


def by_value(s: pl.Series, parse: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """``parse`` (a function of a one-column frame ``s`` to a frame of as many rows) run
    once per distinct value of ``s`` and gathered back to every row of ``s``."""
    codes, values = dictionary(s)
    table = parse(values.to_frame("s"))
    return table.select(pl.all().gather(codes))


def codes(s: pl.Series, known: dict[str, int] | None = None) -> np.ndarray:
    """A dense integer code per row of the String column ``s`` (equal values, equal codes;
    -1 for null), numbered in ``known`` (value to code), which grows with each new value, so
    that codes agree from chunk to chunk.

    Columns made by gathering a few distinct values (every parser's names, kinds and tasks)
    are coded from their Arrow string views: a view is the value itself when it is short
    (12 bytes or fewer) and where it is stored otherwise, so equal views are equal values
    and a compiled pass over the views finds the few distinct ones; each of those is then
    looked up once.  A column of mostly distinct storage is coded by :func:`dictionary`."""
    known = {} if known is None else known
    if s.dtype != pl.String or not len(s):
        return _codes_of_values(s.cast(pl.String), known)
    arr = s.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
    if not hasattr(arr, "buffers") or str(arr.type) != "string_view":
        return _codes_of_values(s, known)
    views = np.frombuffer(arr.buffers()[1], dtype=np.uint64).reshape(-1, 2)[arr.offset:arr.offset + len(arr)]
    valid = ~s.is_null().to_numpy() if s.null_count() else np.ones(len(s), dtype=np.bool_)
    by_view, first = _view_codes(views, valid)
    if len(first) * 4 > len(s) and len(first) > 4096:
        return _codes_of_values(s, known)
    values = s.gather(pl.Series(first, dtype=pl.UInt32)).to_list()
    lut = np.array([known.setdefault(v, len(known)) for v in values] + [-1], dtype=np.int64)
    return lut[by_view]


def _codes_of_values(s: pl.Series, known: dict[str, int]) -> np.ndarray:
    idx, values = dictionary(s)
    lut = np.array([known.setdefault(v, len(known)) for v in values.to_list()] + [-1], dtype=np.int64)
    return lut[idx.fill_null(len(values)).to_numpy()]


@njit(cache=True, nogil=True)
def _view_codes(views: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each row's 16-byte view, the number of distinct views for null rows; the
    row where each code first appears): an open-addressing table over the views."""
    n = len(valid)
    size = 64
    table = np.full(size, -1, dtype=np.int64)
    first = np.empty(64, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    ncodes = 0
    nulls = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        if not valid[i]:
            nulls[i] = True
            continue
        a = views[i, 0]
        b = views[i, 1]
        h = (a * np.uint64(0x9E3779B97F4A7C15)) ^ (b * np.uint64(0xC2B2AE3D27D4EB4F))
        h ^= h >> np.uint64(29)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            c = table[slot]
            if c < 0:
                if ncodes == len(first):
                    first = np.concatenate((first, np.empty(len(first), dtype=np.int64)))
                first[ncodes] = i
                table[slot] = ncodes
                out[i] = ncodes
                ncodes += 1
                if ncodes * 2 > size:  # grow: rehash the codes so far
                    size *= 4
                    table = np.full(size, -1, dtype=np.int64)
                    for cc in range(ncodes):
                        r = first[cc]
                        hh = (views[r, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (views[r, 1] * np.uint64(0xC2B2AE3D27D4EB4F))
                        hh ^= hh >> np.uint64(29)
                        s2 = np.int64(hh & np.uint64(size - 1))
                        while table[s2] >= 0:
                            s2 = (s2 + 1) & (size - 1)
                        table[s2] = cc
                break
            r = first[c]
            if views[r, 0] == a and views[r, 1] == b:
                out[i] = c
                break
            slot = (slot + 1) & (size - 1)
    for i in range(n):
        if nulls[i]:
            out[i] = ncodes
    return out, first[:ncodes].copy()
