"""A function's durations come from one tracer: function_graph and kprobe calls of the same
function (their overheads differ) are never pooled into one sample."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

import tracekit
from tracekit.reports.compare import compare, open_source

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "x86_64"


def test_one_tracer_per_function(tmp_path):
    store = tracekit.open_store(tmp_path / "s")
    for side in ("before", "after"):
        tracekit.ingest(
            [str(FIX / side / "fgraph_exit_mmap.txt.gz"), str(FIX / side / "kprobes.txt.gz")],
            store=store, patch="p", label=side, arch="x86_64",
        )
    sp = store.spans().filter(pl.col("func") == "exit_mmap", pl.col("complete")).collect()
    assert set(sp["source"]) == {"function_graph", "kprobe"}  # both tracers saw exit_mmap
    comp = compare(open_source(store.root), "p")
    (g,) = comp.groups
    fr = next(f for f in g.functions if f.function == "exit_mmap")
    fg = sp.filter(pl.col("source") == "function_graph")
    assert fr.source == "function_graph"
    assert (fr.before.n, fr.after.n) == (
        fg.filter(pl.col("label") == "before").height, fg.filter(pl.col("label") == "after").height
    )
