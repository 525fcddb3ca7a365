"""``tracekit ingest`` / ``runs`` / ``formats`` as a user runs them: exit codes, messages,
compressed inputs, standard input, help texts."""

from __future__ import annotations

import gzip
import json
import lzma
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

import tracekit

FG = "qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt"


def tk(*args: str, input: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True, input=input, cwd=cwd)


def test_missing_file_exit_2_no_traceback(tmp_path):
    p = tk("ingest", str(tmp_path / "nope.txt"), "--store", str(tmp_path / "s"))
    err = p.stderr.decode()
    assert p.returncode == 2
    assert "nope.txt: no such file" in err and "Traceback" not in err


def test_unknown_format_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00\x01garbage\xff\n" * 10)
    p = tk("ingest", str(bad), "--store", str(tmp_path / "s"))
    err = p.stderr.decode()
    assert p.returncode == 2 and "bad.bin:1:" in err and "not a trace format" in err and "Traceback" not in err


def test_empty_file(tmp_path):
    e = tmp_path / "empty.txt"
    e.write_bytes(b"")
    p = tk("ingest", str(e), "--store", str(tmp_path / "s"))
    assert p.returncode == 2 and "empty.txt:1: empty input" in p.stderr.decode()


def test_bad_options(tmp_path, corpus):
    p = tk("ingest", str(corpus / FG), "--store", str(tmp_path / "s"), "--arch", "vax")
    assert p.returncode == 2 and "unknown architecture" in p.stderr.decode()
    p = tk("ingest", str(corpus / FG), "--store", str(tmp_path / "s"), "--format", "nosuch")
    assert p.returncode == 2 and "unknown format" in p.stderr.decode()


