"""One error tree: every error the library raises on purpose is a TracekitError, importable
where it always was, and the command line prints it as one line with exit status 2."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

import tracekit
from tracekit.errors import CaptureError, InputError, ModelError, OptionError, ParseError, ReportError, StoreError, TracekitError


def test_every_error_class_is_rooted_at_tracekit_error():
    from tracekit.arch import ArchConflict
    from tracekit.capture.plan import CaptureError as capture_plan_error
    from tracekit.io import InputError as io_input_error
    from tracekit.model.captured import NoWorkloadMeta
    from tracekit.model.workload import SpecError
    from tracekit.parsers.base import ParseError as parse_error
    from tracekit.pipeline import IngestError
    from tracekit.reports.compare import ReportError as report_error
    from tracekit.reports.patch import PatchError
    from tracekit.store import StoreError as store_error

    assert capture_plan_error is CaptureError and io_input_error is InputError
    assert parse_error is ParseError and report_error is ReportError and store_error is StoreError
    for cls in (ArchConflict, NoWorkloadMeta, SpecError, IngestError, PatchError, ParseError, OptionError,
                ModelError, CaptureError, ReportError, StoreError, InputError):
        assert issubclass(cls, TracekitError), cls
    # the model's callers catch ValueError, as they always have
    assert issubclass(SpecError, ValueError) and issubclass(NoWorkloadMeta, ValueError)
    assert issubclass(ParseError, InputError)


def test_model_arguments_raise_model_errors():
    from tracekit.model import simulate

    with pytest.raises(ModelError, match="unknown strategy"):
        simulate("x86_64", "nosuch", preempt=True, workload="anon:1MiB")
    with pytest.raises(ModelError, match="unknown arch"):
        simulate("vax", "modern", preempt=True, workload="anon:1MiB")


def test_parse_error_survives_a_process_boundary():
    e = ParseError("t.txt", 12, "bad line", offset=None)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is ParseError and (back.path, back.line, back.reason) == ("t.txt", 12, "bad line")
    assert str(back) == "t.txt:12: bad line"


def test_opening_for_reading_never_creates(tmp_path):
    missing = tmp_path / "no" / "store"
    st = tracekit.open_store(missing)
    assert not missing.exists() and not (tmp_path / "no").exists()
    with pytest.raises(StoreError, match="no such directory"):
        st.runs()
    with pytest.raises(StoreError):
        st.spans()
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        tracekit.open_store(f)


def tk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True, text=True)


@pytest.mark.parametrize("kind", ["file", "missing"])
def test_cli_store_errors_are_one_line_exit_2(tmp_path, kind):
    path = tmp_path / "store"
    if kind == "file":
        path.write_text("not a store\n")
    r = tk("runs", "--store", str(path))
    assert r.returncode == 2, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tracekit: error: {path}: ")
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert path.exists() == (kind == "file")
