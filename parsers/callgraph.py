"""The function_graph call tree, as the kernel prints it after a line's prologue: one
grammar, read by the function_graph text, the latency tracers' ``display-graph`` lines and
trace-cmd's ``funcgraph_entry`` / ``funcgraph_exit`` records (docs/formats.md#function_graph).

What follows the prologue (kernel/trace/trace_functions_graph.c) is the *body*:

* the duration column of ``print_graph_duration()``: blank (an entry), or the overhead mark
  of ``trace_find_mark()`` (``+ ! # * @ $``, or a space) and ``usecs.nsecs us`` padded to the
  column's width; then ``|``;
* the call tree, two spaces per level after the ``|`` (``TRACE_GRAPH_INDENT``):

  - ``func() {``: ``print_graph_entry_nested()``, an entry;
  - ``func();``: ``print_graph_entry_leaf()``, an entry and its return in one line;
  - ``}``, ``} /* func */``: ``print_graph_return()``; the name is printed with
    funcgraph-tail, or when the entry is no longer in the buffer;
  - funcgraph-retval (6.5+, ``print_graph_retval()``): ``func(); /* = 0x0 */``,
    ``} /* func = -22 */`` (and a ``ret=`` spelling); funcgraph-retaddr and funcgraph-args
    add to that comment or between the parentheses;
  - ``/* text */``: ``print_graph_comment()``, a trace_printk or another event, at any
    indentation (one space is taken off each side of ``/* %s */``);

* or, instead of the duration, ``print_graph_irq()``'s arrow: ``==========>`` (an interrupt
  entered) or ``<==========`` (left), then `` |``.

Three readers of the one grammar, each for its own use:

* :func:`read_body` (compiled): one body in a chunk's bytes, for a format's scanner.  It
  takes the lines the kernel printed and refuses (kind 0) any it is not sure of;
* :func:`tree_exprs` (polars regular expressions): the general path of the formats, which
  decides every odd case the compiled reader refuses;
* :func:`reference_body` (plain Python ``re``, the same expressions): the reference the
  compiled reader is checked against, line by line, by the property tests.

:func:`read_bodies` reads a column of bodies with the first and the second.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import polars as pl
from tracekit.jit import njit

from tracekit.parsers.scan import (NINE, ZERO, buffer, find_byte, line_bounds, printable, read_decimal, skip_back_spaces,
                                   skip_spaces, strings)
from tracekit.schema import Kind

__all__ = ["NONE", "ENTRY", "LEAF", "EXIT", "COMMENT", "IRQ_ENTRY", "IRQ_EXIT", "KINDS",
           "read_body", "read_duration", "read_tree", "scan_bodies", "read_bodies",
           "DURATION_RE", "TREE_RE", "ENTRY_RE", "LEAF_RE", "EXIT_RE", "COMMENT_RE",
           "tree_exprs", "duration_ns_expr", "Body", "reference_body"]

#: kind codes of the compiled reader (0: a body it does not take)
NONE, ENTRY, LEAF, EXIT, COMMENT, IRQ_ENTRY, IRQ_EXIT = 0, 1, 2, 3, 4, 5, 6
#: the event kind of each code
KINDS = (None, Kind.ENTRY, Kind.LEAF, Kind.EXIT, Kind.COMMENT, Kind.IRQ_ENTRY, Kind.IRQ_EXIT)

_BAR, _PAREN_OPEN, _PAREN_CLOSE, _STAR, _SLASH = 124, 40, 41, 42, 47
_BRACE_OPEN, _BRACE_CLOSE, _SEMI, _EQUALS = 123, 125, 59, 61
_MARK_BYTES = np.array([ord(c) for c in "+!#*@$"], dtype=np.uint8)


# -- the compiled reader ----------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _is_mark(c: int) -> bool:
    """An overhead mark of ``trace_find_mark()``."""
    for m in _MARK_BYTES:
        if c == m:
            return True
    return False


@njit(cache=True, nogil=True)
def _symbol_byte(c: int) -> bool:
    """[A-Za-z0-9_.$]: the bytes of a kernel symbol (with the dot of clone suffixes)."""
    return c == 46 or c == 95 or c == 36 or (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122)


@njit(cache=True, nogil=True)
def _at(buf: np.ndarray, i: int, end: int, a: int, b: int) -> bool:
    """The two bytes ``a b`` at ``i`` (before ``end``)."""
    return 0 <= i and i + 1 < end and buf[i] == a and buf[i + 1] == b


@njit(cache=True, nogil=True)
def _name_end(buf: np.ndarray, at: int, end: int) -> int:
    """The end of a function name printed by ``%ps`` in the call tree (no blank,
    parenthesis, brace, semicolon or slash), or ``at`` when none starts there."""
    i = at
    while i < end:
        c = buf[i]
        if c <= 32 or c >= 127 or c == 40 or c == 41 or c == 123 or c == 125 or c == 59 or c == 47:
            break  # (kernel symbols are ASCII: other bytes are left to the general path)
        i += 1
    return i


@njit(cache=True, nogil=True)
def _arrow(buf: np.ndarray, at: int, end: int) -> int:
    """``print_graph_irq()``'s arrow at ``at``: ``==========>`` (IRQ entry) or
    ``<==========`` (IRQ exit), as its kind code; 0 for neither."""
    if at + 11 > end:
        return NONE
    for k in range(1, 10):
        if buf[at + k] != _EQUALS:
            return NONE
    if buf[at] == _EQUALS and buf[at + 10] == 62:
        return IRQ_ENTRY
    if buf[at] == 60 and buf[at + 10] == _EQUALS:
        return IRQ_EXIT
    return NONE


@njit(cache=True, nogil=True)
def read_duration(buf: np.ndarray, at: int, end: int) -> tuple[int, int]:
    """``print_graph_duration()``'s column in ``[at, end)`` (``end`` is its ``|``): blank, or
    the overhead mark or a space, then ``usecs.nsecs us``: (ns or -1 when blank, 1).
    ``print_graph_irq()``'s arrow there gives (-1, its kind code); anything else (-1, 0)."""
    p = skip_spaces(buf, at, end)
    if p == end:
        return -1, 1
    irq = _arrow(buf, p, end)
    if irq:
        return -1, irq if skip_spaces(buf, p + 11, end) == end else NONE
    if _is_mark(buf[p]):
        if p + 1 >= end or buf[p + 1] != 32:
            return -1, NONE
        p = skip_spaces(buf, p + 1, end)
    v, p, ok = read_decimal(buf, p, end, 3)
    if not ok or p + 3 > end or buf[p] != 32 or buf[p + 1] != 117 or buf[p + 2] != 115:  # " us"
        return -1, NONE
    if skip_spaces(buf, p + 3, end) != end:
        return -1, NONE
    return v, 1


