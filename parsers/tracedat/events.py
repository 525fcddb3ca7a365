"""Decoding event payloads with the format files a trace.dat carries.

Each ``events/<system>/<event>/format`` text gives the event's id and its fields by offset,
size and signedness (:func:`parse_format`); :mod:`.decode` reads the payloads with them.
Here too: the kernel symbols, printk formats and saved cmdlines the file carries, the
latency flag characters, and ``trace_printk()`` argument buffers formatted with their
printk format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numba import njit


from ..scan import line_bounds, read_hex
from .layout import Layout

__all__ = [
    "Field",
    "EventFormat",
    "parse_format",
    "Symbols",
    "parse_kallsyms",
    "parse_printk_formats",
    "parse_cmdlines",
    "irq_flags",
    "vbin_printf_columns",
]


@dataclass
class Field:
    """One ``field:TYPE NAME; offset:O; size:S; signed:G;`` line of a format file."""

    name: str
    type: str
    offset: int
    size: int
    signed: bool
    array_len: int | None = None  # "char comm[16]" -> 16; "u32 buf[]" -> 0
    data_loc: bool = False  # __data_loc: u32 (offset low 16 bits, length high 16 bits)
    rel_loc: bool = False  # __rel_loc: the offset counts from the end of this field

    @property
    def is_string(self) -> bool:
        return self.type.replace("const ", "").strip().startswith("char") and (
            self.array_len is not None or self.data_loc or self.rel_loc
        )

    @property
    def is_pointer(self) -> bool:
        return "*" in self.type


@dataclass
class EventFormat:
    """An event's format file: its id, system, name, fields and print fmt."""

    id: int
    system: str
    name: str
    common: list[Field] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)
    print_fmt: str = ""

    def field(self, name: str) -> Field | None:
        for f in self.common + self.fields:
            if f.name == name:
                return f
        return None

    @property
    def fixed_size(self) -> int:
        return max((f.offset + f.size for f in self.common + self.fields), default=0)


#: Fields that hold a kernel text address, shown as the function's name.
SYMBOL_FIELDS = frozenset({"ip", "parent_ip", "func", "call_site", "caller", "function"})

_FIELD_RE = re.compile(
    r"field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);(?:\s*signed:(?P<sig>-?\d+);)?"
)


def parse_format(text: str, system: str) -> EventFormat | None:
    """Parse one format file text; None when it has no name or ID."""
    name = re.search(r"^name:\s*(\S+)", text, re.M)
    eid = re.search(r"^ID:\s*(\d+)", text, re.M)
    if not name or not eid:
        return None
    ev = EventFormat(int(eid.group(1)), system, name.group(1))
    body = text.split("format:", 1)[-1]
    fmt = body.split("print fmt:", 1)
    ev.print_fmt = fmt[1].strip() if len(fmt) > 1 else ""
    for m in _FIELD_RE.finditer(fmt[0]):
        decl = m.group("decl").strip()
        data_loc = decl.startswith("__data_loc")
        rel_loc = decl.startswith("__rel_loc")
        if data_loc or rel_loc:
            decl = decl.split(None, 1)[1]
        am = re.match(r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<n>[^\]]*)\])?\s*$", decl)
        if not am:
            continue
        ftype, fname, n = am.group("type"), am.group("name"), am.group("n")
        if (data_loc or rel_loc) and fname and ftype.endswith("[]"):
            ftype = ftype[:-2]
        arr = None
        if n is not None:
            arr = int(n) if n.strip().isdigit() else 0
        elif int(m.group("size")) == 0 and not (data_loc or rel_loc):
            arr = 0  # older kernels: "char buf; size:0" is the rest of the record
        f = Field(fname, ftype.strip(), int(m.group("off")), int(m.group("size")),
                  (m.group("sig") or "0") not in ("0",), arr, data_loc, rel_loc)
        (ev.common if fname.startswith("common_") else ev.fields).append(f)
    return ev


# --------------------------------------------------------------------------------------------
# what the file carries besides the formats
# --------------------------------------------------------------------------------------------

@dataclass
class Symbols:
    """Text symbols from the file's copy of ``/proc/kallsyms``, sorted by address: each
    name is ``text[start:end]`` (bytes of the kallsyms text, decoded only when asked)."""

    addr: np.ndarray  # uint64
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    text: np.ndarray  # uint8

    def index(self, values: np.ndarray) -> np.ndarray:
        """The symbol containing each address (the nearest at or below it), -1 for none
        (an address below the table, or zero)."""
        v = np.asarray(values).astype(np.uint64)
        if len(self.addr) == 0:
            return np.full(len(v), -1, dtype=np.int64)
        i = np.searchsorted(self.addr, v, side="right").astype(np.int64) - 1
        i[v == 0] = -1
        return i

    def name(self, i: int) -> str:
        return bytes(self.text[self.start[i]:self.end[i]]).decode("latin-1")

    def resolve(self, values: np.ndarray) -> np.ndarray:
        """The function containing each address, or None outside the symbol table."""
        idx = self.index(values)
        out = np.full(len(idx), None, dtype=object)
        for i in np.unique(idx[idx >= 0]).tolist():
            out[idx == i] = self.name(i)
        return out


