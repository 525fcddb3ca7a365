"""The demo's main job (``./run.sh demo``): the seed re-enacted on the bundled captures of
fixtures/seed (fixtures/README.md).  Debian's 6.1 with free_pgtables and tlb_finish_mmu
non-preemptible, as in 2.6.22 ("before"), against 6.1 as it is ("after"), several boots a
side under QEMU -icount; the model calibrated on the preemptible kernel's kprobe spans.
The steps are run.sh's ``seed``; the expected windows are read from the latency headers
(``# latency: N us``) of the files themselves, not from tracekit."""

from __future__ import annotations

import gzip
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

import tracekit

SEED = Path(__file__).resolve().parent.parent / "fixtures" / "seed"
WORKLOAD = "pgtfree:forks=2,mb=256,sparse=64,loops=0"
PATCH = "preemptible-pgtable-freeing"
SIDES = (("patched", "before"), ("unpatched", "after"))


def tk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True, text=True)


def boots(side: str) -> list[Path]:
    """The boots of a side with preemptoff windows (graph/ is a boot of its own, traced
    with function_graph for the call tree)."""
    return sorted({d.parent for d in (SEED / side).glob("*/latency_preemptoff.run*.txt.gz")})


def header_worst_us(boot: Path) -> int:
    """The boot's worst preemptoff window, from its latency files' own headers."""
    found = []
    for f in boot.glob("latency_preemptoff.run*.txt.gz"):
        head = gzip.open(f, "rt").read(4096)
        found.append(int(re.search(r"^# latency: (\d+) us", head, re.M).group(1)))
    return max(found)


@pytest.fixture(scope="module")
def seed_report(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("seed")
    store = str(tmp / "store")
    for side, label in SIDES:
        for d in sorted(p.parent for p in (SEED / side).glob("*/capture.json")):
            meta = json.loads((d / "capture.json").read_text())
            name = PATCH + ("-call-tree" if d.name == "graph" else "")
            res = tracekit.ingest(sorted(str(p) for p in d.glob("*.txt.gz")), store=store, patch=name, label=label,
                                  arch=meta["arch"], kernel=meta["kernel_release"], boot=meta["boot_id"], preempt=meta["preempt"])
            assert [r.status for r in res] == ["ingested"] * len(res), [r.error for r in res]
    cal = tk("calibrate", "--store", store, "--patch", PATCH, "--label", "after", "--source", "kprobe",
             "--workload", WORKLOAD, "--strategy", "modern", "--preempt", "--before", "modern-np-pgfree",
             "--after", "modern")
    assert cal.returncode == 0, cal.stderr
    rep = tk("report", "--store", store, "--patch", PATCH, "--out", str(tmp / "report"), "--format", "json,text",
             "--quiet")
    assert rep.returncode == 0, rep.stderr
    report = json.loads((tmp / "report" / "report.json").read_text())
    report["_text"] = (tmp / "report" / "report.txt").read_text()
    return report


def test_every_boot_is_a_unit():
    """Five boots a side at least, so that fully separated worst windows reach p < 0.05 on
    the exact rank test (2 / C(10, 5) = 0.0079)."""
    for side, _ in SIDES:
        ids = {json.loads((d / "capture.json").read_text())["boot_id"] for d in boots(side)}
        assert len(ids) == len(boots(side)) >= 5


def test_worst_preemptoff_window_is_a_significant_improvement(seed_report):
    [group] = seed_report["groups"]
    [w] = [w for w in group["windows"] if w["tracer"] == "preemptoff"]
    for side, label in SIDES:
        assert w[label]["units"] == len(boots(side))
        expected = statistics.median(header_worst_us(d) for d in boots(side))
        assert statistics.median(w[label]["unit_worst_ns"].values()) == expected * 1000
    assert w["change"]["verdict"] == "improvement"
    assert w["change"]["significant"] and w["change"]["p_adjusted"] < 0.05
    assert w["change"]["median_change_pct"] < -50
    # the non-preemptible kernel's window is the teardown itself
    assert w["before"]["started_at"] == "exit_mmap" == w["before"]["ended_at"]


def test_model_predicts_the_patched_window_within_25_percent(seed_report):
    [group] = seed_report["groups"]
    pred = group["prediction"]["windows"]["preemptoff"]["before"]
    assert pred["strategy"] == "modern-np-pgfree" and pred["ended_in"] == "exit_mmap"
    measured_us = statistics.median(header_worst_us(d) for d in boots("patched"))
    assert pred["measured_worst_ns"] == measured_us * 1000
    assert abs(pred["worst_ns"] / (measured_us * 1000) - 1) < 0.25
    assert "10 runs" in group["prediction"]["note"] and "(after)" in group["prediction"]["note"]  # kprobe boots


def test_change_table_keeps_each_row_readable(seed_report):
    """Each boot mixes the workload's long exits with short ones, so the intervals of the
    medians are wide: a row whose interval overflows its column puts its p99 and p on a line
    of its own, under their headings, never wrapped into the next row."""
    text = seed_report["_text"].splitlines()
    assert all(len(line) <= 72 for line in text)
    start = next(i for i, line in enumerate(text) if line.startswith("change "))
    head = text[start]
    table = text[start + 2:text.index("", start)]
    [result_names] = [[r["function"] for r in g["results"]] for g in seed_report["groups"]]
    for name in result_names:
        [i] = [i for i, line in enumerate(table) if line.split() and line.split()[0] == name]
        row = table[i] if re.search(r"\d\.\d{3}$|<0\.001$", table[i]) else table[i + 1]
        assert re.search(r"(\d\.\d{3}|<0\.001)$", row), (name, table)
        assert len(row) == len(head)  # the p column ends where its heading does
