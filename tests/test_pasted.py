"""Traces as people paste them: quoted in mail (``> ``, nested), indented as in the kernel's
Documentation/trace, and wrapped by mail clients.

Inputs are real published traces from corpus/wild (kernel documentation samples), quoted
and wrapped here the way a mail client does it.  Expected values are the header's own
numbers and counts of the lines, made by hand (or by a plain regular expression in the
test), never tracekit's output.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import ingest_text
from tracekit.pasted import Paste, find_paste, rejoin

WILD = "wild"


def mail_quote(text: str, depth: int = 1, width: int | None = None) -> str:
    """Quote every line ``depth`` times with "> "; with ``width``, break a line longer than
    that at its last space before the width, as a mail client does (blanks at the break
    dropped, the rest on a new quoted line)."""
    prefix = "> " * depth
    out = []
    for ln in text.splitlines():
        q = (prefix + ln).rstrip() if ln.strip() else prefix.rstrip()
        while width and len(q) > width and " " in q[len(prefix): width]:
            cut = q.rfind(" ", len(prefix), width)
            head, rest = q[:cut].rstrip(), q[cut:].strip()
            out.append(head)
            q = prefix + rest
        out.append(q)
    return "\n".join(out) + "\n"


def _window(store) -> dict:
    (w,) = store.windows().collect().to_dicts()
    return w


def test_nested_mail_quote_wrapped_latency_trace_keeps_its_window(tmp_path, corpus):
    """A reviewer quotes the preemptoff example of Documentation/trace/ftrace.rst (5.4) in a
    reply to a reply, and the client wraps it at 72 columns: the header's numbers come
    back (83 us, #241/241, CPU#1, task bash-1994, started at wake_up_new_task, ended at
    task_rq_unlock) and every record line is read with its parent."""
    src = (corpus / WILD / "kdoc-5.4/preemptoff-83us-function-trace.txt").read_text()
    text = mail_quote(src, depth=2, width=72)
    assert any(ln.startswith("> > <-") for ln in text.splitlines())  # the wrap did happen
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    assert res.format == "latency" and res.tracer == "preemptoff"
    w = _window(store)
    assert (w["latency_ns"], w["entries_shown"], w["entries_total"], w["cpu"]) == (83_000, 241, 241, 1)
    assert (w["comm"], w["pid"]) == ("bash", 1994)
    assert (w["started_at"], w["ended_at"]) == ("wake_up_new_task", "task_rq_unlock")
    ev = store.events().collect()
    # 31 "func <-parent" lines (5 + 8 + 10 + 8 between the [...] elisions, counted by hand)
    fn = ev.filter(pl.col("kind") == "function")
    assert fn.height == 31
    assert fn["parent"].null_count() == 0
    first = fn.sort("line").row(0, named=True)
    assert (first["func"], first["parent"]) == ("_raw_spin_lock_irqsave", "wake_up_new_task")
    assert any("2 level(s) of mail quoting" in w for w in res.warnings)
    assert any("joined back" in w for w in res.warnings)


def test_wrapped_function_graph_leaf_is_rejoined(tmp_path):
    """A function_graph leaf broken after the call tree's '|' (the client drops the
    indentation at the break): the leaf keeps its name and its 0.417 us."""
    text = (
        "> # tracer: function_graph\n"
        ">\n"
        ">  1)               |        rcu_irq_exit() {\n"
        ">  1)   0.417 us    |\n"
        "> rcu_eqs_enter_common.isra.47();\n"
        ">  1)   3.125 us    |        }\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    sp = store.spans().collect().sort("seq")
    assert sp["func"].to_list() == ["rcu_irq_exit", "rcu_eqs_enter_common"]
    assert sp["dur_ns"].to_list() == [3125, 417]
    assert sp["raw_func"][1] == "rcu_eqs_enter_common.isra.47"
    assert res.counts["skipped_lines"] == 0


def test_continuation_that_follows_nothing_is_counted(tmp_path):
    """In a quoted trace, a line the format cannot begin, after a blank line: nothing to
    join it to; it is counted, and skipped by the parser with its reason."""
    text = (
        "> # tracer: function_graph\n"
        "> #\n"
        ">  0)   0.480 us    |  leaf_a();\n"
        ">\n"
        "> leaf_b();\n"
        ">  0)   0.500 us    |  leaf_c();\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    assert store.spans().collect()["func"].to_list() == ["leaf_a", "leaf_c"]
    assert any("1 line(s) that cannot begin a line of this format could not be rejoined" in w for w in res.warnings)
    assert res.counts["skipped_lines"] == 1


def _published_pairs(corpus: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for ind in sorted((corpus / WILD).glob("*/*.indented.txt")):
        plain = ind.with_name(ind.name.replace(".indented.txt", ".txt"))
        if plain.exists():
            pairs.append((ind, plain))
    return pairs


def _header_latency_us(path: Path) -> int | None:
    m = re.search(r"^\s*#\s*latency: (\d+) us", path.read_text(), re.M)
    return int(m.group(1)) if m else None


def test_documentation_samples_read_as_published(tmp_path, corpus):
    """Every sample of the kernel's Documentation/trace as published (indented by spaces or
    tabs in the rst literal block) reads like its de-indented copy: the same format, the
    header's latency window, no more lines skipped, the same number of rows."""
    pairs = _published_pairs(corpus)
    assert len(pairs) >= 30
    for ind, plain in pairs:
        r_ind, s_ind = ingest_text(tmp_path, ind.read_text(), name="i-" + ind.name)
        r_pl, s_pl = ingest_text(tmp_path, plain.read_text(), name="p-" + plain.name)
        if r_pl.error:  # not a trace (the stack tracer's table): fails the same way
            assert r_ind.error, ind
            continue
        assert r_ind.error is None, (ind, r_ind.error)
        assert r_ind.format == r_pl.format, ind
        lat = _header_latency_us(plain)
        if lat is not None:
            assert _window(s_ind)["latency_ns"] == lat * 1000, ind
        assert r_ind.counts["skipped_lines"] <= r_pl.counts["skipped_lines"], ind
        assert (r_ind.counts["events"], r_ind.counts["spans"]) == (r_pl.counts["events"], r_pl.counts["spans"]), ind


