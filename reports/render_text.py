"""report.txt: the comparison as plain ASCII, at most 72 columns, no tabs, ready to paste
into a reply on the list.

Layout: a header (patch subject, author, date, ``Link:``, files and functions touched;
kernels, arches, runs and trace files of each side), then per arch a table of the call
latencies (n, median, p90, p99, p99.9, max of each side), a table of the changes with their
intervals and p-values (``~`` where the change is not significant, as benchstat prints it),
one verdict line per function, the worst latency windows and the event counts per run, and
last a short note on the method.
"""

from __future__ import annotations

from tracekit.reports import fmt
from tracekit.reports import stats as _stats
from tracekit.reports.compare import ArchGroup, Comparison

__all__ = ["render_text", "summary_sentences", "WIDTH"]

WIDTH = 72


def _field(name: str, value: str) -> list[str]:
    return fmt.wrap(value, WIDTH, indent=" " * 11, first=f"{name + ':':<11}")


def _header(c: Comparison) -> list[str]:
    lines = [f"tracekit report: patch {fmt.ascii_text(c.patch)}, "
             f"{fmt.ascii_text(c.before_label)} vs {fmt.ascii_text(c.after_label)}"]
    lines = fmt.wrap(lines[0], WIDTH)
    lines.append("")
    p = c.patch_info
    if p is not None:
        lines += _field("Subject", p.full_subject)
        if p.author:
            lines += _field("Author", p.author)
        if p.date:
            lines += _field("Date", p.date)
        if p.messages > 1:
            lines += _field("Series", f"{p.messages} messages")
        if p.files:
            lines += _field("Files", ", ".join(p.files))
        if p.functions:
            lines += _field("Touches", ", ".join(p.functions))
        if p.link:
            # Never wrapped: a Link: line is useful only whole.
            lines.append(f"Link: {fmt.ascii_text(p.link)}")
        lines.append("")
    kb = sorted({k for g in c.groups for k in g.kernels("before")})
    ka = sorted({k for g in c.groups for k in g.kernels("after")})
    lines += _field("Kernels", f"{c.before_label}: {', '.join(kb) or 'unknown'}; "
                               f"{c.after_label}: {', '.join(ka) or 'unknown'}")
    lines += _field("Arches", ", ".join(g.key for g in c.groups))
    lines += _field("Runs", "; ".join(
        f"{g.key}: {len(g.runs_before)} {c.before_label}, {len(g.runs_after)} {c.after_label}"
        for g in c.groups))
    for g in c.groups:
        for side, label in (("before", c.before_label), ("after", c.after_label)):
            src = g.sources(side)
            if src:
                tag = f"{label} ({g.key})" if len(c.groups) > 1 else label
                lines += _field("Traces", f"{tag}: {'; '.join(src)}")
    lines += _field("Functions", f"{', '.join(c.functions_requested)} "
                                 f"({c.functions_from}; shown where traced)")
    if c.functions_missing:
        lines += _field("Missing", "not in the data: " + ", ".join(c.functions_missing))
    return lines


def _latency_table(g: ArchGroup, c: Comparison) -> list[str]:
    head = f"{'call latency':<16}{'n':>6}{'median':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>9}"
    lines = [head, "-" * len(head)]
    for f in g.functions:
        lines.append(fmt.ascii_text(f.function)[:WIDTH])
        for label, s in ((c.before_label, f.before), (c.after_label, f.after)):
            name = "  " + fmt.ascii_text(label)[:13]
            if s.n == 0:
                lines.append(f"{name:<16}{0:>6}{'no calls':>9}")
                continue
            lines.append(
                f"{name:<16}{s.n:>6}{fmt.ns(s.median_ns):>9}{fmt.ns(s.p90_ns):>9}"
                f"{fmt.ns(s.p99_ns):>9}{fmt.ns(s.p999_ns):>9}{fmt.ns(s.max_ns):>9}"
            )
    return lines


def _change_table(g: ArchGroup) -> list[str]:
    head = f"{'change':<20}{'median':>8} {'(95% CI)':<13}{'p99':>8} {'(95% CI)':<13}{'p':>7}"
    lines = [head, "-" * len(head)]
    for f in g.functions:
        ch = f.change
        name = fmt.ascii_text(f.function)
        if len(name) > 19:
            lines.append(name[:WIDTH])
            name = ""
        if ch.verdict == _stats.TOO_FEW:
            lines.append(f"{name:<20}{'too few samples':>21}")
            continue
        med = fmt.pct(ch.median_pct) if ch.significant else "~"
        lines.append(
            f"{name:<20}{med:>8} {fmt.ci(ch.median_ci):<13}{fmt.pct(ch.p99_pct):>8} "
            f"{fmt.ci(ch.p99_ci):<13}{fmt.pval(ch.p_value):>7}"
        )
    return lines


