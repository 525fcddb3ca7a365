"""Decoding the payloads of ring-buffer records into event-schema columns, in one compiled
loop over the records of a window (all CPUs, in the order ``trace-cmd report`` shows them).

The event formats are first flattened into a :class:`FieldTable`: per event id, its fields
in format order, each with a *render kind* saying how ``trace-cmd report -R`` prints it
(``name=value``: decimal by size and sign, ``0x%llx`` for pointers, the kernel symbol for
code addresses, C strings from fixed arrays or ``__data_loc``/``__rel_loc`` slots, other
arrays as ``ARRAY[0f, 00, ...]``), and the *role* of the ftrace tracers' own records
(kernel/trace/trace_entries.h: ``function``, ``funcgraph_entry``, ``funcgraph_exit``,
``print``).  :func:`decode` then reads, for every record, the common fields (type, pid,
flags, preempt count), the role's numbers and the body text, written end to end into one
byte buffer that becomes an Arrow string column without a per-record Python object.

Every read is checked against the record's own payload: a field past its end reads as
zero (or empty), so a damaged record yields odd values, never a read outside the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from tracekit.jit import njit

from ..scan import read_word, reserve, write_bytes, write_hex, write_int, write_uint
from .events import Conversion, EventFormat, Field, field_conversions

__all__ = ["Render", "Role", "RecordKind", "FieldTable", "Common", "Decoded", "decode", "type_ids"]


class Render(IntEnum):
    """How one field's value is printed by ``trace-cmd report -R`` (libtraceevent's
    ``print_field()``): by the print fmt's conversion when it passes the field as it is
    (PRINTF), else by the field's type."""

    UINT = 0  # %llu
    INT = 1  # %lld of the value sign-extended from its size (a char prints %1d)
    HEX = 2  # 0x%llx: a pointer, or an unsigned long
    HEX32 = 3  # 0x%x: a signed 4-byte long
    SHORT = 4  # %2d: a signed 2-byte field
    PRINTF = 5  # the print fmt's own conversion (see Conversion)
    STRING = 6  # char name[N]: the C string in the array, if printable
    ARRAY = 7  # any other fixed array: ARRAY[xx, xx, ...]
    LOC_STRING = 8  # __data_loc char[]: u32 slot, offset low 16 bits, length high 16
    LOC_ARRAY = 9
    REL_STRING = 10  # __rel_loc: the offset counts from the end of the slot
    REL_ARRAY = 11
    REST_STRING = 12  # char buf[] (or size 0): the rest of the record
    REST_ARRAY = 13
    ZERO = 14  # an integer of a size no C type has: printed as 0


#: Conversion flags as bits of FieldTable.cv_flags.
LEFT, PLUS, SPACE, ALT, ZEROPAD = 1, 2, 4, 8, 16
_FLAG_BITS = {"-": LEFT, "+": PLUS, " ": SPACE, "#": ALT, "0": ZEROPAD}
#: Conversion characters of FieldTable.cv_conv beside printf's own.
SYMBOL_OFFSET, SYMBOL, POINTER = ord("S"), ord("s"), ord("p")


class Role(IntEnum):
    """What an ftrace tracer's own record means (a tracepoint's is its body alone)."""

    EVENT = 0
    FUNCTION = 1  # function tracer: ip, parent_ip
    ENTRY = 2  # funcgraph_entry: func, depth
    EXIT = 3  # funcgraph_exit: func, depth, calltime, rettime
    PRINT = 4  # trace_printk of a constant string: the buf field's text


class RecordKind(IntEnum):
    """Per-record codes of :class:`Decoded` ``kind`` (mapped to tracekit.schema.Kind)."""

    EVENT = 0
    FUNCTION = 1
    ENTRY = 2
    EXIT = 3
    LOST = 4
    UNKNOWN = 5  # an event id with no format in the file


