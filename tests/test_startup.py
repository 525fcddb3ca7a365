"""What a fresh process pays before it works: the command line imports no library that only
some commands use, and the compiled loops are compiled once per installation, cached even
where the installation cannot be written.  (How long a start takes is measured by
``benchmarks/bench_formats.py --startup``, never by a test.)"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from tracekit.jit import SMALL_TEXT_BYTES

#: libraries some commands use (reports, plots, statistics, SQL) and the command line must
#: not import before one of those commands runs
HEAVY = ("matplotlib", "scipy", "duckdb", "pandas", "polars", "numpy", "numba", "pyarrow", "dask")


def _imported(code: str, *args: str) -> set[str]:
    """The top-level packages among HEAVY (and scipy.linalg) that a fresh interpreter has
    imported after running ``code``."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m in {HEAVY + ('scipy.linalg',)!r})))")
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_command_line_imports_no_heavy_library():
    assert _imported("import tracekit.cli") == set()


def test_tracekit_version_imports_no_heavy_library():
    code = "import sys\nfrom tracekit.cli import run\nsys.argv = ['tracekit', '--version']\nassert run() == 0"
    assert _imported(code) == set()


#: two calls as function_graph prints them (CPU, duration, call tree)
_CALLS = (" 0)               |  exit_mmap() {\n 0)   0.480 us    |    down_read();\n"
          " 0) + 23.320 us   |  }\n")
_INGEST = ("import sys\nfrom tracekit.cli import run\n"
           "sys.argv = ['tracekit', 'ingest', sys.argv[1], '--store', sys.argv[2], '--arch', 'x86_64']\n"
           "assert run() == 0")


