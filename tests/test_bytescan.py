"""The byte-level readers of function_graph's numbers (tracekit.parsers.bytescan).

Two properties: every field printed the way the kernel prints it is read, exactly; and
whatever the byte reader accepts, the string path (the one that decides the odd cases)
reads to the same value.  Fields it does not accept go to the string path, so a wrong
acceptance is the only way for it to change a result.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.parsers import bytescan
from tracekit.parsers.function_graph import _times_from_text

PAD = b"\n" * 20  # bytes around the field, as in a chunk


def _duration(dur_ns: int, mark: str) -> str:
    """print_graph_duration() (kernel/trace/trace_functions_graph.c): ``%lu`` microseconds,
    then ``.nsecs`` cut so that the number keeps to seven digits, `` us `` and spaces up to
    eight characters; behind a space, the overhead mark and a space."""
    usecs, rem = divmod(dur_ns, 1000)
    s = str(usecs)
    if len(s) < 7:
        s += "." + f"{rem:03d}"[: min(3, 7 - len(s))]
    return f" {mark} " + s + " us " + " " * max(0, 8 - len(s))


def _abstime(ns: int) -> str:
    """print_graph_abs_time(): ``%5lu.%06lu`` and the space before the ``|``."""
    secs, rem = divmod(ns, 1_000_000_000)
    return f"{secs:5d}.{rem // 1000:06d} "


def _read(reader, fields: list[str], *extra):
    """Run ``reader`` over the fields laid one after another in one buffer, each followed by
    ``|`` and padded apart like the lines of a chunk."""
    raw = bytearray(PAD)
    starts, lens = [], []
    for f in fields:
        b = f.encode("latin-1")
        starts.append(len(raw))
        lens.append(len(b))
        raw += b + b"|" + PAD
    buf = np.frombuffer(bytes(raw), dtype=np.uint8)
    return reader(buf, np.array(starts, dtype=np.int64), np.array(lens, dtype=np.int64), *extra)


def _text(abs_f: list[str] | None, dur_f: list[str]) -> pl.DataFrame:
    return _times_from_text(pl.Series(abs_f, dtype=pl.String) if abs_f is not None else None,
                            pl.Series(dur_f, dtype=pl.String), abs_f is not None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 99_999_999_999), st.sampled_from(" +!#*@$")), min_size=1, max_size=40))
def test_every_duration_the_kernel_prints_is_read_exactly(rows):
    fields = [_duration(ns, mark) for ns, mark in rows]
    value, blank, ok = _read(bytescan.read_duration, fields)
    text = _text(None, fields)
    for j, (ns, _) in enumerate(rows):
        # the kernel's own truncation: what the text says, which the string path reads too
        assert ok[j] or len(fields[j]) > 16, fields[j]
        if ok[j]:
            assert not blank[j]
            printed = Decimal(fields[j][3:].split(" us")[0])
            assert value[j] == int(printed * 1000) == text["dur_ns"][j], fields[j]


def test_blank_and_arrow_durations():
    fields = ["               ", " +             ", "   ==========>  ", "   <==========  "]
    value, blank, ok = _read(bytescan.read_duration, fields)
    assert ok.tolist() == [True, True, False, False]
    assert blank.tolist() == [True, True, False, False]


_DURATION_TEXT = st.text(alphabet=" +!#*@$.0123456789usx=<>|\t", max_size=18)


@settings(max_examples=500, deadline=None)
@given(st.lists(_DURATION_TEXT, min_size=1, max_size=30))
def test_an_accepted_duration_reads_as_the_string_path_reads_it(fields):
    fields = [f.replace("|", " ") for f in fields]
    value, blank, ok = _read(bytescan.read_duration, fields)
    text = _text(None, fields)
    for j, f in enumerate(fields):
        if ok[j]:
            assert text["_dur_ok"][j], f
            if blank[j]:
                assert text["dur_ns"][j] is None, f
            else:
                assert text["dur_ns"][j] == value[j], f


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 99_999_999 * 10**9 + 999_999_999), min_size=1, max_size=40))
def test_every_abstime_the_kernel_prints_is_read_exactly(times):
    fields = [_abstime(ns) for ns in times]
    value, ok = _read(bytescan.read_abstime, fields)
    assert ok.all()
    assert value.tolist() == [ns // 1000 * 1000 for ns in times]


_ABSTIME_TEXT = st.text(alphabet=" .0123456789x-+", min_size=0, max_size=18)


@settings(max_examples=500, deadline=None)
@given(st.lists(_ABSTIME_TEXT, min_size=1, max_size=30))
def test_an_accepted_abstime_reads_as_the_string_path_reads_it(fields):
    value, ok = _read(bytescan.read_abstime, fields)
    text = _text(fields, ["   "] * len(fields))
    for j, f in enumerate(fields):
        if ok[j]:
            assert text["_ts_ok"][j], f
            assert text["ts_ns"][j] == value[j], f


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9999), st.integers(1, 5)), min_size=1, max_size=30))
def test_the_cpu_column_is_read(rows):
    fields = [f"{cpu:>{width}d}) " for cpu, width in rows]
    cpu, after, ok = _read(lambda buf, at, _len: bytescan.read_cpu(buf, at), fields)
    assert ok.all()
    assert cpu.tolist() == [c for c, _ in rows]
    assert after.tolist() == [f.index(")") + 1 for f in fields]


@given(st.lists(st.text(alphabet=" 0123456789)x", max_size=9), min_size=1, max_size=30))
def test_an_accepted_cpu_column_is_spaces_digits_and_a_paren(fields):
    cpu, after, ok = _read(lambda buf, at, _len: bytescan.read_cpu(buf, at), fields)
    for j, f in enumerate(fields):
        if ok[j]:
            head = f[: after[j] - 1]
            assert f[after[j] - 1] == ")" and head.strip().isdigit() and int(head) == cpu[j], f


def test_fields_at_the_edges_of_the_buffer_are_left_to_the_string_path():
    raw = b"   50.000006 |\n"
    buf = np.frombuffer(raw, dtype=np.uint8)
    value, ok = bytescan.read_abstime(buf, np.array([0]), np.array([13]))
    assert not ok[0]  # its window would start before the buffer
    value, blank, ok = bytescan.read_duration(np.frombuffer(b" + 1.000 us", dtype=np.uint8), np.array([0]), np.array([11]))
    assert not ok[0]  # its window would end after the buffer