@dataclass(frozen=True)
class Common:
    """Where the common fields sit in every payload (offset, size; size 0 = absent)."""

    type_off: int
    type_size: int
    pid_off: int
    pid_size: int
    flags_off: int
    flags_size: int
    preempt_off: int
    preempt_size: int

    @classmethod
    def of(cls, fmt: EventFormat) -> "Common":
        def at(name: str) -> tuple[int, int]:
            f = fmt.field(name)
            return (f.offset, f.size) if f is not None and 1 <= f.size <= 8 else (0, 0)

        return cls(*at("common_type"), *at("common_pid"), *at("common_flags"),
                   *at("common_preempt_count"))


def _render(f: Field, conv: Conversion | None) -> int:
    """The render kind of a field (libtraceevent: ``print_field()``, ``print_field_raw()``)."""
    if f.data_loc or f.rel_loc or f.array_len is not None:
        # strings: arrays of char, u8 or s8 (printed as text when printable)
        text = any(t in f.type for t in ("char", "u8", "s8"))
        if f.data_loc or f.rel_loc:
            return (Render.LOC_STRING if f.data_loc else Render.REL_STRING) + (0 if text else 1)
        if f.size == 0 or f.array_len == 0:
            return Render.REST_STRING if text else Render.REST_ARRAY
        return Render.STRING if text else Render.ARRAY
    if f.size not in (1, 2, 4, 8):
        return Render.ZERO
    if conv is not None:
        return Render.PRINTF
    is_long = "long" in f.type
    if f.is_pointer:
        return Render.HEX
    if f.signed:
        if f.size == 4:
            return Render.HEX32 if is_long else Render.INT
        return Render.SHORT if f.size == 2 else Render.INT
    return Render.HEX if is_long else Render.UINT


def _role(fmt: EventFormat) -> tuple[int, dict[str, str]]:
    """The role of a format and the fields it reads (by role name)."""
    have = {f.name for f in fmt.fields}
    if fmt.system != "ftrace":
        return Role.EVENT, {}
    if fmt.name == "function" and "ip" in have:
        return Role.FUNCTION, {"func": "ip", "parent": "parent_ip"}
    if fmt.name == "funcgraph_entry" and {"func", "depth"} <= have:
        return Role.ENTRY, {"func": "func", "depth": "depth"}
    if fmt.name == "funcgraph_exit" and {"func", "depth", "calltime", "rettime"} <= have:
        return Role.EXIT, {"func": "func", "depth": "depth", "calltime": "calltime", "rettime": "rettime"}
    if fmt.name == "print" and "buf" in have:
        return Role.PRINT, {"buf": "buf"}
    return Role.EVENT, {}


_ARRAY = np.frombuffer(b"ARRAY[", dtype=np.uint8)
_UNKNOWN = np.frombuffer(b"[UNKNOWN TYPE ", dtype=np.uint8)
_CPU = np.frombuffer(b"CPU:", dtype=np.uint8)
_NIL = np.frombuffer(b"(nil)", dtype=np.uint8)
_DROPPED = np.frombuffer(b" EVENTS DROPPED]", dtype=np.uint8)

#: the role fields, in the column order of FieldTable.role_fields
ROLE_FIELDS = ("func", "parent", "depth", "calltime", "rettime", "buf")


