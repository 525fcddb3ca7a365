"""Plots: valid PNG and SVG files of the size a mail attachment is read at."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET

import pytest

from _report_store import kbuild_store, latency_format_available
from tracekit.reports.compare import compare, open_source
from tracekit.reports.plots import make_plots


@pytest.fixture(scope="module")
def plots(tmp_path_factory):
    c = compare(open_source(kbuild_store()), "pgfree-lat", functions=["free_pgtables"])
    return make_plots(c, tmp_path_factory.mktemp("plots"))


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_function_plots(plots):
    made = plots["x86_64"]
    for func in ("free_pgtables",):
        for kind in ("cdf", "hist"):
            files = made[f"{kind}:{func}"]
            w, h = _png_size(files["png"])
            assert w >= 1000 and h >= 500
            root = ET.parse(files["svg"]).getroot()
            assert root.tag.endswith("svg")
            svg = files["svg"].read_text()
            assert f"pgfree-lat (x86_64): {func}()" in svg  # the patch and the function in the title
            assert "call duration (ms" in svg  # medians 17.3 and 17.6 ms: the axis in ms
            assert "before: 52 calls in 1 unit" in svg and "after: 52 calls in 1 unit" in svg  # the legend


def test_ticks_125_by_hand():
    from tracekit.reports.plots import ticks_125, time_unit

    assert ticks_125(3.0, 700.0) == [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
    # fewer than three of 1, 2, 5 fit: 1 to 9 times the powers of ten
    assert ticks_125(1.5, 9.5) == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    # within a decade: evenly spaced, at most eight
    assert ticks_125(0.9, 1.2) == [0.9, 0.95, 1.0, 1.05, 1.1, 1.15]
    assert ticks_125(82.0, 197.0) == [100.0, 120.0, 140.0, 160.0, 180.0]
    assert time_unit([900, 1100, 1500]) == ("us", 1e3)
    assert time_unit([17.3e6, 17.6e6]) == ("ms", 1e6)
    assert time_unit([40, 900]) == ("ns", 1.0)


def test_window_plot(plots):
    if not latency_format_available():
        pytest.skip("the latency-tracer parser is not registered in tracekit.parsers yet")
    files = plots["x86_64"]["window:preemptoff"]
    w, h = _png_size(files["png"])
    assert w >= 1000 and h > 300
    svg = files["svg"].read_text()
    ET.fromstring(svg)
    assert "time since the window opened (ms)" in svg  # 11.57 and 1.441 ms windows
    assert "exit_mmap" in svg  # the before window started there


def test_window_of_any_size_labels_only_what_matters(tmp_path):
    # A window recorded with function tracing: 44,000 lines.  Every line is drawn as one
    # tick of one collection; only the first, the last and the lines before the longest
    # gaps are labelled.
    import numpy as np
    import polars as pl

    from tracekit.reports.compare import WindowSide
    from tracekit.reports.plots import WINDOW_LABELS, plot_window

    n = 44_000
    ts = np.cumsum(np.full(n, 250, dtype=np.int64))
    ts[20_000:] += 3_000_000  # one long gap: 3 ms without a line
    ev = pl.DataFrame({"seq": np.arange(n), "ts_ns": ts, "cpu": np.zeros(n, dtype=np.int32),
                       "func": [f"fn{i % 97}" for i in range(n)]})
    side = WindowSide([14_000_000], 1, 14_000_000, "exit_mmap", "exit_mmap", "pgtfree", 1, 0, "r1", 0,
                      None, "big.txt", ev, {"r1": 14_000_000})
    files = plot_window("synthetic: worst preemptoff window", [("before", side)], tmp_path / "big")
    svg = files["svg"].read_text()
    labels = svg.count(" @")
    assert 2 <= labels <= WINDOW_LABELS
    # line 19999 (fn17: 19999 = 97 * 206 + 17), 4.99975 ms after the first, opens the 3 ms gap
    assert "fn17 @5ms" in svg
    assert f"{n} lines (drawn as their density), {labels} labelled" in svg


def test_a_new_report_removes_the_old_plots(tmp_path):
    from tracekit.reports.report import write_report

    out = tmp_path / "rep"
    write_report("pgfree-lat", store=kbuild_store(), out_dir=out, formats="md", functions=["free_pgtables", "exit_mmap"])
    assert (out / "plots" / "x86_64-exit_mmap-cdf.png").exists()
    (out / "plots" / "notes.txt").write_text("mine")
    write_report("pgfree-lat", store=kbuild_store(), out_dir=out, formats="md", functions=["free_pgtables"])
    names = {p.name for p in (out / "plots").iterdir()}
    assert not any(n.startswith("x86_64-exit_mmap") for n in names)
    assert "x86_64-free_pgtables-cdf.svg" in names and "notes.txt" in names  # not ours: kept


def test_trace_strings_are_not_mathtext(tmp_path):
    # A '$' in a task or function name would otherwise start matplotlib's mathtext (and
    # an unbalanced one would fail to parse).
    import numpy as np

    from tracekit.reports.plots import plot_cdf

    files = plot_cdf("x86_64: $weird_$func^ <b>", [("before $", np.arange(1000, 2000), [1500.0]),
                                                   ("after", np.arange(1100, 2100), [1600.0])], tmp_path / "w")
    svg = files["svg"].read_text()
    assert "$weird_$func^ &lt;b&gt;" in svg


def test_ecdf_of_many_calls_is_exact_at_its_ranks():
    import numpy as np

    from tracekit.reports.plots import _ecdf

    x = np.arange(10_000, 0, -1, dtype=np.float64)  # 1..10000, reversed
    xs, y = _ecdf(x, points=101)
    # ranks 0, 99.99 -> 99, ..., 9999: value rank+1, fraction (rank+1)/10000
    assert xs.size == 101 and xs[0] == 1.0 and xs[-1] == 10_000.0 and y[-1] == 1.0
    assert np.allclose(y, xs / 10_000)
    small, ys = _ecdf(np.array([3.0, 1.0, 2.0, 0.0]))  # non-positive values are not drawn on a log axis
    assert list(small) == [1.0, 2.0, 3.0] and list(ys) == [1 / 3, 2 / 3, 1.0]
