"""tracekit: kernel traces in, reviewed latency numbers out.

The library surface is what the command line uses:

* :func:`ingest` reads trace files into a store (``tracekit ingest``);
* :func:`open_store` opens one, with ``.runs()``, ``.spans()``, ``.events()`` and
  ``.windows()`` returning polars LazyFrames.
"""

from __future__ import annotations

import os as _os

# tracekit's numpy work is element-wise and sorting: BLAS threads would only spin beside
# polars' own pool (set before numpy is first imported; the user's setting wins).
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# polars' allocator (jemalloc) hands freed pages back to the kernel after 10 s by default;
# ingest frees and takes about the same memory for every chunk, so keeping them a little
# longer saves the page faults of taking them again (read when polars is first imported).
_os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:30000,muzzy_decay_ms:30000")

__version__ = "0.1.0"

__all__ = ["__version__", "ingest", "open_store"]


def __getattr__(name: str):
    # Imported lazily so that "tracekit --help" stays fast.
    if name == "ingest":
        from tracekit.pipeline import ingest

        return ingest
    if name == "open_store":
        from tracekit.store import open_store

        return open_store
    raise AttributeError(name)
