"""perf script text (tracekit.parsers.perf_script), checked against counts made with grep on
the real files of corpus/flamegraph and corpus/qemu."""

from __future__ import annotations

import gzip
from collections import defaultdict

import polars as pl
import pytest

from tracekit.parsers import perf_script
from tracekit.parsers.base import ParseContext
from tracekit.schema import EVENT_SCHEMA, Kind

from test_latency import read_chunks

QEMU = ["x86_64-6.1.0-56-preempt-none", "ppc64le-6.1.0-50-preempt-voluntary"]


def run(data: bytes, lines_per_chunk: int = 1 << 20) -> tuple[pl.DataFrame, ParseContext]:
    ctx = ParseContext("<test>")
    frames = list(perf_script.parse(iter(read_chunks(data, lines_per_chunk)), ctx))
    df = pl.concat(frames) if frames else pl.DataFrame(schema=EVENT_SCHEMA)
    return df, ctx


def load(path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


# Samples: grep -c '^[^[:space:]#]' FILE (a sample line starts in column 0; frames are
# indented, header lines start with '#'); frames: grep -c '^[[:space:]]' FILE.
# perf-java-stacks-02.txt is the old layout with unindented frames: grep -c '^java ' -> 2,
# and 52 lines - 2 samples - 2 blank lines = 48 frames.
FLAMEGRAPH = [
    ("perf-cycles-instructions-01.txt", 444, 705),
    ("perf-dd-stacks-01.txt", 11, 52),
    ("perf-funcab-cmd-01.txt", 169, 507),
    ("perf-iperf-stacks-pidtid-01.txt", 201, 3207),
    ("perf-java-stacks-02.txt", 2, 48),
    ("perf-mirageos-stacks-01.txt", 53, 228),
    ("perf-numa-stacks-01.txt", 200, 2345),
    ("perf-rust-Yamakaky-dcpu.txt", 58, 938),
    ("perf-vertx-stacks-01.txt", 286, 9397),
    ("example-perf-stacks.txt.gz", 1315, 34510),  # zcat | grep -c ...
]


@pytest.mark.parametrize("name,n_samples,n_frames", FLAMEGRAPH)
def test_flamegraph_counts(corpus, name, n_samples, n_frames):
    data = load(corpus / "flamegraph" / name)
    assert perf_script.sniff(data[:65536].decode("latin-1")) > 0
    df, ctx = run(data)
    assert df.height == n_samples
    assert (df["kind"] == Kind.SAMPLE).all()
    assert int(df["callchain"].list.len().fill_null(0).sum()) == n_frames
    assert not ctx.skipped
    assert df["seq"].is_sorted() and df["seq"].n_unique() == df.height


def test_header_block(corpus):
    # perf-cycles-instructions-01.txt lines 4-13: "# os release : 4.13.0-rc1",
    # "# arch : x86_64", "# nrcpus online : 8", "# cmdline : /usr/bin/perf record -e cycles
    # -e instructions ...", two "# event : name = cycles|instructions, ..." lines.
    df, ctx = run(load(corpus / "flamegraph" / "perf-cycles-instructions-01.txt"))
    assert ctx.meta["kernel"] == "4.13.0-rc1"
    assert ctx.meta["arch"] == "x86_64"
    assert ctx.meta["ncpus"] == 8
    assert ctx.meta["perf_cmdline"].startswith("/usr/bin/perf record -e cycles -e instructions")
    assert ctx.meta["perf_events"] == ["cycles", "instructions"]
    # grep -c ' instructions: $' -> 333, grep -c ' cycles: $' -> 111
    assert dict(df.group_by("event").agg(pl.len()).iter_rows()) == {"instructions": 333, "cycles": 111}


def test_sample_line_shapes(corpus):
    # pid/tid and [cpu]: "iperf 27409/28744 [000] 441995.133575: cpu-clock: " (line 1)
    df, _ = run(load(corpus / "flamegraph" / "perf-iperf-stacks-pidtid-01.txt"))
    r = df.row(0, named=True)
    assert (r["comm"], r["pid"], r["cpu"], r["ts_ns"], r["event"]) == (
        "iperf", 28744, 0, 441_995_133_575_000, "cpu-clock"
    )
    # The first callchain, read from lines 2-: copy_user_enhanced_fast_string, skb_copy_datagram_iter ...
    assert r["callchain"][:2] == ["copy_user_enhanced_fast_string", "skb_copy_datagram_iter"]
    # period and no cpu: "dd 29776 666709.771979:   10101010 cpu-clock: "
    df, _ = run(load(corpus / "flamegraph" / "perf-dd-stacks-01.txt"))
    r = df.row(0, named=True)
    assert (r["comm"], r["pid"], r["cpu"], r["ts_ns"], r["body"]) == (
        "dd", 29776, None, 666_709_771_979_000, "period=10101010"
    )
    # an event name holding a colon: "emulator  4152 75695.008865:          1 cycles:u: "
    df, _ = run(load(corpus / "flamegraph" / "perf-rust-Yamakaky-dcpu.txt"))
    assert df["event"].unique().to_list() == ["cycles:u"]
    # the oldest form, no time at all: "java 19983 cycles:"
    df, _ = run(load(corpus / "flamegraph" / "perf-java-stacks-02.txt"))
    assert df["ts_ns"].to_list() == [None, None]
    assert df["pid"].to_list() == [19983, 19983]
    assert df["callchain"][0].to_list()[0] == "native_write_msr_safe"


def test_page_table_teardown_in_callchains(corpus):
    # Kernel stacks of perf-iperf-stacks-pidtid-01.txt (4.3.0-rc1, x86_64) pass through
    # tlb_finish_mmu / tlb_flush_mmu_free; grep -c 'tlb_finish_mmu' -> 1 frame.
    df, _ = run(load(corpus / "flamegraph" / "perf-iperf-stacks-pidtid-01.txt"))
    hits = df.filter(pl.col("callchain").list.contains("tlb_finish_mmu"))
    assert hits.height == 1
    chain = hits["callchain"][0].to_list()
    assert chain.index("tlb_flush_mmu_free") < chain.index("tlb_finish_mmu")  # innermost first


# grep -c 'probe:free_pgtables: ' / 'probe:free_pgtables__return: ' / 'probe:exit_mmap: ' /
# 'probe:exit_mmap__return: ' / 'tlb:tlb_flush: ' / 'sched:sched_process_exit: ' FILE
QEMU_COUNTS = {
    QEMU[0]: {"free_pgtables": (47, 47), "exit_mmap": (22, 22), "tlb:tlb_flush": 243,
              "sched:sched_process_exit": 21},
    QEMU[1]: {"free_pgtables": (47, 47), "exit_mmap": (22, 22), "tlb:tlb_flush": 0,
              "sched:sched_process_exit": 21},
}


@pytest.mark.parametrize("guest", QEMU)
def test_qemu_kprobe_pairs(corpus, guest):
    df, ctx = run(load(corpus / "qemu" / guest / "perf.script.txt"))
    exp = QEMU_COUNTS[guest]
    assert ctx.meta["span_source"] == "kprobe"
    df_dd, ctx_dd = run(load(corpus / "flamegraph" / "perf-dd-stacks-01.txt"))
    assert "span_source" not in ctx_dd.meta  # no probes, no span source
    for func in ("free_pgtables", "exit_mmap"):
        n_in = df.filter((pl.col("kind") == Kind.KPROBE_ENTRY) & (pl.col("func") == func)).height
        n_out = df.filter((pl.col("kind") == Kind.KPROBE_EXIT) & (pl.col("func") == func)).height
        assert (n_in, n_out) == exp[func]
    events = dict(df.filter(pl.col("kind") == Kind.SAMPLE).group_by("event").agg(pl.len()).iter_rows())
    assert events.get("tlb:tlb_flush", 0) == exp["tlb:tlb_flush"]
    assert events["sched:sched_process_exit"] == exp["sched:sched_process_exit"]
    # Every return pairs with the latest open entry of the same thread (LIFO per thread).
    open_calls: dict[int, list[str]] = defaultdict(list)
    kp = df.filter(pl.col("kind").is_in([Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT])).sort("seq")
    durations = []
    starts: dict[int, list[int]] = defaultdict(list)
    for kind, func, pid, ts in kp.select("kind", "func", "pid", "ts_ns").iter_rows():
        if kind == Kind.KPROBE_ENTRY:
            open_calls[pid].append(func)
            starts[pid].append(ts)
        else:
            assert open_calls[pid].pop() == func
            durations.append(ts - starts[pid].pop())
    assert all(not v for v in open_calls.values())
    assert min(durations) >= 0


def test_qemu_x86_first_pair(corpus):
    # perf.script.txt (x86_64) line 35: "perf-exec   556 [000]    89.322861: probe:free_pgtables:
    # (ffffffff92aca790)" and line 48: "... 89.323160: probe:free_pgtables__return:
    # (ffffffff92aca790 <- ffffffff92adb5f2)": 299 us.
    df, _ = run(load(corpus / "qemu" / QEMU[0] / "perf.script.txt"))
    pair = df.filter(pl.col("seq").is_in([35, 48])).sort("seq")
    assert pair["kind"].to_list() == [Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT]
    assert pair["pid"].to_list() == [556, 556]
    assert pair["ts_ns"].diff()[1] == 299_000
    assert pair["callchain"][0].to_list()[:2] == ["free_pgtables", "exit_mmap"]


@pytest.mark.parametrize("lines_per_chunk", [17, 64, 1000])
def test_chunk_boundaries(corpus, lines_per_chunk):
    data = load(corpus / "qemu" / QEMU[0] / "perf.script.txt")
    whole, _ = run(data)
    cut, ctx = run(data, lines_per_chunk)
    assert cut.sort("seq").equals(whole.sort("seq"))
    assert not ctx.skipped


def test_arch_from_symbols_when_no_header(corpus):
    # The qemu perf scripts have no --header; their kernel symbols name the arch
    # (entry_SYSCALL_64 on x86_64, system_call_exception on powerpc).
    _, ctx = run(load(corpus / "qemu" / QEMU[0] / "perf.script.txt"))
    assert ctx.meta["arch"] == "x86_64"
    _, ctx = run(load(corpus / "qemu" / QEMU[1] / "perf.script.txt"))
    assert ctx.meta["arch"] == "ppc64le"


def test_garbage_is_counted(corpus):
    data = load(corpus / "flamegraph" / "perf-dd-stacks-01.txt") + b"this is no perf line\n"
    df, ctx = run(data)
    assert df.height == 11
    assert ctx.skipped == {"unrecognised perf script line": 1}


def test_cxx_symbols_keep_their_parentheses(corpus):
    # example-perf-stacks.txt.gz: zcat | grep -c 'OopMapSet::all_do(frame const\*' -> frames
    # whose symbol holds "(*)(oopDesc**, oopDesc**)" before the "(libjvm.so)" DSO.
    df, _ = run(load(corpus / "flamegraph" / "example-perf-stacks.txt.gz"))
    sym = ("OopMapSet::all_do(frame const*, RegisterMap const*, OopClosure*, "
           "void (*)(oopDesc**, oopDesc**), OopClosure*)")
    n = df["callchain"].explode().eq(sym).sum()
    assert n == 1


# --- property: any comm perf can print, with any of the optional fields -----------------
import re  # noqa: E402

from hypothesis import assume, given, settings, strategies as st  # noqa: E402

_COMM = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#"),
    min_size=1, max_size=15,
).flatmap(lambda a: st.sampled_from([a, a[:5] + " " + a[5:] if len(a) > 6 else a]))