@njit(cache=True, nogil=True)
def _read_comment(buf: np.ndarray, t0: int, t1: int) -> tuple[int, int]:
    """``print_graph_comment()``'s ``/* %s */`` in ``[t0, t1)``: the message's (start, end),
    one space taken off each side and its own blanks kept; (-1, -1) when not one."""
    if t1 - t0 < 4 or not _at(buf, t0, t1, _SLASH, _STAR) or not _at(buf, t1 - 2, t1, _STAR, _SLASH):
        return -1, -1
    s = t0 + 2
    r = t1 - 2
    if s < r:
        if buf[s] == 32:
            s += 1
        elif not printable(buf[s]):
            return -1, -1
        if r - 1 >= s and buf[r - 1] == 32:
            r -= 1
        elif r - 1 >= s and not printable(buf[r - 1]):
            return -1, -1
        r = max(r, s)
    return s, r


@njit(cache=True, nogil=True)
def _retval_end(buf: np.ndarray, at: int, end: int) -> int:
    """After a return's name, funcgraph-retval's `` = 0x0`` / `` = -22`` (or ``ret=0``) and
    the comment's end: the position of the ``*/`` closing the line, or -1."""
    if _at(buf, at, end, _EQUALS, 32):
        v = at + 2
    elif at + 4 <= end and buf[at] == 114 and buf[at + 1] == 101 and buf[at + 2] == 116 and buf[at + 3] == _EQUALS:
        v = at + 4  # "ret="
    else:
        return -1
    w = v
    while w < end and (buf[w] == 45 or (48 <= buf[w] <= 57) or (65 <= buf[w] <= 90) or (97 <= buf[w] <= 122)):
        w += 1
    return w if w > v else -1


