"""Traces as people paste them: quoted in mail, indented in documentation, wrapped by mail
clients.

The kernel prints its ``trace`` text from the first column: the ``#`` header lines of
``print_trace_header()`` / ``print_func_help_header()`` (kernel/trace/trace.c) and
trace-cmd's ``cpus=N`` / ``version = 6`` lines always start there.  A reviewer who quotes a
trace in a reply puts ``> `` (nested: ``> > ``) before every line; the kernel's
Documentation/trace/*.rst indents its examples by spaces or tabs (a literal block); a mail
client wraps lines longer than its width (66 to 78 columns) at a space, so a long
function_graph or latency line arrives in two.

This module finds such a prefix in the first bytes of an input (:func:`find_paste`), before
format detection, and gives back the text as the kernel printed it, chunk by chunk
(:func:`unpaste`): the prefix removed from every line, and a line the format cannot begin
(``<-smp_apic_timer_interrupt``, ``very_long_function_name();``) joined back onto the line
it was broken from.  Line numbers stay those of the file: a rejoined continuation leaves a
blank line where it was.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from tracekit.parsers.base import LineChunk

__all__ = ["Paste", "Rejoined", "find_paste", "strip_text", "strip_head", "decode_quoted_printable", "rejoin", "wraps_in", "unpaste",
           "WRAP_WIDTH"]

#: Mail quote markers at the start of a line, nested or not: ``> ``, ``> > ``, ``>> ``.
_QUOTE_RE = re.compile(r"^((?:[ \t]*>)+)")
#: Lines that only the kernel's or trace-cmd's own header can begin with: printed from the
#: first column, so indentation before them is the document's, not the trace's.
_HEADER_RE = re.compile(r"^[ \t]*(?:#|cpus=\d|version = \d)")
#: The narrowest width a mail client wraps at (RFC 3676 recommends 66 for format=flowed;
#: common clients use 72 to 78): a line is broken only where the next word would pass it.
WRAP_WIDTH = 66
#: Where no record line of the kernel's ends: after the '|' before a function_graph call
#: tree, the ':' before a latency or event body, an open argument list.  A client that
#: breaks a line there drops the blanks before the break, so the width rule cannot see it.
_UNFINISHED_RE = r"(?:\||:|\(|,|<-)\s*$"


@dataclass(frozen=True)
class Paste:
    """How a trace was pasted: ``quoted_printable`` when it is still in a mail's
    quoted-printable transfer encoding (RFC 2045: ``=3D`` for ``=``, a line ending in
    ``=`` continued on the next), ``quote_depth`` levels of mail quoting (``> ``) and
    ``indent`` columns of indentation (tabs count to the next multiple of 8) around the
    text the kernel printed, and whether lines broken by a mail client are to be rejoined
    (``rejoin``: the format's regex of what may begin a line of its own, or None)."""

    quote_depth: int = 0
    indent: int = 0
    rejoin: str | None = None
    quoted_printable: bool = False

    def __bool__(self) -> bool:
        return bool(self.quote_depth or self.indent or self.rejoin or self.quoted_printable)

    def describe(self) -> str:
        """What was removed, in words, for the run's warning."""
        what = []
        if self.quoted_printable:
            what.append("the mail's quoted-printable encoding")
        if self.quote_depth:
            what.append(f"{self.quote_depth} level(s) of mail quoting ('>')")
        if self.indent:
            what.append(f"an indentation of {self.indent} column(s)")
        return " and ".join(what)


def _expand_lead(line: str) -> str:
    """The line with the tabs of its leading whitespace expanded to 8-column stops."""
    body = line.lstrip(" \t")
    return line[: len(line) - len(body)].expandtabs(8) + body


#: What only a trace's own lines begin with, once unquoted: a "#" header line, or a
#: record's "comm-pid" context followed by a CPU ("[003]", or the latency format's "0d...").
_TRACE_LINE_RE = re.compile(r"^\s*(?:#|\S.*?-\d+\s+(?:\(\s*[\d-]+\)\s+)?(?:\[\d+\]|\d+[.a-zA-Z]))")


def _quote_depth(lines: list[str]) -> int:
    """How deeply the trace is quoted, when most of the trace's own lines (or, failing
    those, of all non-blank lines) are quoted: the depth most of the quoted trace lines
    (headers, records) have.  Lines a client wrapped after
    quoting carry fewer markers, a reply's own words fewer or none; they lose what they
    have, and what is not a trace is read as lines not understood.  0 when not quoted."""
    quoted = [m for ln in lines if (m := _QUOTE_RE.match(ln))]
    in_quote = sum(1 for m in quoted if _TRACE_LINE_RE.match(m.string[m.end():]))
    outside = sum(1 for ln in lines if not _QUOTE_RE.match(ln) and _TRACE_LINE_RE.match(ln))
    # a whole message (headers, prose) counts its trace lines; a bare excerpt its lines
    if in_quote <= outside and len(quoted) * 2 <= len(lines):
        return 0
    depths = Counter()
    for m in quoted:
        rest = m.string[m.end():]
        if not rest.strip():
            continue  # a quoted blank line (">", "> >") says nothing about the depth
        d = m.group(1).count(">")
        depths[d] += 1 if _TRACE_LINE_RE.match(rest) else 0  # (a key for every depth seen)
    if not depths:
        return 0
    best = max(depths.values())
    if best == 0:  # no trace line among the quoted ones: the shallowest quoting
        return min(depths)
    return max(d for d, n in depths.items() if n == best)


def _indent(lines: list[str]) -> int:
    """The indentation every non-blank line shares, when the trace's own header lines carry
    it (the kernel prints them from the first column); 0 otherwise."""
    if not any(_HEADER_RE.match(ln) and ln[:1] in (" ", "\t") for ln in lines):
        return 0
    widths = [len(e) - len(e.lstrip(" ")) for e in (_expand_lead(ln) for ln in lines if ln.strip())]
    return min(widths) if widths else 0


def find_paste(head: bytes) -> Paste:
    """The quoting and indentation of the first bytes of an input (decompressed).  Quoting
    counts where most trace lines (or most lines) have it, indentation where every line has
    it and the trace's own header shows it; an empty :class:`Paste` otherwise."""
    if b"\0" in head:
        return Paste()  # binary (trace.dat)
    text = head.decode("latin-1")
    lines = text.split("\n")
    if len(lines) > 1 and not text.endswith("\n"):
        lines = lines[:-1]  # the head may end inside a line
    lines = [ln.rstrip("\r") for ln in lines[:4000]]
    qp = _is_quoted_printable(lines)
    if qp:
        lines = decode_quoted_printable(lines)
    nonblank = [ln for ln in lines if ln.strip()]
    if not nonblank:
        return Paste(quoted_printable=qp)
    depth = _quote_depth(nonblank)
    if depth:
        quoted = pl.Series("text", [ln for ln in nonblank if _QUOTE_RE.match(ln)], dtype=pl.String)
        nonblank = [ln for ln in _strip_series(quoted, Paste(quote_depth=depth)).to_list() if ln.strip()]
    return Paste(quote_depth=depth, indent=_indent(nonblank), quoted_printable=qp)


def strip_text(text: str, paste: Paste) -> str:
    """``text`` (whole lines) without the paste's prefix: what format detection reads."""
    lines = text.split("\n")
    if paste.quoted_printable:
        lines = decode_quoted_printable(lines)
    return "\n".join(_strip_series(pl.Series("text", lines, dtype=pl.String), paste).to_list())


def strip_head(head: bytes, paste: Paste) -> bytes:
    """The first bytes of a pasted trace without the paste's prefix (what format detection
    reads): read as Latin-1, and written back as UTF-8, since a quoted-printable line's
    escapes are decoded as UTF-8 where they spell it (any character, not only Latin-1's)."""
    return strip_text(head.decode("latin-1"), paste).encode("utf-8")


#: A quoted-printable escape (RFC 2045 6.7: "=" and two upper-case hex digits).
_QP_ESCAPE_RE = re.compile(r"=([0-9A-F]{2})")


def _is_quoted_printable(lines: list[str]) -> bool:
    """Text still in quoted-printable form: soft line breaks (a line ending in a lone "=")
    together with "=3D" escapes of the "=" the trace printed; or escapes no trace prints on
    its own: "=3D>" for the "=>" of stack frames, headers and task switches, "=3D " for a
    retval's "= ", "=20" for a line's trailing blank."""
    soft = any(ln.endswith("=") and not ln.endswith("==") for ln in lines)
    escaped = any("=3D" in ln for ln in lines)
    telling = any("=3D>" in ln or "=3D " in ln or ln.endswith("=20") for ln in lines)
    return (soft and escaped) or telling


def decode_quoted_printable(lines: list[str]) -> list[str]:
    """Undo the quoted-printable encoding line by line: a soft line break joins the next
    line onto this one (which leaves a blank line, so that line numbers stay the file's),
    escapes become their bytes (read as UTF-8, else Latin-1)."""
    out = list(lines)
    i = 0
    while i < len(out):
        j = i
        while out[i].endswith("=") and not _QP_ESCAPE_RE.search(out[i][-3:]) and j + 1 < len(out):
            j += 1
            out[i] = out[i][:-1] + out[j]
            out[j] = ""
        i = j + 1
    return [_unescape(ln) if "=" in ln else ln for ln in out]


def _unescape(line: str) -> str:
    """A quoted-printable line's escapes as the bytes they stand for, the line read as UTF-8
    (its other characters kept as they are, whatever they are), else each escape as a
    Latin-1 character (the -rt traces' "=B5" for "µ")."""
    parts = _QP_ESCAPE_RE.split(line)  # text, hex digits, text, ...
    raw = b"".join(bytes([int(p, 16)]) if i % 2 else p.encode("utf-8") for i, p in enumerate(parts))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _QP_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), line)


