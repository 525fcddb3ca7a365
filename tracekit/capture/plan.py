"""What one capture is: the guest architecture, the kernel, the tracers and the workload.

Everything here is plain data and parsing of the command line's values; nothing runs a
process.  :mod:`tracekit.capture.guest` turns a :class:`CapturePlan` into the guest's
``/init`` script and :mod:`tracekit.capture.qemu` into a QEMU command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tracekit.errors import CaptureError

__all__ = [
    "ArchInfo",
    "ARCHES",
    "arch_info",
    "Workload",
    "parse_workload",
    "WORKLOAD_KEYS",
    "TRACERS",
    "LATENCY_TRACERS",
    "DEFAULT_TRACERS",
    "parse_tracers",
    "PREEMPT_MODES",
    "CapturePlan",
    "CaptureError",
]


@dataclass(frozen=True)
class ArchInfo:
    """How one guest architecture is provisioned and booted.

    ``name`` is tracekit's arch name (as in the store), ``debian_arch`` Debian's name for it
    (``dpkg --print-architecture``), ``kernel_flavour`` the suffix of Debian's
    ``linux-image-<abi>-<flavour>`` packages.
    """

    name: str
    debian_arch: str
    triplet: str
    kernel_flavour: str
    image_prefix: str  # the unpacked package's /boot/<prefix>-<release>
    qemu: str
    qemu_package: str
    cc: str
    cc_packages: tuple[str, ...]
    console: str  # the serial console device, in the guest
    dataport: str  # the second serial port, for the tar|base64 fallback
    interpreter: str  # the ELF interpreter of the guest's dynamic binaries
    page_size: int  # Debian's kernel page size for this arch
    machine: tuple[str, ...]  # -machine/-cpu arguments that boot under TCG here


ARCHES: dict[str, ArchInfo] = {
    "x86_64": ArchInfo(
        name="x86_64",
        debian_arch="amd64",
        triplet="x86_64-linux-gnu",
        kernel_flavour="amd64",
        image_prefix="vmlinuz",
        qemu="qemu-system-x86_64",
        qemu_package="qemu-system-x86",
        cc="gcc",
        cc_packages=("gcc", "libc6-dev"),
        console="ttyS0",
        dataport="/dev/ttyS1",
        interpreter="ld-linux-x86-64.so.2",
        page_size=4096,
        # KVM does not work on these hosts ("-cpu host" aborts on MSR 0x10a): TCG only.
        machine=("-machine", "q35", "-accel", "tcg", "-cpu", "max"),
    ),
    "ppc64le": ArchInfo(
        name="ppc64le",
        debian_arch="ppc64el",
        triplet="powerpc64le-linux-gnu",
        kernel_flavour="powerpc64le",
        image_prefix="vmlinux",
        qemu="qemu-system-ppc64",
        qemu_package="qemu-system-ppc",
        cc="powerpc64le-linux-gnu-gcc",
        cc_packages=("gcc-powerpc64le-linux-gnu", "libc6-dev-ppc64el-cross"),
        console="hvc0",
        dataport="/dev/hvc1",
        interpreter="ld64.so.2",
        page_size=65536,
        # The spectre/meltdown capabilities TCG cannot provide are declared broken, or the
        # pseries machine refuses to start with a POWER9 CPU.
        machine=(
            "-machine",
            "pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off",
            "-accel",
            "tcg",
            "-cpu",
            "power9",
        ),
    ),
}

_ARCH_ALIASES = {"amd64": "x86_64", "ppc64el": "ppc64le"}


def arch_info(name: str) -> ArchInfo:
    """The :class:`ArchInfo` of ``name`` (tracekit's or Debian's spelling)."""
    key = _ARCH_ALIASES.get(name, name)
    if key not in ARCHES:
        raise CaptureError(f"unknown arch {name!r}: capture supports {', '.join(ARCHES)}")
    return ARCHES[key]


@dataclass(frozen=True)
class Workload:
    """The pgtfree workload: ``forks`` children, each populating ``mb`` MiB of anonymous
    memory (one write per page), unmapping its lower half while alive (``munmap`` ->
    ``unmap_region``), mapping ``sparse`` GiB more with ``MAP_NORESERVE`` and writing one
    page per 2 MiB of it (one PTE table per PMD: 512 tables per GiB for ``free_pgtables``
    to free), and exiting (``exit_mmap`` tears down the rest); then ``loops``
    mmap/populate/munmap rounds of ``mb`` MiB in the parent.

    The spelling ``pgtfree:forks=N,mb=M,sparse=G,loops=L`` (:meth:`spec`) is the one every
    command takes: ``tracekit capture --workload`` records it with the run, and
    ``calibrate``, ``replay`` and ``model --workload`` read it back as it is."""

    name: str = "pgtfree"
    forks: int = 20
    mb: int = 64
    loops: int = 5
    sparse: int = 0  # GiB, one page written per 2 MiB

    def argv(self, metadir: str | None = None) -> list[str]:
        """The guest command line that runs the workload (binary installed as /bin/pgtfree)."""
        args = ["/bin/pgtfree", str(self.forks), str(self.mb), str(self.loops), str(self.sparse)]
        if metadir:
            args.append(metadir)
        return args

    def spec(self) -> str:
        """The ``--workload`` spelling of this workload."""
        sparse = f",sparse={self.sparse}" if self.sparse else ""
        return f"{self.name}:forks={self.forks},mb={self.mb}{sparse},loops={self.loops}"


#: The keys of a pgtfree spec, and what each is.
WORKLOAD_KEYS: dict[str, str] = {
    "forks": "children, one after another",
    "mb": "MiB populated per child (and per parent loop)",
    "sparse": "GiB mapped NORESERVE per child, one page written per 2 MiB",
    "loops": "mmap/populate/munmap rounds in the parent",
}


def parse_workload(spec: str) -> Workload:
    """Parse ``pgtfree:forks=2,mb=256,sparse=64,loops=5`` (any of the keys may be left out)."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name != "pgtfree":
        raise CaptureError(f"unknown workload {name!r} in {spec!r}: the one workload is pgtfree")
    values: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = (s.strip() for s in item.partition("="))
        if not eq or key not in WORKLOAD_KEYS:
            raise CaptureError(
                f"bad workload setting {item!r} in {spec!r}: expected "
                + ", ".join(f"{k}=N" for k in WORKLOAD_KEYS)
            )
        if not re.fullmatch(r"\d+", val):
            raise CaptureError(f"workload setting {key} must be a whole number, got {val!r}")
        values[key] = int(val)
    wl = Workload(name=name, **values)
    if wl.mb < 1 or wl.forks < 0 or wl.loops < 0:
        raise CaptureError(f"workload {spec!r}: mb must be at least 1, forks and loops not negative")
    return wl


