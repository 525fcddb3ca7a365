"""The store from the terminal: ``tracekit sql``, ``spans`` / ``events`` / ``windows``,
``export`` (Perfetto trace-event JSON, folded stacks) and ``flamegraph``, as a user runs
them.  Expected numbers are counted in the trace files by hand (grep-like reads here)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import simple_fgraph_sums

QEMU = "qemu/x86_64-6.1.0-56-preempt-none"
FG = f"{QEMU}/fgraph_default.txt"  # no timestamps: 2396 spans, 22 exit_mmap calls
ABS = f"{QEMU}/fgraph_procabs.txt"  # abstime and task: the same teardown with times


def _exits(text: str) -> int:
    """exit_mmap calls: the lines that open one (not ldt_arch_exit_mmap's)."""
    return len(re.findall(r"\|\s+exit_mmap\(\) \{$", text, re.M))


def tk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory, corpus) -> Path:
    s = tmp_path_factory.mktemp("data") / "store"
    for rel, label in ((FG, "before"), (ABS, "after")):
        r = tk("ingest", str(corpus / rel), "--store", str(s), "--patch", "p", "--label", label, "--arch", "x86_64")
        assert r.returncode == 0, r.stderr
    return s


def _run_id(store: Path, label: str) -> str:
    r = tk("sql", f"SELECT run_id FROM runs WHERE label = '{label}'", "--store", str(store), "--format", "json")
    return json.loads(r.stdout)[0]["run_id"]


