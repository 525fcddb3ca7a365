"""report.md: the comparison as Markdown (for a web page, a wiki or a pull request), with
every statistic including mean and standard deviation, and links to the plots.

Strings from traces and patches are escaped for Markdown tables and for the HTML that
Markdown renderers pass through (``<script>`` shows as text)."""

from __future__ import annotations

from pathlib import Path

from tracekit.reports import fmt
from tracekit.reports import stats as _stats
from tracekit.reports import words
from tracekit.reports.compare import ArchGroup, Comparison
from tracekit.reports.render_text import by_function

__all__ = ["render_md", "md_escape"]


def md_escape(s: object) -> str:
    """Text safe inside a Markdown table cell: HTML special characters as entities,
    Markdown emphasis / table / link characters backslash-escaped, no line breaks."""
    t = str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|#":
        t = t.replace(ch, "\\" + ch)
    return " ".join(t.split())


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _group(g: ArchGroup, c: Comparison, plots: dict[str, dict[str, Path]], out_dir: Path | None) -> list[str]:
    e = md_escape
    lines = [f"## {e(g.key)}", ""]
    lines.append("Units: " + ", ".join(
        f"{e(words.units_text(g, s))} {e(s)} ({e(', '.join(g.kernels(s)) or 'kernel unknown')})" for s in g.side_names) + ".")
    for side in g.side_names:
        if g.sources(side):
            lines.append(f"Traces {e(side)}: {e('; '.join(g.sources(side)))}.")
    if g.config_note:
        lines.append(f"Note: {e(g.config_note)}.")
    lines.append("")
    if g.functions:
        lines.append("### Call latency")
        lines.append("")
        lines.append(_row(["function", "side", "units", "calls", "median", "p90", "p99", "p99.9", "max", "mean", "stddev"]))
        lines.append(_row(["---"] * 2 + ["---:"] * 9))
        for func, rows in by_function(g).items():
            sides = [(g.side_names[0], rows[0].before, rows[0].change.units_before)]
            sides += [(f.against, f.after, f.change.units_after) for f in rows]
            for i, (label, s, units) in enumerate(sides):
                lines.append(_row([
                    e(func) if i == 0 else "",
                    e(label), str(units), str(s.n), fmt.ns(s.median_ns), fmt.ns(s.p90_ns), fmt.ns(s.p99_ns),
                    fmt.ns(s.p999_ns), fmt.ns(s.max_ns), fmt.ns(s.mean_ns), fmt.ns(s.stddev_ns),
                ]))
        lines += ["", "### Change (of the median over units of the unit medians)", ""]
        lines.append(_row(["function", "side", "median", "95% CI", "p99", "95% CI", "p (Holm)", "verdict"]))
        lines.append(_row(["---"] * 2 + ["---:"] * 5 + ["---"]))
        for f in g.functions:
            ch = f.change
            med = fmt.pct(ch.median_pct) if ch.significant or not ch.has_verdict else f"~ ({fmt.pct(ch.median_pct)})"
            verdict = f"**{ch.verdict}**" if ch.significant else ch.verdict
            lines.append(_row([
                e(f.function), e(f.against), med, fmt.ci(ch.median_ci), fmt.pct(ch.p99_pct),
                fmt.ci(ch.p99_ci), fmt.pval(ch.p_adjusted), verdict,
            ]))
        lines += ["", "Verdicts, and where each number comes from:", ""]
        lines += [f"- {e(f.function)} ({e(f.against)}): {e(words.verdict_text(f, g, c))}" for f in g.functions]
        short = [f for f in g.functions if not f.change.has_verdict]
        if short:
            word = words.unit_word(g.runs[g.side_names[0]] + g.runs[short[0].against], 2)[:-1]
            lines.append(f"- {e(words.need_text(short[0].change, word))}")
        lines += [f"- tracer of {e(rows[0].function)}: {e(words.source_text(rows[0]))}" for rows in by_function(g).values()]
        lines.append("")
    if g.windows:
        lines += ["### Worst latency windows", ""]
        lines.append(_row(["tracer", "side", "worst", "task", "started at", "ended at", "run", "all windows"]))
        lines.append(_row(["---"] * 2 + ["---:"] + ["---"] * 5))
        for w in g.windows:
            for label, s in ((c.before_label, w.before), (w.against, w.after)):
                if s is None:
                    lines.append(_row([e(w.tracer), e(label), "-", "", "", "", "", "none"]))
                    continue
                lines.append(_row([
                    e(w.tracer), e(label), fmt.ns(s.worst_latency_ns), e(f"{s.comm}-{s.pid}"),
                    e(s.started_at or "?"), e(s.ended_at or "?"), e(s.run_name),
                    e(", ".join(fmt.ns(x) for x in s.latencies_ns)),
                ]))
            if w.change is not None:
                lines.append(_row([e(w.tracer), "change", fmt.pct(w.change_pct), "", "", "", "", e(words.window_text(w, g))]))
        lines.append("")
    if g.events:
        lines += ["### Events per run", ""]
        lines.append(_row(["event", f"{e(c.before_label)} (per run)", f"{e(c.after_label)} (per run)"]))
        lines.append(_row(["---", "---:", "---:"]))
        for ev in g.events:
            lines.append(_row([e(ev.name), e(", ".join(map(str, ev.before)) or "-"), e(", ".join(map(str, ev.after)) or "-")]))
        lines.append("")
    if g.prediction:
        p = g.prediction
        lines += [f"### Model prediction ({e(p.get('model', 'tracekit.model'))})", "", e(p.get("note", "")), ""]
        measured = {f.function: f.change.median_pct for f in g.functions}
        lines.append(_row(["function", "predicted change", "measured median change"]))
        lines.append(_row(["---", "---:", "---:"]))
        for row in p.get("rows", []):
            pc = _stats.percent_change(row.get("before_ns"), row.get("after_ns"))
            lines.append(_row([e(row.get("function", "?")), fmt.pct(pc), fmt.pct(measured.get(row.get("function")))]))
        lines.append("")
        lines += _predicted_windows(p)
    if plots:
        lines += ["### Plots", ""]
        for key, files in plots.items():
            png = files.get("png")
            if png is None:
                continue
            rel = Path(png).relative_to(out_dir) if out_dir and Path(png).is_relative_to(out_dir) else Path(png)
            lines.append(f"![{e(key)}]({rel.as_posix()})")
            lines.append("")
    return lines


