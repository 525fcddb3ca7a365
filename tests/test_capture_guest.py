"""tracekit capture: the guest /init script built from a plan."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tracekit.capture.guest import (
    KPROBE_FUNCS,
    MODULES_9P,
    TEARDOWN_FUNCS,
    guest_init_script,
    steps,
)
from tracekit.capture.plan import CapturePlan, parse_tracers, parse_workload


def _plan(tracers: str, **kw) -> CapturePlan:
    return CapturePlan(
        arch=kw.pop("arch", "x86_64"),
        tag="t1",
        tracers=parse_tracers(tracers),
        workload=parse_workload("pgtfree:forks=3,mb=8,loops=2"),
        **kw,
    )


def _settings(script: str) -> dict[str, str]:
    """The NAME=value lines at the top of the script, unquoted by the host's sh."""
    names = re.findall(r"^([A-Z_0-9]+)=", script, flags=re.M)
    head = script.split("export PATH", 1)[0]
    shell = shutil.which("sh")
    out = subprocess.run(
        [shell, "-c", head + "".join(f'printf "%s\\n" "{n}=${n}";' for n in names)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


ALL = "function_graph,function,events,kprobes,trace-cmd,perf,latency"


@pytest.mark.parametrize("tracers", ["function_graph", ALL])
@pytest.mark.parametrize("sh", ["sh", "busybox"])
def test_script_is_valid_shell(tracers, sh, tmp_path):
    exe = shutil.which(sh)
    if exe is None:
        pytest.skip(f"{sh} not on this host")
    path = tmp_path / "init"
    path.write_text(guest_init_script(_plan(tracers)))
    cmd = [exe, "sh", "-n", str(path)] if sh == "busybox" else [exe, "-n", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_only_requested_steps_are_defined_and_run():
    script = guest_init_script(_plan("function_graph"))
    s = _settings(script)
    assert s["STEPS"].split() == ["info", "workload_meta", "fgraph_exit_mmap", "fgraph_teardown"]
    assert "step_function()" not in script
    assert "trace-cmd record" not in script
    assert "perf record" not in script
    assert "echo > $T/kprobe_events" in script  # reset_tracing always clears kprobes


def test_all_tracers_steps_in_order():
    plan = _plan(ALL)
    got = steps(plan)
    assert got[:2] == ["info", "workload_meta"]
    assert got.index("fgraph_exit_mmap") < got.index("function") < got.index("events")
    assert got[-2:] == ["tracecmd", "perf"]
    for tr in ("preemptoff", "irqsoff", "preemptirqsoff", "wakeup", "wakeup_rt", "wakeup_dl"):
        assert f"latency_{tr}" in got
        assert f"step_latency_{tr}() {{ latency_tracer {tr}; }}" in guest_init_script(plan)


def test_function_graph_options_and_roots():
    script = guest_init_script(_plan("function_graph"))
    s = _settings(script)
    assert s["GRAPH_ROOTS"].split() == ["exit_mmap", "unmap_region"]
    assert s["GRAPH_DEPTH"] == "3"
    body = script.split("step_fgraph_exit_mmap()", 1)[1].split("\n}\n", 1)[0]
    assert "w options/funcgraph-proc 1" in body
    assert "w options/funcgraph-abstime 1" in body
    assert "w current_tracer function_graph" in body
    assert "set_graph_function" in body and "max_graph_depth $GRAPH_DEPTH" in body
    # the teardown step filters on the traceable subset of TEARDOWN_FUNCS
    assert s["TEARDOWN"].split() == list(TEARDOWN_FUNCS)
    assert 'w set_ftrace_filter "$FUNCS"' in script.split("step_fgraph_teardown()", 1)[1]


def test_workload_settings_and_metadata_run():
    script = guest_init_script(_plan("function"))
    s = _settings(script)
    assert s["WORKLOAD"] == "/bin/pgtfree 3 8 2 0"
    # the untraced run passes the result directory, where VmPTE and smaps are written
    assert "$WORKLOAD $O > $O/workload_meta.workload.txt" in script
    assert s["TAG"] == "t1" and s["SHARE"] == "tkout"


def test_kprobes_and_events():
    script = guest_init_script(_plan("events,kprobes"))
    s = _settings(script)
    assert s["KPROBES"].split() == list(KPROBE_FUNCS)
    assert "tlb/tlb_flush" in s["TRACEPOINTS"].split()
    assert 'echo "p:tk/${f} $f" >> $T/kprobe_events' in script
    assert 'echo "r:tk/${f}_ret $f ret=\\$retval" >> $T/kprobe_events' in script


def test_latency_tracer_resets_max_latency_each_run():
    script = guest_init_script(_plan("preemptoff", latency_runs=4))
    s = _settings(script)
    assert s["LATENCY_RUNS"] == "4"
    body = script.split("latency_tracer() {", 1)[1].split("\n}\n", 1)[0]
    assert "echo 0 > $T/tracing_max_latency" in body
    assert body.index("tracing_max_latency") > body.index("while")
    assert ".unavailable.txt" in body


def test_latency_windows_are_recorded_with_function_tracing_off():
    script = guest_init_script(_plan("preemptoff", latency_runs=2))
    body = script.split("latency_tracer() {", 1)[1].split("\n}\n", 1)[0]
    # off before the tracer is set, inside the loop (reset_tracing turns it back on)
    assert body.index("w options/function-trace 0") < body.index("w current_tracer $1")
    reset = script.split("reset_tracing() {", 1)[1].split("\n}\n", 1)[0]
    assert "echo 1 > $T/options/function-trace" in reset
    assert "latency_path preemptoff" not in script


def test_latency_path_is_a_separate_run_with_function_tracing_on():
    script = guest_init_script(_plan("preemptoff", latency_path=True))
    assert "step_latency_preemptoff() { latency_tracer preemptoff; latency_path preemptoff; }" in script
    body = script.split("latency_path() {", 1)[1].split("\n}\n", 1)[0]
    assert body.index("w options/function-trace 1") < body.index("w current_tracer $1")
    assert "save_trace latency_$1.path" in body


def test_arch_dataport_and_serial_fallback():
    x86 = _settings(guest_init_script(_plan("function")))
    ppc = _settings(guest_init_script(_plan("function", arch="ppc64le")))
    assert x86["DATAPORT"] == "/dev/ttyS1"
    assert ppc["DATAPORT"] == "/dev/hvc1"
    script = guest_init_script(_plan("function"))
    assert "TK-TAR-BEGIN" in script and "base64" in script
    assert x86["MODULES_9P"].split() == list(MODULES_9P)
    assert script.rstrip().endswith("reboot -f")  # with -no-reboot, QEMU exits
