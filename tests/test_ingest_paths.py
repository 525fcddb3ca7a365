"""The fast ingest paths give what the plain ones give: lazily split chunks, function_graph
chunks parsed in threads, the fields read by polars' CSV reader and by position, the
integer sorts and the IRQ nesting of span pairing."""

from __future__ import annotations

import functools
import random

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracekit
from helpers import assert_general_reads_as_taken, ingest_text
from tracekit.io import iter_line_chunks, split_lines
from tracekit.parsers import function_graph as fg
from tracekit.parsers import scan
from tracekit.parsers.base import LineChunk, ParseContext
from tracekit.spans import _irq_within, _match_rows, _parent_rows

PROCABS = "kbuild-x86_64-6.1.192/A/fgraph_exit_mmap.txt"


def test_line_chunk_splits_its_bytes_only_when_asked():
    raw = b"a|b\n\nlast line without newline"
    c = LineChunk(7, raw=raw)
    assert c.n_lines == 3
    assert c._lines is None  # nothing split yet
    assert c.lines.to_list() == ["a|b", "", "last line without newline"]
    assert c.line_numbers.to_list() == [7, 8, 9]
    assert LineChunk(1, raw=b"x\ny\n").n_lines == 2
    assert split_lines(b"x\ny\n").to_list() == ["x", "y"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["", "#", "# x", "a#", " #", "x", "##"]), min_size=1, max_size=12), st.booleans())
def test_a_header_line_is_found_anywhere_in_a_chunk(lines, final_newline):
    raw = "\n".join(lines).encode() + (b"\n" if final_newline else b"")
    want = any(ln.startswith("#") for ln in lines)
    assert LineChunk(1, raw=raw).any_line_starts_with(b"#") == want
    assert LineChunk(1, pl.Series("text", lines, dtype=pl.String)).any_line_starts_with(b"#") == want
    header = [ln for ln in lines if ln.startswith("#")]
    assert LineChunk(1, raw=raw).lines_starting_with(b"#").to_list() == header
    assert LineChunk(1, pl.Series("text", lines, dtype=pl.String)).lines_starting_with(b"#").to_list() == header


def test_parse_context_children_merge_in_file_order():
    ctx = ParseContext("f", meta={"tracer": "function_graph"})
    a, b = ctx.child(), ctx.child()
    a.skip("odd line", 2)
    a.meta["first_skipped_line"] = 10
    b.skip("odd line", 1)
    b.meta["first_skipped_line"] = 99
    b.lost_events = 5
    a.warn("w")
    b.warn("w")
    ctx.merge(a)
    ctx.merge(b)
    assert ctx.skipped == {"odd line": 3}
    assert ctx.meta["first_skipped_line"] == 10
    assert ctx.lost_events == 5
    assert ctx.warnings == ["w"]


def _one_chunk(path) -> LineChunk:
    (chunk,) = [c for c in iter_line_chunks(path, chunk_bytes=64 << 20) if c.n_lines]
    return chunk


def _parse(path, threads: int, monkeypatch, chunk_bytes: int = 64 << 10):
    monkeypatch.setattr(scan, "PARSE_THREADS", threads)
    ctx = ParseContext(str(path))
    frames = list(fg.parse(iter_line_chunks(path, chunk_bytes=chunk_bytes), ctx))
    return pl.concat(frames), ctx


@pytest.mark.parametrize("rel", [PROCABS, "qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt",
                                 "qemu/ppc64le-6.1.0-50-preempt-voluntary/fgraph_thresh.txt"])
def test_threaded_parse_equals_one_thread(corpus, monkeypatch, rel):
    one, c1 = _parse(corpus / rel, 1, monkeypatch)
    two, c2 = _parse(corpus / rel, 2, monkeypatch)
    assert one.equals(two)
    assert c1.skipped == c2.skipped and c1.lost_events == c2.lost_events
    assert c1.meta == c2.meta