def test_compressed_and_stdin_are_the_same_run(tmp_path, corpus):
    raw = (corpus / FG).read_bytes()
    (tmp_path / "t.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "t.xz").write_bytes(lzma.compress(raw))
    (tmp_path / "t.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    s = str(tmp_path / "s")
    p = tk("ingest", str(corpus / FG), "--store", s, "--json")
    assert p.returncode == 0, p.stderr
    first = json.loads(p.stdout)[0]
    for name in ("t.gz", "t.xz", "t.zst"):
        q = tk("ingest", str(tmp_path / name), "--store", s, "--json")
        r = json.loads(q.stdout)[0]
        assert q.returncode == 0 and r["status"] == "duplicate" and r["run_id"] == first["run_id"], name
    q = tk("ingest", "-", "--store", s, "--json", input=raw)
    assert json.loads(q.stdout)[0]["run_id"] == first["run_id"]
    # a fresh store takes the compressed file as a new run with the same counts
    q = tk("ingest", str(tmp_path / "t.zst"), "--store", str(tmp_path / "s2"), "--json")
    assert json.loads(q.stdout)[0]["counts"] == first["counts"]


def test_stdin_ingest_and_summary(tmp_path, corpus):
    raw = (corpus / FG).read_bytes()
    p = tk("ingest", "-", "--store", str(tmp_path / "s"), "--patch", "p", "--label", "before", input=raw)
    out = p.stdout.decode()
    assert p.returncode == 0
    # 456 entries + 1940 leaves; 21 switch blocks + 3 comments as events
    assert "<stdin>: ingested as run" in out and "2396 spans (function_graph 2396)" in out
    assert "24 events" in out and "0 lost events" in out and "0 lines skipped" in out
    assert "arch is 'unknown'" in p.stderr.decode()  # the warning, not an error
    assert not list((tmp_path / "s" / ".tmp").iterdir())  # the spooled copy is gone


def test_skipped_lines_reported(tmp_path, corpus):
    text = (corpus / FG).read_text().splitlines()
    text.insert(10, "garbage line one")
    text.insert(20, "garbage line two")
    f = tmp_path / "damaged.txt"
    f.write_text("\n".join(text) + "\n")
    p = tk("ingest", str(f), "--store", str(tmp_path / "s"), "--arch", "x86_64")
    assert p.returncode == 0
    assert "2 lines skipped (unrecognised function_graph line: 2)" in p.stdout.decode()
    assert "first at line 11" in p.stderr.decode()


def test_runs_json_and_table(tmp_path, corpus):
    s = str(tmp_path / "s")
    tk("ingest", str(corpus / FG), "--store", s, "--patch", "pgfree", "--label", "before", "--arch", "x86_64", "--kernel", "6.1.0-56-amd64")
    p = tk("runs", "--store", s, "--json")
    rows = json.loads(p.stdout)
    assert p.returncode == 0 and len(rows) == 1
    r = rows[0]
    assert (r["patch"], r["label"], r["arch"], r["kernel"], r["format"], r["tracer"]) == (
        "pgfree", "before", "x86_64", "6.1.0-56-amd64", "function_graph", "function_graph"
    )
    assert r["counts"]["spans"] == 2396 and r["skipped"] == {}
    t = tk("runs", "--store", s).stdout.decode()
    assert "pgfree" in t and r["run_id"] in t


@pytest.mark.parametrize("cmd", ["ingest", "runs", "formats", "report", "model", "calibrate", "replay", "capture"])
def test_help_has_an_example(cmd):
    p = tk(cmd, "--help")
    assert p.returncode == 0 and "Example" in p.stdout.decode() and "tracekit " + cmd in p.stdout.decode()


def test_formats_lists_each_format_with_an_example():
    out = tk("formats").stdout.decode()
    assert "function_graph" in out and "ftrace" in out and out.count("e.g.") >= 2


@pytest.mark.parametrize(
    "rel, says",
    [
        ("kbuild-x86_64-6.1.192/patches/0001-mm-reenact-non-preemptible-pagetable-freeing.patch", "a patch"),
        ("kbuild-x86_64-6.1.192/tracekit.fragment", "a kernel configuration fragment"),
        ("qemu/x86_64-6.1.0-56-preempt-none/events.enabled.txt", "a list of trace events"),
    ],
)
def test_files_that_travel_with_traces_are_named(tmp_path, corpus, rel, says):
    p = tk("ingest", str(corpus / rel), "--store", str(tmp_path / "s"))
    err = p.stderr.decode()
    assert p.returncode == 2 and f"{rel.rsplit('/', 1)[-1]}:1: not a trace: {says}" in err


def test_jobs_ingest_in_parallel(tmp_path, corpus):
    files = [str(corpus / "qemu/x86_64-6.1.0-56-preempt-none" / f) for f in ("fgraph_default.txt", "function.txt", "events.txt")]
    p = tk("ingest", *files, "--store", str(tmp_path / "s"), "--jobs", "2", "--json")
    rows = json.loads(p.stdout)
    assert p.returncode == 0 and [r["status"] for r in rows] == ["ingested"] * 3
    assert [r["path"] for r in rows] == files  # results in the order given
    serial = tk("ingest", *files, "--store", str(tmp_path / "s2"), "--json")
    assert [r["counts"] for r in json.loads(serial.stdout)] == [r["counts"] for r in rows]


def test_jobs_compile_once_on_a_fresh_cache(tmp_path, corpus):
    """--jobs on a fresh install: the compiled loops are compiled once and the workers load
    them from numba's cache, rather than each worker compiling its own copy.  numba says
    every cache file it writes (NUMBA_DEBUG_CACHE); two writes of one file are two compiles.
    (The inputs are two boots' dmesg, each repeated past the size read interpreted.)"""
    import os

    from tracekit.jit import SMALL_TEXT_BYTES

    files = []
    for side in "AB":
        text = (corpus / f"kbuild-x86_64-6.1.192/{side}/dmesg.txt").read_bytes()
        files.append(str(tmp_path / f"dmesg-{side}.txt"))
        Path(files[-1]).write_bytes(text * (SMALL_TEXT_BYTES // len(text) + 1))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_DEBUG_CACHE": "1"}
    p = subprocess.run([sys.executable, "-m", "tracekit", "ingest", *files, "--store", str(tmp_path / "s"),
                        "--jobs", "2"], capture_output=True, env=env)
    assert p.returncode == 0, p.stderr.decode()
    out = p.stdout.decode().splitlines()
    saved = [ln.split(" saved to ")[1] for ln in out if ln.startswith("[cache] data saved to ")]
    loaded = {ln.split(" loaded from ")[1] for ln in out if ln.startswith("[cache] data loaded from ")}
    assert saved and len(saved) == len(set(saved))  # each loop compiled once
    assert set(saved) <= loaded  # and loaded by the workers


def test_arch_conflict_names_both(tmp_path, corpus):
    # perf-cycles-instructions-01.txt says "# arch : x86_64" in its --header block
    p = tk("ingest", str(corpus / "flamegraph/perf-cycles-instructions-01.txt"), "--store", str(tmp_path / "s"), "--arch", "ppc64")
    err = p.stderr.decode()
    assert p.returncode == 2 and "x86_64" in err and "ppc64" in err and "Traceback" not in err
    assert not tracekit.open_store(tmp_path / "s", create=False).run_ids()
    q = tk("ingest", str(corpus / "flamegraph/perf-cycles-instructions-01.txt"), "--store", str(tmp_path / "s"), "--arch", "amd64", "--json")
    assert q.returncode == 0 and json.loads(q.stdout)[0]["arch"] == "x86_64"


def test_extra_meta_applies_to_every_path_and_fills_the_clock(tmp_path, corpus):
    import tracekit

    store = tracekit.open_store(tmp_path / "s")
    files = [str(corpus / "qemu/x86_64-6.1.0-56-preempt-none" / f) for f in ("fgraph_default.txt", "function.txt")]
    extra = {"config": {"thp": "never"}, "clock": "local", "capture": {"tag": "t"}}
    res = tracekit.ingest(files, store=store, extra_meta=extra)
    assert extra == {"config": {"thp": "never"}, "clock": "local", "capture": {"tag": "t"}}  # not consumed
    runs = store.runs().collect()
    assert runs.height == 2 and all(r.status == "ingested" for r in res)
    assert runs["clock"].to_list() == ["local", "local"]
    assert all('"thp": "never"' in c for c in runs["config"]) and all('"capture"' in m for m in runs["meta"])


def test_boot_id_recorded_from_cli_and_python(tmp_path, corpus):
    """--boot names the unit of replication; without it the run has none (it is its own unit)."""
    import tracekit

    s = str(tmp_path / "s")
    p = tk("ingest", str(corpus / FG), "--store", s, "--patch", "p", "--label", "before", "--arch", "x86_64", "--boot", "boot-7")
    assert p.returncode == 0 and ", boot boot-7 " in p.stdout.decode()
    other = "qemu/x86_64-6.1.0-56-preempt-none/fgraph_filter.txt"
    [res] = tracekit.ingest([str(corpus / other)], store=s, patch="p", label="after", arch="x86_64")
    assert res.boot_id is None
    rows = {r["label"]: r for r in json.loads(tk("runs", "--store", s, "--json").stdout)}
    assert rows["before"]["boot_id"] == "boot-7" and rows["after"]["boot_id"] is None
    [again] = tracekit.ingest([str(corpus / FG)], store=s, patch="p", label="before", boot="boot-7")
    assert again.status == "duplicate" and again.boot_id == "boot-7"
    table = tk("runs", "--store", s).stdout.decode().splitlines()
    assert table[0].split()[:4] == ["run_id", "patch", "label", "boot"]
    assert any(line.split()[3] == "boot-7" for line in table[1:])


def test_same_bytes_in_two_boots_are_two_runs(tmp_path, corpus):
    """A deterministic guest (QEMU -icount) can write byte-identical traces in two boots:
    each boot's copy is an observation of its own, while one file ingested twice in one
    boot, or twice without a boot, is one run."""
    import tracekit

    s = str(tmp_path / "s")
    one = tracekit.ingest([str(corpus / FG)], store=s, patch="p", label="before", boot="b1")
    two = tracekit.ingest([str(corpus / FG)], store=s, patch="p", label="before", boot="b2")
    again = tracekit.ingest([str(corpus / FG)], store=s, patch="p", label="before", boot="b2")
    assert [r.status for r in one + two + again] == ["ingested", "ingested", "duplicate"]
    assert one[0].run_id != two[0].run_id == again[0].run_id
    plain = tracekit.ingest([str(corpus / FG)] * 2, store=s, patch="p", label="after")
    assert sorted(r.status for r in plain) == ["duplicate", "ingested"]
    assert len({one[0].run_id, two[0].run_id, plain[0].run_id}) == 3
    runs = {r["run_id"]: r["boot_id"] for r in json.loads(tk("runs", "--store", s, "--json").stdout)}
    assert runs == {one[0].run_id: "b1", two[0].run_id: "b2", plain[0].run_id: None}
    assert one[0].counts == two[0].counts  # the same spans, stored once per boot
