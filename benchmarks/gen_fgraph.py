"""Generate realistic function_graph text for benchmarks.

The output looks like what the kernel prints with funcgraph-abstime, funcgraph-cpu and
funcgraph-proc on: several CPUs whose lines interleave, page-table teardown call trees
(exit_mmap -> unmap_vmas -> unmap_page_range ... free_pgtables -> tlb_finish_mmu) nested up
to ten levels deep, IRQ entry/exit markers with a timer interrupt inside, task-switch blocks,
trace_printk comments and the overhead marks of every size.  It is seeded, so the same
arguments give the same bytes.

Usage: python benchmarks/gen_fgraph.py OUT.txt --mib 200 [--seed 1] [--cpus 4] [--no-proc]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

# One "episode" per task: a process exit tearing down its page tables, written as
# (depth, kind, function) with kind '{' entry, ';' leaf, '}' exit.
_TEARDOWN = [
    (0, "{", "exit_mmap"),
    (1, ";", "down_read"),
    (1, "{", "lru_add_drain"),
    (2, ";", "lru_add_drain_cpu"),
    (1, "}", "lru_add_drain"),
    (1, ";", "tlb_gather_mmu_fullmm"),
    (1, "{", "unmap_vmas"),
    (2, "{", "unmap_single_vma"),
    (3, "{", "unmap_page_range"),
    (4, "{", "zap_pmd_range.isra.0"),
    (5, "{", "zap_pte_range"),
    (6, "{", "page_remove_rmap"),
    (7, "{", "__mod_lruvec_page_state"),
    (8, "{", "__mod_lruvec_state"),
    (9, ";", "__mod_node_page_state"),
    (9, ";", "__mod_memcg_lruvec_state"),
    (8, "}", "__mod_lruvec_state"),
    (7, "}", "__mod_lruvec_page_state"),
    (6, "}", "page_remove_rmap"),
    (6, ";", "__tlb_remove_page_size"),
    (6, "{", "tlb_flush_mmu"),
    (7, ";", "flush_tlb_mm_range"),
    (7, "{", "free_pages_and_swap_cache"),
    (8, ";", "release_pages"),
    (7, "}", "free_pages_and_swap_cache"),
    (6, "}", "tlb_flush_mmu"),
    (5, "}", "zap_pte_range"),
    (4, "}", "zap_pmd_range.isra.0"),
    (3, "}", "unmap_page_range"),
    (2, "}", "unmap_single_vma"),
    (1, "}", "unmap_vmas"),
    (1, "{", "free_pgtables"),
    (2, ";", "unlink_anon_vmas"),
    (2, ";", "unlink_file_vma"),
    (2, "{", "free_pgd_range"),
    (3, ";", "free_pte_range"),
    (3, ";", "pmd_free_tlb"),
    (2, "}", "free_pgd_range"),
    (1, "}", "free_pgtables"),
    (1, "{", "tlb_finish_mmu"),
    (2, "{", "tlb_flush_mmu"),
    (3, ";", "flush_tlb_mm_range"),
    (3, ";", "free_pages_and_swap_cache"),
    (2, "}", "tlb_flush_mmu"),
    (1, "}", "tlb_finish_mmu"),
    (0, "}", "exit_mmap"),
]
_IRQ = [
    (3, "{", "__sysvec_apic_timer_interrupt"),
    (4, "{", "hrtimer_interrupt"),
    (5, ";", "_raw_spin_lock_irqsave"),
    (5, ";", "ktime_get_update_offsets_now"),
    (4, "}", "hrtimer_interrupt"),
    (3, "}", "__sysvec_apic_timer_interrupt"),
]


def _mark(dur_ns: int) -> str:
    for lim, m in ((1_000_000_000, "$"), (100_000_000, "@"), (10_000_000, "*"), (1_000_000, "#"), (100_000, "!"), (10_000, "+")):
        if dur_ns > lim:
            return m
    return " "


def _dur(dur_ns: int) -> str:
    """The duration column as ``trace_print_graph_duration()`` prints it: ``usecs``, then
    ``.nsecs`` cut to keep seven characters, then `` us `` and spaces up to eight."""
    usecs, nsecs = divmod(dur_ns, 1000)
    s = str(usecs)
    if len(s) < 7:
        frac = f"{nsecs:03d}"[: max(0, 7 - len(s) - 1)]
        s = f"{s}.{frac}" if frac else s
    return f"{s} us " + " " * max(0, 8 - len(s))


def episode_lines(cpu: int, comm: str, pid: int, t0_ns: int, rng: np.random.Generator, proc: bool) -> tuple[list[str], int]:
    """The lines of one teardown episode on ``cpu`` starting at ``t0_ns``."""
    body = list(_TEARDOWN)
    if rng.random() < 0.3:  # a timer interrupt lands inside zap_pte_range
        at = 12
        body[at:at] = [(None, ">", "")] + _IRQ + [(None, "<", "")]
    # durations for leaves, accumulated bottom-up for the nested calls
    n = len(body)
    leaf_ns = rng.integers(300, 40_000, size=n)
    if rng.random() < 0.05:
        leaf_ns[rng.integers(0, n)] *= 500
    t = t0_ns
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    p = f"{comm[:7]}-{pid}"
    proc_col = f" {p:^14} |" if proc else ""
    for depth, kind, func in body:
        ts = f"{t // 1_000_000_000:5d}.{(t // 1000) % 1_000_000:06d} |"
        if kind == ">":
            out.append(f"{ts} {cpu:2d}){proc_col}   ==========> |")
            continue
        if kind == "<":
            out.append(f"{ts} {cpu:2d}){proc_col}   <========== |")
            continue
        ind = "  " * depth
        if kind == "{":
            out.append(f"{ts} {cpu:2d}){proc_col}               |  {ind}{func}() {{")
            stack.append((func, t))
            t += 200
        elif kind == ";":
            d = int(leaf_ns[len(out) % n])
            out.append(f"{ts} {cpu:2d}){proc_col} {_mark(d)} {_dur(d)}|  {ind}{func}();")
            t += d + 150
        else:
            f, start = stack.pop()
            d = t - start
            tail = f" /* {f} */" if rng.random() < 0.1 else ""
            out.append(f"{ts} {cpu:2d}){proc_col} {_mark(d)} {_dur(d)}|  {ind}}}{tail}")
            t += 100
    return out, t


def generate(out, mib: float, seed: int = 1, cpus: int = 4, proc: bool = True) -> int:
    """Write about ``mib`` MiB of function_graph text to the binary stream ``out``."""
    rng = np.random.default_rng(seed)
    target = int(mib * (1 << 20))
    header = (
        "# tracer: function_graph\n#\n"
        "#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS\n"
        "#      |          |     |    |           |   |                     |   |   |   |\n"
    )
    out.write(header.encode())
    written = len(header)
    clocks = [1_000_000_000 * 50 + c * 1000 for c in range(cpus)]
    pids = [1000 + c for c in range(cpus)]
    while written < target:
        block: list[str] = []
        # one episode per CPU, interleaved line by line as a multi-CPU trace buffer merges them
        per_cpu = []
        for c in range(cpus):
            if rng.random() < 0.2:
                new = int(rng.integers(300, 60000))
                per_cpu.append(
                    [" ------------------------------------------",
                     f" {c:2d})  {('pgtfree-' + str(pids[c])):^14} =>  {('pgtfree-' + str(new)):^14}",
                     " ------------------------------------------", ""]
                )
                pids[c] = new
            lines, clocks[c] = episode_lines(c, "pgtfree", pids[c], clocks[c], rng, proc)
            if rng.random() < 0.05:  # a trace_printk() from the workload
                ts = lines[0].split("|", 1)[0]
                p = f" {('pgtfree-' + str(pids[c])):^14} |" if proc else ""
                lines.insert(1, f"{ts}| {c:2d}){p}               |    /* pgtfree: begin */")
            per_cpu.append(lines)
        # interleave: take runs of lines from each CPU in turn
        idx = [0] * len(per_cpu)
        while any(i < len(ls) for i, ls in zip(idx, per_cpu)):
            for k, ls in enumerate(per_cpu):
                if idx[k] < len(ls):
                    step = int(rng.integers(1, 8))
                    block.extend(ls[idx[k] : idx[k] + step])
                    idx[k] += step
        data = ("\n".join(block) + "\n").encode()
        out.write(data)
        written += len(data)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--mib", type=float, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cpus", type=int, default=4)
    ap.add_argument("--no-proc", action="store_true")
    a = ap.parse_args(argv)
    with (sys.stdout.buffer if a.out == "-" else open(a.out, "wb")) as f:
        n = generate(f, a.mib, a.seed, a.cpus, not a.no_proc)
    print(f"wrote {n / (1 << 20):.1f} MiB to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
