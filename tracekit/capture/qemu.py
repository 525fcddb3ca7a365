"""Booting the guest: the kernel command line, the QEMU command line, and running QEMU so
that no emulator is ever left behind.

:func:`kernel_cmdline` and :func:`qemu_command` are pure functions (unit-tested).
:func:`run_qemu` starts QEMU in its own process group and kills that whole group on every
way out: normal exit, timeout, an exception, Ctrl-C (SIGINT) and SIGTERM/SIGHUP.

Settings that work on these hosts: TCG only (KVM is present but ``-cpu host`` aborts), one
vCPU (``-smp 2`` soft-locks the x86 guest while ftrace patches code), 2 GiB, no display,
console on the first serial port, results on a virtio-9p share with a second serial port
as fallback channel.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tracekit.capture.guest import SHARE_TAG, STEP_MARK
from tracekit.capture.plan import CaptureError, CapturePlan, arch_info

__all__ = [
    "kernel_cmdline",
    "qemu_command",
    "QemuResult",
    "run_qemu",
    "unpack_serial_results",
    "guest_progress",
    "Terminated",
]


def kernel_cmdline(plan: CapturePlan) -> str:
    """The kernel command line for ``plan``.

    ``console=`` is the arch's first serial port (``ttyS0`` on x86, ``hvc0`` on pseries);
    ``panic=-1`` with QEMU's ``-no-reboot`` turns a guest panic into a QEMU exit instead of a
    hang; ``preempt=`` selects the PREEMPT_DYNAMIC mode; ``transparent_hugepage=never`` keeps
    anonymous memory on 4 KiB PTEs.  A self-built x86 kernel needs ``tsc=reliable
    tsc_early_khz=<host kHz>``, or its TSC is marked unstable under TCG and every latency
    reads one tick (with ``-icount`` the TSC runs at 1 GHz of virtual time).
    """
    arch = arch_info(plan.arch)
    words = [f"console={arch.console}", "panic=-1", "loglevel=5"]
    if plan.preempt:
        words.append(f"preempt={plan.preempt}")
    if plan.thp:
        words.append(f"transparent_hugepage={plan.thp}")
    if plan.tsc_khz:
        # under -icount the TSC counts virtual nanoseconds: 1 GHz whatever the shift
        khz = 1_000_000 if plan.icount is not None else plan.tsc_khz
        words += ["tsc=reliable", f"tsc_early_khz={khz}"]
    words += list(plan.extra_append)
    return " ".join(words)


def qemu_command(
    plan: CapturePlan,
    kernel: Path | str,
    initrd: Path | str,
    run_dir: Path | str,
    share_dir: Path | str | None,
    memory_mb: int = 2048,
    qemu: str | None = None,
) -> list[str]:
    """The QEMU argv that boots ``kernel`` with ``initrd`` for ``plan``.

    The guest console goes to ``run_dir/console.log`` and the fallback data port to
    ``run_dir/dataport.log``; ``share_dir`` (when given) is exported read-write as the 9p
    share the guest mounts (mount tag ``tkout``).  No monitor, no display, no reboot.
    """
    arch = arch_info(plan.arch)
    run_dir = Path(run_dir)
    cmd = [
        qemu or arch.qemu,
        *arch.machine,
        "-smp", "1",
        "-m", str(memory_mb),
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", kernel_cmdline(plan),
        "-nographic",
        "-monitor", "none",
        "-serial", f"file:{run_dir / 'console.log'}",
        "-serial", f"file:{run_dir / 'dataport.log'}",
        "-no-reboot",
    ]  # fmt: skip
    if plan.icount is not None:
        # guest time = instructions executed: host load cannot stretch a measured window
        cmd += ["-icount", f"shift={plan.icount},sleep=off"]
    if share_dir is not None:
        # the fsdev path may not hold a comma: QEMU's option parser would split on it
        if "," in str(share_dir):
            raise CaptureError(f"the result directory may not contain a comma: {share_dir}")
        cmd += [
            "-fsdev", f"local,id=tkfs,path={share_dir},security_model=none",
            "-device", f"virtio-9p-pci,fsdev=tkfs,mount_tag={SHARE_TAG}",
        ]  # fmt: skip
    return cmd


@dataclass
class QemuResult:
    """How a boot ended: QEMU's exit status (None when it was killed at the timeout),
    whether the guest reached ``TK-DONE``, and the wall time in seconds."""

    returncode: int | None
    timed_out: bool
    guest_done: bool
    wall_s: float


def guest_progress(console_text: str) -> tuple[str | None, bool]:
    """The step the guest is in (from the last ``### TK-STEP <step> start`` line of its
    console) and whether it has reached ``### TK-DONE``."""
    step = None
    done = False
    for line in console_text.splitlines():
        if not line.startswith(STEP_MARK):
            continue
        parts = line[len(STEP_MARK):].split()
        if parts and parts[0] == "STEP" and len(parts) >= 3:
            step = parts[1] if parts[2] == "start" else step
        elif parts and parts[0] == "DONE":
            done = True
    return step, done


