"""``perf script`` text: samples, their callchains, kprobe/kretprobe hits and the
``--header`` block (docs/formats.md#perf-script; tools/perf/builtin-script.c prints it).

A sample is one header line, then (with ``perf record -g``) one frame per line and a blank
line::

    perf-exec   556 [000]    89.322861:         probe:free_pgtables: (ffffffff92aca790)
    	ffffffff92aca791 free_pgtables+0x1 ([kernel.kallsyms])
    	ffffffff92adb5f2 exit_mmap+0x132 ([kernel.kallsyms])

The header line has every shape perf versions and ``-F`` choices give it: a comm that may
hold spaces, ``pid`` or ``pid/tid``, optionally ``[cpu]``, optionally ``secs.usecs:``,
optionally the period, then the event name (which may itself hold colons:
``tlb:tlb_flush``, ``cycles:u``) and, for tracepoints, the event's text.  Very old perf
printed ``java 19983 cycles:`` (no cpu, no time).

What a sample becomes:

* ``probe:X`` (a kprobe made by ``perf probe -a X``) is a ``kprobe_entry`` row and
  ``probe:X__return`` (``perf probe -a 'X%return'``) a ``kprobe_exit`` row, with
  ``func`` = X, ``pid`` = the thread id: :mod:`tracekit.spans` pairs them per thread, LIFO
  (``ctx.meta["span_source"] = "kprobe"``).  Uprobe groups (``probe_libc:malloc``) the same.
* every other sample is one ``sample`` row with its ``event``.

``callchain`` holds the frames innermost first, as perf prints them, each reduced to its
canonical kernel symbol (:func:`tracekit.symbols.canonical_expr`: ``+0x1a/0x40``
offsets, GCC clone suffixes and ppc64 dots removed); addresses and DSOs are not kept.
``pid`` is the thread id (``tid`` of ``pid/tid``, else the one number printed; null for
perf's unknown thread ``:-1 -1``); ``body`` is the tracepoint text, preceded by
``period=N`` when perf printed a period.  A sample without a callchain whose line ends in
the sampled ``ip sym+off (dso)`` gets that one symbol as its callchain.  Side-band records
(``PERF_RECORD_COMM``, ``_FORK``, ``_EXIT``, ``_SWITCH_CPU_WIDE``...) are ``marker`` rows
with the record name as ``event``.

How it is read: the input is cut into chunks that never end inside a sample (a sample
line and its callchain stay together), and each chunk is read by one compiled loop
(:func:`_scan`) in threads: numbers in place, names and text as offsets into the chunk,
each frame's symbol as offsets too, interned, so that the canonical name is worked out
once per distinct symbol and the callchain column is built from offsets.  The lines it
does not take (header comments, side-band records, the oldest layouts, anything odd)
go to the general path, regular expressions that decide every case and count what they
cannot read; it is also the reference the compiled path is tested against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa
from tracekit.jit import njit

from tracekit.arch import arch_from_kernel_release, arch_from_symbols, canonical_arch
from tracekit.parsers import FormatInfo
from tracekit.parsers.base import LineChunk, ParseContext
from tracekit.parsers.scan import (NINE, SPACE, ZERO, buffer, dictionary, ints, line_bounds, map_chunks, read_decimal,
                                   read_uint, strings, texts)
from tracekit.schema import EVENT_SCHEMA, Kind, conform, empty
from tracekit.symbols import canonical_expr, canonicalize

__all__ = ["FORMAT", "sniff", "parse", "scan_bytes", "SAMPLE_RE", "FRAME_RE"]

FORMAT = FormatInfo(
    name="perf_script",
    kind="text",
    description="perf script text: samples with callchains, kprobe/kretprobe pairs, --header",
    example="perf-exec   556 [000]    89.322861:         probe:free_pgtables: (ffffffff92aca790)",
)

#: A sample's first line.  The comm ends at the last "<pid>[/<tid>]" that is followed by
#: the optional cpu / time / period fields and an event name ending in ": " or at the end.
SAMPLE_RE = (
    r"^\s*(?P<comm>\S.*?)\s+(?P<pid>-?\d+)(?:/(?P<tid>-?\d+))?\s+"
    r"(?:\[(?P<cpu>\d+)\]\s+)?"
    r"(?:(?P<time>\d+\.\d+):\s+)?"
    r"(?:(?P<period>\d+)\s+)?"
    r"(?P<event>[A-Za-z_][\w.:/@=,-]*?):(?:\s+(?P<body>.*?))?\s*$"
)
#: A side-band record shown with --show-task-events / --show-switch-events / --show-mmap-events:
#: ``forkit 11019 [001] 66663.271207092: PERF_RECORD_FORK(11020:11020):(11019:11019)``.
RECORD_RE = (
    r"^\s*(?P<comm>\S.*?)\s+(?P<pid>-?\d+)(?:/(?P<tid>-?\d+))?\s+"
    r"(?:\[(?P<cpu>\d+)\]\s+)?"
    r"(?:(?P<time>\d+\.\d+):\s+)?"
    r"(?P<event>PERF_RECORD_[A-Z0-9_]+)(?P<body>.*?)\s*$"
)
#: The sampled ip on the sample line itself (no callchain): ``ffffffffb1d9f844 strnlen_user+0xb4
#: ([kernel.kallsyms])``.
_IP_SYM_RE = r"^[0-9a-fA-F]+\s+(?P<ipsym>\S.*?)\s+\((?:[^()]|\([^()]*\))*\)$"
#: A callchain frame: address, symbol (with +off), and the DSO in parentheses.
FRAME_RE = r"^\s*(?P<addr>[0-9a-fA-F]+)\s+(?P<sym>\S.*?)(?:\s+\((?P<dso>.*)\))?\s*$"
_DSO_RE = r"\s+\((?:[^()]|\([^()]*\))*\)\s*$"
_KPROBE_RE = r"^probe(?:_\w+)?:(?P<fn>.+?)(?P<ret>__return)?$"
_HEADER_KEYS = {
    "os release": "kernel",
    "arch": "perf_arch",
    "nrcpus online": "ncpus",
    "nrcpus avail": "nrcpus_avail",
    "cmdline": "perf_cmdline",
    "perf version": "perf_version",
    "hostname": "hostname",
    "captured on": "captured_on",
    "cpudesc": "cpudesc",
}


def sniff(head: str) -> int:
    """How sure we are that ``head`` is ``perf script`` output."""
    if re.search(r"^# (?:os release|perf version|nrcpus online) : ", head, re.M):
        return 90
    lines = [ln for ln in head.splitlines()[:400] if ln.strip() and not ln.startswith("#")]
    if not lines:
        return 0
    sample = re.compile(SAMPLE_RE)
    frame = re.compile(r"^\s*[0-9a-fA-F]+\s+\S.*\(.*\)\s*$")
    n_sample = sum(1 for ln in lines if sample.match(ln) and not ln.startswith("\t"))
    n_frame = sum(1 for ln in lines if frame.match(ln))
    if n_sample and n_sample + n_frame >= 0.9 * len(lines) and n_frame:
        return 85
    # without callchains every line is a sample; perf right-aligns the comm ("%16s"), so
    # a line may begin with blanks
    if n_sample >= 0.9 * len(lines) and re.search(r"^\s*\S.*\s\d+(?:/\d+)?\s+(?:\[\d+\]\s+)?\d+\.\d+:\s+(?:\d+\s+)?[\w:.-]+:", head, re.M):
        return 55
    return 0


def parse(chunks: Iterator[LineChunk], ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """Parse ``perf script`` text into event frames (samples and kprobe rows).

    The input is re-cut so that no chunk ends inside a sample (:func:`_records`); the
    chunks are then read apart from each other, in threads, by :func:`_parse_fast`."""
    n_kprobe = 0
    syms: list[pl.Series] = []  # a bounded sample of raw frame symbols, for the arch
    # Set before the first frame: the span pairing reads it then.
    ctx.meta["span_source"] = "kprobe"
    for out, kprobes, sample in map_chunks(_records(chunks), _parse_fast, ctx):
        n_kprobe += kprobes
        if sum(len(s) for s in syms) < _ARCH_SAMPLE:
            syms.append(sample)
        if out.height:
            yield out
    if not n_kprobe:
        del ctx.meta["span_source"]
    if "arch" not in ctx.meta and syms:
        # No "# arch :" header: ppc64 dot symbols or arch-only entry points may say it.
        arch = arch_from_symbols(pl.concat(syms))
        if arch:
            ctx.meta["arch"] = arch
            ctx.meta["arch_source"] = "symbols"
    ctx.meta.setdefault("time_unit", "ns")


def scan_bytes(raw: bytes) -> None:
    """Read ``raw`` as one whole chunk of ``perf script`` text through the compiled path
    and the frame assembly (for the fuzzer); bad lines are counted, never raised."""
    _parse_fast(LineChunk(1, raw=raw, is_last=True), ParseContext("<bytes>"))


#: raw frame symbols kept for telling the arch from them (arch_from_symbols)
_ARCH_SAMPLE = 20_000


def _text_bytes(chunk: LineChunk) -> bytes:
    """The chunk's lines as bytes, one newline after each."""
    if chunk.raw is not None:
        return chunk.raw
    if not chunk.n_lines:
        return b""
    return ("\n".join(chunk.lines.to_list()) + "\n").encode("utf-8")


