"""The project documents itself: every docs/ file and section the code cites exists, the
links of the documentation resolve, no source file cites documents outside the repository,
and the test suite collects without the real-trace corpus beside it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SOURCE_DIRS = ("tracekit", "parsers", "reports", "benchmarks")

#: A citation of the documentation from code: ``docs/model.md`` or ``docs/model.md#v2622``.
CITATION = re.compile(r"\bdocs/(?P<file>[\w.-]+\.(?:md|json))(?:#(?P<anchor>[\w-]+))?")
#: A Markdown link or image: ``[text](target)``.
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)\)")
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


def citations(paths: list[Path]) -> list[tuple[Path, int, str, str | None]]:
    found = []
    for p in paths:
        for i, line in enumerate(p.read_text().splitlines(), 1):
            for m in CITATION.finditer(line):
                found.append((p, i, m.group("file"), m.group("anchor")))
    return found


def test_heading_slugs_follow_github():
    assert heading_slug("Linux 2.6.22 teardown") == "linux-2622-teardown"
    assert heading_slug("function_graph") == "function_graph"
    assert heading_slug("timerlat osnoise and hwlat") == "timerlat-osnoise-and-hwlat"
    assert heading_slug("The `verbose` option") == "the-verbose-option"


def test_anchors_skip_code_blocks_and_number_repeats(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("# Title\n\n```\n# tracer: nop\n```\n\n## Notes\n\n## Notes\n")
    assert anchors(md) == {"title", "notes", "notes-1"}


def test_every_cited_docs_file_and_section_exists():
    cited = citations(python_files(*SOURCE_DIRS, "tests"))
    assert len(cited) >= 20, "the code cites its documentation by docs/<file>#<section>"
    missing = []
    for path, line, name, anchor in cited:
        target = DOCS / name
        where = f"{path.relative_to(ROOT)}:{line}: docs/{name}" + (f"#{anchor}" if anchor else "")
        if not target.is_file():
            missing.append(f"{where}: no such file")
        elif anchor and anchor not in anchors(target):
            missing.append(f"{where}: no such section")
    assert not missing, "\n".join(missing)


def test_no_source_file_cites_documents_outside_the_repository():
    offenders = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in python_files(*SOURCE_DIRS)
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("md", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: str(p.relative_to(ROOT)))
def test_documentation_links_resolve(md):
    broken = []
    text = md.read_text()
    # inline code may show link syntax without being a link
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for m in LINK.finditer(text):
        target = m.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        name, _, anchor = target.partition("#")
        dest = (md.parent / name).resolve() if name else md
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no such section")
    assert not broken, f"{md.relative_to(ROOT)}:\n" + "\n".join(broken)


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
    # the tests copied, not linked: they find the corpus from their own resolved location;
    # everything else of the tree linked as it is
    shutil.copytree(ROOT / "tests", repo / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for entry in ROOT.iterdir():
        if entry.name not in ("tests", ".git", ".venv") and not entry.name.startswith(".pytest"):
            (repo / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(repo), str(repo / "tests")],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
    assert proc.returncode == 0, tail
    assert "error" not in proc.stdout.splitlines()[-1].lower(), tail
