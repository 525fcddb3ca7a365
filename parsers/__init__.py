"""Input formats: one module per format, and detection from content.

Each format module defines ``FORMAT`` (a :class:`FormatInfo`), ``sniff(head) -> int`` (how
sure it is, 0 to 100, that a file starting with the text ``head`` is of its format) and either
``parse(chunks, ctx)`` (text: an iterator of :class:`~tracekit.parsers.base.LineChunk`) or
``parse_file(path, ctx)`` (binary).  Both yield frames in the common event schema.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

__all__ = ["FormatInfo", "MODULES", "formats", "get", "detect"]


@dataclass(frozen=True)
class FormatInfo:
    """A supported input format: its ``name`` (the ``--format`` value), whether it is read as
    text or binary, a one-line description and one real example line."""

    name: str
    kind: str  # "text" or "binary"
    description: str
    example: str


#: Format modules, in the order ``tracekit formats`` lists them.
MODULES: tuple[str, ...] = (
    "function_graph",
    "ftrace_text",
    "latency",
    "perf_script",
    "tracedat",
    "tracecmd_report",
    "dmesg",
)


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")


def formats() -> list[ModuleType]:
    """Every format module, loaded."""
    return [_load(m) for m in MODULES]


def get(name: str) -> ModuleType:
    """The module of the format called ``name`` (as ``--format`` spells it)."""
    for mod in formats():
        if mod.FORMAT.name == name:
            return mod
    known = ", ".join(m.FORMAT.name for m in formats())
    raise KeyError(f"unknown format {name!r} (known: {known})")


def detect(head: bytes) -> ModuleType | None:
    """The format module most sure of ``head`` (the first bytes of the decompressed input),
    or None when no module recognises it."""
    text = head.decode("latin-1")
    best, best_score = None, 0
    for mod in formats():
        score = mod.sniff(text) if mod.FORMAT.kind == "text" else mod.sniff_bytes(head)
        if score > best_score:
            best, best_score = mod, score
    return best
