"""Coverage-guided fuzzing of every input format (not run by the test suite; needs atheris,
installed on demand with ``pip install atheris``).

Each target reads arbitrary bytes the way ``tracekit ingest`` reads a file of its format:
the format's ``parse()`` over the bytes cut into two chunks (``parse_file()`` for
trace.dat) and the frames through the span builder, as the ingest pairs them; ``NAME.scan``
runs the format's ``scan_bytes(raw)`` alone (its compiled path and frame assembly on one
chunk).  Whatever the bytes, the only
exception allowed is a :class:`~tracekit.errors.TracekitError` (a ParseError naming the
line); any other exception, a hang (``-timeout``) or, in the compiled pass, a read outside an
array is a crash, and atheris stops with the input saved.

Targets (``--targets`` lists them): ``function_graph``, ``function``, ``events`` (ftrace
text of the function tracer and of trace events), ``tracecmd_report``, ``latency``,
``perf_script``, ``noise`` (the OS-noise tracers' lines, format detected), ``pasted`` (a
trace quoted or indented in a mail, undone and detected as the ingest does), ``dmesg`` and
``tracedat``.  A text input's first byte says where the second chunk starts (0: one chunk),
so that records carried over a chunk edge are fuzzed too.

Seeds are small slices of the shared corpus (read in place from ``--corpus``, default the
corpus beside the repository, as the tests find it; a slice keeps the file's ``#`` header)
and, for trace.dat, small files written by the model's emitter; they are written into the
fuzzing directory, never into the repository.

Three ways to run, because atheris sees the coverage of Python bytecode only:

1. ``NUMBA_DISABLE_JIT=1 python benchmarks/fuzz_scan.py TARGET DIR -runs=100000``: the
   compiled loops run as the Python they are written in, instrumented, so the fuzzer is
   guided by their branches; indexing outside an array raises there.
2. ``NUMBA_BOUNDSCHECK=1 python benchmarks/fuzz_scan.py TARGET DIR -runs=100000``: the
   loops compiled, with numba's bounds checks on (a read outside an array raises
   IndexError); the modules that hold compiled loops are not instrumented (numba would
   compile the instrumentation), so the fuzzer is guided by the Python around them,
   starting from the inputs the first way kept in DIR.  ``--replay TARGET DIR`` runs every
   input in DIR once, with the frames paired too.

3. ``--interpreted``: the loops run as Python within :func:`tracekit.jit.interpreted`, as
   an ingest of a small text (``SMALL_TEXT_BYTES``) runs them, every module instrumented:
   the fuzzer is guided by the loops' own branches, and a Python integer too large for
   an array's slot raises there as it would in that ingest.

A text input's frames cost about 10 ms whatever its size (a few dozen polars queries), so
the second way runs at 40 inputs/s one at a time; ``--batch 64`` joins 64 inputs into one
text (each one's format and paste detected alone) and reaches 500-1500 inputs/s.  The
coverage of a batch is credited to its last input, so keep the seeds (``-keep_seed=1``)
and let inputs grow (``-len_control=0``)::

    POLARS_MAX_THREADS=1 NUMBA_BOUNDSCHECK=1 nice -n 10 python benchmarks/fuzz_scan.py \
        events.scan DIR --batch 64 -runs=100000 -max_len=1024 -keep_seed=1 -len_control=0

Prints the number of inputs run.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import importlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

HEADER_LINES = 40  # a slice keeps at most this many of the file's leading '#' lines
SLICE_LINES = 30
SLICE_BYTES = 3000

ROOT = Path(__file__).resolve().parents[1]
#: target: (format module, or None to detect as the ingest does; corpus globs)
TARGETS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "function_graph": ("function_graph", (
        "qemu/*/fgraph_*.txt", "kbuild-*/A/fgraph_exit_mmap.txt", "wild/kdoc-*/fgraph-*[a-z].txt",
        "wild/wikibook-rpi/fgraph-*.txt", "tracecompass/trace-func-graph", "wild/_minimal/M4-*.txt")),
    "function": ("ftrace_text", (
        "qemu/*/function.txt", "kbuild-*/A/function.txt", "wild/kdoc-*/function-*[a-z0-9].txt",
        "wild/kdoc-*/trace_pipe-*[a-z].txt", "wild/wikibook-rpi/function-*.txt", "wild/kdoc-5.4/stack_trace.txt")),
    "events": ("ftrace_text", (
        "qemu/*/events.txt", "trappy/tests/trace_*.txt", "tracecompass/trace-android-*", "tracecompass/ftrace_syscalls.txt",
        "wild/kdoc-5.4/instance-*[a-z].txt", "wild/kdoc-5.4/*probe-events.txt", "wild/kdoc-*/sched_switch-tracer.txt",
        "wild/wikibook-rpi/nop-*.txt", "lisa/tests/assets/trace_txt/trace.txt", "wild/_minimal/M[38]-*.txt")),
    "tracecmd_report": ("tracecmd_report", (
        "qemu/*/tracecmd.report.txt", "kbuild-*/A/tracecmd.report.txt", "wild/_minimal/M[256]-*.txt")),
    "latency": ("latency", (
        "kbuild-*/[AB]/latency_*.txt", "kbuild-*/A/thresh/*.txt", "wild/kdoc-*/irqsoff-*[a-z].txt",
        "wild/kdoc-*/preempt*[a-z].txt", "wild/kdoc-*/wakeup*[a-z].txt", "wild/blog-rt/*.txt", "lkml-*/*.txt",
        "wild/kdoc-5.4/hwlat.txt")),
    "perf_script": ("perf_script", (
        "qemu/*/perf.script.txt", "flamegraph/perf-*.txt", "wild/_minimal/M1-*.txt")),
    "noise": (None, ("wild/kdoc-5.4/hwlat.txt", "wild/kdoc-6.x/osnoise-tracer.indented.txt")),
    "pasted": (None, ("wild/kdoc-*/*.indented.txt",)),
    "dmesg": ("dmesg", ("kbuild-*/A/dmesg.txt", "qemu/*/console.log")),
    "tracedat": ("tracedat", ()),
}
#: the OS-noise tracers' lines as the kernel prints them (trace_output.c), beside the corpus's
NOISE_SEEDS = (
    b"# tracer: osnoise\n#\n#                                _-----=> irqs-off\n"
    b"#           TASK-PID      CPU#   ||||   TIMESTAMP   RUNTIME   NOISE  %% OF CPU  NOISE"
    b"    +-----------------------------+\n"
    b"           <...>-859     [000] ....    81.637220: 1000000        190  99.98100       9     18      0   1007     18      1\n"
    b"           <...>-860     [001] ....    81.638154: 1000000        657  99.93430      50     23      0   1006     16      3\n",
    b"# tracer: timerlat\n#\n"
    b"     <idle>-0       [000] d.h1    54.029328: #1     context    irq timer_latency       932 ns\n"
    b"      <...>-867     [000] ....    54.029339: #1     context thread timer_latency     11700 ns\n",
    b"     <idle>-0       [001] d.h.   101.000000: #1     inner/outer(us):   12/14    ts:1499801089.066141940 count:6\n",
    b"  osnoise/1-857   [001] d.h.   210.514437: irq_noise: local_timer:236 start 210.514435123 duration 1839 ns\n",
)
runs = 0
_TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None  # (a trace.dat input is a file)


def _allowed() -> tuple[type, ...]:
    from tracekit.errors import TracekitError

    return (TracekitError,)


def _chunks(data: bytes):
    """The text after the control byte, cut into one or two chunks as the reader cuts a file
    (whole lines; CR LF lines split as text)."""
    from tracekit.io import split_lines
    from tracekit.parsers.base import LineChunk

    cut_at, text = data[0], data[1:]
    cut = text.find(b"\n", len(text) * cut_at // 256) + 1 if cut_at else 0
    pieces = [p for p in (text[:cut], text[cut:]) if p] if 0 < cut < len(text) else [text]
    line = 1
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        chunk = (LineChunk(line, split_lines(piece), is_last=last) if b"\r" in piece
                 else LineChunk(line, is_last=last, raw=piece))
        line += chunk.n_lines
        yield chunk


def _pair(frames, nesting: bool, source: str) -> None:
    """The frames through the span builder, as the ingest pairs them."""
    from tracekit.spans import SpanBuilder

    builder = None
    for df in frames:
        prep = SpanBuilder.prepare(df, nesting)
        if builder is None:
            builder = SpanBuilder(source=source, nesting=nesting)
        builder.feed(prep)
    if builder is not None:
        builder.finish()


def _detected(text: bytes):
    """(format module, paste or None) of a text as tracekit.pipeline.ingest_one decides them
    from its head (a paste undone, the format detected), or None if it is no text trace."""
    from tracekit import parsers
    from tracekit.pasted import Paste, find_paste, strip_head, wraps_in

    head = text[:64 << 10]
    paste = find_paste(head)
    if paste:
        head = strip_head(head, paste)
    mod = parsers.detect(head)
    if mod is None or mod.FORMAT.kind != "text":
        return None
    own_line = getattr(mod, "OWN_LINE_RE", None)
    if own_line and (paste or wraps_in(head, own_line)):
        paste = Paste(paste.quote_depth, paste.indent, rejoin=own_line, quoted_printable=paste.quoted_printable)
    return mod, paste


def _read(mod, paste, data: bytes, pair: bool) -> None:
    """An input read by format module ``mod`` as the ingest reads it (``paste`` undone)."""
    from tracekit.parsers.base import ParseContext
    from tracekit.pasted import Rejoined, unpaste

    chunks = _chunks(data)
    if paste:
        chunks = unpaste(chunks, paste, Rejoined())
    frames = mod.parse(chunks, ParseContext("fuzz"))
    if pair:
        _pair(frames, True, mod.FORMAT.name)
    else:
        for _ in frames:
            pass


def _text(module: str | None, pair: bool) -> Callable[[bytes], None]:
    """An input of a text format (``module``; None: detected as the ingest detects it, a
    paste undone first) read as the ingest reads it."""
    def run(data: bytes) -> None:
        how = read_as(data)
        if how is not None:
            how(data)
    run.sort = read_as = functools.partial(_read_as, module, pair)
    return run


def _read_as(module: str | None, pair: bool, data: bytes) -> Callable[[bytes], None] | None:
    """How an input is read: by ``module``, or as its head is detected (None: no text
    trace); the function's ``key`` names the format and paste (inputs of one key can be
    read as one text)."""
    found = _detected(data[1:]) if module is None else (importlib.import_module(f"tracekit.parsers.{module}"), None)
    if found is None:
        return None
    how = functools.partial(_read, *found, pair=pair)
    how.key = (found[0].__name__, found[1])
    return how


def _tracedat(data: bytes, pair: bool) -> None:
    from tracekit.parsers import tracedat
    from tracekit.parsers.base import ParseContext

    with tempfile.NamedTemporaryFile(dir=_TMP, suffix=".dat") as f:
        f.write(data)
        f.flush()
        frames = tracedat.parse_file(f.name, ParseContext("fuzz"))
        if pair:
            _pair(frames, False, "tracedat")
        else:
            for _ in frames:
                pass


def _fgraph_scan(data: bytes) -> None:
    """function_graph's compiled path alone (until its module has ``scan_bytes``): the
    control byte's bits say which prologue fields the trace prints."""
    from tracekit.parsers import function_graph as fg
    from tracekit.parsers.base import LineChunk

    bits = data[0]
    lay = fg.Layout(**{k: bool(bits >> i & 1) for i, k in enumerate(("abstime", "reltime", "cpu", "proc", "lat"))})
    fg._parse_fast(LineChunk(1, raw=data[1:], is_last=True), lay)