@settings(max_examples=150, deadline=None)
@given(
    comm=_COMM,
    pid=st.integers(0, 4_194_304),
    tid=st.one_of(st.none(), st.integers(0, 4_194_304)),
    cpu=st.one_of(st.none(), st.integers(0, 1023)),
    usecs=st.one_of(st.none(), st.integers(0, 10**15)),
    period=st.one_of(st.none(), st.integers(1, 10**9)),
    event=st.sampled_from(["cycles", "cpu-clock", "cycles:u", "tlb:tlb_flush", "probe:free_pgtables"]),
)
def test_sample_line_fields_round_trip(comm, pid, tid, cpu, usecs, period, event):
    # Built the way builtin-script.c prints them: "%16s %5d/%-5d [%03d] %5lu.%06lu: ..."
    # With neither cpu nor time, "comm 12 4711 cycles:" is ambiguous in perf's own output
    # (a digits-only word of the comm reads as the pid): such comms are left out.
    assume(not (cpu is None and usecs is None and re.search(r"\s\d", comm)))
    line = f"{comm:>16} {pid:5d}" + (f"/{tid:<5d}" if tid is not None else "")
    if cpu is not None:
        line += f" [{cpu:03d}]"
    if usecs is not None:
        line += f" {usecs // 10**6:5d}.{usecs % 10**6:06d}:"
    if period is not None:
        line += f" {period:10d}"
    line += f" {event}: \n\tffffffff81000000 do_exit+0x1 ([kernel.kallsyms])\n"
    df, ctx = run(line.encode())
    assert df.height == 1 and not ctx.skipped
    r = df.row(0, named=True)
    assert r["comm"] == comm.strip()
    assert r["pid"] == (tid if tid is not None else pid)
    assert r["cpu"] == cpu
    assert r["ts_ns"] == (None if usecs is None else usecs * 1000)
    assert r["event"] == event
    assert r["callchain"] == ["do_exit"]


