"""The native trace.dat reader against trace-cmd's own reading of the same files.

For every trace.dat in the corpus, ``trace-cmd report -R -t`` (Debian's trace-cmd, run at
test time) gives the independent expectation: number of records, their timestamps, and for
funcgraph records each function's calls and durations (rettime - calltime).  The reports
trace-cmd made inside the capture guests (tracecmd.report.txt, function_graph plugin
rendering) are a second reading.  No big-endian trace.dat exists, so one is written here
from events of a real little-endian trace, per the file-format spec.
"""

from __future__ import annotations

import functools
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pytest

from tracekit.parsers import detect, get
from tracekit.parsers.base import ParseContext, ParseError
from tracekit.parsers import tracedat

TRACE_DATS = [
    "qemu/x86_64-6.1.0-56-preempt-none/trace.dat",
    "qemu/ppc64le-6.1.0-50-preempt-voluntary/trace.dat",
    "kbuild-x86_64-6.1.192/A/trace.dat",
    "kbuild-x86_64-6.1.192/B/trace.dat",
    "lisa/tests/assets/sched_load/trace.dat",
    "lisa/example_rtapp/trace.dat",
    "trappy/tests/trace.dat",
    "trappy/tests/trace_idle.dat",
    "trappy/tests/raw_trace.dat",
]

TRACE_CMD = shutil.which("trace-cmd")
needs_trace_cmd = pytest.mark.skipif(
    TRACE_CMD is None,
    reason="trace-cmd is not installed (test-only dependency: apt-get install trace-cmd)",
)

# trace-cmd report line: "comm-pid [cpu] secs.nsecs: event: body"
REPORT_RE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?:\S+\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>[\w:]+):\s*(?P<body>.*)$"
)


@functools.cache
def read_cached(path: Path) -> tuple[pl.DataFrame, ParseContext]:
    return read(path)


def read(path: Path) -> tuple[pl.DataFrame, ParseContext]:
    ctx = ParseContext(str(path))
    frames = list(tracedat.parse_file(str(path), ctx))
    return pl.concat(frames), ctx


