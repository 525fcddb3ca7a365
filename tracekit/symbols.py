"""Kernel symbol names: the canonical function name a span or event is stored under.

The same kernel function is printed in several ways depending on arch, compiler and tracer
options: ppc64 ELFv1 function descriptors give text symbols a leading dot
(``.free_pgtables``), GCC emits clones (``zap_pte_range.isra.0``, ``.constprop.N``,
``.part.N``, ``.cold``), ``sym-offset`` adds ``+0x2d/0xb0``, ``sym-addr`` adds `` <addr>``
and module symbols carry `` [module]``.  All of them map to one canonical name; the raw
symbol is kept beside it where it differs.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from tracekit.frames import by_value

__all__ = ["canonical", "canonical_expr", "canonicalize", "printed_symbols", "CLONE_SUFFIX_RE"]

#: GCC clone / split suffixes, possibly repeated (``foo.isra.0.cold``) and LLVM's ``.llvm.N``.
CLONE_SUFFIX_RE = r"(?:\.(?:isra|constprop|part|cold|lto_priv|llvm|clone|localalias)(?:\.\d+)?)+$"

_STRIP_RE = re.compile(
    r"^\s*\.?"  # ppc64 ELFv1 dot symbol
    r"(?P<name>[^\s+\[<]+?)"
    + r"(?:\.(?:isra|constprop|part|cold|lto_priv|llvm|clone|localalias)(?:\.\d+)?)*"
    + r"(?:\+0x[0-9a-fA-F]+(?:/0x[0-9a-fA-F]+)?)?"  # +off/size
    + r"(?:\s+<[0-9a-fA-Fx]+>)?"  # sym-addr
    + r"(?:\s+\[[^\]]+\])?\s*$"  # [module]
)


def canonical(symbol: str | None) -> str | None:
    """The canonical name of a printed kernel symbol (``.zap_pte_range.isra.0+0x1/0x2``
    -> ``zap_pte_range``).  Returns the input stripped when it does not look like a symbol."""
    if symbol is None:
        return None
    m = _STRIP_RE.match(symbol)
    if not m:
        return symbol.strip()
    return m.group("name")


def canonical_expr(col: pl.Expr) -> pl.Expr:
    """:func:`canonical` as a vectorized polars expression over a String column."""
    return (
        col.str.strip_chars()
        .str.replace(r"\s+\[[^\]]+\]$", "")  # [module]
        .str.replace(r"\s+<[0-9a-fA-Fx]+>$", "")  # sym-addr
        .str.replace(r"\+0x[0-9a-fA-F]+(?:/0x[0-9a-fA-F]+)?$", "")  # +off/size
        .str.replace(CLONE_SUFFIX_RE, "")
        .str.replace(r"^\.([A-Za-z_])", "$1")  # ppc64 ELFv1 dot
    )


def canonicalize(df: pl.DataFrame, raw: str = "raw_func", out: str = "func") -> pl.DataFrame:
    """Add column ``out``, the canonical names of ``raw``, and null ``raw`` where it equals
    its canonical name.  Traces repeat a few hundred names millions of times, so the string
    work runs once per distinct name (:func:`tracekit.frames.by_value`)."""
    canon = by_value(df.get_column(raw), lambda u: u.select(canonical_expr(pl.col("s")).alias(out)))
    df = df.with_columns(canon.get_column(out).cast(pl.String))
    return df.with_columns(pl.when(pl.col(raw) != pl.col(out)).then(pl.col(raw)).alias(raw))


def printed_symbols(raw: bytes, starts: np.ndarray, ends: np.ndarray, raw_name: str, name: str) -> dict[str, pl.Series]:
    """The symbols a scanner found printed at ``raw[starts[i]:ends[i]]`` (-1: none) as two
    columns: ``name``, the canonical function name, and ``raw_name``, the symbol as printed
    where it differs (a ppc64 dot symbol, a clone suffix, ``+off/size``).  The work runs once
    per distinct symbol, then is gathered by code."""
    from tracekit.parsers.scan import dictionary

    codes, values = dictionary(raw, starts, ends, "raw_func")
    canon = canonicalize(values.to_frame())
    return {name: canon.get_column("func").gather(codes).alias(name),
            raw_name: canon.get_column("raw_func").gather(codes).alias(raw_name)}