def parse_kallsyms(text: bytes) -> Symbols:
    """``addr type name [module]`` lines -> :class:`Symbols` (text symbols only, zero
    addresses (kptr_restrict) dropped; of aliases at one address the first listed is kept)."""
    buf = np.frombuffer(text, dtype=np.uint8) if text else np.zeros(0, np.uint8)
    addr, start, end = _kallsyms_text_symbols(buf)
    order = np.argsort(addr, kind="stable")
    addr, start, end = addr[order], start[order], end[order]
    first = np.ones(len(addr), dtype=bool)
    first[1:] = addr[1:] != addr[:-1]
    return Symbols(addr[first], start[first], end[first], buf)


@njit(cache=True, nogil=True)
def _kallsyms_text_symbols(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(address, name start, name end) of every ``t``/``T``/``w``/``W`` line with a non-zero
    address, in file order."""
    starts, ends = line_bounds(buf)
    n = len(starts)
    addr = np.empty(n, dtype=np.uint64)
    nstart = np.empty(n, dtype=np.int64)
    nend = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        a, e = starts[i], ends[i]
        v, at = read_hex(buf, a, e)
        if at == a or at == e or not _blank(buf[at]) or v == 0:
            continue
        while at < e and _blank(buf[at]):
            at += 1
        if at + 1 >= e or buf[at] not in (116, 84, 119, 87) or not _blank(buf[at + 1]):  # tTwW
            continue
        at += 1
        while at < e and _blank(buf[at]):
            at += 1
        b = at
        while at < e and not _blank(buf[at]):
            at += 1
        if at == b:
            continue
        addr[k], nstart[k], nend[k] = v, b, at
        k += 1
    return addr[:k].copy(), nstart[:k].copy(), nend[:k].copy()


@njit(cache=True, nogil=True, inline="always")
def _blank(c: int) -> bool:
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


def parse_printk_formats(text: bytes) -> dict[int, str]:
    """``0xaddr : "fmt"`` lines (``printk_formats``) -> {address: format}."""
    out: dict[int, str] = {}
    for line in text.decode("latin-1").splitlines():
        addr, sep, fmt = line.partition(" : ")
        if not sep:
            continue
        try:
            a = int(addr.strip(), 16)
        except ValueError:
            continue
        fmt = fmt.strip()
        if len(fmt) >= 2 and fmt[0] == '"' and fmt[-1] == '"':
            fmt = fmt[1:-1]
        out[a] = fmt.replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"')
    return out


def parse_cmdlines(text: bytes) -> pl.DataFrame:
    """``saved_cmdlines`` (``pid comm`` lines) -> frame of pid, comm."""
    s = pl.Series("l", text.decode("latin-1").splitlines(), dtype=pl.String)
    g = s.str.extract_groups(r"^\s*(\d+)\s+(.*)$")
    df = pl.DataFrame({"pid": g.struct.field("1"), "comm": g.struct.field("2")}).drop_nulls()
    return df.with_columns(pl.col("pid").cast(pl.Int32)).unique("pid", keep="last")


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------

def irq_flags(flags: np.ndarray, preempt: np.ndarray, nosupport_is_lazy: bool) -> pl.Series:
    """The latency-format flag characters of ``common_flags`` / ``common_preempt_count``
    (``enum trace_flag_type`` in kernel/trace/trace.h): irqs-off, need-resched,
    hard/soft-irq, preempt depth and migrate-disable depth, e.g. ``d.h2.``."""
    f = flags.astype(np.int64)
    irqs = np.where(f & 0x01, "d", np.where((f & 0x02) & (not nosupport_is_lazy), "X", "."))
    nr, pr = (f & 0x04) != 0, (f & 0x20) != 0
    lazy = ((f & 0x02) != 0) & nosupport_is_lazy
    resched = np.where(nr & pr, "N", np.where(nr, "n", np.where(pr, "p", np.where(lazy, "L", "."))))
    nmi, hard, soft = (f & 0x40) != 0, (f & 0x08) != 0, (f & 0x10) != 0
    ctx = np.where(nmi & hard, "Z", np.where(nmi, "z", np.where(hard & soft, "H",
                   np.where(hard, "h", np.where(soft, "s", ".")))))
    hexd = np.array(list("0123456789abcdef"))
    p = preempt.astype(np.int64)
    depth = np.where(p & 0x0F, hexd[p & 0x0F], ".")
    mig = np.where((p >> 4) & 0x0F, hexd[(p >> 4) & 0x0F], ".")
    return pl.Series("flags", np.char.add(np.char.add(np.char.add(np.char.add(irqs, resched), ctx), depth), mig))


_CONV_RE = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?"
                      r"(?P<len>hh|h|ll|l|L|z|j|t)?(?P<conv>p[sSfFBKx]?|[diouxXcsfegEG%])")


def vbin_printf_columns(fmt: str, mat: np.ndarray, size: np.ndarray, layout: Layout,
                        symbols: Symbols | None = None) -> list[str]:
    """Format every ``trace_printk()`` record of one format at once.

    ``fmt`` is from printk_formats; each row of ``mat`` holds a record's argument buffer
    (``size`` bytes of it), packed by the kernel's ``vbin_printf()`` (lib/vsprintf.c):
    integers and pointers each aligned to their own size, ``%s`` strings copied inline with
    their NUL.  A string moves every later argument by its own length, so the read position
    is an array with one entry per record and each conversion is a column operation."""
    k, width = mat.shape
    cols = np.arange(width)[None, :]
    pos = np.zeros(k, dtype=np.int64)
    pieces: list[np.ndarray] = []
    last = 0

    def take(nbytes: int, signed: bool) -> np.ndarray:
        # save_arg(): 8-byte values go in as two u32s, so nothing aligns beyond 4 bytes
        nonlocal pos
        align = min(nbytes, 4)
        pos = (pos + align - 1) // align * align
        idx = np.minimum(pos[:, None] + np.arange(nbytes), max(width - 1, 0))
        raw = np.take_along_axis(mat, idx, axis=1) if width else np.zeros((k, nbytes), np.uint8)
        raw[pos + nbytes > size] = 0  # past the record's arguments
        pos = pos + nbytes
        return np.ascontiguousarray(raw).view(layout.dtype(nbytes, signed)).ravel()

    for m in _CONV_RE.finditer(fmt):
        lit = fmt[last:m.start()]
        last = m.end()
        conv, ln = m.group("conv"), m.group("len") or ""
        if conv == "%":
            pieces.append(np.full(k, lit + "%", dtype=object))
            continue
        pieces.append(np.full(k, lit, dtype=object))
        spec = "%" + (m.group("flags") or "")
        if m.group("width") == "*":
            take(4, True)  # a per-record width: consumed, not applied
        else:
            spec += m.group("width") or ""
        if m.group("prec") == "*":
            take(4, True)
        elif m.group("prec"):
            spec += "." + m.group("prec")
        if conv == "s":
            nul = (mat == 0) & (cols >= pos[:, None]) & (cols < size[:, None])
            end = np.where(nul.any(axis=1), nul.argmax(axis=1), size)
            n = np.maximum(end - pos, 0)
            w = int(n.max(initial=0))
            idx = np.minimum(pos[:, None] + np.arange(max(w, 1)), max(width - 1, 0))
            sub = np.take_along_axis(mat, idx, axis=1) if width else np.zeros((k, 1), np.uint8)
            sub[np.arange(sub.shape[1])[None, :] >= n[:, None]] = 0
            strs = np.char.decode(np.ascontiguousarray(sub).view(f"S{sub.shape[1]}").ravel(), "latin-1")
            pieces.append(np.char.mod(spec + "s", strs).astype(object))
            pos = end + 1
        elif conv[0] == "p":
            v = take(layout.long_size, False)
            hexs = np.char.mod("0x%x", v.astype(np.uint64)).astype(object)
            if conv[1:] in ("s", "S", "f", "F", "B") and symbols is not None:
                names = symbols.resolve(v)
                hexs = np.where(names == None, hexs, names)  # noqa: E711
            pieces.append(hexs)
        elif conv == "c":  # save_arg(char)
            v = take(1, False)
            pieces.append(np.char.mod(spec + "c", v.astype(np.int64)).astype(object))
        elif conv in "diouxX":
            nbytes = {"ll": 8, "L": 8, "j": 8, "l": layout.long_size, "z": layout.long_size,
                      "t": layout.long_size, "h": 2, "hh": 1}.get(ln, 4)
            signed = conv in "di"
            v = take(nbytes, signed)
            out = v.astype(np.int64 if signed else np.uint64)
            pieces.append(np.char.mod(spec + ("d" if conv == "i" else conv), out).astype(object))
        else:  # floating point never reaches the kernel's printf
            pieces.append(np.full(k, m.group(0), dtype=object))
    pieces.append(np.full(k, fmt[last:], dtype=object))
    out = pieces[0]
    for piece in pieces[1:]:
        out = out + piece
    return list(out)
