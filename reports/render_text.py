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
from tracekit.reports import words
from tracekit.reports.compare import ArchGroup, Comparison, FunctionResult

__all__ = ["render_text", "summary_sentences", "WIDTH"]

WIDTH = 72


def _field(name: str, value: str) -> list[str]:
    return fmt.wrap(value, WIDTH, indent=" " * 11, first=f"{name + ':':<11}")


def _header(c: Comparison) -> list[str]:
    lines = [f"tracekit report: patch {fmt.ascii_text(c.patch)}, "
             + " vs ".join(fmt.ascii_text(s.name) for s in c.sides)]
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
    kern = {s.name: sorted({k for g in c.groups for k in g.kernels(s.name)}) for s in c.sides}
    lines += _field("Kernels", "; ".join(f"{s}: {', '.join(k) or 'unknown'}" for s, k in kern.items()))
    lines += _field("Arches", ", ".join(g.key for g in c.groups))
    lines += _field("Units", "; ".join(
        f"{g.key}: " + ", ".join(f"{words.units_text(g, s)} {s}" for s in g.side_names)
        for g in c.groups))
    for g in c.groups:
        for side in g.side_names:
            src = g.sources(side)
            if src:
                tag = f"{side} ({g.key})" if len(c.groups) > 1 else side
                lines += _field("Traces", f"{tag}: {'; '.join(src)}")
    lines += _field("Functions", f"{', '.join(c.functions_requested)} "
                                 f"({c.functions_from}; shown where traced)")
    if c.under:
        lines += _field("Calls", f"only those made inside {c.under}() (at any depth)")
    if c.functions_missing:
        lines += _field("Missing", "not in the data: " + ", ".join(c.functions_missing))
    return lines


def by_function(g: ArchGroup) -> dict[str, list[FunctionResult]]:
    """The rows of a group per function, one per compared side, in side order."""
    out: dict[str, list[FunctionResult]] = {}
    for f in g.functions:
        out.setdefault(f.function, []).append(f)
    return out


def _latency_table(g: ArchGroup, c: Comparison) -> list[str]:
    head = f"{'call latency':<16}{'units':>6}{'calls':>7}{'median':>9}{'p90':>9}{'p99':>9}{'max':>9}"
    lines = [head, "-" * len(head)]
    for func, rows in by_function(g).items():
        lines.append(fmt.ascii_text(func)[:WIDTH])
        sides = [(g.side_names[0], rows[0].before, rows[0].change.units_before)]
        sides += [(f.against, f.after, f.change.units_after) for f in rows]
        for label, s, units in sides:
            name = "  " + fmt.ascii_text(label)[:13]
            if s.n == 0:
                lines.append(f"{name:<16}{units:>6}{0:>7}{'no calls':>9}")
                continue
            lines.append(
                f"{name:<16}{units:>6}{s.n:>7}{fmt.ns(s.median_ns):>9}{fmt.ns(s.p90_ns):>9}"
                f"{fmt.ns(s.p99_ns):>9}{fmt.ns(s.max_ns):>9}"
            )
    return lines


def _side_table(g: ArchGroup) -> list[str]:
    """Benchstat style: one row per function, one column per side, each compared side
    with its change against the baseline ('~' none significant, '?' no verdict); three
    compared sides to a table, so that it fits the width."""
    word = words.unit_word(sum(g.runs.values(), []), 2)
    lines = fmt.wrap(f"Median over {word} of each one's median, and change against "
                     f"{g.side_names[0]} ('~': no significant change, '?': no verdict):", WIDTH)
    rows = by_function(g)
    others = g.side_names[1:]
    for start in range(0, len(others), 3):
        chunk = others[start:start + 3]
        head = f"{'':<14}{fmt.ascii_text(g.side_names[0])[:8]:>9}" + "".join(f"{fmt.ascii_text(s)[:15]:>16}" for s in chunk)
        lines += ["", head, "-" * len(head)]
        for func, fs in rows.items():
            by = {f.against: f for f in fs}
            line = f"{fmt.ascii_text(func)[:13]:<14}{fmt.ns(fs[0].change.unit_median_before_ns):>9}"
            for side in chunk:
                ch = by[side].change
                mark = "?" if not ch.has_verdict else (fmt.pct(ch.median_pct) if ch.significant else "~")
                line += f"{fmt.ns(ch.unit_median_after_ns):>9}{mark:>7}"
            lines.append(line)
    return lines


