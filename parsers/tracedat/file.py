"""Walking a trace.dat file: the initial block, the v6 sequence or the v7 sections, the
options, and where each CPU's ring-buffer pages are.

This module knows the order of things in the file and nothing about what an event means:
the structures come from :mod:`.layout`, the pages are read by :mod:`.pages` and the
payloads decoded by :mod:`.events`.
"""

from __future__ import annotations

import mmap
import zlib
from dataclasses import dataclass, field
from typing import Iterator

from ..base import ParseError
from .layout import (
    FLYRECORD_TAG,
    HEADER_EVENT_TAG,
    HEADER_PAGE_TAG,
    LATENCY_TAG,
    MAGIC,
    OPTIONS_TAG,
    SECTION_COMPRESSED,
    Layout,
    Option,
    Section,
)

__all__ = ["CpuData", "Buffer", "TraceDat", "open_tracedat"]


@dataclass
class CpuData:
    """One CPU's ring-buffer pages in the file: at ``offset``, ``size`` bytes; when
    ``compressed`` (v7), a chunk count then chunks of whole pages."""

    cpu: int
    offset: int
    size: int
    compressed: bool = False


@dataclass
class Buffer:
    """One ftrace instance's flyrecord data (the top instance is named "")."""

    name: str
    clock: str | None
    page_size: int
    cpus: list[CpuData]