def test_fast_paths_equal_the_general_path_line_by_line(corpus):
    """Every line the fast path takes reads the same through the general regular
    expressions; the fast path hands back only the lines the general path must read."""
    path = corpus / PROCABS
    chunk = _one_chunk(path)
    lay = fg.detect_layout(chunk.lines)
    good, rest = fg._parse_fast(chunk, lay)
    ctx = ParseContext(str(path))
    general = fg._parse_general(pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines}), ctx)
    assert good.height > 0.9 * chunk.n_lines
    assert_general_reads_as_taken(general, good, "seq", ("cpu", "pid", "comm", "ts_ns", "kind", "func", "raw_func",
                                                          "depth", "dur_ns", "flags", "body"))


def test_chunk_bytes_and_split_lines_agree(corpus):
    chunk = _one_chunk(corpus / PROCABS)
    lay = fg.detect_layout(chunk.lines)
    by_bytes, _ = fg._parse_fast(chunk, lay)
    text_only = LineChunk(chunk.first_line, chunk.lines)
    by_split, _ = fg._parse_fast(text_only, lay)
    assert by_bytes.equals(by_split)


def test_private_categories_and_the_fallback_agree(corpus, monkeypatch):
    chunk = _one_chunk(corpus / PROCABS)
    lay = fg.detect_layout(chunk.lines)
    fast, _ = fg._parse_fast(chunk, lay)

    class NoCategories:
        @staticmethod
        def random():
            raise AttributeError("no private categories in this polars")

    monkeypatch.setattr(pl, "Categories", NoCategories)
    fallback, _ = fg._parse_fast(chunk, lay)
    assert fast.equals(fallback)


def test_a_foreign_mark_in_the_duration_column_is_not_a_call(tmp_path):
    """print_graph_duration() leads with a space, a mark from trace_find_mark() or a space,
    then a space: anything else there is not a duration the kernel printed."""
    good = "   12.000000 |   0)  a-1     |   1.500 us    |  f();\n"
    bad = "   12.000001 |   0)  a-1     | x 1.500 us    |  g();\n"
    res, store = ingest_text(tmp_path, "# tracer: function_graph\n" + good * 3 + bad)
    assert res.status == "ingested"
    spans = store.spans().collect()
    assert spans["func"].to_list() == ["f", "f", "f"]
    assert spans["dur_ns"].to_list() == [1500] * 3
    assert res.counts["skipped_lines"] == 1


def test_lines_with_latin1_bytes_keep_their_text(tmp_path):
    """A chunk that is not UTF-8 leaves the CSV reader; its odd lines are decoded as the
    file is (Latin-1), not dropped."""
    body = "".join(f"   12.{i:06d} |   0)  a-1     |   1.500 us    |  f();\n" for i in range(50))
    raw = ("# tracer: function_graph\n" + body).encode() + "   12.000100 |   0)  a-1     |               |  /* caf\xe9 */\n".encode("latin-1")
    p = tmp_path / "latin1.txt"
    p.write_bytes(raw)
    store = tracekit.open_store(tmp_path / "store")
    (res,) = tracekit.ingest([str(p)], store=store)
    assert res.counts["spans"] == 50
    ev = store.events().collect()
    assert ev.filter(pl.col("kind") == "comment")["body"].to_list() == ["caf\xe9"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.sampled_from([-1, -1, 0, 1])), min_size=1, max_size=80))
def test_returns_close_entries_last_in_first_out_per_slot(rows):
    """Entries and returns of nesting slots in source order: the stacks pair what the
    parallel formulation pairs (in each slot, an entry and the next row at its nesting
    level, when that is a return naming no other function), and leave open the entries
    nothing follows at their level."""
    group = np.array([r[0] for r in rows], dtype=np.int64)
    opening = np.array([r[1] for r in rows], dtype=bool)
    func = np.array([r[2] for r in rows], dtype=np.int64)
    ret, is_open = _match_rows(group, 3, opening, func)
    step = np.where(opening, 1, -1)
    want_ret = np.full(len(rows), -1)
    want_open = np.zeros(len(rows), dtype=bool)
    for g in range(3):
        at = np.flatnonzero(group == g)
        run = np.cumsum(step[at])
        level = np.where(opening[at], run - 1, run)
        for lv in set(level.tolist()):
            same = at[level == lv]
            for k, r in enumerate(same):
                if not opening[r]:
                    continue
                if k + 1 == len(same):
                    want_open[r] = True
                elif not opening[same[k + 1]] and (func[r] < 0 or func[same[k + 1]] < 0 or func[r] == func[same[k + 1]]):
                    want_ret[r] = same[k + 1]
    assert ret.tolist() == want_ret.tolist()
    assert is_open.tolist() == want_open.tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([7, 8, 4_000_000]), st.integers(0, 6), st.booleans(), st.booleans(),
                          st.integers(0, 3)), min_size=1, max_size=120))