class FieldTable:
    """Event formats flattened into arrays for :func:`decode`: format ``i``'s fields are
    rows ``first[i]:first[i] + count[i]``; ``by_id[eid]`` is the format of an event id
    (-1 for none); ``role_fields[i, k]`` the field row of role field ``ROLE_FIELDS[k]``."""

    def __init__(self, formats: list[EventFormat]):
        self.formats = formats
        max_id = max((f.id for f in formats), default=0)
        self.by_id = np.full(max_id + 1, -1, dtype=np.int32)
        kinds, offs, sizes, signed, name_at = [], [], [], [], []
        cv = {k: [] for k in ("conv", "bits", "flags", "width", "prec", "has_0x")}
        names = bytearray()
        self.first = np.zeros(len(formats), dtype=np.int64)
        self.count = np.zeros(len(formats), dtype=np.int64)
        self.role = np.zeros(len(formats), dtype=np.int64)
        self.role_fields = np.full((len(formats), len(ROLE_FIELDS)), -1, dtype=np.int64)
        # the most bytes a body can take besides the payload's own bytes (each of which
        # prints as at most 4: "xx, "), and its symbol fields (each a kallsyms name)
        self.bound = np.zeros(len(formats), dtype=np.int64)
        self.symbols = np.zeros(len(formats), dtype=np.int64)
        self.variable = np.zeros(len(formats), dtype=np.int64)
        for i, fmt in enumerate(formats):
            if self.by_id[fmt.id] < 0:
                self.by_id[fmt.id] = i
            self.first[i], self.count[i] = len(kinds), len(fmt.fields)
            role, uses = _role(fmt)
            self.role[i] = role
            convs = field_conversions(fmt)
            for f in fmt.fields:
                for k, r in enumerate(ROLE_FIELDS):
                    if uses.get(r) == f.name and self.role_fields[i, k] < 0:
                        self.role_fields[i, k] = len(kinds)
                c = convs.get(f.name)
                kinds.append(_render(f, c))
                c = c if kinds[-1] == Render.PRINTF else None
                cv["conv"].append(ord(c.conv[-1]) if c else 0)
                cv["bits"].append(c.bits if c else 64)
                cv["flags"].append(sum(_FLAG_BITS[x] for x in set(c.flags)) if c else 0)
                cv["width"].append(c.width if c else 0)
                cv["prec"].append(c.precision if c else -1)
                cv["has_0x"].append(bool(c and c.has_0x))
                self.bound[i] += len(f.name) + 2 + 48 + (max(c.width, c.precision) if c else 0)
                self.symbols[i] += bool(c) and c.conv in ("pS", "ps")
                self.variable[i] += Render.STRING <= kinds[-1] <= Render.REST_ARRAY
                offs.append(f.offset)
                sizes.append(f.size)
                signed.append(f.signed)
                name_at.append(len(names))
                names += f.name.encode("latin-1") + b"="
        name_at.append(len(names))
        self.kind = np.array(kinds, dtype=np.int64)
        self.offset = np.array(offs, dtype=np.int64)
        self.size = np.array(sizes, dtype=np.int64)
        self.signed = np.array(signed, dtype=np.bool_)
        self.name_at = np.array(name_at, dtype=np.int64)
        self.names = np.frombuffer(bytes(names) or b"\0", dtype=np.uint8)
        self.cv_conv = np.array(cv["conv"], dtype=np.int64)
        self.cv_bits = np.array(cv["bits"], dtype=np.int64)
        self.cv_flags = np.array(cv["flags"], dtype=np.int64)
        self.cv_width = np.array(cv["width"], dtype=np.int64)
        self.cv_prec = np.array(cv["prec"], dtype=np.int64)
        self.cv_0x = np.array(cv["has_0x"], dtype=np.bool_)

    def arrays(self) -> tuple:
        return (self.by_id, self.first, self.count, self.role, self.role_fields, self.kind,
                self.offset, self.size, self.signed, self.name_at, self.names, self.bound,
                self.symbols, self.variable, self.cv_conv, self.cv_bits, self.cv_flags,
                self.cv_width, self.cv_prec, self.cv_0x)


@dataclass
class Decoded:
    """Per-record columns of a window (see :func:`decode`)."""

    kind: np.ndarray  # int8 RecordKind
    fmt: np.ndarray  # int64 format index, -1 none
    type_id: np.ndarray  # int64 common_type
    pid: np.ndarray  # int64
    flags: np.ndarray  # int64: common_flags | common_preempt_count << 8; -1 none
    ts: np.ndarray  # int64: the record's time (funcgraph_exit: rettime)
    func: np.ndarray  # uint64 address (FUNCTION, ENTRY, EXIT)
    parent: np.ndarray  # uint64 address (FUNCTION with parent_ip)
    depth: np.ndarray  # int64
    dur: np.ndarray  # int64 (EXIT: rettime - calltime)
    body: np.ndarray  # uint8: the bodies end to end
    body_at: np.ndarray  # int64: record i's body is body[body_at[i]:body_at[i + 1]]


