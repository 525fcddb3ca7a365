"""The compiled scanning core (tracekit.parsers.scan) and the function_graph line scanner
built on it, checked against plain readers on random and damaged input.

Lines are printed the way the kernel prints them (kernel/trace/trace_functions_graph.c:
``print_graph_abs_time()``, ``print_graph_cpu()``, ``print_graph_proc()``,
``print_graph_duration()``, the call tree two spaces per level), then possibly damaged
(bytes replaced, inserted, cut).  Whatever the compiled path takes must read exactly as the
general path's regular expressions read it; every line printed undamaged must be taken;
no input makes it fail.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import polars as pl
from helpers import assert_general_reads_as_taken, damage, print_graph_duration, stated_duration_ns, taken_as_printed
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.parsers import function_graph as fg
from tracekit.parsers import scan
from tracekit.parsers.base import LineChunk, ParseContext

COLUMNS = ("cpu", "pid", "comm", "ts_ns", "kind", "func", "raw_func", "depth", "dur_ns", "flags", "body")


NAMES = st.sampled_from(["f", "zap_pte_range.isra.0", ".free_pgtables", "__x64_sys_exit_group", "do_wp_page.cold"])
LAYOUTS = st.builds(fg.Layout, abstime=st.booleans(), reltime=st.booleans(), cpu=st.booleans(),
                    proc=st.booleans(), lat=st.booleans())


COMMS = st.sampled_from(["bash", "kworker/0:1", "a b", "x-y", "<idle>"])


@st.composite
def _switch(draw) -> tuple[str, dict]:
    """verif_pid()'s task-switch line: print_graph_cpu(), the previous and the next task
    each centred in 14 columns by print_graph_proc(), `` => `` between them."""
    cpu, prev, nxt = draw(st.integers(0, 255)), draw(COMMS), draw(COMMS)
    ppid, npid = draw(st.integers(0, 4194304)), draw(st.integers(0, 4194304))
    return f" {cpu:>2}) {f'{prev}-{ppid}':^14} => {f'{nxt}-{npid}':^14}", {"cpu": cpu, "pid": npid, "comm": nxt, "kind": "switch"}


@st.composite
def _line(draw, lay: fg.Layout) -> tuple[str, dict]:
    if draw(st.integers(0, 9)) == 0:
        return draw(_switch())
    out = ""
    want: dict = {}
    if lay.abstime:
        ns = draw(st.integers(0, 10**14))
        out += f"{ns // 10**9:5d}.{ns % 10**9 // 1000:06d} |  "
        want["ts_ns"] = ns // 1000 * 1000
    if lay.reltime:  # display-graph's relative time
        out += f"{draw(st.integers(0, 10**6)):8d} us |  "
    if lay.cpu:
        cpu = draw(st.integers(0, 255))
        out += f" {cpu:>2}) "
        want["cpu"] = cpu
    if lay.proc:
        comm = draw(COMMS)
        pid = draw(st.integers(0, 4194304))
        task = f"{comm}-{pid}"
        out += f"{task:^14} | "
        want["pid"], want["comm"] = pid, comm
    if lay.lat:
        out += draw(st.sampled_from(["d..2", "d.h2", "....", "dNs1."])) + " | "
    depth = draw(st.integers(0, 12))
    shape = draw(st.sampled_from(["entry", "leaf", "exit", "exit_named", "comment", "irq_entry", "irq_exit"]))
    name = draw(NAMES)
    if shape.startswith("irq"):  # print_graph_irq(): the prologue, the arrow in the duration column
        want["kind"] = shape
        return out + ("   ==========> |" if shape == "irq_entry" else "   <========== |"), want
    if shape in ("leaf", "exit", "exit_named"):
        d = draw(st.integers(0, 10**10))
        out += print_graph_duration(d, draw(st.sampled_from(" +!#*@$")))
        want["dur_ns"] = stated_duration_ns(d)
    else:
        out += "               |"
    tree = {"entry": f"{name}() {{", "leaf": f"{name}();", "exit": "}", "exit_named": f"}} /* {name} */",
            "comment": "/* pgtfree: begin */"}[shape]
    out += " " * (2 + 2 * depth) + tree
    return out, want


@st.composite
def _chunk(draw) -> tuple[fg.Layout, list[str], list[dict | None]]:
    lay = draw(LAYOUTS)
    lines, wants = [], []
    for _ in range(draw(st.integers(1, 30))):
        text, want = draw(_line(lay))
        if draw(st.integers(0, 3)) == 0:
            damaged = damage(draw, text, b" |.)-(}{;/*#0123456789u\x00\xff")
            if damaged != text:
                text, want = damaged, None
        lines.append(text)
        wants.append(want)
    return lay, lines, wants


@settings(max_examples=400, deadline=None)
@given(_chunk())
def test_compiled_lines_read_as_the_regular_expressions_read_them(case):
    lay, lines, wants = case
    raw = ("\n".join(lines) + "\n").encode("latin-1")
    chunk = LineChunk(1, raw=raw)
    good, rest = fg._parse_fast(chunk, lay)
    general = fg._parse_general(pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines}), ParseContext("t"))
    assert_general_reads_as_taken(general, good, "seq", COLUMNS)
    # every line printed the kernel's way is taken, with the values it was printed from
    taken = taken_as_printed(good, lines, wants)
    # and nothing is lost: every line but the header, blank lines and rules is taken or
    # handed back
    said = {i for i, ln in enumerate(lines, 1) if ln.strip() and not ln.startswith("#") and set(ln.strip()) != {"-"}}
    assert set(taken) | set(rest["line"].to_list()) >= said


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), LAYOUTS)
def test_any_bytes_are_scanned_without_failing(data, lay):
    chunk = LineChunk(1, raw=data)
    good, rest = fg._parse_fast(chunk, lay)
    assert good.height + rest.height <= chunk.n_lines


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["f", "g", "", "ab", "f ", "\xe9t\xe9"]), min_size=1, max_size=40))
def test_names_interned_once_per_distinct_value(names):
    raw = "\n".join(names).encode("utf-8") + b"\n"
    starts, ends = scan.line_bounds(scan.buffer(raw))
    assert len(starts) == len(names)
    drop = np.array([i % 5 == 4 for i in range(len(names))], dtype=bool)
    starts = np.where(drop, -1, starts)
    col = scan.strings(raw, starts, ends, "s")
    assert col.to_list() == [None if d else n for n, d in zip(names, drop)]
    codes, values = scan.dictionary(raw, starts, ends, "s")
    assert values.n_unique() == len(values)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789. x", max_size=30), st.integers(0, 9))
def test_decimal_reader_is_exact(text, digits):
    buf = scan.buffer(text.encode())
    value, end, ok = scan.read_decimal(buf, 0, len(buf), digits)
    m = re.match(r"(\d+)(\.\d*)?", text)
    fits = m is not None and len(m.group(1)) <= 18 - digits and (m.group(2) is None or 2 <= len(m.group(2)) <= digits + 1)
    assert ok == fits
    if ok:
        frac = (m.group(2) or ".")[1:]
        assert end == m.end()
        assert value == int(m.group(1)) * 10**digits + int(frac.ljust(digits, "0") or "0")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-(1 << 40), 1 << 40), st.booleans()), max_size=80),
       st.sampled_from([pl.Int8, pl.Int32, pl.Int64, pl.UInt32]), st.booleans())
def test_integer_columns_hold_each_valid_value_and_null_elsewhere(rows, dtype, reverse):
    """An integer column built from the scanners' numbers and a validity mask (also from a
    strided view) holds each valid number, null elsewhere; a valid number its type cannot
    hold is refused as polars refuses it."""
    from tracekit.frames import masked

    values = np.array([v for v, _ in rows], dtype=np.int64)
    valid = np.array([ok for _, ok in rows], dtype=bool)
    if reverse:
        values, valid = values[::-1], valid[::-1]
    want = [int(v) if ok else None for v, ok in zip(values.tolist(), valid.tolist())]
    info = np.iinfo({pl.Int8: np.int8, pl.Int32: np.int32, pl.Int64: np.int64, pl.UInt32: np.uint32}[dtype])
    if any(v is not None and not info.min <= v <= info.max for v in want):
        with pytest.raises(pl.exceptions.InvalidOperationError):
            masked("x", values, valid, dtype)
        return
    got = masked("x", values, valid, dtype)
    assert got.dtype == dtype and got.name == "x" and got.to_list() == want
