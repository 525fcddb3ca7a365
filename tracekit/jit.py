"""Compiled loops that cost a process nothing until one runs compiled.

Every loop over a trace's bytes is a numba function (``@njit(cache=True, nogil=True)``).
numba itself is the largest fixed cost of a process: importing it, making its CPU target
ready and loading each function from the cache take about 0.45 s of CPU before the first
byte is read, more than a small trace takes to read without it.  So the decorator here
defers all of numba to a loop's first compiled call, and an input small enough is read by
the same functions run by the interpreter (:func:`interpreted`): the same code, so the
same results, without numba imported at all.  How small is measured, not guessed
(``benchmarks/bench_formats.py --startup``; docs/design.md#start-up).

Invariants:

- a function decorated here is numba's dispatcher for every compiled call (its cache,
  signatures and statistics are numba's; attributes not defined here are the
  dispatcher's), and numba's typing sees the dispatcher where a compiled function calls
  another one, so compiled code, inlining and the on-disk cache are as with ``numba.njit``;
- numba is imported by the first compiled call (or attribute of a dispatcher), never by an
  import of a module that defines compiled loops;
- under :func:`interpreted` every call, in any thread, runs the Python function; numpy's
  warnings about integer wrap-around are silenced there, as compiled code wraps silently.
"""

from __future__ import annotations

import functools
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["njit", "interpreted", "is_interpreting", "SMALL_TEXT_BYTES"]

#: a text input up to this many bytes is read interpreted: below it the interpreter reads
#: it before numba could start (measured by ``benchmarks/bench_formats.py --startup``).  A
#: trace.dat is always read compiled: its headers alone are hundreds of KiB, and its page
#: and record loops run interpreted at a few thousand records a second.
SMALL_TEXT_BYTES = 128 << 10

_lock = threading.Lock()
_interpreting = 0
_inside = threading.local()


def is_interpreting() -> bool:
    """Whether compiled loops run in the interpreter now (see :func:`interpreted`)."""
    return _interpreting > 0


@contextmanager
def interpreted(on: bool = True) -> Iterator[None]:
    """Within this block (when ``on``), every function decorated with :func:`njit` runs
    its Python body, in every thread, and numba is not imported for it."""
    global _interpreting
    if not on:
        yield
        return
    with _lock:
        _interpreting += 1
    try:
        yield
    finally:
        with _lock:
            _interpreting -= 1


def _numba_without_blas():
    """numba, with its array implementations loaded without scipy.linalg.  The first
    function numba compiles or loads from its cache in a process imports
    ``numba.np.arraymath``, which imports scipy.linalg (a quarter of a second) only to
    learn whether ``np.dot`` and the like can call BLAS.  The compiled loops do no linear
    algebra, so scipy.linalg is hidden for that one import when nothing has loaded it yet
    (numba then types ``np.dot`` as unavailable in compiled code; scipy itself imports as
    usual afterwards)."""
    if "numba.np.arraymath" not in sys.modules and "scipy.linalg" not in sys.modules:
        sys.modules["scipy.linalg"] = None  # type: ignore[assignment]  (an import of it fails)
        try:
            import numba.np.arraymath  # noqa: F401
        finally:
            del sys.modules["scipy.linalg"]
    import numba

    return numba


class Compiled:
    """A function compiled by numba at its first compiled call, or run by the interpreter
    under :func:`interpreted`."""

    def __init__(self, py_func: Callable, options: dict[str, Any]) -> None:
        self.py_func = py_func
        #: (what numba's inlining pass reads from a callee: its ``inline`` option)
        self.targetoptions = dict(options)
        self._dispatcher = None
        functools.update_wrapper(self, py_func)

    @property
    def dispatcher(self):
        """numba's dispatcher of this function (numba imported the first time)."""
        if self._dispatcher is None:
            numba = _numba_without_blas()
            with _lock:
                if self._dispatcher is None:
                    self._dispatcher = numba.njit(**self.targetoptions)(self.py_func)
        return self._dispatcher

    @property
    def _numba_type_(self):
        # (how numba types this object where compiled code calls it: as its dispatcher)
        return self.dispatcher._numba_type_

    def __call__(self, *args):
        if not _interpreting:
            return self.dispatcher(*args)
        if getattr(_inside, "depth", 0):
            return self.py_func(*args)
        import numpy as np

        _inside.depth = 1
        try:
            with np.errstate(over="ignore"):
                return self.py_func(*args)
        finally:
            _inside.depth = 0

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __repr__(self) -> str:
        return f"<compiled {self.py_func.__module__}.{self.py_func.__qualname__}>"


def njit(*args, **options):
    """``numba.njit`` deferred: ``@njit(cache=True, nogil=True)`` or ``@njit``."""
    if args and callable(args[0]) and not options:
        return Compiled(args[0], {})
    return lambda f: Compiled(f, options)
