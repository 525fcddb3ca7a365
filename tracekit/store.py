"""The store: a directory of hive-partitioned Parquet files, and the one place that writes.

Layout (docs/store.md)::

    <store>/runs/<run_id>.parquet                       one row per ingested trace
    <store>/spans/patch=P/arch=A/label=L/run_id=<run_id>/part-00000.parquet
    <store>/events/patch=P/arch=A/label=L/run_id=<run_id>/part-00000.parquet
    <store>/windows/patch=P/arch=A/label=L/run_id=<run_id>/part-00000.parquet
    <store>/.tmp/        work in progress (never read)
    <store>/.locks/      one lock file per run being written

The partition key is ``run_id`` (not ``run``) so that readers that know nothing of tracekit
(polars, pyarrow.dataset, DuckDB, Spark) see the same ``run_id`` column as the schema.

Invariants:

* A run becomes visible all at once or not at all.  Its files are written under ``.tmp``,
  fsynced, renamed into the dataset directories, and the runs row is renamed in last.
  Readers only see partitions whose run has a runs row, so a crash at any moment (kill -9
  included) leaves nothing of the interrupted run visible, and the next writer removes
  what it left.
* Concurrent ingests never collide: each run has its own directories, and a run is written
  under an exclusive ``flock`` of its lock file.
* Partition values come from users: they are sanitised; the originals are in ``runs``.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tracekit.schema import RUN_SCHEMA, SPAN_SCHEMA, STORED_EVENT_SCHEMA, WINDOW_SCHEMA

__all__ = ["Store", "RunWriter", "open_store", "default_store_path", "sanitize_partition", "StoreError"]

TABLES = {"spans": SPAN_SCHEMA, "events": STORED_EVENT_SCHEMA, "windows": WINDOW_SCHEMA}
PARTITION_KEYS = ("patch", "arch", "label", "run_id")
_HIVE_SCHEMA = {k: pl.String() for k in PARTITION_KEYS}


class StoreError(Exception):
    """A store that cannot be opened or written (path and reason in the message)."""


def default_store_path() -> Path:
    """``$TRACEKIT_STORE``, else ``./tracekit-store``."""
    return Path(os.environ.get("TRACEKIT_STORE") or "tracekit-store")


def sanitize_partition(value: str | None) -> str:
    """A partition directory value made from user input: no ``/``, ``..``, NUL, ``=`` or
    other characters that break paths or hive parsing; never empty."""
    v = (value or "").strip()
    v = re.sub(r"[^A-Za-z0-9._+@,-]", "_", v)
    v = re.sub(r"\.{2,}", "_", v)
    if v.startswith("."):
        v = "_" + v[1:]
    return v[:120] or "none"


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_part(df: pl.DataFrame, path: Path) -> None:
    """Write one Parquet part, each column in the encoding that suits what it holds.

    Names, comms, contexts and the small integers (CPU, pid, depth) repeat a few values
    over millions of rows: dictionary-encoded.  The 64-bit integers are ids, times and
    durations, nearly all distinct and mostly increasing: delta-encoded (a dictionary of
    distinct values would only be built to be thrown away).  Then zstd, and min/max
    statistics of the numeric columns, for readers that skip row groups by time, CPU or
    pid (those of names would cost a sixth of the writing and select nothing)."""
    import pyarrow.parquet as pq

    # (string views go to the writer as they are, without a copy into one buffer; the
    # Parquet types alone describe the columns, so any reader sees plain strings)
    table = df.to_arrow(compat_level=pl.CompatLevel.newest())
    delta = {name: "DELTA_BINARY_PACKED" for name, dtype in df.schema.items() if dtype == pl.Int64}
    dictionary = [name for name in df.columns if name not in delta]
    numeric = [name for name, dtype in df.schema.items() if dtype.is_numeric()]
    pq.write_table(table, path, compression="zstd", use_dictionary=dictionary, column_encoding=delta,
                   write_statistics=numeric, store_schema=False)


@dataclass
class RunWriter:
    """Writes one run's files under ``.tmp`` and publishes them atomically with
    :meth:`commit`.  Obtained from :meth:`Store.begin_run` (which holds the run's lock)."""

    store: "Store"
    run_id: str
    tmp: Path
    _parts: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})
    rows: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})

    def write(self, table: str, df: pl.DataFrame) -> None:
        """Append ``df`` (in ``table``'s schema) as one more Parquet part."""
        if df.is_empty():
            return
        d = self.tmp / table
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"part-{self._parts[table]:05d}.parquet"
        write_part(df, path)
        _fsync_path(path)
        self._parts[table] += 1
        self.rows[table] += df.height

    def commit(self, run_row: dict, replace: bool = False) -> dict[str, str]:
        """Publish the run under the partition made from ``run_row``'s patch, arch and label:
        rename its table directories in, then its runs row, last.  Returns the (sanitised)
        partition values."""
        st = self.store
        part = {k: sanitize_partition(run_row.get(k)) for k in ("patch", "arch", "label")}
        run_row = {**run_row, "partition": part}
        if replace:
            st._delete_run(self.run_id)
        rel = Path(*(f"{k}={part[k]}" for k in ("patch", "arch", "label"))) / f"run_id={self.run_id}"
        for table in TABLES:
            src = self.tmp / table
            if not src.is_dir():
                continue
            _fsync_path(src, directory=True)
            dest = st.root / table / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():  # an earlier crashed attempt of this very run
                shutil.rmtree(dest)
            os.rename(src, dest)
            _fsync_path(dest.parent, directory=True)
        row = pl.DataFrame([run_row], schema=RUN_SCHEMA)
        tmp_row = self.tmp / "run.parquet"
        row.write_parquet(tmp_row)
        _fsync_path(tmp_row)
        (st.root / "runs").mkdir(exist_ok=True)
        os.rename(tmp_row, st.root / "runs" / f"{self.run_id}.parquet")
        _fsync_path(st.root / "runs", directory=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return part

    def abort(self) -> None:
        """Forget everything written for this run."""
        shutil.rmtree(self.tmp, ignore_errors=True)


class Store:
    """A tracekit store directory.  Reading is lazy (polars scans); only runs that were
    committed are visible."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- reading ------------------------------------------------------------------------

    def runs(self) -> pl.LazyFrame:
        """One row per committed run (RUN_SCHEMA)."""
        files = sorted((self.root / "runs").glob("*.parquet"))
        if not files:
            return pl.LazyFrame(schema=RUN_SCHEMA)
        return pl.scan_parquet(files, schema=RUN_SCHEMA, missing_columns="insert")

    def run_ids(self) -> set[str]:
        return {p.stem for p in (self.root / "runs").glob("*.parquet")}

    def _table(self, table: str) -> pl.LazyFrame:
        schema = TABLES[table]
        base = self.root / table
        ids = self.run_ids()
        files = [
            p
            for p in sorted(base.glob("patch=*/arch=*/label=*/run_id=*/*.parquet"))
            if p.parent.name[len("run_id=") :] in ids
        ]
        if not files:
            return pl.LazyFrame(schema={**schema, **_HIVE_SCHEMA})
        return pl.scan_parquet(
            files,
            schema=schema,
            hive_partitioning=True,
            hive_schema=_HIVE_SCHEMA,
            missing_columns="insert",
        )

    def spans(self) -> pl.LazyFrame:
        """Every span of every committed run, with patch, arch, label and run_id columns."""
        return self._table("spans")

    def events(self) -> pl.LazyFrame:
        """Every stored event (tracepoints, function hits, samples, markers)."""
        return self._table("events")

    def windows(self) -> pl.LazyFrame:
        """Every latency-tracer window (irqsoff / preemptoff / wakeup snapshots)."""
        return self._table("windows")

    def calls(self, func: str | list[str], **where) -> pl.LazyFrame:
        """The completed calls of ``func`` that a report compares, with their unit of
        replication (``under=``, ``patch=``, ``label=``, ...: see tracekit.selection.calls)."""
        from tracekit.selection import calls

        return calls(self, func, **where)

    def has_run(self, run_id: str) -> bool:
        return (self.root / "runs" / f"{run_id}.parquet").exists()

    def run_row(self, run_id: str) -> dict | None:
        p = self.root / "runs" / f"{run_id}.parquet"
        if not p.exists():
            return None
        return pl.read_parquet(p).to_dicts()[0]

    # -- writing ------------------------------------------------------------------------

    @contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        """Hold the exclusive lock of ``run_id`` (waits for another writer of it)."""
        d = self.root / ".locks"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"{run_id}.lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _locked_by_other(self, run_id: str) -> bool:
        p = self.root / ".locks" / f"{run_id}.lock"
        if not p.exists():
            return False
        with open(p, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    def tmp_dir(self, what: str) -> Path:
        """A fresh work directory under ``.tmp``, named for this process."""
        d = self.root / ".tmp" / f"{what}-{os.getpid()}-{time.monotonic_ns():x}-{os.urandom(3).hex()}"
        d.mkdir(parents=True)
        return d

    def begin_run(self, run_id: str) -> RunWriter:
        """Start writing run ``run_id``; the caller holds :meth:`lock` (run_id)."""
        return RunWriter(self, run_id, self.tmp_dir(f"run-{run_id}"))

    def _run_dirs(self, run_id: str) -> list[Path]:
        return [
            p
            for table in TABLES
            for p in (self.root / table).glob(f"patch=*/arch=*/label=*/run_id={run_id}")
        ]

    def _delete_run(self, run_id: str) -> None:
        """Remove a run: its runs row first (so it disappears at once), then its files."""
        row = self.root / "runs" / f"{run_id}.parquet"
        if row.exists():
            row.unlink()
            _fsync_path(row.parent, directory=True)
        for d in self._run_dirs(run_id):
            shutil.rmtree(d, ignore_errors=True)

    def recover(self) -> int:
        """Remove what interrupted writers left: work directories of dead processes, and
        partition directories of runs that never got their runs row (and that no live
        writer holds).  Returns the number of directories removed."""
        removed = 0
        tmp = self.root / ".tmp"
        if tmp.is_dir():
            for d in tmp.iterdir():
                m = re.match(r"^[\w]+(?:-[0-9a-f]+)?-(\d+)-", d.name)
                if m and not _pid_alive(int(m.group(1))):
                    shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
                    removed += 1
        ids = self.run_ids()
        for table in TABLES:
            for d in (self.root / table).glob("patch=*/arch=*/label=*/run_id=*"):
                rid = d.name[len("run_id=") :]
                if rid not in ids and not self._locked_by_other(rid):
                    shutil.rmtree(d, ignore_errors=True)
                    removed += 1
        return removed


def open_store(path: str | os.PathLike | None = None, create: bool = True) -> Store:
    """Open the store at ``path`` (default ``$TRACEKIT_STORE`` or ``./tracekit-store``).

    With ``create`` the directory is made when missing; without it a missing store reads as
    empty.
    """
    root = Path(path) if path is not None else default_store_path()
    if root.exists() and not root.is_dir():
        raise StoreError(f"{root}: not a directory")
    if create:
        try:
            for d in ("runs", *TABLES):
                (root / d).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{root}: cannot create the store: {e.strerror}") from None
    return Store(root)