def test_reply_around_the_quote(tmp_path, corpus):
    """A whole reply: the attribution line, the quoted trace (Documentation/trace/ftrace.rst's
    preemptirqsoff example, 100 us), the reviewer's answer.  The window is read; the two
    lines of prose are counted as not understood, not dropped."""
    src = (corpus / WILD / "kdoc-5.4/preemptirqsoff-100us.txt").read_text()
    text = "On Tue, 1 Jan 2013, Steven Rostedt wrote:\n" + mail_quote(src) + "\nThat is the long one.\n"
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    assert _window(store)["latency_ns"] == 100_000
    assert res.counts["skipped_lines"] == 2


def test_find_paste_shapes():
    assert find_paste(b"> > # tracer: nop\n> >\n> > #\n") == Paste(quote_depth=2)
    assert find_paste(b"\t\t# tracer: function\n\t\t#\n\t\t  bash-1 [000] 1.0: f <-g\n") == Paste(indent=16)
    # a header-less trace_pipe excerpt: its blanks are the kernel's right-aligned comm
    assert not find_paste(b"            bash-1994  [000] ....  5281.568961: f <-g\n")
    # a header at the first column: nothing to strip
    assert not find_paste(b"# tracer: nop\n            bash-1994  [000] ....  5281.568961: f <-g\n")
    # a reply's own words around the quote: the quoted lines are the trace
    assert find_paste(b"On Mon, A wrote:\n> # tracer: nop\n> #\n>   bash-1 [000] 1.0: f <-g\n") == Paste(quote_depth=1)
    # a quoted line in an unquoted trace does not make the trace quoted
    assert not find_paste(b"> # tracer: nop\n  bash-1 [000] 1.0: f <-g\n  bash-1 [000] 1.1: g <-h\n")
    assert not find_paste(b"\x17\x08Dtracing6\0\n  # x\n")


def test_rejoin_needs_a_break():
    """A short line the format cannot begin after a short line is not a wrap (prose, or an
    editor's note), so it is left alone and counted."""
    lines = pl.Series(["#", " 0)   1.0 us    |  f();", "note", ""])
    out, stats = rejoin(lines, r"^\s*(?:$|#|\d+\))")
    assert out.to_list() == lines.to_list()
    assert (stats.joined, stats.orphans) == (0, 1)


def test_real_quoted_wrapped_hwlat_trace(tmp_path, fixtures_dir):
    """An hwlat trace quoted twice in an LKML reply (fixtures/published/README.md), every
    record broken after ``inner/outer(us):``: six hwlat samples, #1 to #6, with the inner
    and outer latencies the records print (41/41, 40/40, 40/41, 41/41, 41/41, 40/40 us)."""
    import tracekit

    store = tracekit.open_store(tmp_path / "s")
    path = fixtures_dir / "published" / "lkml-2024-mgag200-hwlat.quoted.txt"
    (res,) = tracekit.ingest([str(path)], store=store, on_error="collect")
    assert res.error is None, res.error
    assert (res.format, res.tracer) == ("latency", "hwlat")
    ev = store.events().collect().sort("line")
    assert ev.select("event", "seqnum", "latency_ns", "outer_latency_ns").rows() == [
        ("hwlat", 1, 41_000, 41_000), ("hwlat", 2, 40_000, 40_000), ("hwlat", 3, 40_000, 41_000),
        ("hwlat", 4, 41_000, 41_000), ("hwlat", 5, 41_000, 41_000), ("hwlat", 6, 40_000, 40_000),
    ]
    assert ev["cpu"].to_list() == [1, 0, 0, 0, 0, 0]
    assert res.counts["skipped_lines"] == 0
    assert any("6 line(s) broken by a mail client were joined back" in w for w in res.warnings)


