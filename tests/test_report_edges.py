"""A report that compares nothing is an error (exit 2), so that --fail-on-regression
cannot pass in CI on a report of nothing; --out must be a directory."""

from __future__ import annotations

import subprocess
import sys

import pytest

FIX = "fixtures/{arch}/{side}/fgraph_exit_mmap.txt.gz"


def tk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = tmp_path_factory.mktemp("rep") / "store"
    for side in ("before", "after"):
        r = tk("ingest", FIX.format(arch="x86_64", side=side), "--store", str(s), "--patch", "p",
               "--label", side, "--arch", "x86_64")
        assert r.returncode == 0, r.stderr
    # a patch whose sides were traced on different arches
    for arch, side in (("x86_64", "before"), ("ppc64le", "after")):
        r = tk("ingest", FIX.format(arch=arch, side=side), "--store", str(s), "--patch", "split",
               "--label", side, "--arch", arch)
        assert r.returncode == 0, r.stderr
    return s


def test_no_matching_function_is_exit_2(store, tmp_path):
    r = tk("report", "--patch", "p", "--store", str(store), "--functions", "nosuchfunc", "--out",
           str(tmp_path / "r"), "--fail-on-regression")
    assert r.returncode == 2 and "no completed call of nosuchfunc" in r.stderr and "Traceback" not in r.stderr


def test_sides_sharing_no_arch_is_exit_2(store, tmp_path):
    r = tk("report", "--patch", "split", "--store", str(store), "--out", str(tmp_path / "r"), "--fail-on-regression")
    assert r.returncode == 2 and "share no arch" in r.stderr
    assert "before: x86_64" in r.stderr and "after: ppc64le" in r.stderr


def test_out_that_is_a_file_is_exit_2(store, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = tk("report", "--patch", "p", "--store", str(store), "--out", str(f))
    assert r.returncode == 2 and f"--out {f}: not a directory" in r.stderr and "internal error" not in r.stderr