def render_md(c: Comparison, plots: dict[str, dict[str, dict[str, Path]]] | None = None, out_dir: Path | None = None) -> str:
    """The whole report.md; ``plots`` as returned by :func:`tracekit.reports.plots.make_plots`
    (linked relative to ``out_dir``)."""
    e = md_escape
    lines = [f"# tracekit report: {e(c.patch)}, {' vs '.join(e(s.name) for s in c.sides)}", ""]
    p = c.patch_info
    if p is not None:
        lines.append(f"**{e(p.full_subject)}**  ")
        if p.author:
            lines.append(f"Author: {e(p.author)}  ")
        if p.date:
            lines.append(f"Date: {e(p.date)}  ")
        if p.files:
            lines.append(f"Files: {e(', '.join(p.files))}  ")
        if p.functions:
            lines.append(f"Touches: {e(', '.join(p.functions))}  ")
        if p.link:
            lines.append(f"Link: <{p.link.replace('>', '%3E').replace('<', '%3C')}>")
        lines.append("")
    from tracekit.reports.render_text import summary_sentences

    lines += ["Summary:", ""] + [f"- {e(s)}" for s in summary_sentences(c)] + [""]
    lines.append(f"Functions ({e(c.functions_from)}; shown where traced): {e(', '.join(c.functions_requested))}.")
    if c.functions_missing:
        lines.append(f"Not in the data: {e(', '.join(c.functions_missing))}.")
    lines.append("")
    for g in c.groups:
        lines += _group(g, c, (plots or {}).get(g.key, {}), out_dir)
    lines += ["## Method", "", e(words.method_note()), ""]
    return "\n".join(lines)


def _predicted_windows(p: dict) -> list[str]:
    """Each side's predicted worst window beside the measured one (median of the boots'
    worst windows), where the measured ones were, and the error."""
    e = md_escape
    rows = [(tracer, side, w) for tracer, sides in (p.get("windows") or {}).items() if isinstance(sides, dict)
            for side, w in sides.items()]
    if not rows:
        return []
    lines = [_row(["worst window", "predicted", "measured (median of boots)", "error"]), _row(["---", "---", "---", "---:"])]
    for tracer, side, w in rows:
        where = "; ".join(w.get("measured_where") or [])
        got = (f"{fmt.ns(w['measured_worst_ns'])}, {w.get('boots', 0)} boot(s)" + (f", in {where}" if where else "")
               if w.get("measured_worst_ns") else "not measured")
        pred = f"{fmt.ns(w.get('worst_ns'))} ({w.get('strategy', '?')}, ends in {w.get('ended_in') or '?'})"
        lines.append(_row([e(f"{tracer} {side}"), e(pred), e(got), fmt.pct(w.get("error_pct"))]))
    return lines + [""]
