"""Shared test fixtures: where the real-trace corpus and the project's fixtures live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = (ROOT.parent / "shared" / "corpus").resolve()
FIXTURES = ROOT / "fixtures"


def pytest_collection_modifyitems(config, items):
    import os

    if os.environ.get("TRACEKIT_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow test: set TRACEKIT_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """../shared/corpus, read in place (never copied into the project)."""
    if not CORPUS.is_dir():
        pytest.fail(f"the real-trace corpus is missing: {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