@dataclass
class TraceDat:
    """What a trace.dat carries besides its pages, as read from the file."""

    path: str
    version: int
    layout: Layout
    page_size: int
    compression: tuple[str, str] | None = None
    header_page: str = ""
    header_event: str = ""
    ftrace_formats: list[str] = field(default_factory=list)
    event_formats: list[tuple[str, str]] = field(default_factory=list)  # (system, text)
    kallsyms: bytes = b""
    printk_formats: bytes = b""
    cmdlines: bytes = b""
    ncpus: int = 0
    options: dict[int, list[bytes]] = field(default_factory=dict)
    buffers: list[Buffer] = field(default_factory=list)
    latency_text: bytes | None = None
    _map: mmap.mmap | bytes | None = None

    # -- option values ----------------------------------------------------------------------
    def option_text(self, opt: Option) -> str | None:
        """The first option ``opt`` as text (NUL-terminated ASCII), or None."""
        vals = self.options.get(int(opt))
        if not vals:
            return None
        return vals[0].split(b"\0", 1)[0].decode("latin-1")

    def data(self, offset: int, size: int) -> memoryview:
        """``size`` bytes of the file at ``offset`` (no copy)."""
        assert self._map is not None
        if offset < 0 or offset + size > len(self._map):
            raise ParseError(self.path, None, f"data runs past the end of the file "
                             f"({size} bytes at {offset}; file is {len(self._map)} bytes)",
                             offset=offset)
        return memoryview(self._map)[offset:offset + size]

    @property
    def file_size(self) -> int:
        return len(self._map) if self._map is not None else 0

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            try:
                self._map.close()
            except BufferError:  # a numpy view still holds it; the GC will release it
                pass
            self._map = None

    # -- per-CPU pages ------------------------------------------------------------------------
    def cpu_pages(self, cpu: CpuData, page_size: int, max_bytes: int) -> Iterator[bytes | memoryview]:
        """The pages of one CPU in blocks of at most ``max_bytes`` (whole pages), decompressing
        v7 chunks as it goes, so memory stays bounded whatever the trace's size."""
        if not cpu.compressed:
            step = max(page_size, (max_bytes // page_size) * page_size)
            end = cpu.offset + cpu.size
            pos = cpu.offset
            while pos < end:
                n = min(step, end - pos)
                yield self.data(pos, n)
                pos += n
            return
        lay = self.layout
        count = lay.u32.unpack(self.data(cpu.offset, 4))[0]
        pos = cpu.offset + 4
        pending: list[bytes] = []
        pending_size = 0
        for i in range(count):
            csize, usize = lay.compression_header.unpack(self.data(pos, 8))
            pos += 8
            chunk = self._decompress(self.data(pos, csize), usize, pos)
            pos += csize
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= max_bytes:
                yield b"".join(pending)
                pending, pending_size = [], 0
        if pending:
            yield b"".join(pending)

    def _decompress(self, data: memoryview, usize: int, offset: int) -> bytes:
        name = self.compression[0] if self.compression else "none"
        try:
            if name == "zstd":
                import zstandard

                out = zstandard.ZstdDecompressor().decompress(bytes(data), max_output_size=usize)
            elif name == "zlib":
                out = zlib.decompress(bytes(data))
            elif name == "none":
                out = bytes(data)
            else:
                raise ParseError(self.path, None, f"unsupported compression {name!r}", offset=offset)
        except ParseError:
            raise
        except Exception as exc:  # zstd / zlib errors: damaged data
            raise ParseError(self.path, None, f"cannot decompress {name} data: {exc}",
                             offset=offset) from None
        if len(out) != usize:
            raise ParseError(self.path, None, f"{name} chunk gave {len(out)} bytes, header says "
                             f"{usize}", offset=offset)
        return out


class _Cursor:
    """Sequential reads over the mapped file with bounds checks that name the offset."""

    def __init__(self, tdat: TraceDat, pos: int):
        self.t = tdat
        self.pos = pos
        self.buf = tdat._map

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ParseError(self.t.path, None, f"truncated file: {what} needs {n} bytes",
                             offset=self.pos)
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self, what: str) -> int:
        return self.t.layout.u16.unpack(self.take(2, what))[0]

    def u32(self, what: str) -> int:
        return self.t.layout.u32.unpack(self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return self.t.layout.u64.unpack(self.take(8, what))[0]

    def cstring(self, what: str) -> str:
        end = self.buf.find(b"\0", self.pos)
        if end < 0:
            raise ParseError(self.t.path, None, f"truncated file: {what} has no NUL", offset=self.pos)
        s = self.buf[self.pos:end].decode("latin-1")
        self.pos = end + 1
        return s

    def expect(self, tag: bytes, what: str) -> None:
        got = self.take(len(tag), what)
        if got != tag:
            raise ParseError(self.t.path, None, f"expected {tag!r} ({what}), found {got!r}",
                             offset=self.pos - len(tag))


def open_tracedat(path: str, data: bytes | None = None) -> TraceDat:
    """Read everything but the pages of the trace.dat at ``path`` (or of ``data``, its
    bytes already in memory; ``path`` then only names it).

    Raises :class:`ParseError` (with the byte offset) for anything that is not a v6 or v7
    trace.dat, or that is cut short."""
    if data is not None:
        mm = data
    else:
        try:
            f = open(path, "rb")
        except OSError as exc:
            raise ParseError(path, None, f"cannot open: {exc.strerror}") from None
        with f:
            try:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:
                raise ParseError(path, None, "empty file, not a trace.dat") from None
    if mm[:10] != MAGIC:
        raise ParseError(path, None, "not a trace.dat (no 0x17 0x08 0x44 'tracing' magic)", offset=0)
    end = mm.find(b"\0", 10, 32)
    if end < 0:
        raise ParseError(path, None, "no version string after the magic", offset=10)
    try:
        version = int(mm[10:end])
    except ValueError:
        raise ParseError(path, None, f"bad version string {mm[10:end]!r}", offset=10) from None
    if version not in (6, 7):
        raise ParseError(path, None, f"trace.dat version {version} is not supported (6 and 7 are)",
                         offset=10)
    if end + 7 > len(mm):  # (endianness, long size, then the 4-byte page size)
        raise ParseError(path, None, "truncated initial block", offset=end)
    endian, long_size = mm[end + 1], mm[end + 2]
    if endian not in (0, 1) or long_size not in (4, 8):
        raise ParseError(path, None, f"bad endianness/long-size bytes {endian}/{long_size}",
                         offset=end + 1)
    layout = Layout(big_endian=endian == 1, long_size=long_size)
    page_size = layout.u32.unpack(mm[end + 3:end + 7])[0]
    if page_size < 64 or page_size & (page_size - 1):
        raise ParseError(path, None, f"implausible page size {page_size}", offset=end + 3)
    t = TraceDat(path=path, version=version, layout=layout, page_size=page_size, _map=mm)
    cur = _Cursor(t, end + 7)
    if version == 6:
        _read_v6(t, cur)
    else:
        _read_v7(t, cur)
    return t


# --------------------------------------------------------------------------------------------
# v6: everything in sequence
# --------------------------------------------------------------------------------------------

def _read_headers(t: TraceDat, cur: _Cursor) -> None:
    cur.expect(HEADER_PAGE_TAG, "header_page")
    t.header_page = cur.take(cur.u64("header_page size"), "header_page").decode("latin-1")
    cur.expect(HEADER_EVENT_TAG, "header_event")
    t.header_event = cur.take(cur.u64("header_event size"), "header_event").decode("latin-1")


def _read_ftrace_formats(t: TraceDat, cur: _Cursor) -> None:
    for _ in range(cur.u32("ftrace event count")):
        t.ftrace_formats.append(cur.take(cur.u64("format size"), "ftrace format").decode("latin-1"))


def _read_event_formats(t: TraceDat, cur: _Cursor) -> None:
    for _ in range(cur.u32("event system count")):
        system = cur.cstring("system name")
        for _ in range(cur.u32("event count")):
            text = cur.take(cur.u64("format size"), f"{system} format").decode("latin-1")
            t.event_formats.append((system, text))


def _read_v6(t: TraceDat, cur: _Cursor) -> None:
    _read_headers(t, cur)
    _read_ftrace_formats(t, cur)
    _read_event_formats(t, cur)
    t.kallsyms = cur.take(cur.u32("kallsyms size"), "kallsyms")
    t.printk_formats = cur.take(cur.u32("printk size"), "printk formats")
    t.cmdlines = cur.take(cur.u64("cmdlines size"), "saved cmdlines")
    t.ncpus = cur.u32("cpu count")
    while True:
        tag = cur.take(10, "section tag")
        if tag == OPTIONS_TAG:
            while True:
                oid = cur.u16("option id")
                if oid == Option.DONE:
                    break
                size = cur.u32("option size")
                t.options.setdefault(oid, []).append(cur.take(size, f"option {oid}"))
        elif tag == LATENCY_TAG:
            t.latency_text = bytes(t._map[cur.pos:])
            return
        elif tag == FLYRECORD_TAG:
            cpus = []
            for cpu in range(t.ncpus):
                off, size = t.layout.cpu_data_v6.unpack(cur.take(16, "flyrecord cpu data"))
                cpus.append(CpuData(cpu, off, size))
            clock = _current_clock(t.option_text(Option.TRACECLOCK))
            t.buffers.append(Buffer("", clock, t.page_size, cpus))
            for raw in t.options.get(Option.BUFFER, []):
                # v6 instances: u64 offset, name; their per-CPU table sits at that offset.
                off = t.layout.u64.unpack(raw[:8])[0]
                name = raw[8:].split(b"\0", 1)[0].decode("latin-1")
                sub = _Cursor(t, off)
                icpus = []
                for cpu in range(t.ncpus):
                    o, s = t.layout.cpu_data_v6.unpack(sub.take(16, f"instance {name} cpu data"))
                    icpus.append(CpuData(cpu, o, s))
                t.buffers.append(Buffer(name, clock, t.page_size, icpus))
            return
        else:
            raise ParseError(t.path, None, f"unknown section tag {tag!r}", offset=cur.pos - 10)


def _current_clock(trace_clock: str | None) -> str | None:
    """The selected clock in a ``trace_clock`` file text (``[local] global ...``)."""
    if not trace_clock:
        return None
    for word in trace_clock.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return trace_clock.strip() or None


# --------------------------------------------------------------------------------------------
# v7: sections reached from options
# --------------------------------------------------------------------------------------------

def _section(t: TraceDat, offset: int, want: int | None = None) -> tuple[int, bytes]:
    """The (flags, body) of the section at ``offset``, decompressed when flagged."""
    cur = _Cursor(t, offset)
    sid, flags, _string_id, size = t.layout.section_header.unpack(cur.take(16, "section header"))
    if want is not None and sid != want:
        raise ParseError(t.path, None, f"expected section {want}, found {sid}", offset=offset)
    if sid == Section.BUFFER:
        return flags, b""
    body = cur.take(size, f"section {sid}")
    if flags & SECTION_COMPRESSED:
        csize, usize = t.layout.compression_header.unpack(body[:8])
        body = t._decompress(memoryview(body)[8:8 + csize], usize, offset + 24)
    return flags, body


def _read_v7(t: TraceDat, cur: _Cursor) -> None:
    t.compression = (cur.cstring("compression name"), cur.cstring("compression version"))
    if t.compression[0] not in ("none", "zstd", "zlib"):
        raise ParseError(t.path, None, f"unsupported compression {t.compression[0]!r}",
                         offset=cur.pos)
    next_options = cur.u64("first options offset")
    seen: set[int] = set()
    buffers: list[bytes] = []
    while next_options and next_options not in seen:
        seen.add(next_options)
        _flags, body = _section(t, next_options, Section.OPTIONS)
        next_options = 0
        pos = 0
        while pos + 6 <= len(body):
            oid, size = t.layout.option_header.unpack_from(body, pos)
            data = body[pos + 6:pos + 6 + size]
            pos += 6 + size
            if oid == Option.DONE:
                next_options = t.layout.u64.unpack(data[:8])[0] if len(data) >= 8 else 0
                break
            t.options.setdefault(oid, []).append(data)
            if oid == Option.BUFFER:
                buffers.append(data)
    lay = t.layout

    def sec(opt: Option) -> bytes | None:
        vals = t.options.get(int(opt))
        if not vals:
            return None
        return _section(t, lay.u64.unpack(vals[0][:8])[0], int(opt))[1]

    body = sec(Option.HEADER_INFO)
    if body is None:
        raise ParseError(t.path, None, "v7 file without a HEADER_INFO section")
    _read_headers(t, _body_cursor(t, body))
    if (body := sec(Option.FTRACE_EVENTS)) is not None:
        _read_ftrace_formats(t, _body_cursor(t, body))
    if (body := sec(Option.EVENT_FORMATS)) is not None:
        _read_event_formats(t, _body_cursor(t, body))
    if (body := sec(Option.KALLSYMS)) is not None:
        c = _body_cursor(t, body)
        t.kallsyms = c.take(c.u32("kallsyms size"), "kallsyms")
    if (body := sec(Option.PRINTK)) is not None:
        c = _body_cursor(t, body)
        t.printk_formats = c.take(c.u32("printk size"), "printk formats")
    if (body := sec(Option.CMDLINES)) is not None:
        c = _body_cursor(t, body)
        t.cmdlines = c.take(c.u64("cmdlines size"), "saved cmdlines")
    if Option.CPUCOUNT in t.options:
        t.ncpus = lay.u32.unpack(t.options[Option.CPUCOUNT][0][:4])[0]
    for raw in buffers:
        c = _body_cursor(t, raw)
        sec_off = c.u64("buffer section offset")
        name = c.cstring("buffer name")
        clock = c.cstring("buffer clock") or None
        psize = c.u32("buffer page size")
        n = c.u32("buffer cpu count")
        flags, _ = _section(t, sec_off, Section.BUFFER)
        cpus = []
        for _ in range(n):
            cpu, off, size = lay.cpu_data_v7.unpack(c.take(20, "buffer cpu data"))
            cpus.append(CpuData(cpu, off, size, compressed=bool(flags & SECTION_COMPRESSED)))
        t.buffers.append(Buffer(name, clock, psize, cpus))
    for raw in t.options.get(Option.BUFFER_TEXT, []):
        c = _body_cursor(t, raw)
        _flags, text = _section(t, c.u64("latency section offset"), Section.BUFFER_TEXT)
        t.latency_text = text
    if not t.ncpus:
        t.ncpus = max((len(b.cpus) for b in t.buffers), default=0)


def _body_cursor(t: TraceDat, body: bytes) -> _Cursor:
    """A cursor over a section body already in memory (decompressed)."""
    c = _Cursor.__new__(_Cursor)
    c.t, c.pos, c.buf = t, 0, body
    return c
