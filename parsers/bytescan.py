"""Numbers read straight from a chunk's bytes, sixteen bytes per line at a time.

The kernel prints function_graph's numbers with fixed printf formats: the absolute time
``%5lu.%06lu`` (``print_graph_abs_time()``), the duration behind a lead of a space, the
overhead mark and a space, as ``%lu.%03lu`` cut to eight characters, then `` us`` and
padding (``print_graph_duration()``), the CPU as ``%*d)``.  Reading them through string
columns costs a pass over the strings per step (strip, slice, decimal cast, checks).  Here
sixteen bytes of the field are loaded per line as two little-endian 64-bit words, and each
test (which bytes are digits, spaces, the dot) is a handful of integer operations over all
lines at once, giving a per-line bit mask (bit *i* for byte *i*).  Digits are combined eight
at a time by multiply-and-shift steps (SWAR), so values are exact integers.  Every shift is
by a constant; positions that vary per line go through small lookup tables.

Only the shapes the kernel prints are accepted.  A line with anything else (an IRQ arrow in
the duration column, a number too long for the window, a field too near the start or the
end of the chunk) is marked not read, and the caller reads it from its text.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Window", "read_abstime", "read_duration", "read_cpu"]

_U = np.uint64
_HIGH = _U(0x8080808080808080)
_LOW7 = _U(0x7F7F7F7F7F7F7F7F)
_ZEROS = _U(0x3030303030303030)  # eight ASCII '0'
_SPACES = _U(0x2020202020202020)
_GATHER = _U(0x0102040810204080)  # the high bit of byte i to bit 56 + i


def _table(values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


#: trailing zero bits of an 8-bit value (8 for 0)
_CTZ8 = _table([8] + [(v & -v).bit_length() - 1 for v in range(1, 256)])
#: 8-bit masks whose set bits are bits 0 .. j-1 for some j < 8 (leading spaces, then digits)
_PREFIX = np.zeros(256, dtype=bool)
_PREFIX[[(1 << j) - 1 for j in range(8)]] = True
#: 2**(8k) as uint64 (a shift left by k bytes as a multiplication), k = 0..8 (8: all out)
_SHL = np.array([1 << (8 * k) if k < 8 else 0 for k in range(9)], dtype=np.uint64)
#: ASCII '0' in the low k bytes, k = 0..8
_ZFILL = np.array([int.from_bytes(b"0" * k, "little") for k in range(9)], dtype=np.uint64)
#: [c * 256 + m]: whether space mask m of c bytes right-aligned in a word (bytes 8-c .. 7)
#: is some spaces, then at least one non-space to the end
_SPACES_THEN_DIGITS = np.zeros(9 * 256, dtype=bool)
for _c in range(9):
    for _j in range(_c):
        _SPACES_THEN_DIGITS[_c * 256 + (((1 << _j) - 1) << (8 - _c))] = True
#: the low k bytes of a word, k = 0..8
_BELOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
#: the overhead marks of trace_find_mark(), and the blank for none
_MARKS = np.zeros(256, dtype=bool)
_MARKS[[ord(c) for c in " +!#*@$"]] = True


class Window:
    """The 16 bytes at offset ``at[i]`` of ``buf`` for every line i, as two words ``lo``
    (bytes 0-7, byte 0 lowest) and ``hi`` (bytes 8-15); ``inside`` where the whole window
    lies in the buffer (elsewhere the words are zero)."""

    __slots__ = ("lo", "hi", "inside")

    def __init__(self, buf: np.ndarray, at: np.ndarray) -> None:
        at = np.asarray(at, dtype=np.int64)
        self.inside = (at >= 0) & (at <= len(buf) - 16)
        if len(buf) < 16:
            self.lo = self.hi = np.zeros(len(at), dtype=np.uint64)
            return
        # every byte offset of the buffer as a 16-byte record (a view: nothing is copied)
        records = np.ndarray(shape=(len(buf) - 15,), dtype="V16", buffer=buf, strides=(1,))
        words = records[np.where(self.inside, at, 0)].view("<u8").reshape(-1, 2)
        self.lo = np.where(self.inside, words[:, 0], _U(0))
        self.hi = np.where(self.inside, words[:, 1], _U(0))


def _zero_bytes(t: np.ndarray) -> np.ndarray:
    """0x80 in every byte of ``t`` that is zero, 0 elsewhere (exact: no borrow between bytes)."""
    return ~(((t & _LOW7) + _LOW7) | t | _LOW7)


def _digit_bytes(w: np.ndarray) -> np.ndarray:
    """0x80 in every byte of ``w`` that is an ASCII digit, 0 elsewhere."""
    w7 = w & _LOW7
    ge = (w7 | _HIGH) - _ZEROS  # high bit kept where the byte is >= '0'
    le = (_U(0x3939393939393939) | _HIGH) - w7  # high bit kept where the byte is <= '9'
    return ge & le & ~w & _HIGH


def _mask8(flags80: np.ndarray) -> np.ndarray:
    """The 0x80 flags of a word as an 8-bit mask (bit i: byte i)."""
    return (((flags80 >> _U(7)) * _GATHER) >> _U(56)).astype(np.int64)


def _swar8(x: np.ndarray) -> np.ndarray:
    """Eight ASCII digits (the first, most significant, in the lowest byte) to their value."""
    x = x - _ZEROS
    x = (x * _U(10) + (x >> _U(8))) & _U(0x00FF00FF00FF00FF)
    x = (x * _U(100) + (x >> _U(16))) & _U(0x0000FFFF0000FFFF)
    x = (x * _U(10000) + (x >> _U(32))) & _U(0x00000000FFFFFFFF)
    return x.astype(np.int64)


def read_abstime(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The funcgraph-abstime field, ``%5lu.%06lu`` and the space before its ``|``, at byte
    ``start`` of ``buf``, ``length`` bytes long: (time in ns, ok).

    The window is aligned to the field's end: bytes 8-15 hold ``.dddddd `` and bytes 0-7 the
    seconds, right-aligned, with leading spaces (up to eight digits, so up to 10**8 s)."""
    length = np.asarray(length, dtype=np.int64)
    win = Window(buf, start + length - 16)
    ok = win.inside & (length >= 9) & (length <= 16)
    hi = win.hi
    # ".dddddd " in the high word
    ok &= (hi & _U(0xFF)) == _U(ord("."))
    ok &= (hi >> _U(56)) == _U(ord(" "))
    frac = ((hi << _U(8)) & _U(0xFFFFFFFFFFFF0000)) | _U(0x3030)  # "00dddddd"
    ok &= _digit_bytes(frac) == _HIGH
    # the seconds: bytes before the field count as spaces; spaces only before the digits
    outside = np.clip(16 - length, 0, 8)
    lo = (win.lo & ~_BELOW_BYTES[outside]) | (_SPACES & _BELOW_BYTES[outside])
    sp = _zero_bytes(lo ^ _SPACES)
    ok &= _PREFIX[_mask8(sp)]
    secs = lo | (sp >> _U(3))  # ' ' (0x20) + 0x10 = '0'
    ok &= _digit_bytes(secs) == _HIGH
    ns = _swar8(secs) * 1_000_000_000 + _swar8(frac) * 1000
    return np.where(ok, ns, 0), ok