def _verdicts(g: ArchGroup, c: Comparison) -> list[str]:
    lines = []
    for f in g.functions:
        ch = f.change
        n = f"n={f.before.n}+{f.after.n}"
        if ch.verdict == _stats.TOO_FEW:
            text = (f"too few samples ({c.before_label} {f.before.n}, {c.after_label} "
                    f"{f.after.n}; {_stats.MIN_SAMPLES} needed on each side)")
        elif ch.significant:
            text = (f"{ch.verdict}: median {fmt.pct(ch.median_pct)} "
                    f"{fmt.ci(ch.median_ci)}, p99 {fmt.pct(ch.p99_pct)} "
                    f"({fmt.p_eq(ch.p_value)}, {n})")
        else:
            text = (f"~ no significant change: median {fmt.pct(ch.median_pct)} "
                    f"({fmt.p_eq(ch.p_value)}, {n})")
        lines += fmt.wrap(text, WIDTH, indent=" " * 4, first=f"  {fmt.ascii_text(f.function)}: ")
    return lines


def _windows(g: ArchGroup, c: Comparison) -> list[str]:
    lines = []
    for w in g.windows:
        lines.append(f"  {fmt.ascii_text(w.tracer)}:")
        for label, s in ((c.before_label, w.before), (c.after_label, w.after)):
            if s is None:
                lines.append(f"    {fmt.ascii_text(label)}: no windows")
                continue
            who = f"{s.comm}-{s.pid}" if s.comm else "?"
            text = (f"worst {fmt.ns(s.worst_latency_ns)} in {who}, started at "
                    f"{s.started_at or '?'}, ended at {s.ended_at or '?'} "
                    f"({s.run_name}; worst of {len(s.latencies_ns)} in {s.runs} runs: "
                    f"{', '.join(fmt.ns(x) for x in s.latencies_ns[:6])}"
                    f"{', ...' if len(s.latencies_ns) > 6 else ''})")
            lines += fmt.wrap(text, WIDTH, indent=" " * 6, first=f"    {fmt.ascii_text(label)}: ")
        if w.change_pct is not None:
            lines.append(f"    change of the worst window: {fmt.pct(w.change_pct)}")
        ch = w.change
        if ch is not None and w.before is not None and w.after is not None:
            nb, na = len(w.before.latencies_ns), len(w.after.latencies_ns)
            if ch.verdict == _stats.TOO_FEW:
                text = (f"all windows: median {fmt.pct(ch.median_pct)}, {nb} vs {na} windows, "
                        f"too few for a verdict ({_stats.MIN_SAMPLES} a side needed)")
            else:
                tag = ch.verdict if ch.significant else "~ no significant change"
                text = (f"all windows: {tag}, median {fmt.pct(ch.median_pct)} {fmt.ci(ch.median_ci)} "
                        f"({fmt.p_eq(ch.p_value)}, n={nb}+{na})")
            lines += fmt.wrap(text, WIDTH, indent=" " * 6, first="    ")
    return lines


def _events(g: ArchGroup, c: Comparison) -> list[str]:
    lines = [f"  {'count per run: mean (runs)':<40}{c.before_label[:14]:>15}{c.after_label[:14]:>15}"]
    for e in g.events:
        def cell(v: list[int]) -> str:
            return f"{_mean_text(v)} ({len(v)})" if v else "-"

        name = fmt.ascii_text(e.name)
        if len(name) > 38:
            lines.append(f"  {name}"[:WIDTH])
            name = ""
        lines.append(f"  {name:<38}{cell(e.before):>16}{cell(e.after):>16}")
    return lines


def _mean_text(v: list[int]) -> str:
    m = sum(v) / len(v)
    return f"{m:.0f}" if m >= 100 else f"{m:.1f}"


def _prediction(g: ArchGroup) -> list[str]:
    p = g.prediction or {}
    lines = fmt.wrap(f"Model prediction ({p.get('model', 'tracekit.model')}): {p.get('note', '')}", WIDTH, indent="  ")
    measured = {f.function: f.change.median_pct for f in g.functions}
    for row in p.get("rows", []):
        pc = _stats.percent_change(row.get("before_ns"), row.get("after_ns"))
        lines.append(
            f"  {fmt.ascii_text(row.get('function', '?'))[:30]:<30} predicted {fmt.pct(pc):>8}"
            f"  measured {fmt.pct(measured.get(row.get('function'))):>8}"
        )
    lines += _predicted_windows(p)
    return lines


