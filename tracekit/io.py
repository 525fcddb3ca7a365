"""Reading inputs: compression, standard input, content hashes and bounded line chunks.

Traces arrive plain or compressed (gzip, xz, zstd; recognised by their magic bytes, not by
their names) and may be larger than memory, so everything here streams: a text input is
read in chunks of a few MiB, cut at line boundaries, and handed to the parser as a polars
String series per chunk.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import polars as pl

from tracekit.errors import InputError
from tracekit.parsers.base import LineChunk

__all__ = [
    "InputError",
    "compression_of",
    "open_decompressed",
    "content_sha256",
    "spool_stdin",
    "read_head",
    "iter_line_chunks",
    "CHUNK_BYTES",
    "CSV_READ_ERRORS",
    "split_lines",
    "binary_file_type",
    "looks_binary",
]

#: Bytes of text per chunk handed to a parser: large enough for the fixed cost of each of
#: a chunk's calls into polars and numpy to be small, small enough that memory stays
#: bounded whatever the input size: a few chunks are in flight (two scanned, two waiting to
#: be paired, one paired, parts waiting to be written): 2 GiB of function_graph text
#: peaks under 700 MiB.
CHUNK_BYTES = 8 << 20

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
)


def compression_of(path: str | os.PathLike) -> str | None:
    """The compression of the file at ``path`` from its magic bytes, or None if plain."""
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def open_decompressed(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading, decompressing gzip / xz / zstd / bzip2 on the fly."""
    try:
        kind = compression_of(path)
        if kind == "gzip":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        if kind == "xz":
            return lzma.open(path, "rb")  # type: ignore[return-value]
        if kind == "bzip2":
            return bz2.open(path, "rb")  # type: ignore[return-value]
        if kind == "zstd":
            import zstandard

            raw = open(path, "rb")
            return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)  # type: ignore[return-value]
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None


def _read_all(f: BinaryIO, path: str, sink: Callable[[bytes], None], size: int = 1 << 20) -> None:
    try:
        while True:
            b = f.read(size)
            if not b:
                return
            sink(b)
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise InputError(f"{path}: cannot decompress: {e}") from None
    except Exception as e:  # zstandard.ZstdError has no common base worth importing here
        if type(e).__name__ == "ZstdError":
            raise InputError(f"{path}: cannot decompress: {e}") from None
        raise