@njit(cache=True, nogil=True)
def type_ids(buf, off, length, lost, type_off, type_size, big_endian):
    """``common_type`` of each data record (-1 for lost-events rows and payloads too short)."""
    out = np.full(len(off), -1, dtype=np.int64)
    for i in range(len(off)):
        if lost[i] == -2 and type_size > 0 and type_off + type_size <= length[i]:
            out[i] = np.int64(read_word(buf, off[i] + type_off, type_size, big_endian))
    return out


def decode(buf: np.ndarray, off: np.ndarray, length: np.ndarray, lost: np.ndarray, ts: np.ndarray,
           cpu: np.ndarray, ids: np.ndarray, common: Common, table: FieldTable, big_endian: bool,
           sym_addr: np.ndarray, sym_start: np.ndarray, sym_end: np.ndarray, sym_text: np.ndarray) -> Decoded:
    """Decode the records at ``off``/``length`` of ``buf`` (``lost`` as in PageRecords, ``ts``
    their times in ns, ``cpu`` their CPUs, ``ids`` from :func:`type_ids`)."""
    out = _decode(buf, off, length, lost, ts, cpu, ids, common.pid_off, common.pid_size,
                  common.flags_off, common.flags_size, common.preempt_off, common.preempt_size,
                  big_endian, table.arrays(), sym_addr, sym_start, sym_end, sym_text)
    return Decoded(*out)


@njit(cache=True, nogil=True, inline="always")
def _value(buf, rec, rlen, foff, fsize, signed, big_endian) -> np.int64:
    """A fixed integer field (0 when it runs past the payload), sign-extended when signed;
    as int64 bits (an unsigned 64-bit value keeps its bits)."""
    if foff < 0 or foff + fsize > rlen or fsize < 1 or fsize > 8:
        return np.int64(0)
    v = read_word(buf, rec + foff, fsize, big_endian)
    if signed and fsize < 8 and (v >> np.uint64(8 * fsize - 1)) & np.uint64(1):
        v = v | (np.uint64(0xFFFFFFFFFFFFFFFF) << np.uint64(8 * fsize))
    return np.int64(v)


@njit(cache=True, nogil=True)
def _symbol(sym_addr, v) -> int:
    """Index of the function containing address ``v``, -1 for none: libtraceevent's
    find_func(), which takes an address past the last symbol only when it is the symbol's
    own."""
    n = len(sym_addr)
    if n == 0 or v < sym_addr[0]:
        return -1
    i = np.searchsorted(sym_addr, np.uint64(v), side="right") - 1
    if i == n - 1 and v != sym_addr[i]:
        return -1
    return i


@njit(cache=True, nogil=True, inline="always")
def _digits(mag, base) -> int:
    """Digits of ``mag`` in base 8, 10 or 16 (each a constant divisor: no division
    instruction)."""
    n = 1
    if base == 10:
        while mag >= np.uint64(10):
            mag = mag // np.uint64(10)
            n += 1
    else:
        shift = np.uint64(4 if base == 16 else 3)
        while mag >> shift:
            mag = mag >> shift
            n += 1
    return n


