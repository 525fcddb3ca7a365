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
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import polars as pl

from tracekit.schema import EVENT_SCHEMA, Kind, conform
from tracekit.symbols import canonical_expr

from ..base import LineChunk, ParseContext, ParseError
from .. import scan
from ..noise import NOISE_EVENTS, NOISE_TRACERS, noise_columns
from .decode import Common, Decoded, FieldTable, RecordKind, decode, type_ids
from .events import (
    EventFormat,
    irq_flags,
    parse_cmdlines,
    parse_format,
    parse_kallsyms,
    parse_printk_formats,
    vbin_printf_columns,
)
from .file import Buffer, CpuData, TraceDat, open_tracedat
from .layout import MAGIC, Option
from .pages import PageRecords, parse_page_header, walk_pages

__all__ = ["FORMAT", "sniff_bytes", "parse_file", "read_metadata", "scan_bytes"]

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
    yield from _read(open_tracedat(path), ctx)


def _kernel_int(name: str, values: np.ndarray, ctx: ParseContext) -> pl.Series:
    """``values`` (a record field the kernel declares ``int``: ``common_pid``, a call's
    ``depth``) as an Int32 column, null where negative.  A value an ``int`` cannot hold
    was read through a damaged event format (a field declared wider than the kernel's)."""
    big = values > np.iinfo(np.int32).max
    if big.any():
        raise ParseError(ctx.path, None, f"a record's {name} is {int(values[big][0])}, more than the kernel's int "
                         "holds: the event format declaring it is damaged")
    return scan.ints(name, values, pl.Int32)


def scan_bytes(raw: bytes) -> None:
    """Read ``raw`` as a whole trace.dat, every frame built and dropped: the entry point of
    the fuzzer, which any input may only make raise :class:`ParseError`."""
    ctx = ParseContext("<bytes>")
    for _ in _read(open_tracedat("<bytes>", data=raw), ctx):
        pass


