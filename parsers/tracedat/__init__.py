"""trace-cmd's binary ``trace.dat`` (versions 6 and 7), read natively without trace-cmd.

:mod:`.layout` declares the on-disk structures (per endianness and long size), :mod:`.file`
walks the file (v6 sequence, v7 sections, options, per-CPU pages, zlib/zstd chunks),
:mod:`.pages` finds the records in ring-buffer pages and :mod:`.events` decodes their payloads
with the format files.  This module ties them together: records of all CPUs are merged in
timestamp order (as ``trace-cmd report`` shows them) and yielded as event-schema frames.

``funcgraph_entry`` records become ``entry`` rows and ``funcgraph_exit`` records ``exit``
rows (``ts_ns`` = rettime, ``dur_ns`` = rettime - calltime) for :mod:`tracekit.spans` to pair
(source ``funcgraph_raw``); the function tracer's records are ``function`` rows; every other
record is one ``event`` row with its fields rendered ``name=value``.  Pages flagged
MISSING_EVENTS give ``lost`` rows.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np
import polars as pl

from tracekit.schema import EVENT_SCHEMA, Kind, conform

from ..base import LineChunk, ParseContext, ParseError
from .events import (
    EventFormat,
    decode_records,
    parse_cmdlines,
    parse_format,
    parse_kallsyms,
    parse_printk_formats,
)
from .file import Buffer, CpuData, TraceDat, open_tracedat
from .layout import MAGIC, Option
from .pages import parse_page_header, walk_pages

__all__ = ["FORMAT", "sniff_bytes", "parse_file", "read_metadata"]

from .. import FormatInfo  # noqa: E402  (the registry imports format modules lazily)

FORMAT = FormatInfo(
    name="tracedat",
    kind="binary",
    description="trace-cmd binary trace.dat (v6/v7; zlib/zstd; any endianness and long size)",
    example="17 08 44 74 72 61 63 69 6e 67 37 00  (\\x17\\x08D tracing 7\\0: trace-cmd record)",
)

#: Bytes of ring-buffer pages decoded at a time per CPU (bounds memory on big traces).
BLOCK_BYTES = 2 << 20
#: Rows per yielded frame, at most.
FRAME_ROWS = 200_000
#: Trace clocks that count ticks rather than nanoseconds.
COUNTER_CLOCKS = {"x86-tsc": "tsc", "ppc-tb": "timebase", "counter": "counter"}


def sniff_bytes(head: bytes) -> int:
    """100 for the trace.dat magic (``17 08 44`` then ``tracing``), else 0."""
    return 100 if head[:10] == MAGIC else 0


def sniff(head: str) -> int:
    """Text detection never claims a trace.dat (it is binary)."""
    return 0


def _kernel_version(release: str | None) -> tuple[int, int]:
    try:
        major, minor = release.split(".")[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except (AttributeError, ValueError):
        return (0, 0)


def read_metadata(t: TraceDat, ctx: ParseContext) -> None:
    """Put what the file says about the trace into ``ctx.meta``: uname (kernel, arch),
    clock, CPU count, page size, trace-cmd version, per-CPU stats."""
    meta = ctx.meta
    meta["tracedat_version"] = t.version
    meta["endian"] = "big" if t.layout.big_endian else "little"
    meta["long_size"] = t.layout.long_size
    meta["page_size"] = t.page_size
    if t.compression:
        meta["compression"] = "-".join(t.compression)
    uname = t.option_text(Option.UNAME)
    if uname:
        meta["uname"] = uname
        parts = uname.split()
        if len(parts) >= 4:
            meta["kernel"] = parts[2]
            meta["arch"] = parts[-1]
    if "arch" not in meta and t.kallsyms:
        # No UNAME (trace-cmd before 2.7): the kernel's own symbols say which arch it is.
        from tracekit.arch import arch_from_symbols

        names = pl.Series(t.kallsyms.decode("latin-1").splitlines(), dtype=pl.String)
        arch = arch_from_symbols(names.str.extract(r"^\S+\s+[tTwW]\s+(\S+)"))
        if arch:
            meta["arch"] = arch
            meta["arch_from"] = "kallsyms"
    if (off := t.option_text(Option.OFFSET)):
        try:
            meta["ts_offset"] = int(off.strip(), 0)
        except ValueError:
            ctx.warn(f"trace.dat OFFSET option {off!r} is not a number: ignored")
    if (v := t.option_text(Option.VERSION)):
        meta["tracecmd_version"] = v
    clock = t.buffers[0].clock if t.buffers else None
    if clock:
        meta["clock"] = clock
    meta["ncpus"] = t.ncpus
    stats = [raw.split(b"\0", 1)[0].decode("latin-1") for raw in t.options.get(Option.CPUSTAT, [])]
    if stats:
        meta["cpustat"] = stats
        overrun = 0
        for s in stats:
            for line in s.splitlines():
                if line.startswith("overrun:"):
                    try:
                        overrun += int(line.split(":", 1)[1])
                    except ValueError:
                        pass
        meta["overrun"] = overrun
    if clock in COUNTER_CLOCKS:
        if Option.TSC2NSEC in t.options:
            mult, shift, off = t.layout.tsc2nsec.unpack(t.options[Option.TSC2NSEC][0][:16])
            meta["tsc2nsec"] = {"mult": mult, "shift": shift, "offset": off}
            meta["time_unit"] = "ns"
        else:
            meta["time_unit"] = "ticks"
    else:
        meta["time_unit"] = "ns"


def parse_file(path: str, ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """Read the trace.dat at ``path``: frames in the event schema, all CPUs merged in time
    order, ``seq`` = the record's index in that order."""
    t = open_tracedat(path)
    try:
        read_metadata(t, ctx)
        if t.latency_text is not None:
            yield from _latency_text(t, ctx)
            return
        if not t.buffers:
            raise ParseError(path, None, "no flyrecord data in the file")
        yield from _flyrecord(t, ctx)
    finally:
        t.close()


