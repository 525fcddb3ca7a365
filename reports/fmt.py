"""Number and text formatting shared by the renderers: durations with units, per-cent
changes, intervals, and plain-ASCII text for mail."""

from __future__ import annotations

import math
import textwrap
import unicodedata


__all__ = ["ns", "pct", "ci", "pval", "p_eq", "ascii_text", "wrap"]


def ns(value: float | None) -> str:
    """A duration in ns as a short string with its unit: 950ns, 1.203us, 81.25us, 13.20ms."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    v = float(value)
    if abs(v) < 1000:
        return f"{v:.0f}ns"
    for div, unit in ((1e3, "us"), (1e6, "ms"), (1e9, "s")):
        x = v / div
        if abs(x) < 1000 or unit == "s":
            if abs(x) < 10:
                return f"{x:.3f}{unit}"
            if abs(x) < 100:
                return f"{x:.2f}{unit}"
            return f"{x:.1f}{unit}"
    return f"{v:.0f}ns"


def pct(value: float | None) -> str:
    """A per-cent change with its sign: -89.4%, +1234%."""
    if value is None or math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:+.0f}%"
    return f"{value:+.1f}%"


def _short(x: float) -> str:
    if abs(x) >= 10:
        return f"{x:+.0f}"
    return f"{x:+.1f}"


def ci(interval: tuple[float, float] | None) -> str:
    """A per-cent interval: (-91.2..-87.0)."""
    if not interval:
        return "(n/a)"
    return f"({_short(interval[0])}..{_short(interval[1])})"


def pval(p: float | None) -> str:
    """A p-value: 0.015, <0.001."""
    if p is None:
        return "n/a"
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def p_eq(p: float | None) -> str:
    """``p=0.015`` or ``p<0.001``."""
    s = pval(p)
    return "p" + s if s.startswith("<") else "p=" + s


def ascii_text(s: object) -> str:
    """Plain ASCII for mail: accents dropped (Rödel -> Rodel), tabs and control characters
    become spaces, anything else non-ASCII becomes '?'."""
    t = unicodedata.normalize("NFKD", str(s))
    t = "".join(c for c in t if not unicodedata.combining(c))
    t = t.replace("\u00b5", "u").replace("\u03bc", "u")
    out = []
    for c in t:
        o = ord(c)
        if c == "\n":
            out.append(c)
        elif o < 32 or o == 127:
            out.append(" ")
        elif o < 128:
            out.append(c)
        else:
            out.append("?")
    return "".join(out)


def wrap(text: str, width: int = 72, indent: str = "", first: str | None = None) -> list[str]:
    """Wrap ``text`` to ``width`` columns; ``first`` prefixes the first line, ``indent`` the
    others (long words are broken so that no line is ever wider)."""
    first = indent if first is None else first
    return textwrap.wrap(
        ascii_text(text),
        width=width,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=True,
        break_on_hyphens=False,
    ) or [first.rstrip()]