def _scan(module: str) -> Callable[[bytes], None]:
    """The format's compiled path on the bytes after the control byte (``scan_bytes``)."""
    mod = importlib.import_module(f"tracekit.parsers.{module}")
    scan = getattr(mod, "scan_bytes", None)
    if scan is None and module == "function_graph":
        return _fgraph_scan
    if scan is None:
        raise SystemExit(f"tracekit.parsers.{module} has no scan_bytes() yet")
    return lambda data: scan(data[1:]) if module != "tracedat" else scan(data)


def _joined(inputs: list[bytes]) -> bytes:
    """Inputs run as one: the first one's control byte, then every input's text after its
    control byte, each but the last ending with a newline (so that each input's lines stay
    whole lines, and the last may end inside one)."""
    texts = [d[1:] if d.endswith(b"\n") else d[1:] + b"\n" for d in inputs[:-1]]
    return inputs[0][:1] + b"".join(texts) + inputs[-1][1:]


def _artifact(data: bytes, what: str) -> str:
    """Save ``data`` beside libFuzzer's own crash files (``-artifact_prefix``) and say where."""
    import hashlib

    prefix = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("-artifact_prefix=")), "./")
    path = f"{prefix}{what}-{hashlib.sha1(data).hexdigest()}"
    Path(path).write_bytes(data)
    print(f"== {what} input written to {path}", file=sys.stderr, flush=True)
    return path