def test_parents_are_the_last_entry_one_level_up_before(rows):
    """Each row that looks up its parent finds the seq of the last entry of its task one
    level up at or before its seq (rows given in any order, seqs repeating), by a search
    of every row."""
    task = np.array([r[0] for r in rows], dtype=np.int64)
    depth = np.array([r[1] for r in rows], dtype=np.int64)
    opening = np.array([r[2] for r in rows], dtype=bool)
    query = np.array([r[3] for r in rows], dtype=bool)
    seq = np.array([r[4] * 10 + (i % 3) for i, r in enumerate(rows)], dtype=np.int64)
    want = []
    for i in range(len(rows)):
        best = None
        for j in range(len(rows)):
            if (query[i] and opening[j] and task[j] == task[i] and depth[j] == depth[i] - 1 and seq[j] <= seq[i]
                    and (best is None or (seq[j], j) > (seq[best], best))):
                best = j
        want.append(-1 if best is None else int(seq[best]))
    assert _parent_rows(task, depth, seq, opening, query).tolist() == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 0, 0, 1, -1])), min_size=1, max_size=80))
def test_irq_markers_counted_per_cpu_match_a_row_by_row_count(rows):
    """Per row, its CPU's IRQ markers so far in the chunk; per CPU, the chunk's total."""
    cpu = np.array([r[0] for r in rows], dtype=np.int64)
    step = np.array([r[1] for r in rows], dtype=np.int64)
    local, totals = _irq_within(cpu, step)
    level: dict[int, int] = {}
    want = []
    for c, s in zip(cpu.tolist(), step.tolist()):
        level[c] = level.get(c, 0) + s
        want.append(level[c])
    assert local.tolist() == want
    marked = {c for c, s in zip(cpu.tolist(), step.tolist()) if s}
    assert totals == {c: level[c] for c in marked}


def test_irq_nesting_carries_across_chunks(tmp_path):
    """An interrupt open at the end of a chunk still marks the next chunk's calls hardirq:
    the same trace cut into one-line chunks gives the same contexts."""
    import tracekit.pipeline as pipeline

    lines = ["# tracer: function_graph"]
    t = 0
    for i in range(30):
        ts = f"{10 + t / 1e6:12.6f}"
        lines.append(f"{ts} |   0)  a-1     |               |  f() {{")
        if i % 3 == 0:
            lines.append(f"{ts} |   0)  a-1     |   ==========> |")
            lines.append(f"{ts} |   0)  a-1     |   0.500 us    |    irq_handler();")
            lines.append(f"{ts} |   0)  a-1     |   <========== |")
        lines.append(f"{ts} |   0)  a-1     |   2.000 us    |  }}")
        t += 5
    text = "\n".join(lines) + "\n"
    _, whole = ingest_text(tmp_path, text, name="whole.txt")
    (tmp_path / "cut.txt").write_text(text)
    import pytest as _pytest
    mp = _pytest.MonkeyPatch()
    mp.setattr(pipeline, "iter_line_chunks", functools.partial(iter_line_chunks, chunk_bytes=60))
    try:
        store = tracekit.open_store(tmp_path / "cut-store")
        tracekit.ingest([str(tmp_path / "cut.txt")], store=store)
    finally:
        mp.undo()
    a = whole.spans().collect().sort("seq").select("func", "context", "dur_ns")
    b = store.spans().collect().sort("seq").select("func", "context", "dur_ns")
    assert a.equals(b)
    assert a.filter(pl.col("func") == "irq_handler")["context"].unique().to_list() == ["hardirq"]
    assert a.filter(pl.col("func") == "f")["context"].unique().to_list() == ["task"]


