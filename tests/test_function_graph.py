"""function_graph text (docs/formats.md#function_graph): the real corpus, and each grammar
variant."""

from __future__ import annotations

import polars as pl
import pytest

import tracekit
from helpers import ingest_text, simple_fgraph_sums, store_sums

CORPUS_FILES = [
    "qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt",
    "qemu/x86_64-6.1.0-56-preempt-none/fgraph_procabs.txt",
    "qemu/x86_64-6.1.0-56-preempt-none/fgraph_filter.txt",
    "qemu/x86_64-6.1.0-56-preempt-none/fgraph_thresh.txt",
    "qemu/ppc64le-6.1.0-50-preempt-voluntary/fgraph_default.txt",
    "qemu/ppc64le-6.1.0-50-preempt-voluntary/fgraph_procabs.txt",
    "qemu/ppc64le-6.1.0-50-preempt-voluntary/fgraph_filter.txt",
    "qemu/ppc64le-6.1.0-50-preempt-voluntary/fgraph_thresh.txt",
    "kbuild-x86_64-6.1.192/A/fgraph_exit_mmap.txt",
    "kbuild-x86_64-6.1.192/B/fgraph_exit_mmap.txt",
]


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory, corpus):
    store = tracekit.open_store(tmp_path_factory.mktemp("fg") / "store")
    res = tracekit.ingest([str(corpus / f) for f in CORPUS_FILES], store=store, arch="x86_64", on_error="collect")
    return store, {f: r for f, r in zip(CORPUS_FILES, res)}


@pytest.mark.parametrize("rel", CORPUS_FILES)
def test_corpus_spans_match_a_naive_reader(corpus_store, corpus, rel):
    store, results = corpus_store
    r = results[rel]
    assert r.status == "ingested", r.error
    assert r.counts["skipped_lines"] == 0
    assert store_sums(store, r.run_id) == simple_fgraph_sums(corpus / rel)


def test_corpus_counts_by_hand(corpus_store):
    store, results = corpus_store
    # grep -c '() {$' = 456 entries, grep -c '();$' = 1940 leaves, 21 '=>' switch blocks,
    # 3 trace_printk comments in qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt
    r = results["qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt"]
    assert r.counts["spans"] == 456 + 1940
    assert r.counts["events"] == 21 + 3
    spans = store.spans().filter(pl.col("run_id") == r.run_id).collect()
    assert spans["complete"].all()
    # 22 exit_mmap calls (grep -c '|  exit_mmap() {'), all top level
    em = spans.filter(pl.col("func") == "exit_mmap")
    assert em.height == 22 and em["parent_id"].null_count() == 22 and (em["depth"] == 0).all()
    # children point at their exit_mmap: unmap_vmas' parents are exit_mmap spans
    uv = spans.filter(pl.col("func") == "unmap_vmas")
    assert set(uv["parent_id"].to_list()) <= set(em["span_id"].to_list())
    # the pid of each call comes from the task-switch block before it (the first one is at
    # line 123, grep -n '=>': "pgtfree-263 => pgtfree-264")
    assert spans.filter(pl.col("seq") > 123)["pid"].null_count() == 0
    # and those before it ran as the block's "prev" task, pgtfree-263
    assert set(spans.filter(pl.col("seq") < 123)["pid"]) == {263}


def test_thresh_trace_returns_only(corpus_store):
    store, results = corpus_store
    r = results["qemu/x86_64-6.1.0-56-preempt-none/fgraph_thresh.txt"]
    spans = store.spans().filter(pl.col("run_id") == r.run_id).collect()
    # grep -c '} /\*' = 231 returns whose entries were below the threshold: all kept,
    # none complete, each with its stated duration
    assert spans.height == 231
    assert not spans["complete"].any()
    assert spans["dur_ns"].null_count() == 0
    first = spans.sort("seq").row(0, named=True)
    assert (first["func"], first["dur_ns"]) == ("unmap_vmas", 118768)  # "! 118.768 us  |    } /* unmap_vmas */"