@njit(cache=True, nogil=True)
def _write_printf(out, at, v, conv, bits, flags, width, prec) -> int:
    """An integer conversion as C's printf writes it (``%d %i %u %x %X %o %c`` with flags,
    width and precision) of ``v`` cast to its length modifier's ``bits``."""
    u = np.uint64(v)
    if bits < 64:
        u = u & ((np.uint64(1) << np.uint64(bits)) - np.uint64(1))
    if conv == 99:  # 'c'
        pad = max(width - 1, 0)
        if not flags & LEFT:
            for _ in range(pad):
                out[at] = 32
                at += 1
        out[at] = np.uint8(u & np.uint64(0xFF))
        at += 1
        if flags & LEFT:
            for _ in range(pad):
                out[at] = 32
                at += 1
        return at
    sign = 0
    if conv == 100 or conv == 105:  # 'd', 'i': the value is signed
        if bits < 64 and (u >> np.uint64(bits - 1)) & np.uint64(1):
            u = u | ~((np.uint64(1) << np.uint64(bits)) - np.uint64(1))
        if np.int64(u) < 0:
            sign = 45
            u = np.uint64(0) - u
        elif flags & PLUS:
            sign = 43
        elif flags & SPACE:
            sign = 32
    base = 16 if conv == 120 or conv == 88 else 8 if conv == 111 else 10
    ndig = 0 if (u == 0 and prec == 0) else _digits(u, base)
    zeros = max(prec - ndig, 0)
    prefix = 0
    if flags & ALT and base == 16 and u != 0:
        prefix = 2
    elif flags & ALT and base == 8 and zeros == 0 and (ndig == 0 or u != 0):
        zeros = 1
    pad = max(width - (sign != 0) - prefix - zeros - ndig, 0)
    if not flags & LEFT and not (flags & ZEROPAD and prec < 0):
        for _ in range(pad):
            out[at] = 32
            at += 1
        pad = 0
    if sign:
        out[at] = sign
        at += 1
    if prefix:
        out[at] = 48
        out[at + 1] = conv  # x or X
        at += 2
    if not flags & LEFT:
        zeros += pad
        pad = 0
    for _ in range(zeros):
        out[at] = 48
        at += 1
    if base == 10:
        for k in range(ndig - 1, -1, -1):
            out[at + k] = 48 + np.uint8(u % np.uint64(10))
            u = u // np.uint64(10)
    else:
        shift = np.uint64(4 if base == 16 else 3)
        low = np.uint64(base - 1)
        for k in range(ndig - 1, -1, -1):
            d = np.uint8(u & low)
            out[at + k] = d + (48 if d < 10 else (55 if conv == 88 else 87))
            u = u >> shift
    at += ndig
    for _ in range(pad):
        out[at] = 32
        at += 1
    return at


@njit(cache=True, nogil=True)
def _write_pointer(out, at, v, conv, sym_addr, sym_start, sym_end, sym_text) -> int:
    """The kernel's ``%pS`` (function+0xoffset), ``%ps`` (function) and plain ``%p``
    (glibc's: ``(nil)`` for zero), as libtraceevent prints them."""
    u = np.uint64(v)
    if conv == POINTER:
        if u == 0:
            return write_bytes(out, at, _NIL, 0, len(_NIL))
        return write_hex(out, at, u)
    s = _symbol(sym_addr, u)
    if s < 0:
        return write_hex(out, at, u)
    at = write_bytes(out, at, sym_text, sym_start[s], sym_end[s])
    if conv == SYMBOL_OFFSET:
        out[at] = 43  # '+'
        at = write_hex(out, at + 1, u - sym_addr[s])
    return at


@njit(cache=True, nogil=True)
def _span(buf, rec, rlen, kind, foff, fsize, big_endian) -> tuple[int, int]:
    """(start, end) in ``buf`` of a string or array field's bytes, within the payload."""
    if kind == Render.STRING or kind == Render.ARRAY:
        a, n = foff, fsize
    elif kind == Render.REST_STRING or kind == Render.REST_ARRAY:
        a, n = foff, rlen - foff
    else:  # __data_loc / __rel_loc: a u32 slot
        if foff < 0 or foff + 4 > rlen:
            return rec, rec
        loc = np.int64(read_word(buf, rec + foff, 4, big_endian))
        a, n = loc & 0xFFFF, loc >> 16
        if kind == Render.REL_STRING or kind == Render.REL_ARRAY:
            a += foff + fsize
    a = max(a, 0)
    n = max(min(n, rlen - a), 0)
    return rec + a, rec + a + n


@njit(cache=True, nogil=True)
def _printable(buf, a, b) -> bool:
    """libtraceevent's is_printable_array(): every byte before the first NUL prints."""
    for p in range(a, b):
        c = buf[p]
        if c == 0:
            return True
        if not (32 <= c <= 126 or 9 <= c <= 13):
            return False
    return True


