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


@pytest.fixture(scope="session")
def report_schema() -> dict:
    """docs/report.schema.json, the JSON Schema of report.json."""
    import json

    return json.loads((ROOT / "docs" / "report.schema.json").read_text())


@pytest.fixture(autouse=True)
def _reports_match_the_schema(request, report_schema):
    """Every report.json a test writes under its tmp_path validates against the schema."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is None:
        return
    import json

    import jsonschema

    for path in tmp.rglob("report.json"):
        jsonschema.validate(json.loads(path.read_text()), report_schema)
