"""Decoding event payloads with the format files a trace.dat carries.

Each ``events/<system>/<event>/format`` text gives the event's id and its fields by offset,
size and signedness; the payload of a ring-buffer record starts with ``common_type`` (the
id).  Records of one event type are decoded together: their fixed parts are gathered into
one 2-D byte array and every field is a column view of it.  Bodies are rendered like
``trace-cmd report -R`` (``field=value``, the raw fields in format order).

The ftrace tracers' own records (events/ftrace/: ``function``, ``funcgraph_entry``,
``funcgraph_exit``, ``print``, ``bprint``) get their meaning here: function calls with
resolved names, call-graph entries and exits, and trace_printk text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl

from tracekit.parsers.noise import NOISE_EVENTS, NOISE_TRACERS, noise_columns
from tracekit.schema import Kind
from tracekit.symbols import canonical_expr

from .layout import Layout

__all__ = [
    "Field",
    "EventFormat",
    "parse_format",
    "Symbols",
    "parse_kallsyms",
    "parse_printk_formats",
    "parse_cmdlines",
    "decode_records",
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
    """Text symbols from the file's copy of ``/proc/kallsyms``, sorted by address."""

    addr: np.ndarray  # uint64
    name: np.ndarray  # object (str)

    def resolve(self, values: np.ndarray) -> np.ndarray:
        """The function containing each address (the nearest symbol at or below it), or None
        when it lies outside the symbol table."""
        out = np.full(len(values), None, dtype=object)
        if len(self.addr) == 0 or len(values) == 0:
            return out
        v = values.astype(np.uint64)
        i = np.searchsorted(self.addr, v, side="right") - 1
        ok = (i >= 0) & (v != 0)
        out[ok] = self.name[i[ok]]
        return out


def parse_kallsyms(text: bytes) -> Symbols:
    """``addr type name [module]`` lines -> :class:`Symbols` (text symbols only, zero
    addresses (kptr_restrict) dropped; of aliases at one address the first listed is kept)."""
    if not text:
        return Symbols(np.zeros(0, np.uint64), np.zeros(0, object))
    s = pl.Series("l", text.decode("latin-1").splitlines())
    parts = s.str.extract_groups(r"^([0-9a-fA-F]+)\s+([tTwW])\s+(\S+)")
    df = pl.DataFrame({"addr": parts.struct.field("1"), "name": parts.struct.field("3")}).drop_nulls()
    df = df.with_columns(pl.col("addr").str.to_integer(base=16, dtype=pl.UInt64, strict=False)).filter(
        pl.col("addr") > 0
    )
    df = df.with_row_index("i").sort(["addr", "i"]).unique("addr", keep="first", maintain_order=True)
    return Symbols(df["addr"].to_numpy(), df["name"].to_numpy().astype(object))


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


def _column(mat: np.ndarray, f: Field, layout: Layout) -> np.ndarray:
    """One scalar field of every row of ``mat`` (rows = records' fixed parts)."""
    raw = np.ascontiguousarray(mat[:, f.offset:f.offset + f.size])
    size = f.size if f.size in (1, 2, 4, 8) else 0
    if size == 0:
        return np.zeros(len(mat), dtype=np.int64)
    v = raw.view(layout.dtype(size, f.signed)).ravel()
    return v.astype(np.int64 if f.signed else np.uint64)


def _strings(block: np.ndarray, start: np.ndarray, length: np.ndarray) -> pl.Series:
    """NUL-terminated strings at ``start`` (at most ``length`` bytes) of the block."""
    n = len(start)
    if n == 0:
        return pl.Series([], dtype=pl.String)
    width = int(max(1, min(int(length.max(initial=0)), 4096)))
    idx = start[:, None] + np.arange(width)
    mat = np.take(block, idx, mode="clip")
    mat[np.arange(width)[None, :] >= length[:, None]] = 0
    mat[np.cumsum(mat == 0, axis=1) > 0] = 0  # C strings end at their first NUL
    arr = np.ascontiguousarray(mat).view(f"S{width}").ravel()
    return pl.Series(np.char.decode(arr, "latin-1"), dtype=pl.String)


def _hex(values: np.ndarray) -> pl.Series:
    return pl.Series(np.char.mod("0x%x", values.astype(np.uint64)), dtype=pl.String)


def _array_text(mat: np.ndarray) -> pl.Series:
    """libtraceevent's rendering of a non-string array: ``ARRAY[0f, 00, ...]``."""
    if mat.shape[1] == 0:
        return pl.Series(["ARRAY[]"] * len(mat), dtype=pl.String)
    hexs = np.frombuffer(np.ascontiguousarray(mat).tobytes().hex().encode(), dtype=f"S{2 * mat.shape[1]}")
    s = pl.Series(np.char.decode(hexs, "ascii"), dtype=pl.String)
    return ("ARRAY[" + s.str.replace_all(r"(..)", "$1, ").str.strip_suffix(", ") + "]")