def _read(t: TraceDat, ctx: ParseContext) -> Iterator[pl.DataFrame]:
    path = t.path
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
    carries hundreds of formats and usually uses a few), flattened for the decoder.  A
    format that declares no ``common_type`` (a damaged file: every event's format begins
    with the kernel's struct trace_entry) is left out of the table, so its records are kept
    undecoded; ``untyped`` names them."""

    _ID_RE = re.compile(r"^ID:\s*(\d+)", re.M)

    def __init__(self, texts: list[tuple[str, str]]):
        self.texts: dict[int, tuple[str, str]] = {}
        for system, text in texts:
            if (m := self._ID_RE.search(text)):
                self.texts.setdefault(int(m.group(1)), (system, text))
        self._parsed: dict[int, EventFormat | None] = {}
        #: id -> the format, of the formats that declare no common_type
        self.untyped: dict[int, EventFormat] = {}
        self.table = FieldTable([])

    def get(self, eid: int) -> EventFormat | None:
        if eid not in self._parsed:
            found = self.texts.get(eid)
            self._parsed[eid] = parse_format(found[1], found[0]) if found else None
        return self._parsed[eid]

    def table_for(self, ids: np.ndarray) -> FieldTable:
        """The field table covering every id in ``ids`` (rebuilt when one is new)."""
        new = [int(e) for e in np.unique(ids) if e >= 0 and int(e) not in self._parsed]
        for eid in new:
            self.get(eid)
        if new:
            for eid in new:
                fmt = self._parsed[eid]
                if fmt is not None and not _declares_common_type(fmt):
                    self.untyped[eid] = fmt
            self.table = FieldTable([f for e, f in self._parsed.items() if f is not None and e not in self.untyped])
        return self.table


def _declares_common_type(fmt: EventFormat) -> bool:
    """Whether ``fmt`` declares the event type where the kernel puts it (struct
    trace_entry's ``unsigned short type``, printed as ``common_type``)."""
    f = fmt.field("common_type")
    return f is not None and 1 <= f.size <= 8


def _common_names(fmt: EventFormat) -> str:
    return ", ".join(f.name for f in fmt.common) or "none"


@dataclass
class _Segment:
    """One block of a CPU's pages, walked: its records from ``pos`` on are not yet merged.
    ``key`` is the running maximum of the CPU's times (its order in the merge)."""

    cpu: int
    block: np.ndarray
    recs: PageRecords
    ts: np.ndarray  # int64 ns
    key: np.ndarray
    pos: int = 0


@dataclass
class _Window:
    """Records of every CPU up to one time, in report order, over one byte buffer."""

    buf: np.ndarray
    off: np.ndarray
    length: np.ndarray
    lost: np.ndarray
    ts: np.ndarray
    cpu: np.ndarray
    ids: np.ndarray
    table: FieldTable


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
        first = self.formats.get(next(iter(self.formats.texts)))
        if first is None:
            raise ParseError(t.path, None, "the first event format has no name")
        self.common = Common.of(self._typed_format(first))
        #: records kept undecoded, by the id of their event whose format lacks common_type
        self.untyped_records: Counter[int] = Counter()
        self._lock = threading.Lock()
        self.symbols = parse_kallsyms(t.kallsyms)
        self.printk = parse_printk_formats(t.printk_formats)
        self.cmdlines = dict(zip(*parse_cmdlines(t.cmdlines).get_columns()))
        # 6.12+ reuses flag 0x02 (IRQS_NOSUPPORT) for NEED_RESCHED_LAZY.
        self.nosupport_is_lazy = _kernel_version(ctx.meta.get("kernel")) >= (6, 12)
        tsc = ctx.meta.get("tsc2nsec")
        self.tsc2nsec = (tsc["mult"], tsc["shift"], tsc["offset"]) if tsc else None
        self.ts_offset = int(ctx.meta.get("ts_offset", 0))

    def warn_untyped(self, ctx: ParseContext) -> None:
        """One warning per event whose records were kept undecoded because its format
        declares no ``common_type`` (once every window is framed)."""
        for eid, n in sorted(self.untyped_records.items()):
            fmt = self.formats.untyped[eid]
            ctx.warn(f"{self.t.path}: event {fmt.system}/{fmt.name} (ID {eid}): its format declares no common_type "
                     f"(its common fields: {_common_names(fmt)}), so its fields cannot be trusted: its {n} record(s) "
                     f"are kept undecoded as events '[UNKNOWN TYPE {eid}]'")

    def _typed_format(self, first: EventFormat) -> EventFormat:
        """The format the common fields' places are read from: the first, as libtraceevent
        reads them from one event's format (every event begins with struct trace_entry),
        or, when that one declares no ``common_type``, the first format that does.  With
        none, no record's event can be told."""
        if _declares_common_type(first):
            return first
        for eid in self.formats.texts:
            fmt = self.formats.get(eid)
            if fmt is not None and _declares_common_type(fmt):
                return fmt
        raise ParseError(self.t.path, None, f"no event format declares common_type (the first, {first.system}/"
                         f"{first.name}, declares {_common_names(first)}): no record's event can be told")

    def segments(self, buf: Buffer, cpu: CpuData) -> Iterator[_Segment]:
        """One CPU's pages, block by block, walked."""
        last = np.int64(np.iinfo(np.int64).min)
        for raw in self.t.cpu_pages(cpu, buf.page_size, BLOCK_BYTES):
            block = np.frombuffer(raw, dtype=np.uint8)
            usable = len(block) - len(block) % buf.page_size
            if usable != len(block):
                self.ctx.skip("trace.dat: partial ring-buffer page at end of CPU data")
                block = block[:usable]
            if usable == 0:
                continue
            try:
                recs = walk_pages(block, buf.page_size, self.page_hdr, self.layout)
            except ValueError as exc:
                raise ParseError(self.t.path, None, f"ring-buffer pages: {exc}") from None
            if recs.bad_pages:
                self.ctx.skip("trace.dat: page with impossible commit size", recs.bad_pages)
                self.ctx.warn(f"{recs.bad_pages} ring-buffer page(s) with an impossible size were skipped")
            if recs.cut_pages:
                self.ctx.skip("trace.dat: page whose records run past its data", recs.cut_pages)
                self.ctx.warn(f"{recs.cut_pages} ring-buffer page(s) end in a damaged record: "
                              "read up to it")
            if len(recs.offset) == 0:
                continue
            ts = self._ns(recs.ts).astype(np.int64)
            key = np.maximum.accumulate(np.maximum(ts, last))
            last = key[-1]
            yield _Segment(cpu.cpu, block, recs, ts, key)

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

    def window(self, parts: list[tuple[_Segment, int, int]]) -> _Window:
        """The records ``seg.recs[a:b]`` of each part, merged into report order: by the
        CPUs' running time, then CPU stream, then the CPU's own order."""
        blocks = {id(seg.block): seg.block for seg, _, _ in parts}
        if len(blocks) == 1:
            buf, base = next(iter(blocks.values())), {id(parts[0][0].block): 0}
        else:
            buf = np.concatenate(list(blocks.values()))
            starts = np.cumsum([0] + [len(b) for b in blocks.values()])
            base = dict(zip(blocks, starts[:-1].tolist()))

        def cat(get):
            return np.concatenate([get(seg)[a:b] for seg, a, b in parts])

        key = cat(lambda s: s.key)
        order = np.argsort(key, kind="stable")
        off = np.concatenate([seg.recs.offset[a:b] + base[id(seg.block)] for seg, a, b in parts])[order]
        cpu = np.concatenate([np.full(b - a, seg.cpu, np.int64) for seg, a, b in parts])[order]
        length, lost = cat(lambda s: s.recs.length)[order], cat(lambda s: s.recs.lost)[order]
        ids = type_ids(buf, off, length, lost, self.common.type_off, self.common.type_size,
                       self.layout.big_endian)
        return _Window(buf, off, length, lost, cat(lambda s: s.ts)[order], cpu, ids,
                       self.formats.table_for(ids))

    def frame(self, w: _Window, ctx: ParseContext) -> pl.DataFrame:
        """The event-schema columns of a window's records (``seq`` aside)."""
        s = self.symbols
        d = decode(w.buf, w.off, w.length, w.lost, w.ts, w.cpu, w.ids, self.common, w.table,
                   self.layout.big_endian, s.addr, s.start, s.end, s.text)
        kind = pl.Series("kind", _KIND_NAMES).gather(d.kind.astype(np.int64))
        lost_row = d.kind == RecordKind.LOST
        graph = (d.kind == RecordKind.ENTRY) | (d.kind == RecordKind.EXIT)
        body = scan.texts(d.body.tobytes(), d.body_at[:-1], d.body_at[1:], "body")
        body = self._bprint(w, d, body)
        names = [f.name for f in w.table.formats]
        frame = pl.DataFrame([
            pl.Series("cpu", w.cpu, pl.Int32),
            _kernel_int("pid", np.where(lost_row, -1, d.pid), ctx),
            self._comm(d.pid, lost_row),
            pl.Series("ts_ns", d.ts, pl.Int64),
            kind,
            *self._symbol_columns(d.func, graph | (d.kind == RecordKind.FUNCTION), "func"),
            *self._symbol_columns(d.parent, (d.kind == RecordKind.FUNCTION) & (d.parent != 0), "parent"),
            _kernel_int("depth", np.where(graph, d.depth, -1), ctx),
            scan.ints("dur_ns", np.where(d.kind == RecordKind.EXIT, d.dur, -1), pl.Int64),
            self._flags(d.flags),
            pl.Series("event", names + [None], pl.String).gather(np.where(d.fmt < 0, len(names), d.fmt)),
            body,
            scan.ints("lost", np.where(lost_row, w.lost, -1), pl.Int64),
        ])
        if lost_row.any():
            known = w.lost[lost_row]
            ctx.lost_events += int(known[known >= 0].sum())
        unknown = d.type_id[d.kind == RecordKind.UNKNOWN]
        for eid, n in zip(*(a.tolist() for a in np.unique(unknown, return_counts=True))):
            if eid not in self.formats.untyped:
                ctx.warn(f"record(s) of event id {eid} with no format in the file, kept as events "
                         f"'[UNKNOWN TYPE {eid}]'")
                continue
            with self._lock:  # (windows are framed in threads)
                self.untyped_records[eid] += n
        if any(f.name in NOISE_TRACERS or f.name in NOISE_EVENTS for f in w.table.formats):
            noise = noise_columns(pl.col("body"), pl.col("event"))
            frame = frame.with_columns(**{k: v for k, v in noise.items() if k != "noise_event"})
        return frame

    def _symbol_columns(self, addr: np.ndarray, rows: np.ndarray, name: str) -> list[pl.Series]:
        """``name`` (canonical) and ``raw_<name>`` (the kallsyms symbol, or hex when unknown;
        null where it equals the canonical name) of the addresses on ``rows``."""
        n = len(addr)
        canon, raw = scan.nulls(name, n, pl.String), scan.nulls("raw_" + name, n, pl.String)
        at = np.flatnonzero(rows)
        if len(at) == 0:
            return [canon, raw]
        sub = addr[at]
        idx = self.symbols.index(sub)
        # each unresolved address is its own value, printed in hex
        key = np.where(idx >= 0, idx, -1 - np.arange(len(idx)))
        uniq, inv = np.unique(key, return_inverse=True)
        values = [self.symbols.name(u) if u >= 0 else None for u in uniq.tolist()]
        first = np.zeros(len(uniq), dtype=np.int64)
        first[inv[::-1]] = np.arange(len(inv))[::-1]
        values = [v if v is not None else f"0x{int(sub[first[j]]):x}" for j, v in enumerate(values)]
        table = pl.DataFrame({"raw": values}).with_columns(canonical_expr(pl.col("raw")).alias("canon"))
        table = table.with_columns(pl.when(pl.col("raw") != pl.col("canon")).then(pl.col("raw")).alias("raw"))
        codes = pl.Series(inv.astype(np.int64))
        return [canon.scatter(at, table["canon"].gather(codes)),
                raw.scatter(at, table["raw"].gather(codes))]

    def _comm(self, pid: np.ndarray, lost_row: np.ndarray) -> pl.Series:
        """``comm`` from the saved cmdlines: ``<idle>`` for pid 0, ``<...>`` when not saved."""
        pids = pl.Series("pid", pid)
        uniq = pids.unique()
        comms = ["<idle>" if p == 0 else self.cmdlines.get(p, "<...>") for p in uniq.to_list()]
        comm = pids.replace_strict(uniq, pl.Series(comms, dtype=pl.String), return_dtype=pl.String)
        if lost_row.any():
            comm = comm.scatter(np.flatnonzero(lost_row), None)
        return comm.alias("comm")

    def _flags(self, flags: np.ndarray) -> pl.Series:
        """The latency-format flag characters (null where the format has no such fields)."""
        codes = pl.Series("flags", flags)
        uniq = codes.unique().to_numpy()
        text = irq_flags(uniq & 0xFF, uniq >> 8, self.nosupport_is_lazy)
        if (uniq < 0).any():
            text = text.scatter(np.flatnonzero(uniq < 0), None)
        return codes.replace_strict(uniq, text, return_dtype=pl.String).alias("flags")

    def _bprint(self, w: _Window, d: Decoded, body: pl.Series) -> pl.Series:
        """trace_printk() records with a format in printk_formats: ``ip: text`` as
        trace-cmd prints them (the arguments are packed by vbin_printf, see
        :func:`~.events.vbin_printf_columns`)."""
        for i, fmt in enumerate(w.table.formats):
            if fmt.system != "ftrace" or fmt.name != "bprint":
                continue
            rows = np.flatnonzero(d.fmt == i)
            ip_f, fmt_f, buf_f = fmt.field("ip"), fmt.field("fmt"), fmt.field("buf")
            if len(rows) == 0 or not (ip_f and fmt_f and buf_f):
                continue
            addrs = _field_values(w, rows, fmt_f, self.layout)
            ips = _field_values(w, rows, ip_f, self.layout)
            size = np.maximum(w.length[rows] - buf_f.offset, 0)
            width = int(size.max(initial=0))
            pos = (w.off[rows] + buf_f.offset)[:, None] + np.arange(width)
            args = np.take(w.buf, pos, mode="clip")
            args[np.arange(width)[None, :] >= size[:, None]] = 0
            texts = np.full(len(rows), None, dtype=object)
            for a in np.unique(addrs).tolist():
                sel = np.flatnonzero(addrs == a)
                printf = self.printk.get(int(a))
                if printf is not None:
                    texts[sel] = vbin_printf_columns(printf, args[sel], size[sel], self.layout, self.symbols)
            done = np.array([t is not None for t in texts], dtype=bool)
            if not done.any():
                continue
            ipname = self.symbols.resolve(ips[done])
            hexs = np.char.mod("0x%x", ips[done])
            text = [f"{n if n is not None else h}: {t.removesuffix(chr(10))}"
                    for n, h, t in zip(ipname, hexs, texts[done])]
            body = body.scatter(rows[done], text)
        return body


def _field_values(w: _Window, rows: np.ndarray, f, layout) -> np.ndarray:
    """A fixed unsigned field of the records ``rows`` of a window (0 past a payload)."""
    size = f.size if f.size in (1, 2, 4, 8) else 0
    if size == 0:
        return np.zeros(len(rows), dtype=np.uint64)
    pos = (w.off[rows] + f.offset)[:, None] + np.arange(size)
    raw = np.take(w.buf, pos, mode="clip")
    raw[w.length[rows] < f.offset + size] = 0
    return np.ascontiguousarray(raw).view(layout.dtype(size)).ravel().astype(np.uint64)


_KIND_NAMES = [Kind.EVENT, Kind.FUNCTION, Kind.ENTRY, Kind.EXIT, Kind.LOST, Kind.EVENT]


def _merge(dec: _Decoder, streams: list[Iterator[_Segment]]) -> Iterator[_Window]:
    """Merge the CPUs' walked pages into windows of report order, a bounded amount at a time.

    Each CPU's own order is kept (its merge key is the running maximum of its times);
    records up to the earliest "last time seen" of the CPUs still producing are safe to
    emit, as a k-way merge of the CPUs' streams would."""
    pending: list[list[_Segment]] = [[] for _ in streams]
    live = [True] * len(streams)

    def refill(i: int) -> None:
        while live[i] and not pending[i]:
            seg = next(streams[i], None)
            if seg is None:
                live[i] = False
            else:
                pending[i].append(seg)

    while True:
        for i in range(len(streams)):
            refill(i)
        heads = [int(pending[i][-1].key[-1]) for i in range(len(streams)) if live[i] and pending[i]]
        horizon = min(heads) if heads else None
        parts = []
        for segs in pending:
            for seg in list(segs):
                end = len(seg.key) if horizon is None else int(np.searchsorted(seg.key, horizon, side="right"))
                if end > seg.pos:
                    parts.append((seg, seg.pos, end))
                    seg.pos = end
                if seg.pos == len(seg.key):
                    segs.remove(seg)
                else:
                    break
        if parts:
            yield dec.window(parts)
        if horizon is None:
            return


def _flyrecord(t: TraceDat, ctx: ParseContext) -> Iterator[pl.DataFrame]:
    dec = _Decoder(t, ctx)
    buf = t.buffers[0]
    for other in t.buffers[1:]:
        ctx.warn(f"trace.dat instance {other.name!r} not read (only the top instance is)")
    ctx.meta["span_source"] = "funcgraph_raw"
    _clamp_cut_short(t, buf, ctx)
    streams = [dec.segments(buf, cpu) for cpu in buf.cpus if cpu.size > 0]
    seq = unknown = lost_uncounted = 0
    kinds: set[str] = set()
    for frame in scan.map_chunks(_merge(dec, streams), dec.frame, ctx):
        frame = frame.with_columns(pl.int_range(seq, seq + frame.height, dtype=pl.Int64).alias("seq"))
        seq += frame.height
        kinds.update(frame["kind"].unique().to_list())
        unknown += frame.filter(pl.col("event").is_null() & (pl.col("kind") == Kind.EVENT)).height
        lost_uncounted += frame.filter((pl.col("kind") == Kind.LOST) & pl.col("lost").is_null()).height
        for start in range(0, frame.height, FRAME_ROWS):
            yield conform(frame.slice(start, FRAME_ROWS), EVENT_SCHEMA)
    ctx.meta["records"] = seq
    dec.warn_untyped(ctx)
    if unknown:
        ctx.meta["unknown_event_records"] = unknown
    if lost_uncounted:
        ctx.warn(f"{lost_uncounted} page(s) report lost events without a count")
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