def _strip_series(lines: pl.Series, paste: Paste) -> pl.Series:
    """The paste's quoting and indentation removed from every line (of a chunk, or of the
    first bytes read for detection)."""
    s = lines
    if paste.quote_depth:
        # quoted lines lose the markers, up to the trace's depth, and one space; a line
        # quoted less deeply (a quoted blank line, a line wrapped after quoting) loses
        # what it has
        s = s.str.replace(r"^(?:[ \t]*>){1," + str(paste.quote_depth) + r"} ?", "")
    if paste.indent:
        tabbed = s.str.contains(r"^[ ]*\t")
        if tabbed.any():
            s = pl.Series(s.name, [_expand_lead(x) if t else x for x, t in zip(s.to_list(), tabbed.to_list())],
                          dtype=pl.String)
        n = paste.indent
        s = (
            pl.DataFrame({"s": s})
            .select(
                pl.when(pl.col("s").str.starts_with(" " * n))
                .then(pl.col("s").str.slice(n))
                .otherwise(pl.col("s").str.strip_chars_start(" "))
            )
            .to_series()
            .alias(lines.name)
        )
    return s


@dataclass
class Rejoined:
    """What :func:`rejoin` did: ``joined`` continuations put back on their line, and
    ``orphans``, lines the format cannot begin that follow no line they could finish."""

    joined: int = 0
    orphans: int = 0