@njit(cache=True, nogil=True)
def _read_return(buf: np.ndarray, t0: int, t1: int) -> tuple[bool, int, int]:
    """``print_graph_return()`` in ``[t0, t1)`` (``t0`` is its ``}``): ``}`` or ``} /* func */``
    with funcgraph-retval's value: (ok, name start, name end; -1 without a name)."""
    if t1 - t0 == 1:
        return True, -1, -1
    s = skip_spaces(buf, t0 + 1, t1)
    if not _at(buf, s, t1, _SLASH, _STAR):
        return False, -1, -1
    s = skip_spaces(buf, s + 2, t1)
    q = s
    while q < t1 and _symbol_byte(buf[q]):
        q += 1
    if q == s or (ZERO <= buf[s] <= NINE) or buf[s] == 36:
        return False, -1, -1
    r = q + 2 if _at(buf, q, t1, _PAREN_OPEN, _PAREN_CLOSE) else q
    r = skip_spaces(buf, r, t1)
    if r > q and not _at(buf, r, t1, _STAR, _SLASH):  # (a value after a blank or "()")
        w = _retval_end(buf, r, t1)
        if w < 0:
            return False, -1, -1
        r = skip_spaces(buf, w, t1)
    if r + 2 != t1 or not _at(buf, r, t1, _STAR, _SLASH):
        return False, -1, -1
    return True, s, q


@njit(cache=True, nogil=True)
def _read_call(buf: np.ndarray, t0: int, t1: int) -> int:
    """``func(...) {`` (an entry) or ``func(...);`` (a leaf) in ``[t0, t1)``, either followed
    by a comment of its own (funcgraph-retval, -retaddr): its kind code, or 0."""
    q = _name_end(buf, t0, t1)
    if q == t0 or q >= t1 or buf[q] != _PAREN_OPEN:
        return NONE
    e = t1
    if _at(buf, t1 - 2, t1, _STAR, _SLASH):
        c = q + 1
        while c + 1 < t1 - 2 and not _at(buf, c, t1, _SLASH, _STAR):
            c += 1
        if c + 1 >= t1 - 2:
            return NONE
        for k in range(c + 2, t1 - 3):  # (one comment: none opens or closes inside it)
            if _at(buf, k, t1, _SLASH, _STAR) or _at(buf, k, t1, _STAR, _SLASH):
                return NONE
        e = skip_back_spaces(buf, q, c)
    if e - q >= 4 and buf[e - 3] == _PAREN_CLOSE and buf[e - 2] == 32 and buf[e - 1] == _BRACE_OPEN:
        return ENTRY
    if e - q >= 3 and buf[e - 2] == _PAREN_CLOSE and buf[e - 1] == _SEMI:
        return LEAF
    return NONE


@njit(cache=True, nogil=True)
def read_tree(buf: np.ndarray, at: int, end: int) -> tuple[int, int, int, int, int, int]:
    """The call tree after the duration column's ``|`` (``at`` is just after it):
    (kind code, depth, name start, name end, comment start, comment end); -1 for what the
    line does not have, kind 0 when it is not one the kernel prints."""
    t0 = skip_spaces(buf, at, end)
    t1 = skip_back_spaces(buf, t0, end)
    if t0 == t1:
        return NONE, -1, -1, -1, -1, -1
    cs, ce = _read_comment(buf, t0, t1)
    if cs >= 0:
        return COMMENT, -1, -1, -1, cs, ce
    indent = t0 - at
    if indent < 2:
        return NONE, -1, -1, -1, -1, -1
    depth = (indent - 2) // 2
    if buf[t0] == _BRACE_CLOSE:
        ok, ns, ne = _read_return(buf, t0, t1)
        return (EXIT if ok else NONE), depth, ns, ne, -1, -1
    kind = _read_call(buf, t0, t1)
    if kind == NONE:
        return NONE, -1, -1, -1, -1, -1
    return kind, depth, t0, _name_end(buf, t0, t1), -1, -1


@njit(cache=True, nogil=True)
def read_body(buf: np.ndarray, at: int, end: int) -> tuple[int, int, int, int, int, int, int]:
    """The body of a line in ``buf[at:end]``: the duration column (``at`` is where it
    starts, just after the prologue or trace-cmd's ``funcgraph_entry:``), its ``|``, the
    call tree.  Returns (kind code, duration ns, depth, name start, name end, comment
    start, comment end), -1 for what the line does not have; kind 0 (:data:`NONE`) for a
    body the kernel does not print this way, left to the general path.  A comment has no
    duration; every offset lies in ``[at, end)``."""
    bar = find_byte(buf, at, end, _BAR)
    if bar < 0:
        return NONE, -1, -1, -1, -1, -1, -1
    dur, how = read_duration(buf, at, bar)
    if how != 1:  # an IRQ arrow (the prologue's fields only), or not a duration column
        return how, -1, -1, -1, -1, -1, -1
    kind, depth, ns, ne, cs, ce = read_tree(buf, bar + 1, end)
    if kind == NONE or kind == COMMENT:
        dur = -1
    return kind, dur, depth, ns, ne, cs, ce


