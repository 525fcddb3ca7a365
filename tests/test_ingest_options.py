"""Ingest's options as one validated object (the same from the CLI, the Python API, local
workers and the cluster's), and ``on_error="raise"``: the first failing input's own error,
raised at once."""

from __future__ import annotations

import pickle

import pytest

import tracekit
from tracekit.errors import InputError, OptionError, ParseError
from tracekit.pipeline import IngestOptions

FG = "qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt"


def _runs(store_dir) -> int:
    return tracekit.open_store(store_dir).runs().collect().height


def test_options_validate_and_pickle():
    opts = IngestOptions(arch="amd64", patch="p", label="before", boot=" b1 ", extra_meta={"clock": "mono"})
    v = opts.validated()
    assert (v.arch, v.boot, v.patch) == ("x86_64", "b1", "p")
    assert pickle.loads(pickle.dumps(v)) == v  # what --jobs and Dask workers receive
    with pytest.raises(Exception):
        v.arch = "i386"  # frozen: one ingest, one set of options
    for bad, says in ((dict(jobs=0), "--jobs 0"), (dict(clock_hz=0.0), "--clock-hz 0"),
                      (dict(preempt="sometimes"), "--preempt 'sometimes'"), (dict(arch="vax"), "--arch 'vax'")):
        with pytest.raises(OptionError, match=says):
            IngestOptions(**bad).validated()


def test_keywords_and_options_object_are_one_thing(tmp_path, corpus):
    st = tmp_path / "s"
    opts = IngestOptions(arch="amd64", patch="p", label="before")
    (a,) = tracekit.ingest([str(corpus / FG)], st, opts)
    (b,) = tracekit.ingest([str(corpus / FG)], st, opts, label="after")
    (c,) = tracekit.ingest(str(corpus / FG), st, patch="p", label="after", arch="x86_64")
    assert (a.arch, a.label, a.status) == ("x86_64", "before", "ingested")
    assert (b.label, b.status) == ("after", "added")
    assert c.status == "duplicate"
    with pytest.raises(OptionError, match="nosuch"):
        tracekit.ingest([str(corpus / FG)], st, nosuch=1)
    with pytest.raises(OptionError, match="on_error"):
        tracekit.ingest([str(corpus / FG)], st, on_error="ignore")


@pytest.mark.parametrize("jobs", [1, 2])
def test_on_error_raise_raises_the_first_inputs_own_error(tmp_path, corpus, jobs):
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a trace\n")
    st = tmp_path / "s"
    with pytest.raises(ParseError) as e:
        tracekit.ingest([str(bad), str(corpus / FG)], st, arch="x86_64", jobs=jobs)
    assert type(e.value) is ParseError
    assert (e.value.path, e.value.line) == (str(bad), 1)
    assert e.value.reason.startswith("not a trace format tracekit knows")
    if jobs == 1:  # raised at once: the input after it was never read
        assert _runs(st) == 0


def test_on_error_raise_stops_at_the_failing_path(tmp_path, corpus):
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a trace\n")
    st = tmp_path / "s"
    with pytest.raises(ParseError):
        tracekit.ingest([str(corpus / FG), str(bad), str(tmp_path / "never-read.txt")], st, arch="x86_64")
    assert _runs(st) == 1  # the input before the bad one landed


def test_on_error_raise_keeps_an_os_error_as_the_cause(tmp_path):
    f = tmp_path / "unreadable.txt"
    f.write_text("x\n")
    f.chmod(0)
    try:
        with open(f, "rb"):
            pytest.skip("this user reads mode-0 files (root)")
    except PermissionError:
        pass
    with pytest.raises(InputError) as e:
        tracekit.ingest([str(f)], tmp_path / "s")
    assert isinstance(e.value.__cause__, PermissionError) and str(f) in str(e.value)


def test_on_error_collect_records_each_and_goes_on(tmp_path, corpus):
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a trace\n")
    a, b = tracekit.ingest([str(bad), str(corpus / FG)], tmp_path / "s", arch="x86_64", on_error="collect")
    assert a.status == "failed" and f"{bad}:1: not a trace format" in a.error
    assert b.status == "ingested"
