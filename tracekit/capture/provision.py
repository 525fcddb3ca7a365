"""Provisioning a capture: host tools, Debian packages for the guest, the workload binary
and the initramfs, all cached under one directory.

Cache layout (``$TRACEKIT_CACHE``, else ``~/.cache/tracekit``)::

    debs/<debian-arch>/*.deb          apt-get download (never installed into /)
    root/<debian-arch>/<package>/     dpkg -x of one kernel package
    root/<debian-arch>/tools/         dpkg -x of busybox-static, trace-cmd, linux-perf + libs
    build/<arch>/pgtfree-<hash>       the static workload
    initramfs/<arch>-<hash>.cpio.gz   busybox + tools + 9p modules + workload (no /init)

The guest's ``/init`` differs per run, so it goes into a second, tiny cpio archive that is
concatenated to the cached one: the kernel unpacks concatenated gzip'd cpio archives in
order.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from tracekit.capture.guest import MODULES_9P
from tracekit.capture.plan import ArchInfo, CaptureError, Workload, arch_info

__all__ = [
    "cache_dir",
    "machine_lock",
    "require_tool",
    "HOST_TOOLS",
    "kernel_package_name",
    "ensure_foreign_arch",
    "apt_download",
    "unpack_package",
    "provision_kernel",
    "provision_tools",
    "build_workload",
    "needed_libs",
    "library_closure",
    "CpioWriter",
    "build_initramfs",
    "init_overlay",
]

#: Host commands and the Debian package that provides each.
HOST_TOOLS: dict[str, str] = {
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg": "dpkg",
    "readelf": "binutils",
    "gcc": "gcc",
    "powerpc64le-linux-gnu-gcc": "gcc-powerpc64le-linux-gnu",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-ppc64": "qemu-system-ppc",
    "patch": "patch",
    "make": "make",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
}


def cache_dir() -> Path:
    """``$TRACEKIT_CACHE``, else ``~/.cache/tracekit``; created when missing."""
    root = os.environ.get("TRACEKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tracekit"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def machine_lock(cache: Path, what: str) -> Iterator[None]:
    """Hold the cache's exclusive lock while building or booting: no kernel build runs
    beside a capture, and two captures do not share the host's two cores."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "machine.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # someone else builds or captures: wait for them, saying so
            print(f"tracekit: waiting for another build or capture to finish before {what}", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def require_tool(name: str) -> str:
    """The path of host command ``name``; a CaptureError naming the Debian package that
    provides it when it is missing."""
    found = shutil.which(name)
    if found:
        return found
    pkg = HOST_TOOLS.get(name)
    hint = f": install it with `apt-get install {pkg}`" if pkg else ""
    raise CaptureError(f"{name} is not installed{hint}")


def _run(cmd: list[str], what: str, cwd: Path | None = None, lines: int = 8) -> str:
    """Run ``cmd``; on failure a CaptureError with ``what`` and the first lines of its
    error output (never a wall of text)."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        require_tool(cmd[0])
        raise
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        head = "\n  ".join(err[:lines]) or "(no output)"
        raise CaptureError(f"{what} failed (exit {proc.returncode}):\n  {head}")
    return proc.stdout


#: A kernel image package with its ABI release in the name (linux-image-6.1.0-56-amd64);
#: anything else named linux-image-* is a metapackage that depends on one.
_ABI_PACKAGE = re.compile(r"linux-image-\d+\.\d+")


def _apt_depends(package: str) -> str:
    return _run(["apt-cache", "depends", package], f"apt-cache depends {package}")


def kernel_package_name(kernel: str, arch: ArchInfo) -> str:
    """The Debian package for a ``--kernel`` value: a full package name
    (``linux-image-6.1.0-56-amd64``), an ABI release (``6.1.0-56-amd64`` or ``6.1.0-56``,
    the flavour added), a metapackage (``linux-image-powerpc64le``, ``linux-image-amd64``,
    ``linux-image-rt-amd64``: followed through apt's metadata to the kernel it depends on),
    or ``default`` for the newest (what ``linux-image-<flavour>`` depends on)."""
    if kernel == "default":
        return _follow_metapackage(f"linux-image-{arch.kernel_flavour}", arch)
    name = kernel if kernel.startswith("linux-image-") else f"linux-image-{kernel}"
    if re.fullmatch(r"linux-image-\d+\.\d+\.\d+-\d+", name):
        name += f"-{arch.kernel_flavour}"
    if not _ABI_PACKAGE.match(name):
        return _follow_metapackage(name, arch)
    return name


def _follow_metapackage(meta: str, arch: ArchInfo, hops: int = 3) -> str:
    """The kernel image package metapackage ``meta`` depends on, as ``apt-cache depends``
    says (a metapackage may depend on another: followed ``hops`` deep)."""
    name = meta
    for _ in range(hops):
        out = _apt_depends(f"{name}:{arch.debian_arch}")
        deps = re.findall(r"^\s*\|?Depends: (linux-image-[^\s:<>]+)", out, re.M)
        if not deps:
            raise CaptureError(f"{name}:{arch.debian_arch} names no kernel image package (apt-cache depends); "
                               "give --kernel linux-image-<release>")
        name = deps[0]
        if _ABI_PACKAGE.match(name):
            return name
    raise CaptureError(f"{meta}: no kernel image package within {hops} metapackages (apt-cache depends)")


def ensure_foreign_arch(arch: ArchInfo) -> None:
    """Make apt know ``arch.debian_arch`` packages (``dpkg --add-architecture`` and an
    ``apt-get update``) when it is not the host's own arch.  Nothing is installed."""
    native = _run(["dpkg", "--print-architecture"], "dpkg --print-architecture").strip()
    if arch.debian_arch == native:
        return
    foreign = _run(["dpkg", "--print-foreign-architectures"], "dpkg").split()
    if arch.debian_arch not in foreign:
        _run(["dpkg", "--add-architecture", arch.debian_arch], "dpkg --add-architecture")
        # "apt-get update" exits non-zero when one index (a mirror mid-sync) fails while the
        # others are fine; a package that is really missing is reported by apt_download.
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)


def apt_download(packages: list[str], arch: ArchInfo, dest: Path) -> dict[str, Path]:
    """Download ``packages`` of ``arch`` into ``dest`` with ``apt-get download`` (cached: a
    package already there is not fetched again).  Returns package -> .deb path; packages
    the archive does not have are left out."""
    dest.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}

    def have(pkg: str) -> list[Path]:
        return sorted(dest.glob(f"{pkg}_*_{arch.debian_arch}.deb")) + sorted(
            dest.glob(f"{pkg}_*_all.deb")
        )

    # one apt-get call for everything missing (apt resolves the archive once, which is
    # what takes the time); if any one package is unknown the call fails as a whole, and the
    # packages are fetched one by one below
    missing = [p for p in packages if not have(p)]
    if len(missing) > 1:
        subprocess.run(
            ["apt-get", "download", "-q", *[f"{p}:{arch.debian_arch}" for p in missing]],
            cwd=dest,
            capture_output=True,
        )
    for pkg in packages:
        hits = have(pkg)
        if not hits:
            proc = subprocess.run(
                ["apt-get", "download", "-q", f"{pkg}:{arch.debian_arch}"],
                cwd=dest,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                continue
            hits = have(pkg)
        if hits:
            found[pkg] = hits[-1]
    return found


def unpack_package(deb: Path, root: Path) -> None:
    """``dpkg -x`` one package into ``root`` (never into /)."""
    root.mkdir(parents=True, exist_ok=True)
    _run(["dpkg", "-x", str(deb), str(root)], f"dpkg -x {deb.name}")


def provision_kernel(kernel: str, arch: ArchInfo, cache: Path) -> tuple[Path, Path | None, str]:
    """The kernel to boot: ``(image, modules_root, release)``.

    ``kernel`` is a path to a kernel image (bzImage, vmlinuz, vmlinux: booted as it is, no
    modules, so results come back over the serial fallback unless 9p is built in), or a
    Debian package name / release, downloaded and unpacked in the cache.  ``release`` is the
    package's ABI release, or "" for an image path (the guest's uname says).
    """
    path = Path(kernel).expanduser()
    if path.is_file():
        return path.resolve(), None, ""
    if "/" in kernel:
        raise CaptureError(f"kernel image {kernel} does not exist")
    require_tool("apt-get")
    require_tool("dpkg")
    ensure_foreign_arch(arch)
    pkg = kernel_package_name(kernel, arch)
    release = pkg.removeprefix("linux-image-")
    root = cache / "root" / arch.debian_arch / pkg
    image = root / "boot" / f"{arch.image_prefix}-{release}"
    if not image.is_file():
        debs = apt_download([pkg], arch, cache / "debs" / arch.debian_arch)
        if pkg not in debs:
            raise CaptureError(
                f"no Debian package {pkg}:{arch.debian_arch} (see `apt-cache search "
                f"--names-only 'linux-image-.*-{arch.kernel_flavour}$'` for the versions "
                "the archive has)"
            )
        unpack_package(debs[pkg], root)
        if not image.is_file():
            raise CaptureError(f"{pkg} has no {image.relative_to(root)}")
    return image, root, release


def _tool_packages(arch: ArchInfo) -> list[str]:
    """busybox-static, trace-cmd, linux-perf and the library packages they depend on."""
    top = ["trace-cmd", "linux-perf", "libtraceevent1-plugin"]
    out = _run(
        [
            "apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
            "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
            *[f"{p}:{arch.debian_arch}" for p in top],
        ],
        "apt-cache depends",
    )  # fmt: skip
    libs = set()
    for line in out.splitlines():
        name = line.strip().split(":")[0].strip("<>")
        if not re.match(r"^(lib|zlib)", name):
            continue
        if re.search(r"(^python|-dev$|-data$|-bin$|-common$|perl-base)", name):
            continue
        libs.add(name)
    return ["busybox-static", *top, *sorted(libs)]


def provision_tools(arch: ArchInfo, cache: Path, want_tracing_tools: bool) -> Path:
    """Unpack busybox-static (and, when asked, trace-cmd, perf and their libraries) for the
    guest into ``root/<debian-arch>/tools``; returns that root."""
    root = cache / "root" / arch.debian_arch / "tools"
    if not want_tracing_tools:
        if (root / ".done-busybox").exists() or any(root.glob(".done-full-*")):
            return root
        pkgs = ["busybox-static"]
        stamp = root / ".done-busybox"
    else:
        ensure_foreign_arch(arch)
        pkgs = _tool_packages(arch)
        # the stamp names the package set: a changed dependency list unpacks again
        digest = hashlib.sha256("\n".join(pkgs).encode()).hexdigest()[:12]
        stamp = root / f".done-full-{digest}"
        if stamp.exists():
            return root
    ensure_foreign_arch(arch)
    debs = apt_download(pkgs, arch, cache / "debs" / arch.debian_arch)
    if "busybox-static" not in debs:
        raise CaptureError(f"cannot download busybox-static:{arch.debian_arch}")
    for deb in debs.values():
        unpack_package(deb, root)
    stamp.touch()
    return root


def _workload_source() -> bytes:
    return resources.files("tracekit.capture").joinpath("pgtfree.c").read_bytes()


def build_workload(arch: ArchInfo, cache: Path, workload: Workload) -> Path:
    """Compile the workload statically for ``arch`` (host gcc, or the cross compiler);
    cached by the source's hash."""
    src = _workload_source()
    digest = hashlib.sha256(src + arch.cc.encode()).hexdigest()[:16]
    out = cache / "build" / arch.name / f"{workload.name}-{digest}"
    if out.is_file():
        return out
    cc = shutil.which(arch.cc)
    if cc is None:
        pkgs = " ".join(arch.cc_packages)
        raise CaptureError(
            f"{arch.cc} is not installed: install it with `apt-get install {pkgs}`"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    src_path = out.parent / f"{workload.name}.c"
    src_path.write_bytes(src)
    tmp = out.with_suffix(".tmp")
    _run([cc, "-O2", "-static", "-o", str(tmp), str(src_path)], f"compiling {workload.name}.c")
    tmp.rename(out)
    return out


def needed_libs(elf: Path) -> list[str]:
    """The DT_NEEDED entries of an ELF file (``readelf -d``; works across arches)."""
    proc = subprocess.run(["readelf", "-d", str(elf)], capture_output=True, text=True)
    return re.findall(r"Shared library: \[([^\]]+)\]", proc.stdout)


def library_closure(
    binaries: list[Path], lib_dirs: list[Path]
) -> tuple[dict[str, Path], list[str]]:
    """Every shared library ``binaries`` need, transitively, found in ``lib_dirs``:
    ``({soname: path}, [sonames not found])``."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    todo = list(binaries)
    seen: set[str] = set()
    while todo:
        nxt = []
        for f in todo:
            for so in needed_libs(f):
                if so in seen:
                    continue
                seen.add(so)
                hit = next((d / so for d in lib_dirs if (d / so).exists()), None)
                if hit is None:
                    missing.append(so)
                else:
                    found[so] = hit
                    nxt.append(hit)
        todo = nxt
    return found, missing


class CpioWriter:
    """Writes a ``newc`` cpio archive (the initramfs format the kernel unpacks,
    Documentation/driver-api/early-userspace/buffer-format.rst)."""

    def __init__(self, fileobj) -> None:
        self._f = fileobj
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        name_b = name.encode() + b"\0"
        fields = [
            self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name_b), 0,
        ]  # fmt: skip
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        self._f.write(header + name_b)
        self._f.write(b"\0" * ((4 - (len(header) + len(name_b)) % 4) % 4))
        self._f.write(data)
        self._f.write(b"\0" * ((4 - len(data) % 4) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, executable: bool = False) -> None:
        self._entry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def close(self) -> None:
        self._entry("TRAILER!!!", 0)


def _busybox_applets(busybox: Path) -> list[str]:
    """The applet names a busybox binary provides: read from the binary itself (it may be
    another arch's), as the NUL-separated name table that follows the ``[\\0[[\\0`` entries."""
    blob = busybox.read_bytes()
    start = blob.find(b"[\0[[\0")
    if start < 0:
        return ["sh", "mount", "cat", "echo", "mkdir", "insmod", "poweroff"]
    names = []
    for raw in blob[start:start + 20000].split(b"\0"):
        if not raw or not re.fullmatch(rb"[a-z0-9_.\[\-]+", raw):
            break
        names.append(raw.decode())
    return names


def build_initramfs(
    arch: ArchInfo,
    cache: Path,
    tools_root: Path,
    workload_bin: Path,
    modules_root: Path | None,
    release: str,
    with_tracing_tools: bool,
) -> tuple[Path, list[str]]:
    """The cached base initramfs: busybox (every applet linked), the workload as
    /bin/pgtfree, the kernel's virtio/9p modules, and (when asked) trace-cmd and perf with
    their shared-library closure and the ELF interpreter.  Returns ``(path, warnings)``.
    The guest's /init is not in it (see :func:`init_overlay`)."""
    busybox = tools_root / "bin" / "busybox"
    if not busybox.is_file():
        raise CaptureError(f"busybox-static is not unpacked in {tools_root}")
    tools = [tools_root / "usr" / "bin" / t for t in ("trace-cmd", "perf")] if with_tracing_tools else []
    tools = [t for t in tools if t.is_file()]
    plugin_dir = tools_root / "usr" / "lib" / arch.triplet / "traceevent" / "plugins"
    plugins = sorted(plugin_dir.glob("*.so")) if with_tracing_tools and plugin_dir.is_dir() else []
    modules: list[tuple[str, Path]] = []
    if modules_root is not None and release:
        kdir = modules_root / "lib" / "modules" / release / "kernel"
        for m in MODULES_9P:
            for ext in (".ko", ".ko.xz"):
                if (kdir / (m + ext)).is_file():
                    modules.append((f"lib/modules/{release}/kernel/{m}.ko", kdir / (m + ext)))
    warnings: list[str] = []
    lib_dirs = [
        tools_root / "lib" / arch.triplet,
        tools_root / "usr" / "lib" / arch.triplet,
        tools_root / "lib64",
        tools_root / "lib",
        tools_root / "usr" / "lib",
    ]
    libs, missing = library_closure([*tools, *plugins], lib_dirs) if tools else ({}, [])
    if missing:
        warnings.append(f"shared libraries not found for the guest tools: {' '.join(missing)}")
    # cached by what goes in: a newly unpacked library makes a new initramfs
    key = hashlib.sha256()
    for p in [busybox, workload_bin, *tools, *plugins, *(m[1] for m in modules), *libs.values()]:
        st = p.stat()
        key.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    out = cache / "initramfs" / f"{arch.name}-{key.hexdigest()[:16]}.cpio.gz"
    if out.is_file():
        return out, warnings
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    w = CpioWriter(buf)
    dirs = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/lib", "proc", "sys", "dev",
            "tmp", "out", "etc", "lib", "lib64"]  # fmt: skip
    for d in dirs:
        w.directory(d)
    w.file("bin/busybox", busybox.read_bytes(), executable=True)
    for applet in _busybox_applets(busybox):
        if applet not in ("busybox", "[", "[["):
            w.symlink(f"bin/{applet}", "busybox")
    w.symlink("bin/[", "busybox")
    w.file("bin/pgtfree", workload_bin.read_bytes(), executable=True)
    made = set(dirs)
    for name, src in modules:
        parts = Path(name).parent.parts
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                w.directory(d)
                made.add(d)
        data = src.read_bytes()
        if src.suffix == ".xz":
            data = lzma.decompress(data)
        w.file(name, data)
    for t in tools:
        w.file(f"usr/bin/{t.name}", t.read_bytes(), executable=True)
    if plugins:
        for d in ("usr/lib/traceevent", "usr/lib/traceevent/plugins"):
            w.directory(d)
        for p in plugins:
            w.file(f"usr/lib/traceevent/plugins/{p.name}", p.read_bytes())
    for so, path in sorted(libs.items()):
        w.file(f"lib/{so}", path.resolve().read_bytes(), executable=True)
    if tools:
        interp = next((d / arch.interpreter for d in lib_dirs if (d / arch.interpreter).exists()), None)
        if interp is None:
            warnings.append(f"ELF interpreter {arch.interpreter} not found: trace-cmd/perf will not run")
        else:
            w.file(f"lib/{arch.interpreter}", interp.resolve().read_bytes(), executable=True)
            w.symlink(f"lib64/{arch.interpreter}", f"../lib/{arch.interpreter}")
    w.close()
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(buf.getvalue(), compresslevel=1))
    tmp.rename(out)
    return out, warnings


def init_overlay(script: str, base: Path, dest: Path) -> Path:
    """``base`` with a second cpio archive appended that holds ``/init`` = ``script``."""
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.file("init", script.encode(), executable=True)
    w.close()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f, open(base, "rb") as b:
        shutil.copyfileobj(b, f)
        f.write(gzip.compress(buf.getvalue(), compresslevel=1))
    return dest