class FormatLookup(Protocol):
    """Event formats by id (``common_type``)."""

    def get(self, eid: int) -> EventFormat | None: ...


@dataclass
class Decoded:
    """Per-record columns of one block, in record order (see :func:`decode_records`)."""

    frame: pl.DataFrame
    unknown_ids: dict[int, int]


def decode_records(
    block: np.ndarray,
    offset: np.ndarray,
    length: np.ndarray,
    ts: np.ndarray,
    cpu: int,
    formats: FormatLookup,
    common: EventFormat,
    layout: Layout,
    symbols: Symbols,
    printk: dict[int, str],
    nosupport_is_lazy: bool,
) -> Decoded:
    """Decode the data records at ``offset``/``length`` of ``block`` into event-schema
    columns (plus ``rec``, the record's index, for ordering)."""
    n = len(offset)
    ct = common.field("common_type")
    cmat_w = common.fixed_size
    cmat = np.take(block, offset[:, None] + np.arange(cmat_w), mode="clip")
    type_ids = _column(cmat, ct, layout).astype(np.int64)
    pid_f = common.field("common_pid")
    pid = _column(cmat, pid_f, layout).astype(np.int32) if pid_f else np.full(n, -1, np.int32)
    fl_f, pc_f = common.field("common_flags"), common.field("common_preempt_count")
    if fl_f and pc_f:
        flags = irq_flags(_column(cmat, fl_f, layout), _column(cmat, pc_f, layout), nosupport_is_lazy)
    else:
        flags = pl.Series("flags", [None] * n, dtype=pl.String)
    base = pl.DataFrame(
        {
            "rec": np.arange(n, dtype=np.int64),
            "cpu": np.full(n, cpu, dtype=np.int32),
            "pid": pid,
            "ts_ns": ts.astype(np.int64),
            "flags": flags,
        }
    )
    parts: list[pl.DataFrame] = []
    unknown: dict[int, int] = {}
    for eid in np.unique(type_ids):
        sel = np.flatnonzero(type_ids == eid)
        fmt = formats.get(int(eid))
        if fmt is None:
            unknown[int(eid)] = len(sel)
            parts.append(pl.DataFrame({
                "rec": sel, "kind": [Kind.EVENT] * len(sel), "event": [None] * len(sel),
                "body": [f"[UNKNOWN TYPE {int(eid)}]"] * len(sel),
            }, schema_overrides={"event": pl.String}))
            continue
        parts.append(_decode_type(block, offset[sel], length[sel], sel, fmt, layout, symbols, printk))
    cols = pl.concat(parts, how="diagonal_relaxed").sort("rec")
    frame = base.join(cols, on="rec", how="left", suffix="_ev")
    if "ts_override" in frame.columns:
        frame = frame.with_columns(pl.coalesce("ts_override", "ts_ns").alias("ts_ns")).drop("ts_override")
    return Decoded(frame, unknown)



def _bytes_field(block: np.ndarray, pos: np.ndarray, size: np.ndarray, is_string: bool):
    """A variable-length field of every record (``size`` bytes at ``pos`` in ``block``): the
    text of a string, or of a byte array (returned too, zero past each size; None for a
    string)."""
    if is_string:
        return _strings(block, pos, size), None
    w = int(size.max(initial=0))
    m = np.take(block, pos[:, None] + np.arange(w), mode="clip")
    m[np.arange(w)[None, :] >= size[:, None]] = 0
    return _array_text(m), m