#: The latency tracers, in the order the guest tries them; each runs only when the kernel
#: lists it in available_tracers (no stock Debian kernel has preemptoff or irqsoff).
LATENCY_TRACERS: tuple[str, ...] = (
    "preemptoff",
    "irqsoff",
    "preemptirqsoff",
    "wakeup",
    "wakeup_rt",
    "wakeup_dl",
)

#: Every value ``--tracers`` accepts.  ``latency`` stands for all of LATENCY_TRACERS.
TRACERS: tuple[str, ...] = (
    "function_graph",
    "function",
    "events",
    "kprobes",
    "trace-cmd",
    "perf",
    *LATENCY_TRACERS,
    "latency",
)

DEFAULT_TRACERS: tuple[str, ...] = ("function_graph", "function", "events", "kprobes")

PREEMPT_MODES: tuple[str, ...] = ("none", "voluntary", "full")


def parse_tracers(spec: str) -> tuple[str, ...]:
    """Parse ``function_graph,function,events`` into a tuple in canonical order, with
    ``latency`` expanded; ``tracecmd``/``trace_cmd`` are accepted for ``trace-cmd``."""
    wanted: set[str] = set()
    for item in filter(None, (s.strip() for s in spec.split(","))):
        item = {"tracecmd": "trace-cmd", "trace_cmd": "trace-cmd", "fgraph": "function_graph"}.get(
            item, item
        )
        if item not in TRACERS:
            raise CaptureError(f"unknown tracer {item!r}: choose from {', '.join(TRACERS)}")
        if item == "latency":
            wanted.update(LATENCY_TRACERS)
        else:
            wanted.add(item)
    if not wanted:
        raise CaptureError("--tracers names no tracer")
    return tuple(t for t in TRACERS if t in wanted)


@dataclass(frozen=True)
class CapturePlan:
    """One boot: which arch, which preemption mode, what to record and with which workload.

    ``tag`` names the run's result directory.  ``preempt`` is passed as ``preempt=`` on the
    kernel command line (PREEMPT_DYNAMIC kernels only); None leaves the kernel's default.
    ``thp`` is the ``transparent_hugepage=`` boot value (``never`` when measuring teardown of
    anonymous memory: huge pages hide the PTE-level work).  ``latency_runs`` is how many
    workload runs each latency tracer gets, with tracing_max_latency reset before each and
    function tracing off (``options/function-trace`` 0: the window's length alone);
    ``latency_path`` adds one run per latency tracer with function tracing on (the path
    through the worst window, ``latency_<tracer>.path.txt``).  ``icount`` (a shift N)
    makes the guest's clock count instructions, 2**N ns each (QEMU ``-icount
    shift=N,sleep=off``): the host's load no longer stretches what the guest measures, at
    the price of a clock no real CPU has (every instruction the same length).
    """

    arch: str
    tag: str = "run"
    preempt: str | None = None
    tracers: tuple[str, ...] = DEFAULT_TRACERS
    workload: Workload = field(default_factory=Workload)
    thp: str | None = None
    buffer_kb: int = 16384
    latency_runs: int = 3
    latency_path: bool = False
    icount: int | None = None  # QEMU -icount shift: guest time counts instructions
    tsc_khz: int | None = None  # self-built x86 kernels: tsc=reliable tsc_early_khz=...
    extra_append: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        arch_info(self.arch)
        if self.preempt is not None and self.preempt not in PREEMPT_MODES:
            raise CaptureError(
                f"unknown preempt mode {self.preempt!r}: choose from {', '.join(PREEMPT_MODES)}"
            )
        if self.thp is not None and self.thp not in ("never", "always", "madvise"):
            raise CaptureError(f"--thp must be never, always or madvise, not {self.thp!r}")
        if self.icount is not None and not 0 <= self.icount <= 10:
            raise CaptureError(f"--icount shift must be 0..10 (2**N ns per instruction), not {self.icount}")
        if not re.fullmatch(r"[A-Za-z0-9._+-]+", self.tag):
            raise CaptureError(f"run tag {self.tag!r} may only hold letters, digits and ._+-")
