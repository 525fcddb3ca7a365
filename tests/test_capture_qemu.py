"""tracekit capture: kernel and QEMU command lines, running QEMU without leaving it behind,
and the serial fallback channel."""

from __future__ import annotations

import base64
import io
import os
import signal
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tracekit.capture.plan import CaptureError, CapturePlan
from tracekit.capture.qemu import (
    Terminated,
    guest_progress,
    kernel_cmdline,
    qemu_command,
    run_qemu,
    unpack_serial_results,
)


def _opt(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_x86_command_line(tmp_path):
    plan = CapturePlan(arch="x86_64", tag="r", preempt="full", thp="never")
    cmd = qemu_command(plan, "/k/vmlinuz", "/k/initrd.gz", tmp_path / "boot", tmp_path / "share")
    assert cmd[0] == "qemu-system-x86_64"
    assert _opt(cmd, "-machine") == ["q35"]
    assert _opt(cmd, "-accel") == ["tcg"]
    assert _opt(cmd, "-smp") == ["1"]  # -smp 2 soft-locks x86 TCG while ftrace patches code
    assert _opt(cmd, "-m") == ["2048"]
    assert _opt(cmd, "-kernel") == ["/k/vmlinuz"]
    assert _opt(cmd, "-initrd") == ["/k/initrd.gz"]
    assert _opt(cmd, "-monitor") == ["none"]
    assert "-nographic" in cmd and "-no-reboot" in cmd
    assert _opt(cmd, "-serial") == [
        f"file:{tmp_path / 'boot' / 'console.log'}",
        f"file:{tmp_path / 'boot' / 'dataport.log'}",
    ]
    assert _opt(cmd, "-fsdev") == [f"local,id=tkfs,path={tmp_path / 'share'},security_model=none"]
    assert _opt(cmd, "-device") == ["virtio-9p-pci,fsdev=tkfs,mount_tag=tkout"]
    append = _opt(cmd, "-append")[0].split()
    assert append[:3] == ["console=ttyS0", "panic=-1", "loglevel=5"]
    assert "preempt=full" in append and "transparent_hugepage=never" in append


def test_ppc64le_command_line_without_share(tmp_path):
    plan = CapturePlan(arch="ppc64le", tag="r")
    cmd = qemu_command(plan, "/k/vmlinux", "/k/i.gz", tmp_path, None)
    assert cmd[0] == "qemu-system-ppc64"
    machine = _opt(cmd, "-machine")[0].split(",")
    assert machine[0] == "pseries"
    assert {"cap-cfpc=broken", "cap-sbbc=broken", "cap-ibs=broken", "cap-ccf-assist=off"} <= set(machine)
    assert _opt(cmd, "-cpu") == ["power9"]
    assert "-fsdev" not in cmd and "-device" not in cmd
    append = _opt(cmd, "-append")[0].split()
    assert append[0] == "console=hvc0"
    assert not any(a.startswith("preempt=") for a in append)


def test_self_built_kernel_gets_tsc_settings():
    plan = CapturePlan(arch="x86_64", tsc_khz=2596130, extra_append=("ignore_loglevel",))
    words = kernel_cmdline(plan).split()
    assert words[-3:] == ["tsc=reliable", "tsc_early_khz=2596130", "ignore_loglevel"]


def test_icount_makes_guest_time_count_instructions(tmp_path):
    """-icount shift=N,sleep=off; the TSC then runs at one tick per virtual ns (1 GHz)."""
    plan = CapturePlan(arch="x86_64", tsc_khz=2596130, icount=0)
    cmd = qemu_command(plan, "bzImage", "initrd", tmp_path, None)
    assert cmd[cmd.index("-icount") + 1] == "shift=0,sleep=off"
    assert "tsc_early_khz=1000000" in kernel_cmdline(plan).split()
    assert "-icount" not in qemu_command(CapturePlan(arch="x86_64"), "bzImage", "initrd", tmp_path, None)
    with pytest.raises(CaptureError, match="0..10"):
        CapturePlan(arch="x86_64", icount=11)


def test_share_path_with_comma_is_refused(tmp_path):
    with pytest.raises(CaptureError, match="comma"):
        qemu_command(CapturePlan(arch="x86_64"), "k", "i", tmp_path, tmp_path / "a,b")


def test_guest_progress_from_console():
    text = (
        "\x1b[?7l### TK-BOOTED 4.56 tag=t\r\n### TK-STEP info start 14.6\r\n"
        "### TK-STEP info done 15.0\r\n### TK-STEP events start 15.1\r\n"
    )
    assert guest_progress(text) == ("events", False)
    assert guest_progress(text + "### TK-DONE 40.1\r\n") == ("events", True)
    assert guest_progress("") == (None, False)


def _fake_qemu(tmp_path: Path, body: str) -> list[str]:
    """A stand-in for QEMU: a shell that starts a grandchild (sleep) and writes to the
    console file, so the test sees whether the whole process group dies."""
    script = tmp_path / "fake-qemu.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return [str(script)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_timeout_kills_the_whole_process_group(tmp_path):
    boot = tmp_path / "boot"
    cmd = _fake_qemu(
        tmp_path,
        f"sleep 300 & echo $! > {tmp_path}/grandchild\n"
        f"echo '### TK-STEP info start 1' >> {boot}/console.log\nwait\n",
    )
    steps = []
    res = run_qemu(cmd, boot, timeout_s=1.5, on_step=steps.append, poll_s=0.1)
    assert res.timed_out and res.returncode is None and not res.guest_done
    assert steps == ["info"]
    grandchild = int((tmp_path / "grandchild").read_text())
    time.sleep(0.2)
    assert not _alive(grandchild)


def test_guest_that_halts_after_done_is_stopped(tmp_path):
    # a tinyconfig kernel halts instead of powering off: QEMU would wait for ever
    boot = tmp_path / "boot"
    cmd = _fake_qemu(tmp_path, f"echo '### TK-DONE 3.0' >> {boot}/console.log\nsleep 300\n")
    t0 = time.monotonic()
    res = run_qemu(cmd, boot, timeout_s=60, poll_s=0.05, done_grace_s=0.5)
    assert time.monotonic() - t0 < 10
    assert res.guest_done and not res.timed_out


def test_clean_exit_reports_done(tmp_path):
    boot = tmp_path / "boot"
    cmd = _fake_qemu(tmp_path, f"echo '### TK-DONE 3.0' >> {boot}/console.log\nexit 0\n")
    res = run_qemu(cmd, boot, timeout_s=20, poll_s=0.05)
    assert (res.returncode, res.timed_out, res.guest_done) == (0, False, True)


@pytest.mark.parametrize("how", ["sigint", "sigterm"])
def test_interrupt_kills_the_group_and_propagates(tmp_path, how):
    boot = tmp_path / "boot"
    cmd = _fake_qemu(tmp_path, f"sleep 300 & echo $! > {tmp_path}/grandchild\nwait\n")
    sig = signal.SIGINT if how == "sigint" else signal.SIGTERM

    def later():
        for _ in range(100):
            if (tmp_path / "grandchild").exists():
                break
            time.sleep(0.05)
        os.kill(os.getpid(), sig)

    threading.Thread(target=later, daemon=True).start()
    with pytest.raises(BaseException) as info:
        run_qemu(cmd, boot, timeout_s=60, poll_s=0.05)
    assert isinstance(info.value, KeyboardInterrupt if how == "sigint" else Terminated)
    grandchild = int((tmp_path / "grandchild").read_text())
    time.sleep(0.2)
    assert not _alive(grandchild)


def test_missing_emulator_is_a_clear_error(tmp_path):
    with pytest.raises(CaptureError, match="qemu-system-nonesuch is not installed"):
        run_qemu(["qemu-system-nonesuch"], tmp_path, timeout_s=5)


def test_serial_fallback_archive_unpacked(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"# tracer: function\n"
        info = tarfile.TarInfo("run1/function.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    b64 = base64.encodebytes(buf.getvalue()).decode()  # 76-column lines, as busybox base64
    log = tmp_path / "dataport.log"
    log.write_bytes(
        ("noise\r\nTK-TAR-BEGIN\r\n" + b64.replace("\n", "\r\n") + "TK-TAR-END\r\n").encode()
    )
    assert unpack_serial_results(log, tmp_path / "out")
    assert (tmp_path / "out" / "run1" / "function.txt").read_bytes() == data
    empty = tmp_path / "empty.log"
    empty.write_text("no archive here\n")
    assert not unpack_serial_results(empty, tmp_path / "out2")