@njit(cache=True, nogil=True)
def scan_bodies(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`read_body` over the lines ``[starts[i], ends[i])`` of ``buf``: (kind codes,
    duration ns, depth, offsets (name start, name end, comment start, comment end) as a
    4 x n array)."""
    n = len(starts)
    kind = np.zeros(n, dtype=np.int8)
    dur = np.full(n, -1, dtype=np.int64)
    depth = np.full(n, -1, dtype=np.int64)
    offs = np.full((4, n), -1, dtype=np.int64)
    for i in range(n):
        k, d, dep, ns, ne, cs, ce = read_body(buf, starts[i], ends[i])
        kind[i] = k
        if k != NONE:
            dur[i] = d
            depth[i] = dep
            offs[0, i] = ns
            offs[1, i] = ne
            offs[2, i] = cs
            offs[3, i] = ce
    return kind, dur, depth, offs


# -- the general path: the same grammar as regular expressions ---------------------------------

#: the duration column: an overhead mark, ``usecs.nsecs us``, both optional
DURATION_RE = r"\s*(?:(?P<mark>[+!#*@$])\s+)?(?:(?P<dur>\d+(?:\.\d+)?)\s+us\s*)?"
#: the duration column's ``|`` and the call tree (``indent`` spaces, then ``body``)
TREE_RE = r"\|(?P<indent> *)(?P<body>\S.*?)\s*$"
#: the arrow of ``print_graph_irq()`` in place of the duration
ARROW_RE = r"^\s*(?P<arrow>==========>|<==========)"
# the call tree, without its indentation
ENTRY_RE = r"^(?P<f>[^\s(){};/]+)\(.*\) \{(?:\s*/\*.*\*/)?$"
LEAF_RE = r"^(?P<f>[^\s(){};/]+)\(.*\);(?:\s*/\*.*\*/)?$"
EXIT_RE = r"^\}(?:\s*/\*\s*(?P<f>[^\s=*]+?)(?:\(\))?(?:\s*(?:= |ret=).*?)?\s*\*/)?(?:\s*/\*.*\*/)?$"
COMMENT_RE = r"^/\*\s?(?P<c>.*?)\s?\*/$"


def tree_exprs(tree: pl.Expr, indent: pl.Expr) -> dict[str, pl.Expr]:
    """The general path's reading of the call tree ``tree`` (stripped) indented by the
    string ``indent``: ``kind`` (null for none of the kernel's shapes), ``raw_func`` (as
    printed), ``depth`` (of a call), ``comment`` (of a ``/* */`` line)."""
    kind = (
        pl.when(tree.str.contains(ENTRY_RE)).then(pl.lit(Kind.ENTRY))
        .when(tree.str.contains(LEAF_RE)).then(pl.lit(Kind.LEAF))
        .when(tree.str.contains(EXIT_RE)).then(pl.lit(Kind.EXIT))
        .when(tree.str.contains(COMMENT_RE)).then(pl.lit(Kind.COMMENT))
    )
    call = kind.is_in([Kind.ENTRY, Kind.LEAF, Kind.EXIT])
    raw_func = (
        pl.when(kind == Kind.ENTRY).then(tree.str.extract(ENTRY_RE, 1))
        .when(kind == Kind.LEAF).then(tree.str.extract(LEAF_RE, 1))
        .when(kind == Kind.EXIT).then(tree.str.extract(EXIT_RE, 1))
    )
    depth = pl.when(call).then(((indent.str.len_chars().cast(pl.Int32) - 2) // 2).clip(0))
    comment = pl.when(kind == Kind.COMMENT).then(tree.str.extract(COMMENT_RE, 1))
    return {"kind": kind, "raw_func": raw_func, "depth": depth, "comment": comment}


def duration_ns_expr(dur: pl.Expr) -> pl.Expr:
    """The kernel's ``print_graph_duration()`` text (``usecs.nsecs``, the fraction cut to fit
    seven characters, or dropped) as integer ns: exactly what the trace states."""
    parts = dur.str.split_exact(".", 1)
    usecs = parts.struct.field("field_0").cast(pl.Int64, strict=False)
    frac = parts.struct.field("field_1").fill_null("").str.pad_end(3, "0").str.slice(0, 3)
    return usecs * 1000 + frac.cast(pl.Int64, strict=False).fill_null(0)


_BODY_RE = "^" + DURATION_RE + TREE_RE


def read_bodies(bodies: pl.Series) -> pl.DataFrame:
    """A column of bodies (each from its duration column on) read as the kernel prints them:
    ``kind``, ``dur_ns``, ``depth``, ``raw_func`` (as printed), ``comment``; the compiled
    reader takes what it can, the general path the rest (``kind`` null for a body of
    neither)."""
    text = bodies.fill_null("")
    raw = ("\n".join(text.to_list()) + "\n").encode("utf-8")
    starts, ends = line_bounds(buffer(raw))
    kind, dur, depth, offs = scan_bodies(buffer(raw), starts, ends)
    fast = pl.DataFrame({
        "kind": pl.Series("kind", KINDS, dtype=pl.String).gather(pl.Series(kind, dtype=pl.UInt32)),
        "dur_ns": pl.Series(np.ma.masked_less(dur, 0), dtype=pl.Int64),
        "depth": pl.Series(np.ma.masked_less(depth, 0), dtype=pl.Int32),
        "raw_func": strings(raw, offs[0], offs[1], "raw_func"),
        "comment": strings(raw, offs[2], offs[3], "comment"),
    })
    rest = np.flatnonzero(kind == NONE)
    if not len(rest):
        return fast
    general = _general_bodies(text.gather(pl.Series(rest, dtype=pl.UInt32)))
    return fast.with_row_index("_i").update(general.with_columns(_i=pl.Series(rest, dtype=pl.UInt32)),
                                            on="_i", include_nulls=True).drop("_i")


def _general_bodies(text: pl.Series) -> pl.DataFrame:
    """:func:`read_bodies`' general path: the bodies the compiled reader refused."""
    df = pl.DataFrame({"text": text}).with_columns(
        m=pl.col("text").str.extract_groups(_BODY_RE),
        arrow=pl.col("text").str.extract(ARROW_RE, 1),
    ).unnest("m")
    tree = tree_exprs(pl.col("body"), pl.col("indent"))
    kind = (pl.when(pl.col("arrow") == "==========>").then(pl.lit(Kind.IRQ_ENTRY))
            .when(pl.col("arrow") == "<==========").then(pl.lit(Kind.IRQ_EXIT))
            .otherwise(tree["kind"]))
    is_call = kind.is_in([Kind.ENTRY, Kind.LEAF, Kind.EXIT])
    return df.select(
        kind=kind,
        dur_ns=pl.when(is_call).then(duration_ns_expr(pl.col("dur"))),
        depth=pl.when(is_call).then(tree["depth"]),
        raw_func=pl.when(is_call).then(tree["raw_func"]),
        comment=pl.when(kind == Kind.COMMENT).then(tree["comment"]),
    )


