"""The bundled QEMU captures (fixtures/x86_64, fixtures/ppc64le) are what fixtures/README.md
says they are, and ingest into the teardown calls their workload made."""

from __future__ import annotations

import gzip
import re

import polars as pl
import pytest

# pgtfree 10 16 3 (x86_64) and pgtfree 10 64 3 (ppc64le): 10 children each munmap half their
# mapping (10 unmap_region) and the parent unmaps 3 times (3 more): 13 unmap_region.  The
# exit_mmap calls: the shell child's mm torn down when it execs pgtfree, 10 children exiting,
# pgtfree itself exiting: 12.  Counted by hand too, in each of the four
# fgraph_exit_mmap.txt.gz (all written by tracekit capture):
# zgrep -cE '\|\s+exit_mmap\(\) \{' -> 12 and zgrep -cE '\|\s+unmap_region\(\) \{' -> 13.
EXIT_MMAP = 12
UNMAP_REGION = 13

SIDES = {
    ("x86_64", "before"): ("fgraph_exit_mmap", "6.1.0-56-amd64", "(none) voluntary full"),
    ("x86_64", "after"): ("fgraph_exit_mmap", "6.1.0-56-amd64", "none voluntary (full)"),
    ("ppc64le", "before"): ("fgraph_exit_mmap", "6.1.0-47-powerpc64le", None),
    ("ppc64le", "after"): ("fgraph_exit_mmap", "6.1.0-50-powerpc64le", None),
}


@pytest.mark.parametrize("arch, side", sorted(SIDES))
def test_fixture_metadata_matches_readme(fixtures_dir, arch, side):
    _, release, preempt = SIDES[(arch, side)]
    info = (fixtures_dir / arch / side / "info.txt").read_text()
    assert f" {release} " in info.splitlines()[0]
    assert "transparent_hugepage=never" in info
    if preempt:
        assert preempt in info
    stats = "".join(p.read_text() for p in (fixtures_dir / arch / side).glob("*.stats.txt"))
    assert "overrun: 0" in stats and " overrun: 1" not in stats


@pytest.mark.parametrize("arch, side", sorted(SIDES))
def test_fixture_ingests_into_the_workload_teardown_calls(fixtures_dir, tmp_path, arch, side):
    import tracekit

    name, release, _ = SIDES[(arch, side)]
    path = fixtures_dir / arch / side / f"{name}.txt.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    assert text.count("|  exit_mmap() {") == EXIT_MMAP
    res = tracekit.ingest([str(path)], store=tmp_path / "s", arch=arch, kernel=release,
                          patch="fx", label=side, on_error="collect")  # fmt: skip
    assert res[0].error is None, res[0].error
    spans = tracekit.open_store(tmp_path / "s").spans().collect()
    counts = dict(spans.group_by("func").len().iter_rows())
    assert counts["exit_mmap"] == EXIT_MMAP
    assert counts["unmap_region"] == UNMAP_REGION
    assert spans.filter(pl.col("func") == "exit_mmap")["complete"].all()


def test_capture_summary_of_a_fixture(fixtures_dir, tmp_path):
    import tracekit
    from tracekit.capture.runner import summarise

    path = fixtures_dir / "x86_64" / "before" / "fgraph_exit_mmap.txt.gz"
    res = tracekit.ingest([str(path)], store=tmp_path / "s", arch="x86_64", on_error="collect")
    rows = {r["func"]: r for r in summarise(tmp_path / "s", [res[0].run_id])}
    assert rows["exit_mmap"]["calls"] == EXIT_MMAP and rows["unmap_region"]["calls"] == UNMAP_REGION
    # the graph roots (exit_mmap, unmap_region) close at depth 0 ("|  }"): the largest
    # duration stated on those lines is the longest of either
    text = gzip.decompress(path.read_bytes()).decode()
    closing = [ln for ln in text.splitlines() if ln.rstrip().endswith("|  }")]
    durs = [float(m.group(1)) for ln in closing if (m := re.search(r"([\d.]+) us", ln))]
    assert rows["unmap_region"]["max_ns"] <= round(max(durs) * 1000)
    assert rows["exit_mmap"]["max_ns"] <= round(max(durs) * 1000)
    assert round(max(durs) * 1000) in (rows["exit_mmap"]["max_ns"], rows["unmap_region"]["max_ns"])