HEADER = "# tracer: function_graph\n#\n# CPU  DURATION                  FUNCTION CALLS\n# |     |   |                     |   |   |   |\n"


def _spans(store):
    return store.spans().collect().sort("seq")


def test_overhead_marks_and_long_durations(tmp_path):
    text = HEADER + (
        " 3) # 1837.709 us |  __switch_to();\n"
        " 3) * 33998.59 us |  schedule();\n"
        " 1) @ 119760.2 us |  foo();\n"
        " 2) $ 3594274 us  |  bar();\n"
        " 0)   0.110 us    |  baz();\n"
        " 0) + 40.861 us   |  down_read();\n"
        " 0) ! 446.178 us  |  mlock_page_drain_local();\n"
    )
    r, st = ingest_text(tmp_path, text)
    d = dict(_spans(st).select("func", "dur_ns").iter_rows())
    assert d == {
        "__switch_to": 1837709, "schedule": 33998590, "foo": 119760200, "bar": 3594274000,
        "baz": 110, "down_read": 40861, "mlock_page_drain_local": 446178,
    }


def test_abstime_proc_nesting_and_start_times(tmp_path):
    text = (
        "# tracer: function_graph\n#\n#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS\n"
        "#      |          |     |    |           |   |                     |   |   |   |\n"
        "   32.460797 |   0)  pgtfree-301   |               |  exit_mmap() {\n"
        "   32.460805 |   0)  pgtfree-301   |   2.444 us    |    down_read();\n"
        "   32.460919 |   0)  pgtfree-301   |               |    unmap_vmas() {\n"
        "   32.460922 |   0)  pgtfree-301   | + 20.380 us   |      unmap_single_vma();\n"
        "   32.462199 |   0)  pgtfree-301   | # 1280.268 us |    }\n"
        "   32.470000 |   0)  pgtfree-301   | ! 9203.100 us |  }\n"
    )
    r, st = ingest_text(tmp_path, text)
    s = _spans(st)
    assert s["func"].to_list() == ["exit_mmap", "down_read", "unmap_vmas", "unmap_single_vma"]
    assert s["dur_ns"].to_list() == [9203100, 2444, 1280268, 20380]
    assert s["start_ns"].to_list() == [32460797000, 32460805000, 32460919000, 32460922000]
    assert s["pid"].unique().to_list() == [301] and s["comm"].unique().to_list() == ["pgtfree"]
    assert s["depth"].to_list() == [0, 1, 1, 2]
    ids = dict(zip(s["func"], s["span_id"]))
    assert dict(zip(s["func"], s["parent_id"])) == {
        "exit_mmap": None, "down_read": ids["exit_mmap"], "unmap_vmas": ids["exit_mmap"],
        "unmap_single_vma": ids["unmap_vmas"],
    }


def test_tail_comments_retval_and_interleaved_cpus(tmp_path):
    text = HEADER + (
        " 0)               |  free_pgtables() {\n"
        " 1)               |  tlb_finish_mmu() {\n"
        " 0)   1.352 us    |    unlink_anon_vmas(); /* = 0x0 */\n"
        " 1)   0.500 us    |    tlb_flush_mmu(); /* ret=-22 */\n"
        " 0) + 12.000 us   |  } /* free_pgtables */\n"
        " 1)   5.000 us    |  } /* tlb_finish_mmu ret=0 */\n"
    )
    r, st = ingest_text(tmp_path, text)
    s = _spans(st)
    assert r.counts["skipped_lines"] == 0
    d = {f: (c, dur, comp) for f, c, dur, comp in s.select("func", "cpu", "dur_ns", "complete").iter_rows()}
    assert d == {
        "free_pgtables": (0, 12000, True), "tlb_finish_mmu": (1, 5000, True),
        "unlink_anon_vmas": (0, 1352, True), "tlb_flush_mmu": (1, 500, True),
    }


