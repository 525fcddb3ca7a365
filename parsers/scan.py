"""The compiled scanning core: loops over the bytes of a chunk, shared by the text parsers.

A parser's grammar is a numba function (``@njit(cache=True, nogil=True)``) over the chunk's
bytes as a ``uint8`` array; it calls the readers here to find fields and read numbers in
place, and records names as (start, end) offsets into the chunk.  :func:`strings` turns
those offsets into a string column, decoding each distinct value once (traces repeat a few
hundred names millions of times).  The loops release the GIL, so chunks are scanned in
parallel threads.

Invariants every reader keeps, whatever the bytes: it never reads outside ``[at, end)``
(every index that comes from the input is checked against the line's end), and it reports
failure instead of guessing (the caller then hands the line to its general path, which
decides every odd case and counts what it cannot read).

Compiled code is cached beside this file, or in the user's cache directory when the
installation is not writable (numba's own fallback), so its cost is paid once per install;
a later process loads each function it calls from the cache at its first call, and a
small input is read by the same functions interpreted, without numba (:mod:`tracekit.jit`).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from tracekit.jit import njit

from tracekit.frames import masked  # noqa: E402

__all__ = ["buffer", "line_bounds", "skip_spaces", "skip_back_spaces", "printable", "read_uint", "read_decimal",
           "find_byte", "find_bytes", "digits_end", "matches_at", "read_hex", "read_word", "reserve", "write_bytes", "write_uint", "write_int", "write_hex",
           "intern", "dictionary", "strings", "texts", "ints", "nulls", "map_chunks",
           "PARSE_THREADS"]

#: chunks of one input scanned at the same time (the compiled loops release the GIL)
PARSE_THREADS = 2

SPACE = 32
DOT = 46
ZERO = 48
NINE = 57


def buffer(raw: bytes) -> np.ndarray:
    """The chunk's bytes as the ``uint8`` array the compiled loops read (no copy)."""
    return np.frombuffer(raw, dtype=np.uint8)


@njit(cache=True, nogil=True)
def line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each line of ``buf`` starts and ends (its newline, or the end of the bytes
    for a last line without one)."""
    n = 0
    for i in range(len(buf)):
        if buf[i] == 10:
            n += 1
    last = len(buf) > 0 and buf[len(buf) - 1] != 10
    starts = np.empty(n + int(last), dtype=np.int64)
    ends = np.empty(n + int(last), dtype=np.int64)
    j = 0
    s = 0
    for i in range(len(buf)):
        if buf[i] == 10:
            starts[j] = s
            ends[j] = i
            j += 1
            s = i + 1
    if last:
        starts[j] = s
        ends[j] = len(buf)
    return starts, ends


@njit(cache=True, nogil=True, inline="always")
def skip_spaces(buf: np.ndarray, at: int, end: int) -> int:
    """The first position at or after ``at`` (before ``end``) that is not a space."""
    while at < end and buf[at] == SPACE:
        at += 1
    return at


@njit(cache=True, nogil=True, inline="always")
def skip_back_spaces(buf: np.ndarray, start: int, end: int) -> int:
    """``end`` moved back over the spaces before it (not before ``start``)."""
    while end > start and buf[end - 1] == SPACE:
        end -= 1
    return end


@njit(cache=True, nogil=True, inline="always")
def printable(c: int) -> bool:
    """A printable ASCII byte other than the space: text around it is stripped alike
    whatever the definition of white space (a general path's ``\\s`` or the kernel's)."""
    return 33 <= c <= 126


@njit(cache=True, nogil=True, inline="always")
def find_byte(buf: np.ndarray, at: int, end: int, byte: int) -> int:
    """The position of the first ``byte`` in ``[at, end)``, or -1."""
    while at < end:
        if buf[at] == byte:
            return at
        at += 1
    return -1


@njit(cache=True, nogil=True, inline="always")
def matches_at(buf: np.ndarray, at: int, end: int, needle: np.ndarray) -> bool:
    """Whether ``needle`` (a ``uint8`` array) stands at ``at``, wholly before ``end``."""
    n = len(needle)
    if at < 0 or at + n > end:
        return False
    for k in range(n):
        if buf[at + k] != needle[k]:
            return False
    return True


@njit(cache=True, nogil=True)
def find_bytes(buf: np.ndarray, at: int, end: int, needle: np.ndarray) -> int:
    """The position of the first ``needle`` (a ``uint8`` array) wholly in ``[at, end)``, or -1."""
    n = len(needle)
    for i in range(at, end - n + 1):
        k = 0
        while k < n and buf[i + k] == needle[k]:
            k += 1
        if k == n:
            return i
    return -1


@njit(cache=True, nogil=True, inline="always")
def digits_end(buf: np.ndarray, at: int, end: int) -> int:
    """The end of the run of decimal digits at ``at`` (before ``end``); ``at`` when there is
    none.  For grammars that check a number's shape before reading its value."""
    while at < end and ZERO <= buf[at] <= NINE:
        at += 1
    return at