def _change_table(g: ArchGroup, against: str) -> list[str]:
    head = f"{'change':<20}{'median':>8} {'(95% CI)':<13}{'p99':>8} {'(95% CI)':<13}{'p':>7}"
    lines = [head, "-" * len(head)]
    for f in (f for f in g.functions if f.against == against):
        ch = f.change
        name = fmt.ascii_text(f.function)
        if len(name) > 19:
            lines.append(name[:WIDTH])
            name = ""
        if ch.verdict == _stats.TOO_FEW:
            lines.append(f"{name:<20}{fmt.pct(ch.median_pct):>8} {'no verdict':<13}{fmt.pct(ch.p99_pct):>8}")
            continue
        med = fmt.pct(ch.median_pct) if ch.significant else "~"
        left = f"{name:<20}{med:>8} {fmt.ci(ch.median_ci):<13}"
        right = f"{fmt.pct(ch.p99_pct):>8} {fmt.ci(ch.p99_ci):<13}{fmt.pval(ch.p_adjusted):>7}"
        if len(left) + len(right) <= WIDTH:
            lines.append(left + right)
        else:  # an interval wider than its column: the p99 and p go on a line of their own
            lines += [left.rstrip(), " " * max(0, min(20 + 8 + 1 + 13, WIDTH - len(right))) + right]
    return lines


def _verdicts(g: ArchGroup, c: Comparison, against: str) -> list[str]:
    lines = []
    rows = [f for f in g.functions if f.against == against]
    for f in rows:
        lines += fmt.wrap(words.verdict_text(f, g, c), WIDTH, indent=" " * 4, first=f"  {fmt.ascii_text(f.function)}: ")
    short = [f for f in rows if not f.change.has_verdict]
    if short:
        word = words.unit_word(g.runs[g.side_names[0]] + g.runs[against], 2)[:-1]
        lines += fmt.wrap(words.need_text(short[0].change, word), WIDTH, indent="  ", first="  ")
    return lines


def _windows(g: ArchGroup, c: Comparison) -> list[str]:
    lines = []
    for tracer in dict.fromkeys(w.tracer for w in g.windows):
        mine = [w for w in g.windows if w.tracer == tracer]
        lines.append(f"  {fmt.ascii_text(tracer)}:")
        sides = [(g.side_names[0], mine[0].before)] + [(w.against, w.after) for w in mine]
        for label, s in sides:
            if s is None:
                lines.append(f"    {fmt.ascii_text(label)}: no windows")
                continue
            who = f"{s.comm}-{s.pid}" if s.comm else "?"
            worst = sorted(s.unit_worst_ns.values(), reverse=True)
            text = (f"worst {fmt.ns(s.worst_latency_ns)} in {who}, started at "
                    f"{s.started_at or '?'}, ended at {s.ended_at or '?'} "
                    f"({s.run_name}); worst of each of {len(worst)} units: "
                    f"{', '.join(fmt.ns(x) for x in worst[:6])}{', ...' if len(worst) > 6 else ''}")
            lines += fmt.wrap(text, WIDTH, indent=" " * 6, first=f"    {fmt.ascii_text(label)}: ")
        for w in mine:
            if w.change is not None:
                tag = f"{w.against} vs {g.side_names[0]}: " if len(mine) > 1 else ""
                lines += fmt.wrap(tag + words.window_text(w, g), WIDTH, indent=" " * 6, first="    ")
    return lines