def _records(chunks: Iterable[LineChunk]) -> Iterator[LineChunk]:
    """The chunks re-cut so that each ends before the last sample line it holds: that
    sample's callchain may go on in the next chunk, so the sample moves there, frames and
    all.  A chunk without a sample line is read as it is (its frames have no owner); a
    sample longer than a chunk goes on whole into the next."""
    tail = b""  # the last sample of the chunks so far, from its line on
    first = 1  # the line number of its first line
    for chunk in chunks:
        raw = _text_bytes(chunk)
        if not tail:
            first = chunk.first_line
        if chunk.is_last:
            tail += raw
            break
        starts, _ = bounds = chunk.bounds() if chunk.raw is not None else line_bounds(buffer(raw))
        cut = _last_head(raw, *bounds)
        if cut < 0 and tail:  # (the sample carried goes on)
            tail += raw
            continue
        if cut < 0:
            yield LineChunk(first, raw=raw)
            continue
        if tail or cut > 0:
            yield LineChunk(first, raw=b"".join((tail, memoryview(raw)[: starts[cut]])))
        first = chunk.first_line + cut
        tail = raw[starts[cut]:]
    if tail:
        yield LineChunk(first, raw=tail, is_last=True)


def _last_head(raw: bytes, starts: np.ndarray, ends: np.ndarray) -> int:
    """The index of the chunk's last sample (or side-band record) line, -1 for none: the
    last the compiled reader takes, unless a line after it that only the general path can
    read is one."""
    sure, unsure = _tail_lines(buffer(raw), starts, ends)
    if len(unsure):
        lines = pl.Series("text", [_decode(raw[starts[i]:ends[i]]) for i in unsure.tolist()], dtype=pl.String)
        heads = _classify(pl.DataFrame({"line": unsure, "text": lines}))
        general = heads.filter(pl.col("is_sample"))["line"]
        if len(general):
            return int(general.max())
    return int(sure)


