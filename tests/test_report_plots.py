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
            assert _png_size(files["png"]) == (640, 400)
            root = ET.parse(files["svg"]).getroot()
            assert root.tag.endswith("svg")
            svg = files["svg"].read_text()
            assert func in svg  # the title is text in the SVG
            assert "call duration (us" in svg  # axis with its unit
            assert "before (n=52" in svg and "after (n=52" in svg  # the legend


def test_window_plot(plots):
    if not latency_format_available():
        pytest.skip("the latency-tracer parser is not registered in tracekit.parsers yet")
    files = plots["x86_64"]["window:preemptoff"]
    w, h = _png_size(files["png"])
    assert w == 640 and h > 200
    svg = files["svg"].read_text()
    ET.fromstring(svg)
    assert "time since the window opened (us)" in svg
    assert "exit_mmap" in svg  # the before window started there


def test_trace_strings_are_not_mathtext(tmp_path):
    # A '$' in a task or function name would otherwise start matplotlib's mathtext (and
    # an unbalanced one would fail to parse).
    import numpy as np

    from tracekit.reports.plots import plot_cdf

    files = plot_cdf("x86_64: $weird_$func^ <b>", np.arange(1000, 2000), np.arange(1100, 2100),
                     tmp_path / "w", labels=("before $", "after"))
    svg = files["svg"].read_text()
    assert "$weird_$func^ &lt;b&gt;" in svg
