"""Capturing real kernel traces under QEMU: ``tracekit capture``.

* :mod:`~tracekit.capture.plan`: what a capture is (arch, preempt mode, tracers, workload);
* :mod:`~tracekit.capture.guest`: the guest's ``/init`` script, built from a plan;
* :mod:`~tracekit.capture.qemu`: kernel and QEMU command lines, and running QEMU safely;
* :mod:`~tracekit.capture.provision`: Debian packages, the workload, the initramfs (cached);
* :mod:`~tracekit.capture.runner`: one capture end to end, ingest included;
* :mod:`~tracekit.capture.kbuild`: before/after kernels built from Debian's source and a patch;
* :mod:`~tracekit.capture.cli`: the command.

``pgtfree.c`` (shipped in the package) is the workload's source, compiled statically for
the guest's arch.
"""

from __future__ import annotations

from tracekit.capture.plan import CaptureError, CapturePlan, Workload, parse_tracers, parse_workload

__all__ = ["CaptureError", "CapturePlan", "Workload", "parse_tracers", "parse_workload", "capture"]


def __getattr__(name: str):
    if name == "capture":
        from tracekit.capture.runner import capture

        return capture
    raise AttributeError(name)
