"""The errors tracekit raises on purpose: one tree, rooted at :class:`TracekitError`.

Invariants:

* Every error the library raises for something a user can act on (a bad option, an input
  it cannot read, a store it cannot open, a model argument out of range, a capture that
  cannot go on, a report that cannot be made) is a :class:`TracekitError`.  Anything else
  escaping the library is a bug.
* The message is one line that says what, where (file and line, store path, option name)
  and why; the command line prints it as ``tracekit: error: <message>`` and exits 2.
* An error raised while reading an input is raised as it was made (not rebuilt from its
  text), so a caller sees its class and attributes (``ParseError.path``, ``.line``).

The classes keep the modules they were first defined in as import paths
(``tracekit.store.StoreError``, ``tracekit.parsers.base.ParseError``, ...).
"""

from __future__ import annotations

__all__ = [
    "TracekitError",
    "OptionError",
    "StoreError",
    "InputError",
    "ParseError",
    "ModelError",
    "CaptureError",
    "ReportError",
]


class TracekitError(Exception):
    """An error a user can act on: the message says what, where and why, in one line."""

    #: The command line's exit status for it.
    exit_code = 2


class OptionError(TracekitError, ValueError):
    """An option (of a command, or the keyword argument of a library call behind it) with a
    value outside what it accepts: names the option, the value and what is accepted."""


class StoreError(TracekitError):
    """A store that cannot be opened, read or written (path and reason in the message)."""


class InputError(TracekitError):
    """An input that cannot be opened, decompressed or recognised (file and reason in the
    message)."""


class ParseError(InputError):
    """Input that cannot be read at all: names the file, the line (or byte offset) and why."""

    def __init__(self, path: str, line: int | None, reason: str, *, offset: int | None = None):
        self.path = path
        self.line = line
        self.offset = offset
        self.reason = reason
        where = path
        if line is not None:
            where += f":{line}"
        elif offset is not None:
            where += f": byte {offset}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        # raised in an ingest worker process and re-raised in the parent as it was made
        return (_rebuild_parse_error, (type(self), self.path, self.line, self.reason, self.offset))


def _rebuild_parse_error(cls: type, path: str, line: int | None, reason: str, offset: int | None) -> ParseError:
    return cls(path, line, reason, offset=offset)


class ModelError(TracekitError, ValueError):
    """Arguments the replay model cannot run with (workload, arch, strategy, costs); a
    ValueError too, as the model's callers have always caught."""


class CaptureError(TracekitError):
    """A capture cannot go on: the message says what is missing or what failed, and how to
    fix it (for a missing tool, the Debian package that provides it)."""


class ReportError(TracekitError):
    """The report cannot be made (no such patch, empty store, no runs on a side, no
    function to compare): the message says why and what exists instead."""