def _latency_text(t: TraceDat, ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """A ``trace-cmd record -p irqsoff``-style recording keeps the kernel's ASCII latency
    trace; it is handed to the text format that recognises it."""
    from .. import detect

    text = t.latency_text.decode("latin-1")
    mod = detect(text[:65536].encode("latin-1"))
    if mod is None or mod.FORMAT.kind != "text":
        raise ParseError(t.path, None, "latency recording whose text no text format recognises")
    ctx.meta["embedded_text"] = mod.FORMAT.name
    lines = pl.Series("lines", text.splitlines(), dtype=pl.String)
    yield from mod.parse(iter([LineChunk(1, lines, is_last=True)]), ctx)


class _Formats:
    """Event formats by id, each parsed the first time a record of it is met (a trace.dat
    carries hundreds of formats and usually uses a few)."""

    _ID_RE = re.compile(r"^ID:\s*(\d+)", re.M)

    def __init__(self, texts: list[tuple[str, str]]):
        self.texts: dict[int, tuple[str, str]] = {}
        for system, text in texts:
            if (m := self._ID_RE.search(text)):
                self.texts[int(m.group(1))] = (system, text)
        self._parsed: dict[int, EventFormat | None] = {}

    def get(self, eid: int) -> EventFormat | None:
        if eid not in self._parsed:
            found = self.texts.get(eid)
            self._parsed[eid] = parse_format(found[1], found[0]) if found else None
        return self._parsed[eid]


class _Decoder:
    """What every block's decoding needs from the file, prepared once."""

    def __init__(self, t: TraceDat, ctx: ParseContext):
        self.t = t
        self.ctx = ctx
        self.layout = t.layout
        self.page_hdr = parse_page_header(t.header_page, t.layout.long_size)
        self.formats = _Formats([("ftrace", x) for x in t.ftrace_formats] + list(t.event_formats))
        if not self.formats.texts:
            raise ParseError(t.path, None, "no event formats in the file")
        self.common = self.formats.get(next(iter(self.formats.texts)))
        self.symbols = parse_kallsyms(t.kallsyms)
        self.printk = parse_printk_formats(t.printk_formats)
        self.cmdlines = parse_cmdlines(t.cmdlines)
        # 6.12+ reuses flag 0x02 (IRQS_NOSUPPORT) for NEED_RESCHED_LAZY.
        self.nosupport_is_lazy = _kernel_version(ctx.meta.get("kernel")) >= (6, 12)
        tsc = ctx.meta.get("tsc2nsec")
        self.tsc2nsec = (tsc["mult"], tsc["shift"], tsc["offset"]) if tsc else None
        self.ts_offset = int(ctx.meta.get("ts_offset", 0))
        self.unknown: dict[int, int] = {}
        self.lost_pages_unknown = 0

    def cpu_frames(self, buf: Buffer, cpu: CpuData) -> Iterator[pl.DataFrame]:
        """One CPU's records, block by block, with ``rb_ts`` (the ring-buffer time) to merge on."""
        for raw in self.t.cpu_pages(cpu, buf.page_size, BLOCK_BYTES):
            block = np.frombuffer(raw, dtype=np.uint8)
            usable = len(block) - len(block) % buf.page_size
            if usable != len(block):
                self.ctx.skip("trace.dat: partial ring-buffer page at end of CPU data")
                block = block[:usable]
            if usable == 0:
                continue
            recs = walk_pages(block, buf.page_size, self.page_hdr, self.layout)
            if recs.bad_pages:
                self.ctx.skip("trace.dat: page with impossible commit size", recs.bad_pages)
                self.ctx.warn(f"{recs.bad_pages} ring-buffer page(s) with an impossible size were skipped")
            parts = []
            if len(recs.offset):
                dec = decode_records(block, recs.offset, recs.length, self._ns(recs.ts), cpu.cpu,
                                     self.formats, self.common, self.layout, self.symbols,
                                     self.printk, self.nosupport_is_lazy)
                for k, v in dec.unknown_ids.items():
                    self.unknown[k] = self.unknown.get(k, 0) + v
                parts.append(dec.frame.with_columns(
                    pl.lit(1, pl.Int8).alias("sub"),
                    pl.Series("rb_ts", self._ns(recs.ts).astype(np.int64)),
                ))
            if len(recs.lost_page):
                parts.append(self._lost_rows(recs, cpu.cpu))
            if not parts:
                continue
            yield pl.concat(parts, how="diagonal_relaxed").sort(["rec", "sub"])

    def _ns(self, ts: np.ndarray) -> np.ndarray:
        """Ring-buffer clock values to the report's time: x86-tsc ticks scaled by the
        TSC2NSEC option (``ticks * mult >> shift``, as trace-cmd's timestamp_calc() does),
        then the OFFSET option's fixed offset added."""
        if self.tsc2nsec is not None:
            mult, shift, _ = self.tsc2nsec
            # the 96-bit product, in two 64-bit halves
            hi = (ts >> np.uint64(32)) * np.uint64(mult)
            lo = (ts & np.uint64(0xFFFFFFFF)) * np.uint64(mult)
            high = (hi << np.uint64(32 - shift)) if shift <= 32 else (hi >> np.uint64(shift - 32))
            if shift > 32:  # the bits of hi below the shift carry into lo's part
                lo = lo + ((hi & np.uint64((1 << (shift - 32)) - 1)) << np.uint64(32))
            ts = high + (lo >> np.uint64(shift))
        if self.ts_offset:
            ts = (ts.astype(np.int64) + np.int64(self.ts_offset)).astype(np.uint64)
        return ts

    def _lost_rows(self, recs, cpu: int) -> pl.DataFrame:
        count = recs.lost_count
        known = count >= 0
        self.ctx.lost_events += int(count[known].sum())
        self.lost_pages_unknown += int((~known).sum())
        body = [f"CPU:{cpu} [{c} EVENTS DROPPED]" if c >= 0 else f"CPU:{cpu} [EVENTS DROPPED]"
                for c in count]
        ts = self._ns(recs.lost_ts).astype(np.int64)
        return pl.DataFrame({
            "rec": recs.lost_before.astype(np.int64) - 1,
            "sub": np.full(len(count), 2, np.int8),
            "cpu": np.full(len(count), cpu, np.int32),
            "ts_ns": ts,
            "rb_ts": ts,
            "kind": [Kind.LOST] * len(count),
            "lost": pl.Series(count, dtype=pl.Int64).replace(-1, None),
            "body": body,
        })


def _merge(streams: list[Iterator[pl.DataFrame]]) -> Iterator[pl.DataFrame]:
    """Merge per-CPU frames into one time-ordered stream, a bounded window at a time.

    Each CPU's own order is kept (its merge key is the running maximum of its ring-buffer
    time); rows up to the earliest "last time seen" of the CPUs still producing are safe to
    emit, as a k-way merge of the CPUs' streams would."""
    pending: list[pl.DataFrame | None] = [None] * len(streams)
    live = [True] * len(streams)
    last_key = [0] * len(streams)

    def refill(i: int) -> None:
        while live[i] and (pending[i] is None or pending[i].height == 0):
            try:
                f = next(streams[i])
            except StopIteration:
                live[i] = False
                return
            f = f.with_columns(pl.max_horizontal(pl.col("rb_ts").cum_max(), pl.lit(last_key[i])).alias("key"),
                               pl.lit(i, pl.Int32).alias("stream"))
            last_key[i] = int(f["key"][-1])
            f = f.with_row_index("order")
            pending[i] = f if pending[i] is None else pl.concat([pending[i], f])

    for i in range(len(streams)):
        refill(i)
    while True:
        horizons = [int(pending[i]["key"][-1]) for i in range(len(streams))
                    if live[i] and pending[i] is not None and pending[i].height]
        horizon = min(horizons) if horizons else None
        ready, keep = [], []
        for i, f in enumerate(pending):
            if f is None or f.height == 0:
                continue
            if horizon is None:
                ready.append(f)
                pending[i] = None
            else:
                ready.append(f.filter(pl.col("key") <= horizon))
                pending[i] = f.filter(pl.col("key") > horizon)
        if ready:
            out = pl.concat(ready, how="diagonal_relaxed").sort(["key", "stream", "order"])
            if out.height:
                yield out
        if horizon is None:
            return
        for i in range(len(streams)):
            refill(i)


def _flyrecord(t: TraceDat, ctx: ParseContext) -> Iterator[pl.DataFrame]:
    dec = _Decoder(t, ctx)
    buf = t.buffers[0]
    for other in t.buffers[1:]:
        ctx.warn(f"trace.dat instance {other.name!r} not read (only the top instance is)")
    ctx.meta["span_source"] = "funcgraph_raw"
    _clamp_cut_short(t, buf, ctx)
    streams = [dec.cpu_frames(buf, cpu) for cpu in buf.cpus if cpu.size > 0]
    seq = 0
    kinds: set[str] = set()
    for frame in _merge(streams):
        frame = frame.with_columns(
            pl.int_range(seq, seq + frame.height, dtype=pl.Int64).alias("seq"),
        )
        seq += frame.height
        frame = _with_comm(frame, dec.cmdlines)
        if "raw_func" in frame.columns:
            frame = frame.with_columns(
                pl.when(pl.col("raw_func") != pl.col("func")).then(pl.col("raw_func")).alias("raw_func")
            )
        kinds.update(frame["kind"].unique().to_list())
        for start in range(0, frame.height, FRAME_ROWS):
            yield conform(frame.slice(start, FRAME_ROWS), EVENT_SCHEMA)
    ctx.meta["records"] = seq
    if dec.unknown:
        n = sum(dec.unknown.values())
        ctx.meta["unknown_event_records"] = n
        ctx.warn(f"{n} record(s) of event id(s) {sorted(dec.unknown)} with no format in the file, "
                 "kept as events '[UNKNOWN TYPE N]'")
    if dec.lost_pages_unknown:
        ctx.warn(f"{dec.lost_pages_unknown} page(s) report lost events without a count")
    if Kind.ENTRY in kinds or Kind.EXIT in kinds:
        ctx.meta.setdefault("tracer", "function_graph")
    elif Kind.FUNCTION in kinds:
        ctx.meta.setdefault("tracer", "function")


def _clamp_cut_short(t: TraceDat, buf: Buffer, ctx: ParseContext) -> None:
    """A recording cut short (disk full, killed trace-cmd) keeps the pages that made it to
    disk: read those, and count the pages the CPU table promises but the file lacks."""
    size = t.file_size
    for cpu in buf.cpus:
        if cpu.compressed or cpu.offset + cpu.size <= size:
            continue
        have = max(0, size - cpu.offset) // buf.page_size * buf.page_size
        missing = (cpu.size - have + buf.page_size - 1) // buf.page_size
        ctx.skip("trace.dat: ring-buffer page missing (file cut short)", missing)
        ctx.warn(f"CPU {cpu.cpu}: the file ends {missing} page(s) before the CPU's data does; "
                 "the pages present were read")
        cpu.size = have


def _with_comm(frame: pl.DataFrame, cmdlines: pl.DataFrame) -> pl.DataFrame:
    """``comm`` from the saved cmdlines: ``<idle>`` for pid 0, ``<...>`` when not saved."""
    if "comm" in frame.columns:
        frame = frame.drop("comm")
    frame = frame.join(cmdlines, on="pid", how="left", maintain_order="left")
    return frame.with_columns(
        pl.when(pl.col("pid") == 0).then(pl.lit("<idle>"))
        .when(pl.col("kind") == Kind.LOST).then(pl.lit(None, pl.String))
        .otherwise(pl.col("comm").fill_null("<...>")).alias("comm")
    )
