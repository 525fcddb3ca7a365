"""Small helpers shared by the tests: an ingest into a throw-away store, and deliberately
simple, line-by-line readers that derive expected values independently of the parsers."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import polars as pl

import tracekit

_CLONE = re.compile(r"(\.(isra|constprop|part|cold|lto_priv|llvm)(\.\d+)?)+$")


def ingest_text(tmp_path: Path, text: str, name: str = "t.txt", **kw) -> tuple[tracekit.ingest, object]:
    """Write ``text`` to a file, ingest it into a fresh store; return (result, store)."""
    p = tmp_path / name
    p.write_text(text)
    store = tracekit.open_store(tmp_path / f"store-{name}")
    (res,) = tracekit.ingest([str(p)], store=store, on_error="collect", **kw)
    return res, store


def kernel_duration_ns(text: str) -> int:
    """``1.382`` -> 1382, ``33998.59`` -> 33998590, ``3594274`` -> 3594274000 (us, the
    fraction being the leading digits of the three-digit nanoseconds)."""
    if "." in text:
        us, frac = text.split(".")
        return int(us) * 1000 + int((frac + "000")[:3])
    return int(text) * 1000


def simple_fgraph_sums(path: Path) -> dict[str, tuple[int, int]]:
    """Per function: (number of calls with a stated duration, sum of those durations in ns),
    read the naive way: one Python stack per task, a line at a time."""
    stacks: dict[object, list[str]] = defaultdict(list)
    current: dict[str, str] = {}
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#") or not line.strip() or set(line.strip()) == {"-"}:
            continue
        m = re.match(r"^\s*(\d+)\)\s+(\S+)\s+=>\s+(\S+)\s*$", line)
        if m:
            current[m.group(1)] = m.group(3)
            continue
        if "|" not in line:
            continue
        cpu = re.match(r"^\s*(?:\d+\.\d+ \|\s*)?(\d+)\)", line).group(1)
        procm = re.search(r"\)\s+(\S+-\d+)\s+\|", line)
        task = procm.group(1) if procm else current.get(cpu, "cpu" + cpu)
        body = line.rsplit("|  ", 1)[1].strip() if "|  " in line else ""
        durm = re.search(r"(\d+(?:\.\d+)?) us", line)
        if body.endswith(") {"):
            stacks[task].append(body.split("(")[0])
            continue
        if body.endswith(");"):
            name = body.split("(")[0]
        elif body.startswith("}"):
            tail = re.search(r"/\* (\S+?) \*/", body)
            name = stacks[task].pop() if stacks[task] else None
            if tail:
                name = tail.group(1)
        else:
            continue
        if durm and name:
            name = _CLONE.sub("", name.lstrip("."))
            out[name][0] += 1
            out[name][1] += kernel_duration_ns(durm.group(1))
    return {k: (v[0], v[1]) for k, v in out.items()}


def store_sums(store, run_id: str) -> dict[str, tuple[int, int]]:
    df = (
        store.spans()
        .filter(pl.col("run_id") == run_id, pl.col("dur_ns").is_not_null())
        .group_by("func")
        .agg(pl.len().alias("n"), pl.col("dur_ns").sum().alias("s"))
        .collect()
    )
    return {r["func"]: (r["n"], r["s"]) for r in df.iter_rows(named=True)}


def print_graph_duration(dur_ns: int, mark: str) -> str:
    """The duration column as print_graph_duration() prints it: the mark (or a space) and a
    space, ``%lu`` microseconds, then ``.nsecs`` cut so that the number keeps to seven
    digits, `` us `` and spaces up to eight characters, then ``|``."""
    usecs, rem = divmod(dur_ns, 1000)
    s = str(usecs)
    if len(s) < 7:
        s += "." + f"{rem:03d}"[: min(3, 7 - len(s))]
    return f" {mark} " + s + " us " + " " * max(0, 8 - len(s)) + "|"


def stated_duration_ns(dur_ns: int) -> int:
    """A duration as print_graph_duration()'s text states it (the cut fraction digits are
    lost)."""
    usecs, rem = divmod(dur_ns, 1000)
    keep = min(3, max(0, 7 - len(str(usecs))))
    return usecs * 1000 + (rem // 10 ** (3 - keep)) * 10 ** (3 - keep) if keep else usecs * 1000


def damage(draw, text: str, alphabet: bytes, least: int = 0) -> str:
    """``text`` damaged (for hypothesis ``draw``): ``least`` to 3 bytes replaced by, or
    inserted from, ``alphabet``, or the line cut; read back as Latin-1."""
    from hypothesis import strategies as st

    b = bytearray(text.encode())
    for _ in range(draw(st.integers(least, 3))):
        what = draw(st.sampled_from(["replace", "insert", "cut"]))
        at = draw(st.integers(0, max(len(b) - 1, 0)))
        byte = draw(st.sampled_from(alphabet))
        if what == "replace" and b:
            b[at] = byte
        elif what == "insert":
            b.insert(at, byte)
        else:
            del b[at:]
    return b.decode("latin-1")


def assert_general_reads_as_taken(general: pl.DataFrame, fast: pl.DataFrame, on: str,
                                  columns: Sequence[str]) -> None:
    """Every row a compiled scanner took (``fast``) is one the general (reference) path
    read too, matched on ``on``, with equal values in each of ``columns``."""
    both = general.join(fast, on=on, how="inner", suffix="_fast")
    assert both.height == fast.height, "a line taken by the compiled path that the general path does not read"
    for col in columns:
        assert both[col].equals(both[f"{col}_fast"].alias(col), check_names=False), (col, both.select(col, f"{col}_fast"))


def taken_as_printed(fast: pl.DataFrame, lines: Sequence[str], wants: Sequence[dict | None]) -> dict[int, dict]:
    """Check that every line printed the kernel's way (``wants[i]`` not None: the values it
    was printed from) is taken by the compiled scanner with those values; returns the rows
    taken, by line number."""
    taken = dict(zip(fast["line"].to_list(), fast.iter_rows(named=True)))
    for i, want in enumerate(wants, start=1):
        if want is not None:
            assert i in taken, lines[i - 1]
            for k, v in want.items():
                assert taken[i][k] == v, (k, lines[i - 1])
    return taken
