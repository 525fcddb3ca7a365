"""Coverage-guided fuzzing of the compiled function_graph scanner and the nesting pairing
(not run by the test suite; needs ``pip install atheris``).

Every input is a layout byte (which prologue fields the trace prints) and a chunk of bytes.
The scanner (``_scan_lines``) must not fail on it, whatever the bytes; every line it takes
must read exactly as the general path's regular expressions read it; the rows must pair
(``_nest_rows``) without failing.  A mismatch or an exception stops the run with the input
saved by atheris.

Two passes, because atheris sees the coverage of Python bytecode only:

1. ``NUMBA_DISABLE_JIT=1 python benchmarks/fuzz_scan.py CORPUS_DIR -atheris_runs=100000``:
   the loops run as the Python they are written in, instrumented, so the fuzzer is guided
   by their branches; indexing outside an array raises there.
2. ``NUMBA_BOUNDSCHECK=1 python benchmarks/fuzz_scan.py --replay CORPUS_DIR``: every input
   the fuzzer kept is run through the compiled loops, with numba's bounds checks on.

Prints the number of inputs run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import polars as pl

LAYOUT_BITS = ("abstime", "reltime", "cpu", "proc", "lat")
COLUMNS = ("cpu", "pid", "comm", "ts_ns", "kind", "func", "raw_func", "depth", "dur_ns", "flags", "body")
SEEDS = [
    b"  0)               |  outer() {\n  0)   0.480 us    |    leaf();\n  0) + 23.320 us   |  }\n",
    b"   50.000059 |  2)  pgtfree-1002  |   ==========> |\n   50.000060 |  2)  pgtfree-1002  |   <========== |\n",
    b" 1)   pgtfree-1001  =>  pgtfree-10737 \n 1)    bash-1507    |  d..2 |   4.000 us    |  } /* f */\n",
    b"CPU:0 [LOST 1234 EVENTS]\n 0)               |  /* pgtfree: begin */\n",
]
runs = 0


def check(data: bytes) -> None:
    """One input: scan it, compare with the general path, pair it."""
    global runs
    runs += 1
    from tracekit.parsers import function_graph as fg
    from tracekit.parsers.base import LineChunk, ParseContext
    from tracekit.schema import Kind, conform
    from tracekit.spans import _KIND_CODE, _codes, _nest_rows

    if not data:
        return
    bits = data[0]
    lay = fg.Layout(**{k: bool(bits >> i & 1) for i, k in enumerate(LAYOUT_BITS)})
    chunk = LineChunk(1, raw=data[1:])
    if chunk.n_lines == 0:
        return
    good, rest = fg._parse_fast(chunk, lay)
    general = fg._parse_general(pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines}), ParseContext("fuzz"))
    both = general.join(good, on="seq", how="inner", suffix="_fast")
    if both.height != good.height:
        raise AssertionError("the scanner took a line the general path does not read")
    for col in COLUMNS:
        if not both[col].equals(both[f"{col}_fast"].alias(col), check_names=False):
            raise AssertionError(f"the scanner and the general path read {col} differently")
    # the pairing, over every row in file order (the task: the pid, else the CPU)
    rows = conform(pl.concat([conform(good), conform(general)]).sort("seq"))
    task = _codes(rows.select(pl.coalesce(pl.col("pid").cast(pl.Int64), -1 - pl.col("cpu").cast(pl.Int64))).to_series())
    ntasks = int(task.max()) + 2 if len(task) else 1
    kind = np.array([_KIND_CODE.get(k, 0) for k in rows["kind"].to_list()], dtype=np.int64)
    partner, is_open, parent, depth, _, _ = _nest_rows(
        np.where(task < 0, ntasks - 1, task), kind, rows["depth"].cast(pl.Int64).fill_null(-1).to_numpy(),
        _codes(rows["func"]), rows["cpu"].cast(pl.Int64).fill_null(-1).to_numpy(), rows["seq"].to_numpy(),
        ntasks, _KIND_CODE[Kind.ENTRY], _KIND_CODE[Kind.EXIT], _KIND_CODE[Kind.LEAF], _KIND_CODE[Kind.LOST])
    closed = partner[partner >= 0]
    if len(set(closed.tolist())) != len(closed) or (partner >= len(rows)).any():
        raise AssertionError("a return closed two entries")


def fuzz(data: bytes) -> None:
    check(data)


def main() -> None:
    np.seterr(over="ignore")  # (the name hash wraps by design, as it does compiled)
    if len(sys.argv) > 2 and sys.argv[1] == "--replay":
        for p in sorted(Path(sys.argv[2]).iterdir()):
            check(p.read_bytes())
        for s in SEEDS:
            check(bytes([0b00101]) + s)
        print(f"replayed {runs} inputs through the compiled loops "
              f"(NUMBA_BOUNDSCHECK={os.environ.get('NUMBA_BOUNDSCHECK', '0')})")
        return
    import atheris

    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    for d in corpus:
        Path(d).mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(SEEDS):
            for bits in (0b00100, 0b01101, 0b11100, 0b00001):
                (Path(d) / f"seed-{i}-{bits}").write_bytes(bytes([bits]) + s)
    import polars  # noqa: F401  (the libraries are not instrumented: only tracekit's code)
    import numba  # noqa: F401

    with atheris.instrument_imports(include=["tracekit"]):
        import tracekit.parsers.function_graph  # noqa: F401
        import tracekit.parsers.scan  # noqa: F401
        import tracekit.spans  # noqa: F401
    import atexit

    atexit.register(lambda: print(f"fuzzed {runs} inputs", file=sys.stderr))
    atheris.Setup(sys.argv, fuzz)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