@njit(cache=True, nogil=True, inline="always")
def read_uint(buf: np.ndarray, at: int, end: int) -> tuple[int, int]:
    """The decimal digits at ``at`` (before ``end``) as an integer: (value, position after
    them); the position is ``at`` when there is no digit.  At most 18 digits are read (a
    longer number stops there, and the caller sees a non-digit where it expects an end)."""
    v = 0
    i = at
    while i < end and i - at < 18:
        c = int(buf[i])  # (a byte widened before the arithmetic)
        if c < ZERO or c > NINE:
            break
        v = v * 10 + (c - ZERO)
        i += 1
    return v, i


@njit(cache=True, nogil=True, inline="always")
def read_decimal(buf: np.ndarray, at: int, end: int, digits: int) -> tuple[int, int, bool]:
    """``123`` or ``123.456`` at ``at`` as an exact integer times 10**``digits`` (the
    kernel's ``%lu.%06lu`` timestamps with 9, ``usecs.nsecs`` durations with 3): (value,
    position after it, ok).  Not ok when there is no integer part, one too long for 63
    bits, a dot without digits after it, or more fraction digits than ``digits`` (the kernel's printing truncates; the
    caller's general path decides)."""
    whole, i = read_uint(buf, at, end)
    if i == at or i - at > 18 - digits or (i < end and ZERO <= buf[i] <= NINE):
        return 0, i, False  # (no integer part, or one that would overflow)
    frac = 0
    nfrac = 0
    if i < end and buf[i] == DOT:
        j = i + 1
        frac, i = read_uint(buf, j, end)
        nfrac = i - j
        if nfrac == 0 or nfrac > digits:
            return 0, i, False
    for _ in range(digits - nfrac):
        frac *= 10
    for _ in range(digits):
        whole *= 10
    return whole + frac, i, True


@njit(cache=True, nogil=True, inline="always")
def read_hex(buf: np.ndarray, at: int, end: int) -> tuple[np.uint64, int]:
    """The hexadecimal digits at ``at`` (before ``end``, no ``0x``) as an integer: (value,
    position after them); the position is ``at`` when there is no digit.  At most 16
    digits are read (a longer number stops there)."""
    v = np.uint64(0)
    i = at
    while i < end and i - at < 16:
        c = int(buf[i])
        if ZERO <= c <= NINE:
            d = c - ZERO
        elif 97 <= c <= 102:
            d = c - 87
        elif 65 <= c <= 70:
            d = c - 55
        else:
            break
        v = (v << np.uint64(4)) | np.uint64(d)
        i += 1
    return v, i


@njit(cache=True, nogil=True, inline="always")
def read_word(buf: np.ndarray, at: int, size: int, big_endian: bool) -> np.uint64:
    """The unsigned ``size``-byte integer (1 to 8) at ``at`` in the given byte order, as a
    binary format stores it (the caller has checked ``at + size <= len(buf)``)."""
    v = np.uint64(0)
    for k in range(size):
        b = np.uint64(buf[at + k] if big_endian else buf[at + size - 1 - k])
        v = (v << np.uint64(8)) | b
    return v


@njit(cache=True, nogil=True)
def reserve(out: np.ndarray, at: int, need: int) -> np.ndarray:
    """``out``, or a copy of its first ``at`` bytes twice as large, with room for ``need``
    more bytes at ``at`` (output buffers whose size is not known in advance)."""
    if at + need <= len(out):
        return out
    grown = np.empty(max(2 * len(out), at + need), dtype=np.uint8)
    grown[:at] = out[:at]
    return grown


