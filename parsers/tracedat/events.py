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
from tracekit.jit import njit


from ..scan import line_bounds, read_hex
from .layout import Layout

__all__ = [
    "Field",
    "EventFormat",
    "Conversion",
    "field_conversions",
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


# --------------------------------------------------------------------------------------------
# how trace-cmd report -R prints a field: by the print fmt's conversion when the print fmt
# passes the field as it is, else by the field's type
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Conversion:
    """A printf conversion of the print fmt applied to one field (``%lx``, ``%pS``...):
    ``conv`` is its conversion character, or ``pS``, ``ps`` and ``p`` for the kernel's
    ``%pS`` (symbol+offset), ``%ps`` (symbol) and plain ``%p``; ``bits`` the C type the value is cast to by its length
    modifier, ``flags``/``width``/``precision`` as printf reads them, and ``has_0x`` when
    the literal text before it ends in ``0x`` (printed before the value)."""

    conv: str
    bits: int
    flags: str = ""
    width: int = 0
    precision: int = -1
    has_0x: bool = False


_ARG_CAST_RE = re.compile(r"^\(\s*(?:const\s+|unsigned\s+|signed\s+|struct\s+)*[A-Za-z_]\w*(?:\s+[A-Za-z_]\w*)*[\s\*]*\)\s*")
_SPEC_RE = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<prec>\d*))?")


def _print_fmt_parts(print_fmt: str) -> tuple[str, list[str]] | None:
    """The format string (escapes kept) and the argument texts of a ``print fmt:`` line."""
    text = print_fmt.strip()
    if not text.startswith('"'):
        return None
    i = 1
    while i < len(text) and text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    fmt, rest = text[1:i], text[i + 1:].strip()
    args: list[str] = []
    depth, start, quote = 0, 0, ""
    rest = rest[1:] if rest.startswith(",") else ""
    for j, c in enumerate(rest):
        if quote:
            quote = "" if c == quote and rest[j - 1] != "\\" else quote
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(rest[start:j].strip())
            start = j + 1
    if rest.strip():
        args.append(rest[start:].strip())
    return fmt, args


def _pointer_extension(rest: str) -> int:
    """How many characters after ``%p`` belong to it (``S``, ``ps``, ``pM`` ... ``pI4``),
    as libtraceevent reads kernel pointer extensions."""
    if not rest:
        return 0
    c = rest[0]
    if c in "FSfs":
        return 1
    if c in "Mm":
        return 2 if rest[1:2] in ("R", "F") else 1
    if c in "Uh":
        return 2 if rest[1:2] and rest[1] in ("LlBb" if c == "U" else "CDN") else 1
    if c in "Ii":
        n = 1
        if rest[1:2] == "S":
            n += 1
            while rest[n:n + 1] in ("p", "f", "s") and rest[n:n + 1]:
                n += 1
        if rest[1:2] in ("S", "4"):
            if rest[n:n + 1] in ("h", "n", "l", "b") and rest[n:n + 1]:
                n += 1
            if rest[1:2] == "4":
                return n + 1
        if rest[n:n + 1] == "c":
            n += 1
        return n + 1
    return 0


def _format_entries(fmt: str, nargs: int) -> list[tuple]:
    """The print fmt as libtraceevent's parse list: ("text", literal) and ("conv", spec,
    conversion, length bits, argument index) entries, in order."""
    out: list[tuple] = []
    pos, arg = 0, 0
    while pos < len(fmt):
        if fmt[pos] == "%" and fmt[pos + 1:pos + 2] != "%":
            j, ls = pos + 1, 0
            while j < len(fmt):
                c = fmt[j]
                if c in "#.0123456789-+":
                    pass
                elif c in "hlLzZ":
                    ls = ls - 1 if c == "h" else 2 if c == "L" else 1 if c in "zZ" else ls + 1
                elif c == "*":
                    arg += 1
                elif c == "p":
                    ext = _pointer_extension(fmt[j + 1:])
                    kind = fmt[j + 1] if ext == 1 and fmt[j + 1] in "FSfs" else ("" if ext == 0 else "?")
                    out.append(("conv", fmt[pos:j + 1 + ext], "p" + {"F": "S", "f": "s"}.get(kind, kind), 64, arg))
                    arg, j = arg + 1, j + ext
                    break
                elif c in "cduixXos":
                    bits = {-2: 8, -1: 16, 0: 32}.get(ls, 64) if c != "s" else 0
                    out.append(("conv", fmt[pos:j + 1], c, bits, arg))
                    arg += 1
                    break
                else:
                    out.append(("text", f">{c}<"))
                    break
                j += 1
            pos = j + 1
            continue
        text = []
        while pos < len(fmt):
            c = fmt[pos]
            if c == "\\" and pos + 1 < len(fmt):
                pos += 1
                text.append({"n": "\n", "t": "\t", "r": "\r"}.get(fmt[pos], fmt[pos]))
            elif c == "%":
                if fmt[pos + 1:pos + 2] != "%":
                    break
                text.append("%")
                pos += 1
            else:
                text.append(c)
            pos += 1
        out.append(("text", "".join(text)))
    return [e for e in out if e[0] == "text" or e[4] < nargs]


def _bare_field(arg: str) -> str | None:
    """The field an argument passes as it is (``REC->x``, through casts and parentheses)."""
    arg = arg.strip()
    while True:
        m = _ARG_CAST_RE.match(arg)
        if m and "REC" not in m.group(0):
            arg = arg[m.end():].strip()
        elif arg.startswith("(") and arg.endswith(")") and arg.count("(") == 1:
            arg = arg[1:-1].strip()
        else:
            break
    m = re.fullmatch(r"REC->(\w+)", arg)
    return m.group(1) if m else None


def field_conversions(fmt: EventFormat) -> dict[str, Conversion]:
    """The conversion libtraceevent's ``print_field()`` uses for each field trace-cmd prints
    with ``-R``: walking the print fmt's parse list from where the previous field's match
    left it (wrapping round), the first conversion whose argument is the bare field.  Array
    and string fields, bprint records and fields met after the list is used up are printed
    by their type instead (absent here)."""
    if fmt.system == "ftrace" and fmt.name == "bprint":
        return {}
    parts = _print_fmt_parts(fmt.print_fmt)
    if parts is None:
        return {}
    text, args = parts
    if not args and fmt.system == "ftrace":
        args = [f"REC->{f.name}" for f in fmt.fields]
    entries = _format_entries(text, len(args))
    if not entries:
        return {}
    out: dict[str, Conversion] = {}
    at: int | None = 0
    for f in fmt.fields:
        if at is None:
            break
        if f.array_len is not None or f.data_loc or f.rel_loc:
            continue
        i, has_0x = at, False
        for _ in range(len(entries)):
            e = entries[i]
            if e[0] == "text":
                has_0x = e[1].endswith("0x")
            elif _bare_field(args[e[4]]) == f.name and e[2] not in ("s", "p?"):
                m = _SPEC_RE.match(e[1])
                prec = m.group("prec")
                out[f.name] = Conversion(e[2], e[3], m.group("flags"), int(m.group("width") or 0),
                                         int(prec) if prec else (-1 if prec is None else 0), has_0x)
                at = i + 1 if i + 1 < len(entries) else None
                break
            else:
                has_0x = False
            i = (i + 1) % len(entries)
    return out
