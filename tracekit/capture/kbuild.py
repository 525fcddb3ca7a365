"""Before/after kernels built from Debian's kernel source and a patch under test.

``tracekit capture --kernel-source linux-source-6.1 --patch-file P.patch`` builds two x86_64
kernels from the same source: the pristine tree ("before"), then the tree with the patch
applied in place ("after", built incrementally in a copy of the "before" build directory, so
only what the patch touches is recompiled; the patch is reversed afterwards, even on
Ctrl-C), each from ``make tinyconfig`` plus ``tracekit.fragment`` (CONFIG_PREEMPT, the
preemptoff/irqsoff tracers, function_graph, kprobes, no THP).  Only ``bzImage`` is built: no
modules, so results come back over the serial fallback.  Builds are cached by source
version, configuration and patch content.  A patch that does not apply, or a build that
fails, stops with the first lines of the error.

Builds and captures never overlap (under TCG the guest clock is host time: a build running
beside a capture inflates every latency): both hold the cache's exclusive lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass
from importlib import resources
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from tracekit.capture import provision
from tracekit.capture.plan import LATENCY_TRACERS, TRACERS, CaptureError, CapturePlan, Workload, arch_info

__all__ = [
    "BUILD_TOOLS",
    "KernelBuild",
    "fragment_text",
    "build_key",
    "host_tsc_khz",
    "provision_source",
    "check_patch",
    "build_kernel",
    "first_error_lines",
    "capture_patch_pair",
]

#: Host commands a kernel build needs, and the Debian package of each.
BUILD_TOOLS: dict[str, str] = {
    "make": "make",
    "gcc": "gcc",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "patch": "patch",
    "perl": "perl",
}
#: Headers the x86 build needs (objtool links libelf), and their packages.
BUILD_HEADERS: dict[str, str] = {
    "/usr/include/libelf.h": "libelf-dev",
    "/usr/include/openssl/opensslv.h": "libssl-dev",
}


@dataclass(frozen=True)
class KernelBuild:
    """A built kernel: its image, .config, release (``utsrelease``) and build time."""

    image: Path
    config: Path
    release: str
    build_s: float
    cached: bool


def fragment_text() -> str:
    """The shipped config fragment (``tracekit.fragment``)."""
    return resources.files("tracekit.capture").joinpath("tracekit.fragment").read_text()


def build_key(source_version: str, fragment: str, patch: bytes | None, arch: str = "x86_64") -> str:
    """The cache key of one build: source version, config fragment and patch content."""
    h = hashlib.sha256()
    for part in (arch.encode(), source_version.encode(), fragment.encode(), patch or b"<none>"):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def host_tsc_khz(cpuinfo: str | None = None) -> int | None:
    """The host's clock in kHz (``cpu MHz`` of /proc/cpuinfo), for ``tsc_early_khz=``."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    m = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, flags=re.M)
    return round(float(m.group(1)) * 1000) if m else None


def _check_build_host() -> None:
    for tool, pkg in BUILD_TOOLS.items():
        if shutil.which(tool) is None:
            raise CaptureError(f"{tool} is not installed (needed to build a kernel): apt-get install {pkg}")
    for header, pkg in BUILD_HEADERS.items():
        if not Path(header).exists():
            raise CaptureError(f"{header} is missing (needed to build a kernel): apt-get install {pkg}")


def provision_source(package: str, cache: Path) -> tuple[Path, str]:
    """Debian's kernel source package (``linux-source-6.1``), downloaded and unpacked in the
    cache: ``(tree, version)``, the tree being the pristine ``linux-source-X.Y`` directory."""
    arch = arch_info("x86_64")
    debs = provision.apt_download([package], arch, cache / "debs" / "all")
    if package not in debs:
        raise CaptureError(f"cannot download {package} (is it a Debian kernel source package?)")
    deb = debs[package]
    version = deb.name.split("_")[1].replace("%3a", ":")
    root = cache / "src" / f"{package}_{version}"
    tree = root / package
    if (tree / "Makefile").exists():
        return tree, version
    unpacked = root / "deb"
    provision.unpack_package(deb, unpacked)
    tarballs = sorted((unpacked / "usr" / "src").glob(f"{package}.tar.*"))
    if not tarballs:
        raise CaptureError(f"{deb.name} holds no /usr/src/{package}.tar.*")
    with tarfile.open(tarballs[0]) as tar:
        tar.extractall(root, filter="data")
    shutil.rmtree(unpacked)
    if not (tree / "Makefile").exists():
        raise CaptureError(f"{tarballs[0].name} did not unpack to {package}/")
    return tree, version