def test_irq_markers_set_hardirq_context(tmp_path):
    text = HEADER + (
        " 0)               |  zap_pte_range() {\n"
        " 0)   ==========> |\n"
        " 0)               |    __sysvec_apic_timer_interrupt() {\n"
        " 0)   2.000 us    |      hrtimer_interrupt();\n"
        " 0)   3.000 us    |    }\n"
        " 0)   <========== |\n"
        " 0)   1.000 us    |    page_remove_rmap();\n"
        " 0) + 10.000 us   |  }\n"
    )
    r, st = ingest_text(tmp_path, text)
    ctx = dict(_spans(st).select("func", "context").iter_rows())
    assert ctx == {
        "zap_pte_range": "task", "__sysvec_apic_timer_interrupt": "hardirq",
        "hrtimer_interrupt": "hardirq", "page_remove_rmap": "task",
    }
    ev = st.events().collect()
    assert sorted(ev["kind"].to_list()) == ["irq_entry", "irq_exit"]


def test_task_switch_mid_call_pairs_per_task(tmp_path):
    # pgtfree-377 is switched out inside exit_mmap; pgtfree-378 runs its own calls at the
    # same depth; 377's return comes after it is switched back in.
    text = HEADER + (
        " 0)               |  exit_mmap() {\n"
        " ------------------------------------------\n"
        " 0)  pgtfree-377   =>  pgtfree-378  \n"
        " ------------------------------------------\n"
        "\n"
        " 0)               |  exit_mmap() {\n"
        " 0) + 20.000 us   |  }\n"
        " ------------------------------------------\n"
        " 0)  pgtfree-378   =>  pgtfree-377  \n"
        " ------------------------------------------\n"
        "\n"
        " 0) + 99.000 us   |  }\n"
    )
    r, st = ingest_text(tmp_path, text)
    s = _spans(st)
    # the first exit_mmap ran before any switch on CPU 0: the block names it as "prev",
    # so it pairs with the return printed after 377 is switched back in
    assert s.filter(pl.col("pid") == 378)["dur_ns"].to_list() == [20000]
    assert s.filter(pl.col("pid") == 377).select("dur_ns", "complete").rows() == [(99000, True)]
    assert r.counts["skipped_lines"] == 0


def test_lost_events_and_missing_entries(tmp_path):
    text = HEADER + (
        " 0)               |  unmap_vmas() {\n"
        "CPU:0 [LOST 1234 EVENTS]\n"
        " 0) + 15.000 us   |    } /* unmap_page_range */\n"
        " 0)               |  free_pgtables() {\n"
    )
    r, st = ingest_text(tmp_path, text)
    assert r.counts["lost_events"] == 1234
    s = _spans(st)
    d = {f: (dur, comp) for f, dur, comp in s.select("func", "dur_ns", "complete").iter_rows()}
    # exit without entry: kept with its duration; entries without exit: kept, no duration
    assert d == {"unmap_vmas": (None, False), "unmap_page_range": (15000, False), "free_pgtables": (None, False)}


def test_trace_printk_comment_is_an_event(tmp_path):
    r, st = ingest_text(tmp_path, HEADER + " 0)               |  /* pgtfree: begin */\n 0)   1.000 us    |  f();\n")
    ev = st.events().collect()
    assert ev["kind"].to_list() == ["comment"] and ev["body"].to_list() == ["pgtfree: begin"]


def test_latency_format_flags_column(tmp_path):
    text = (
        "# tracer: function_graph\n#\n"
        "# CPU  TASK/PID         ||||  DURATION                  FUNCTION CALLS\n"
        "# |     |    |          ||||   |   |                     |   |   |   |\n"
        " 0)    bash-1507    |  d..2 |               |  set_track() {\n"
        " 0)    bash-1507    |  d.h2 |   1.107 us    |    foo();\n"
        " 0)    bash-1507    |  d..2 |   4.000 us    |  }\n"
    )
    r, st = ingest_text(tmp_path, text)
    s = _spans(st)
    assert s.select("func", "context").rows() == [("set_track", "task"), ("foo", "hardirq")]
    assert r.counts["skipped_lines"] == 0