@functools.cache
def trace_cmd_records(path: Path) -> list[re.Match]:
    out = subprocess.run([TRACE_CMD, "report", "-R", "-t", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return [m for line in out.splitlines() if (m := REPORT_RE.match(line))]


def _field(body: str, name: str) -> str:
    return re.search(rf"\b{name}=(\S+)", body).group(1)


def _hex(v: str) -> int:
    return int(v, 16)


@needs_trace_cmd
@pytest.mark.parametrize("rel", TRACE_DATS)
def test_records_match_trace_cmd(corpus: Path, rel: str) -> None:
    path = corpus / rel
    expect = trace_cmd_records(path)
    df, ctx = read_cached(path)
    assert df.height == len(expect)
    ev = [m["event"] for m in expect]
    assert df["event"].to_list() == ev
    assert df["cpu"].to_list() == [int(m["cpu"]) for m in expect]
    assert df["pid"].to_list() == [int(m["pid"]) for m in expect]
    # trace-cmd -t prints the ring-buffer time in full nanoseconds; our exit rows carry
    # rettime instead, checked below.
    ts_expect = [int(m["ts"].replace(".", "")) for m, e in zip(expect, ev) if e != "funcgraph_exit"]
    assert df.filter(pl.col("kind") != "exit")["ts_ns"].to_list() == ts_expect
    assert df["seq"].is_sorted() and df["seq"].n_unique() == df.height
    assert ctx.meta["ncpus"] >= df["cpu"].max() + 1
    # bodies: the raw fields as -R prints them (funcgraph records aside, whose times -R
    # prints in hex; print/bprint are formatted text, checked elsewhere)
    plain = [(m["body"].strip(), b) for m, b in zip(expect, df["body"].to_list())
             if not m["event"].startswith("funcgraph_") and m["event"] not in ("print", "bprint")]
    assert [a for a, _ in plain] == [(b or "").strip() for _, b in plain]


@needs_trace_cmd
@pytest.mark.parametrize("rel", [r for r in TRACE_DATS if r.startswith(("qemu", "kbuild"))])
def test_funcgraph_spans_match_trace_cmd(corpus: Path, rel: str) -> None:
    """Per function: calls and durations (rettime - calltime) equal trace-cmd's fields."""
    path = corpus / rel
    expect = trace_cmd_records(path)
    want: dict[str, list[int]] = defaultdict(list)
    rettimes = []
    entries = Counter()
    for m in expect:
        if m["event"] == "funcgraph_exit":
            b = m["body"]
            call, ret = _hex(_field(b, "calltime")), _hex(_field(b, "rettime"))
            want[_field(b, "func")].append(ret - call)
            rettimes.append(ret)
        elif m["event"] == "funcgraph_entry":
            entries[_field(m["body"], "func")] += 1
    df, ctx = read_cached(path)
    assert ctx.meta["span_source"] == "funcgraph_raw"
    exits = df.filter(pl.col("kind") == "exit").with_columns(
        pl.coalesce("raw_func", "func").alias("name"))
    got: dict[str, list[int]] = defaultdict(list)
    for name, dur in exits.select("name", "dur_ns").iter_rows():
        got[name].append(dur)
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}
    assert exits["ts_ns"].to_list() == rettimes
    ent = df.filter(pl.col("kind") == "entry").with_columns(pl.coalesce("raw_func", "func").alias("name"))
    assert Counter(ent["name"].to_list()) == entries
    assert "exit_mmap" in entries


@needs_trace_cmd
@pytest.mark.parametrize("rel", ["lisa/example_rtapp/trace.dat", "trappy/tests/trace.dat", "trappy/tests/raw_trace.dat"])
def test_bprint_text_matches_trace_cmd(corpus: Path, rel: str) -> None:
    """trace_printk() records, formatted from printk_formats and the vbin_printf() argument
    buffer, read as ``trace-cmd report`` (without -R) prints them (first line of each)."""
    path = corpus / rel
    out = subprocess.run([TRACE_CMD, "report", str(path)], capture_output=True, text=True, check=True).stdout
    want = [m["body"].strip() for line in out.splitlines() if (m := REPORT_RE.match(line)) and m["event"] == "bprint"]
    df, _ = read_cached(path)
    got = [b.split("\n")[0].strip() for b in df.filter(pl.col("event") == "bprint")["body"].to_list()]
    assert want and got == want


DUR_RE = re.compile(r"funcgraph_(?P<ev>entry|exit):\s+[+!#@*$ ]?\s*(?P<us>\d+)\.(?P<ns>\d{3}) us\s+\|\s*(?P<rest>.*)$")


@pytest.mark.parametrize("rel", [r for r in TRACE_DATS if r.startswith(("qemu", "kbuild"))])
def test_against_guest_report(corpus: Path, rel: str) -> None:
    """tracecmd.report.txt (trace-cmd 3.1.6 in the guest, function_graph plugin): a leaf
    line ``N.NNN us | func();`` is an entry whose exit is the next record; ``}`` lines are
    the other exits.  Durations print as microseconds with all nanosecond digits."""
    path = corpus / rel
    report = (path.parent / "tracecmd.report.txt").read_text(errors="replace").splitlines()
    leaves: dict[str, list[int]] = defaultdict(list)
    closes: list[int] = []
    n_lines = 0
    for line in report:
        if not REPORT_RE.match(line):
            continue
        n_lines += 1
        m = DUR_RE.search(line)
        if not m:
            continue
        ns = int(m["us"]) * 1000 + int(m["ns"])
        if m["ev"] == "entry":
            leaves[m["rest"].strip().rstrip(";").rstrip("()").strip()].append(ns)
        else:
            closes.append(ns)
    df, _ = read_cached(path)
    rows = df.select("kind", "func", "raw_func", "depth", "dur_ns", "pid").with_columns(
        pl.coalesce("raw_func", "func").alias("name"))
    nxt = rows.shift(-1)
    is_leaf = (
        (rows["kind"] == "entry") & (nxt["kind"] == "exit") & (nxt["name"] == rows["name"])
        & (nxt["depth"] == rows["depth"]) & (nxt["pid"] == rows["pid"])
    ).fill_null(False)
    leaf_exit = is_leaf.shift(1, fill_value=False)
    got_leaves: dict[str, list[int]] = defaultdict(list)
    for name, dur in zip(rows.filter(is_leaf)["name"], nxt.filter(is_leaf)["dur_ns"]):
        got_leaves[name].append(dur)
    got_closes = rows.filter((rows["kind"] == "exit") & ~leaf_exit)["dur_ns"].to_list()
    assert {k: sorted(v) for k, v in got_leaves.items()} == {k: sorted(v) for k, v in leaves.items()}
    assert sorted(got_closes) == sorted(closes)
    # every record is one line, except that a leaf's exit shares its entry's line
    assert df.height - int(is_leaf.sum()) == n_lines


def test_metadata_from_file(corpus: Path) -> None:
    """uname, clock and CPU count as the capture recorded them (corpus/PROVENANCE.md and
    the capture's info.txt: 6.1.0-56-amd64, x86_64, trace_clock local, one vCPU)."""
    df, ctx = read(corpus / "qemu/x86_64-6.1.0-56-preempt-none/trace.dat")
    assert ctx.meta["kernel"] == "6.1.0-56-amd64"
    assert ctx.meta["arch"] == "x86_64"
    assert ctx.meta["clock"] == "local"
    assert ctx.meta["ncpus"] == 1
    assert ctx.meta["tracedat_version"] == 7
    assert ctx.meta["time_unit"] == "ns"
    assert ctx.lost_events == 0
    df2, ctx2 = read(corpus / "qemu/ppc64le-6.1.0-50-preempt-voluntary/trace.dat")
    assert ctx2.meta["arch"] == "ppc64le" and ctx2.meta["page_size"] == 65536
    # comm from the saved cmdlines: the workload is pgtfree
    assert "pgtfree" in set(df.filter(pl.col("kind") == "entry")["comm"].to_list())
    _, ctx3 = read(corpus / "trappy/tests/trace.dat")
    assert ctx3.meta["long_size"] == 4 and ctx3.meta["tracedat_version"] == 6


def test_detect_and_registry(corpus: Path) -> None:
    head = (corpus / "trappy/tests/trace.dat").read_bytes()[:4096]
    assert detect(head) is tracedat
    assert get("tracedat") is tracedat
    assert tracedat.sniff_bytes(b"# tracer: nop\n") == 0


def test_bad_input_is_a_clear_error(tmp_path: Path, corpus: Path) -> None:
    bad = tmp_path / "not.dat"
    bad.write_bytes(b"hello, not a trace\n")
    with pytest.raises(ParseError, match="magic"):
        read(bad)
    cut = tmp_path / "cut.dat"
    cut.write_bytes((corpus / "trappy/tests/trace.dat").read_bytes()[:5000])
    with pytest.raises(ParseError, match="truncated|past the end"):
        read(cut)


@needs_trace_cmd
def test_file_cut_short_keeps_the_pages_present(corpus: Path, tmp_path: Path) -> None:
    """trappy/tests/trace.dat (v6, 8 CPUs, 4 KiB pages): cut the file 3 pages before its end.
    The records on the pages left are read; the missing pages are counted and warned."""
    src = corpus / "trappy/tests/trace.dat"
    data = src.read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: len(data) - 3 * 4096])
    df, ctx = read(cut)
    assert ctx.skipped["trace.dat: ring-buffer page missing (file cut short)"] == 3
    assert ctx.warnings
    full = trace_cmd_records(src)
    assert 0 < df.height < len(full)
    # what is read is what trace-cmd reads from the same pages: a subset of its records
    want = Counter((int(m["cpu"]), int(m["ts"].replace(".", ""))) for m in full)
    got = Counter(zip(df["cpu"].to_list(), df["ts_ns"].to_list()))
    assert not got - want