def _word_pair(pattern: dict[int, int]) -> tuple[int, int, int, int]:
    """(pattern lo, pattern hi, mask lo, mask hi) of a 16-byte pattern {position: byte}."""
    val = sum(byte << (8 * at) for at, byte in pattern.items())
    mask = sum(0xFF << (8 * at) for at in pattern)
    m64 = (1 << 64) - 1
    return val & m64, val >> 64, mask & m64, mask >> 64


def _duration_tables():
    """Lookup tables of :func:`read_duration`, indexed by the number's length ``e`` (0-8),
    its dot ``p`` (0-8, 8: none in the word; a dot at or after ``e`` is none) and the
    field's length ``L`` (0-16)."""
    t = {}
    # [L]: bytes 3 .. L-1 are spaces (the blank duration)
    blank = [_word_pair({i: 0x20 for i in range(3, L)}) for L in range(17)]
    t["blank"] = [np.array([b[j] for b in blank], dtype=np.uint64) for j in range(4)]
    # [e * 17 + L]: " us" right after the number, spaces to the end of the field
    tail = []
    tail_ok = []
    for e in range(9):
        for L in range(17):
            good = 1 <= e and e + 6 <= L
            pat = {3 + e: 0x20, 4 + e: ord("u"), 5 + e: ord("s")} if good else {}
            pat.update({i: 0x20 for i in range(6 + e, L)} if good else {})
            tail.append(_word_pair(pat))
            tail_ok.append(good)
    t["tail"] = [np.array([x[j] for x in tail], dtype=np.uint64) for j in range(4)]
    t["tail_ok"] = np.array(tail_ok, dtype=bool)
    # [e * 9 + p]: how the digits read: the number's bytes, the shift that right-aligns
    # them, where the dot goes, the '0' fill, the power of ten to ns, and the fraction size
    keep, shl, above, below, fill, mult = [], [], [], [], [], []
    m64 = (1 << 64) - 1
    for e in range(9):
        for p in range(9):
            k = 8 - e
            has_dot = p < e
            d = p + k
            keep.append((1 << (8 * e)) - 1)
            shl.append((1 << (8 * k)) & m64)
            above.append((~((1 << (8 * (d + 1))) - 1)) & m64 if has_dot else m64)
            below.append(((1 << (8 * d)) - 1) if has_dot else 0)
            fill.append(int.from_bytes(b"0" * (k + has_dot), "little") if k + has_dot <= 8 else 0)
            n_frac = e - p - 1 if has_dot else 0
            mult.append(10 ** (3 - n_frac) if 0 <= n_frac <= 3 else 0)
    for name, col in (("keep", keep), ("shl", shl), ("above", above), ("below", below), ("fill", fill)):
        t[name] = np.array(col, dtype=np.uint64)
    t["mult"] = np.array(mult, dtype=np.int64)
    # [(e * 9 + p) * 256 + digit mask]: the number is digits{1,8}, or digits '.' digits{1,3}
    ok = np.zeros(81 * 256, dtype=bool)
    masks = np.arange(256)
    for e in range(1, 9):
        for p in range(9):
            want = (1 << e) - 1
            if p < e:
                if p < 1 or not 1 <= e - p - 1 <= 3:
                    continue
                want &= ~(1 << p)
            ok[(e * 9 + p) * 256 + masks] = (masks & ((1 << e) - 1)) == want
    t["number_ok"] = ok
    return t