def test_unknown_lines_are_counted_not_dropped(tmp_path):
    r, st = ingest_text(tmp_path, HEADER + " 0)   1.000 us    |  f();\nthis is not ftrace\n 0)   2.000 us    |  g();\n")
    assert r.counts["skipped_lines"] == 1
    assert r.skipped == {"unrecognised function_graph line": 1}
    assert any("line 6" in w for w in r.warnings)


def test_clone_and_dot_symbols_are_canonical(tmp_path):
    text = HEADER + " 0)   1.000 us    |  .zap_pte_range.isra.0();\n 0)   2.000 us    |  free_pgtables.constprop.0();\n"
    r, st = ingest_text(tmp_path, text)
    s = _spans(st)
    assert s.select("func", "raw_func").rows() == [
        ("zap_pte_range", ".zap_pte_range.isra.0"), ("free_pgtables", "free_pgtables.constprop.0")
    ]


def test_interrupt_recorded_at_the_interrupted_depth(tmp_path):
    # As trace-cmd renders kbuild-x86_64-6.1.192/A/trace.dat: the timer interrupt's
    # handlers are recorded at depth 1, the depth of the unmap_vmas() they interrupted;
    # the last "}" at depth 1 is unmap_vmas' (56364.482 us).
    text = HEADER + (
        " 0)               |    unmap_vmas() {\n"
        " 0)   8.612 us    |      unmap_page_range();\n"
        " 0)               |    irq_enter_rcu() {\n"
        " 0)   1.091 us    |      preempt_count_add();\n"
        " 0)   3.806 us    |    }\n"
        " 0)               |    __sysvec_apic_timer_interrupt() {\n"
        " 0) + 24.737 us   |      tick_handle_periodic();\n"
        " 0) + 26.750 us   |    }\n"
        " 0)   0.841 us    |    raw_irqentry_exit_cond_resched();\n"
        " 0) # 56364.482 us |    }\n"
    )
    r, st = ingest_text(tmp_path, text)
    s = _spans(st)
    got = {f: (d, c) for f, d, c in s.select("func", "dur_ns", "complete").iter_rows()}
    assert got == {
        "unmap_vmas": (56364482, True), "unmap_page_range": (8612, True),
        "irq_enter_rcu": (3806, True), "preempt_count_add": (1091, True),
        "__sysvec_apic_timer_interrupt": (26750, True), "tick_handle_periodic": (24737, True),
        "raw_irqentry_exit_cond_resched": (841, True),
    }


def test_tracedat_and_its_report_text_give_the_same_spans(tmp_path, corpus):
    # trace-cmd's own rendering of the same recording, made in the guest, must pair into
    # exactly the calls the binary file holds
    d = corpus / "kbuild-x86_64-6.1.192/A"
    store = tracekit.open_store(tmp_path / "s")
    a, b = tracekit.ingest([str(d / "trace.dat"), str(d / "tracecmd.report.txt")], store=store)
    per = (
        store.spans().group_by("run_id", "func").agg(pl.len().alias("n"), pl.col("dur_ns").sum().alias("s"), pl.col("complete").all())
        .collect()
    )
    fa = per.filter(pl.col("run_id") == a.run_id).drop("run_id").sort("func")
    fb = per.filter(pl.col("run_id") == b.run_id).drop("run_id").sort("func")
    assert fa.equals(fb) and fa["complete"].all() and a.counts["spans"] == 7453