@njit(cache=True, nogil=True)
def _write_field(out, at, buf, rec, rlen, kind, foff, fsize, signed, big_endian, conv, bits,
                 flags, width, prec, has_0x, sym_addr, sym_start, sym_end, sym_text) -> int:
    """Write one field's printed value at ``at`` (room reserved by the caller): the
    position after it."""
    if kind <= Render.PRINTF or kind == Render.ZERO:
        v = _value(buf, rec, rlen, foff, fsize, signed, big_endian) if kind != Render.ZERO else np.int64(0)
        if kind == Render.INT:
            return write_int(out, at, v)
        if kind == Render.UINT or kind == Render.ZERO:
            return write_uint(out, at, np.uint64(v))
        if kind == Render.HEX:
            return write_hex(out, at, np.uint64(v))
        if kind == Render.HEX32:
            return write_hex(out, at, np.uint64(v) & np.uint64(0xFFFFFFFF))
        if kind == Render.SHORT:
            if -10 < v < 10 and v >= 0:
                out[at] = 32
                at += 1
            return write_int(out, at, v)
        if has_0x:
            out[at] = 48
            out[at + 1] = 120
            at += 2
        if conv == SYMBOL_OFFSET or conv == SYMBOL or conv == POINTER:
            return _write_pointer(out, at, v, conv, sym_addr, sym_start, sym_end, sym_text)
        return _write_printf(out, at, v, conv, bits, flags, width, prec)
    a, b = _span(buf, rec, rlen, kind, foff, fsize, big_endian)
    text = kind == Render.STRING or kind == Render.LOC_STRING or kind == Render.REL_STRING or kind == Render.REST_STRING
    if text and _printable(buf, a, b):
        e = a
        while e < b and buf[e] != 0:  # a C string ends at its first NUL
            e += 1
        return write_bytes(out, at, buf, a, e)
    at = write_bytes(out, at, _ARRAY, 0, len(_ARRAY))
    for p in range(a, b):
        if p > a:
            out[at] = 44  # ', '
            out[at + 1] = 32
            at += 2
        hi, lo = buf[p] >> 4, buf[p] & 15
        out[at] = hi + (48 if hi < 10 else 87)
        out[at + 1] = lo + (48 if lo < 10 else 87)
        at += 2
    out[at] = 93  # ']'
    return at + 1


@njit(cache=True, nogil=True)
def _write_unknown(out, at, eid):
    """``[UNKNOWN TYPE N]``, as trace-cmd prints an event id the file has no format for."""
    at = write_bytes(out, at, _UNKNOWN, 0, len(_UNKNOWN))
    at = write_int(out, at, np.int64(eid))
    out[at] = 93
    return at + 1


@njit(cache=True, nogil=True)
def _write_lost(out, at, cpu, count):
    """``CPU:N [M EVENTS DROPPED]`` (``CPU:N [EVENTS DROPPED]`` when the count was not
    stored), as trace-cmd prints a page whose events were lost."""
    at = write_bytes(out, at, _CPU, 0, len(_CPU))
    at = write_int(out, at, np.int64(cpu))
    out[at] = 32
    out[at + 1] = 91  # '['
    at += 2
    if count >= 0:
        at = write_int(out, at, np.int64(count))
        at = write_bytes(out, at, _DROPPED, 0, len(_DROPPED))
    else:
        at = write_bytes(out, at, _DROPPED, 1, len(_DROPPED))
    return at


