"""tracekit capture: parsing --workload / --tracers and validating a capture plan."""

from __future__ import annotations

import pytest

from tracekit.capture.plan import (
    LATENCY_TRACERS,
    CaptureError,
    CapturePlan,
    Workload,
    arch_info,
    parse_tracers,
    parse_workload,
)


def test_workload_spec_parsed_and_round_trips():
    wl = parse_workload("pgtfree:forks=20,mb=256,loops=5")
    assert (wl.forks, wl.mb, wl.loops) == (20, 256, 5)
    assert wl.spec() == "pgtfree:forks=20,mb=256,loops=5"
    assert wl.argv() == ["/bin/pgtfree", "20", "256", "5", "0"]
    assert wl.argv("/out/x") == ["/bin/pgtfree", "20", "256", "5", "0", "/out/x"]


def test_sparse_workload_spec_round_trips_and_reaches_the_binary():
    wl = parse_workload("pgtfree:forks=2,mb=256,sparse=64")
    assert (wl.forks, wl.mb, wl.sparse, wl.loops) == (2, 256, 64, Workload().loops)
    assert wl.spec() == "pgtfree:forks=2,mb=256,sparse=64,loops=5"
    assert parse_workload(wl.spec()) == wl
    assert wl.argv("/o") == ["/bin/pgtfree", "2", "256", "5", "64", "/o"]


def test_workload_defaults_fill_missing_keys():
    wl = parse_workload("pgtfree:mb=16")
    assert (wl.forks, wl.mb, wl.loops) == (Workload().forks, 16, Workload().loops)
    assert parse_workload("pgtfree") == Workload()


@pytest.mark.parametrize(
    "spec, words",
    [
        ("stress:forks=1", "unknown workload"),
        ("pgtfree:forks=x", "whole number"),
        ("pgtfree:pages=3", "bad workload setting"),
        ("pgtfree:mb=0", "mb must be at least 1"),
        ("pgtfree:sparse=1.5", "whole number"),
    ],
)
def test_bad_workload_spec_says_why(spec, words):
    with pytest.raises(CaptureError, match=words):
        parse_workload(spec)


def test_tracers_canonical_order_and_latency_expands():
    assert parse_tracers("perf,function_graph,tracecmd") == ("function_graph", "trace-cmd", "perf")
    got = parse_tracers("latency,events")
    assert got == ("events", *LATENCY_TRACERS)


def test_unknown_tracer_names_the_choices():
    with pytest.raises(CaptureError, match="unknown tracer 'blk'.*function_graph"):
        parse_tracers("function,blk")
    with pytest.raises(CaptureError):
        parse_tracers(" , ")


def test_arch_aliases_and_debian_names():
    assert arch_info("ppc64el").name == "ppc64le"
    assert arch_info("amd64").debian_arch == "amd64"
    assert arch_info("ppc64le").kernel_flavour == "powerpc64le"
    # Debian's ppc64el kernels use 64 KiB pages (CONFIG_PPC_64K_PAGES), x86 4 KiB
    assert arch_info("ppc64le").page_size == 65536
    with pytest.raises(CaptureError, match="unknown arch"):
        arch_info("sparc64")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"preempt": "rt"}, "unknown preempt mode"),
        ({"thp": "sometimes"}, "--thp"),
        ({"tag": "../etc"}, "run tag"),
    ],
)
def test_plan_rejects_bad_values(kwargs, words):
    with pytest.raises(CaptureError, match=words):
        CapturePlan(arch="x86_64", **kwargs)