def rejoin(lines: pl.Series, own_line_re: str, raw_len: pl.Series | None = None) -> tuple[pl.Series, Rejoined]:
    """Join back the lines a mail client broke.

    A line is a continuation when the format cannot begin a line with it (it does not match
    ``own_line_re``) and the line before it was broken: it is not blank, and either its
    length (``raw_len``, as pasted, quote included) plus one plus the continuation's first
    word's exceeds :data:`WRAP_WIDTH`, or it is a record line ending where no record ends
    (``|``, ``:``, ``(``, ``,``, ``<-``).  Continuations are appended to their line with one space and leave
    a blank line behind (line numbers stay the file's)."""
    df = pl.DataFrame({"t": lines, "n": raw_len if raw_len is not None else lines.str.len_chars()})
    t = pl.col("t")
    blank = t.str.strip_chars() == ""
    word = t.str.strip_chars_start().str.extract(r"^(\S+)", 1).str.len_chars()
    df = df.with_columns(
        cont=~blank & ~t.str.contains(own_line_re),
        prev_blank=blank.shift(1, fill_value=True),
        wraps=((pl.col("n").shift(1, fill_value=0) + 1 + word) > WRAP_WIDTH)
        | (~t.str.starts_with("#") & t.str.contains(_UNFINISHED_RE)).shift(1, fill_value=False),
    ).with_columns(join=pl.col("cont") & ~pl.col("prev_blank") & pl.col("wraps"))
    stats = Rejoined(
        joined=int(df["join"].sum()),
        orphans=int((df["cont"] & ~df["join"]).sum()),
    )
    if not stats.joined:
        return lines, stats
    df = df.with_row_index("i").with_columns(g=(~pl.col("join")).cum_sum())
    heads = df.group_by("g", maintain_order=True).agg(
        pl.col("i").first(), joined=pl.col("t").str.strip_chars().str.join(" ").alias("j"),
        first=pl.col("t").first(), k=pl.len()
    )
    # the head keeps its own leading spaces (the columns of the line as printed)
    heads = heads.with_columns(
        text=pl.when(pl.col("k") > 1)
        .then(pl.col("first").str.extract(r"^(\s*)", 1) + pl.col("joined"))
        .otherwise(pl.col("first"))
    )
    out = df.join(heads.select("i", "text"), on="i", how="left").sort("i")
    fixed = out.select(pl.when(pl.col("join")).then(pl.lit("")).otherwise(pl.col("text"))).to_series()
    return fixed.alias(lines.name), stats


def wraps_in(head: bytes, own_line_re: str) -> bool:
    """Whether the first bytes of an input (prefix already removed) hold a line a mail
    client broke, by :func:`rejoin`'s rule."""
    if b"\0" in head:
        return False
    text = head.decode("latin-1")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    lines = pl.Series("text", text.split("\n")[:4000], dtype=pl.String)
    return rejoin(lines, own_line_re)[1].joined > 0


def unpaste(chunks: Iterator[LineChunk], paste: Paste, counts: Rejoined) -> Iterator[LineChunk]:
    """The chunks of a pasted trace with the paste undone (see the module docstring);
    ``counts`` adds up what :func:`rejoin` did over the whole input."""
    for chunk in chunks:
        lines = chunk.lines
        if paste.quoted_printable:  # a mail's size: line by line is fine
            lines = pl.Series("text", decode_quoted_printable(lines.to_list()), dtype=pl.String)
        raw_len = lines.str.len_chars()
        if paste.quote_depth or paste.indent:
            lines = _strip_series(lines, paste)
        if paste.rejoin:
            lines, r = rejoin(lines, paste.rejoin, raw_len)
            counts.joined += r.joined
            counts.orphans += r.orphans
        yield LineChunk(chunk.first_line, lines.alias("text"), is_last=chunk.is_last)