def first_error_lines(text: str, n: int = 10) -> str:
    """The first lines of a failed build or patch that say what went wrong: lines with
    ``error``/``Error``/``FAILED``/``Hunk``/``can't find`` and a little context, or the
    output's last lines when none match."""
    lines = text.splitlines()
    keys = re.compile(r"(error|Error|FAILED|failed|Hunk #|can't find|No such file|Reversed)")
    hits = [i for i, ln in enumerate(lines) if keys.search(ln)]
    if not hits:
        return "\n".join(lines[-n:])
    out: list[str] = []
    for i in hits:
        # the compiler's "In function" line before, its source excerpt ("  42 | ...") after
        want = [i]
        if i > 0 and lines[i - 1].rstrip().endswith(":"):
            want.insert(0, i - 1)
        if i + 1 < len(lines) and re.match(r"^\s*\d+ \|", lines[i + 1]):
            want.append(i + 1)
        for j in want:
            if lines[j] not in out:
                out.append(lines[j])
        if len(out) >= n:
            break
    return "\n".join(out[:n])


def check_patch(tree: Path, patch: Path) -> None:
    """Dry-run ``patch -p1`` of ``patch`` on ``tree``: a CaptureError with patch's own
    first complaint lines when it does not apply cleanly."""
    proc = subprocess.run(
        ["patch", "-p1", "--dry-run", "--batch", "--forward", "-i", str(patch.resolve())],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise CaptureError(
            f"{patch.name} does not apply to {tree.name}:\n  "
            + first_error_lines(proc.stdout + proc.stderr).replace("\n", "\n  ")
        )


def _patched_tree(tree: Path, patch: Path, key: str, cache: Path) -> Path:
    """A hard-linked copy of ``tree`` with ``patch`` applied (patch(1) writes new files, so
    the pristine tree is untouched)."""
    dest = cache / "src" / f"{tree.parent.name}-{key}"
    stamp = dest / ".tracekit-patched"
    if stamp.exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    check_patch(tree, patch)
    subprocess.run(["cp", "-al", str(tree), str(dest)], check=True)
    proc = subprocess.run(
        ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-i", str(patch.resolve())],
        cwd=dest,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise CaptureError(f"{patch.name} does not apply:\n  " + first_error_lines(proc.stdout + proc.stderr))
    stamp.touch()
    return dest


def _run_in_own_group(cmd: list[str], log, env: dict[str, str]) -> int:
    """Run ``cmd`` (make and its compilers) in its own process group and kill the whole
    group if this process is interrupted (Ctrl-C, SIGTERM): no compiler outlives tracekit."""
    from tracekit.capture.qemu import _terminate_raises

    proc = None
    try:
        with _terminate_raises():
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            return proc.wait()
    finally:
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def _rebase_commands(out: Path, base_dir: Path) -> None:
    """In a copied build directory, rewrite the recorded commands (``.*.cmd``) that name the
    old directory (objtool's do).  Otherwise make sees changed commands, rebuilds objtool,
    and then every object, which all depend on the objtool binary."""
    old, new = str(base_dir).encode(), str(out).encode()
    for cmd in out.rglob(".*.cmd"):
        data = cmd.read_bytes()
        if old in data:
            cmd.write_bytes(data.replace(old, new))


_APPLIED = ".tracekit-applied.patch"


def _undo_stale_patch(tree: Path) -> None:
    """A build that died with a patch applied in place left it recorded in the tree: take it
    out, so the pristine tree is pristine again."""
    stale = tree / _APPLIED
    if stale.exists():
        subprocess.run(
            ["patch", "-p1", "-R", "--batch", "--no-backup-if-mismatch", "-i", str(stale)],
            cwd=tree, capture_output=True,
        )  # fmt: skip
        stale.unlink()


@contextmanager
def _patched_in_place(tree: Path, patch: Path) -> Iterator[None]:
    """``patch`` applied to ``tree`` itself for the length of the block, then reversed.

    Building the patched kernel from the same source path as the unpatched one lets make
    reuse every object the patch does not touch (the build directory records source paths).
    The applied patch is recorded in the tree until it is reversed, so an interrupted build
    is undone by the next one (:func:`_undo_stale_patch`).  Callers hold the machine lock.
    """
    _undo_stale_patch(tree)
    check_patch(tree, patch)
    shutil.copyfile(patch, tree / _APPLIED)
    proc = subprocess.run(
        ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-i", str(tree / _APPLIED)],
        cwd=tree, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        _undo_stale_patch(tree)
        raise CaptureError(f"{patch.name} does not apply:\n  " + first_error_lines(proc.stdout + proc.stderr))
    try:
        yield
    finally:
        _undo_stale_patch(tree)


def build_kernel(
    tree: Path,
    source_version: str,
    cache: Path,
    patch: Path | None = None,
    localversion: str = "",
    jobs: int = 2,
    base: KernelBuild | None = None,
) -> KernelBuild:
    """Build an x86_64 ``bzImage`` from ``tree`` (with ``patch`` applied to a copy): make
    tinyconfig, merge ``tracekit.fragment``, olddefconfig, ``make -jN bzImage``.  Cached by
    :func:`build_key`; a failed build raises with the first error lines and the log path.

    With ``base`` (the unpatched build of the same tree) and a ``patch``, the patched kernel
    is built incrementally: ``base``'s build directory is copied and the patch applied to
    the tree in place for the build, so only what the patch touches is recompiled."""
    _check_build_host()
    fragment = fragment_text()
    patch_bytes = patch.read_bytes() if patch else None
    key = build_key(source_version, fragment + localversion, patch_bytes)
    out = cache / "kbuild" / key
    image = out / "arch" / "x86" / "boot" / "bzImage"
    done = out / ".tracekit-built"
    if done.exists() and image.exists():
        release = (out / "include" / "config" / "kernel.release").read_text().strip()
        return KernelBuild(image, out / ".config", release, float(done.read_text() or 0), True)
    incremental = patch is not None and base is not None
    if incremental:
        if out.exists():
            shutil.rmtree(out)
        base_dir = base.image.parents[3]  # <out>/arch/x86/boot/bzImage
        subprocess.run(["cp", "-a", str(base_dir), str(out)], check=True)
        for stale in (out / ".tracekit-built", out / "build.log"):
            stale.unlink(missing_ok=True)
        _rebase_commands(out, base_dir)
        src = tree
    else:
        src = _patched_tree(tree, patch, key, cache) if patch else tree
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    env = {**os.environ, "ARCH": "x86_64"}

    def make(*args: str, what: str) -> None:
        with open(log, "a") as f:
            returncode = _run_in_own_group(
                ["make", "-C", str(src), f"O={out}", "ARCH=x86_64", *args], f, env
            )
        if returncode != 0:
            text = log.read_text(errors="replace")
            raise CaptureError(
                f"kernel {what} failed (full log: {log}):\n  "
                + first_error_lines(text).replace("\n", "\n  ")
            )

    log.write_text("")
    t0 = time.monotonic()
    with _patched_in_place(tree, patch) if incremental else nullcontext():
        _configure_and_make(src, out, fragment, localversion, jobs, make, log, env)
    build_s = time.monotonic() - t0
    release = (out / "include" / "config" / "kernel.release").read_text().strip()
    done.write_text(f"{build_s:.1f}")
    return KernelBuild(image, out / ".config", release, build_s, False)


def _configure_and_make(
    src: Path,
    out: Path,
    fragment: str,
    localversion: str,
    jobs: int,
    make: Callable[..., None],
    log: Path,
    env: dict[str, str],
) -> None:
    """tinyconfig, the fragment merged in, olddefconfig, ``make -jN bzImage``."""
    make("tinyconfig", what="configuration (tinyconfig)")
    frag = out / "tracekit.fragment"
    frag.write_text(fragment + (f'CONFIG_LOCALVERSION="{localversion}"\n' if localversion else ""))
    with open(log, "a") as f:
        proc = subprocess.run(
            [str(src / "scripts" / "kconfig" / "merge_config.sh"), "-m", "-O", str(out),
             str(out / ".config"), str(frag)],
            stdout=f, stderr=subprocess.STDOUT, cwd=src, env=env,
        )  # fmt: skip
    if proc.returncode != 0:
        raise CaptureError(f"merging tracekit.fragment failed (full log: {log})")
    make("olddefconfig", what="configuration (olddefconfig)")
    make(f"-j{jobs}", "bzImage", what="build")


def capture_patch_pair(
    source_package: str,
    patch_file: Path,
    arch: str = "x86_64",
    tracers: tuple[str, ...] = ("function_graph", "events", "preemptoff", "irqsoff", "preemptirqsoff"),
    workload: Workload | None = None,
    thp: str | None = None,
    patch: str = "patch",
    store: Path | None = None,
    out_dir: Path | None = None,
    timeout_s: float = 900.0,
    ingest: bool = True,
    on_phase=None,
    latency_runs: int = 3,
    repeat: int = 1,
    latency_path: bool = False,
    icount: int | None = None,
) -> list:
    """Build the unpatched and patched kernels, capture each ``repeat`` times, and ingest
    them under ``patch`` with labels ``before`` and ``after``.  Boots alternate (before,
    after, before, after...) so that load on the host falls on both sides alike; each
    boot has its own tag (``<patch>-<side>-b<i>`` when repeated) and boot id.  Returns the
    CaptureResults in boot order."""
    from tracekit.capture.runner import capture

    if arch != "x86_64":
        raise CaptureError("--kernel-source builds x86_64 kernels only")
    if not patch_file.is_file():
        raise CaptureError(f"patch file {patch_file} does not exist")
    if repeat < 1:
        raise CaptureError(f"--repeat must be at least 1, not {repeat}")
    on_phase = on_phase or (lambda name, detail: None)
    cache = provision.cache_dir()
    on_phase("source", source_package)
    tree, version = provision_source(source_package, cache)
    builds: dict[str, KernelBuild] = {}
    check_patch(tree, patch_file)  # before any build: a patch that does not apply stops here
    with provision.machine_lock(cache, "building"):
        on_phase("build", f"before: {tree.name} {version} (about 2-3 min from scratch)")
        builds["before"] = build_kernel(tree, version, cache, None, localversion="-tk-before")
        on_phase("build", f"after: {tree.name} {version} + {patch_file.name}")
        builds["after"] = build_kernel(
            tree, version, cache, patch_file, localversion="-tk-after", base=builds["before"]
        )
    for side, b in builds.items():
        on_phase("build", f"{side}: {b.release} {'(cached)' if b.cached else f'built in {b.build_s:.0f} s'}")
    tsc = host_tsc_khz()
    results = []
    # the point of a self-built kernel: the latency tracers stock kernels lack (all three
    # unless the tracers name some)
    wanted = set(tracers)
    if not wanted & set(LATENCY_TRACERS):
        wanted |= {"preemptoff", "irqsoff", "preemptirqsoff"}
    wants = tuple(t for t in TRACERS if t in wanted)
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", patch)
    for i, side in ((i, side) for i in range(1, repeat + 1) for side in ("before", "after")):
        if repeat > 1:
            on_phase("boot", f"{side}, boot {i} of {repeat}")
        plan = CapturePlan(
            arch=arch,
            tag=f"{safe}-{side}" + (f"-b{i}" if repeat > 1 else ""),
            tracers=wants,
            workload=workload or Workload(),
            thp=thp,
            tsc_khz=tsc,
            latency_runs=latency_runs,
            latency_path=latency_path,
            icount=icount,
        )
        b = builds[side]
        results.append(
            capture(
                plan,
                str(b.image),
                out_dir=out_dir,
                store=store,
                patch=patch,
                label=side,
                timeout_s=timeout_s,
                ingest=ingest,
                on_phase=on_phase,
                kernel_config=b.config,
            )
        )
    return results
