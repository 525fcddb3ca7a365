"""trace.dat emitted by the model (v6 flyrecord, both byte orders, 4- and 8-byte longs), read
back by ``tracekit.ingest``: funcgraph_entry/exit records pair into spans whose calls and
durations (rettime - calltime) equal the ground truth, tlb_flush records all arrive, and the
arch comes from the file's UNAME.  Several ring-buffer pages per CPU are exercised.
"""

from __future__ import annotations

import polars as pl
import pytest

import tracekit
from tracekit.model.emit import emit

CASES = [
    ("x86_64", "v2622", "anon:2MiB"),  # 8-byte long, little-endian, 4 KiB pages
    ("ppc64", "hugh2007", "anon:1MiB,anon:64KiB"),  # big-endian, ELFv1 dot symbols
    ("i386", "v2622", "anon:1MiB"),  # 4-byte long
    ("ia64", "v2622", "anon:8MiB"),  # 16 KiB ring-buffer pages
]


@pytest.mark.parametrize("arch, strategy, workload", CASES)
def test_tracedat_round_trip_both_byte_orders(tmp_path, arch, strategy, workload):
    t = emit(tmp_path, arch=arch, strategy=strategy, preempt=True, workload=workload,
             formats=("tracedat", "tracedat_swapped"))
    store = tmp_path / "store"
    for fmt in ("tracedat", "tracedat_swapped"):
        truth = t[fmt]
        # more records than one page holds: the page walk is exercised
        per_page = (truth["page_size"] - 8 - truth["long_size"]) // (4 + 32 + truth["long_size"])
        assert truth["records"] > 2 * per_page
        res = tracekit.ingest([str(tmp_path / t["files"][fmt])], store=str(store), patch=arch, label=fmt)
        assert res[0].error is None, res[0].error
        assert res[0].arch == {"x86_64": "x86_64", "ppc64": "ppc64", "i386": "i386", "ia64": "ia64"}[arch]
        st = tracekit.open_store(str(store))
        spans = st.spans().filter((pl.col("patch") == arch) & (pl.col("label") == fmt)).collect()
        assert spans["complete"].all()
        got = spans.group_by("func").agg(calls=pl.len(), dur_ns_sum=pl.col("dur_ns").sum())
        assert {r["func"]: {"calls": r["calls"], "dur_ns_sum": r["dur_ns_sum"]}
                for r in got.iter_rows(named=True)} == truth["functions"]
        ev = st.events().filter((pl.col("patch") == arch) & (pl.col("label") == fmt)
                                & (pl.col("event") == "tlb_flush")).collect()
        assert ev.height == truth["tlb_flush_records"]


def test_byte_orders_differ_only_in_encoding(tmp_path):
    t = emit(tmp_path, arch="ppc64", strategy="v2622", preempt=True, workload="anon:64KiB",
             formats=("tracedat", "tracedat_swapped"))
    be = (tmp_path / t["files"]["tracedat"]).read_bytes()
    le = (tmp_path / t["files"]["tracedat_swapped"]).read_bytes()
    assert be[12] == 1 and le[12] == 0  # the endian byte after "\x17\x08Dtracing6\0"
    assert len(be) == len(le) and be != le
    assert b"T .free_pgtables\n" in be  # kallsyms with ELFv1 dot symbols
    assert t["tracedat"]["functions"] == t["tracedat_swapped"]["functions"]