# --------------------------------------------------------------------------------------------
# Big-endian (and 32-bit long) files, written here per trace-cmd.dat.v6(5) / v7(5)
# --------------------------------------------------------------------------------------------

COMMON = [("unsigned short", "common_type", 2, 0), ("unsigned char", "common_flags", 1, 0),
          ("unsigned char", "common_preempt_count", 1, 0), ("int", "common_pid", 4, 1)]


def _format(name: str, eid: int, fields: list[tuple[str, str, int, int]], long: int) -> tuple[str, list]:
    """A format file text laid out like the kernel's (fields aligned to their size)."""
    lines, layout, off = [], [], 0
    for i, (typ, fname, size, signed) in enumerate(COMMON + fields):
        size = long if size == "L" else size
        off = (off + size - 1) // size * size
        lines.append(f"\tfield:{typ} {fname};\toffset:{off};\tsize:{size};\tsigned:{signed};")
        layout.append((fname, off, size, signed))
        off += size
        if i == len(COMMON) - 1:
            lines.append("")
    text = f"name: {name}\nID: {eid}\nformat:\n" + "\n".join(lines) + '\n\nprint fmt: "x"\n'
    return text, layout


def _events(long: int):
    entry = _format("funcgraph_entry", 11, [("unsigned long", "func", "L", 0), ("int", "depth", 4, 1)], long)
    exit_ = _format("funcgraph_exit", 10, [("unsigned long", "func", "L", 0), ("int", "depth", 4, 1),
                                           ("unsigned int", "overrun", 4, 0),
                                           ("unsigned long long", "calltime", 8, 0),
                                           ("unsigned long long", "rettime", 8, 0)], long)
    switch = _format("sched_switch", 316, [("int", "prev_pid", 4, 1), ("int", "next_pid", 4, 1)], long)
    return entry, exit_, switch


def _source_records(corpus: Path, n: int = 600):
    """The first ``n`` records of a real little-endian trace, as trace-cmd reads them."""
    recs = trace_cmd_records(corpus / "kbuild-x86_64-6.1.192/A/trace.dat")[:n]
    return recs