@njit(cache=True, nogil=True, inline="always")
def write_bytes(out: np.ndarray, at: int, src: np.ndarray, start: int, end: int) -> int:
    """Copy ``src[start:end]`` to ``out`` at ``at`` (room reserved): the position after it."""
    for k in range(start, end):
        out[at] = src[k]
        at += 1
    return at


@njit(cache=True, nogil=True, inline="always")
def write_uint(out: np.ndarray, at: int, v: np.uint64) -> int:
    """``v`` in decimal (``%llu``) at ``at`` (20 bytes reserved): the position after it."""
    n = 1
    t = v // np.uint64(10)
    while t != 0:
        n += 1
        t = t // np.uint64(10)
    for k in range(n - 1, -1, -1):
        out[at + k] = ZERO + np.uint8(v % np.uint64(10))
        v = v // np.uint64(10)
    return at + n


@njit(cache=True, nogil=True)
def write_int(out: np.ndarray, at: int, v: np.int64) -> int:
    """``v`` in decimal (``%lld``) at ``at`` (20 bytes reserved): the position after it."""
    if v < 0:
        out[at] = 45  # '-'
        # (-v of the most negative value stays negative as int64; as uint64 it is right)
        return write_uint(out, at + 1, np.uint64(0) - np.uint64(v))
    return write_uint(out, at, np.uint64(v))


@njit(cache=True, nogil=True)
def write_hex(out: np.ndarray, at: int, v: np.uint64) -> int:
    """``v`` as ``0x%llx`` at ``at`` (18 bytes reserved): the position after it."""
    out[at] = ZERO
    out[at + 1] = 120  # 'x'
    at += 2
    n = 1
    while n < 16 and (v >> np.uint64(4 * n)) != 0:
        n += 1
    for k in range(n - 1, -1, -1):
        d = np.uint8((v >> np.uint64(4 * k)) & np.uint64(15))
        out[at] = d + (ZERO if d < 10 else 87)
        at += 1
    return at