def content_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the decompressed content of ``path``: the identity of a trace."""
    h = hashlib.sha256()
    with open_decompressed(path) as f:
        _read_all(f, str(path), h.update)
    return h.hexdigest()


def spool_stdin(directory: Path) -> Path:
    """Copy standard input to a file in ``directory`` (so that it can be hashed, sniffed and
    read again like any other input) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / f"stdin-{os.getpid()}-{os.urandom(4).hex()}"
    with open(dest, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    return dest


def read_head(path: str | os.PathLike, n: int = 64 << 10) -> bytes:
    """The first ``n`` bytes of the decompressed content (for format detection)."""
    with open_decompressed(path) as f:
        try:
            return f.read(n)
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise InputError(f"{path}: cannot decompress: {e}") from None


def _decode(data: bytes) -> str:
    # Kernel text is ASCII; comms and trace_printk strings may be UTF-8; the 2004-2007 -rt
    # latency traces carry a Latin-1 0xB5 for "µ".  Latin-1 never fails, so it is the fallback.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


#: What polars' CSV reader raises on bytes it cannot read as text.  Besides its own errors,
#: it decompresses bytes that begin with a gzip, zlib or zstd magic number, and a damaged
#: stream (a trace line that happens to start with "(\xb5/\xfd") ends in an OSError.
#: Callers fall back to splitting the text themselves.
CSV_READ_ERRORS = (pl.exceptions.PolarsError, OSError)


def split_lines(piece: bytes) -> pl.Series:
    """The lines of ``piece`` (whole lines, the last newline optional) as a String series.

    Polars' multi-threaded CSV reader splits lines fastest: it is used with a one-column
    layout (a separator byte the text does not contain, no quoting), blank lines read as "".
    Text with that byte, with carriage returns, or that is not UTF-8, takes the plain path."""
    if b"\x1f" not in piece and b"\r" not in piece:
        try:
            df = pl.read_csv(
                piece,
                has_header=False,
                separator="\x1f",
                quote_char=None,
                new_columns=["text"],
                schema={"text": pl.String},
                comment_prefix=None,
                raise_if_empty=False,
                empty_string_is_null=False,
            )
            lines = df.get_column("text")
            if len(lines) == piece.count(b"\n") + (0 if piece.endswith(b"\n") else 1):
                return lines
        except CSV_READ_ERRORS:
            pass
    if piece.endswith(b"\n"):
        piece = piece[:-1]
    text = _decode(piece)
    lines = pl.Series("text", [text], dtype=pl.String).str.split("\n").explode()
    if "\r" in text:
        lines = lines.str.strip_chars_end("\r")
    return lines


def iter_line_chunks(
    path: str | os.PathLike,
    chunk_bytes: int = CHUNK_BYTES,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[LineChunk]:
    """Yield the decompressed text of ``path`` as :class:`LineChunk` objects of about
    ``chunk_bytes`` each, cut at line boundaries.  ``on_progress`` gets the number of
    decompressed bytes consumed so far after each chunk.  A final line without a newline is
    kept; ``\\r\\n`` line ends are accepted."""
    line_no = 1
    consumed = 0
    rest = b""
    with open_decompressed(path) as f:
        while True:
            try:
                data = f.read(chunk_bytes)
            except (OSError, EOFError, lzma.LZMAError) as e:
                raise InputError(f"{path}: cannot decompress after {consumed} bytes: {e}") from None
            eof = not data
            if eof:
                piece, rest = rest, b""
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # no line ends here: keep reading
                    rest += data
                    continue
                # one copy: the carried partial line and this read up to its last newline
                piece = b"".join((rest, memoryview(data)[:cut])) if rest or cut < len(data) else data
                rest = data[cut:]
            consumed += len(piece)
            if piece:
                if b"\r" in piece:
                    chunk = LineChunk(line_no, split_lines(piece), is_last=eof)
                else:
                    # lines are split from the bytes only if the parser asks for them
                    chunk = LineChunk(line_no, is_last=eof, raw=piece)
                yield chunk
                line_no += chunk.n_lines
                if on_progress:
                    on_progress(consumed)
            if eof:
                if not piece:
                    yield LineChunk(line_no, pl.Series("text", [], dtype=pl.String), is_last=True)
                return


#: ELF e_type values (include/uapi/linux/elf.h: ET_REL, ET_EXEC, ET_DYN, ET_CORE).
_ELF_TYPES = {1: "relocatable object (a .o or .ko)", 2: "executable", 3: "shared object or PIE executable", 4: "core dump"}
#: ELF e_machine values of the architectures kernels are traced on (include/uapi/linux/elf-em.h).
_ELF_MACHINES = {3: "i386", 20: "powerpc", 21: "ppc64", 22: "s390", 40: "arm", 50: "ia64", 62: "x86_64",
                 183: "arm64", 243: "riscv"}
#: Binary files that are not traces, by their leading bytes, and what to do instead.
_BINARY_MAGIC = (
    (b"PERFILE2", "perf.data (perf record's binary output): ingest the text of 'perf script --header' instead"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a zip archive: unpack it and ingest the traces in it"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"MZ", "a DOS/Windows executable"),
)


def binary_file_type(head: bytes) -> str | None:
    """What a binary file that is not a trace is, named as ``file(1)`` would (ELF with its
    class, byte order, type and machine; perf.data; images, archives), from its first
    bytes; None for text and for binary data of no known type."""
    if head.startswith(b"\x7fELF") and len(head) >= 20:
        bits = {1: "32-bit", 2: "64-bit"}.get(head[4], "")
        order = {1: "little", 2: "big"}.get(head[5])
        if order is not None:
            e_type = int.from_bytes(head[16:18], order)
            machine = int.from_bytes(head[18:20], order)
            what = _ELF_TYPES.get(e_type, f"file of type {e_type}")
            arch = _ELF_MACHINES.get(machine, f"machine {machine}")
            return f"an ELF {bits} {'LSB' if order == 'little' else 'MSB'} {what} for {arch}"
        return "an ELF file"
    for magic, what in _BINARY_MAGIC:
        if head.startswith(magic):
            return what
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive: unpack it and ingest the traces in it"
    return None


def looks_binary(head: bytes) -> bool:
    """Whether ``head`` is binary data rather than text: NUL bytes, which no trace text
    holds."""
    return b"\x00" in head[:4096]
