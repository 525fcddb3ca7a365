"""tracekit capture: provisioning (tools, package names, the workload, ELF closure, cpio)."""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tracekit.capture.plan import CaptureError, Workload, arch_info
from tracekit.capture.provision import (
    CpioWriter,
    _busybox_applets,
    build_workload,
    cache_dir,
    init_overlay,
    kernel_package_name,
    library_closure,
    require_tool,
)
from tracekit.capture.runner import PREEMPT_FROM_DEBUGFS, read_workload_meta


def test_missing_tool_names_its_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CaptureError, match=r"qemu-system-ppc64 is not installed.*apt-get install qemu-system-ppc"):
        require_tool("qemu-system-ppc64")
    with pytest.raises(CaptureError, match="readelf.*binutils"):
        require_tool("readelf")


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEKIT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


@pytest.mark.parametrize(
    "arch, given, want",
    [
        ("x86_64", "linux-image-6.1.0-56-amd64", "linux-image-6.1.0-56-amd64"),
        ("x86_64", "6.1.0-56-amd64", "linux-image-6.1.0-56-amd64"),
        ("x86_64", "6.1.0-56", "linux-image-6.1.0-56-amd64"),
        ("x86_64", "6.1.0-56-rt-amd64", "linux-image-6.1.0-56-rt-amd64"),
        ("ppc64le", "6.1.0-50", "linux-image-6.1.0-50-powerpc64le"),
    ],
)
def test_kernel_package_names(arch, given, want):
    assert kernel_package_name(given, arch_info(arch)) == want


def test_preempt_mode_parsed_from_debugfs_line(corpus):
    # the real info.txt of a capture booted preempt=none: "(none) voluntary full"
    info = (corpus / "qemu" / "x86_64-6.1.0-56-preempt-none" / "info.txt").read_text()
    line = next(ln for ln in info.splitlines() if "sched/preempt" in ln)
    assert PREEMPT_FROM_DEBUGFS.search(line).group(1) == "none"


def _cpio_list(data: bytes) -> list[str]:
    cpio = shutil.which("cpio")
    if cpio is None:
        pytest.skip("cpio (Debian package cpio) not installed")
    proc = subprocess.run([cpio, "-t", "-v"], input=data, capture_output=True, check=True)
    return proc.stdout.decode().splitlines()


def test_cpio_archive_read_back_by_gnu_cpio(tmp_path):
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.directory("bin")
    w.file("bin/busybox", b"\x7fELF" + b"x" * 1001, executable=True)
    w.symlink("bin/sh", "busybox")
    w.file("etc-note", b"odd length!")
    w.close()
    listing = _cpio_list(buf.getvalue())
    names = [ln.split()[-1] if "->" not in ln else ln.split()[-3] for ln in listing]
    assert names == ["bin", "bin/busybox", "bin/sh", "etc-note"]
    assert listing[1].startswith("-rwxr-xr-x") and " 1005 " in listing[1]
    assert listing[2].startswith("lrwxrwxrwx") and listing[2].endswith("bin/sh -> busybox")
    # extract and compare contents
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["cpio", "-i", "-d", "--quiet"], input=buf.getvalue(), cwd=dest, check=True)
    assert (dest / "etc-note").read_bytes() == b"odd length!"
    assert os.readlink(dest / "bin" / "sh") == "busybox"


def test_init_overlay_is_a_second_gzip_member(tmp_path):
    base = tmp_path / "base.cpio.gz"
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.file("bin/x", b"1")
    w.close()
    base.write_bytes(gzip.compress(buf.getvalue()))
    out = init_overlay("#!/bin/sh\necho hi\n", base, tmp_path / "run.cpio.gz")
    raw = gzip.decompress(out.read_bytes())  # both members, as the kernel reads them
    assert raw.startswith(buf.getvalue())
    listing = _cpio_list(raw[len(buf.getvalue()):])
    assert listing[0].startswith("-rwxr-xr-x") and listing[0].endswith(" init")


@pytest.mark.skipif(not shutil.which("busybox"), reason="busybox not on this host")
def test_busybox_applets_read_from_the_binary():
    path = Path(shutil.which("busybox"))
    listed = subprocess.run([str(path), "--list"], capture_output=True, text=True).stdout.split()
    got = _busybox_applets(path)
    if not got or got[0] != "[":
        pytest.skip("this busybox build keeps no plain applet name table")
    assert set(got) == set(listed)


@pytest.mark.skipif(not shutil.which("readelf") or not shutil.which("ldd"), reason="binutils/ldd missing")
def test_library_closure_matches_ldd():
    binary = Path("/bin/ls").resolve()
    dirs = [Path("/lib/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu"), Path("/lib64")]
    if not dirs[0].is_dir():
        pytest.skip("not a Debian x86_64 host")
    found, missing = library_closure([binary], dirs)
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    expect = set(re.findall(r"^\s*(\S+\.so[.\d]*) =>", ldd, flags=re.M))
    # libc names the ELF interpreter too; ldd prints it by path, without "=>"
    expect |= {Path(p).name for p in re.findall(r"^\s*(/\S+ld-linux\S+) \(", ldd, flags=re.M)}
    assert set(found) == expect
    assert missing == []