def _decode_type(block: np.ndarray, off: np.ndarray, ln: np.ndarray, sel: np.ndarray,
                 fmt: EventFormat, layout: Layout, symbols: Symbols,
                 printk: dict[int, str]) -> pl.DataFrame:
    """Every record of one event type (payloads at ``off``, ``ln`` bytes long; ``sel`` their
    record indices): body text and, for the ftrace tracers' own records, the call-graph
    columns."""
    k = len(sel)
    width = max(fmt.fixed_size, 1)
    mat = np.take(block, off[:, None] + np.arange(width), mode="clip")
    vals: dict[str, object] = {}
    rendered: list[pl.Series] = []
    for f in fmt.fields:
        if f.data_loc or f.rel_loc:
            loc = _column(mat, Field(f.name, "u32", f.offset, 4, False), layout).astype(np.int64)
            start = loc & 0xFFFF
            if f.rel_loc:
                start = start + f.offset + f.size
            size = np.minimum(loc >> 16, np.maximum(ln - start, 0))
            s, _ = _bytes_field(block, off + start, size, f.is_string)
            vals[f.name] = s
        elif f.array_len is not None:
            if f.size == 0 or f.array_len == 0:  # "char buf[]": the rest of the record
                start = np.full(k, f.offset, np.int64)
                size = np.maximum(ln - f.offset, 0)
                s, m2 = _bytes_field(block, off + start, size, f.is_string)
                if m2 is not None:
                    vals[f.name + "#raw"] = (m2, size)
            elif f.is_string:
                s = _strings(block, off + f.offset, np.full(k, f.size, np.int64))
            else:
                s = _array_text(mat[:, f.offset:f.offset + f.size])
            vals[f.name] = s
        else:
            v = _column(mat, f, layout)
            vals[f.name] = v
            if f.name in SYMBOL_FIELDS and f.size >= 4 and not f.signed:
                names = symbols.resolve(v)
                hexs = _hex(v)
                s = pl.Series(names, dtype=pl.String).fill_null(hexs) if len(symbols.addr) else hexs
            elif f.is_pointer:
                s = _hex(v)
            elif re.fullmatch(r"(?:unsigned )?long", f.type) and f.size in (4, 8):
                # a C long prints signed, as trace-cmd shows it (TLB_FLUSH_ALL pages=-1)
                s = pl.Series(v.astype(np.uint64).view(np.int64) if f.size == 8
                              else v.astype(np.uint32).view(np.int32)).cast(pl.String)
            else:
                s = pl.Series(v)
                s = s.cast(pl.String)
        rendered.append(s.alias(f.name))

    df = pl.DataFrame({"rec": sel})
    if rendered:
        strs = pl.DataFrame(rendered)
        body = strs.select(
            pl.concat_str(
                [(pl.lit(f"{c}=") + pl.col(c).fill_null("")) for c in strs.columns], separator=" "
            ).alias("body")
        ).to_series()
    else:
        body = pl.Series("body", [""] * k, dtype=pl.String)
    df = df.with_columns(body.alias("body"), pl.lit(fmt.name).alias("event"), pl.lit(Kind.EVENT).alias("kind"))
    if fmt.name in NOISE_TRACERS or fmt.name in NOISE_EVENTS:
        # hwlat / osnoise / timerlat records and the osnoise tracepoints: their numbers
        noise = noise_columns(pl.col("body"), pl.col("event"))
        df = df.with_columns(**{k: v for k, v in noise.items() if k != "noise_event"})

    if fmt.system == "ftrace":
        df = _ftrace_record(df, fmt, vals, layout, symbols, printk)
    return df


def _sym_cols(values: np.ndarray, symbols: Symbols, name: str) -> list[pl.Series]:
    """``name`` (canonical) and ``raw_<name>`` (the kallsyms symbol, or hex when unknown)."""
    raw = pl.Series(symbols.resolve(values), dtype=pl.String).fill_null(_hex(values))
    canon = pl.select(canonical_expr(pl.lit(raw))).to_series()
    return [canon.alias(name), raw.alias("raw_" + name)]


def _ftrace_record(df: pl.DataFrame, fmt: EventFormat, vals: dict[str, object], layout: Layout,
                   symbols: Symbols, printk: dict[int, str]) -> pl.DataFrame:
    """The meaning of the ftrace tracers' own records (kernel/trace/trace_entries.h):
    ``function`` (ip, parent_ip), ``funcgraph_entry`` (func, depth), ``funcgraph_exit``
    (func, depth, calltime, rettime), ``print`` (buf) and ``bprint`` (fmt, buf)."""
    name = fmt.name
    if name == "function" and "ip" in vals:
        cols = _sym_cols(vals["ip"], symbols, "func")
        if "parent_ip" in vals:
            cols += _sym_cols(vals["parent_ip"], symbols, "parent")
        return df.with_columns(*cols, pl.lit(Kind.FUNCTION).alias("kind"))
    if name in ("funcgraph_entry", "funcgraph_exit") and "func" in vals:
        cols = _sym_cols(vals["func"], symbols, "func")
        cols.append(pl.Series("depth", vals["depth"]).cast(pl.Int32))
        if name == "funcgraph_entry":
            return df.with_columns(*cols, pl.lit(Kind.ENTRY).alias("kind"))
        call, ret = vals["calltime"].astype(np.int64), vals["rettime"].astype(np.int64)
        cols += [pl.Series("dur_ns", ret - call), pl.Series("ts_override", ret)]
        return df.with_columns(*cols, pl.lit(Kind.EXIT).alias("kind"))
    if name == "print" and "buf" in vals:
        text = vals["buf"].str.strip_suffix("\n")
        return df.with_columns(text.alias("body"))
    if name == "bprint" and "fmt" in vals and "buf#raw" in vals:
        m2, size = vals["buf#raw"]
        addrs = vals["fmt"].astype(np.uint64)
        texts = np.full(len(addrs), None, dtype=object)
        for a in np.unique(addrs):
            rows = np.flatnonzero(addrs == a)
            fmt = printk.get(int(a))
            if fmt is None:
                continue
            texts[rows] = vbin_printf_columns(fmt, m2[rows], size[rows], layout, symbols)
        ipname = pl.Series(symbols.resolve(vals["ip"]), dtype=pl.String).fill_null(_hex(vals["ip"]))
        body = pl.select(pl.concat_str([ipname, pl.lit(": "), pl.Series(list(texts), dtype=pl.String).str.strip_suffix("\n")])).to_series()
        return df.with_columns(pl.when(body.is_not_null()).then(body).otherwise(df["body"]).alias("body"))
    return df


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
