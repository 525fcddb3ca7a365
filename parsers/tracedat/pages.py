"""Walking ring-buffer sub-buffers ("pages") as the kernel wrote them, in a compiled loop.

A page is ``struct buffer_data_page`` (kernel/trace/ring_buffer.c): a u64 timestamp, a
``local_t commit`` (bytes of data, plus the MISSING_EVENTS / MISSING_STORED flags), then
``struct ring_buffer_event`` records, each a u32 header (``type_len:5, time_delta:27``)
followed by its data.  :func:`walk_pages` steps through the records of every page of a
block, keeping the clock as trace-cmd's kbuffer does: the page timestamp, plus each
record's delta, TIME_EXTEND records carrying the bits above 27, TIME_STAMP records setting
the absolute time.  Every offset it reads is checked against the page's committed data, so
a damaged page ends early and is counted, never read past.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tracekit.jit import njit

from ..scan import read_word
from .layout import (
    COMMIT_MASK,
    MISSING_EVENTS,
    MISSING_STORED,
    TS_SHIFT,
    Layout,
    PageHeader,
    RingBufferType,
)

__all__ = ["PageRecords", "parse_page_header", "walk_pages", "DATA"]

#: ``PageRecords.lost`` of a data record (other values mark a page's lost events).
DATA = -2

_PADDING = int(RingBufferType.PADDING)
_TIME_EXTEND = int(RingBufferType.TIME_EXTEND)
_TIME_STAMP = int(RingBufferType.TIME_STAMP)


@dataclass
class PageRecords:
    """The records of a block of pages, in page order then in-page order.

    ``offset``/``length`` locate each data record's payload in the block (bytes); ``ts`` is
    its time in ring-buffer clock units (page timestamp plus the deltas before it).  A page
    flagged MISSING_EVENTS puts one more row before its first record: ``lost`` is then the
    number of events lost (-1 when the kernel did not store it), its ``ts`` the page's
    timestamp and its ``length`` -1; on data rows ``lost`` is :data:`DATA`.
    ``bad_pages`` counts pages whose commit size does not fit the page (skipped whole),
    ``cut_pages`` pages whose records run past their committed data (read up to there)."""

    offset: np.ndarray  # int64
    length: np.ndarray  # int64
    ts: np.ndarray  # uint64
    lost: np.ndarray  # int64
    bad_pages: int = 0
    cut_pages: int = 0

    @property
    def data(self) -> np.ndarray:
        """Indices of the data rows."""
        return np.flatnonzero(self.lost == DATA)


def parse_page_header(text: str, kernel_long: int | None = None) -> PageHeader:
    """The page header layout from the ``events/header_page`` format text, e.g.
    ``field: u64 timestamp; offset:0; size:8; signed:0;`` ... ``field: char data;
    offset:16; size:4080; signed:0;``.  Falls back to the classic layout for ``kernel_long``."""
    fields: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("field:"):
            continue
        parts = [p.strip() for p in line.split(";")]
        name = parts[0].split()[-1]
        kv = dict(p.split(":", 1) for p in parts[1:] if ":" in p)
        try:
            fields.setdefault(name, (int(kv["offset"]), int(kv["size"])))
        except (KeyError, ValueError):
            continue
    long_size = kernel_long or 8
    ts = fields.get("timestamp", (0, 8))
    commit = fields.get("commit", (8, long_size))
    data = fields.get("data", (8 + commit[1], 0))
    return PageHeader(ts[0], ts[1], commit[0], commit[1], data[0])


def walk_pages(block: np.ndarray, page_size: int, hdr: PageHeader, layout: Layout) -> PageRecords:
    """Find every record in ``block`` (a uint8 array of whole pages).

    Padding, TIME_EXTEND and TIME_STAMP records move the clock but are not returned; a
    padding record with a zero delta ends its page (the rest is unused)."""
    for off, size in ((hdr.timestamp_offset, hdr.timestamp_size), (hdr.commit_offset, hdr.commit_size)):
        if size not in (4, 8) or off + size > min(page_size, hdr.data_offset):
            raise ValueError(f"page header field of {size} bytes at {off} does not fit the page header")
    if hdr.data_offset >= page_size:
        raise ValueError(f"page data offset {hdr.data_offset} is past the page size {page_size}")
    off, ln, ts, lost, bad, cut = _walk(block, page_size, hdr.timestamp_offset, hdr.timestamp_size,
                                        hdr.commit_offset, hdr.commit_size, hdr.data_offset,
                                        layout.big_endian)
    return PageRecords(off, ln, ts, lost, int(bad), int(cut))


@njit(cache=True, nogil=True, inline="always")
def _header(word: int, big_endian: bool) -> tuple[int, int]:
    """(``type_len``, ``time_delta``) of a record header word: the C bitfield ``u32
    type_len:5, time_delta:27`` runs from the low bits on a little-endian kernel and from
    the high bits on a big-endian one."""
    if big_endian:
        return (word >> 27) & 0x1F, word & ((1 << 27) - 1)
    return word & 0x1F, word >> 5


@njit(cache=True, nogil=True)
def _walk(block, page_size, ts_off, ts_size, commit_off, commit_size, data_off, big_endian):
    npages = len(block) // page_size
    # a record is at least 4 bytes, and each page may add one lost-events row
    cap = npages * ((page_size - data_off) // 4 + 1)
    offset = np.empty(cap, dtype=np.int64)
    length = np.empty(cap, dtype=np.int64)
    stamp = np.empty(cap, dtype=np.uint64)
    lost = np.empty(cap, dtype=np.int64)
    n = 0
    bad = 0
    cut = 0
    top_bits = np.uint64(0xF8) << np.uint64(56)
    for p in range(npages):
        base = p * page_size
        now = read_word(block, base + ts_off, ts_size, big_endian)
        commit = read_word(block, base + commit_off, commit_size, big_endian)
        size = np.int64(commit & np.uint64(COMMIT_MASK))
        if size > page_size - data_off:
            bad += 1
            continue
        pos = base + data_off
        end = pos + size
        if commit & np.uint64(MISSING_EVENTS):
            count = np.int64(-1)
            if commit & np.uint64(MISSING_STORED) and end + commit_size <= base + page_size:
                count = np.int64(read_word(block, end, commit_size, big_endian) & np.uint64((1 << 63) - 1))
            offset[n] = pos
            length[n] = -1
            stamp[n] = now
            lost[n] = count
            n += 1
        while pos + 4 <= end:
            type_len, delta = _header(np.int64(read_word(block, pos, 4, big_endian)), big_endian)
            if type_len == _PADDING and delta == 0:
                break  # the rest of the page is unused
            if type_len == 0 or type_len >= _PADDING:
                if pos + 8 > end:
                    cut += 1
                    break
                array0 = np.int64(read_word(block, pos + 4, 4, big_endian))
            else:
                array0 = 0
            if type_len == _TIME_EXTEND:
                now += np.uint64(delta) + (np.uint64(array0) << np.uint64(TS_SHIFT))
                pos += 8
                continue
            if type_len == _TIME_STAMP:
                now = (np.uint64(delta) + (np.uint64(array0) << np.uint64(TS_SHIFT))) | (now & top_bits)
                pos += 8
                continue
            if type_len == _PADDING:  # a discarded event: array[0] is its length
                nxt = pos + 4 + array0
                if array0 < 4 or nxt > end:
                    cut += 1
                    break
                now += np.uint64(delta)
                pos = nxt
                continue
            now += np.uint64(delta)
            if type_len == 0:  # array[0] holds the length, itself included
                if array0 < 4:
                    cut += 1
                    break
                data, dlen = pos + 8, (array0 - 4 + 3) & ~3
            else:
                data, dlen = pos + 4, 4 * type_len
            if data + dlen > end:
                cut += 1
                break
            offset[n] = data
            length[n] = dlen
            stamp[n] = now
            lost[n] = -2
            n += 1
            pos = data + dlen
    return offset[:n].copy(), length[:n].copy(), stamp[:n].copy(), lost[:n].copy(), bad, cut
