"""The store: Parquet files on any filesystem fsspec knows, and the one place that writes.

Layout (docs/store.md says it with the joins a reader of the raw files uses)::

    <store>/runs/<run_id>.parquet                          one row per run: what the trace is
    <store>/memberships/<patch>/<label>/<run_id>.parquet   one row per (run, patch, label)
    <store>/spans/<run_id>/<attempt>/part-00000.parquet    the run's calls, one writer's attempt
    <store>/events/<run_id>/<attempt>/part-00000.parquet
    <store>/windows/<run_id>/<attempt>/part-00000.parquet
    <store>/<table>/empty.parquet                          no rows: the table's schema
    <store>/.tmp/  <store>/.locks/                         local stores only

The store is a local directory or a URL (``s3://bucket/prefix``, ``gs://...``,
``file://...``); credentials and endpoints come from the environment the filesystem's
library reads (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ...), never from options.

Invariants:

* A run's data is stored once, whatever patches and labels it belongs to: membership is a
  file of its own.  Adding the same run to another patch or label writes one membership.
* A run becomes visible all at once or not at all.  Its parts are written under a fresh
  *attempt* directory, then its membership, then its runs row, which names the attempt and
  how many parts each table has.  The runs row is the commit: readers read only the parts of
  the attempt a runs row names, and only runs with a row.  A local runs row is renamed into
  place, an object-store one is one PUT; neither can be seen half written.
* Concurrent ingests never collide, on one machine or many: every attempt has its own
  directory; on a local store a run is written under an exclusive ``flock`` of its lock file.
  Two machines ingesting the same trace both land; the last runs row names the attempt read.
* A crash leaves attempts no runs row names and memberships of runs without a row:
  invisible, and removed by :meth:`Store.gc` (``tracekit gc``), which a local ingest runs
  first.  On object storage, where no lock tells a live writer from a dead one, only what is
  older than a grace period is removed.
* Names come from users and never change type or collide: a patch or label is a column
  inside the files (a Parquet string for every reader); the directories spell it with
  reversible percent-encoding (:func:`encode_name`) and are never hive partitions, whose
  values readers would guess the type of.  Every table has a schema file, so an empty table
  reads as empty.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote

import polars as pl

from tracekit.errors import StoreError
from tracekit.schema import MEMBERSHIP_SCHEMA, RUN_SCHEMA, SPAN_SCHEMA, STORED_EVENT_SCHEMA, WINDOW_SCHEMA

__all__ = [
    "Store", "RunWriter", "StoreError", "open_store", "default_store_location", "default_store_path",
    "encode_name", "decode_name", "sanitize_partition", "STORED_RUN_SCHEMA", "DATA_KEYS",
]

TABLES = {"spans": SPAN_SCHEMA, "events": STORED_EVENT_SCHEMA, "windows": WINDOW_SCHEMA}

#: The columns every data part carries besides its table's own: which run, which attempt.
DATA_KEYS: dict[str, pl.DataType] = {"run_id": pl.String(), "attempt": pl.String()}

#: The runs row as stored: what the trace is (patch and label are memberships), the attempt
#: whose parts are the run's data and how many parts each table has.
STORED_RUN_SCHEMA: dict[str, pl.DataType] = {
    **{k: v for k, v in RUN_SCHEMA.items() if k not in ("patch", "label", "partition")},
    "attempt": pl.String(),
    "parts": pl.Struct({t: pl.Int32() for t in TABLES}),
}

#: What readers of spans, events and windows get besides the table's columns.
MEMBER_COLUMNS = ("patch", "arch", "label", "run_id")

#: A run id (tracekit's are 16 hex digits of the content's SHA-256; the library takes any
#: such name): what may name a runs file and a run's directories.
_RUN_ID = re.compile(r"^(?!empty$)(?!.*\.parquet$)[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
_ATTEMPT = re.compile(r"^(\d{10})-[0-9a-f]{12}$")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._")
_MAX_NAME = 200  # bytes of an encoded name: a path segment stays under every filesystem's 255
#: Object-store orphans younger than this may be a live writer's (seconds).
DEFAULT_GRACE_S = 6 * 3600


def default_store_location() -> str:
    """``$TRACEKIT_STORE`` (a directory or a URL), else ``./tracekit-store``."""
    return os.environ.get("TRACEKIT_STORE") or "tracekit-store"


def default_store_path() -> Path:
    """:func:`default_store_location` as a local path (for files kept beside a local store)."""
    return Path(default_store_location())


def encode_name(value: str) -> str:
    """The directory spelling of a patch or label: letters, digits, ``-``, ``.`` and ``_``
    stay, every other byte of its UTF-8 is ``%XX``, and so is a leading ``.`` or ``_``
    (hidden, or skipped by readers).  Reversible (:func:`decode_name`), so two names never
    share a directory (``mm/foo`` is ``mm%2Ffoo``, ``mm:foo`` is ``mm%3Afoo``)."""
    if not value:
        raise StoreError("a patch or label name must not be empty")
    out = []
    for i, ch in enumerate(value):
        if ch in _SAFE and not (i == 0 and ch in "._"):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    enc = "".join(out)
    if len(enc) > _MAX_NAME:
        raise StoreError(f"name too long for the store ({len(enc)} bytes encoded, at most {_MAX_NAME}): {value[:60]!r}...")
    return enc


def decode_name(segment: str) -> str:
    """The name :func:`encode_name` spelt as ``segment``."""
    return unquote(segment, errors="strict")


def sanitize_partition(value: str | None) -> str:
    """A file-name spelling of a name for files kept beside the store (model profiles):
    no ``/``, ``..``, NUL or ``=``; never empty.  Not reversible: the store's own directories
    use :func:`encode_name`."""
    v = (value or "").strip()
    v = re.sub(r"[^A-Za-z0-9._+@,-]", "_", v)
    v = re.sub(r"\.{2,}", "_", v)
    if v.startswith("."):
        v = "_" + v[1:]
    return v[:120] or "none"


def ingested_by() -> dict[str, object]:
    """Where this process runs: host name and pid (each run's ``meta.ingested_by``)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _new_attempt() -> str:
    """A fresh attempt name: the UTC second it began (for the grace period) and 48 random bits."""
    return f"{int(time.time()):010d}-{os.urandom(6).hex()}"


def _attempt_age(attempt: str, now: float) -> float:
    m = _ATTEMPT.match(attempt)
    return now - int(m.group(1)) if m else float("inf")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: str, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs(path: str) -> list[str]:
    """Make directory ``path`` and its missing parents; the directories in which an entry
    was made (to fsync for the new directories to survive a crash)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    if missing:
        os.makedirs(missing[0], exist_ok=True)
    return [os.path.dirname(d) for d in missing]


def _fsync_together(paths: Iterable[str], directory: bool = False) -> None:
    """fsync every one of ``paths`` at once, from a thread each: a journaling filesystem
    (ext4, XFS) commits fsyncs that wait together in one journal commit, so that five files
    cost about one fsync's time, not five."""
    paths = list(dict.fromkeys(paths))
    if len(paths) <= 1:
        for p in paths:
            _fsync(p, directory)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(paths), thread_name_prefix="tracekit-fsync") as pool:
        for done in [pool.submit(_fsync, p, directory) for p in paths]:
            done.result()