def test_an_ingest_imports_neither_plotting_nor_sql_nor_linear_algebra_nor_pandas(tmp_path):
    trace = tmp_path / "t.txt"
    trace.write_text(_CALLS * (SMALL_TEXT_BYTES // len(_CALLS) + 1))  # (read compiled)
    got = _imported(_INGEST, str(trace), str(tmp_path / "store"))
    assert {"polars", "numba"} <= got  # (the probe sees what an ingest needs)
    assert got & {"matplotlib", "duckdb", "dask", "scipy.linalg", "pandas"} == set()


def test_a_small_ingest_imports_no_numba(tmp_path):
    trace = tmp_path / "t.txt"
    trace.write_text(_CALLS)
    got = _imported(_INGEST, str(trace), str(tmp_path / "store"))
    assert "polars" in got
    assert got & {"numba", "pandas", "matplotlib", "duckdb", "dask", "scipy"} == set()


def _one_small_trace_per_format(corpus: Path) -> dict[str, Path]:
    """The largest corpus trace of each text format that is read interpreted."""
    from tracekit import parsers
    from tracekit.io import read_head

    found: dict[str, Path] = {}
    for p in sorted(corpus.rglob("*")):
        if not p.is_file() or p.stat().st_size > SMALL_TEXT_BYTES or p.suffix in (".md", ".json", ".py"):
            continue
        mod = parsers.detect(read_head(p))
        if mod is None or mod.FORMAT.kind != "text":
            continue
        name = mod.FORMAT.name
        if name not in found or p.stat().st_size > found[name].stat().st_size:
            found[name] = p
    return found


def _contents(store: Path) -> dict:
    """Everything a store holds but the time, host and attempt of each ingest."""
    from tracekit.store import open_store

    st = open_store(str(store))
    runs = st.runs().collect()
    got = {"runs": runs.drop("ingested_at", "seconds", "ingested_by", "attempt", strict=False)}
    for table in ("spans", "events", "windows"):
        got[table] = getattr(st, table)().collect()
    return got


def test_a_small_trace_ingests_to_the_same_store_interpreted_and_compiled(corpus, tmp_path, monkeypatch):
    """The interpreted loops are the compiled loops' own Python: every text format's small
    corpus trace makes the same rows either way."""
    from tracekit import pipeline

    traces = _one_small_trace_per_format(corpus)
    assert {"function_graph", "ftrace", "tracecmd_report", "perf_script", "latency"} <= set(traces), sorted(traces)
    for name, path in traces.items():
        stores = {}
        for small in (True, False):
            monkeypatch.setattr(pipeline, "_small", lambda real, mod, small=small: small)
            stores[small] = tmp_path / f"{name}-{small}"
            (r,) = pipeline.ingest([str(path)], store=str(stores[small]), on_error="collect")
            assert r.status == "ingested", (name, path, r.error)
        interpreted, compiled = (_contents(stores[s]) for s in (True, False))
        for table in interpreted:
            assert interpreted[table].equals(compiled[table], null_equal=True), (name, path, table)
        assert interpreted["runs"].height == 1 and interpreted["spans"].height + interpreted["events"].height > 0


def _read_only_copy(dest: Path) -> Path:
    """tracekit's sources laid out as installed (parsers/ as tracekit/parsers), read-only."""
    site = dest / "site"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "tracekit", site / "tracekit", ignore=skip)
    shutil.copytree(ROOT / "parsers", site / "tracekit" / "parsers", ignore=skip)
    for p in sorted(site.rglob("*"), reverse=True) + [site]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return site


@pytest.mark.skipif(shutil.which("setpriv") is None and os.geteuid() == 0,
                    reason="root writes anywhere unless setpriv drops its capabilities")
def test_compiled_code_is_cached_in_the_users_cache_when_the_installation_is_read_only(tmp_path):
    site = _read_only_copy(tmp_path)
    cache = tmp_path / "user-cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(cache), PYTHONDONTWRITEBYTECODE="1")
    # (root reads the mode bits only without its capabilities)
    prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []
    code = ("import json\nfrom tracekit.parsers import scan\n"
            "starts, ends = scan.line_bounds(scan.buffer(b'ab\\n\\ncde'))\n"
            "st = scan.line_bounds.stats\n"
            "print(json.dumps({'file': scan.__file__, 'starts': starts.tolist(), 'ends': ends.tolist(),\n"
            "                  'hits': sum(st.cache_hits.values()), 'misses': sum(st.cache_misses.values())}))")
    try:
        runs = [json.loads(subprocess.run([*prefix, sys.executable, "-c", code], env=env, capture_output=True,
                                          text=True, check=True, cwd=tmp_path).stdout)
                for _ in range(2)]
    finally:
        for p in [site, *site.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    first, second = runs
    assert first["file"].startswith(str(site))
    assert (first["starts"], first["ends"]) == ([0, 3, 4], [2, 3, 7])  # "ab", "", "cde"
    assert (first["hits"], first["misses"]) == (0, 1)  # compiled, and written to the user's cache
    assert (second["hits"], second["misses"]) == (1, 0)  # the next process loads it
    assert list(cache.rglob("*.nbi")) and not list(site.rglob("*.nbi"))


def test_a_text_report_imports_no_plotting(tmp_path):
    """report.txt and report.json need no matplotlib (a report with md or html plots)."""
    import tracekit

    store = tmp_path / "store"
    for label, us in (("before", "0.480"), ("after", "0.960")):
        trace = tmp_path / f"{label}.txt"
        trace.write_text(_CALLS.replace("0.480", us) * 20)
        tracekit.ingest([str(trace)], store=str(store), patch="p", label=label, arch="x86_64")
    code = ("import sys\nfrom tracekit.cli import run\n"
            "sys.argv = ['tracekit', 'report', '--patch', 'p', '--store', sys.argv[1], '--out', sys.argv[2],\n"
            "            '--format', 'text,json', '-q']\n"
            "assert run() == 0")
    got = _imported(code, str(store), str(tmp_path / "out"))
    assert (tmp_path / "out" / "report.txt").is_file()
    assert got & {"matplotlib", "numba", "pandas", "duckdb", "dask"} == set()