def _write_tracedat(path: Path, recs, version: int, long: int, compress: str, *,
                    lost: dict[int, int | None] | None = None, stamp_pages: bool = False,
                    tsc2nsec: tuple[int, int, int] | None = None,
                    latency_text: bytes | None = None) -> dict[str, int]:
    """Encode ``recs`` big-endian into a trace.dat; returns the symbol addresses used.

    ``lost``: page index -> events lost before it (MISSING_EVENTS, with the count stored
    after the data when not None); ``stamp_pages``: start every page after the first with
    an absolute TIME_STAMP record; ``tsc2nsec``: write the clock as x86-tsc with a TSC2NSEC
    option; ``latency_text``: a v6 "latency" file carrying that text instead of pages."""
    lost = lost or {}
    be = ">"
    (entry_t, entry_l), (exit_t, exit_l), (sw_t, sw_l) = _events(long)
    funcs = sorted({_field(m["body"], "func") for m in recs if m["event"].startswith("funcgraph")})
    base = 0xC0100000 if long == 4 else 0xFFFFFFFF81100000
    addr = {f: base + 0x100 * i for i, f in enumerate(funcs)}
    if long == 8:
        # ppc64 ELFv1: the code is the dot symbol; the plain name is the function descriptor
        # (a data symbol in .opd), which must not be taken for the function.
        kallsyms = "".join(f"{a:016x} T .{f}\n{a + 0x40000000:016x} D {f}\n" for f, a in addr.items()).encode()
    else:
        kallsyms = "".join(f"{a:08x} T {f}\n" for f, a in addr.items()).encode()
    cmdlines = b"563 pgtfree2\n13 rcu_preempt\n562 trace-cmd\n"

    def payload(m) -> bytes:
        ev, b = m["event"], m["body"]
        if ev == "funcgraph_entry":
            vals, lay, eid = {"func": addr[_field(b, "func")], "depth": int(_field(b, "depth"))}, entry_l, 11
        elif ev == "funcgraph_exit":
            vals = {"func": addr[_field(b, "func")], "depth": int(_field(b, "depth")),
                    "overrun": 0, "calltime": _hex(_field(b, "calltime")), "rettime": _hex(_field(b, "rettime"))}
            lay, eid = exit_l, 10
        else:
            vals = {"prev_pid": int(_field(b, "prev_pid")), "next_pid": int(_field(b, "next_pid"))}
            lay, eid = sw_l, 316
        vals.update(common_type=eid, common_flags=0, common_preempt_count=1, common_pid=int(m["pid"]))
        size = max(o + s for _, o, s, _ in lay)
        out = bytearray((size + 3) // 4 * 4)
        for fname, off, s, signed in lay:
            code = {1: "b", 2: "h", 4: "i", 8: "q"}[s]
            struct.pack_into(be + (code if signed else code.upper()), out, off, vals[fname])
        return bytes(out)

    page_size = 4096
    hdr = 8 + long
    pages, page, page_ts, last_ts = [], bytearray(), None, None

    def flush():
        if page_ts is None:
            return
        commit = len(page)
        extra = b""
        if len(pages) in lost:
            commit |= 1 << 31  # MISSING_EVENTS
            if lost[len(pages)] is not None:
                commit |= 1 << 30  # MISSING_STORED: the count follows the data
                extra = struct.pack(be + ("I" if long == 4 else "Q"), lost[len(pages)])
        body = struct.pack(be + "Q", page_ts) + struct.pack(be + ("I" if long == 4 else "Q"), commit)
        pages.append(bytes(body + page + extra).ljust(page_size, b"\0"))

    for m in recs:
        ts = int(m["ts"].replace(".", ""))
        data = payload(m)
        rec = bytearray()
        if len(page) + 32 + len(data) > page_size - hdr:
            flush()
            page, page_ts, last_ts = bytearray(), None, None
        if page_ts is None:
            if stamp_pages and pages:
                # page time 0; a TIME_STAMP record (type_len 31) sets the absolute time
                page_ts, last_ts = 0, ts
                rec += struct.pack(be + "I", (31 << 27) | (ts & ((1 << 27) - 1)))
                rec += struct.pack(be + "I", ts >> 27)
            else:
                page_ts, last_ts = ts, ts
        delta = ts - last_ts
        if delta >= 1 << 27:  # TIME_EXTEND: low 27 bits in the header, the rest after it
            rec += struct.pack(be + "I", (30 << 27) | (delta & ((1 << 27) - 1)))
            rec += struct.pack(be + "I", delta >> 27)
            delta = 0
        rec += struct.pack(be + "I", ((len(data) // 4) << 27) | delta)  # big-endian bitfield
        rec += data
        page += rec
        last_ts = ts
    flush()
    cpu_data = b"".join(pages)

    u16, u32, u64 = (lambda v: struct.pack(be + "H", v)), (lambda v: struct.pack(be + "I", v)), (lambda v: struct.pack(be + "Q", v))
    header_page = (f"\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
                   f"\tfield: local_t commit;\toffset:8;\tsize:{long};\tsigned:1;\n"
                   f"\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
                   f"\tfield: char data;\toffset:{hdr};\tsize:{page_size - hdr};\tsigned:0;\n").encode()
    header_info = b"header_page\0" + u64(len(header_page)) + header_page + b"header_event\0" + u64(0)
    ftrace = u32(2) + u64(len(entry_t)) + entry_t.encode() + u64(len(exit_t)) + exit_t.encode()
    events = u32(1) + b"sched\0" + u32(1) + u64(len(sw_t)) + sw_t.encode()
    uname = b"Linux be-host 6.1.0-test ppc64\0"
    clock_opt = u16(4) + u32(8) + b"[local]\0"
    if tsc2nsec:
        clock_opt = u16(4) + u32(10) + b"[x86-tsc]\0" + u16(14) + u32(16) + struct.pack(be + "IIQ", *tsc2nsec)
    initial = b"\x17\x08Dtracing" + f"{version}\0".encode() + bytes([1, long]) + u32(page_size)

    if version == 6:
        head = (initial + header_info + ftrace + events + u32(len(kallsyms)) + kallsyms + u32(0)
                + u64(len(cmdlines)) + cmdlines + u32(1)
                + b"options  \0" + u16(5) + u32(len(uname)) + uname + clock_opt + u16(0))
        if latency_text is not None:
            path.write_bytes(head + b"latency  \0" + latency_text)
            return addr
        head += b"flyrecord\0"
        data_off = (len(head) + 16 + page_size - 1) // page_size * page_size
        blob = head + u64(data_off) + u64(len(cpu_data))
        path.write_bytes(blob.ljust(data_off, b"\0") + cpu_data)
        return addr

    def section(sid: int, body: bytes, flags: int = 0) -> bytes:
        if flags:
            comp = zlib.compress(body)
            body = u32(len(comp)) + u32(len(body)) + comp
        return u16(sid) + u16(flags) + u32(0) + u64(len(body)) + body

    flag = 1 if compress == "zlib" else 0
    out = bytearray(initial + (b"zlib\x001\0" if flag else b"none\0\0"))
    first_opt_at = len(out)
    out += u64(0)  # patched below
    offs = {}
    for sid, body in ((16, header_info), (17, ftrace), (18, events), (19, u32(len(kallsyms)) + kallsyms),
                      (21, u64(len(cmdlines)) + cmdlines)):
        offs[sid] = len(out)
        out += section(sid, body, flag)
    if latency_text is not None:  # BUFFER_TEXT option -> a section holding the text
        text_at = len(out)
        out += section(22, latency_text, flag)
        opts = b"".join(u16(sid) + u32(8) + u64(o) for sid, o in offs.items())
        opts += u16(5) + u32(len(uname)) + uname
        opts += u16(22) + u32(8 + 1 + 6) + u64(text_at) + b"\0" + b"local\0"
        opts += u16(0) + u32(8) + u64(0)
        opt_at = len(out)
        out += section(0, opts, flag)
        struct.pack_into(be + "Q", out, first_opt_at, opt_at)
        path.write_bytes(bytes(out))
        return addr
    buf_sec = len(out)
    out += u16(3) + u16(flag) + u32(0) + u64(0)
    cpu_at = (len(out) + page_size - 1) // page_size * page_size
    out = out.ljust(cpu_at, b"\0")
    if flag:
        chunks = [cpu_data[i:i + 4 * page_size] for i in range(0, len(cpu_data), 4 * page_size)]
        blob = u32(len(chunks)) + b"".join(u32(len(c := zlib.compress(ch))) + u32(len(ch)) + c for ch in chunks)
    else:
        blob = cpu_data
    out += blob
    opts = b""
    for sid in offs:
        opts += u16(sid) + u32(8) + u64(offs[sid])
    opts += u16(5) + u32(len(uname)) + uname + u16(8) + u32(4) + u32(1)
    if tsc2nsec:
        opts += u16(14) + u32(16) + struct.pack(be + "IIQ", *tsc2nsec)
    buffer = u64(buf_sec) + b"\0" + (b"x86-tsc\0" if tsc2nsec else b"local\0") + u32(page_size) + u32(1) + u32(0) + u64(cpu_at) + u64(len(blob))
    opts += u16(3) + u32(len(buffer)) + buffer + u16(0) + u32(8) + u64(0)
    opt_at = len(out)
    out += section(0, opts, flag)
    struct.pack_into(be + "Q", out, first_opt_at, opt_at)
    path.write_bytes(bytes(out))
    return addr


@needs_trace_cmd
@pytest.mark.parametrize("version,long,compress", [(6, 8, "none"), (6, 4, "none"), (7, 8, "zlib"), (7, 4, "none")])
def test_big_endian_round_trip(corpus: Path, tmp_path: Path, version: int, long: int, compress: str) -> None:
    recs = _source_records(corpus)
    path = tmp_path / f"be-v{version}-l{long}.dat"
    _write_tracedat(path, recs, version, long, compress)
    df, ctx = read(path)
    assert ctx.meta["endian"] == "big" and ctx.meta["long_size"] == long
    assert ctx.meta["kernel"] == "6.1.0-test"
    assert df.height == len(recs)
    assert df["event"].to_list() == [m["event"] for m in recs]
    assert df["pid"].to_list() == [int(m["pid"]) for m in recs]
    for row, m in zip(df.iter_rows(named=True), recs):
        ts = int(m["ts"].replace(".", ""))
        if m["event"].startswith("funcgraph_"):
            # 8-byte longs: ELFv1 dot symbols, stored canonical with the raw symbol beside
            assert row["raw_func"] == ("." + row["func"] if long == 8 else None)
        if m["event"] == "funcgraph_entry":
            assert (row["kind"], row["func"], row["depth"], row["ts_ns"]) == (
                "entry", _field(m["body"], "func"), int(_field(m["body"], "depth")), ts)
        elif m["event"] == "funcgraph_exit":
            call, ret = _hex(_field(m["body"], "calltime")), _hex(_field(m["body"], "rettime"))
            assert (row["kind"], row["func"], row["dur_ns"], row["ts_ns"]) == ("exit", _field(m["body"], "func"), ret - call, ret)
        else:
            assert row["ts_ns"] == ts
            assert f"prev_pid={_field(m['body'], 'prev_pid')}" in row["body"]
    assert df.filter(pl.col("comm") == "pgtfree2").height > 0


@needs_trace_cmd
@pytest.mark.parametrize("version", [6, 7])
def test_lost_events_from_page_flags(corpus: Path, tmp_path: Path, version: int) -> None:
    """Pages flagged MISSING_EVENTS give one "lost" row before their first record; a stored
    count (MISSING_STORED) adds to ctx.lost_events, an unstored one is a lost row without a
    count."""
    recs = _source_records(corpus, 600)
    path = tmp_path / "lost.dat"
    _write_tracedat(path, recs, version, 8, "none", lost={1: 1234, 2: None})
    df, ctx = read(path)
    assert ctx.lost_events == 1234
    lost = df.filter(pl.col("kind") == "lost")
    assert lost["lost"].to_list() == [1234, None]
    assert df.filter(pl.col("kind") != "lost").height == len(recs)
    # each lost row comes right before the first record of its page, at the page's time
    for row in lost.iter_rows(named=True):
        after = df.filter(pl.col("seq") == row["seq"] + 1).row(0, named=True)
        assert after["kind"] != "lost"
        if after["kind"] != "exit":  # exit rows carry rettime, not the record time
            assert row["ts_ns"] <= after["ts_ns"]
    assert ctx.warnings  # the count-less loss is reported


@needs_trace_cmd
def test_absolute_time_stamps(corpus: Path, tmp_path: Path) -> None:
    """TIME_STAMP records (type_len 31, newer kernels) set the clock instead of adding."""
    recs = _source_records(corpus, 600)
    path = tmp_path / "stamp.dat"
    _write_tracedat(path, recs, 7, 8, "none", stamp_pages=True)
    df, _ = read(path)
    want = [int(m["ts"].replace(".", "")) for m in recs if m["event"] != "funcgraph_exit"]
    assert df.filter(pl.col("kind") != "exit")["ts_ns"].to_list() == want


@needs_trace_cmd
@pytest.mark.parametrize("mult,shift", [(3_435_973_837, 31), (3_435_973_837 // 2, 36)])
def test_tsc_clock_converted_with_tsc2nsec(corpus: Path, tmp_path: Path, mult: int, shift: int) -> None:
    """x86-tsc timestamps with a TSC2NSEC option: ns = (ticks * mult) >> shift as trace-cmd's
    timestamp_calc() computes it, the wide product done exactly (Python integers give the
    expectation)."""
    recs = _source_records(corpus, 200)
    offset = 0
    path = tmp_path / "tsc.dat"
    _write_tracedat(path, recs, 6, 8, "none", tsc2nsec=(mult, shift, offset))
    df, ctx = read(path)
    assert ctx.meta["clock"] == "x86-tsc" and ctx.meta["time_unit"] == "ns"
    want = [(int(m["ts"].replace(".", "")) * mult) >> shift for m in recs if m["event"] != "funcgraph_exit"]
    assert df.filter(pl.col("kind") != "exit")["ts_ns"].to_list() == want


@pytest.mark.parametrize("version,compress", [(6, "none"), (7, "zlib")])
def test_latency_recording_is_read_as_text(corpus: Path, tmp_path: Path, version: int, compress: str) -> None:
    """``trace-cmd record -p preemptoff`` keeps the kernel's latency text (v6: after a
    "latency" tag; v7: a BUFFER_TEXT section): it is read by the latency format.  Header of
    the real snapshot used: "# latency: 11574 us, #4/4, CPU#0"."""
    text = (corpus / "kbuild-x86_64-6.1.192/A/latency_preemptoff.run1.txt").read_bytes()
    path = tmp_path / "lat.dat"
    _write_tracedat(path, [], version, 8, compress, latency_text=text)
    df, ctx = read(path)
    assert ctx.meta["embedded_text"] == "latency"
    assert len(ctx.windows) == 1
    assert ctx.windows[0]["latency_ns"] == 11574 * 1000


def test_arch_from_kallsyms_without_uname(corpus: Path) -> None:
    """trappy's trace.dat (trace-cmd 2.x, no UNAME option) comes from an arm32 board: its
    kallsyms has the ARM-only vector_swi / __irq_svc entry points."""
    _, ctx = read_cached(corpus / "trappy/tests/trace.dat")
    assert "uname" not in ctx.meta
    assert ctx.meta["arch"] == "arm"


# --------------------------------------------------------------------------------------------
# Ring-buffer pages, property-based: any sequence of records the kernel could write
# --------------------------------------------------------------------------------------------

from hypothesis import assume, given, settings, strategies as st  # noqa: E402

from tracekit.parsers.tracedat.layout import Layout  # noqa: E402
from tracekit.parsers.tracedat.pages import parse_page_header, walk_pages  # noqa: E402

_record = st.tuples(
    st.sampled_from(["data", "data", "data", "big", "discard", "extend"]),
    st.integers(1, 28),  # data words for small records
    st.integers(0, (1 << 27) - 1),  # time delta
    st.integers(1 << 27, 1 << 40),  # delta needing a TIME_EXTEND
)


@settings(max_examples=40, deadline=None)
@given(recs=st.lists(_record, min_size=1, max_size=300), big_endian=st.booleans(), long=st.sampled_from([4, 8]))
def test_page_walk_property(recs, big_endian: bool, long: int) -> None:
    """Records written per ring_buffer.c's encoding (type_len 1..28, type_len 0 with the
    length in array[0], discarded events as PADDING with a delta, TIME_EXTEND) come back with
    their payload offsets and absolute times."""
    order = ">" if big_endian else "<"
    page_size = 1024
    hdr = 8 + long

    def word(type_len: int, delta: int) -> bytes:
        v = ((type_len << 27) | delta) if big_endian else (type_len | (delta << 5))
        return struct.pack(order + "I", v)

    pages, want = [], []
    page, page_ts, now = bytearray(), None, 1_000_000
    for kind, nwords, delta, big_delta in recs:
        if kind == "extend":
            delta = big_delta
        size = 4 * (nwords + 1) if kind in ("data", "discard") else 8 + 4 * (nwords + 30)
        if len(page) + size + 8 > page_size - hdr:
            pages.append((page_ts, page))
            page, page_ts = bytearray(), None
        if page_ts is None:
            page_ts = now
            delta = 0
        now += delta
        if delta >= 1 << 27:
            page += word(30, delta & ((1 << 27) - 1)) + struct.pack(order + "I", delta >> 27)
            delta = 0
        base = len(pages) * page_size + hdr + len(page)
        if kind == "discard":  # a discarded event: PADDING with its delta, array[0] = length
            # record size 4 + array[0]; the kernel forces a zero delta to 1 (rb_event_discard)
            page += word(29, delta or 1) + struct.pack(order + "I", 4 * nwords) + bytes(4 * nwords - 4)
            now += 0 if delta else 1
            continue
        if kind == "big":  # type_len 0: array[0] = payload + 4
            n = 4 * (nwords + 30)
            page += word(0, delta) + struct.pack(order + "I", n + 4) + bytes(range(n % 256)).ljust(n, b"x")[:n]
            want.append((base + 8, n, now))
        else:
            page += word(nwords, delta) + bytes(4 * nwords)
            want.append((base + 4, 4 * nwords, now))
    if page_ts is not None:
        pages.append((page_ts, page))
    block = b"".join(
        (struct.pack(order + "Q", ts) + struct.pack(order + ("I" if long == 4 else "Q"), len(p)) + p).ljust(page_size, b"\0")
        for ts, p in pages
    )
    text = (f"\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
            f"\tfield: local_t commit;\toffset:8;\tsize:{long};\tsigned:1;\n"
            f"\tfield: char data;\toffset:{hdr};\tsize:{page_size - hdr};\tsigned:0;\n")
    import numpy as np

    got = walk_pages(np.frombuffer(block, np.uint8), page_size, parse_page_header(text),
                     Layout(big_endian=big_endian, long_size=long))
    d = got.data
    assert list(zip(got.offset[d].tolist(), got.length[d].tolist(), got.ts[d].tolist())) == want
    assert got.bad_pages == got.cut_pages == 0 and len(d) == len(got.lost)


# --------------------------------------------------------------------------------------------
# Fields printed by the print fmt's own conversions, as libtraceevent's print_field() does
# --------------------------------------------------------------------------------------------

from tracekit.parsers.tracedat.events import Conversion, EventFormat, Field, field_conversions  # noqa: E402


def test_field_conversions_follow_the_print_fmt() -> None:
    """kmalloc's print fmt (6.1): %pS of a cast call_site, %p of ptr, %zu, a __print_flags
    expression (not a bare field: printed by type) and %d; mm_page_free's ``pfn=0x%lx``
    prints its 0x before the value."""
    kmalloc = EventFormat(1, "kmem", "kmalloc", fields=[
        Field("call_site", "unsigned long", 8, 8, False), Field("ptr", "const void *", 16, 8, False),
        Field("bytes_req", "size_t", 24, 8, False), Field("gfp_flags", "unsigned long", 40, 8, False),
        Field("node", "int", 48, 4, True)],
        print_fmt='"call_site=%pS ptr=%p bytes_req=%zu gfp_flags=%s node=%d", (void *)REC->call_site, '
                  'REC->ptr, REC->bytes_req, (REC->gfp_flags) ? __print_flags(REC->gfp_flags, "|", '
                  '{ 0x01, "A" }, { 0x02, "B" }) : "none", REC->node')
    conv = field_conversions(kmalloc)
    assert conv["call_site"].conv == "pS" and conv["ptr"].conv == "p"
    assert conv["bytes_req"] == Conversion("u", 64) and conv["node"] == Conversion("d", 32)
    assert "gfp_flags" not in conv
    free = EventFormat(2, "kmem", "mm_page_free", fields=[
        Field("pfn", "unsigned long", 8, 8, False), Field("order", "unsigned int", 16, 4, False)],
        print_fmt='"page=%p pfn=0x%lx order=%d", pfn_to_page(REC->pfn), REC->pfn, REC->order')
    conv = field_conversions(free)
    assert conv["pfn"] == Conversion("x", 64, has_0x=True) and conv["order"] == Conversion("d", 32)


@settings(max_examples=300, deadline=None)
@given(v=st.integers(-(1 << 63), (1 << 63) - 1), conv=st.sampled_from("diuxXo"),
       bits=st.sampled_from([8, 16, 32, 64]), flags=st.sets(st.sampled_from("-+ 0")),
       width=st.integers(0, 24), prec=st.integers(-1, 22))
def test_printf_conversions_as_c_prints_them(v, conv, bits, flags, width, prec) -> None:
    """Integer conversions written by the compiled loop equal C's printf (Python's %
    operator follows it for these) of the value cast to the length modifier's type."""
    import numpy as np
    from tracekit.parsers.tracedat.decode import _FLAG_BITS, _write_printf

    mask = (1 << bits) - 1
    x = v & mask
    if conv in "di":
        x = x - (1 << bits) if x >> (bits - 1) else x
    elif "+" in flags or " " in flags:
        flags = flags - {"+", " "}  # (C ignores them for unsigned conversions)
    assume(not (x == 0 and prec == 0))  # (C prints no digit there, Python a 0)
    py_flags = flags - {"0"} if prec >= 0 else flags  # (C ignores 0 with a precision)
    spec = "%" + "".join(sorted(py_flags)) + (str(width) if width else "") + (f".{prec}" if prec >= 0 else "")
    want = (spec + ("d" if conv == "i" else conv)) % x
    out = np.zeros(128, np.uint8)
    n = _write_printf(out, 0, np.int64(v), ord(conv), bits, sum(_FLAG_BITS[f] for f in flags), width, prec)
    assert bytes(out[:n]).decode() == want


def _misspelled(corpus: Path, tmp_path: Path, event: bytes | None) -> Path:
    """trappy's raw_trace.dat with ``common_type`` spelt ``common_tpye`` (same length, so
    every offset stays) in ``event``'s format, or in every format when None."""
    raw = (corpus / "trappy/tests/raw_trace.dat").read_bytes()
    if event is None:
        raw = raw.replace(b"common_type;", b"common_tpye;")
    else:
        at = raw.index(b"common_type;", raw.index(b"name: " + event + b"\n"))
        raw = raw[:at] + b"common_tpye;" + raw[at + len(b"common_type;"):]
    out = tmp_path / f"misspelt-{(event or b'all').decode()}.dat"
    out.write_bytes(raw)
    return out


def test_a_format_without_common_type_everywhere_is_one_error_line_and_exit_2(corpus, tmp_path):
    path = _misspelled(corpus, tmp_path, None)
    got = subprocess.run([sys.executable, "-m", "tracekit", "ingest", str(path), "--store", str(tmp_path / "s")],
                         capture_output=True, text=True)
    assert got.returncode == 2
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tracekit: error: {path}: ")
    assert "no event format declares common_type" in lines[0] and "common_tpye" in lines[0]


def test_one_format_without_common_type_is_a_warning_and_its_records_are_kept(corpus, tmp_path):
    """sched_switch's format misspells common_type: its records (755, as ``trace-cmd
    report`` of the file counts them) are kept undecoded, with one warning that names the
    event; the other event (bprint, 2 records) is decoded as before."""
    import tracekit

    path = _misspelled(corpus, tmp_path, b"sched_switch")
    (r,) = tracekit.ingest([str(path)], store=str(tmp_path / "s"), on_error="collect")
    assert r.status == "ingested", r.error
    (warning,) = [w for w in r.warnings if "common_type" in w]
    assert warning.startswith(f"{path}: event sched/sched_switch (ID 73): its format declares no common_type")
    assert "755 record(s) are kept undecoded" in warning
    events = tracekit.open_store(str(tmp_path / "s")).events().collect()
    assert events.filter(pl.col("body") == "[UNKNOWN TYPE 73]").height == 755
    assert events.filter(pl.col("event") == "bprint").height == 2


def test_the_first_format_without_common_type_takes_the_common_fields_from_the_next(corpus, tmp_path):
    """libtraceevent reads where the event type sits from one event's format; when that
    one (ftrace/wakeup here, which has no records) misspells it, the next format says."""
    df, ctx = read(_misspelled(corpus, tmp_path, b"wakeup"))
    assert df.filter(pl.col("event") == "sched_switch").height == 755
    assert not [w for w in ctx.warnings if "common_type" in w]
