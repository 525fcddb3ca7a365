"""tracekit capture: the command's option handling and error messages (no QEMU boot)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from tracekit.cli import app


def _tracekit(*args: str) -> SimpleNamespace:
    """Run the command line in-process; stdout and stderr apart."""
    res = CliRunner().invoke(app, list(args))
    return SimpleNamespace(returncode=res.exit_code, stdout=res.stdout, stderr=res.stderr)


def test_capture_is_registered_with_an_example():
    proc = _tracekit("capture", "--help")
    assert proc.returncode == 0
    assert "Example:" in proc.stdout and "--kernel-source" in proc.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--workload", "pgtfree:forks=many"], "whole number"),
        (["--tracers", "function,nosuch"], "unknown tracer 'nosuch'"),
        (["--arch", "sparc64", "--kernel", "x"], "unknown arch"),
        (["--preempt", "sometimes", "--kernel", "x"], "unknown preempt mode"),
        ([], "--kernel is needed"),
        (["--kernel-source", "linux-source-6.1"], "--kernel-source needs --patch-file"),
        (["--kernel", "x", "--repeat", "0"], "--repeat must be at least 1"),
        (["--kernel", "x", "--icount", "12"], "--icount shift must be 0..10"),
        (["--workload", "pgtfree:sparse=-1"], "whole number"),
    ],
)
def test_bad_options_are_one_clear_line(args, words):
    proc = _tracekit("capture", *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("tracekit: error: ")
    assert words in proc.stderr


def test_missing_kernel_image_or_emulator_is_named(tmp_path, monkeypatch):
    proc = _tracekit("capture", "--kernel", str(tmp_path / "bzImage"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # either the emulator is missing (named with its Debian package) or the image is
    assert ("qemu-system-x86_64 is not installed: install it with `apt-get install qemu-system-x86`"
            in proc.stderr) or ("bzImage does not exist" in proc.stderr)  # fmt: skip