@pytest.mark.skipif(not shutil.which("gcc"), reason="gcc not installed")
def test_workload_builds_static_and_records_mm(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEKIT_CACHE", str(tmp_path / "cache"))
    try:
        exe = build_workload(arch_info("x86_64"), tmp_path / "cache", Workload(forks=3, mb=4, loops=1))
    except CaptureError as e:
        pytest.skip(f"static libc not available: {e}")
    assert not re.search(r"NEEDED", subprocess.run(["readelf", "-d", str(exe)], capture_output=True, text=True).stdout)
    meta = tmp_path / "meta"
    meta.mkdir()
    proc = subprocess.run([str(exe), "3", "4", "1", "0", str(meta)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert re.match(r"pgtfree: page=\d+ forks=3 mb=4 sparse=0 loops=1 ", proc.stdout)
    rows = read_workload_meta(meta / "workload.meta.txt")
    assert [r["child"] for r in rows] == [0, 1, 2]
    # 4 MiB mapped, the first half unmapped before exit: at least one PTE page is left
    assert all(r["mapped_mb"] == 4 and r["VmPTE_kB"] >= 4 for r in rows)
    assert (meta / "smaps.before_exit.txt").read_text().count("Rss:") >= 3
    # a second build is the cached binary
    assert build_workload(arch_info("x86_64"), tmp_path / "cache", Workload()) == exe
    # sparse=1: 1 GiB NORESERVE, one page written per 2 MiB, so 512 more PTE pages (4 kB
    # each) than the dense part alone, and 512 more resident pages (give or take the odd
    # stack or heap page: another process)
    sparse = tmp_path / "sparse"
    sparse.mkdir()
    proc = subprocess.run([str(exe), "1", "4", "0", "1", str(sparse)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (row,) = read_workload_meta(sparse / "workload.meta.txt")
    assert row["sparse_gb"] == 1
    assert row["VmPTE_kB"] - rows[0]["VmPTE_kB"] >= 512 * 4
    assert row["Anonymous_kB"] - rows[0]["Anonymous_kB"] >= 504 * 4


def test_preempt_mode_from_debugfs_config_or_banner():
    from tracekit.capture.runner import preempt_mode

    # PREEMPT_DYNAMIC: debugfs wins over what was asked
    assert preempt_mode({"preempt": "none voluntary (full) "}, "none") == "full"
    # Debian ppc64el 6.1: no debugfs file, CONFIG_PREEMPT_VOLUNTARY=y in /boot/config-*
    cfg = "# CONFIG_PREEMPT_NONE is not set\nCONFIG_PREEMPT_VOLUNTARY=y\n# CONFIG_PREEMPT is not set\n"
    assert preempt_mode({"preempt": ""}, None, cfg) == "voluntary"
    assert preempt_mode({"uname_v": "#1 SMP PREEMPT Tue Nov 26"}, None) == "full"
    assert preempt_mode({"uname_v": "#1 SMP PREEMPT_RT Debian"}, None) == "rt"
    assert preempt_mode({"uname_v": "#1 SMP Debian 6.1.176-1"}, "voluntary") == "voluntary"


def _fake_apt_cache(tmp_path, monkeypatch, answers: dict[str, str]) -> None:
    """An apt-cache on PATH that answers ``apt-cache depends PKG`` from ``answers`` (what
    Debian's apt-cache prints) and fails as apt-cache does for any other package."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cases = "".join(f"  {pkg}) cat <<'END'\n{out}END\n  ;;\n" for pkg, out in answers.items())
    script = bin_dir / "apt-cache"
    script.write_text(f'#!/bin/sh\n[ "$1" = depends ] || exit 99\ncase "$2" in\n{cases}'
                      '  *) echo "E: No packages found" >&2; exit 100;;\nesac\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_metapackage_followed_to_its_kernel(tmp_path, monkeypatch):
    from tracekit.capture.plan import CaptureError

    # bookworm's ppc64el archive: the metapackage a user types depends on the ABI package
    _fake_apt_cache(tmp_path, monkeypatch, {
        "linux-image-powerpc64le:ppc64el":
            "linux-image-powerpc64le:ppc64el\n  Depends: linux-image-6.1.0-41-powerpc64le:ppc64el\n",
        "linux-image-rt-amd64:amd64":
            "linux-image-rt-amd64\n  Depends: linux-image-6.1.0-41-rt-amd64\n",
        "linux-image-amd64:amd64":
            "linux-image-amd64\n  Depends: linux-image-6.1.0-41-amd64\n",
    })
    ppc = arch_info("ppc64le")
    assert kernel_package_name("linux-image-powerpc64le", ppc) == "linux-image-6.1.0-41-powerpc64le"
    assert kernel_package_name("linux-image-rt-amd64", arch_info("x86_64")) == "linux-image-6.1.0-41-rt-amd64"
    assert kernel_package_name("default", arch_info("x86_64")) == "linux-image-6.1.0-41-amd64"
    # an ABI package is taken as it is, without asking apt
    assert kernel_package_name("linux-image-6.1.0-56-powerpc64le", ppc) == "linux-image-6.1.0-56-powerpc64le"
    with pytest.raises(CaptureError, match="apt-cache depends linux-image-nosuch:ppc64el failed"):
        kernel_package_name("linux-image-nosuch", ppc)
