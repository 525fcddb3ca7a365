"""Walking ring-buffer sub-buffers ("pages") as the kernel wrote them, with numpy over whole
blocks of pages.

A page is ``struct buffer_data_page`` (kernel/trace/ring_buffer.c): a u64 timestamp, a
``local_t commit`` (bytes of data, plus the MISSING_EVENTS / MISSING_STORED flags), then
``struct ring_buffer_event`` records, each a u32 header (``type_len:5, time_delta:27``)
followed by its data.  Record lengths are only known from the headers, so the chain of
record starts in a page is found by pointer doubling over every 4-byte word of the block
(``next[i]`` = where a record starting at word i would end), which touches each word a
logarithmic number of times in numpy instead of stepping record by record in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import (
    COMMIT_MASK,
    MISSING_EVENTS,
    MISSING_STORED,
    TS_SHIFT,
    Layout,
    PageHeader,
    RingBufferType,
)

__all__ = ["PageRecords", "parse_page_header", "walk_pages"]


@dataclass
class PageRecords:
    """The data records of a block of pages, in page order then in-page order.

    ``offset``/``length`` locate each record's payload in the block (bytes); ``ts`` is its
    absolute time in clock units (page timestamp plus the deltas before it).  ``lost_*``
    describe pages flagged MISSING_EVENTS: the page's index, its timestamp, how many events
    were lost (-1 when the kernel did not store the count) and the index of the first record
    after the loss."""

    offset: np.ndarray  # int64
    length: np.ndarray  # int64
    ts: np.ndarray  # uint64
    lost_page: np.ndarray
    lost_ts: np.ndarray
    lost_count: np.ndarray  # int64, -1 = unknown
    lost_before: np.ndarray  # record index the loss precedes
    bad_pages: int = 0  # pages whose commit size does not fit the page


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


def _field(block: np.ndarray, page_starts: np.ndarray, off: int, size: int, layout: Layout) -> np.ndarray:
    """A scalar field at byte ``off`` of every page, as uint64."""
    idx = page_starts[:, None] + np.arange(off, off + size)
    return block[idx].copy().view(layout.dtype(size)).ravel().astype(np.uint64)


def walk_pages(block: np.ndarray, page_size: int, hdr: PageHeader, layout: Layout) -> PageRecords:
    """Find every data record in ``block`` (a uint8 array of whole pages).

    Padding, TIME_EXTEND and TIME_STAMP records move the clock but are not returned; a
    padding record with a zero delta ends its page (the rest is unused)."""
    npages = len(block) // page_size
    page_starts = np.arange(npages, dtype=np.int64) * page_size
    page_ts = _field(block, page_starts, hdr.timestamp_offset, hdr.timestamp_size, layout)
    commit = _field(block, page_starts, hdr.commit_offset, hdr.commit_size, layout)
    size = (commit & COMMIT_MASK).astype(np.int64)
    bad = size > page_size - hdr.data_offset
    size[bad] = 0
    missing = (commit & MISSING_EVENTS) != 0
    stored = missing & ((commit & MISSING_STORED) != 0)

    # Every aligned word of the block, as if a record header started there.
    nwords = len(block) // 4
    words = block[: nwords * 4].view(layout.dtype(4)).astype(np.int64)
    after = np.empty_like(words)  # the word after each (array[0] of a record)
    after[:-1] = words[1:]
    after[-1] = 0
    type_len = layout.record_type_len(words)
    delta = layout.record_time_delta(words)
    rec_bytes = np.where(type_len == 0, 8 + ((after - 4 + 3) & ~3), 4 + 4 * type_len)
    rec_bytes = np.where(type_len == RingBufferType.PADDING, 4 + after, rec_bytes)
    rec_bytes = np.where(type_len >= RingBufferType.TIME_EXTEND, 8, rec_bytes)
    pad_end = (type_len == RingBufferType.PADDING) & (delta == 0)

    # next[i]: word index of the record after one starting at i; SINK past the page's data.
    word_idx = np.arange(nwords, dtype=np.int64)
    page_of = word_idx * 4 // page_size
    data_end_word = (page_starts[page_of] + hdr.data_offset + size[page_of]) // 4
    sink = nwords
    nxt = word_idx + np.maximum(rec_bytes, 4) // 4
    nxt = np.where((nxt >= data_end_word) | pad_end | (rec_bytes < 4), sink, nxt)
    nxt = np.append(nxt, sink)

    starts = (page_starts + hdr.data_offset) // 4
    starts = starts[size > 0]
    reach = np.zeros(nwords + 1, dtype=bool)
    reach[starts] = True
    jump = nxt
    # After k rounds, reach holds the first 2^k records of every page's chain; a round that
    # adds nothing means every chain is complete.
    while True:
        hits = jump[np.flatnonzero(reach)]
        hits = hits[hits != sink]
        if not (~reach[hits]).any():
            break
        reach[hits] = True
        jump = jump[jump]
    rec = np.flatnonzero(reach[:nwords])

    tl = type_len[rec]
    d = delta[rec].astype(np.uint64)
    ext = after[rec].astype(np.uint64) << np.uint64(TS_SHIFT)
    is_ext = tl == RingBufferType.TIME_EXTEND
    is_abs = tl == RingBufferType.TIME_STAMP
    d = np.where(is_ext | is_abs, d + ext, d)
    rpage = rec * 4 // page_size
    # Timestamps: page time plus a running sum of deltas, restarted by absolute stamps.
    seg_start = np.ones(len(rec), dtype=bool)
    seg_start[1:] = (rpage[1:] != rpage[:-1]) | is_abs[1:]
    base = np.where(is_abs, d | (page_ts[rpage] & np.uint64(0xF8 << 56)), page_ts[rpage])
    contrib = np.where(is_abs, np.uint64(0), d)
    csum = np.cumsum(contrib, dtype=np.uint64)
    seg_id = np.cumsum(seg_start) - 1
    first = np.flatnonzero(seg_start)
    before = csum[first] - contrib[first]
    ts = base[first][seg_id] + (csum - before[seg_id])

    is_data = tl <= RingBufferType.DATA_TYPE_LEN_MAX
    hdr_bytes = np.where(tl == 0, 8, 4)
    offset = rec * 4 + hdr_bytes
    length = rec_bytes[rec] - hdr_bytes
    # A record cut by the page's end (damaged page) is dropped with the rest of the page.
    ok = is_data & (offset + length <= page_starts[rpage] + hdr.data_offset + size[rpage])
    data_idx = np.flatnonzero(ok)

    lost_page = np.flatnonzero(missing)
    lost_count = np.full(len(lost_page), -1, dtype=np.int64)
    st = stored[lost_page]
    if st.any():
        ls = hdr.commit_size
        pos = page_starts[lost_page[st]] + hdr.data_offset + size[lost_page[st]]
        fits = pos + ls <= page_starts[lost_page[st]] + page_size
        vals = np.full(int(st.sum()), -1, dtype=np.int64)
        if fits.any():
            vals[fits] = _field(block, pos[fits], 0, ls, layout).astype(np.int64)
        lost_count[st] = vals
    data_pages = rpage[data_idx]
    lost_before = np.searchsorted(data_pages, lost_page, side="left")
    return PageRecords(
        offset=offset[data_idx],
        length=length[data_idx],
        ts=ts[data_idx],
        lost_page=lost_page,
        lost_ts=page_ts[lost_page],
        lost_count=lost_count,
        lost_before=lost_before,
        bad_pages=int(bad.sum()),
    )