def _parquet_bytes(df: pl.DataFrame, parts: bool = False, constants: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    if parts:
        write_part(df, buf, constants)
    else:
        df.write_parquet(buf)
    return buf.getvalue()


def write_part(df: pl.DataFrame, sink, constants: dict[str, str] | None = None) -> None:
    """Write one Parquet part, each column in the encoding that suits what it holds.

    Names, comms, contexts, flags and callchains repeat a few values over millions of rows:
    dictionary-encoded.  A name column may come dictionary-encoded already (polars
    Categorical or Enum): its dictionary is written as it is, without hashing each row
    again, and it is stored as the strings it holds.  The 64-bit integers are ids, times and
    durations, nearly all distinct and mostly increasing: delta-encoded.  The small integers
    (CPU, pid, depth, window) are written plain: zstd packs their few values as tightly as a
    dictionary would, and a dictionary of every pid of a busy machine costs more to build
    than it saves.  Then zstd, and min/max statistics of the numeric columns (readers skip
    row groups by time, CPU or pid), of ``func`` and ``comm`` and of the run and attempt (a
    reader of the raw files skips whole files of other runs).  A part's calls come in time
    order, so the name range of a row group spans most of the alphabet: ``func`` and
    ``comm`` also get Bloom filters, with which DuckDB and Spark skip the row groups that do
    not hold the function or task a query names.  ``constants`` are string columns of one
    value on every row (the run and the attempt), added last: handed to the writer as that
    value and a zero per row, they cost no encoding."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    # (string views go to the writer as they are, without a copy into one buffer; the
    # Parquet types alone describe the columns, so any reader sees plain strings)
    table = _plain_dictionaries(df.to_arrow(compat_level=pl.CompatLevel.newest()))
    # (built from buffers and from polars: ``pa.array`` imports pandas, 0.3 s of every ingest)
    zeros = pa.Array.from_buffers(pa.int32(), df.height, [None, pa.py_buffer(np.zeros(df.height, dtype=np.int32))])
    for name, value in (constants or {}).items():
        values = pl.Series([value], dtype=pl.String).to_arrow().cast(pa.string())
        table = table.append_column(name, pa.DictionaryArray.from_arrays(zeros, values))
    delta = {name: "DELTA_BINARY_PACKED" for name, dtype in df.schema.items() if dtype == pl.Int64}
    dictionary = [name for name, dtype in df.schema.items() if _holds_names(dtype)] + list(constants or {})
    stats = [name for name, dtype in df.schema.items() if dtype.is_numeric()]
    stats += [c for c in ("func", "comm", *DATA_KEYS) if c in table.column_names]
    bloom = {c: {"ndv": ndv, "fpp": 0.01} for c, ndv in _BLOOM.items() if c in df.columns}
    pq.write_table(table, sink, compression="zstd", use_dictionary=dictionary, column_encoding=delta,
                   write_statistics=stats, store_schema=False, bloom_filter_options=bloom or None)


def _holds_names(dtype: pl.DataType) -> bool:
    """Whether a column of ``dtype`` holds names (strings, or lists of them): the columns
    whose values repeat, which a dictionary encodes."""
    if isinstance(dtype, pl.List):
        return _holds_names(dtype.inner)
    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))


def _plain_dictionaries(table):
    """``table`` with every dictionary-encoded column's values as plain strings (polars
    hands a Categorical's values over as string views, which the Parquet writer does not
    take inside a dictionary); the indices are kept, so no row is hashed again."""
    import pyarrow as pa

    for i, (name, column) in enumerate(zip(table.column_names, table.columns)):
        if not pa.types.is_dictionary(column.type) or column.type.value_type == pa.string():
            continue
        kind = pa.dictionary(column.type.index_type, pa.string())
        chunks = [pa.DictionaryArray.from_arrays(c.indices, c.dictionary.cast(pa.string())) for c in column.chunks]
        table = table.set_column(i, pa.field(name, kind), pa.chunked_array(chunks, kind))
    return table


#: Distinct values a row group's Bloom filter is sized for (at 1% false positives: 5 KiB
#: for the functions, about a kernel's traced set in one part; 1.2 KiB for the tasks).
_BLOOM = {"func": 4096, "comm": 1024}


class _Files:
    """The few filesystem operations the store needs, on a local directory or an fsspec
    filesystem.  Local writes are renamed into place and fsynced; object-store writes are
    single PUTs (atomic by the protocol)."""

    def __init__(self, url: str) -> None:
        self.url = url
        if "://" not in url and "::" not in url:  # a directory: no fsspec (0.04 s of every command)
            self.fs, self.local, self.root = None, True, os.path.abspath(os.path.expanduser(url))
            return
        import fsspec.core

        self.fs, root = fsspec.core.url_to_fs(url)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def rel(self, path: str) -> str:
        return path[len(self.root) + 1:] if path.startswith(self.root + "/") else path

    def ls(self, *parts: str) -> list[str]:
        """Names directly under ``parts`` (files and directories); none when missing."""
        p = self.path(*parts)
        if self.local:
            try:
                return sorted(os.listdir(p))
            except (FileNotFoundError, NotADirectoryError):
                return []
        self.fs.invalidate_cache(p)
        try:
            return sorted(x.rstrip("/").rsplit("/", 1)[-1] for x in self.fs.ls(p, detail=False))
        except FileNotFoundError:
            return []

    def find(self, *parts: str) -> list[str]:
        """Every file under ``parts``, as paths relative to the root."""
        p = self.path(*parts)
        if self.local:
            out = []
            for d, _, files in os.walk(p):
                out.extend(self.rel(os.path.join(d, f)) for f in files)
            return sorted(out)
        self.fs.invalidate_cache(p)
        try:
            return sorted(self.rel(x) for x in self.fs.find(p))
        except FileNotFoundError:
            return []

    def exists(self, *parts: str) -> bool:
        p = self.path(*parts)
        if self.local:
            return os.path.exists(p)
        self.fs.invalidate_cache(p)
        return self.fs.exists(p)

    def put(self, rel: str, data: bytes, scratch: str | None = None) -> None:
        """Write ``data`` at ``rel`` whole or not at all."""
        self.put_all([(rel, data)], scratch)

    def put_all(self, items: list[tuple[str, bytes]], scratch: str | None = None, in_order: bool = False,
                directories: Iterable[str] = ()) -> None:
        """Write each ``(rel, data)`` of ``items`` whole or not at all, as :meth:`put` does,
        with the fsyncs of one step issued together (:func:`_fsync_together`): every file's
        content, with ``directories`` (directories written before, whose entries must be on
        disk first), then the directories the files are renamed into.  ``in_order``: each
        file is on disk, its directory entry included, before the next is renamed into
        place, so that no crash leaves a later one without an earlier one."""
        if not self.local:
            for rel, data in items:
                self.fs.pipe_file(self.path(rel), data)
            return
        staged: list[tuple[str, str]] = []
        made: list[str] = []  # directories holding a directory made here
        try:
            for rel, data in items:
                p = self.path(rel)
                made += _makedirs(os.path.dirname(p))
                fd, tmp = tempfile.mkstemp(prefix=f"put-{os.getpid()}-", dir=scratch or os.path.dirname(p))
                staged.append((tmp, p))
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            _fsync_together([tmp for tmp, _ in staged])
            _fsync_together([*directories, *made], directory=True)
            for tmp, p in staged:
                os.replace(tmp, p)
                if in_order:
                    _fsync(os.path.dirname(p), directory=True)
        except BaseException:
            for tmp, _ in staged:
                Path(tmp).unlink(missing_ok=True)
            raise
        if not in_order:
            _fsync_together((os.path.dirname(p) for _, p in staged), directory=True)

    def write_new(self, rel: str, data: bytes) -> None:
        """Write a file no reader looks at yet (a part of an uncommitted attempt)."""
        p = self.path(rel)
        if not self.local:
            self.fs.pipe_file(p, data)
            return
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def open(self, rel: str):
        return open(self.path(rel), "rb") if self.local else self.fs.open(self.path(rel), "rb")

    def rm(self, rel: str) -> None:
        p = self.path(rel)
        if self.local:
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                Path(p).unlink(missing_ok=True)
            return
        try:
            self.fs.rm(p, recursive=True)
        except FileNotFoundError:
            pass


@dataclass
class RunWriter:
    """Writes one run's parts under a fresh attempt and publishes them with :meth:`commit`.
    Obtained from :meth:`Store.begin_run` (on a local store, under the run's lock)."""

    store: "Store"
    run_id: str
    attempt: str
    _parts: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})
    rows: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})

    def write(self, table: str, df: pl.DataFrame) -> None:
        """Append ``df`` (in ``table``'s schema) as one more Parquet part."""
        if df.is_empty():
            return
        rel = f"{table}/{self.run_id}/{self.attempt}/part-{self._parts[table]:05d}.parquet"
        self.store._files.write_new(rel, _parquet_bytes(df, parts=True, constants={"run_id": self.run_id, "attempt": self.attempt}))
        self._parts[table] += 1
        self.rows[table] += df.height

    def commit(self, run_row: dict, replace: bool = False) -> None:
        """Publish the run: its membership (``run_row``'s patch and label), then its runs
        row, last.  The attempt a replaced runs row named is removed afterwards."""
        st = self.store
        files = st._files
        # the parts' directories (attempt, run, table: each new entry) go to disk with the
        # membership's and runs row's contents, in one step; then the membership is put in
        # place, then the runs row
        written = []
        if files.local:
            for table in TABLES:
                d = files.path(table, self.run_id, self.attempt)
                if os.path.isdir(d):
                    written += [d, os.path.dirname(d), files.path(table)]
        old = st.run_row(self.run_id)
        member = st._membership_file(self.run_id, run_row.get("patch") or "none", run_row.get("label") or "none")
        row = {k: v for k, v in run_row.items() if k in STORED_RUN_SCHEMA}
        row.update(attempt=self.attempt, parts=dict(self._parts))
        runs = (f"runs/{self.run_id}.parquet", _parquet_bytes(pl.DataFrame([row], schema=STORED_RUN_SCHEMA)))
        files.put_all([*([member] if member else []), runs], scratch=st._scratch_on_store(), in_order=True,
                      directories=written)
        stale = {old["attempt"]} if old is not None and old["attempt"] else set()
        if files.local:  # under the run's lock: every other attempt is a dead one's
            stale.update(a for table in TABLES for a in files.ls(table, self.run_id))
        for attempt in stale - {self.attempt}:
            st._remove_attempt(self.run_id, attempt)

    def abort(self) -> None:
        """Forget everything written for this run by this attempt."""
        self.store._remove_attempt(self.run_id, self.attempt)