def test_small_chunks_and_threads_give_the_same_store(tmp_path, corpus, monkeypatch):
    """The whole ingest, chunked finely and parsed in threads, equals the one-chunk ingest."""
    import tracekit.pipeline as pipeline

    def spans_of(d):
        store = tracekit.open_store(d)
        (r,) = tracekit.ingest([str(corpus / PROCABS)], store=store)
        return store.spans().collect().drop("run_id").sort("seq"), store.events().collect().drop("run_id").sort("seq"), r

    s1, e1, r1 = spans_of(tmp_path / "a")
    monkeypatch.setattr(pipeline, "iter_line_chunks", functools.partial(iter_line_chunks, chunk_bytes=random.Random(1).randint(2000, 9000)))
    s2, e2, r2 = spans_of(tmp_path / "b")
    assert r1.counts == r2.counts
    assert s1.equals(s2)
    assert e1.equals(e2)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="ab|# \r", max_size=30), max_size=20), st.booleans(), st.integers(1, 40))
def test_chunks_hold_every_line_once_at_any_chunk_size(lines, final_newline, chunk_bytes):
    """Lines longer than a chunk, blank lines, a last line without a newline, CRLF: the
    chunks are cut at line ends and give back every line, in order, with its number."""
    import tempfile

    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    with tempfile.NamedTemporaryFile(suffix=".txt") as tmp:
        tmp.write(text.encode())
        tmp.flush()
        got, numbers = [], []
        for c in iter_line_chunks(tmp.name, chunk_bytes=chunk_bytes):
            numbers.append((c.first_line, c.n_lines))
            got.extend(c.lines.to_list())
    want = text.split("\n")
    if text.endswith("\n") or not text:
        want = want[:-1]
    if "\r" in text:  # (a chunk with a carriage return drops those that end its lines)
        got = [g.rstrip("\r") for g in got]
        want = [w.rstrip("\r") for w in want]
    assert got == want
    line = 1
    for first, n in numbers:
        assert first == line
        line += n


def test_lines_that_begin_like_a_compressed_stream_are_still_text():
    """Polars' CSV reader decompresses bytes that begin with a zstd or gzip magic number;
    a damaged trace can begin that way, and its lines must still be split, not raise."""
    for magic in (b"(\xb5/\xfd", b"\x1f\x8b"):
        raw = magic + b" 0)   1.000 us    |  f();\n 0)   2.000 us    |  g();\n"
        assert len(split_lines(raw)) == 2
        chunk = LineChunk(1, raw=raw)
        lay = fg.Layout(abstime=False, reltime=False, cpu=True, proc=False, lat=False)
        good, rest = fg._parse_fast(chunk, lay)
        assert good["func"].to_list() == ["g"] and rest["line"].to_list() == [1]


def _call_rows(rows: list[tuple]) -> list[pl.DataFrame]:
    """One event-schema frame per row of (seq, kind, func, dur_ns[, pid]) on CPU 0 (task 1
    unless the row says)."""
    from tracekit.schema import EVENT_SCHEMA, conform

    return [conform(pl.DataFrame({"seq": [s], "line": [s], "cpu": [0], "pid": [pid[0] if pid else 1], "ts_ns": [1000 * s],
                                  "kind": [k], "func": [f], "depth": [0], "dur_ns": [d],
                                  "event": ["e" if k == "event" else None]},
                                 schema_overrides={"func": pl.String, "dur_ns": pl.Int64, "event": pl.String}), EVENT_SCHEMA)
            for s, k, f, d, *pid in rows]