class Terminated(BaseException):
    """Raised from the SIGTERM/SIGHUP handler so that ``finally`` blocks run (and QEMU's
    process group is killed); like KeyboardInterrupt, it is not an Exception."""


@contextmanager
def _terminate_raises():
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` (SIGINT already raises
    KeyboardInterrupt), so the QEMU process group is killed on those too."""

    def handler(signum, frame):  # noqa: ARG001
        raise Terminated(signum)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave the handlers alone
            pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill QEMU's whole process group: SIGTERM, then SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_qemu(
    cmd: list[str],
    run_dir: Path,
    timeout_s: float,
    on_step: Callable[[str], None] | None = None,
    poll_s: float = 0.5,
    done_grace_s: float = 30.0,
) -> QemuResult:
    """Run QEMU (``cmd``) until it exits or ``timeout_s`` passes, never leaving it behind.

    QEMU runs in a new session (its own process group); whatever happens here (timeout,
    exception, KeyboardInterrupt, SIGTERM, SIGHUP), the group is killed before this returns
    or raises.  ``on_step`` is called with each guest step name as the console shows it.
    A guest that has printed ``TK-DONE`` but is still running ``done_grace_s`` later (a
    kernel that halts instead of rebooting) is stopped too: its results are complete.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    console = run_dir / "console.log"
    stdout = open(run_dir / "qemu-stdout.log", "wb")
    t0 = time.monotonic()
    proc: subprocess.Popen | None = None
    timed_out = False
    last_step = None
    done_at: float | None = None
    try:
        with _terminate_raises():
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise CaptureError(f"{cmd[0]} is not installed") from None
            while True:
                try:
                    proc.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if console.exists():
                    step, done = guest_progress(console.read_text(errors="replace"))
                    if on_step is not None and step and step != last_step:
                        last_step = step
                        on_step(step)
                    if done and done_at is None:
                        done_at = time.monotonic()
                if done_at is not None and time.monotonic() - done_at > done_grace_s:
                    break
                if time.monotonic() - t0 > timeout_s:
                    timed_out = True
                    break
    finally:
        if proc is not None:
            _kill_group(proc)
        stdout.close()
    text = console.read_text(errors="replace") if console.exists() else ""
    _, done = guest_progress(text)
    return QemuResult(
        returncode=None if timed_out or done_at is not None and proc.returncode < 0 else proc.returncode,
        timed_out=timed_out,
        guest_done=done,
        wall_s=time.monotonic() - t0,
    )


def unpack_serial_results(dataport_log: Path, dest: Path) -> bool:
    """Extract the ``tar | gzip | base64`` the guest wrote between ``TK-TAR-BEGIN`` and
    ``TK-TAR-END`` on the data port into ``dest``.  False when the log holds no archive."""
    if not dataport_log.exists():
        return False
    text = dataport_log.read_bytes().decode("ascii", errors="replace")
    begin = text.find("TK-TAR-BEGIN")
    end = text.find("TK-TAR-END", begin + 1)
    if begin < 0 or end < 0:
        return False
    payload = "".join(text[begin + len("TK-TAR-BEGIN"):end].split())
    raw = base64.b64decode(payload)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return True
