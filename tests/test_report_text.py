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
    assert any(ln.split()[:2] == ["before", "52"] for ln in t.splitlines())
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
    # (1441 - 11574) / 11574 = -87.55%
    assert "change of the worst window: -87.5%" in real_text


def test_hostile_and_long_strings_keep_the_layout():
    src, long_func = hostile_source()
    info = PatchInfo(subject="J\u00f6rg's \t" + HOSTILE + " " + "w" * 120, prefix="PATCH", author="J\u00f6rg R\u00f6del",
                     message_id="20070716.a" + "b" * 80 + "@example.org")
    c = compare(src, "evil", patch_info=info, functions=["exit_mmap", HOSTILE, long_func, "absent_func"])
    text = render_text(c)
    _check_layout(text)
    assert "Jorg Rodel" in text  # accents dropped, not '?'
    assert "absent_func" in text  # named as missing
    assert "too few samples" in text  # absent_func has no calls on either side


def test_benchstat_tilde_and_too_few():
    src, _ = hostile_source(n=5)
    c = compare(src, "evil", functions=["exit_mmap"])
    text = render_text(c)
    # 5 calls a side, below the minimum of 6
    assert "too few samples (before 5, after 5; 6 needed on each side)" in text


def test_window_latencies_compared(real_text):
    if not latency_format_available():
        pytest.skip("the latency-tracer parser is not registered in tracekit.parsers yet")
    # Medians of the three runs' maxima: 11203 us (A) and 749 us (B): (749 - 11203) / 11203
    # = -93.3%; three windows a side are too few for a verdict.
    assert "all windows: median -93.3%, 3 vs 3 windows, too few for a verdict" in real_text


def test_summary_counts_verdicts():
    src, _ = hostile_source()
    c = compare(src, "evil", functions=["exit_mmap", "absent_func"])
    text = render_text(c)
    # exit_mmap: after = 3 x before for every call, a regression; absent_func: no calls.
    assert "Summary:\n  x86_64: 1 regression, 1 too few samples; worst preemptoff window" in text
