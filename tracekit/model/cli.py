"""``tracekit model``: run the replay model from the command line (a thin layer over
:func:`tracekit.model.simulate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

__all__ = ["register", "model"]


def _fmt_ns(ns: int) -> str:
    if ns >= 1_000_000:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1_000:
        return f"{ns / 1e3:.2f} us"
    return f"{ns} ns"


def _rows(results: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(metric, value per result) lines of the readable table."""
    kind = "preempt-off" if results[0]["preempt"] else "resched gap"
    causes: list[str] = []
    comp_keys: list[str] = []
    for d in results:
        causes += [c for c in d["flushes_by_cause"] if c not in causes]
        comp = (d.get("worst_window") or {}).get("composition") or {}
        comp_keys += [k for k, v in comp.items() if v and k not in comp_keys]

    def each(f) -> list[str]:
        return [f(d) for d in results]

    rows: list[tuple[str, list[str]]] = [("TLB flushes", each(lambda d: f"{d['tlb_flushes']:,}"))]
    for c in causes:
        rows.append((f"  {c}", each(lambda d: f"{d['flushes_by_cause'].get(c, 0):,}")))
    rows += [
        ("pages/flush (typ.)", each(lambda d: f"{d['typical_pages_per_flush']:,}")),
        ("data pages freed", each(lambda d: f"{d['pages_freed']:,}")),
        ("pt pages freed", each(lambda d: f"{d['pagetable_pages_freed']:,}")),
        ("IPIs", each(lambda d: f"{d['ipis']:,}")),
    ]
    if any(d["hash_flushes"] for d in results):
        rows.append(("hash flushes", each(lambda d: f"{d['hash_flushes']:,}")))
    if any(d["batch_allocs"] or d["batch_alloc_failures"] for d in results):
        rows.append(("batch allocs", each(lambda d: f"{d['batch_allocs']:,}")))
        rows.append(("  failed", each(lambda d: f"{d['batch_alloc_failures']:,}")))
    rows += [
        (f"{kind} windows", each(lambda d: f"{d['windows']['count']:,}")),
        (f"  max", each(lambda d: _fmt_ns(d["windows"]["max_ns"]))),
        (f"  p50", each(lambda d: _fmt_ns(d["windows"]["p50_ns"]))),
        (f"  p99", each(lambda d: _fmt_ns(d["windows"]["p99_ns"]))),
        (f"  p99.9", each(lambda d: _fmt_ns(d["windows"]["p99.9_ns"]))),
    ]
    if comp_keys:
        rows.append(("worst window holds", ["" for _ in results]))
        for k in comp_keys:
            rows.append((f"  {_SHORT.get(k, k)}", each(lambda d: f"{((d.get('worst_window') or {}).get('composition') or {}).get(k, 0):,}")))
    rows.append(("simulated time", each(lambda d: _fmt_ns(d["total_ns"]))))
    for f, label in _TIME_FUNCS.items():
        if any(d["time_by_function_ns"].get(f) for d in results):
            rows.append((f"  {label}", each(lambda d: _fmt_ns(d["time_by_function_ns"].get(f, 0)))))
    return rows


#: Functions whose (inclusive) simulated time the table shows, with short labels.
_TIME_FUNCS = {
    "unmap_vmas": "unmap_vmas",
    "zap_pte_range": "zap_pte_range",
    "free_pgtables": "free_pgtables",
    "tlb_flush_mmu": "tlb_flush_mmu",
    "tlb_finish_mmu": "tlb_finish_mmu",
    "free_pages_and_swap_cache": "free_pages_...",
    "anon_vma_unlink": "anon_vma_unlink",
    "unlink_file_vma": "unlink_file_vma",
}
_SHORT = {"pagetable_pages_freed": "pt_pages_freed"}


