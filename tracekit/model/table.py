"""The replay model's results as tables: rows of (what, value per strategy), the text of
each value with its unit.  ``tracekit model``, ``calibrate`` and ``replay`` print these."""

from __future__ import annotations

from typing import Any

__all__ = ["fmt_ns", "comparison_table", "replay_table"]


def fmt_ns(ns: int) -> str:
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
        (f"  max", each(lambda d: fmt_ns(d["windows"]["max_ns"]))),
        (f"  p50", each(lambda d: fmt_ns(d["windows"]["p50_ns"]))),
        (f"  p99", each(lambda d: fmt_ns(d["windows"]["p99_ns"]))),
        (f"  p99.9", each(lambda d: fmt_ns(d["windows"]["p99.9_ns"]))),
    ]
    if comp_keys:
        rows.append(("worst window holds", ["" for _ in results]))
        for k in comp_keys:
            rows.append((f"  {_SHORT.get(k, k)}", each(lambda d: f"{((d.get('worst_window') or {}).get('composition') or {}).get(k, 0):,}")))
    rows.append(("simulated time", each(lambda d: fmt_ns(d["total_ns"]))))
    for f, label in _TIME_FUNCS.items():
        if any(d["time_by_function_ns"].get(f) for d in results):
            rows.append((f"  {label}", each(lambda d: fmt_ns(d["time_by_function_ns"].get(f, 0)))))
    return rows


#: Functions whose (inclusive) simulated time the table shows, with short labels.
_TIME_FUNCS = {
    "unmap_vmas": "unmap_vmas",
    "zap_pte_range": "zap_pte_range",
    "free_pgtables": "free_pgtables",
    "tlb_flush_mmu": "tlb_flush_mmu",
    "tlb_finish_mmu": "tlb_finish_mmu",
    "free_pages_and_swap_cache": "free_pages_and_swap_cache",
    "anon_vma_unlink": "anon_vma_unlink",
    "unlink_file_vma": "unlink_file_vma",
}
_SHORT = {"pagetable_pages_freed": "pt_pages_freed"}




def comparison_table(results: list[dict[str, Any]], op: str, workload: str, preempt: bool) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows) of ``tracekit model``: one column per strategy simulated."""
    title = f"{results[0]['arch']} {op} {workload}, {'CONFIG_PREEMPT' if preempt else '!CONFIG_PREEMPT'}"
    columns = ["", *(d["strategy"] for d in results)]
    return title, columns, [[name, *values] for name, values in _rows(results)]


def replay_table(rp: dict[str, Any], spec: str, measured_strategy: str, strategy: str,
                 preempt: bool) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows) of ``tracekit replay``: measured, the model of the measured
    kernel's strategy, and the model of ``strategy``, per exit_mmap."""
    title = f"replay of {rp['exits']} exit_mmap calls, {rp['arch']} {spec}"
    columns = ["per exit_mmap", "measured", f"model {measured_strategy}", f"model {strategy}"]
    rows = []
    for row in rp["rows"]:
        m = row["measured_ns"]
        rows.append([row["function"], fmt_ns(int(m)) if m is not None else "-",
                     fmt_ns(row["model_measured_strategy_ns"]), fmt_ns(row["model_strategy_ns"])])
    a, b = rp["model_measured_strategy"], rp["model_strategy"]
    rows.append(["TLB flushes", "", f"{a['tlb_flushes']:,}", f"{b['tlb_flushes']:,}"])
    kind = "max preempt-off" if preempt else "max resched gap"
    rows.append([kind, "", fmt_ns(a["windows"]["max_ns"]), fmt_ns(b["windows"]["max_ns"])])
    return title, columns, rows
