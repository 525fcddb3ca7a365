"""trace-cmd ``trace.dat`` (version 6, flyrecord) from the replay model, in either byte order
and long size: ``funcgraph_entry`` / ``funcgraph_exit`` records of the simulated calls and
``tlb:tlb_flush`` records, with kallsyms that name the functions (ppc64: ``.free_pgtables``).

Layout (docs/formats.md#tracedat; trace-cmd.dat.v6 documentation): :class:`DatLayout` holds what
depends on the file's endianness and long size -- struct codes, the record field offsets,
the format texts -- chosen once; :func:`write_tracedat` lays the file out with it.  Records
are built as whole numpy byte matrices (one row per record, one fixed record size), and
ring-buffer pages as one matrix of pages, never record by record.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tracekit.errors import ModelError
from tracekit.model import ModelResult
from tracekit.model.arch import Arch

__all__ = ["DatLayout", "write_tracedat", "UNAME_MACHINE"]

MAGIC = b"\x17\x08Dtracing"
#: uname -m of each arch, as trace-cmd's UNAME option records it.
UNAME_MACHINE = {"x86_64": "x86_64", "i386": "i686", "i386-pae": "i686", "ia64": "ia64",
                 "ia64-64k": "ia64", "ppc64": "ppc64", "ppc64-64k": "ppc64"}
#: Where the kernel text of each arch starts (synthetic kallsyms addresses).
TEXT_BASE = {"x86_64": 0xFFFFFFFF81000000, "i386": 0xC1000000, "ia64": 0xA000000100000000,
             "ppc64": 0xC000000000100000}

EVENT_IDS = {"funcgraph_exit": 10, "funcgraph_entry": 11, "tlb_flush": 300}
OPT_DONE, OPT_TRACECLOCK, OPT_UNAME = 0, 4, 5
TYPE_LEN_BITS = 5
TIME_DELTA_MAX = (1 << 27) - 1

_COMMON = [
    ("unsigned short", "common_type", 0, 2, 0),
    ("unsigned char", "common_flags", 2, 1, 0),
    ("unsigned char", "common_preempt_count", 3, 1, 0),
    ("int", "common_pid", 4, 4, 1),
]


@dataclass(frozen=True)
class DatLayout:
    """Everything of the file that depends on byte order and ``sizeof(long)``."""

    big_endian: bool
    long_size: int
    page_size: int

    @property
    def e(self) -> str:
        return ">" if self.big_endian else "<"

    def pack(self, code: str, *values: int) -> bytes:
        return struct.pack(self.e + code, *values)

    @property
    def page_header_size(self) -> int:
        return 8 + self.long_size  # u64 timestamp + long commit

    def fields(self, event: str) -> list[tuple[str, str, int, int, int]]:
        """(C type, name, offset, size, signed) of an event's own fields."""
        L = self.long_size
        if event == "funcgraph_entry":
            return [("unsigned long", "func", 8, L, 0), ("int", "depth", 8 + L, 4, 1)]
        if event == "funcgraph_exit":
            return [("unsigned long", "func", 8, L, 0), ("int", "depth", 8 + L, 4, 1),
                    ("unsigned int", "overrun", 12 + L, 4, 0),
                    ("unsigned long long", "calltime", 16 + L, 8, 0),
                    ("unsigned long long", "rettime", 24 + L, 8, 0)]
        if event == "tlb_flush":
            return [("int", "reason", 8, 4, 1), ("unsigned long", "pages", 8 + max(4, L), L, 0)]
        raise KeyError(event)

    @property
    def payload_size(self) -> int:
        """One record size for all: the largest event (funcgraph_exit), rounded to 4."""
        return -(-(32 + self.long_size) // 4) * 4

    def format_text(self, event: str) -> str:
        prints = {
            "funcgraph_entry": 'print fmt: "--> %ps (%d)", (void *)REC->func, REC->depth',
            "funcgraph_exit": 'print fmt: "<-- %ps (%d) (start: %llx  end: %llx) over: %d", (void *)REC->func, '
                              "REC->depth, REC->calltime, REC->rettime, REC->depth",
            "tlb_flush": 'print fmt: "pages:%ld reason:%s (%d)", REC->pages, __print_symbolic(REC->reason, '
                         '{ 0, "flush on task switch" }, { 1, "remote shootdown" }, { 2, "local shootdown" }, '
                         '{ 3, "local mm shootdown" }, { 4, "remote ipi send" }), REC->reason',
        }
        lines = [f"name: {event}", f"ID: {EVENT_IDS[event]}", "format:"]
        for ctype, name, off, size, signed in _COMMON:
            lines.append(f"\tfield:{ctype} {name};\toffset:{off};\tsize:{size};\tsigned:{signed};")
        lines.append("")
        for ctype, name, off, size, signed in self.fields(event):
            lines.append(f"\tfield:{ctype} {name};\toffset:{off};\tsize:{size};\tsigned:{signed};")
        lines += ["", prints[event], ""]
        return "\n".join(lines)

    def header_page_text(self) -> str:
        L, h = self.long_size, self.page_header_size
        return (f"\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
                f"\tfield: local_t commit;\toffset:8;\tsize:{L};\tsigned:1;\n"
                f"\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
                f"\tfield: char data;\toffset:{h};\tsize:{self.page_size - h};\tsigned:0;\n")

    @staticmethod
    def header_event_text() -> str:
        return ("# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n"
                "\tarray       :   32 bits\n\n\tpadding     : type == 29\n\ttime_extend : type == 30\n"
                "\ttime_stamp : type == 31\n\tdata max type_len  == 28\n")

    def record_header(self, type_len: int, delta: np.ndarray) -> np.ndarray:
        """The u32 ``type_len_ts`` word: the bitfield order is reversed on big-endian."""
        d = delta.astype(np.uint64)
        if self.big_endian:
            return (np.uint64(type_len) << np.uint64(27)) | d
        return np.uint64(type_len) | (d << np.uint64(TYPE_LEN_BITS))


def _put(mat: np.ndarray, rows: np.ndarray, off: int, values: np.ndarray, code: str) -> None:
    """Store ``values`` (numpy dtype ``code`` in file order) at byte ``off`` of ``rows``."""
    if not len(values):
        return
    b = np.ascontiguousarray(values.astype(code)).view(np.uint8).reshape(len(values), -1)
    mat[rows, off:off + b.shape[1]] = b


def write_tracedat(path: str | Path, result: ModelResult, arch: Arch, *, comm: str, pid: int, cpu: int,
                   ncpus: int, t0_ns: int, kernel: str, big_endian: bool | None = None) -> dict[str, Any]:
    """Write the simulated teardown of ``result`` (recorded) as a v6 trace.dat.

    Byte order: the arch's (ppc64 big-endian) unless ``big_endian`` says otherwise; long
    size: 4 on i386, else 8.  Returns the ground truth: per function the calls and the sum of
    rettime - calltime, and the tlb_flush records."""
    sim = result.sim
    if sim is None:
        raise ModelError("write_tracedat needs a result simulated with record=True")
    be = arch.big_endian if big_endian is None else big_endian
    lay = DatLayout(be, arch.pointer_size, arch.page_size)
    e, L = lay.e, lay.long_size
    ucode = f"{e}u{L}"

    # kallsyms: one text symbol per function, dot-prefixed on ppc64 (ELFv1)
    funcs = sorted({ev[2] for ev in sim.events if ev[0] in ("entry", "exit")})
    base = TEXT_BASE[arch.name.split("-")[0]]
    addr = {f: base + 0x100 * (i + 1) for i, f in enumerate(funcs)}
    width = 2 * L
    kallsyms = "".join(f"{addr[f]:0{width}x} T {arch.sym(f)}\n" for f in funcs).encode()

    # records
    kinds, ts, func, depth, dur, reason = [], [], [], [], [], []
    for ev in sim.events:
        if ev[0] in ("entry", "exit"):
            kinds.append(EVENT_IDS["funcgraph_entry" if ev[0] == "entry" else "funcgraph_exit"])
            ts.append(ev[1]); func.append(addr[ev[2]]); depth.append(ev[3])
            dur.append(ev[4] if ev[0] == "exit" else 0); reason.append(0)
        elif ev[0] == "tlb_flush":
            for r in ((3, 4) if ev[4] else (3,)):
                kinds.append(EVENT_IDS["tlb_flush"]); ts.append(ev[1]); func.append(0); depth.append(0)
                dur.append(0); reason.append(r)
    kind_a = np.array(kinds, dtype=np.int64)
    ts_a = np.array(ts, dtype=np.int64) + t0_ns
    n = len(kind_a)
    R = lay.payload_size
    rec = np.zeros((n, 4 + R), dtype=np.uint8)
    allrows = np.arange(n)
    _put(rec, allrows, 4, kind_a, f"{e}u2")
    _put(rec, allrows, 8, np.full(n, pid), f"{e}i4")
    for name in ("funcgraph_entry", "funcgraph_exit"):
        rows = allrows[kind_a == EVENT_IDS[name]]
        flds = {f[1]: f for f in lay.fields(name)}
        _put(rec, rows, 4 + flds["func"][2], np.array(func, dtype=np.uint64)[rows], ucode)
        _put(rec, rows, 4 + flds["depth"][2], np.array(depth, dtype=np.int64)[rows], f"{e}i4")
        if name == "funcgraph_exit":
            dur_a = np.array(dur, dtype=np.int64)[rows]
            _put(rec, rows, 4 + flds["calltime"][2], ts_a[rows] - dur_a, f"{e}u8")
            _put(rec, rows, 4 + flds["rettime"][2], ts_a[rows], f"{e}u8")
    rows = allrows[kind_a == EVENT_IDS["tlb_flush"]]
    flds = {f[1]: f for f in lay.fields("tlb_flush")}
    _put(rec, rows, 4 + flds["reason"][2], np.array(reason, dtype=np.int64)[rows], f"{e}i4")
    _put(rec, rows, 4 + flds["pages"][2], np.full(len(rows), (1 << (8 * L)) - 1, dtype=np.uint64), ucode)

    # pages: k records each; deltas from the page's first record
    data_size = lay.page_size - lay.page_header_size
    k = data_size // (4 + R)
    npages = max(1, -(-n // k))
    page_of = allrows // k
    first = page_of * k
    delta = ts_a - ts_a[first] if n else ts_a
    if n and delta.max() > TIME_DELTA_MAX:
        raise ModelError("trace.dat emitter: more than 134 ms between records of one page; use a smaller workload")
    _put(rec, allrows, 0, lay.record_header(R // 4, delta), f"{e}u4")
    pages = np.zeros((npages, lay.page_size), dtype=np.uint8)
    padded = np.zeros((npages * k, 4 + R), dtype=np.uint8)
    padded[:n] = rec
    pages[:, lay.page_header_size:lay.page_header_size + k * (4 + R)] = padded.reshape(npages, -1)
    page_rows = np.arange(npages)
    page_ts = ts_a[page_rows * k] if n else np.zeros(npages, dtype=np.int64)
    counts = np.minimum(k, n - page_rows * k)
    _put(pages, page_rows, 0, page_ts, f"{e}u8")
    _put(pages, page_rows, 8, counts * (4 + R), f"{e}u{L}")

    # the file
    out = bytearray(MAGIC + b"6\0" + bytes([1 if be else 0, L]) + lay.pack("I", lay.page_size))
    for tag, text in ((b"header_page\0", lay.header_page_text()), (b"header_event\0", lay.header_event_text())):
        out += tag + lay.pack("Q", len(text)) + text.encode()
    ftrace = [lay.format_text("funcgraph_exit"), lay.format_text("funcgraph_entry")]
    out += lay.pack("I", len(ftrace))
    for t in ftrace:
        out += lay.pack("Q", len(t)) + t.encode()
    out += lay.pack("I", 1) + b"tlb\0" + lay.pack("I", 1)
    t = lay.format_text("tlb_flush")
    out += lay.pack("Q", len(t)) + t.encode()
    out += lay.pack("I", len(kallsyms)) + kallsyms
    out += lay.pack("I", 0)  # printk formats
    cmd = f"{pid} {comm}\n".encode()
    out += lay.pack("Q", len(cmd)) + cmd
    out += lay.pack("I", ncpus)
    out += b"options  \0"
    for oid, text in ((OPT_TRACECLOCK, "[local] global counter\n"),
                      (OPT_UNAME, f"Linux tracekit {kernel} {UNAME_MACHINE[arch.name]}")):
        raw = text.encode() + b"\0"
        out += lay.pack("H", oid) + lay.pack("I", len(raw)) + raw
    out += lay.pack("H", OPT_DONE)
    out += b"flyrecord\0"
    table_at = len(out)
    out += bytes(16 * ncpus)
    data_at = -(-len(out) // lay.page_size) * lay.page_size
    out += bytes(data_at - len(out))
    out += pages.tobytes()
    for c in range(ncpus):
        off, size = (data_at, pages.size) if c == cpu else (0, 0)
        out[table_at + 16 * c: table_at + 16 * (c + 1)] = lay.pack("QQ", off, size)
    Path(path).write_bytes(bytes(out))

    ex = kind_a == EVENT_IDS["funcgraph_exit"]
    by = (pl.DataFrame({"addr": np.array(func, dtype=np.uint64)[ex], "dur": np.array(dur, dtype=np.int64)[ex]})
          .group_by("addr").agg(calls=pl.len(), dur_ns_sum=pl.col("dur").sum()))
    names = {v: k_ for k_, v in addr.items()}
    truth = {names[int(r["addr"])]: {"calls": int(r["calls"]), "dur_ns_sum": int(r["dur_ns_sum"])}
             for r in by.iter_rows(named=True)}
    return {
        "functions": dict(sorted(truth.items())),
        "tlb_flush_records": int((kind_a == EVENT_IDS["tlb_flush"]).sum()),
        "records": n,
        "big_endian": be,
        "long_size": L,
        "page_size": lay.page_size,
    }
