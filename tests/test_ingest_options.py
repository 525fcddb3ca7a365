"""Ingest's options are validated; a run in which nothing was understood is an error; a
binary file is named by its type."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tracekit

FG = "qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt"


def tk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--jobs", "0"], "--jobs 0: at least 1"),
        (["--jobs", "-3"], "--jobs -3: at least 1"),
        (["--clock-hz", "0"], "--clock-hz 0: a clock frequency is a positive number"),
        (["--clock-hz", "nan"], "--clock-hz nan"),
        (["--preempt", "sometimes"], "--preempt 'sometimes': one of none, voluntary, full, lazy, rt"),
        (["--label", ""], "--label"),
        (["--arch", "vax"], "--arch 'vax': unknown architecture"),
        (["--format", "nosuch"], "unknown format 'nosuch'"),
    ],
)
def test_every_option_is_validated(tmp_path, corpus, args, says):
    store = tmp_path / "s"
    r = tk("ingest", str(corpus / FG), "--store", str(store), *args)
    assert r.returncode == 2, r
    assert r.stderr.splitlines() == [f"tracekit: error: {r.stderr.splitlines()[0].removeprefix('tracekit: error: ')}"]
    assert says in r.stderr
    assert not store.exists()  # nothing was made for an ingest that never started


def test_on_error_collect_records_each_and_goes_on(tmp_path, corpus):
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a trace\n")
    st = tracekit.open_store(tmp_path / "s")
    a, b = tracekit.ingest([str(bad), str(corpus / FG)], st, arch="x86_64", on_error="collect")
    assert a.status == "failed" and "bad.txt:1: not a trace format" in a.error
    assert b.status == "ingested"


def test_a_run_in_which_nothing_was_understood_is_an_error(tmp_path, corpus):
    # function_graph text read as a latency-tracer snapshot: every line is skipped
    store = tmp_path / "s"
    r = tk("ingest", str(corpus / FG), "--format", "latency", "--store", str(store), "--arch", "x86_64")
    assert r.returncode == 2, r
    assert "nothing read as latency: all" in r.stderr and "not understood" in r.stderr
    assert "leave out --format" in r.stderr
    assert [p.name for p in (store / "runs").glob("*.parquet")] == ["empty.parquet"]  # no run, only the schema


def test_a_trace_with_no_records_is_still_a_run(tmp_path):
    # a header with nothing in the buffer is an empty trace, not a misread one
    t = tmp_path / "empty-trace.txt"
    t.write_text("# tracer: function_graph\n#\n# CPU  DURATION                  FUNCTION CALLS\n"
                 "# |     |   |                     |   |   |   |\n")
    (res,) = tracekit.ingest([str(t)], tracekit.open_store(tmp_path / "s"), arch="x86_64", on_error="collect")
    assert res.status == "ingested" and res.counts["spans"] == 0


def _elf_header(bits: int, order: str, e_type: int, machine: int) -> bytes:
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if order == "little" else 2, 1]) + bytes(9)
    return ident + e_type.to_bytes(2, order) + machine.to_bytes(2, order) + bytes(200)


@pytest.mark.parametrize(
    "head, says",
    [
        (_elf_header(64, "little", 2, 62), "an ELF 64-bit LSB executable for x86_64"),
        (_elf_header(64, "big", 1, 21), "an ELF 64-bit MSB relocatable object (a .o or .ko) for ppc64"),
        (_elf_header(32, "little", 4, 3), "an ELF 32-bit LSB core dump for i386"),
        (b"PERFILE2" + bytes(100), "perf.data (perf record's binary output)"),
    ],
)
def test_binary_inputs_are_named_by_file_type(tmp_path, head, says):
    f = tmp_path / "input"
    f.write_bytes(head)
    r = tk("ingest", str(f), "--store", str(tmp_path / "s"))
    assert r.returncode == 2
    assert f"{f}:1: not a trace: {says}" in r.stderr
    assert "\\x" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_a_real_executable_is_named(tmp_path):
    r = tk("ingest", sys.executable, "--store", str(tmp_path / "s"))
    assert r.returncode == 2 and "not a trace: an ELF" in r.stderr and "\\x" not in r.stderr
