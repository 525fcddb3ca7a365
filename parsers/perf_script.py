"""``perf script`` text: samples, their callchains, kprobe/kretprobe hits and the
``--header`` block (docs/formats.md#perf-script; tools/perf/builtin-script.c prints it).

A sample is one header line, then (with ``perf record -g``) one frame per line and a blank
line::

    perf-exec   556 [000]    89.322861:         probe:free_pgtables: (ffffffff92aca790)
    	ffffffff92aca791 free_pgtables+0x1 ([kernel.kallsyms])
    	ffffffff92adb5f2 exit_mmap+0x132 ([kernel.kallsyms])

The header line has every shape perf versions and ``-F`` choices give it: a comm that may
hold spaces, ``pid`` or ``pid/tid``, optionally ``[cpu]``, optionally ``secs.usecs:``,
optionally the period, then the event name (which may itself hold colons:
``tlb:tlb_flush``, ``cycles:u``) and, for tracepoints, the event's text.  Very old perf
printed ``java 19983 cycles:`` (no cpu, no time).

What a sample becomes:

* ``probe:X`` (a kprobe made by ``perf probe -a X``) is a ``kprobe_entry`` row and
  ``probe:X__return`` (``perf probe -a 'X%return'``) a ``kprobe_exit`` row, with
  ``func`` = X, ``pid`` = the thread id: :mod:`tracekit.spans` pairs them per thread, LIFO
  (``ctx.meta["span_source"] = "kprobe"``).  Uprobe groups (``probe_libc:malloc``) the same.
* every other sample is one ``sample`` row with its ``event``.

``callchain`` holds the frames innermost first, as perf prints them, each reduced to its
canonical kernel symbol (:func:`tracekit.symbols.canonical_expr`: ``+0x1a/0x40``
offsets, GCC clone suffixes and ppc64 dots removed); addresses and DSOs are not kept.
``pid`` is the thread id (``tid`` of ``pid/tid``, else the one number printed; null for
perf's unknown thread ``:-1 -1``); ``body`` is the tracepoint text, preceded by
``period=N`` when perf printed a period.  A sample without a callchain whose line ends in
the sampled ``ip sym+off (dso)`` gets that one symbol as its callchain.  Side-band records
(``PERF_RECORD_COMM``, ``_FORK``, ``_EXIT``, ``_SWITCH_CPU_WIDE``...) are ``marker`` rows
with the record name as ``event``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import polars as pl

from tracekit.arch import arch_from_kernel_release, arch_from_symbols, canonical_arch
from tracekit.parsers import FormatInfo
from tracekit.parsers.base import LineChunk, ParseContext
from tracekit.schema import EVENT_SCHEMA, Kind, conform, empty
from tracekit.symbols import canonical_expr

__all__ = ["FORMAT", "sniff", "parse", "SAMPLE_RE", "FRAME_RE"]

FORMAT = FormatInfo(
    name="perf_script",
    kind="text",
    description="perf script text: samples with callchains, kprobe/kretprobe pairs, --header",
    example="perf-exec   556 [000]    89.322861:         probe:free_pgtables: (ffffffff92aca790)",
)

#: A sample's first line.  The comm ends at the last "<pid>[/<tid>]" that is followed by
#: the optional cpu / time / period fields and an event name ending in ": " or at the end.
SAMPLE_RE = (
    r"^\s*(?P<comm>\S.*?)\s+(?P<pid>-?\d+)(?:/(?P<tid>-?\d+))?\s+"
    r"(?:\[(?P<cpu>\d+)\]\s+)?"
    r"(?:(?P<time>\d+\.\d+):\s+)?"
    r"(?:(?P<period>\d+)\s+)?"
    r"(?P<event>[A-Za-z_][\w.:/@=,-]*?):(?:\s+(?P<body>.*?))?\s*$"
)
#: A side-band record shown with --show-task-events / --show-switch-events / --show-mmap-events:
#: ``forkit 11019 [001] 66663.271207092: PERF_RECORD_FORK(11020:11020):(11019:11019)``.
RECORD_RE = (
    r"^\s*(?P<comm>\S.*?)\s+(?P<pid>-?\d+)(?:/(?P<tid>-?\d+))?\s+"
    r"(?:\[(?P<cpu>\d+)\]\s+)?"
    r"(?:(?P<time>\d+\.\d+):\s+)?"
    r"(?P<event>PERF_RECORD_[A-Z0-9_]+)(?P<body>.*?)\s*$"
)
#: The sampled ip on the sample line itself (no callchain): ``ffffffffb1d9f844 strnlen_user+0xb4
#: ([kernel.kallsyms])``.
_IP_SYM_RE = r"^[0-9a-fA-F]+\s+(?P<ipsym>\S.*?)\s+\((?:[^()]|\([^()]*\))*\)$"
#: A callchain frame: address, symbol (with +off), and the DSO in parentheses.
FRAME_RE = r"^\s*(?P<addr>[0-9a-fA-F]+)\s+(?P<sym>\S.*?)(?:\s+\((?P<dso>.*)\))?\s*$"
_DSO_RE = r"\s+\((?:[^()]|\([^()]*\))*\)\s*$"
_KPROBE_RE = r"^probe(?:_\w+)?:(?P<fn>.+?)(?P<ret>__return)?$"
_HEADER_KEYS = {
    "os release": "kernel",
    "arch": "perf_arch",
    "nrcpus online": "ncpus",
    "nrcpus avail": "nrcpus_avail",
    "cmdline": "perf_cmdline",
    "perf version": "perf_version",
    "hostname": "hostname",
    "captured on": "captured_on",
    "cpudesc": "cpudesc",
}


def sniff(head: str) -> int:
    """How sure we are that ``head`` is ``perf script`` output."""
    if re.search(r"^# (?:os release|perf version|nrcpus online) : ", head, re.M):
        return 90
    lines = [ln for ln in head.splitlines()[:400] if ln.strip() and not ln.startswith("#")]
    if not lines:
        return 0
    sample = re.compile(SAMPLE_RE)
    frame = re.compile(r"^\s*[0-9a-fA-F]+\s+\S.*\(.*\)\s*$")
    n_sample = sum(1 for ln in lines if sample.match(ln) and not ln.startswith("\t"))
    n_frame = sum(1 for ln in lines if frame.match(ln))
    if n_sample and n_sample + n_frame >= 0.9 * len(lines) and n_frame:
        return 85
    # without callchains every line is a sample; perf right-aligns the comm ("%16s"), so
    # a line may begin with blanks
    if n_sample >= 0.9 * len(lines) and re.search(r"^\s*\S.*\s\d+(?:/\d+)?\s+(?:\[\d+\]\s+)?\d+\.\d+:\s+(?:\d+\s+)?[\w:.-]+:", head, re.M):
        return 55
    return 0


def parse(chunks: Iterator[LineChunk], ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """Parse ``perf script`` text into event frames (samples and kprobe rows)."""
    carry: pl.DataFrame | None = None
    n_kprobe = 0
    syms: list[pl.Series] = []  # a bounded sample of raw frame symbols, for the arch
    # Set before the first frame: the span pairing reads it then.
    ctx.meta["span_source"] = "kprobe"
    for chunk in chunks:
        df = pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines})
        if carry is not None:
            df = pl.concat([carry, df])
            carry = None
        df = _classify(df)
        if not chunk.is_last:
            # The last sample may go on in the next chunk: hold it back, frames and all.
            last = df.select(pl.col("is_sample").arg_true().last()).item()
            if last is not None:  # (at 0: one sample longer than the chunk, carry on)
                carry = df.slice(last).select("line", "text")
                df = df.slice(0, last)
        out = _parse_chunk(df, ctx, syms)
        if out.height:
            n_kprobe += out.filter(pl.col("kind").is_in([Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT])).height
            yield out
    if carry is not None:
        out = _parse_chunk(_classify(carry), ctx, syms)
        if out.height:
            n_kprobe += out.filter(pl.col("kind").is_in([Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT])).height
            yield out
    if not n_kprobe:
        del ctx.meta["span_source"]
    if "arch" not in ctx.meta and syms:
        # No "# arch :" header: ppc64 dot symbols or arch-only entry points may say it.
        arch = arch_from_symbols(pl.concat(syms))
        if arch:
            ctx.meta["arch"] = arch
            ctx.meta["arch_source"] = "symbols"
    ctx.meta.setdefault("time_unit", "ns")


def _classify(df: pl.DataFrame) -> pl.DataFrame:
    t = pl.col("text")
    is_comment = t.str.starts_with("#")
    is_blank = t.str.contains(r"^\s*$")
    # perf indents frames with a tab; a tab-indented line is never a sample.
    not_frame = ~is_comment & ~t.str.starts_with("\t")
    is_record = not_frame & t.str.contains(RECORD_RE)
    is_sample = not_frame & ~is_record & t.str.contains(SAMPLE_RE)
    return df.with_columns(
        is_comment=is_comment,
        is_blank=is_blank,
        is_record=is_record,
        # a record heads its own (frameless) block like a sample
        is_sample=is_sample | is_record,
    ).with_columns(
        is_frame=~pl.col("is_comment") & ~pl.col("is_sample") & t.str.contains(FRAME_RE)
    )


def _header(comments: pl.DataFrame, ctx: ParseContext) -> None:
    """``perf script --header`` lines (``# os release : 4.13.0-rc1``) into ``ctx.meta``."""
    kv = comments.select(
        pl.col("text").str.extract_groups(r"^#\s*(?P<key>[a-z][a-z ]*?)\s*:\s(?P<val>.*?)\s*$")
    ).unnest("text").drop_nulls("key")
    events: list[str] = []
    for key, val in kv.iter_rows():  # a few header lines a file
        if key == "event":
            m = re.search(r"name = ([^,]+)", val)
            if m:
                events.append(m.group(1).strip())
            continue
        name = _HEADER_KEYS.get(key)
        if name is None or name in ctx.meta:
            continue
        if name == "ncpus":
            try:
                ctx.meta["ncpus"] = int(val)
            except ValueError:
                ctx.warn(f"{ctx.path}: unreadable '# nrcpus online' value {val!r}")
            continue
        ctx.meta[name] = val
        if name == "perf_arch":
            arch = canonical_arch(val)
            if arch:
                ctx.meta["arch"] = arch
            else:
                ctx.warn(f"{ctx.path}: perf header names an unknown arch {val!r}")
        if name == "kernel" and "arch" not in ctx.meta:
            arch = arch_from_kernel_release(val)
            if arch:
                ctx.meta["arch"] = arch
    if events:
        ctx.meta.setdefault("perf_events", events)


def _parse_chunk(df: pl.DataFrame, ctx: ParseContext, syms: list[pl.Series]) -> pl.DataFrame:
    comments = df.filter(pl.col("is_comment"))
    if comments.height:
        _header(comments, ctx)
    other = df.filter(~pl.col("is_comment") & ~pl.col("is_blank") & ~pl.col("is_sample") & ~pl.col("is_frame"))
    if other.height:
        ctx.skip("unrecognised perf script line", other.height)

    rows = df.filter(pl.col("is_sample") | pl.col("is_frame"))
    if not rows.height:
        return empty(EVENT_SCHEMA)
    # Each frame belongs to the sample line above it (forward-filled sample line number).
    rows = rows.with_columns(
        owner=pl.when(pl.col("is_sample")).then(pl.col("line")).forward_fill()
    )
    frames = rows.filter(pl.col("is_frame"))
    orphans = frames.filter(pl.col("owner").is_null()).height
    if orphans:
        ctx.skip("callchain frame without a sample line", orphans)
    # "<addr> <sym> (<dso>)": the symbol is what lies between the address and the DSO's
    # parentheses (C++ symbols hold parentheses of their own).
    frames = frames.drop_nulls("owner").with_columns(
        sym=pl.col("text").str.strip_chars_start().str.splitn(" ", 2).struct.field("field_1")
        .str.replace(_DSO_RE, "").str.strip_chars()
    )
    if sum(x.len() for x in syms) < 20_000:
        syms.append(frames["sym"].head(20_000))
    chains = (
        frames.group_by("owner")
        .agg(callchain=canonical_expr(pl.col("sym")))
    )
    heads = rows.filter(pl.col("is_sample"))
    s = pl.concat(
        [
            heads.filter(~pl.col("is_record"))
            .with_columns(pl.col("text").str.extract_groups(SAMPLE_RE).alias("m")).unnest("m"),
            heads.filter(pl.col("is_record"))
            .with_columns(pl.col("text").str.extract_groups(RECORD_RE).alias("m")).unnest("m")
            .with_columns(period=pl.lit(None, dtype=pl.String)),
        ],
        how="diagonal_relaxed",
    ).sort("line")
    s = s.join(chains, left_on="line", right_on="owner", how="left", maintain_order="left")

    kp = pl.col("event").str.extract_groups(_KPROBE_RE)
    s = s.with_columns(kp=kp).unnest("kp")
    parts = pl.col("time").str.split_exact(".", 1)
    ts_ns = (
        parts.struct.field("field_0").cast(pl.Int64, strict=False) * 1_000_000_000
        + parts.struct.field("field_1").str.pad_end(9, "0").str.slice(0, 9).cast(pl.Int64, strict=False)
    )
    s = s.with_columns(body=pl.when(pl.col("body") != "").then(pl.col("body").str.strip_chars()))
    # Without a callchain perf prints the sampled ip's symbol on the sample line itself.
    ip_sym = canonical_expr(pl.col("body").str.extract(_IP_SYM_RE, 1))
    s = s.with_columns(
        callchain=pl.when(pl.col("callchain").is_null() & ~pl.col("is_record") & ip_sym.is_not_null())
        .then(pl.concat_list(ip_sym))
        .otherwise(pl.col("callchain"))
    )
    body = (
        pl.when(pl.col("period").is_not_null() & pl.col("body").is_not_null())
        .then(pl.concat_str(pl.lit("period="), pl.col("period"), pl.lit(" "), pl.col("body")))
        .when(pl.col("period").is_not_null()).then(pl.concat_str(pl.lit("period="), pl.col("period")))
        .when(pl.col("body") != "").then(pl.col("body"))
    )
    raw_fn = pl.col("fn")
    s = s.with_columns(
        seq=pl.col("line"),
        cpu=pl.col("cpu").cast(pl.Int32, strict=False),
        # perf's unknown thread prints as ":-1    -1": no task, so no pid and no comm.
        pid=pl.coalesce(pl.col("tid"), pl.col("pid")).cast(pl.Int32, strict=False).replace(-1, None),
        comm=pl.when(~pl.col("comm").str.contains(r"^:-?\d+$")).then(pl.col("comm").str.strip_chars()),
        ts_ns=ts_ns,
        kind=pl.when(pl.col("is_record")).then(pl.lit(Kind.MARKER))
        .when(raw_fn.is_null()).then(pl.lit(Kind.SAMPLE))
        .when(pl.col("ret").is_not_null()).then(pl.lit(Kind.KPROBE_EXIT))
        .otherwise(pl.lit(Kind.KPROBE_ENTRY)),
        func=canonical_expr(raw_fn),
        body=body,
    ).with_columns(
        raw_func=pl.when(raw_fn != pl.col("func")).then(raw_fn),
    )
    return conform(s)