class Store:
    """A tracekit store.  Reading is lazy (polars LazyFrames whose scans read only the runs
    a filter on patch, label, arch or run_id leaves); only committed runs are visible."""

    def __init__(self, location: str | os.PathLike) -> None:
        self.url = os.fspath(location)
        self._files = _Files(self.url)
        if self._files.local:
            self.url = self._files.root

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def root(self) -> Path:
        """The directory of a local store (a remote store has only its :attr:`url`: asking it
        for a root raises AttributeError, so ``getattr(store, "root", None)`` is None)."""
        if not self._files.local:
            raise AttributeError(f"{self.url}: a store on object storage has no local root")
        return Path(self._files.root)

    @property
    def is_local(self) -> bool:
        return self._files.local

    def scratch(self) -> Path:
        """A local directory for work files (standard input spooled to disk)."""
        d = Path(self._files.root) / ".tmp" if self._files.local else Path(tempfile.gettempdir())
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _scratch_on_store(self) -> str | None:
        return str(self.scratch()) if self._files.local else None

    # -- memberships --------------------------------------------------------------------

    def memberships(self, patches: Iterable[str] | None = None) -> pl.DataFrame:
        """run_id, patch, label of every membership (of ``patches`` only, if given), read
        from the names of the membership files alone.  Includes memberships of runs not
        committed (yet); :meth:`runs` and the tables join them with committed runs."""
        files = self._files
        dirs = files.ls("memberships")
        if patches is not None:
            wanted = {encode_name(p) for p in patches}
            dirs = [d for d in dirs if d in wanted]
        rows = []
        for pd_ in dirs:
            if pd_.endswith(".parquet"):
                continue
            for rel in files.find("memberships", pd_):
                parts = rel.split("/")
                if len(parts) == 4 and parts[3].endswith(".parquet"):
                    rows.append((parts[3][: -len(".parquet")], decode_name(parts[1]), decode_name(parts[2])))
        return pl.DataFrame(rows, schema={"run_id": pl.String, "patch": pl.String, "label": pl.String}, orient="row")

    def _patch_names(self) -> list[str]:
        return [decode_name(d) for d in self._files.ls("memberships") if not d.endswith(".parquet")]

    def add_membership(self, run_id: str, patch: str, label: str) -> bool:
        """Make run ``run_id`` a member of (patch, label); False when it already was."""
        member = self._membership_file(run_id, patch, label)
        if member is None:
            return False
        self._files.put(*member, scratch=self._scratch_on_store())
        return True

    def _membership_file(self, run_id: str, patch: str, label: str) -> tuple[str, bytes] | None:
        """The path and content of the membership file of run ``run_id`` in (patch, label),
        or None when it exists."""
        rel = f"memberships/{encode_name(patch)}/{encode_name(label)}/{run_id}.parquet"
        if self._files.exists(rel):
            return None
        row = pl.DataFrame([{"run_id": run_id, "patch": patch, "label": label,
                             "added_at": datetime.now(timezone.utc)}], schema=MEMBERSHIP_SCHEMA)
        return rel, _parquet_bytes(row)

    def remove_membership(self, run_id: str, patch: str, label: str) -> bool:
        """Take run ``run_id`` out of (patch, label); False when it was not in it.  A run
        left without membership is invisible (its data stays until it is ingested again)."""
        rel = f"memberships/{encode_name(patch)}/{encode_name(label)}/{run_id}.parquet"
        if not self._files.exists(rel):
            return False
        self._files.rm(rel)
        return True

    # -- reading ------------------------------------------------------------------------

    def run_ids(self) -> set[str]:
        """The committed runs."""
        return {n[:-8] for n in self._files.ls("runs") if n.endswith(".parquet") and _RUN_ID.match(n[:-8])}

    def has_table(self, table: str) -> bool:
        """Whether the store has ``table`` (runs, memberships, spans, events, windows)."""
        return self._files.exists(table)

    def has_run(self, run_id: str) -> bool:
        return self._files.exists(f"runs/{run_id}.parquet")

    def run_row(self, run_id: str) -> dict | None:
        """The stored runs row of ``run_id`` (STORED_RUN_SCHEMA), or None."""
        got = self._run_rows([run_id])
        return got.row(0, named=True) if got.height else None

    def _read(self, rels: list[str], schema: dict[str, pl.DataType], columns: list[str] | None = None) -> pl.DataFrame:
        """The rows of these Parquet files in ``schema`` (columns a file lacks are null)."""
        return self._scan(rels, schema, columns).collect()

    def _scan(self, rels: list[str], schema: dict[str, pl.DataType], columns: list[str] | None = None) -> pl.LazyFrame:
        """:meth:`_read` as a LazyFrame: on a local store a Parquet scan, into which polars
        pushes a later filter (row groups skipped by their statistics)."""
        columns = list(schema) if columns is None else columns
        sub = {c: schema[c] for c in columns}
        if not rels:
            return pl.LazyFrame(schema=sub)
        if self._files.local:
            return (pl.scan_parquet([self._files.path(r) for r in rels], schema=schema, missing_columns="insert",
                                    extra_columns="ignore")
                    .select(columns))
        import pyarrow.parquet as pq

        frames = []
        for r in rels:
            with self._files.open(r) as f:
                pf = pq.ParquetFile(f)
                have = [c for c in columns if c in pf.schema_arrow.names]
                df = pl.from_arrow(pf.read(columns=have))
            frames.append(df.select([pl.col(c).cast(sub[c]) if c in df.columns else pl.lit(None, sub[c]).alias(c)
                                     for c in columns]))
        return pl.concat(frames).lazy()

    def _run_rows(self, run_ids: Iterable[str]) -> pl.DataFrame:
        ids = sorted(set(run_ids))
        rels = [f"runs/{r}.parquet" for r in ids]
        if not self._files.local:
            have = self.run_ids()
            rels = [f"runs/{r}.parquet" for r in ids if r in have]
        else:
            rels = [r for r in rels if os.path.exists(self._files.path(r))]
        return self._read(rels, STORED_RUN_SCHEMA)

    def _members(self, predicate: pl.Expr | None) -> pl.DataFrame:
        """The memberships of committed runs, with each run's stored row, that the parts of
        ``predicate`` on patch, label, arch and run_id alone leave."""
        keys = [c for c in _conjuncts(predicate) if set(c.meta.root_names()) <= set(MEMBER_COLUMNS)]
        on_patch = [c for c in keys if set(c.meta.root_names()) == {"patch"}]
        patches = None
        if on_patch:
            patches = pl.DataFrame({"patch": self._patch_names()}, schema={"patch": pl.String})
            for c in on_patch:
                patches = patches.filter(c)
            patches = patches["patch"].to_list()
        m = self.memberships(patches)
        late = [c for c in keys if "arch" in c.meta.root_names()]  # need the runs rows
        for c in keys:
            if "arch" not in c.meta.root_names():
                m = m.filter(c)
        committed = self.run_ids()
        m = m.filter(pl.col("run_id").is_in(list(committed)))
        rows = self._run_rows(m["run_id"].unique().to_list())
        out = m.join(rows, on="run_id", how="inner", maintain_order="left")
        for c in late:
            out = out.filter(c)
        return out.sort(["patch", "arch", "label", "run_id"])

    def _require(self) -> None:
        """Reading a local store that is not there is an error, not an empty store."""
        if self._files.local and not os.path.isdir(self._files.root):
            what = "not a directory" if os.path.exists(self._files.root) else "no such directory"
            raise StoreError(f"{self._files.root}: {what}: no tracekit store there (tracekit ingest makes one)")

    def runs(self) -> pl.LazyFrame:
        """One row per membership of every committed run (RUN_SCHEMA: the run's row with the
        membership's patch and label; ``partition`` repeats patch, arch and label)."""
        from polars.io.plugins import register_io_source

        self._require()

        def source(with_columns, predicate, n_rows, batch_size):
            m = self._members(predicate)
            df = m.with_columns(pl.struct(pl.col("patch"), pl.col("arch"), pl.col("label")).alias("partition"))
            df = df.select([pl.col(c).cast(t) for c, t in RUN_SCHEMA.items()])
            yield _finish(df, with_columns, predicate, n_rows)

        return register_io_source(source, schema=RUN_SCHEMA, explain_name="tracekit runs")

    def _table(self, table: str) -> pl.LazyFrame:
        from polars.io.plugins import register_io_source

        self._require()

        data = TABLES[table]
        stored = {**data, **DATA_KEYS}
        schema = {**data, **{c: pl.String() for c in MEMBER_COLUMNS}}

        def source(with_columns, predicate, n_rows, batch_size):
            m = self._members(predicate)
            m = m.filter(pl.col("parts").struct.field(table) > 0)
            want = list(schema) if with_columns is None else list(with_columns)
            need = set(want) | (set(predicate.meta.root_names()) if predicate is not None else set())
            cols = [c for c in data if c in need]
            left = n_rows
            for batch in _batches(m, 64):
                rels = [f"{table}/{r}/{a}/part-{i:05d}.parquet"
                        for r, a, n in batch.select("run_id", "attempt", pl.col("parts").struct.field(table)).unique().iter_rows()
                        for i in range(n)]
                rows = self._scan(rels, stored, [*cols, "run_id"])
                lf = rows.join(batch.select(*MEMBER_COLUMNS).lazy(), on="run_id", how="inner", maintain_order="left")
                out = _finish(lf, with_columns or list(schema), predicate, left).collect()
                if out.height:
                    yield out
                if left is not None:
                    left -= out.height
                    if left <= 0:
                        return

        return register_io_source(source, schema=schema, explain_name=f"tracekit {table}")

    def parts(self, table: str) -> pl.DataFrame:
        """run_id and the location (a local path or a URL) of every Parquet part of
        ``table`` (spans, events or windows) that a committed run's row names: what a
        reader other than polars (DuckDB) reads, joined with :meth:`runs` on run_id."""
        self._require()
        m = self._members(None)
        rows = [(r, self._files.path(f"{table}/{r}/{a}/part-{i:05d}.parquet"))
                for r, a, n in m.select("run_id", "attempt", pl.col("parts").struct.field(table)).unique().sort("run_id").iter_rows()
                for i in range(n or 0)]
        return pl.DataFrame(rows, schema={"run_id": pl.String, "location": pl.String}, orient="row")

    def schema(self, table: str) -> dict[str, pl.DataType]:
        """The columns readers of ``table`` see (runs: RUN_SCHEMA; spans, events, windows:
        the table's own, then patch, arch, label and run_id)."""
        return dict(RUN_SCHEMA) if table == "runs" else {**TABLES[table], **{c: pl.String() for c in MEMBER_COLUMNS}}

    def spans(self) -> pl.LazyFrame:
        """Every span of every committed run, with patch, arch, label and run_id columns
        (one copy per membership)."""
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

    # -- writing ------------------------------------------------------------------------

    @contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        """Hold the exclusive lock of ``run_id`` (waits for another local writer of it).
        Object stores have no locks: their writers are kept apart by attempts."""
        if not self._files.local:
            with nullcontext():
                yield
            return
        d = Path(self._files.root) / ".locks"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"{run_id}.lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _locked_by_other(self, run_id: str) -> bool:
        p = Path(self._files.root) / ".locks" / f"{run_id}.lock"
        if not p.exists():
            return False
        with open(p, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    def begin_run(self, run_id: str) -> RunWriter:
        """Start writing run ``run_id`` under a fresh attempt; on a local store the caller
        holds :meth:`lock` (run_id)."""
        if not _RUN_ID.match(run_id):
            raise StoreError(f"{run_id!r}: not a run id (letters, digits, '.', '_', '-')")
        return RunWriter(self, run_id, _new_attempt())

    def _remove_attempt(self, run_id: str, attempt: str) -> None:
        for table in TABLES:
            self._files.rm(f"{table}/{run_id}/{attempt}")
        if self._files.local:
            for table in TABLES:  # the run's directory, once empty
                try:
                    os.rmdir(self._files.path(table, run_id))
                except OSError:
                    pass

    def gc(self, grace_s: float | None = None) -> int:
        """Remove what interrupted writers left: attempts no runs row names, memberships of
        runs without a row, work files of dead processes.  On a local store what a live
        writer holds (its run's lock) is kept; on object storage what is younger than
        ``grace_s`` (default :data:`DEFAULT_GRACE_S`) is kept.  Returns the number of
        attempts, memberships and work files removed."""
        files = self._files
        now = time.time()
        grace = DEFAULT_GRACE_S if grace_s is None else grace_s

        def busy(run_id: str, age: float) -> bool:
            if files.local and grace_s is None:
                return self._locked_by_other(run_id)
            return age < grace or (files.local and self._locked_by_other(run_id))

        removed = 0
        ids = self.run_ids()
        found: dict[str, set[str]] = {}
        for table in TABLES:
            for run_id in filter(_RUN_ID.match, files.ls(table)):
                found.setdefault(run_id, set()).update(files.ls(table, run_id))
        # a committed run with one attempt on disk: that is the one its row names (an
        # earlier attempt is removed only after the later one is committed), unless the
        # committed attempt wrote no part at all (a trace with no records) and a later
        # one died, which is left; the rows of runs with several attempts are read
        committed = {r: next(iter(a)) for r, a in found.items() if r in ids and len(a) == 1}
        unsure = [r for r, a in found.items() if r in ids and len(a) > 1]
        committed.update(self._run_rows(unsure).select("run_id", "attempt").iter_rows())
        for run_id, attempts in found.items():
            for attempt in sorted(attempts):
                if committed.get(run_id) != attempt and not busy(run_id, _attempt_age(attempt, now)):
                    self._remove_attempt(run_id, attempt)
                    removed += 1
        for run_id, patch, label in self.memberships().iter_rows():
            if run_id in ids:
                continue
            rel = f"memberships/{encode_name(patch)}/{encode_name(label)}/{run_id}.parquet"
            added = self._read([rel], MEMBERSHIP_SCHEMA, ["added_at"])["added_at"]
            age = now - added[0].timestamp() if added.len() and added[0] is not None else float("inf")
            if not busy(run_id, age):
                files.rm(rel)
                removed += 1
        if files.local:
            removed += self._gc_scratch()
        return removed

    def recover(self) -> int:
        """:meth:`gc` as a local ingest runs it first (object stores: nothing, see gc)."""
        return self.gc() if self._files.local else 0

    def _gc_scratch(self) -> int:
        removed = 0
        tmp = Path(self._files.root) / ".tmp"
        if tmp.is_dir():
            for d in tmp.iterdir():
                m = re.match(r"^[\w.]+?-(\d+)-", d.name)
                if m and not _pid_alive(int(m.group(1))):
                    shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
                    removed += 1
        return removed

    def ensure_schemas(self) -> None:
        """Write each table's schema file (``<table>/empty.parquet``, no rows) where it is
        missing or describes other columns, so that readers find the schema of an empty
        table."""
        import pyarrow.parquet as pq

        want = {"runs": STORED_RUN_SCHEMA, "memberships": MEMBERSHIP_SCHEMA,
                **{t: {**s, **DATA_KEYS} for t, s in TABLES.items()}}
        missing = []
        for table, schema in want.items():
            rel = f"{table}/empty.parquet"
            if self._files.exists(rel):
                with self._files.open(rel) as f:
                    if pq.read_schema(f).names == list(schema):
                        continue
            missing.append((rel, _parquet_bytes(pl.DataFrame(schema=schema), parts=table in TABLES)))
        self._files.put_all(missing, scratch=self._scratch_on_store())


def _conjuncts(predicate: pl.Expr | None) -> list[pl.Expr]:
    """The terms of ``predicate`` joined by ``&`` (the predicate itself when it is not an
    ``&``)."""
    if predicate is None:
        return []
    try:
        node = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # noqa: BLE001 - an expression polars cannot write out: no pruning
        return []
    if isinstance(node, dict) and node.get("BinaryExpr", {}).get("op") in ("And", "LogicalAnd"):
        return [c for sub in predicate.meta.pop() for c in _conjuncts(sub)]
    return [predicate]


def _finish(df: pl.DataFrame | pl.LazyFrame, with_columns: list[str] | None, predicate: pl.Expr | None,
            n_rows: int | None) -> pl.DataFrame | pl.LazyFrame:
    if predicate is not None:
        df = df.filter(predicate)
    if with_columns is not None:
        df = df.select(with_columns)
    return df.head(n_rows) if n_rows is not None else df


def _batches(m: pl.DataFrame, runs: int) -> Iterator[pl.DataFrame]:
    """``m`` cut between runs, ``runs`` runs a piece."""
    ids = m["run_id"].unique(maintain_order=True).to_list()
    for i in range(0, len(ids), runs):
        yield m.filter(pl.col("run_id").is_in(ids[i:i + runs]))


def open_store(path: str | os.PathLike | None = None, create: bool = False) -> Store:
    """Open the store at ``path``: a directory or a URL fsspec knows (default
    ``$TRACEKIT_STORE`` or ``./tracekit-store``).

    Opening never creates anything unless ``create`` is given (what ``tracekit ingest``
    and ``tracekit capture`` do: directories, schema files): a local store that does not
    exist yet can still be handed to :func:`tracekit.ingest`, which makes it, but reading it
    raises :class:`StoreError`.
    """
    location = os.fspath(path) if path is not None else default_store_location()
    try:
        st = Store(location)
    except ImportError as e:
        raise StoreError(f"{location}: this kind of store needs a package that is not installed ({e.name}); "
                         "install tracekit[s3] for s3:// or tracekit[gcs] for gs://") from None
    except ValueError as e:
        raise StoreError(f"{location}: {e}") from None
    files = st._files
    if files.local and os.path.exists(files.root) and not os.path.isdir(files.root):
        raise StoreError(f"{location}: not a directory")
    if files.local and os.path.isdir(os.path.join(files.root, "runs")) and _old_layout(files.root):
        raise StoreError(f"{location}: a store of tracekit's first layout (patch=/arch=/label= directories); "
                         "ingest its traces again into a new store")
    if create:
        try:
            if files.local:
                for d in ("runs", "memberships", *TABLES):
                    os.makedirs(files.path(d), exist_ok=True)
            st.ensure_schemas()
        except OSError as e:
            raise StoreError(f"{location}: cannot create the store: {e.strerror or e}") from None
    return st


def _old_layout(root: str) -> bool:
    return any(name.startswith("patch=") for t in TABLES for name in (os.listdir(os.path.join(root, t)) if os.path.isdir(os.path.join(root, t)) else ()))