def test_sql_counts_and_partition_columns(store, corpus):
    entries = _exits((corpus / FG).read_text())
    r = tk("sql", "SELECT label, count(*) AS n, count(*) FILTER (WHERE func = 'exit_mmap') AS exits "
           "FROM spans WHERE patch = 'p' AND arch = 'x86_64' GROUP BY label ORDER BY label",
           "--store", str(store), "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows[0] == {"label": "after", "n": rows[0]["n"], "exits": _exits((corpus / ABS).read_text())}
    assert rows[1] == {"label": "before", "n": 2396, "exits": entries}
    assert entries == 22


def test_sql_csv_table_and_views(store):
    r = tk("sql", "SELECT label, patch FROM runs ORDER BY label", "--store", str(store), "--format", "csv")
    assert list(csv.reader(io.StringIO(r.stdout))) == [["label", "patch"], ["after", "p"], ["before", "p"]]
    t = tk("sql", "SELECT label, patch FROM runs ORDER BY label", "--store", str(store))
    # not a terminal: plain ASCII, one row a line
    assert t.stdout.splitlines() == ["label   patch", "------  -----", "after   p", "before  p"]
    for view in ("runs", "spans", "events", "windows"):
        v = tk("sql", f"SELECT count(*) AS n FROM {view}", "--store", str(store), "--format", "json")
        assert v.returncode == 0 and isinstance(json.loads(v.stdout)[0]["n"], int)
    w = tk("sql", "SELECT patch, arch, label, run_id FROM windows", "--store", str(store), "--format", "json")
    assert json.loads(w.stdout) == []  # no windows: an empty view with the partition columns


def test_sql_errors_are_one_line(store, tmp_path):
    r = tk("sql", "SELECT nosuch FROM spans", "--store", str(store))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "nosuch" in r.stderr
    r = tk("sql", "SELECT 1", "--store", str(tmp_path / "missing"))
    assert r.returncode == 2 and "no such directory" in r.stderr and not (tmp_path / "missing").exists()
    r = tk("sql", "SELECT 1", "--store", str(store), "--format", "xml")
    assert r.returncode == 2 and "--format 'xml'" in r.stderr


def test_spans_filters(store, corpus):
    exits = _exits((corpus / FG).read_text())
    r = tk("spans", "--store", str(store), "--label", "before", "--func", "exit_mmap", "--format", "json")
    rows = json.loads(r.stdout)
    assert len(rows) == exits and {x["func"] for x in rows} == {"exit_mmap"}
    # every call in this trace is made under exit_mmap (set_graph_function): all but the exits
    u = tk("spans", "--store", str(store), "--label", "before", "--under", "exit_mmap", "--format", "csv")
    assert len(u.stdout.splitlines()) - 1 == 2396 - exits
    g = tk("spans", "--store", str(store), "--label", "before", "--func", "free_pgd_range,unlink_*", "--format", "json")
    names = {x["func"] for x in json.loads(g.stdout)}
    assert names and all(n == "free_pgd_range" or n.startswith("unlink_") for n in names)
    calls = simple_fgraph_sums(corpus / FG)
    assert sum(1 for x in json.loads(g.stdout) if x["func"] == "free_pgd_range") == calls["free_pgd_range"][0]


def test_spans_time_window_and_min_dur(store):
    # fgraph_procabs.txt: lines 5-8 are stamped 32.460797 .. 32.460815 and open exit_mmap,
    # down_read, ldt_arch_exit_mmap and free_ldt_pgtables (line 9 at 32.460817 closes one)
    r = tk("spans", "--store", str(store), "--label", "after", "--time", "32.460797:32.460816", "--format", "json")
    assert [x["func"] for x in json.loads(r.stdout)] == ["exit_mmap", "down_read", "ldt_arch_exit_mmap", "free_ldt_pgtables"]
    # line 17: "# 1020.719 us |      unmap_single_vma();" is the first call over a millisecond
    m = tk("spans", "--store", str(store), "--label", "after", "--func", "unmap_single_vma", "--min-dur", "1ms", "--format", "json")
    rows = json.loads(m.stdout)
    assert rows[0]["dur_ns"] == 1020719 and all(x["dur_ns"] >= 1_000_000 for x in rows)
    assert rows[0]["comm"] == "pgtfree" and rows[0]["pid"] == 301


def test_rows_table_fits_and_says_what_it_cut(store):
    r = tk("spans", "--store", str(store), "--label", "before", "--limit", "5")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["run_id", "cpu", "pid", "comm"] and len(lines) == 2 + 5
    assert "5 of 2,396 spans shown" in r.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["events", "--under", "exit_mmap"], "--under does not apply to events"),
        (["windows", "--func", "x"], "--func does not apply to windows"),
        (["spans", "--time", "5"], "give FROM:TO"),
        (["spans", "--time", "9:3"], "FROM is after TO"),
        (["spans", "--min-dur", "fast"], "--min-dur 'fast'"),
        (["spans", "--run", "zzzz"], "--run 'zzzz': no such run"),
        (["spans", "--format", "yaml"], "--format 'yaml'"),
    ],
)
def test_rows_option_errors(store, args, says):
    r = tk(*args, "--store", str(store))
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.splitlines()) == 1


def _check_trace_event_format(doc: dict) -> dict:
    """The rules of the trace-event format (Chrome's Trace Event Format document) that
    Perfetto's importer relies on; returns the X events per track."""
    assert isinstance(doc["traceEvents"], list) and doc["displayTimeUnit"] in ("ms", "ns")
    tracks: dict = {}
    named_threads = set()
    for ev in doc["traceEvents"]:
        assert isinstance(ev["name"], str) and ev["ph"] in ("X", "i", "M")
        assert isinstance(ev["pid"], int)
        if ev["ph"] == "M":
            assert ev["name"] in ("process_name", "thread_name", "process_sort_index", "thread_sort_index")
            assert isinstance(ev["args"], dict)
            if ev["name"] == "thread_name":
                named_threads.add((ev["pid"], ev["tid"]))
            continue
        assert isinstance(ev["tid"], int) and isinstance(ev["ts"], (int, float)) and ev["ts"] >= 0
        if ev["ph"] == "X":
            assert isinstance(ev["dur"], (int, float)) and ev["dur"] >= 0
            tracks.setdefault((ev["pid"], ev["tid"]), []).append(ev)
        else:
            assert ev["s"] in ("t", "p", "g")
        assert (ev["pid"], ev["tid"]) in named_threads or ev["ph"] == "i"
    # complete events on one track nest: none begins inside another and ends after it
    for evs in tracks.values():
        stack: list[float] = []
        for ev in sorted(evs, key=lambda e: (e["ts"], -e["dur"])):
            end = ev["ts"] + ev["dur"]
            while stack and stack[-1] <= ev["ts"]:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-9, ev
            stack.append(end)
    return tracks


