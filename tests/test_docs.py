"""The project documents itself: no source file cites documents outside the repository, the
documentation's index lists every page, and the test suite collects without the real-trace
corpus beside it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SOURCE_DIRS = ("tracekit", "parsers", "reports", "benchmarks")

#: What source files must not cite: documents that live outside the repository.
OUTSIDE = re.compile(r"\.\./shared/|\b(?:DESIGN|MODEL|FORMATS|CAPTURE)\.md\b")


def python_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


def heading_slug(text: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation other than ``-``
    and ``_`` dropped, spaces as ``-``."""
    text = re.sub(r"[`*]", "", text.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    """The anchors of ``md``'s headings (a repeated heading gets ``-1``, ``-2``...), headings
    inside fenced code blocks left out."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in md.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if fenced or not m:
            continue
        slug = heading_slug(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_heading_slugs_follow_github():
    assert heading_slug("Linux 2.6.22 teardown") == "linux-2622-teardown"
    assert heading_slug("function_graph") == "function_graph"
    assert heading_slug("timerlat osnoise and hwlat") == "timerlat-osnoise-and-hwlat"
    assert heading_slug("The `verbose` option") == "the-verbose-option"


def test_anchors_skip_code_blocks_and_number_repeats(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("# Title\n\n```\n# tracer: nop\n```\n\n## Notes\n\n## Notes\n")
    assert anchors(md) == {"title", "notes", "notes-1"}


def test_no_source_file_cites_documents_outside_the_repository():
    offenders = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in python_files(*SOURCE_DIRS)
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, "\n".join(offenders)


def test_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text()
    pages = sorted(p.name for p in DOCS.iterdir() if p.name != "README.md" and p.suffix in (".md", ".json"))
    unlisted = [p for p in pages if f"]({p})" not in index]
    assert not unlisted, f"docs/README.md does not link {unlisted}"


def test_suite_collects_without_the_corpus(tmp_path):
    """No test module reads ../shared when it is imported: with only the tests and fixtures
    in a directory that has no ../shared beside it, collection succeeds (tests that need the
    corpus fail or skip when they run, saying so)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    assert not (tmp_path / "shared").exists()
    # a copy, not a link: the tests find the corpus from their own resolved location
    shutil.copytree(ROOT / "tests", repo / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "fixtures").symlink_to(ROOT / "fixtures")
    (repo / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(repo), str(repo / "tests")],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
    assert proc.returncode == 0, tail
    assert "error" not in proc.stdout.splitlines()[-1].lower(), tail
