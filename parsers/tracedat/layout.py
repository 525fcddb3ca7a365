"""On-disk layouts of trace-cmd's ``trace.dat`` (versions 6 and 7), apart from any logic.

The numbers come from trace-cmd's own documentation (Documentation/trace-cmd/
trace-cmd.dat.v6.5.txt and trace-cmd.dat.v7.5.txt) and, for the ring-buffer pages, from the
kernel's kernel/trace/ring_buffer.c (``struct buffer_data_page``, ``struct
ring_buffer_event``, ``enum ring_buffer_type``).  Endianness and long size are parameters of
:class:`Layout`, chosen once from the file's initial block; nothing else in the reader branches
on them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = [
    "MAGIC",
    "Layout",
    "PageHeader",
    "Option",
    "Section",
    "RingBufferType",
    "COMMIT_MASK",
    "MISSING_EVENTS",
    "MISSING_STORED",
    "TS_SHIFT",
    "SECTION_COMPRESSED",
    "FLYRECORD_TAG",
    "LATENCY_TAG",
    "OPTIONS_TAG",
    "HEADER_PAGE_TAG",
    "HEADER_EVENT_TAG",
]

#: First ten bytes of every trace.dat: 0x17 0x08 0x44 then "tracing".
MAGIC = b"\x17\x08Dtracing"

#: v6 tags (fixed-width, NUL-terminated) between the sequential parts of the file.
OPTIONS_TAG = b"options  \0"
FLYRECORD_TAG = b"flyrecord\0"
LATENCY_TAG = b"latency  \0"
HEADER_PAGE_TAG = b"header_page\0"
HEADER_EVENT_TAG = b"header_event\0"

#: Bit 0 of a v7 section header's flags: the section body is compressed.
SECTION_COMPRESSED = 1

#: ``buffer_data_page.commit``: the low 27 bits count the bytes of event data on the page.
COMMIT_MASK = (1 << 27) - 1
#: Set in ``commit`` when events were lost (overwritten or dropped) before this page.
MISSING_EVENTS = 1 << 31
#: Set with MISSING_EVENTS when the lost count is stored as a long right after the data.
MISSING_STORED = 1 << 30
#: Width of ``ring_buffer_event.time_delta``; TIME_EXTEND carries the bits above it.
TS_SHIFT = 27


class RingBufferType(IntEnum):
    """``enum ring_buffer_type`` (kernel/trace/ring_buffer.c): values of ``type_len`` above
    the data lengths.  ``type_len`` 0 means the data length is in ``array[0]``; 1..28 mean
    ``type_len * 4`` bytes of data follow the header."""

    DATA_TYPE_LEN_MAX = 28
    PADDING = 29
    TIME_EXTEND = 30
    TIME_STAMP = 31


class Option(IntEnum):
    """trace-cmd option ids (the same numbering in v6 and v7)."""

    DONE = 0
    DATE = 1
    CPUSTAT = 2
    BUFFER = 3
    TRACECLOCK = 4
    UNAME = 5
    HOOK = 6
    OFFSET = 7
    CPUCOUNT = 8
    VERSION = 9
    PROCMAPS = 10
    TRACEID = 11
    TIME_SHIFT = 12
    GUEST = 13
    TSC2NSEC = 14
    STRINGS = 15
    HEADER_INFO = 16
    FTRACE_EVENTS = 17
    EVENT_FORMATS = 18
    KALLSYMS = 19
    PRINTK = 20
    CMDLINES = 21
    BUFFER_TEXT = 22
    BTF_FILE = 23
    LAST_BOOT_INFO = 24
    MODULES_FILE = 25


class Section(IntEnum):
    """v7 section ids: a section carries the id of the option that points at it."""

    OPTIONS = 0
    BUFFER = 3  # flyrecord data of one instance
    STRINGS = 15
    HEADER_INFO = 16
    FTRACE_EVENTS = 17
    EVENT_FORMATS = 18
    KALLSYMS = 19
    PRINTK = 20
    CMDLINES = 21
    BUFFER_TEXT = 22  # latency text


@dataclass(frozen=True)
class Layout:
    """The structures of one file, for its endianness and long size.

    ``big_endian`` and ``long_size`` come from the initial block; ``long_size`` there is the
    long of the *recording userspace*.  The kernel's long (which sizes the ring-buffer
    page's ``commit`` field) comes from the header_page format instead and is passed to
    :meth:`page_header` by the reader.
    """

    big_endian: bool
    long_size: int

    @property
    def order(self) -> str:
        """struct / numpy byte-order character."""
        return ">" if self.big_endian else "<"

    # -- fixed-size scalars ---------------------------------------------------------------
    @property
    def u16(self) -> struct.Struct:
        return struct.Struct(self.order + "H")

    @property
    def u32(self) -> struct.Struct:
        return struct.Struct(self.order + "I")

    @property
    def u64(self) -> struct.Struct:
        return struct.Struct(self.order + "Q")

    @property
    def page_size(self) -> struct.Struct:
        """u32 page size right after the endianness and long-size bytes."""
        return self.u32

    # -- v6 and v7 headers -----------------------------------------------------------------
    @property
    def option_header(self) -> struct.Struct:
        """An option: u16 id, u32 size, then ``size`` bytes of data."""
        return struct.Struct(self.order + "HI")

    @property
    def section_header(self) -> struct.Struct:
        """v7 section: u16 id, u16 flags, u32 string id (description), u64 size."""
        return struct.Struct(self.order + "HHIQ")

    @property
    def compression_header(self) -> struct.Struct:
        """A compressed section or chunk: u32 compressed size, u32 uncompressed size."""
        return struct.Struct(self.order + "II")

    @property
    def cpu_data_v6(self) -> struct.Struct:
        """v6 flyrecord: per CPU, u64 offset and u64 size of its pages."""
        return struct.Struct(self.order + "QQ")

    @property
    def cpu_data_v7(self) -> struct.Struct:
        """v7 BUFFER option: per CPU, u32 cpu id, u64 offset, u64 size."""
        return struct.Struct(self.order + "IQQ")

    @property
    def tsc2nsec(self) -> struct.Struct:
        """TSC2NSEC option: u32 multiplier, u32 shift, u64 offset."""
        return struct.Struct(self.order + "IIQ")

    # -- numpy views for whole-page decoding -------------------------------------------------
    def dtype(self, size: int, signed: bool = False) -> np.dtype:
        """The numpy integer type of ``size`` bytes in the file's byte order."""
        kind = "i" if signed else "u"
        return np.dtype(f"{self.order}{kind}{size}")

    def record_type_len(self, words: np.ndarray) -> np.ndarray:
        """``ring_buffer_event.type_len`` of header words (u32 already in host order).

        The C bitfield ``u32 type_len:5, time_delta:27`` is laid out from the low bits on a
        little-endian kernel and from the high bits on a big-endian one."""
        if self.big_endian:
            return (words >> 27) & 0x1F
        return words & 0x1F

    def record_time_delta(self, words: np.ndarray) -> np.ndarray:
        """``ring_buffer_event.time_delta`` of header words (see :meth:`record_type_len`)."""
        if self.big_endian:
            return words & ((1 << 27) - 1)
        return words >> 5

    def record_header_word(self, type_len: int, time_delta: int) -> int:
        """Encode one event header word (the inverse of the two methods above)."""
        if self.big_endian:
            return ((type_len & 0x1F) << 27) | (time_delta & ((1 << 27) - 1))
        return (type_len & 0x1F) | ((time_delta & ((1 << 27) - 1)) << 5)


@dataclass(frozen=True)
class PageHeader:
    """``struct buffer_data_page`` as the header_page format file describes it: where the
    page timestamp and the ``commit`` word are, and where event data starts."""

    timestamp_offset: int
    timestamp_size: int
    commit_offset: int
    commit_size: int  # the kernel's sizeof(long)
    data_offset: int