def _predicted_windows(p: dict) -> list[str]:
    """Each side's predicted worst window beside the measured one (median of the boots'
    worst windows) and the error in percent."""
    lines = []
    for tracer, sides in (p.get("windows") or {}).items():
        if not isinstance(sides, dict):
            continue
        for side, w in sides.items():
            measured = w.get("measured_worst_ns")
            got = (f"measured {fmt.ns(measured)} (median of {w.get('boots', 0)} boot(s)' worst), "
                   f"error {fmt.pct(w.get('error_pct'))}") if measured else "not measured"
            text = (f"predicted {fmt.ns(w.get('worst_ns'))} ({fmt.ascii_text(w.get('strategy', '?'))}, ends in "
                    f"{fmt.ascii_text(w.get('ended_in') or '?')}), {got}")
            lines += fmt.wrap(text, WIDTH, indent=" " * 4, first=f"  worst {fmt.ascii_text(tracer)} {side}: ")
    return lines


def _group(g: ArchGroup, c: Comparison) -> list[str]:
    title = (f"{g.key}: {len(g.runs_before)} {c.before_label} run(s) vs "
             f"{len(g.runs_after)} {c.after_label} run(s)")
    lines = fmt.wrap(title, WIDTH)
    lines.append("=" * min(WIDTH, max(len(x) for x in lines)))
    if g.config_note:
        lines += fmt.wrap(g.config_note, WIDTH)
    if g.functions:
        rb = max(f.runs_before for f in g.functions)
        ra = max(f.runs_after for f in g.functions)
        if (rb, ra) != (len(g.runs_before), len(g.runs_after)):
            lines.append("")
            lines += fmt.wrap(f"Calls come from the {rb} {c.before_label} and {ra} {c.after_label} "
                              "run(s) that traced them (pooled).", WIDTH)
        by_source: dict[str, list[str]] = {}
        for f in g.functions:
            if f.source:
                by_source.setdefault(f.source, []).append(f.function)
        if by_source:
            lines += fmt.wrap("Tracer per function (never pooled across tracers): " + "; ".join(
                f"{src} ({', '.join(fs)})" if len(by_source) > 1 else src for src, fs in by_source.items()
            ) + ".", WIDTH)
        lines.append("")
        lines += _latency_table(g, c)
        lines.append("")
        lines += _change_table(g)
        lines.append("")
        lines.append("Verdicts:")
        lines += _verdicts(g, c)
    else:
        lines += ["", "No calls of the functions of interest were traced."]
    if g.windows:
        lines += ["", "Worst latency windows:"]
        lines += _windows(g, c)
    if g.events:
        lines += ["", "Events:"]
        lines += _events(g, c)
    if g.prediction:
        lines.append("")
        lines += _prediction(g)
    return lines


def summary_sentences(c: Comparison) -> list[str]:
    """One sentence per group: the verdicts counted, and the worst windows' change."""
    out = []
    for g in c.groups:
        counts = {}
        for f in g.functions:
            counts[f.verdict] = counts.get(f.verdict, 0) + 1
        plural = {_stats.REGRESSION: "regressions", _stats.IMPROVEMENT: "improvements"}
        order = (_stats.REGRESSION, _stats.IMPROVEMENT, _stats.NO_CHANGE, _stats.TOO_FEW)
        parts = [f"{counts[v]} {plural.get(v, v) if counts[v] > 1 else v}" for v in order if counts.get(v)]
        text = f"{g.key}: " + (", ".join(parts) if parts else "no function of interest traced")
        for w in g.windows:
            if w.change_pct is not None:
                text += (f"; worst {w.tracer} window {fmt.ns(w.before.worst_latency_ns)} -> "
                         f"{fmt.ns(w.after.worst_latency_ns)} ({fmt.pct(w.change_pct)})")
        out.append(text + ".")
    return out


def _summary(c: Comparison) -> list[str]:
    lines = ["Summary:"]
    for s in summary_sentences(c):
        lines += fmt.wrap(s, WIDTH, indent="  ", first="  ")
    return lines


def render_text(c: Comparison) -> str:
    """The whole report.txt."""
    lines = _header(c)
    lines.append("")
    lines += _summary(c)
    for g in c.groups:
        lines.append("")
        lines += _group(g, c)
    lines.append("")
    lines += fmt.wrap(fmt.METHOD_NOTE, WIDTH)
    out = []
    for ln in (x for block in lines for x in fmt.ascii_text(block).split("\n")):
        ln = ln.rstrip()
        # Last guard: nothing from a trace may widen the text beyond the limit.
        out += [ln] if len(ln) <= WIDTH else fmt.wrap(ln, WIDTH, indent="    ")
    return "\n".join(out) + "\n"
