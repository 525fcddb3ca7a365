"""The kernel log (``dmesg``, the serial console, ``/dev/kmsg`` via ``dmesg -r``).

Each line is a printk record: ``[%5lu.%06lu] message`` (``print_time()`` in
kernel/printk/printk.c), optionally preceded by the ``<level>`` of ``dmesg -r`` and followed
by the ``[    T123]`` / ``[    C1]`` caller field of CONFIG_PRINTK_CALLER.  Every record is
kept as an event (``printk``) beside the traces it explains: soft-lockup and RCU-stall
reports, the tracer's own messages.  The banner (``Linux version 6.1.192-tkA (...) #2 SMP
PREEMPT ...``) gives the kernel release and preemption model, and ``Command line:`` the
boot options.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import polars as pl

from tracekit.parsers import FormatInfo
from tracekit.parsers.base import LineChunk, ParseContext
from tracekit.schema import Kind, conform

__all__ = ["FORMAT", "sniff", "parse"]

FORMAT = FormatInfo(
    name="dmesg",
    kind="text",
    description="kernel log: dmesg, serial console, dmesg -r (printk records)",
    example="[    0.000000] Linux version 6.1.192-tkA (root@vm) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #2 SMP PREEMPT Thu Nov 26 01:27:51 UTC 2026",
)

_LINE_RE = (
    r"^(?:<(?P<level>\d+)>)?\[\s*(?P<secs>\d+)\.(?P<frac>\d+)\]"
    r"(?:\[\s*(?P<caller>[TC]\d+)\])?\s?(?P<msg>.*?)\s*$"
)
_BANNER_RE = r"^Linux version (\S+) .*?#\d+\s+(.*)$"


def sniff(head: str) -> int:
    lines = [ln for ln in head.splitlines()[:100] if ln.strip()]
    if not lines:
        return 0
    rx = re.compile(_LINE_RE)
    hits = sum(1 for ln in lines if rx.match(ln))
    return 70 if hits * 10 >= len(lines) * 9 else 0


def _banner(msgs: pl.Series, ctx: ParseContext) -> None:
    ver = msgs.str.extract_groups(_BANNER_RE).struct.unnest().drop_nulls()
    if len(ver) and "kernel" not in ctx.meta:
        release, flags = ver.row(0)
        ctx.meta["kernel"] = release
        # "#2 SMP PREEMPT_DYNAMIC ...", "#1 SMP PREEMPT_RT ...", "#2 SMP PREEMPT ..."
        for word, model in (("PREEMPT_RT", "rt"), ("PREEMPT_DYNAMIC", "dynamic"), ("PREEMPT", "full")):
            if re.search(rf"\b{word}\b", flags):
                ctx.meta.setdefault("preempt_model", model)
                break
    cmd = msgs.str.extract(r"^Command line: (.*)$", 1).drop_nulls()
    if len(cmd):
        ctx.meta.setdefault("cmdline", cmd[0])
        m = re.search(r"\bpreempt=(\w+)", cmd[0])
        if m:
            ctx.meta["preempt_model"] = m.group(1)
    dyn = msgs.str.extract(r"^Dynamic Preempt: (\w+)", 1).drop_nulls()
    if len(dyn):
        ctx.meta["preempt_model"] = dyn[0]


def parse(chunks: Iterator[LineChunk], ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """One ``printk`` event per record."""
    ctx.meta.setdefault("tracer", "printk")
    for chunk in chunks:
        if len(chunk.lines) == 0:
            continue
        df = pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines})
        df = df.filter(pl.col("text").str.strip_chars() != "")
        g = df.select("line", m=pl.col("text").str.extract_groups(_LINE_RE)).unnest("m")
        bad = g.filter(pl.col("msg").is_null())
        if bad.height:
            ctx.skip("not a printk record", bad.height)
            ctx.meta.setdefault("first_skipped_line", int(bad["line"][0]))
        g = g.filter(pl.col("msg").is_not_null())
        _banner(g["msg"], ctx)
        out = g.select(
            seq="line",
            line="line",
            ts_ns=pl.col("secs").cast(pl.Int64) * 1_000_000_000
            + pl.col("frac").str.pad_end(9, "0").str.slice(0, 9).cast(pl.Int64),
            kind=pl.lit(Kind.EVENT),
            event=pl.lit("printk"),
            flags=pl.col("level"),
            pid=pl.col("caller").str.strip_prefix("T").cast(pl.Int32, strict=False),
            cpu=pl.col("caller").str.strip_prefix("C").cast(pl.Int32, strict=False),
            body="msg",
        )
        if out.height:
            yield conform(out)