def model(
    arch: Annotated[str, typer.Option("--arch", help="x86_64, i386, i386-pae, ia64, ia64-64k, ppc64, ppc64-64k.")] = "x86_64",
    strategy: Annotated[Optional[str], typer.Option("--strategy", help="v2622, hugh2007, ben2007, merged30, v38, modern.", show_default=False)] = None,
    preempt: Annotated[Optional[bool], typer.Option("--preempt/--no-preempt", help="CONFIG_PREEMPT or not (required).", show_default=False)] = None,
    workload: Annotated[str, typer.Option("--workload", help="VMAs, comma-separated: KIND:SIZE[:density=F][:dirty=F][:swap=F][:at=ADDR][:keep], KIND anon|file|filep|huge.")] = "anon:1GiB",
    op: Annotated[str, typer.Option("--op", help="exit_mmap, munmap (every VMA not marked keep) or truncate (the shared file VMAs' file, to 0).")] = "exit_mmap",
    alloc_fail: Annotated[str, typer.Option("--alloc-fail", help="GFP_NOWAIT batch-page allocations: never, always, or a failure probability.")] = "never",
    fallback_entries: Annotated[int, typer.Option("--fallback-entries", help="ben2007: entries of the on-stack fallback array.")] = 8,
    costs: Annotated[Optional[Path], typer.Option("--costs", help="Cost profile (JSON or TOML, ns per operation).", show_default=False)] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Run every strategy and show them side by side.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    cpus: Annotated[int, typer.Option("--cpus", help="Online CPUs (1 selects 2.6.22's fast mode).")] = 4,
    other_cpus: Annotated[int, typer.Option("--other-cpus", help="CPUs running other threads of the mm (munmap shootdowns).")] = 0,
    lazy_cpus: Annotated[int, typer.Option("--lazy-cpus", help="CPUs holding the mm lazily (drop out after the first IPI).")] = 0,
    flush_outside_ptl: Annotated[bool, typer.Option("--flush-outside-ptl", help="ben2007: break out and flush after the PTE lock, as 3.0 does.")] = False,
    zap_block: Annotated[bool, typer.Option("--zap-block", help="ben2007: keep ZAP_BLOCK_SIZE's finish/re-gather.")] = False,
    emit_dir: Annotated[Optional[Path], typer.Option("--emit", help="Also write synthetic traces (function_graph, function, preemptoff, tlb_flush events) and a ground-truth JSON into this directory; keep the workload small.", show_default=False)] = None,
    emit_options: Annotated[str, typer.Option("--emit-options", help="Options for --emit, comma-separated: abstime, proc, nocpu, nooverhead, tail, oldmarks (function_graph); tracedat (also trace.dat in both byte orders).")] = "",
) -> None:
    """Simulate the page-table teardown (unmap_vmas, free_pgtables, tlb_finish_mmu) under
    one mmu_gather strategy: TLB flushes by cause, pages per flush, IPIs, page-table pages
    freed, and the preempt-off windows (--preempt) or resched gaps (--no-preempt) with the
    worst one's contents.

    Example:

        tracekit model --arch x86_64 --strategy v2622 --no-preempt --workload anon:1GiB

        tracekit model --arch ppc64 --preempt --compare --workload anon:64GiB:density=0.001

        tracekit model --arch ia64 --strategy v2622 --preempt --workload anon:4MiB --emit ./fixtures-ia64

    Exit status: 0, or 2 for a bad option or workload.
    """
    from rich.table import Table

    from tracekit.cli import die, out
    from tracekit.model import STRATEGIES, load_costs, simulate

    if preempt is None:
        raise die("say --preempt or --no-preempt (CONFIG_PREEMPT or not)")
    if strategy is None and not compare:
        raise die(f"give --strategy ({', '.join(STRATEGIES)}) or --compare")
    strategies = list(STRATEGIES) if compare else [strategy]
    try:
        profile = load_costs(costs)
        results = [
            simulate(
                arch, s, preempt=preempt, workload=workload, op=op, costs=profile,
                alloc_fail=alloc_fail, fallback_entries=fallback_entries,
                flush_under_ptl=not flush_outside_ptl, ben_zap_block=zap_block,
                online_cpus=cpus, other_cpus=other_cpus, lazy_cpus=lazy_cpus,
            ).as_dict()
            for s in strategies
        ]
    except ValueError as e:
        raise die(str(e))
    if emit_dir is not None:
        if compare:
            raise die("--emit writes the traces of one strategy: give --strategy, not --compare")
        from tracekit.model.emit import EmitOptions, emit

        flags = {f.strip() for f in emit_options.split(",") if f.strip()}
        known = {"abstime", "proc", "nocpu", "nooverhead", "tail", "oldmarks", "tracedat"}
        if flags - known:
            raise die(f"--emit-options: unknown {sorted(flags - known)}; known: {', '.join(sorted(known))}")
        opt = EmitOptions(abstime="abstime" in flags, proc="proc" in flags, cpu_column="nocpu" not in flags,
                          overhead="nooverhead" not in flags, tail="tail" in flags, old_marks="oldmarks" in flags,
                          ncpus=cpus)
        try:
            from tracekit.model.emit import TEXT_FORMATS

            fmts = TEXT_FORMATS + (("tracedat", "tracedat_swapped") if "tracedat" in flags else ())
            truth = emit(emit_dir, arch=arch, strategy=strategy, preempt=preempt, workload=workload, op=op,
                         formats=fmts, options=opt, alloc_fail=alloc_fail, fallback_entries=fallback_entries,
                         flush_under_ptl=not flush_outside_ptl, ben_zap_block=zap_block,
                         other_cpus=other_cpus, lazy_cpus=lazy_cpus)
        except (ValueError, OSError) as e:
            raise die(str(e))
        from tracekit.cli import err

        for name in truth["files"].values():
            err.print(f"wrote {emit_dir / name}", markup=False)
    if json_out:
        obj: Any = results[0] if not compare else {
            "arch": results[0]["arch"], "preempt": preempt, "op": op, "workload": workload,
            "results": results,
        }
        out.print(json.dumps(obj, indent=2), markup=False)
        return
    title = (f"{results[0]['arch']} {op} {workload}, "
             f"{'CONFIG_PREEMPT' if preempt else '!CONFIG_PREEMPT'}")
    table = Table(title=title, title_justify="left")
    table.add_column("", no_wrap=True)
    for d in results:
        table.add_column(d["strategy"], justify="right")
    for name, values in _rows(results):
        table.add_row(name, *values)
    out.print(table)