# -- the reference reader -----------------------------------------------------------------------

class Body(NamedTuple):
    """One body as read: the event kind, duration (ns, a call's), depth (a call's), the
    function's name as printed (``}`` may have none), a comment's message."""

    kind: str
    dur_ns: int | None
    depth: int | None
    raw_func: str | None
    comment: str | None


_PY_BODY = re.compile(_BODY_RE)
_PY_ARROW = re.compile(ARROW_RE)
_PY_TREE = [(Kind.ENTRY, re.compile(ENTRY_RE)), (Kind.LEAF, re.compile(LEAF_RE)),
            (Kind.EXIT, re.compile(EXIT_RE)), (Kind.COMMENT, re.compile(COMMENT_RE))]


def reference_body(text: str) -> Body | None:
    """A body read by plain Python regular expressions, the same as the general path's:
    what the compiled reader must agree with on every body it takes.  None for a body that
    is none of the kernel's shapes."""
    arrow = _PY_ARROW.match(text)
    if arrow:
        return Body(Kind.IRQ_ENTRY if arrow["arrow"][0] == "=" else Kind.IRQ_EXIT, None, None, None, None)
    m = _PY_BODY.match(text)
    if m is None:
        return None
    for kind, rx in _PY_TREE:
        t = rx.match(m["body"])
        if t is None:
            continue
        if kind == Kind.COMMENT:
            return Body(kind, None, None, None, t["c"])
        usecs, _, frac = (m["dur"] or "").partition(".")
        dur = int(usecs) * 1000 + int(frac[:3].ljust(3, "0")) if m["dur"] else None
        return Body(kind, dur, max(0, (len(m["indent"]) - 2) // 2), t["f"], None)
    return None