@njit(cache=True, nogil=True)
def _same(buf: np.ndarray, a: int, b: int, n: int) -> bool:
    for k in range(n):
        if buf[a + k] != buf[b + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def intern(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary-encode the byte strings ``buf[starts[i]:ends[i]]`` (rows with ``starts[i]
    < 0`` have none): (code of each row, -1 for none; the row where each code first
    appears).  An open-addressing hash table over the bytes, so each row costs one hash
    and, on a hit, one comparison."""
    n = len(starts)
    size = 1024
    while size < 2 * n:
        size *= 2
    mask = size - 1
    table = np.full(size, -1, dtype=np.int64)  # code at each slot
    first = np.empty(n, dtype=np.int64)
    codes = np.full(n, -1, dtype=np.int64)
    ncodes = 0
    for i in range(n):
        a = starts[i]
        if a < 0:
            continue
        b = ends[i]
        h = np.uint64(14695981039346656037)
        for k in range(a, b):
            h = (h ^ np.uint64(buf[k])) * np.uint64(1099511628211)
        slot = np.int64(h & np.uint64(mask))
        while True:
            c = table[slot]
            if c < 0:
                table[slot] = ncodes
                first[ncodes] = i
                codes[i] = ncodes
                ncodes += 1
                break
            r = first[c]
            if ends[r] - starts[r] == b - a and _same(buf, starts[r], a, b - a):
                codes[i] = c
                break
            slot = (slot + 1) & mask
    return codes, first[:ncodes].copy()


def _offsets(a: np.ndarray) -> np.ndarray:
    """Offsets as the one array type the compiled readers are compiled for (contiguous
    int64): a row or column of a scanner's offset table may be strided, and numba compiles
    and loads a function once per array layout it is called with."""
    return np.ascontiguousarray(a, dtype=np.int64)


def dictionary(raw: bytes, starts: np.ndarray, ends: np.ndarray, name: str) -> tuple[pl.Series, pl.Series]:
    """(codes, values) of the byte ranges ``raw[starts[i]:ends[i]]``: ``values`` (named
    ``name``) holds each distinct one once, decoded (UTF-8; Latin-1 for bytes that are
    not), ``codes`` (UInt32) its index per row, null where ``starts[i] < 0``."""
    starts, ends = _offsets(starts), _offsets(ends)
    codes, first = intern(buffer(raw), starts, ends)
    values = pl.Series(name, [_decode(raw[a:b]) for a, b in zip(starts[first].tolist(), ends[first].tolist())],
                       dtype=pl.String)
    return ints("_i", codes, pl.UInt32), values


def strings(raw: bytes, starts: np.ndarray, ends: np.ndarray, name: str) -> pl.Series:
    """The string column of the byte ranges ``raw[starts[i]:ends[i]]`` (null where
    ``starts[i] < 0``), each distinct value decoded once."""
    codes, values = dictionary(raw, starts, ends, name)
    return values.gather(codes)


def _decode(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


@njit(cache=True, nogil=True)
def _gather(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The byte ranges ``buf[starts[i]:ends[i]]`` copied end to end: (bytes, Arrow offsets
    (one more than rows), validity (False where ``starts[i] < 0``), whether any byte is
    outside ASCII)."""
    n = len(starts)
    offsets = np.empty(n + 1, dtype=np.int64)
    valid = np.empty(n, dtype=np.bool_)
    total = 0
    for i in range(n):
        offsets[i] = total
        valid[i] = starts[i] >= 0
        if starts[i] >= 0 and ends[i] > starts[i]:
            total += ends[i] - starts[i]
    offsets[n] = total
    out = np.empty(total, dtype=np.uint8)
    high = False
    for i in range(n):
        a = starts[i]
        if a < 0:
            continue
        o = offsets[i]
        for k in range(ends[i] - a):
            c = buf[a + k]
            out[o + k] = c
            if c >= 128:
                high = True
    return out, offsets, valid, high


def texts(raw: bytes, starts: np.ndarray, ends: np.ndarray, name: str) -> pl.Series:
    """The string column of the byte ranges ``raw[starts[i]:ends[i]]`` (null where
    ``starts[i] < 0``) for text that rarely repeats (an event's printed fields): the bytes
    are copied end to end in compiled code and handed to Arrow as they are, never decoded
    one value at a time.  UTF-8 as printed; a value that is not is read as Latin-1."""
    data, offsets, valid, high = _gather(buffer(raw), _offsets(starts), _offsets(ends))
    n = len(valid)
    mask = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), mask)
    if high:
        try:
            arr.validate(full=True)
        except pa.ArrowInvalid:
            values = [None if not v else _decode(bytes(data[offsets[i]:offsets[i + 1]]))
                      for i, v in enumerate(valid.tolist())]
            return pl.Series(name, values, dtype=pl.String)
    return pl.Series(name, arr, dtype=pl.String)


def ints(name: str, values: np.ndarray, dtype: pl.DataType) -> pl.Series:
    """``values`` as a column, null where negative (the scanners' "none")."""
    return masked(name, values, values >= 0, dtype)


def nulls(name: str, n: int, dtype: pl.DataType) -> pl.Series:
    """A column of ``n`` nulls."""
    return pl.Series(name, [], dtype=dtype).extend_constant(None, n)


def map_chunks(chunks: Iterable, scan: Callable, ctx, threads: int | None = None) -> Iterator:
    """``scan(chunk, child_ctx)`` over ``chunks`` in ``threads`` threads, results yielded in
    file order with each child context merged back into ``ctx`` as its result is taken
    (:meth:`~tracekit.parsers.base.ParseContext.child`).  For chunks that can be read apart
    from each other; a None result yields nothing.  ``threads`` defaults to
    :data:`PARSE_THREADS` (read at each call)."""
    threads = threads or PARSE_THREADS
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tracekit-scan")
    ahead: deque = deque()
    try:
        for chunk in chunks:
            sub = ctx.child()
            ahead.append((pool.submit(scan, chunk, sub), sub))
            while len(ahead) > threads:
                fut, sub = ahead.popleft()
                out = fut.result()
                ctx.merge(sub)
                if out is not None:
                    yield out
        while ahead:
            fut, sub = ahead.popleft()
            out = fut.result()
            ctx.merge(sub)
            if out is not None:
                yield out
    finally:
        for fut, _ in ahead:
            fut.cancel()
        pool.shutdown(wait=True)
