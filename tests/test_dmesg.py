"""The kernel log (parsers/dmesg.py)."""

from __future__ import annotations

import polars as pl

import tracekit
from helpers import ingest_text


def test_kbuild_dmesg(tmp_path, corpus):
    store = tracekit.open_store(tmp_path / "s")
    (r,) = tracekit.ingest([str(corpus / "kbuild-x86_64-6.1.192/A/dmesg.txt")], store=store)
    assert r.status == "ingested" and r.format == "dmesg"
    # grep -c '^\[' = 132: every line is a printk record
    assert r.counts["events"] == 132 and r.counts["skipped_lines"] == 0
    # "Linux version 6.1.192-tkA (...) #2 SMP PREEMPT Thu Nov 26 ..."
    run = store.runs().collect().row(0, named=True)
    assert run["kernel"] == "6.1.192-tkA" and '"preempt_model": "full"' in run["config"]
    ev = store.events().collect().sort("seq")
    assert ev["ts_ns"][0] == 0 and ev["event"].unique().to_list() == ["printk"]


def test_levels_callers_and_preempt_option(tmp_path):
    text = (
        "<5>[    0.000000][    T0] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2\n"
        "<6>[    0.000000][    T0] Command line: console=ttyS0 preempt=none transparent_hugepage=never\n"
        "<4>[   12.345678][    C1] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [pgtfree:301]\n"
    )
    r, st = ingest_text(tmp_path, text, name="kmsg.txt")
    assert r.format == "dmesg" and r.kernel == "6.1.0-56-amd64" and r.arch == "x86_64"
    ev = st.events().collect().sort("seq")
    assert ev.select("flags", "pid", "cpu", "ts_ns").rows() == [("5", 0, None, 0), ("6", 0, None, 0), ("4", None, 1, 12345678000)]
    assert '"preempt_model": "none"' in st.runs().collect()["config"][0]