def test_export_perfetto(store, tmp_path, corpus):
    out = tmp_path / "trace.json"
    r = tk("export", "--run", _run_id(store, "after")[:8], "--format", "perfetto", "--out", str(out), "--store", str(store))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    tracks = _check_trace_event_format(doc)
    xs = [e for evs in tracks.values() for e in evs]
    assert sum(1 for e in xs if e["name"] == "exit_mmap") == _exits((corpus / ABS).read_text()) == 22
    big = [e for e in xs if e["name"] == "unmap_single_vma" and e["args"]["dur_ns"] == 1020719]
    assert len(big) == 1 and big[0]["ts"] == pytest.approx(32460944.0)
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert "pgtfree-301" in names
    # the trace without timestamps cannot be placed, and says so
    r = tk("export", "--run", _run_id(store, "before"), "--store", str(store))
    doc = json.loads(r.stdout)
    assert not [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert doc["metadata"]["left-out"]["spans without a start time or an exit"] == 2396
    assert "left out: 2,396 spans" in r.stderr


def test_export_folded_sums_to_the_roots(store, corpus):
    r = tk("export", "--run", _run_id(store, "after"), "--format", "folded", "--store", str(store))
    lines = r.stdout.splitlines()
    # the graph functions of this capture are exit_mmap and unmap_region: every path
    # starts at one of them, under the task's name
    assert all(re.fullmatch(r"pgtfree;(exit_mmap|unmap_region)(;[\w.]+)* \d+", ln) for ln in lines), lines[:3]
    # self times add up to the callers' durations: the total is the two roots' own sums
    sums = simple_fgraph_sums(corpus / ABS)
    assert sums["exit_mmap"][0] == 22
    total = sums["exit_mmap"][1] + sums["unmap_region"][1]
    assert sum(int(ln.rsplit(" ", 1)[1]) for ln in lines) == total


def test_export_errors(store, tmp_path):
    r = tk("export", "--run", "zz", "--store", str(store))
    assert r.returncode == 2 and "no such run" in r.stderr
    r = tk("export", "--run", _run_id(store, "after"), "--out", str(tmp_path / "no" / "dir" / "x.json"), "--store", str(store))
    assert r.returncode == 2 and "cannot write" in r.stderr and len(r.stderr.splitlines()) == 1


def test_flamegraph_differential_and_plain(store, tmp_path):
    out = tmp_path / "diff.svg"
    r = tk("flamegraph", "--patch", "p", "--out", str(out), "--store", str(store))
    assert r.returncode == 0, r.stderr
    svg = ET.parse(out).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    titles = [g.find(f"{ns}title").text for g in svg.iter(f"{ns}g")]
    assert any(t.startswith("exit_mmap: before ") and " after " in t for t in titles)
    fills = {g.find(f"{ns}title").text.split(":")[0]: g.find(f"{ns}rect").get("fill") for g in svg.iter(f"{ns}g")}
    assert fills["all"].startswith("rgb(")
    plain = tmp_path / "one.svg"
    r = tk("flamegraph", "--run", _run_id(store, "after"), "--func", "unmap_vmas", "--out", str(plain), "--store", str(store))
    assert r.returncode == 0, r.stderr
    root = ET.parse(plain).getroot()
    names = {g.find(f"{ns}title").text.split(":")[0] for g in root.iter(f"{ns}g")}
    assert "unmap_vmas" in names and "unmap_single_vma" in names and "free_pgtables" not in names
    r = tk("flamegraph", "--run", _run_id(store, "after"), "--func", "nosuch", "--out", str(plain), "--store", str(store))
    assert r.returncode == 2 and "nothing to draw" in r.stderr