def _decode(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


# --- the compiled path ------------------------------------------------------------------

#: per-line codes of :func:`_scan`: 0 left to the general path
_BLANK, _FRAME, _SAMPLE, _KP_ENTRY, _KP_EXIT = 1, 2, 3, 4, 5
_KINDS = pl.Series("kind", [Kind.SAMPLE, Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT], dtype=pl.String)
#: rows of the offsets array: (start, end) of each field
_COMM, _EVENT, _BODY, _PERIOD, _FN, _SYM = 0, 2, 4, 6, 8, 10
_TAB, _HASH, _PLUS, _COLON, _SLASH, _MINUS, _DOT = 9, 35, 43, 58, 47, 45, 46
_LBRACKET, _RBRACKET, _LPAREN, _RPAREN = 91, 93, 40, 41
_INT32_MAX = 2**31 - 1
_PROBE = np.frombuffer(b"probe", dtype=np.uint8)
_RETURN = np.frombuffer(b"__return", dtype=np.uint8)
_RECORD = np.frombuffer(b"PERF_RECORD_", dtype=np.uint8)


@njit(cache=True, nogil=True, inline="always")
def _blank(c: int) -> bool:
    """A space or a tab (the white space of a line the compiled path reads)."""
    return c == SPACE or c == _TAB


@njit(cache=True, nogil=True)
def _skip_blanks(buf: np.ndarray, at: int, end: int) -> int:
    while at < end and _blank(buf[at]):
        at += 1
    return at


@njit(cache=True, nogil=True)
def _skip_back_blanks(buf: np.ndarray, start: int, end: int) -> int:
    while end > start and _blank(buf[end - 1]):
        end -= 1
    return end


@njit(cache=True, nogil=True, inline="always")
def _plain(c: int) -> bool:
    """Printable ASCII or a tab: every other byte (control characters, other white space,
    UTF-8) leaves its line to the general path."""
    return (32 <= c < 127) or c == _TAB


@njit(cache=True, nogil=True)
def _plain_sample_line(buf: np.ndarray, a: int, e: int) -> bool:
    """Only :func:`_plain` bytes, and no side-band record (``PERF_RECORD_COMM``...)."""
    for i in range(a, e):
        c = buf[i]
        if not _plain(c) or (c == 80 and _at(buf, i, e, _RECORD)):  # 'P'
            return False
    return True


@njit(cache=True, nogil=True)
def _at(buf: np.ndarray, i: int, end: int, word: np.ndarray) -> bool:
    """Whether ``word`` is printed at ``i`` (before ``end``)."""
    if i + len(word) > end:
        return False
    for k in range(len(word)):
        if buf[i + k] != word[k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _digits_end(buf: np.ndarray, at: int, end: int) -> int:
    while at < end and ZERO <= buf[at] <= NINE:
        at += 1
    return at


@njit(cache=True, nogil=True)
def _hex_end(buf: np.ndarray, at: int, end: int) -> int:
    while at < end:
        c = buf[at]
        if not ((ZERO <= c <= NINE) or (65 <= c <= 70) or (97 <= c <= 102)):
            break
        at += 1
    return at


@njit(cache=True, nogil=True)
def _event_byte(c: int) -> bool:
    """[\\w.:/@=,-]: the bytes of an event name perf prints (``probe_libc:malloc``,
    ``cycles:u``, ``cpu/event=0x3c/``)."""
    return ((ZERO <= c <= NINE) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95 or c == _DOT
            or c == _COLON or c == _SLASH or c == 64 or c == 61 or c == 44 or c == _MINUS)


@njit(cache=True, nogil=True)
def _word_byte(c: int) -> bool:
    return (ZERO <= c <= NINE) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95


@njit(cache=True, nogil=True)
def _dso_open(buf: np.ndarray, lo: int, t: int) -> int:
    """The ``(`` that opens the parenthesised group ending at ``t`` (``buf[t - 1]`` is
    ``)``), not before ``lo``: the DSO perf prints after a symbol, ``([kernel.kallsyms])``,
    which may hold one level of parentheses of its own (``(/lib/x.so (deleted))``); -1
    when there is none, -2 at a byte that is not :func:`_plain` (before the ``(``)."""
    inner = False
    i = t - 2
    while i >= lo:
        c = buf[i]
        if not _plain(c):
            return -2
        if c == _RPAREN:
            if inner:
                return -1
            inner = True
        elif c == _LPAREN:
            if not inner:
                return i
            inner = False
        i -= 1
    return -1


@njit(cache=True, nogil=True)
def _symbol_end(buf: np.ndarray, s: int, t: int) -> int:
    """The end of the symbol printed in ``[s, t)`` without its ``+0x1a`` or
    ``+0x1a/0x40`` offset (perf's ``symoff``), which the canonical name drops anyway;
    ``t`` when there is none, or when the symbol holds a blank or another ``+``; -1 when
    it holds a byte that is not :func:`_plain`."""
    p = -1
    cut = True
    for k in range(s, t):
        c = buf[k]
        if not _plain(c):
            return -1
        if c == _PLUS:
            cut = cut and p < 0
            p = k
        elif _blank(c):
            cut = False
    if p < 0 or not cut:
        return t
    q = p + 1
    for _ in range(2):
        if q + 2 >= t + 1 or buf[q] != ZERO or buf[q + 1] != 120:  # "0x"
            return t
        h = _hex_end(buf, q + 2, t)
        if h == q + 2:
            return t
        if h == t:
            return p
        if buf[h] != _SLASH:
            return t
        q = h + 1
    return t


@njit(cache=True, nogil=True)
def _read_frame(buf: np.ndarray, a: int, e: int, li: int, offs: np.ndarray) -> bool:
    """A callchain line, ``\\t%16lx %s+0x%lx (%s)`` (sample__fprintf_callchain()): the
    address, then the symbol, then its DSO in parentheses.  Records the symbol.  Each
    byte is looked at once, by the reader of its field, which also checks it is
    :func:`_plain`."""
    p = _skip_blanks(buf, a, e)
    h = _hex_end(buf, p, e)
    if h == p or h >= e or buf[h] != SPACE:
        return False
    f0 = h + 1
    t = _skip_back_blanks(buf, f0, e)
    if t == f0:
        return False
    x = t
    if buf[t - 1] == _RPAREN:
        o = _dso_open(buf, f0, t)
        if o == -2:
            return False
        if o > f0 and _blank(buf[o - 1]):
            x = o
    s0 = _skip_blanks(buf, f0, x)
    s1 = _skip_back_blanks(buf, s0, x)
    end = _symbol_end(buf, s0, s1)
    if end < 0:
        return False
    offs[_SYM, li] = s0
    offs[_SYM + 1, li] = end
    return True


@njit(cache=True, nogil=True)
def _read_number(buf: np.ndarray, at: int, end: int) -> tuple[int, int]:
    """``-?\\d+`` at ``at``: (value, end); the end is ``at`` when there is none, and the
    value -2 when it does not fit the schema's Int32 or is negative other than -1 (perf's
    unknown thread), for the general path to decide."""
    q = at
    neg = q < end and buf[q] == _MINUS
    if neg:
        q += 1
    r = _digits_end(buf, q, end)
    if r == q:
        return 0, at
    if r - q > 9:
        return -2, r
    v, _ = read_uint(buf, q, r)
    if neg:
        return (-1 if v == 1 else (0 if v == 0 else -2)), r
    return (v if v <= _INT32_MAX else -2), r


@njit(cache=True, nogil=True)
def _read_event(buf: np.ndarray, q: int, e: int) -> int:
    """The end of the event name at ``q``: its first ``:`` followed by a blank or the end
    of the line (``cycles:u: ``), or -1."""
    c = buf[q]
    if not ((65 <= c <= 90) or (97 <= c <= 122) or c == 95):
        return -1
    i = q + 1
    while i < e:
        c = buf[i]
        if c == _COLON and (i + 1 == e or _blank(buf[i + 1])):
            return i
        if not _event_byte(c):
            return -1
        i += 1
    return -1


@njit(cache=True, nogil=True)
def _read_kprobe(buf: np.ndarray, es: int, ee: int, li: int, offs: np.ndarray) -> int:
    """``probe:func`` (``perf probe -a func``) or ``probe:func__return`` (``func%return``),
    also of uprobe groups (``probe_libc:malloc``): its code, the function recorded; else
    the sample code."""
    if not _at(buf, es, ee, _PROBE):
        return _SAMPLE
    q = es + 5
    if q < ee and buf[q] == 95:  # "probe_<group>:"
        r = q + 1
        while r < ee and _word_byte(buf[r]):
            r += 1
        if r == q + 1:
            return _SAMPLE
        q = r
    if q >= ee or buf[q] != _COLON or q + 1 >= ee:
        return _SAMPLE
    fs = q + 1
    fe = ee
    code = _KP_ENTRY
    if fe - fs > len(_RETURN) and _at(buf, fe - len(_RETURN), fe, _RETURN):
        fe -= len(_RETURN)
        code = _KP_EXIT
    offs[_FN, li] = fs
    offs[_FN + 1, li] = fe
    return code


@njit(cache=True, nogil=True)
def _read_ip_symbol(buf: np.ndarray, bs: int, be: int, li: int, offs: np.ndarray) -> None:
    """The sampled ip printed on the sample line when there is no callchain:
    ``ffffffffb1d9f844 strnlen_user+0xb4 ([kernel.kallsyms])``: its symbol recorded."""
    h = _hex_end(buf, bs, be)
    if h == bs or h >= be or not _blank(buf[h]) or buf[be - 1] != _RPAREN:
        return
    s = _skip_blanks(buf, h, be)
    o = _dso_open(buf, s + 1, be)
    if o < 0 or not _blank(buf[o - 1]):
        return
    t = _skip_back_blanks(buf, s, o)
    offs[_SYM, li] = s
    offs[_SYM + 1, li] = _symbol_end(buf, s, t)


@njit(cache=True, nogil=True)
def _read_task(buf: np.ndarray, p: int, e: int) -> tuple[int, int]:
    """``%7d`` pid or ``%7d/%-7d`` pid/tid, then blanks: (the thread's id as
    :func:`_read_number` reads it, the position of the next field; -1 when there is none)."""
    v, r = _read_number(buf, p, e)
    if r == p:
        return 0, -1
    if r < e and buf[r] == _SLASH:  # pid/tid: the thread is the task
        v, r2 = _read_number(buf, r + 1, e)
        if r2 == r + 1:
            return 0, -1
        r = r2
    if r >= e or not _blank(buf[r]):
        return 0, -1
    return v, _skip_blanks(buf, r, e)


@njit(cache=True, nogil=True)
def _read_cpu(buf: np.ndarray, q: int, e: int) -> tuple[int, int]:
    """``[%03d] `` at ``q``, if printed: (the CPU, -1 for none, -2 when it does not fit;
    the position of the next field, -1 when a ``[`` opens something else)."""
    if q >= e or buf[q] != _LBRACKET:
        return -1, q
    d = _digits_end(buf, q + 1, e)
    if d == q + 1 or d + 1 >= e or buf[d] != _RBRACKET or not _blank(buf[d + 1]):
        return -1, -1
    c, _ = _read_number(buf, q + 1, d)
    return c, _skip_blanks(buf, d + 1, e)


@njit(cache=True, nogil=True)
def _read_time(buf: np.ndarray, q: int, e: int) -> tuple[int, int, bool]:
    """``%5lu.%06lu: `` (``%09llu`` with ``--ns``) at ``q``, if printed: (ns, -1 for none;
    the position of the next field, -1 when digits and a dot start something else; whether
    the time fits the compiled path's reading)."""
    d = _digits_end(buf, q, e)
    if d == q or d >= e or buf[d] != _DOT:
        return -1, q, True
    f = _digits_end(buf, d + 1, e)
    if f == d + 1 or f + 1 >= e or buf[f] != _COLON or not _blank(buf[f + 1]):
        return -1, -1, True
    ts, _, ok = read_decimal(buf, q, f, 9)
    return ts, _skip_blanks(buf, f + 1, e), ok


@njit(cache=True, nogil=True)
def _period_end(buf: np.ndarray, q: int, e: int) -> int:
    """The end of the period ``%10lu `` at ``q``: ``q`` when none is printed, -1 when
    digits there are not one."""
    d = _digits_end(buf, q, e)
    if d > q and (d >= e or not _blank(buf[d])):
        return -1
    return d


@njit(cache=True, nogil=True)
def _read_rest(buf: np.ndarray, p: int, e: int, li: int, nums: np.ndarray, offs: np.ndarray) -> int:
    """The sample line after its comm, from ``p``: the task, ``[cpu]``, the time, the
    period, ``event:`` and the event's text, the optional ones as
    perf_sample__fprintf_start() and process_event() print them.  Returns the line's code;
    0 when the fields do not read from here (the comm may go on), -1 when they do but hold
    a number the compiled path does not represent (the general path decides)."""
    for k in range(12):
        offs[k, li] = -1
    tid, q = _read_task(buf, p, e)
    if q < 0:
        return 0
    cpu, q = _read_cpu(buf, q, e)
    if q < 0:
        return 0
    ts, q, ok = _read_time(buf, q, e)
    if q < 0:
        return 0
    d = _period_end(buf, q, e)
    if d < 0:
        return 0
    if d > q:
        offs[_PERIOD, li] = q
        offs[_PERIOD + 1, li] = d
        q = _skip_blanks(buf, d, e)
    if q >= e:
        return 0
    ee = _read_event(buf, q, e)
    if ee < 0:
        return 0
    if tid == -2 or cpu == -2 or not ok:
        return -1
    nums[0, li] = tid
    nums[1, li] = cpu
    nums[2, li] = ts
    offs[_EVENT, li] = q
    offs[_EVENT + 1, li] = ee
    bs = _skip_blanks(buf, ee + 1, e)
    be = _skip_back_blanks(buf, bs, e)
    if bs < be:
        offs[_BODY, li] = bs
        offs[_BODY + 1, li] = be
        _read_ip_symbol(buf, bs, be, li, offs)
    return _read_kprobe(buf, q, ee, li, offs)


@njit(cache=True, nogil=True)
def _unknown_thread(buf: np.ndarray, s: int, t: int) -> bool:
    """perf's comm of a sample without a thread, ``:-1`` (also ``:<pid>``)."""
    if t - s < 2 or buf[s] != _COLON:
        return False
    q = s + 1
    if buf[q] == _MINUS:
        q += 1
    return q < t and _digits_end(buf, q, t) == t


@njit(cache=True, nogil=True)
def _read_head(buf: np.ndarray, a: int, e: int, li: int, nums: np.ndarray, offs: np.ndarray) -> int:
    """A sample line (perf_sample__fprintf_start(): the comm ``%16s``, which may hold
    blanks, then the fields of :func:`_read_rest`).  The comm ends at the first blank after
    which the fields read, as the general path's expression ends it.  Returns the line's
    code, 0 when it is not one (side-band records are left to the general path)."""
    if not _plain_sample_line(buf, a, e):
        return 0
    s = _skip_blanks(buf, a, e)
    i = s + 1
    while i < e:
        if not _blank(buf[i]):
            i += 1
            continue
        p = _skip_blanks(buf, i, e)
        code = _read_rest(buf, p, e, li, nums, offs)
        if code < 0:
            return 0
        if code > 0:
            if not _unknown_thread(buf, s, i):
                offs[_COMM, li] = s
                offs[_COMM + 1, li] = i
            return code
        i = p
    return 0


@njit(cache=True, nogil=True)
def _scan(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read every line of a chunk: (its code, its numbers (pid, cpu, time in ns; -1 for
    none), the (start, end) offsets of its texts (comm, event, body, period, kprobe
    function, frame or sampled-ip symbol; -1 for none)).  Every offset lies within its
    line."""
    n = len(starts)
    code = np.zeros(n, dtype=np.int8)
    nums = np.full((3, n), -1, dtype=np.int64)
    offs = np.full((12, n), -1, dtype=np.int64)
    for li in range(n):
        a = starts[li]
        e = ends[li]
        if _skip_blanks(buf, a, e) == e:
            code[li] = _BLANK
        elif buf[a] == _TAB:
            if _read_frame(buf, a, e, li, offs):
                code[li] = _FRAME
        elif buf[a] != _HASH:
            code[li] = _read_head(buf, a, e, li, nums, offs)
    return code, nums, offs


@njit(cache=True, nogil=True)
def _tail_lines(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[int, np.ndarray]:
    """From the end of a chunk back to its last line the compiled path reads as a sample:
    (that line's index or -1, the lines after it that the general path may read as one:
    neither blank, nor a frame's or a comment's)."""
    nums = np.full((3, 1), -1, dtype=np.int64)
    offs = np.full((12, 1), -1, dtype=np.int64)
    unsure = np.empty(len(starts), dtype=np.int64)
    k = 0
    for li in range(len(starts) - 1, -1, -1):
        a = starts[li]
        e = ends[li]
        if a == e or buf[a] == _TAB or buf[a] == _HASH or _skip_blanks(buf, a, e) == e:
            continue
        if _read_head(buf, a, e, 0, nums, offs):
            return li, unsure[:k].copy()
        unsure[k] = li
        k += 1
    return -1, unsure[:k].copy()


def _parse_fast(chunk: LineChunk, ctx: ParseContext) -> tuple[pl.DataFrame, int, pl.Series]:
    """One chunk that ends before a sample line (:func:`_records`): its lines read by the
    compiled :func:`_scan`, those it leaves read by the general path, each callchain frame
    given to the sample line above it.  Returns (the event frame, the number of kprobe
    rows, the first raw frame symbols for telling the arch)."""
    raw = _text_bytes(chunk)
    if chunk.raw is None:
        chunk = LineChunk(chunk.first_line, chunk.lines, is_last=chunk.is_last, raw=raw)
    starts, ends = chunk.bounds()
    code, nums, offs = _scan(buffer(raw), starts, ends)
    is_head = code >= _SAMPLE
    is_frame = code == _FRAME
    general = None
    zero = np.flatnonzero(code == 0)
    if len(zero):
        rest = _classify(_lines(chunk, zero))
        is_head[zero[rest["is_sample"].to_numpy()]] = True
        is_frame[zero[rest["is_frame"].to_numpy()]] = True
        general = _parse_chunk(rest.filter(~pl.col("is_frame")), ctx, [])
    chains, sample = _callchains(chunk, code, offs, is_head, is_frame, ctx)
    fast = code[is_head] >= _SAMPLE
    out = _samples(chunk, code, nums, offs).with_columns(callchain=chains.filter(fast))
    if general is not None and general.height:
        general = general.with_columns(pl.coalesce(chains.filter(~fast), pl.col("callchain")).alias("callchain"))
        out = out.merge_sorted(general, key="seq")
    kprobes = int(np.count_nonzero(code >= _KP_ENTRY))
    if general is not None:
        kprobes += general["kind"].is_in([Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT]).sum()
    return out, kprobes, sample


def _lines(chunk: LineChunk, idx: np.ndarray) -> pl.DataFrame:
    """Lines ``idx`` (0-based) of the chunk as a frame of ``line`` and ``text``: cut from
    its bytes when they are a few ASCII lines (no carriage return), else from its split lines (decoded as the
    whole chunk is)."""
    text = None
    if chunk.raw is not None and len(idx) * 8 <= chunk.n_lines:
        starts, ends = chunk.bounds()
        raw = chunk.raw
        lines = [raw[a:b] for a, b in zip(starts[idx].tolist(), ends[idx].tolist())]
        if all(ln.isascii() and b"\r" not in ln for ln in lines):
            text = pl.Series("text", [ln.decode("ascii") for ln in lines], dtype=pl.String)
    if text is None:
        text = chunk.lines.gather(pl.Series(idx, dtype=pl.UInt32))
    return pl.DataFrame({"line": pl.Series(idx + chunk.first_line, dtype=pl.Int64), "text": text})


def _callchains(chunk: LineChunk, code: np.ndarray, offs: np.ndarray, is_head: np.ndarray,
                is_frame: np.ndarray, ctx: ParseContext) -> tuple[pl.Series, pl.Series]:
    """The callchain of every sample line of the chunk, in order (null for none): the
    frame lines below it, innermost first, as canonical symbols; a sample without frames
    whose line names the sampled ip has that one symbol.  Returns it with the first raw
    frame symbols of the chunk."""
    n = len(code)
    line = np.arange(n)
    owner = np.maximum.accumulate(np.where(is_head, line, -1)) if n else line
    frames = np.flatnonzero(is_frame)
    orphans = int(np.count_nonzero(owner[frames] < 0))
    if orphans:
        ctx.skip("callchain frame without a sample line", orphans)
        frames = frames[owner[frames] >= 0]
    owned = np.zeros(n, dtype=bool)
    owned[owner[frames]] = True
    fast = frames[code[frames] == _FRAME]
    alone = np.flatnonzero((code >= _SAMPLE) & ~owned & (offs[_SYM] >= 0))  # the sampled ip
    at = np.concatenate([fast, alone])
    codes, values = dictionary(chunk.raw, offs[_SYM, at], offs[_SYM + 1, at], "raw_func")
    func = canonicalize(values.to_frame())["func"].gather(codes)
    raw_syms = values.gather(codes.head(len(fast)).head(_ARCH_SAMPLE))
    slow = frames[code[frames] != _FRAME]
    if len(slow):  # frames the general path reads (old perf printed them unindented)
        sym = _lines(chunk, slow).select(_frame_symbol(pl.col("text")))["sym"]
        func = pl.concat([func, sym.to_frame("raw_func").pipe(canonicalize)["func"]])
        at = np.concatenate([at, slow])
        raw_syms = pl.concat([raw_syms, sym]).head(_ARCH_SAMPLE)
    order = np.argsort(at, kind="stable")
    func = func.gather(order) if len(at) else func
    by = owner[at[order]]
    heads = np.flatnonzero(is_head)
    bounds = np.searchsorted(by, heads, "left")
    offsets = np.append(bounds, len(by)).astype(np.int64)
    valid = np.diff(offsets) > 0
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    arr = pa.Array.from_buffers(pa.large_list(pa.large_string()), len(heads), [validity, pa.py_buffer(offsets)],
                                children=[func.to_arrow(compat_level=pl.CompatLevel.oldest())])
    return pl.Series("callchain", arr, dtype=pl.List(pl.String)), raw_syms


def _samples(chunk: LineChunk, code: np.ndarray, nums: np.ndarray, offs: np.ndarray) -> pl.DataFrame:
    """The sample lines the compiled path read, as event rows (without their callchain)."""
    raw = chunk.raw
    rows = np.flatnonzero(code >= _SAMPLE)
    o = offs[:, rows]
    line = pl.Series("line", rows + chunk.first_line, dtype=pl.Int64)
    names, values = dictionary(raw, o[_FN], o[_FN + 1], "raw_func")
    canon = canonicalize(values.to_frame())
    body = texts(raw, o[_BODY], o[_BODY + 1], "body")
    if (o[_PERIOD] >= 0).any():
        period = texts(raw, o[_PERIOD], o[_PERIOD + 1], "period")
        body = pl.select(pl.when(period.is_not_null()).then(
            pl.concat_str(pl.lit("period="), period, pl.lit(" ") + body, ignore_nulls=True)).otherwise(body)
        ).to_series().alias("body")
    return conform(pl.DataFrame({
        "seq": line.alias("seq"),
        "line": line,
        "cpu": ints("cpu", nums[1, rows], pl.Int32),
        "pid": ints("pid", nums[0, rows], pl.Int32),
        "comm": strings(raw, o[_COMM], o[_COMM + 1], "comm"),
        "ts_ns": ints("ts_ns", nums[2, rows], pl.Int64),
        "kind": _KINDS.gather(pl.Series(code[rows] - _SAMPLE, dtype=pl.UInt32)),
        "func": canon["func"].gather(names),
        "raw_func": canon["raw_func"].gather(names),
        "event": strings(raw, o[_EVENT], o[_EVENT + 1], "event"),
        "body": body,
    }))


# --- the general path: every field found by regular expression -------------------------

def _parse_general(df: pl.DataFrame, ctx: ParseContext, syms: list[pl.Series]) -> pl.DataFrame:
    """A chunk's lines (``line``, ``text``) read by regular expressions alone: the
    reference the compiled path is checked against, and the reader of every line it
    leaves."""
    return _parse_chunk(_classify(df), ctx, syms)


def _frame_symbol(text: pl.Expr) -> pl.Expr:
    """``<addr> <sym> (<dso>)``: the symbol is what lies between the address and the DSO's
    parentheses (C++ symbols hold parentheses of their own)."""
    return (text.str.strip_chars_start().str.splitn(" ", 2).struct.field("field_1")
            .str.replace(_DSO_RE, "").str.strip_chars().alias("sym"))


def _classify(df: pl.DataFrame) -> pl.DataFrame:
    t = pl.col("text")
    is_comment = t.str.starts_with("#")
    is_blank = t.str.contains(r"^\s*$")
    # perf indents frames with a tab; a tab-indented line is never a sample.
    not_frame = ~is_comment & ~t.str.starts_with("\t")
    is_record = not_frame & t.str.contains(RECORD_RE)
    is_sample = not_frame & ~is_record & t.str.contains(SAMPLE_RE)
    return df.with_columns(
        is_comment=is_comment,
        is_blank=is_blank,
        is_record=is_record,
        # a record heads its own (frameless) block like a sample
        is_sample=is_sample | is_record,
    ).with_columns(
        is_frame=~pl.col("is_comment") & ~pl.col("is_sample") & t.str.contains(FRAME_RE)
    )


def _header(comments: pl.DataFrame, ctx: ParseContext) -> None:
    """``perf script --header`` lines (``# os release : 4.13.0-rc1``) into ``ctx.meta``."""
    kv = comments.select(
        pl.col("text").str.extract_groups(r"^#\s*(?P<key>[a-z][a-z ]*?)\s*:\s(?P<val>.*?)\s*$")
    ).unnest("text").drop_nulls("key")
    events: list[str] = []
    for key, val in kv.iter_rows():  # a few header lines a file
        if key == "event":
            m = re.search(r"name = ([^,]+)", val)
            if m:
                events.append(m.group(1).strip())
            continue
        name = _HEADER_KEYS.get(key)
        if name is None or name in ctx.meta:
            continue
        if name == "ncpus":
            try:
                ctx.meta["ncpus"] = int(val)
            except ValueError:
                ctx.warn(f"{ctx.path}: unreadable '# nrcpus online' value {val!r}")
            continue
        ctx.meta[name] = val
        if name == "perf_arch":
            arch = canonical_arch(val)
            if arch:
                ctx.meta["arch"] = arch
            else:
                ctx.warn(f"{ctx.path}: perf header names an unknown arch {val!r}")
        if name == "kernel" and "arch" not in ctx.meta:
            arch = arch_from_kernel_release(val)
            if arch:
                ctx.meta["arch"] = arch
    if events:
        ctx.meta.setdefault("perf_events", events)


def _parse_chunk(df: pl.DataFrame, ctx: ParseContext, syms: list[pl.Series]) -> pl.DataFrame:
    comments = df.filter(pl.col("is_comment"))
    if comments.height:
        _header(comments, ctx)
    other = df.filter(~pl.col("is_comment") & ~pl.col("is_blank") & ~pl.col("is_sample") & ~pl.col("is_frame"))
    if other.height:
        ctx.skip("unrecognised perf script line", other.height)

    rows = df.filter(pl.col("is_sample") | pl.col("is_frame"))
    if not rows.height:
        return empty(EVENT_SCHEMA)
    # Each frame belongs to the sample line above it (forward-filled sample line number).
    rows = rows.with_columns(
        owner=pl.when(pl.col("is_sample")).then(pl.col("line")).forward_fill()
    )
    frames = rows.filter(pl.col("is_frame"))
    orphans = frames.filter(pl.col("owner").is_null()).height
    if orphans:
        ctx.skip("callchain frame without a sample line", orphans)
    frames = frames.drop_nulls("owner").with_columns(_frame_symbol(pl.col("text")))
    if sum(x.len() for x in syms) < 20_000:
        syms.append(frames["sym"].head(20_000))
    chains = (
        frames.group_by("owner")
        .agg(callchain=canonical_expr(pl.col("sym")))
    )
    heads = rows.filter(pl.col("is_sample"))
    s = pl.concat(
        [
            heads.filter(~pl.col("is_record"))
            .with_columns(pl.col("text").str.extract_groups(SAMPLE_RE).alias("m")).unnest("m"),
            heads.filter(pl.col("is_record"))
            .with_columns(pl.col("text").str.extract_groups(RECORD_RE).alias("m")).unnest("m")
            .with_columns(period=pl.lit(None, dtype=pl.String)),
        ],
        how="diagonal_relaxed",
    ).sort("line")
    s = s.join(chains, left_on="line", right_on="owner", how="left", maintain_order="left")

    kp = pl.col("event").str.extract_groups(_KPROBE_RE)
    s = s.with_columns(kp=kp).unnest("kp")
    parts = pl.col("time").str.split_exact(".", 1)
    ts_ns = (
        parts.struct.field("field_0").cast(pl.Int64, strict=False) * 1_000_000_000
        + parts.struct.field("field_1").str.pad_end(9, "0").str.slice(0, 9).cast(pl.Int64, strict=False)
    )
    s = s.with_columns(body=pl.when(pl.col("body") != "").then(pl.col("body").str.strip_chars()))
    # Without a callchain perf prints the sampled ip's symbol on the sample line itself.
    ip_sym = canonical_expr(pl.col("body").str.extract(_IP_SYM_RE, 1))
    s = s.with_columns(
        callchain=pl.when(pl.col("callchain").is_null() & ~pl.col("is_record") & ip_sym.is_not_null())
        .then(pl.concat_list(ip_sym))
        .otherwise(pl.col("callchain"))
    )
    body = (
        pl.when(pl.col("period").is_not_null() & pl.col("body").is_not_null())
        .then(pl.concat_str(pl.lit("period="), pl.col("period"), pl.lit(" "), pl.col("body")))
        .when(pl.col("period").is_not_null()).then(pl.concat_str(pl.lit("period="), pl.col("period")))
        .when(pl.col("body") != "").then(pl.col("body"))
    )
    raw_fn = pl.col("fn")
    s = s.with_columns(
        seq=pl.col("line"),
        cpu=pl.col("cpu").cast(pl.Int32, strict=False),
        # perf's unknown thread prints as ":-1    -1": no task, so no pid and no comm.
        pid=pl.coalesce(pl.col("tid"), pl.col("pid")).cast(pl.Int32, strict=False).replace(-1, None),
        comm=pl.when(~pl.col("comm").str.contains(r"^:-?\d+$")).then(pl.col("comm").str.strip_chars()),
        ts_ns=ts_ns,
        kind=pl.when(pl.col("is_record")).then(pl.lit(Kind.MARKER))
        .when(raw_fn.is_null()).then(pl.lit(Kind.SAMPLE))
        .when(pl.col("ret").is_not_null()).then(pl.lit(Kind.KPROBE_EXIT))
        .otherwise(pl.lit(Kind.KPROBE_ENTRY)),
        func=canonical_expr(raw_fn),
        body=body,
    ).with_columns(
        raw_func=pl.when(raw_fn != pl.col("func")).then(raw_fn),
    )
    return conform(s)
