"""Packaging: every subpackage is installed under tracekit, and nothing as a top-level
``parsers`` or ``reports`` module; the README's commands exist."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _packages_on_disk() -> set[str]:
    found = set()
    for top, name in (("tracekit", "tracekit"), ("parsers", "tracekit.parsers"), ("reports", "tracekit.reports")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    return found


def test_every_subpackage_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    assert _packages_on_disk() <= listed, _packages_on_disk() - listed
    dirs = cfg["tool"]["setuptools"]["package-dir"]
    assert dirs["tracekit.parsers"] == "parsers" and dirs["tracekit.reports"] == "reports"


def test_no_top_level_parsers_or_reports_module():
    import tracekit.parsers
    import tracekit.reports

    assert Path(tracekit.parsers.__file__).parent == ROOT / "parsers"
    assert Path(tracekit.reports.__file__).parent == ROOT / "reports"
    import sys

    saved = sys.path[:]
    try:
        sys.path = [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "tests")]
        assert importlib.util.find_spec("parsers") is None
        assert importlib.util.find_spec("reports") is None
    finally:
        sys.path = saved


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    assert "./run.sh demo" in readme and "./run.sh test" in readme
    run = (ROOT / "run.sh").read_text()
    assert "demo)" in run and "test)" in run and "pytest" in run
    assert "./run.sh test" in (ROOT / ".ci" / "run").read_text()
