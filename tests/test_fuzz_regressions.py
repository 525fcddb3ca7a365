"""Inputs the fuzzer (benchmarks/fuzz_scan.py) found ending an ingest with something other
than a ParseError, each reduced to the one change that did it."""

from __future__ import annotations

import tracekit
from tracekit.model.emit import emit


def test_a_common_pid_declared_wider_than_the_kernels_int_is_a_parse_error(tmp_path):
    """trace.dat: an event format declaring ``common_pid`` 5 bytes wide (the kernel's is an
    ``int``, 4) read the byte after it into every pid, too large for the schema's Int32;
    the ingest ended with an internal error."""
    t = emit(tmp_path, arch="x86_64", strategy="v2622", preempt=True, workload="anon:64KiB", formats=("tracedat",))
    good = (tmp_path / t["files"]["tracedat"]).read_bytes()
    pid = b"field:int common_pid;\toffset:4;\tsize:4;"
    assert pid in good
    bad = tmp_path / "wide-pid.dat"
    bad.write_bytes(good.replace(pid, pid.replace(b"size:4;", b"size:5;")))
    (r,) = tracekit.ingest([str(bad)], store=str(tmp_path / "store"), on_error="collect")
    assert r.status == "failed"
    assert r.error.startswith(f"{bad}: ") and "internal error" not in r.error
    assert "pid" in r.error and "more than the kernel's int holds" in r.error


def test_a_trace_dat_ending_inside_its_page_size_is_a_parse_error(tmp_path):
    """trace.dat: the magic, version 6, endianness and long size, then three of the page
    size's four bytes; the ingest ended with an internal error (struct.error)."""
    cut = tmp_path / "cut.dat"
    cut.write_bytes(b"\x17\x08Dtracing6\x00" + b"\x00\x08" + b"\x00\x10\x00")
    (r,) = tracekit.ingest([str(cut)], store=str(tmp_path / "store"), on_error="collect")
    assert r.status == "failed"
    assert r.error == f"{cut}: byte 11: truncated initial block"  # (the version string's NUL)