@pytest.mark.parametrize("per_row", [False, True])
def test_kprobe_depths_count_per_task_across_chunks(per_row):
    """kprobe hits of three tasks interleaved: each task's entries minus returns give the
    depths (counted by hand below), the same whether the hits come in one chunk or one a
    chunk; a task's entry with no return is kept incomplete."""
    from tracekit.spans import SpanBuilder

    rows = [(1, "kprobe_entry", "f", None, 1), (2, "kprobe_entry", "f", None, 2), (3, "kprobe_entry", "g", None, 1),
            (4, "kprobe_exit", "f", None, 2), (5, "kprobe_exit", "g", None, 1), (6, "kprobe_entry", "h", None, 3),
            (7, "kprobe_exit", "f", None, 1)]
    frames = _call_rows(rows)
    b = SpanBuilder(nesting=True)
    chunks = frames if per_row else [pl.concat(frames)]
    outs = [b.feed(SpanBuilder.prepare(df, True)) for df in chunks] + [b.finish()]
    spans = pl.concat([o.spans for o in outs]).sort("seq")
    assert spans.select("seq", "pid", "func", "depth", "complete", "dur_ns").rows() == [
        (1, 1, "f", 0, True, 6000), (2, 2, "f", 0, True, 2000), (3, 1, "g", 1, True, 2000), (6, 3, "h", 0, False, None)]


@pytest.mark.parametrize("nesting", [True, False])
@pytest.mark.parametrize("lost", [False, True])
@pytest.mark.parametrize("kprobe", [False, True])
def test_chunks_of_events_alone_leave_open_calls_as_they_are(nesting, lost, kprobe):
    """A chunk without calls passes its events through, and the entry open before it is
    closed by the exit after it; lost events in between abandon that entry where calls are
    paired by nesting (the exit then has no entry), but not a kprobe hit (paired by the
    running count of its task's hits).  Each row is its own chunk."""
    from tracekit.spans import SpanBuilder

    entry, exit_ = ("kprobe_entry", "kprobe_exit") if kprobe else ("entry", "exit")
    rows = [(1, entry, "f", None), (2, "event", None, None), (3, "lost" if lost else "event", None, None),
            (4, exit_, "f" if kprobe else None, None if kprobe else 5000)]
    b = SpanBuilder(nesting=nesting)
    outs = [b.feed(SpanBuilder.prepare(df, nesting)) for df in _call_rows(rows)] + [b.finish()]
    spans = pl.concat([o.spans for o in outs]).sort("seq")
    events = pl.concat([o.events for o in outs])
    assert events["seq"].to_list() == [2, 3]
    if kprobe:  # (the duration of a kprobe pair is the time between its hits: 1000 ns apart)
        assert spans.select("seq", "func", "complete", "dur_ns", "source").rows() == [(1, "f", True, 3000, "kprobe")]
    elif lost and nesting:
        assert spans.select("seq", "func", "complete", "dur_ns").rows() == [(1, "f", False, None), (4, None, False, 5000)]
    else:
        assert spans.select("seq", "func", "complete", "dur_ns").rows() == [(1, "f", True, 5000)]


@pytest.mark.parametrize("raw, cut", [
    (b"a-1 [000] 1.0: e: x\n", 0),  # no stack at the end
    (b"a-1 [000] 1.0: e: x\na-1 [000] 2.0: <stack trace>\n => f\n => g\n", 20),  # frames may go on
    (b"a-1 [000] 1.0: e: x\na-1 [000] 2.0: <stack trace>\n", 20),  # the record, no frame yet
    (b"a-1 [000] 1.0: e: x\nb-2 [001] 3.0: kernel_stack: <stack trace>\n=> f (ffffffff81000000)\n\n", 20),
    (b"a-1 [000] 2.0: <stack trace>\n => f\n", 0),  # the whole chunk is the record
    (b" => f\n => g\n", 0),
    (b"", 0),
])
def test_a_stack_at_a_chunk_end_is_held_back_by_one_rule(raw, cut):
    """ftrace text and trace-cmd report cut a chunk before a stack record that may go on
    (offsets counted by hand); trace-cmd's piece keeps each line's number with its bytes."""
    from tracekit.parsers import tracecmd_report as tr
    from tracekit.parsers.base import trailing_stack

    assert trailing_stack(raw) == cut
    numbers = np.arange(10, 10 + raw.count(b"\n"))
    now, carry = tr._hold_back_stack(tr._Piece(raw, numbers))
    if cut == 0:
        assert carry is None and now.raw == raw
    else:
        assert now.raw + carry.raw == raw and now.raw.count(b"\n") == len(now.numbers) == 1
        assert carry.numbers.tolist() == numbers[1:].tolist()