def _run_spans(store: Optional[Path], run: str):
    """(spans LazyFrame, arch) of the run whose id is ``run`` (or starts with it)."""
    import polars as pl

    from tracekit.cli import die
    from tracekit.store import open_store

    try:
        st = open_store(store, create=False)
        runs = st.runs().select("run_id", "arch").collect()
    except Exception as e:  # noqa: BLE001 - an unreadable store is a user error here
        raise die(f"cannot read the store: {e}")
    hit = runs.filter(pl.col("run_id").str.starts_with(run))
    if hit.height != 1:
        raise die(f"run {run!r}: {'no such run' if hit.height == 0 else 'ambiguous prefix'} in the store (see tracekit runs)")
    rid, arch = hit.row(0)
    if arch in (None, "", "unknown"):
        arch = None
    return st.spans().filter(pl.col("run_id") == rid), arch


def _need_arch(arch: Optional[str], run_arch: Optional[str]) -> str:
    from tracekit.cli import die

    if not (arch or run_arch):
        raise die("the run does not say its arch: give --arch")
    return arch or run_arch  # type: ignore[return-value]


def calibrate_cmd(
    run: Annotated[str, typer.Option("--run", help="Run id (or a unique prefix) whose spans to fit.", show_default=False)],
    workload: Annotated[str, typer.Option("--workload", help="The measured process's VMAs (see tracekit model --help).", show_default=False)],
    out_file: Annotated[Path, typer.Option("--out", help="Cost profile to write (JSON).")] = Path("costs.json"),
    store: Annotated[Optional[Path], typer.Option("--store", help="Store directory (default: $TRACEKIT_STORE, else ./tracekit-store).", show_default=False)] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Model arch (default: the run's).", show_default=False)] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="The strategy of the measured kernel.")] = "modern",
    preempt: Annotated[bool, typer.Option("--preempt/--no-preempt", help="CONFIG_PREEMPT of the measured kernel.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the fit as JSON.")] = False,
) -> None:
    """Fit a cost profile to a measured run: the model of the measured kernel on the stated
    workload is scaled, per cost group (zap, pgtables, free), to the run's mean
    unmap_vmas, free_pgtables and tlb_finish_mmu time per exit_mmap.

    Example:

        tracekit calibrate --run 2b6101f6 --workload anon:256MiB,anon:64GiB:density=0.001953125 --out costs.json
    """
    from tracekit.cli import die, out
    from tracekit.model.calibrate import calibrate

    spans, run_arch = _run_spans(store, run)
    try:
        cal = calibrate(spans, arch=_need_arch(arch, run_arch), workload=workload, strategy=strategy, preempt=preempt)
        out_file.write_text(json.dumps(cal.profile.to_dict(), indent=1) + "\n")
    except (ValueError, OSError) as e:
        raise die(str(e))
    if json_out:
        out.print(json.dumps(cal.as_dict(), indent=2), markup=False)
        return
    for f, m in cal.measured_ns.items():
        out.print(f"{f:<16} measured {_fmt_ns(int(m)):>10}  fitted {_fmt_ns(int(cal.fitted_ns[f])):>10}", markup=False)
    out.print("scales: " + ", ".join(f"{g} x{s:.3g}" for g, s in cal.scales.items()) + f"; wrote {out_file}", markup=False)


def replay_cmd(
    run: Annotated[str, typer.Option("--run", help="Run id (or a unique prefix) to replay.", show_default=False)],
    strategy: Annotated[str, typer.Option("--strategy", help="Strategy to replay the run's workload under.", show_default=False)],
    workload: Annotated[str, typer.Option("--workload", help="The measured process's VMAs (see tracekit model --help).", show_default=False)],
    store: Annotated[Optional[Path], typer.Option("--store", help="Store directory (default: $TRACEKIT_STORE, else ./tracekit-store).", show_default=False)] = None,
    costs: Annotated[Optional[Path], typer.Option("--costs", help="Cost profile (default: fitted to the run now).", show_default=False)] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Model arch (default: the run's).", show_default=False)] = None,
    measured_strategy: Annotated[str, typer.Option("--measured-strategy", help="The strategy of the measured kernel.")] = "modern",
    preempt: Annotated[bool, typer.Option("--preempt/--no-preempt", help="CONFIG_PREEMPT of the measured kernel.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Replay a measured run's workload under another strategy: the measured mean time per
    exit_mmap of the teardown functions, the model of the measured kernel, and the model
    of STRATEGY with the same costs; flushes and the worst preempt-off window of both.

    Example:

        tracekit replay --run 2b6101f6 --strategy v2622 --workload anon:256MiB,anon:64GiB:density=0.001953125
    """
    from rich.table import Table

    from tracekit.cli import die, out
    from tracekit.model import load_costs
    from tracekit.model.calibrate import replay

    spans, run_arch = _run_spans(store, run)
    try:
        profile = load_costs(costs) if costs else None
        rp = replay(spans, arch=_need_arch(arch, run_arch), workload=workload, strategy=strategy,
                    measured_strategy=measured_strategy, preempt=preempt, profile=profile)
    except ValueError as e:
        raise die(str(e))
    if json_out:
        out.print(json.dumps(rp, indent=2), markup=False)
        return
    t = Table(title=f"replay of {rp['exits']} exit_mmap calls, {rp['arch']} {workload}", title_justify="left")
    t.add_column("per exit_mmap", no_wrap=True)
    t.add_column("measured", justify="right")
    t.add_column(f"model {measured_strategy}", justify="right")
    t.add_column(f"model {strategy}", justify="right")
    for r in rp["rows"]:
        m = r["measured_ns"]
        t.add_row(r["function"], _fmt_ns(int(m)) if m is not None else "-",
                  _fmt_ns(r["model_measured_strategy_ns"]), _fmt_ns(r["model_strategy_ns"]))
    a, b = rp["model_measured_strategy"], rp["model_strategy"]
    t.add_row("TLB flushes", "", f"{a['tlb_flushes']:,}", f"{b['tlb_flushes']:,}")
    kind = "max preempt-off" if preempt else "max resched gap"
    t.add_row(kind, "", _fmt_ns(a["windows"]["max_ns"]), _fmt_ns(b["windows"]["max_ns"]))
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add the ``model``, ``calibrate`` and ``replay`` commands to the tracekit CLI."""
    app.command(name="model")(model)
    app.command(name="calibrate")(calibrate_cmd)
    app.command(name="replay")(replay_cmd)