def batched(run: Callable[[bytes], None], allowed: tuple[type, ...], size: int,
            sort: Callable[[bytes], Callable[[bytes], None] | None] | None = None) -> tuple[Callable, Callable]:
    """``run`` over ``size`` inputs at a time, joined as one text (:func:`_joined`): the
    frame assembly's fixed cost (a few dozen polars queries, ~10 ms whatever the input's
    size) is paid once per batch rather than once per input, while every input's bytes
    still go through the compiled loops and the frames.  ``sort``, if given, says how one
    input is read (a function: its format detected and paste found alone, as the ingest
    does; None: no trace), and only inputs read the same way are joined.  On a crash, each
    input of the batch is run alone and the one that crashes alone is saved (else the
    batch is saved), before the exception goes on to libFuzzer.  Returns (run one input,
    run every pending batch)."""
    pending: dict[object, tuple[Callable[[bytes], None], list[bytes]]] = {}

    def flush_one(key: object) -> int:
        how, inputs = pending.pop(key)
        batch = _joined(inputs)
        try:
            try:
                how(batch)
            except allowed:
                pass
        except Exception:
            for data in inputs:
                try:
                    how(data)
                except allowed:
                    pass
                except Exception:
                    _artifact(data, "crash")
                    raise
            _artifact(batch, "crash-batch")
            raise
        return len(inputs)

    def flush() -> int:
        return sum(flush_one(key) for key in list(pending))

    def one(data: bytes) -> None:
        how = run if sort is None else sort(data)
        if how is None:
            return
        key = getattr(how, "key", None)
        pending.setdefault(key, (how, []))[1].append(data)
        if len(pending[key][1]) >= size:
            flush_one(key)
    return one, flush