def test_side_band_records_and_unknown_thread(fixtures_dir):
    # fixtures/perf_script/lkml_intel_pt_unknown_thread.txt (real output, see its README):
    # grep -c 'instructions:k:' -> 9 samples; grep -o 'PERF_RECORD_[A-Z_]*' | sort | uniq -c
    # -> 1 COMM, 2 EXIT, 1 FORK, 6 SWITCH_CPU_WIDE.
    df, ctx = run((fixtures_dir / "perf_script" / "lkml_intel_pt_unknown_thread.txt").read_bytes())
    assert not ctx.skipped
    assert df.filter(pl.col("kind") == Kind.SAMPLE).height == 9
    records = dict(df.filter(pl.col("kind") == Kind.MARKER).group_by("event").agg(pl.len()).iter_rows())
    assert records == {"PERF_RECORD_COMM": 1, "PERF_RECORD_EXIT": 2, "PERF_RECORD_FORK": 1,
                       "PERF_RECORD_SWITCH_CPU_WIDE": 6}
    # "--ns": 9 fraction digits; the sampled ip's symbol is on the sample line itself.
    first = df.row(0, named=True)
    assert first["ts_ns"] == 66_663_270_045_029
    assert first["callchain"] == ["strnlen_user"]
    assert first["body"].startswith("period=1 ffffffffb1d9f844 strnlen_user+0xb4")
    # ":-1    -1 [001] 66663.271707466: ... update_load_avg+0x306": perf's unknown thread.
    last = df.row(-1, named=True)
    assert (last["comm"], last["pid"], last["cpu"]) == (None, None, 1)
    assert last["callchain"] == ["update_load_avg"]