def _events(g: ArchGroup, c: Comparison) -> list[str]:
    lines = [f"  {'count per run: mean (runs)':<40}{c.before_label[:14]:>15}{c.after_label[:14]:>15}"]
    # (the first compared side; report.json has the counts of every side)
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
            where = "; ".join(fmt.ascii_text(x) for x in w.get("measured_where") or [])
            got = (f"measured {fmt.ns(measured)} (median of {w.get('boots', 0)} boot(s)' worst"
                   + (f", in {where}" if where else "") + f"), error {fmt.pct(w.get('error_pct'))}"
                   ) if measured else "not measured"
            text = (f"predicted {fmt.ns(w.get('worst_ns'))} ({fmt.ascii_text(w.get('strategy', '?'))}, ends in "
                    f"{fmt.ascii_text(w.get('ended_in') or '?')}), {got}")
            lines += fmt.wrap(text, WIDTH, indent=" " * 4, first=f"  worst {fmt.ascii_text(tracer)} {side}: ")
    return lines


def _group(g: ArchGroup, c: Comparison) -> list[str]:
    title = f"{g.key}: " + " vs ".join(f"{words.units_text(g, s)} {s}" for s in g.side_names)
    lines = fmt.wrap(title, WIDTH)
    lines.append("=" * min(WIDTH, max(len(x) for x in lines)))
    if g.config_note:
        lines += fmt.wrap(g.config_note, WIDTH)
    if g.functions:
        lines.append("")
        lines.append("Tracer per function (never pooled across tracers):")
        for rows in by_function(g).values():
            lines += fmt.wrap(words.source_text(rows[0]), WIDTH, indent="    ", first="  ")
        lines.append("")
        if len(g.side_names) > 2:
            lines += _side_table(g) + [""]
        lines += _latency_table(g, c)
        for against in g.side_names[1:]:
            lines.append("")
            if len(g.side_names) > 2:
                lines.append(f"{fmt.ascii_text(against)} against {fmt.ascii_text(g.side_names[0])}:")
            lines += _change_table(g, against)
            lines.append("")
            lines.append("Verdicts:")
            lines += _verdicts(g, c, against)
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


def _count_text(verdict: str, k: int) -> str:
    """``2 regressions``, ``1 function with no significant change``, ..."""
    fn = f"{k} function{'s' if k > 1 else ''}"
    if verdict in (_stats.REGRESSION, _stats.IMPROVEMENT):
        return f"{k} {verdict}{'s' if k > 1 else ''}"
    if verdict == _stats.NO_CHANGE:
        return f"{fn} with no significant change"
    if verdict == _stats.TOO_FEW:
        return f"{fn} without a verdict (too few units)"
    return f"{fn} {verdict}"


def summary_sentences(c: Comparison) -> list[str]:
    """One sentence per group and compared side: the verdicts counted, and the windows'."""
    order = (_stats.REGRESSION, _stats.IMPROVEMENT, _stats.BELOW_THRESHOLD, _stats.NO_CHANGE, _stats.TOO_FEW)
    out = []
    for g in c.groups:
        for against in g.side_names[1:]:
            counts: dict[str, int] = {}
            for f in (f for f in g.functions if f.against == against):
                counts[f.verdict] = counts.get(f.verdict, 0) + 1
            parts = [_count_text(v, counts[v]) for v in order if counts.get(v)]
            tag = f"{g.key}" + (f", {against}" if len(g.side_names) > 2 else "")
            text = f"{tag}: " + (", ".join(parts) if parts else "no function of interest traced")
            for w in (w for w in g.windows if w.against == against and w.change is not None):
                text += (f"; {w.tracer} windows, median of the units' worst "
                         f"{fmt.ns(w.change.unit_median_before_ns)} -> {fmt.ns(w.change.unit_median_after_ns)} "
                         f"({fmt.pct(w.change.median_pct)}): "
                         + ("no verdict (too few units)" if not w.change.has_verdict else w.change.verdict))
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
    lines += fmt.wrap(words.method_note(), WIDTH)
    out = []
    for ln in (x for block in lines for x in fmt.ascii_text(block).split("\n")):
        ln = ln.rstrip()
        # Last guard: nothing from a trace may widen the text beyond the limit.
        out += [ln] if len(ln) <= WIDTH else fmt.wrap(ln, WIDTH, indent="    ")
    return "\n".join(out) + "\n"