def target(name: str, pair: bool, batch: int = 1, last: int = 0, interpreted: bool = False) -> Callable[[bytes], None]:
    """The function that runs one input of target ``name`` (and pairs its frames into spans
    when ``pair``), raising on a crash only.  ``NAME.scan`` runs the format's compiled path
    alone (``scan_bytes``), many times faster, so that it gets many more inputs.  With
    ``batch`` > 1, a text format's inputs are run ``batch`` at a time (:func:`batched`; the
    inputs still pending are run with input number ``last``, libFuzzer's ``-runs``, and
    at exit).  With ``interpreted``, the compiled loops run as Python (:func:`tracekit.jit.interpreted`),
    as an ingest of a small text runs them."""
    if name.endswith(".scan"):
        run = _scan(TARGETS[name[:-5]][0])
    elif name == "tracedat":
        run = functools.partial(_tracedat, pair=pair)
    else:
        run = _text(TARGETS[name][0], pair)
    if interpreted:
        run = _interpreted(run)
    allowed = _allowed()
    flush = None
    if batch > 1 and batchable(name):
        run, flush = batched(run, allowed, batch, getattr(run, "sort", None))
        atexit.register(flush)

    def one(data: bytes) -> None:
        global runs
        runs += 1
        if len(data) >= 2:
            try:
                run(data)
            except allowed:
                pass
        if flush and runs == last:
            print(f"input {runs}: ran the last batch ({flush()} inputs)", file=sys.stderr)
    return one