def test_wrapped_hwlat_trace_pipe_lines(tmp_path):
    """trace_pipe of the hwlat tracer (no header, so read as ftrace text) pasted by a
    client that broke each record before ``ts:``: the records are whole again."""
    text = (
        "           <...>-5820  [001] d... 354016.973699: #1     inner/outer(us): 2152/1933\n"
        "ts:1578801212.559595228\n"
        "           <...>-5820  [000] d... 354017.985568: #2     inner/outer(us):   19/26\n"
        "ts:1578801213.571460991\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    ev = store.events().collect().sort("line")
    assert ev.select("event", "seqnum", "latency_ns", "outer_latency_ns").rows() == [
        ("hwlat", 1, 2_152_000, 1_933_000), ("hwlat", 2, 19_000, 26_000),
    ]
    assert res.counts["skipped_lines"] == 0


def test_real_quoted_printable_irqsoff_trace(tmp_path, fixtures_dir):
    """An irqsoff trace in a mail body still in quoted-printable form (the issue's 8111 us
    window; fixtures/published/README.md): the header's numbers, 40 function records
    and the stack trace's 10 frames (counted by hand), parents whole again."""
    import tracekit

    store = tracekit.open_store(tmp_path / "s")
    path = fixtures_dir / "published" / "lkml-2025-page_alloc-irqsoff-8111us.qp.txt"
    (res,) = tracekit.ingest([str(path)], store=store, on_error="collect")
    assert res.error is None, res.error
    w = _window(store)
    assert (w["latency_ns"], w["entries_shown"], w["entries_total"], w["cpu"], w["comm"], w["pid"]) == (
        8_111_000, 4323, 4323, 0, "dd", 820)
    assert (w["started_at"], w["ended_at"]) == ("__rmqueue_pcplist", "_raw_spin_unlock_irqrestore")
    ev = store.events().collect().sort("line")
    fn = ev.filter(pl.col("kind") == "function")
    assert fn.height == 40
    assert set(fn["parent"].drop_nulls()) == {"__rmqueue_pcplist", "_raw_spin_unlock_irqrestore"}
    (chain,) = ev.filter(pl.col("kind") == "stack")["callchain"].to_list()
    assert len(chain) == 10 and chain[0] == "get_page_from_freelist" and chain[-1] == "ret_fast_syscall"
    assert res.skipped == {"elided line ([...])": 2}
    assert any("quoted-printable" in w for w in res.warnings)


def test_real_outlook_quoted_irqsoff_trace(tmp_path, fixtures_dir):
    """The same thread's first irqsoff trace, quoted twice by Outlook in quoted-printable
    form, each record broken before its parent: 93635 us, #13758/13758, and ten records
    whose parents are back (nine of them __rmqueue_pcplist)."""
    import tracekit

    store = tracekit.open_store(tmp_path / "s")
    path = fixtures_dir / "published" / "lkml-2025-page_alloc-irqsoff-93635us.qp-quoted.txt"
    (res,) = tracekit.ingest([str(path)], store=store, on_error="collect")
    assert res.error is None, res.error
    w = _window(store)
    assert (w["latency_ns"], w["entries_shown"], w["comm"], w["pid"]) == (93_635_000, 13758, "dd", 764)
    ev = store.events().collect().sort("line")
    assert ev["ts_ns"].to_list() == [t * 1000 for t in (1, 206, 209, 210, 213, 281, 282, 284, 286, 288)]
    assert ev["parent"].to_list() == [None] + ["__rmqueue_pcplist"] * 9
    # the quoted report's own words, "2. After add this patch: ..." and its wrapped tail
    assert res.skipped == {"unrecognised latency-trace line": 2}


def test_decode_quoted_printable():
    from tracekit.pasted import decode_quoted_printable

    lines = ["#  =3D> started at: f", "   0d....    7us : g <-__rmqueue_pcplis=", "t", "a=20b", "x = y"]
    assert decode_quoted_printable(lines) == [
        "#  => started at: f", "   0d....    7us : g <-__rmqueue_pcplist", "", "a b", "x = y"]


def test_quoted_printable_without_soft_breaks(tmp_path):
    """A function_graph trace quoted in a quoted-printable reply whose lines were short
    enough for no soft break: the task switch's "=>" arrives as "=3D>" (from a 2025 LKML
    reply on filesystems_thaw(), read through the code index, id 22012152835).  The switch
    is read: CPU 11 ran systemd-54512, then systemd-66433."""
    text = (
        "> # tracer: function_graph\n"
        "> #\n"
        "> # CPU  DURATION                  FUNCTION CALLS\n"
        "> # |     |   |                     |   |   |   |\n"
        ">   11) + 16.894 us   |  filesystems_thaw();\n"
        ">   ------------------------------------------\n"
        ">   11) systemd-54512  =3D> systemd-66433\n"
        ">   ------------------------------------------\n"
        ">\n"
        ">   11) + 15.167 us   |  filesystems_thaw();\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    sp = store.spans().collect().sort("seq")
    assert sp.select("cpu", "pid", "dur_ns").rows() == [(11, 54512, 16_894), (11, 66433, 15_167)]
    assert res.counts["skipped_lines"] == 0


def test_real_quoted_preemptirqsoff_with_wrapped_header(tmp_path, fixtures_dir):
    """A preemptirqsoff window quoted three times in a reply (fixtures/published/README.md),
    its ``# latency:`` line broken before ``#P:512)``: the header's numbers, all of them
    (10620430 us, #4/4, CPU#260, M:desktop, #P:512), three records and the 13 frames."""
    import tracekit

    store = tracekit.open_store(tmp_path / "s")
    path = fixtures_dir / "published" / "lkml-2024-ilookup-preemptirqsoff.quoted.txt"
    (res,) = tracekit.ingest([str(path)], store=store, on_error="collect")
    assert res.error is None, res.error
    w = _window(store)
    assert (w["latency_ns"], w["entries_shown"], w["entries_total"], w["cpu"], w["comm"], w["pid"],
            w["preempt_model"]) == (10_620_430_000, 4, 4, 260, "fio", 3244715, "desktop")
    (run,) = store.runs().collect().to_dicts()
    assert run["ncpus"] == 512
    ev = store.events().collect().sort("line")
    assert ev["ts_ns"].to_list() == [0, 10_620_429_000, 10_620_430_000, 10_620_440_000]
    assert len(ev["callchain"][-1]) == 13
    assert res.counts["skipped_lines"] == 0


def test_whole_message_with_headers(tmp_path, fixtures_dir):
    """A saved message: mail headers, the attribution, prose at one level of quoting and
    the trace at two (fixtures/published/lkml-2024-mgag200-hwlat.quoted.txt inside such a
    message).  The trace lines decide the quoting; headers and prose are counted as lines
    not understood."""
    trace = (fixtures_dir / "published" / "lkml-2024-mgag200-hwlat.quoted.txt").read_text()
    headers = "".join(f"X-Header-{i}: value {i}\n" for i in range(60))
    text = (
        headers + "Subject: Re: [PATCH] drm/mgag200: Flush the cache to improve latency\n\n"
        "On 06/02/2024 14:33, Daniel Vetter wrote:\n> On Mon, Dec 11, 2023, Jocelyn Falempe wrote:\n"
        ">> Test Results:\n>>\n>> V6.6 (~40us latency)\n>>\n" + trace + ">>\n> \n\nThanks,\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    ev = store.events().collect()
    assert ev["event"].to_list() == ["hwlat"] * 6
    assert sorted(ev["latency_ns"].to_list()) == [40_000, 40_000, 40_000, 41_000, 41_000, 41_000]


def test_quoted_printable_paste_with_a_character_beyond_latin1(tmp_path):
    """A quoted-printable paste whose comm holds a UTF-8 character beyond Latin-1 (an em
    dash, U+2014) on lines with escapes: ingested (it was an internal error: the head,
    unescaped as UTF-8, could not be written back as Latin-1; found by the fuzzer), and the
    comm kept whole in the record and in the other record's body."""
    import tracekit

    text = ("> # tracer: nop\n>\n"
            ">           bash-946   [003] d...   676.984928: sched_switch: prev_comm=3Dbash prev_pid=3D946"
            " prev_prio=3D120 prev_state=3DS =3D=3D> next_comm=3Dcc1\u2014x next_pid=3D12 next_prio=3D120\n"
            ">            cc1\u2014x-12    [000] d...   676.984930: sched_wakeup: comm=3Dbash pid=3D946"
            " prio=3D120 target_cpu=3D003\n")
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    store = tracekit.open_store(tmp_path / "s")
    (res,) = tracekit.ingest([str(path)], store=store, on_error="collect")
    assert res.error is None, res.error
    ev = store.events().collect().sort("line")
    assert ev.select("comm", "pid", "event").rows() == [("bash", 946, "sched_switch"), ("cc1\u2014x", 12, "sched_wakeup")]
    assert "next_comm=cc1\u2014x next_pid=12" in ev["body"][0]
