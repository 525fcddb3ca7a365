"""Property-based: random damage to a real trace never makes a parser raise; it yields
spans and counted skips, and every line is accounted for."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracekit import parsers
from tracekit.io import split_lines
from tracekit.parsers.base import LineChunk, ParseContext
from tracekit.spans import SpanBuilder

# The first 20000 bytes of one real capture per format, read when a test runs (the corpus
# fixture says clearly when the corpus is missing; collecting never reads it).
SAMPLE_FILES = {
    "function_graph": "qemu/x86_64-6.1.0-56-preempt-none/fgraph_procabs.txt",
    "ftrace": "qemu/x86_64-6.1.0-56-preempt-none/events.txt",
}


@pytest.fixture(scope="module")
def samples(corpus: Path) -> dict[str, bytes]:
    return {fmt: (corpus / rel).read_bytes()[:20000] for fmt, rel in SAMPLE_FILES.items()}


def _run(fmt: str, data: bytes) -> None:
    mod = parsers.get(fmt)
    ctx = ParseContext("damaged")
    lines = split_lines(data) if data else pl.Series("text", [], dtype=pl.String)
    b = SpanBuilder()
    for df in mod.parse(iter([LineChunk(1, lines, is_last=True)]), ctx):
        b.feed(df)
    b.finish()


damage = st.lists(
    st.tuples(st.integers(0, 19999), st.integers(0, 60), st.binary(max_size=12)),
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(SAMPLE_FILES)), edits=damage, cut=st.integers(0, 20000))
def test_random_damage_never_raises(samples, fmt, edits, cut):
    data = bytearray(samples[fmt][:cut] if cut else samples[fmt])
    for pos, length, junk in edits:
        pos = min(pos, len(data))
        data[pos : pos + length] = junk
    _run(fmt, bytes(data))


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_arbitrary_text_never_raises(text):
    for fmt in SAMPLE_FILES:
        _run(fmt, text.encode())
