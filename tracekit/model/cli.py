"""``tracekit model``: run the replay model from the command line (a thin layer over
:func:`tracekit.model.simulate`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

__all__ = ["register", "model"]


def model(
    arch: Annotated[str, typer.Option("--arch", help="x86_64, i386, i386-pae, ia64, ia64-64k, ppc64, ppc64-64k.")] = "x86_64",
    strategy: Annotated[Optional[str], typer.Option("--strategy", help="v2622, hugh2007, ben2007, merged30, v38, modern, or modern-np-pgfree (modern with free_pgtables and tlb_finish_mmu non-preemptible, 2.6.22's window).", show_default=False)] = None,
    preempt: Annotated[Optional[bool], typer.Option("--preempt/--no-preempt", help="CONFIG_PREEMPT or not (required).", show_default=False)] = None,
    workload: Annotated[str, typer.Option("--workload", help="VMAs, comma-separated: KIND:SIZE[:density=F][:dirty=F][:swap=F][:at=ADDR][:keep], KIND anon|file|filep|huge; or a capture workload, pgtfree:forks=N,mb=M,sparse=G,loops=L (one child's exit_mmap).")] = "anon:1GiB",
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
    from tracekit.cli import die, out
    from tracekit.model import STRATEGIES, load_costs, simulate

    if preempt is None:
        raise die("say --preempt or --no-preempt (CONFIG_PREEMPT or not)")
    if strategy is None and not compare:
        raise die(f"give --strategy ({', '.join(STRATEGIES)}) or --compare")
    from tracekit.model.gather import VARIANTS
    from tracekit.model.table import comparison_table
    from tracekit.tables import print_rows

    # --compare: the six designs; a variant (the kernel under test) is asked for by name
    strategies = [s for s in STRATEGIES if s not in VARIANTS] if compare else [strategy]
    try:
        from tracekit.model.captured import is_pgtfree_spec, pgtfree_model_spec

        if is_pgtfree_spec(workload):
            workload = pgtfree_model_spec(workload, arch)
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
    title, columns, rows = comparison_table(results, op, workload, preempt)
    print_rows(out, columns, rows, right=[False] + [True] * (len(columns) - 1), title=title)


@dataclass
class _Run:
    """A run of the store as calibrate and replay need it."""

    run_id: str
    arch: Optional[str]
    patch: str
    label: Optional[str]
    meta: Optional[str]
    spans: Any


def _run(store: Optional[Path], run: Optional[list[str]] | str, patch: Optional[str] = None,
         label: Optional[str] = None) -> _Run:
    """The runs whose ids are given (or start with them), or every run of ``patch`` and
    ``label`` (a side's boots), with their spans pooled (a LazyFrame).  Several runs must be
    of one arch and one capture workload: their meta is the first's."""
    import polars as pl

    from tracekit.cli import die
    from tracekit.store import open_store

    try:
        st = open_store(store, create=False)
        runs = st.runs().select("run_id", "arch", "patch", "label", "partition", "meta").collect()
    except Exception as e:  # noqa: BLE001 - an unreadable store is a user error here
        raise die(f"cannot read the store: {e}")
    wanted = [run] if isinstance(run, str) else list(run or [])
    if not wanted and not (patch and label):
        raise die("give --run (one or more), or --patch and --label (every run of that side)")
    picked = []
    for w in wanted:
        hit = runs.filter(pl.col("run_id").str.starts_with(w))
        if hit.height != 1:
            raise die(f"run {w!r}: {'no such run' if hit.height == 0 else 'ambiguous prefix'} in the store (see tracekit runs)")
        picked.append(hit)
    if not wanted:
        side = runs.filter((pl.col("patch") == patch) & (pl.col("label") == label))
        if not side.height:
            raise die(f"no runs of patch {patch!r} label {label!r} in the store (see tracekit runs)")
        picked.append(side)
    hit = pl.concat(picked).unique("run_id", maintain_order=True)
    row = hit.row(0, named=True)
    arches = {a for a in hit["arch"].to_list() if a not in (None, "", "unknown")}
    if len(arches) > 1:
        raise die(f"the runs are of several arches ({', '.join(sorted(arches))}): calibrate one arch at a time")
    arch = next(iter(arches), None)
    run_patch = (row["partition"] or {}).get("patch") or row["patch"] or "none"
    ids = hit["run_id"].to_list()
    run_id = ids[0] if len(ids) == 1 else ",".join(i[:8] for i in ids)
    return _Run(run_id, arch, run_patch, row["label"], row["meta"], st.spans().filter(pl.col("run_id").is_in(ids)))


def _need_arch(arch: Optional[str], run_arch: Optional[str]) -> str:
    from tracekit.cli import die

    if not (arch or run_arch):
        raise die("the run does not say its arch: give --arch")
    return arch or run_arch  # type: ignore[return-value]


def _capture_arch(meta: Optional[str]) -> Optional[str]:
    """The arch a tracekit capture recorded in runs.meta, if any."""
    try:
        cap = json.loads(meta or "{}").get("capture")
    except (ValueError, AttributeError):
        return None
    return cap.get("arch") if isinstance(cap, dict) and isinstance(cap.get("arch"), str) else None


def _resolve(r: _Run, arch: Optional[str], workload: Optional[str], preempt: Optional[bool]):
    """(model arch, workload SPEC, preempt, exit selection, captured workload or None): the
    options given, else what the run's capture recorded, else preempt on.  A captured run's
    children's exits are the ones fitted even when --workload restates their VMAs."""
    from tracekit.cli import die
    from tracekit.model import get_arch
    from tracekit.model.calibrate import ExitSelection
    from tracekit.model.captured import captured_workload, is_pgtfree_spec

    model_arch = _need_arch(arch, r.arch or _capture_arch(r.meta))
    try:
        get_arch(model_arch)
    except ValueError as e:
        raise die(f"{e}: give --arch with the model arch closest to the run's {model_arch}")
    try:
        cw = captured_workload(r.meta, model_arch)
    except ValueError as e:
        if workload is None:
            raise die(f"run {r.run_id[:8]}: {e}")
        cw = None
    if workload is not None:
        if preempt is None:
            preempt = True if cw is None or cw.preempt is None else cw.preempt
        if is_pgtfree_spec(workload):
            try:
                given = captured_workload({"capture": {"workload": workload}}, model_arch)
            except ValueError as e:
                raise die(f"--workload {workload!r}: {e}")
            return model_arch, given.spec, preempt, ExitSelection(given.comm, given.exits), None
        return model_arch, workload, preempt, ExitSelection(cw.comm, cw.exits) if cw else None, None
    if preempt is None:
        preempt = True if cw.preempt is None else cw.preempt
    return model_arch, cw.spec, preempt, ExitSelection(cw.comm, cw.exits), cw


def _say_captured(cw) -> None:
    from tracekit.cli import err

    if cw is None:
        return
    err.print(f"workload from the capture: {cw.spec}", markup=False)
    for n in cw.notes:
        err.print(f"  {n}", markup=False)
    for w in cw.warnings:
        err.print(f"  warning: {w}", markup=False)


def calibrate_cmd(
    run: Annotated[Optional[list[str]], typer.Option("--run", help="Run id (or a unique prefix) whose spans to fit; repeat for several boots.", show_default=False)] = None,
    patch: Annotated[Optional[str], typer.Option("--patch", help="With --label: fit every run of this patch and side (all its boots).", show_default=False)] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="The side whose runs to fit (with --patch), e.g. before.", show_default=False)] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Spans to fit: kprobe or function_graph (default: kprobe when the runs have them; function_graph's own overhead is estimated and subtracted).", show_default=False)] = None,
    workload: Annotated[Optional[str], typer.Option("--workload", help="The measured process's VMAs (see tracekit model --help) or its capture workload (pgtfree:forks=N,mb=M,sparse=G,loops=L); default: from the run's tracekit capture metadata.", show_default=False)] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Also write the cost profile alone to this file (JSON), for --costs.", show_default=False)] = None,
    store: Annotated[Optional[Path], typer.Option("--store", help="Store directory (default: $TRACEKIT_STORE, else ./tracekit-store).", show_default=False)] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Model arch (default: the run's).", show_default=False)] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="The strategy of the measured kernel.")] = "modern",
    preempt: Annotated[Optional[bool], typer.Option("--preempt/--no-preempt", help="CONFIG_PREEMPT of the measured kernel (default: the capture's preempt mode, else --preempt).", show_default=False)] = None,
    before: Annotated[Optional[str], typer.Option("--before", help="Strategy the report predicts for the patch's before side (default: --strategy).", show_default=False)] = None,
    after: Annotated[Optional[str], typer.Option("--after", help="Strategy the report predicts for the after side (default: --strategy).", show_default=False)] = None,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Store the profile as the report profile of the run's patch and arch: <store>/model/<patch>/<arch>.json.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the fit as JSON.")] = False,
) -> None:
    """Fit a cost profile to a measured run: the model of the measured kernel on the run's
    workload is scaled, per cost group (zap, pgtables, free), to the run's mean
    unmap_vmas, free_pgtables and tlb_finish_mmu time per exit_mmap.

    The workload is --workload, else the one the run's tracekit capture recorded (its
    pgtfree children and their mm figures; only their exit_mmap calls are fitted).  The
    profile, with the --before and --after strategies, goes into the store, where
    tracekit report finds it and prints the model's prediction beside the measurement.

    Example:

        tracekit calibrate --run 5e1c0a77 --before v2622 --after modern

        tracekit calibrate --run 2b6101f6 --workload anon:256MiB,anon:64GiB:density=0.001953125 --out costs.json

    Exit status: 0, or 2 when the run, its workload or the store cannot be used.
    """
    from tracekit.cli import die, out
    from tracekit.model import STRATEGIES
    from tracekit.model.calibrate import calibrate
    from tracekit.model.report import save_store_profile

    for name, s in (("--strategy", strategy), ("--before", before), ("--after", after)):
        if s is not None and s not in STRATEGIES:
            raise die(f"{name} {s!r}: unknown strategy; known: {', '.join(STRATEGIES)}")
    r = _run(store, run, patch, label)
    model_arch, spec, pre, select, cw = _resolve(r, arch, workload, preempt)
    if not json_out:
        _say_captured(cw)
    saved = None
    try:
        cal = calibrate(r.spans, arch=model_arch, workload=spec, strategy=strategy, preempt=pre, select=select,
                        source=source)
        if out_file is not None:
            out_file.write_text(json.dumps(cal.profile.to_dict(), indent=1) + "\n")
        if save:
            from tracekit.store import default_store_path

            entry = {
                "before": before or strategy, "after": after or strategy, "preempt": pre, "workload": spec,
                "model_arch": model_arch, "op": "exit_mmap", "costs": cal.profile.to_dict(),
                "workload_from": "--workload" if cw is None else f"capture {cw.source}",
                "calibrated_from": {"run_id": r.run_id, "label": r.label, "strategy": strategy,
                                    **{k: v for k, v in cal.as_dict().items() if k != "costs"}},
            }
            saved = save_store_profile(store if store is not None else default_store_path(), r.patch,
                                       r.arch or model_arch, entry)
    except (ValueError, OSError) as e:
        raise die(str(e))
    predicted = _predicted_windows(model_arch, before or strategy, after or strategy, pre, spec, cal.profile)
    if json_out:
        d = cal.as_dict()
        d.update({"arch": model_arch, "workload": spec, "preempt": pre, "saved": str(saved) if saved else None,
                  "captured": cw.as_dict() if cw else None, "predicted_windows": predicted})
        out.print(json.dumps(d, indent=2), markup=False)
        return
    from tracekit.cli import err
    from tracekit.model.table import fmt_ns

    for n in cal.notes:
        err.print(f"  {n}", markup=False)
    for f, m in cal.measured_ns.items():
        out.print(f"{f:<16} measured {fmt_ns(int(m)):>10}  fitted {fmt_ns(int(cal.fitted_ns[f])):>10}", markup=False)
    wrote = [str(p) for p in (out_file, saved) if p is not None]
    out.print("scales: " + ", ".join(f"{g} x{s:.3g}" for g, s in cal.scales.items())
              + f" ({cal.exits} exit_mmap calls)" + (f"; wrote {', '.join(wrote)}" if wrote else ""), markup=False)
    kind = "preempt-off window" if pre else "resched gap"
    for side in ("before", "after"):
        p = predicted[side]
        out.print(f"predicted worst {kind}, {side} ({p['strategy']}): {fmt_ns(p['worst_ns'])}"
                  f" ending in {p['ended_in']}, {p['pagetable_pages_freed']:,} page-table pages freed in it",
                  markup=False)
    for w in cal.warnings:
        err.print(f"warning: {w}", markup=False)
    if saved and (before or strategy) == (after or strategy):
        out.print(f"note: before and after are both {before or strategy}: the report will predict no change "
                  "(give --before and --after)", markup=False)


def _predicted_windows(arch: str, before: str, after: str, preempt: bool, workload: str, costs) -> dict:
    """The worst window of one exit under the before and after strategies with ``costs``."""
    from tracekit.model import simulate
    from tracekit.model.report import window_of

    out = {}
    for side, strategy in (("before", before), ("after", after)):
        out[side] = {"strategy": strategy, **window_of(simulate(arch, strategy, preempt=preempt, workload=workload,
                                                                 costs=costs))}
    return out


def replay_cmd(
    run: Annotated[Optional[list[str]], typer.Option("--run", help="Run id (or a unique prefix) to replay; repeat for several boots.", show_default=False)] = None,
    strategy: Annotated[Optional[str], typer.Option("--strategy", help="Strategy to replay the run's workload under.", show_default=False)] = None,
    patch: Annotated[Optional[str], typer.Option("--patch", help="With --label: replay every run of this patch and side.", show_default=False)] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="The side whose runs to replay (with --patch).", show_default=False)] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Spans measured: kprobe or function_graph (default: kprobe when present).", show_default=False)] = None,
    workload: Annotated[Optional[str], typer.Option("--workload", help="The measured process's VMAs (see tracekit model --help) or its capture workload (pgtfree:forks=N,mb=M,sparse=G,loops=L); default: from the run's tracekit capture metadata.", show_default=False)] = None,
    store: Annotated[Optional[Path], typer.Option("--store", help="Store directory (default: $TRACEKIT_STORE, else ./tracekit-store).", show_default=False)] = None,
    costs: Annotated[Optional[Path], typer.Option("--costs", help="Cost profile (default: fitted to the run now).", show_default=False)] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Model arch (default: the run's).", show_default=False)] = None,
    measured_strategy: Annotated[str, typer.Option("--measured-strategy", help="The strategy of the measured kernel.")] = "modern",
    preempt: Annotated[Optional[bool], typer.Option("--preempt/--no-preempt", help="CONFIG_PREEMPT of the measured kernel (default: the capture's preempt mode, else --preempt).", show_default=False)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Replay a measured run's workload under another strategy: the measured mean time per
    exit_mmap of the teardown functions, the model of the measured kernel, and the model
    of STRATEGY with the same costs; flushes and the worst preempt-off window of both.
    The workload is --workload, else the one the run's tracekit capture recorded.

    Example:

        tracekit replay --run 5e1c0a77 --strategy v2622

        tracekit replay --run 2b6101f6 --strategy v2622 --workload anon:256MiB,anon:64GiB:density=0.001953125

    Exit status: 0, or 2 when the run, its workload or the store cannot be used.
    """
    from tracekit.cli import die, out
    from tracekit.model import load_costs
    from tracekit.model.calibrate import replay
    from tracekit.model.table import replay_table
    from tracekit.tables import print_rows

    if strategy is None:
        raise die("give --strategy: the strategy to replay the run's workload under")
    r = _run(store, run, patch, label)
    model_arch, spec, pre, select, cw = _resolve(r, arch, workload, preempt)
    if not json_out:
        _say_captured(cw)
    try:
        profile = load_costs(costs) if costs else None
        rp = replay(r.spans, arch=model_arch, workload=spec, strategy=strategy,
                    measured_strategy=measured_strategy, preempt=pre, profile=profile, select=select,
                    source=source)
    except ValueError as e:
        raise die(str(e))
    if json_out:
        rp["captured"] = cw.as_dict() if cw else None
        out.print(json.dumps(rp, indent=2), markup=False)
        return
    title, columns, rows = replay_table(rp, spec, measured_strategy, strategy, pre)
    print_rows(out, columns, rows, right=[False, True, True, True], title=title)


def register(app: typer.Typer) -> None:
    """Add the ``model``, ``calibrate`` and ``replay`` commands to the tracekit CLI."""
    app.command(name="model")(model)
    app.command(name="calibrate")(calibrate_cmd)
    app.command(name="replay")(replay_cmd)