def _interpreted(run: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``run`` with the compiled loops interpreted; so too what its ``sort`` says to run."""
    from tracekit.jit import interpreted

    def inside(data: bytes) -> None:
        with interpreted():
            run(data)
    sort = getattr(run, "sort", None)
    if sort is not None:
        def sort_inside(data: bytes):
            with interpreted():
                how = sort(data)
            if how is None:
                return None
            wrapped = _interpreted(how)
            wrapped.key = how.key
            return wrapped
        inside.sort = sort_inside
    return inside


def batchable(name: str) -> bool:
    """Whether inputs of target ``name`` can be joined into one text: every text format
    (not trace.dat, whose file is one structure)."""
    return name.removesuffix(".scan") != "tracedat"


# -- seeds ---------------------------------------------------------------------------------

def _slices(path: Path) -> list[bytes]:
    """The file's '#' header with its first lines, and with lines from its middle."""
    lines = path.read_bytes().splitlines(keepends=True)
    head = [ln for ln in lines[:HEADER_LINES] if ln.startswith(b"#")]
    body = [ln for ln in lines if not ln.startswith(b"#")]
    out = []
    for at in sorted({0, len(body) // 2}):
        s = b"".join(head + body[at:at + SLICE_LINES])[:SLICE_BYTES]
        out.append(s[: s.rfind(b"\n") + 1] or s)
    return out


def _quoted(s: bytes, i: int) -> bytes:
    """A slice as a mail quotes it: '> ' before each line, or an indent."""
    prefix = (b"> ", b"    ", b">> ", b"\t")[i % 4]
    return b"".join(prefix + ln for ln in s.splitlines(keepends=True))


def _text_slices(name: str, corpus: Path) -> list[bytes]:
    found: list[bytes] = []
    for pattern in TARGETS[name][1]:
        for path in sorted(corpus.glob(pattern)):
            found += _slices(path)
    if name == "noise":
        found += NOISE_SEEDS
    if name == "pasted":
        for other in ("function_graph", "events", "latency", "tracecmd_report", "perf_script"):
            found += [_quoted(s, i) for i, s in enumerate(_text_slices(other, corpus)[::4])]
    return found


def seeds(name: str, corpus: Path) -> list[bytes]:
    """Seed inputs of target ``name`` (with their control byte, for text targets: where the
    second chunk starts; for function_graph's compiled path alone, the prologue's fields:
    CPU, CPU and proc, abstime CPU and proc, proc and lat...)."""
    if name.removesuffix(".scan") == "tracedat":
        return _tracedat_seeds()
    controls = (0b00100, 0b01100, 0b01101, 0b11100, 0b00000, 0b00101) if name == "function_graph.scan" else (0, 128)
    return [bytes([c]) + s for s in _text_slices(name.removesuffix(".scan"), corpus) for c in controls]


def _tracedat_seeds() -> list[bytes]:
    from tracekit.model.emit import emit

    out = []
    with tempfile.TemporaryDirectory() as d:
        for arch in ("x86_64", "ppc64", "i386"):
            t = emit(d, arch=arch, strategy="v2622", preempt=True, workload="anon:64KiB",
                     formats=("tracedat", "tracedat_swapped"))
            out += [(Path(d) / t["files"][f]).read_bytes() for f in ("tracedat", "tracedat_swapped")]
    return out


def _compiled_modules(interpreted: bool = False) -> list[str]:
    """The tracekit modules that hold numba functions, unless numba is off or the loops
    run interpreted (their instrumentation would be compiled into the loops, which numba
    refuses)."""
    if interpreted or os.environ.get("NUMBA_DISABLE_JIT", "0") != "0":
        return []
    found = []
    for package, top in (("tracekit", ROOT / "tracekit"), ("tracekit.parsers", ROOT / "parsers")):
        for p in top.rglob("*.py"):
            if "@njit" in p.read_text():
                parts = p.relative_to(top).with_suffix("").parts
                found.append(".".join((package, *parts[:-1], *([] if parts[-1] == "__init__" else parts[-1:]))))
    return found


def main() -> None:
    global runs
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replay", action="store_true", help="run every input in DIR once (the compiled pass)")
    ap.add_argument("--pair", action="store_true", help="pair every input's frames into spans while fuzzing too "
                    "(the replay always does; it doubles the time per input)")
    ap.add_argument("--batch", type=int, default=1, help="run a text format's inputs this many at a time, "
                    "joined as one text (the frame assembly's fixed cost paid once per batch; a crash is "
                    "narrowed to the input that crashes alone)")
    ap.add_argument("--interpreted", action="store_true", help="run the compiled loops as Python, instrumented "
                    "(tracekit.jit.interpreted), as an ingest of a small text does")
    ap.add_argument("--targets", action="store_true", help="list the targets")
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    ap.add_argument("target", nargs="?", choices=sorted([*TARGETS, *(f"{t}.scan" for t in TARGETS if TARGETS[t][0])]))
    ap.add_argument("dirs", nargs="*", help="the fuzzing corpus directories (seeded when empty)")
    a, rest = ap.parse_known_args()
    if a.targets or not a.target:
        print("\n".join(f"{t}  {t}.scan" if TARGETS[t][0] else t for t in TARGETS))
        return
    import numpy as np

    np.seterr(all="ignore")  # (hashes wrap by design, as they do compiled)
    for d in a.dirs:
        Path(d).mkdir(parents=True, exist_ok=True)
        if not any(Path(d).iterdir()):
            for i, s in enumerate(seeds(a.target, Path(a.corpus))):
                (Path(d) / f"seed-{i}").write_bytes(s)
    if a.replay:
        one = target(a.target, pair=True)
        for d in a.dirs:
            for p in sorted(Path(d).iterdir()):
                one(p.read_bytes())
        print(f"replayed {runs} inputs of {a.target} through the compiled loops "
              f"(NUMBA_BOUNDSCHECK={os.environ.get('NUMBA_BOUNDSCHECK', '0')})")
        return
    import atheris

    import numba  # noqa: F401  (the libraries are not instrumented: only tracekit's code)
    import polars  # noqa: F401

    with atheris.instrument_imports(include=["tracekit"], exclude=_compiled_modules(a.interpreted)):
        from tracekit import parsers, pasted, spans  # noqa: F401
        from tracekit.parsers import scan  # noqa: F401

        parsers.formats()
        last = next((int(r.split("=", 1)[1]) for r in rest if r.startswith("-runs=")), 0)
        one = target(a.target, pair=a.pair, batch=a.batch, last=last, interpreted=a.interpreted)
        warm = target(a.target, pair=a.pair, interpreted=a.interpreted)
    for d in a.dirs[:1]:  # (compiled loops compile or load before the clock of -timeout runs)
        warm(min(Path(d).iterdir()).read_bytes())
    runs = 0
    atexit.register(lambda: print(f"fuzzed {runs} inputs of {a.target}", file=sys.stderr))
    if a.target.removesuffix(".scan") == "tracedat":  # (a trace.dat is its headers first: the seeds must fit whole)
        biggest = max(p.stat().st_size for d in a.dirs for p in Path(d).iterdir())
        rest = [r for r in rest if not (r.startswith("-max_len=") and int(r.split("=")[1]) < biggest)]
    atheris.Setup([sys.argv[0], *rest, *a.dirs], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