@njit(cache=True, nogil=True)
def _decode(buf, off, length, lost, ts, cpu, ids, pid_off, pid_size, fl_off, fl_size, pc_off, pc_size,
            big_endian, table, sym_addr, sym_start, sym_end, sym_text):
    (by_id, first, count, role, role_fields, fkind, foff, fsize, fsigned, name_at, names, bound, nsym,
     nvar, cv_conv, cv_bits, cv_flags, cv_width, cv_prec, cv_0x) = table
    sym_max = 0
    for k in range(len(sym_start)):
        sym_max = max(sym_max, sym_end[k] - sym_start[k])
    n = len(off)
    kind = np.zeros(n, dtype=np.int8)
    fmt = np.full(n, -1, dtype=np.int64)
    pid = np.full(n, -1, dtype=np.int64)
    flags = np.full(n, -1, dtype=np.int64)
    when = ts.copy()
    func = np.zeros(n, dtype=np.uint64)
    parent = np.zeros(n, dtype=np.uint64)
    depth = np.full(n, -1, dtype=np.int64)
    dur = np.full(n, -1, dtype=np.int64)
    body_at = np.zeros(n + 1, dtype=np.int64)
    out = np.empty(max(64, 48 * n), dtype=np.uint8)
    at = 0
    for i in range(n):
        body_at[i] = at
        rec, rlen = off[i], length[i]
        out = reserve(out, at, 64)
        if lost[i] != -2:
            kind[i] = RecordKind.LOST
            at = _write_lost(out, at, cpu[i], lost[i])
            continue
        if pid_size:
            pid[i] = _value(buf, rec, rlen, pid_off, pid_size, True, big_endian)
        if fl_size and pc_size:
            flags[i] = ((_value(buf, rec, rlen, fl_off, fl_size, False, big_endian) & 0xFF)
                        | ((_value(buf, rec, rlen, pc_off, pc_size, False, big_endian) & 0xFF) << 8))
        eid = ids[i]
        f = by_id[eid] if 0 <= eid < len(by_id) else -1
        fmt[i] = f
        if f < 0:
            kind[i] = RecordKind.UNKNOWN
            at = _write_unknown(out, at, eid)
            continue
        out = reserve(out, at, bound[f] + nsym[f] * sym_max + (nvar[f] + 1) * 4 * max(rlen, 0) + 16)
        r = role[f]
        rf = role_fields[f]
        if r == Role.FUNCTION:
            kind[i] = RecordKind.FUNCTION
        elif r == Role.ENTRY:
            kind[i] = RecordKind.ENTRY
        elif r == Role.EXIT:
            kind[i] = RecordKind.EXIT
        if r == Role.FUNCTION or r == Role.ENTRY or r == Role.EXIT:
            j = rf[0]
            func[i] = np.uint64(_value(buf, rec, rlen, foff[j], fsize[j], fsigned[j], big_endian))
            if rf[1] >= 0:
                j = rf[1]
                parent[i] = np.uint64(_value(buf, rec, rlen, foff[j], fsize[j], fsigned[j], big_endian))
            if rf[2] >= 0:
                j = rf[2]
                depth[i] = _value(buf, rec, rlen, foff[j], fsize[j], fsigned[j], big_endian)
            if r == Role.EXIT:
                j, k = rf[3], rf[4]
                call = _value(buf, rec, rlen, foff[j], fsize[j], fsigned[j], big_endian)
                ret = _value(buf, rec, rlen, foff[k], fsize[k], fsigned[k], big_endian)
                dur[i] = ret - call
                when[i] = ret
        if r == Role.PRINT:  # the text alone, without its newline
            j = rf[5]
            start = at
            at = _write_field(out, at, buf, rec, rlen, fkind[j], foff[j], fsize[j], fsigned[j],
                              big_endian, cv_conv[j], cv_bits[j], cv_flags[j], cv_width[j], cv_prec[j],
                              cv_0x[j], sym_addr, sym_start, sym_end, sym_text)
            if at > start and out[at - 1] == 10:
                at -= 1
            continue
        for j in range(first[f], first[f] + count[f]):
            if j > first[f]:
                out[at] = 32
                at += 1
            at = write_bytes(out, at, names, name_at[j], name_at[j + 1])
            at = _write_field(out, at, buf, rec, rlen, fkind[j], foff[j], fsize[j], fsigned[j],
                              big_endian, cv_conv[j], cv_bits[j], cv_flags[j], cv_width[j], cv_prec[j],
                              cv_0x[j], sym_addr, sym_start, sym_end, sym_text)
    body_at[n] = at
    return kind, fmt, ids, pid, flags, when, func, parent, depth, dur, out[:at], body_at
