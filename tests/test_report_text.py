"""report.txt: plain ASCII, at most 72 columns, no tabs; the content a reviewer reads."""

from __future__ import annotations

import pytest

from _report_store import HOSTILE, PATCH_0001, hostile_source, kbuild_store, latency_format_available
from tracekit.reports.compare import compare, open_source
from tracekit.reports.patch import PatchInfo, read_patch
from tracekit.reports.render_text import render_text


def _check_layout(text: str) -> None:
    for i, line in enumerate(text.splitlines(), 1):
        assert len(line) <= 72, (i, line)
        assert "\t" not in line, (i, line)
        assert line.isascii(), (i, line)
        assert line == line.rstrip(), (i, line)


@pytest.fixture(scope="module")
def real_text():
    c = compare(open_source(kbuild_store()), "pgfree-lat", patch_info=read_patch(PATCH_0001))
    return render_text(c)


def test_real_report_layout(real_text):
    _check_layout(real_text)


def test_real_report_header_and_tables(real_text):
    t = real_text
    assert "Subject:   [PATCH] mm: re-enact non-preemptible pagetable freeing in" in t
    assert "Author:    tracekit lab <tracekit-lab@localhost>" in t
    assert "Touches:   exit_mmap" in t
    assert "Link:" not in t  # format-patch without --thread: no Message-ID
    assert "x86_64: " in t and "fgraph_exit_mmap.txt (function_graph)" in t
    # 52 calls of exit_mmap on each side: grep -c 'exit_mmap() {' A/ and B/fgraph_exit_mmap.txt
    # (one unit, the run, on each side)
    assert any(ln.split()[:3] == ["before", "1", "52"] for ln in t.splitlines())
    # zap_pte_range and tlb_flush_mmu are inlined / not traced in this capture: no rows.
    assert "zap_pte_range\n" not in t
    assert "Verdicts:" in t and "Method:" in t


def test_real_report_windows(real_text):
    if not latency_format_available():
        pytest.skip("the latency-tracer parser is not registered in tracekit.parsers yet")
    # A/latency_preemptoff.run1.txt: "# latency: 11574 us", started/ended at exit_mmap;
    # B/latency_preemptoff.run2.txt: "# latency: 1441 us", preempt_schedule_thunk -> pipe_read.
    assert "worst 11.57ms in pgtfree2-153, started at exit_mmap, ended" in real_text
    assert "worst 1.441ms in pgtfree2-169, started at" in real_text


def test_hostile_and_long_strings_keep_the_layout():
    src, long_func = hostile_source()
    info = PatchInfo(subject="J\u00f6rg's \t" + HOSTILE + " " + "w" * 120, prefix="PATCH", author="J\u00f6rg R\u00f6del",
                     message_id="20070716.a" + "b" * 80 + "@example.org")
    c = compare(src, "evil", patch_info=info, functions=["exit_mmap", HOSTILE, long_func, "absent_func"])
    text = render_text(c)
    _check_layout(text)
    assert "Jorg Rodel" in text  # accents dropped, not '?'
    assert "absent_func" in text  # named as missing
    assert "absent_func: no verdict (0+0 runs, 0+0 calls)" in text  # no calls on either side


def test_one_run_a_side_has_no_verdict_and_says_what_one_needs():
    src, _ = hostile_source(n=500)
    c = compare(src, "evil", functions=["exit_mmap"])
    text = render_text(c)
    # 500 calls a side, every call after three times as long: one unit a side all the same.
    assert "exit_mmap: no verdict (1+1 runs, 500+500 calls)" in text
    assert "One run a side cannot tell the patch from run-to-run variation: a\n  verdict needs at least 4 runs a side." in text


def test_benchstat_tilde_and_below_threshold(tmp_path):
    from _report_store import boots_store

    # Boot medians (us): +1% with the sides interleaved: "~"; +2.1% with the sides fully
    # apart (p = 2/252): significant, below the 5% threshold.
    store = boots_store(tmp_path / "a", {"before": [100, 101, 102, 103, 104], "after": [101, 102, 103, 104, 105]})
    text = render_text(compare(open_source(store), "synthetic", functions=["free_pgtables"], under="exit_mmap"))
    _check_layout(text)
    flat = " ".join(text.split())
    assert "free_pgtables: ~ no significant change: median 102.0us -> 103.0us, +1.0% (" in flat
    assert "Units: x86_64: 5 boots before, 5 boots after" in flat
    assert any(ln.split()[:2] == ["free_pgtables", "~"] for ln in text.splitlines())
    store = boots_store(tmp_path / "b", {"before": [100, 100.5, 101, 101.5, 102], "after": [102.1, 102.6, 103.1, 103.6, 104.1]})
    text = render_text(compare(open_source(store), "synthetic", functions=["free_pgtables"], under="exit_mmap"))
    # (103.1 - 101) / 101 = +2.08%
    flat = " ".join(text.split())
    assert "free_pgtables: significant, below the 5% threshold: median 101.0us -> 103.1us, +2.1% (+" in flat
    assert "(p=0.008; 5+5 boots, 35+35 calls)" in flat


def test_window_latencies_compared(real_text):
    if not latency_format_available():
        pytest.skip("the latency-tracer parser is not registered in tracekit.parsers yet")
    # Each run is its own unit (no boot recorded): medians of the three runs' worst windows
    # 11203 us (A) and 749 us (B): (749 - 11203) / 11203 = -93.3%.  Fully apart, but three
    # a side can do no better than p = 2/C(6,3) = 0.1.
    flat = " ".join(real_text.split())
    assert ("no verdict (3+3 runs): median of the runs' worst windows 11.20ms -> 749.0us, -93.3%. "
            "The exact rank test on 3 against 3 runs cannot reach p<0.05 however far apart they are: "
            "a verdict needs at least 4 runs a side.") in flat


def test_summary_counts_verdicts():
    src, _ = hostile_source()
    c = compare(src, "evil", functions=["exit_mmap", "absent_func"])
    text = render_text(c)
    # exit_mmap: after = 3 x before for every call, but of one run a side; absent_func: no
    # calls; the windows: one a side.
    assert ("Summary: x86_64: 2 functions without a verdict (too few units); preemptoff windows, "
            "median of the units' worst 5.000ms -> 15.00ms (+200.0%): no verdict (too few units).") in " ".join(text.split())