@pytest.mark.parametrize("rel", [
    "kbuild-x86_64-6.1.192/A/fgraph_exit_mmap.txt",  # abstime + proc
    "qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt",  # tasks only from switch blocks
    "kbuild-x86_64-6.1.192/A/tracecmd.report.txt",  # same-depth interrupts, raw records
])
def test_chunk_boundaries_do_not_change_spans(tmp_path, corpus, monkeypatch, rel):
    """Calls open at the end of a chunk wait for their return in a later one: cutting the
    input into 3 KiB chunks (hundreds of boundaries, many inside calls) gives the very same
    spans as one chunk."""
    import functools

    import tracekit.pipeline as pipeline
    from tracekit.io import iter_line_chunks

    def spans_of(store_dir):
        store = tracekit.open_store(store_dir)
        (r,) = tracekit.ingest([str(corpus / rel)], store=store)
        return store.spans().collect().drop("run_id").sort("seq"), r

    whole, r1 = spans_of(tmp_path / "whole")
    monkeypatch.setattr(pipeline, "iter_line_chunks", functools.partial(iter_line_chunks, chunk_bytes=3 << 10))
    cut, r2 = spans_of(tmp_path / "cut")
    assert r2.counts == r1.counts
    # Streaming cannot reach back: calls written before a CPU's first switch block (in an
    # earlier chunk) keep an unknown pid, where one chunk could name them.  Everything else,
    # pairing included, is identical.
    assert cut.drop("pid").equals(whole.drop("pid"))
    known = cut["pid"].is_not_null()
    assert cut.filter(known)["pid"].equals(whole.filter(known)["pid"])


def test_returns_pair_by_nesting_when_the_indentation_was_collapsed(tmp_path):
    # issue 13 item 4: a mail client collapsed the indentation; the kernel emits calls
    # nested, so "}" closes the innermost open entry whatever its indentation says
    text = (
        " 0)               |  outer() {\n"
        " 0)               | inner() {\n"
        " 0)   0.480 us    |        leaf();\n"
        " 0)   1.260 us    |      }\n"
        " 0) + 23.320 us   |  }\n"
    )
    r, st = ingest_text(tmp_path, text)
    assert r.status == "ingested", r.error
    s = _spans(st)
    got = s.select("func", "dur_ns", "complete", "depth").rows()
    assert got == [("outer", 23320, True, 0), ("inner", 1260, True, 1), ("leaf", 480, True, 2)]
    by = dict(zip(s["func"], s["span_id"]))
    assert dict(zip(s["func"], s["parent_id"])) == {"outer": None, "inner": by["outer"], "leaf": by["inner"]}
    # inner's entry, the leaf and inner's return are indented at other depths than their nesting
    assert any("3 call line(s) indented at another depth" in w and "line 2" in w for w in r.warnings), r.warnings


def test_nesting_starts_at_the_printed_depth_and_stays_quiet_when_they_agree(tmp_path):
    # a trace that starts inside calls: returns with nothing open keep their printed
    # depth, the first entry of the task takes its printed depth
    text = HEADER + (
        " 1)   2.000 us    |      }\n"
        " 1)   9.000 us    |    }\n"
        " 1)               |    g() {\n"
        " 1)   0.500 us    |      h();\n"
        " 1)   3.000 us    |    }\n"
    )
    r, st = ingest_text(tmp_path, text)
    s = _spans(st)
    assert s.select("func", "dur_ns", "complete", "depth").rows() == [
        (None, 2000, False, 2), (None, 9000, False, 1), ("g", 3000, True, 1), ("h", 500, True, 2)]
    assert not any("indented" in w for w in r.warnings)


def test_a_pid_too_large_for_the_schema_is_damage_not_a_failure(tmp_path):
    # found by benchmarks/fuzz_scan.py: PID_MAX_LIMIT is 4194304, an 11-digit pid is damage
    text = (
        "# tracer: function_graph\n"
        "   50.000059 |  2)  pgtfree-1002  |   1.000 us    |  f();\n"
        "   50.000060 |  2)  pgtfree-10000000002  |   2.000 us    |  g();\n"
    )
    r, st = ingest_text(tmp_path, text)
    assert r.status == "ingested", r.error
    s = _spans(st)
    assert s.select("func", "pid").rows() == [("f", 1002), ("g", None)]