_DUR = _duration_tables()
_DOTS = _U(ord(".") * 0x0101010101010101)


def _matches(lo, hi, tables, index) -> np.ndarray:
    plo, phi, mlo, mhi = (tab[index] for tab in tables)
    return ((lo & mlo) == plo) & ((hi & mhi) == phi)


def read_duration(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The duration column ``print_graph_duration()`` prints, at byte ``start``, ``length``
    bytes: a space, the overhead mark (or a space), a space, then either blanks (no
    duration) or the number of microseconds (``%lu`` and up to three decimals, at most
    eight characters), `` us`` and spaces.

    Returns (duration in ns, blank, ok): ``ok`` where the field has one of those shapes,
    ``blank`` where it is the blank one."""
    length = np.clip(np.asarray(length, dtype=np.int64), 0, 17)
    win = Window(buf, start)
    lo, hi = win.lo, win.hi
    in_range = win.inside & (length >= 3) & (length <= 16)
    L = np.minimum(length, 16)
    lead = ((lo & _U(0xFF00FF)) == _U(0x200020)) & _MARKS[((lo >> _U(8)) & _U(0xFF)).astype(np.intp)]
    ok = in_range & lead
    blank = ok & _matches(lo, hi, _DUR["blank"], L)
    # the number: bytes 3-10 of the field in one word
    num = (lo >> _U(24)) | (hi << _U(40))
    e = _CTZ8[_mask8(_zero_bytes(num ^ _SPACES))]  # up to the first space (8: none)
    p = _CTZ8[_mask8(_zero_bytes(num ^ _DOTS))]  # the first dot (8: none)
    ep = e * 9 + p
    good = ok & _DUR["number_ok"][ep * 256 + _mask8(_digit_bytes(num))]
    tail = e * 17 + L
    good &= _DUR["tail_ok"][tail] & _matches(lo, hi, _DUR["tail"], tail)
    # right-align the number in the word, drop its dot (the digits below it move up a
    # byte), fill with '0': the digits then read as one integer, int * 10**n_frac + frac
    x = (num & _DUR["keep"][ep]) * _DUR["shl"][ep]
    x = (x & _DUR["above"][ep]) | ((x & _DUR["below"][ep]) << _U(8)) | _DUR["fill"][ep]
    ns = _swar8(x) * _DUR["mult"][ep]
    return np.where(good, ns, 0), blank, blank | good


def read_cpu(buf: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The funcgraph-cpu field ``%*d) `` at byte ``start``: (cpu, bytes up to and with the
    ``)``, ok)."""
    win = Window(buf, start)
    sp = _zero_bytes(win.lo ^ _SPACES)
    par = _mask8(_zero_bytes(win.lo ^ _U(ord(")") * 0x0101010101010101)))
    c = _CTZ8[par]  # the ')'
    c8 = np.clip(c, 0, 8)
    # the bytes before it right-aligned in the word, '0' below them, spaces made '0'
    x = ((win.lo & _BELOW_BYTES[c8]) * _SHL[8 - c8]) | _ZFILL[8 - c8]
    xsp = _zero_bytes(x ^ _SPACES)
    ok = win.inside & (c >= 1) & (c < 8) & _SPACES_THEN_DIGITS[c8 * 256 + _mask8(xsp)]
    x = x | (xsp >> _U(3))
    ok &= _digit_bytes(x) == _HIGH
    return np.where(ok, _swar8(x), 0), c + 1, ok
