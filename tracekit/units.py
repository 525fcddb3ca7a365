"""Durations and times as users type them on the command line, to nanoseconds."""

from __future__ import annotations

import math
import re

from tracekit.errors import OptionError

__all__ = ["parse_duration_ns", "parse_time_ns", "parse_time_range_ns"]

_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|ms|s)?\s*$")


def _to_ns(text: str, default_unit: str, option: str) -> int:
    m = _QUANTITY.match(text)
    if not m:
        raise OptionError(f"{option} {text!r}: a number with a unit (ns, us, ms, s), e.g. 250us")
    value = float(m.group(1)) * _UNITS_NS[m.group(2) or default_unit]
    if not math.isfinite(value):
        raise OptionError(f"{option} {text!r}: out of range")
    return round(value)


def parse_duration_ns(text: str, option: str = "--min-dur") -> int:
    """``250us``, ``1.5ms``, ``800ns``, ``2s`` (a bare number is ns) in ns."""
    return _to_ns(text, "ns", option)


def parse_time_ns(text: str, option: str = "--time") -> int:
    """A trace timestamp as ftrace prints it, in seconds (``1234.567890``), or with a unit
    (``1234567890us``), in ns."""
    return _to_ns(text, "s", option)


def parse_time_range_ns(text: str, option: str = "--time") -> tuple[int | None, int | None]:
    """``FROM:TO`` (either side may be empty, for no bound) as ns, FROM not after TO."""
    if text.count(":") != 1:
        raise OptionError(f"{option} {text!r}: give FROM:TO, e.g. 1234.5:1236 (seconds, as the trace prints them)")
    lo_text, hi_text = text.split(":")
    lo = parse_time_ns(lo_text, option) if lo_text.strip() else None
    hi = parse_time_ns(hi_text, option) if hi_text.strip() else None
    if lo is not None and hi is not None and lo > hi:
        raise OptionError(f"{option} {text!r}: FROM is after TO")
    return lo, hi
