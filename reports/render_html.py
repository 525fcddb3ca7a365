"""report.html: the comparison as one self-contained page (inline CSS, plots embedded as
base64 PNG, no script, nothing fetched from elsewhere), to attach to a mail or put on a
web server.

Every string that came from a trace (function, task, window start/end, file names) or
from a patch (subject, author, Message-ID) is HTML-escaped, so that a hostile subject or
task name such as ``<script>`` is shown, never run.
"""

from __future__ import annotations

import base64
import html
import struct
from pathlib import Path

from tracekit.reports import fmt
from tracekit.reports import stats as _stats
from tracekit.reports import words
from tracekit.reports.compare import ArchGroup, Comparison
from tracekit.reports.render_text import by_function

__all__ = ["render_html"]

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1d1d1f; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .6em; border-bottom: 1px solid #e3e3e3; text-align: right; white-space: nowrap; }
th { background: #f4f4f6; }
td.l, th.l { text-align: left; }
tr.first td { border-top: 1px solid #bbb; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .93em; }
.meta td { text-align: left; border: none; padding: .1em .8em .1em 0; white-space: normal; }
.improvement { color: #11692b; font-weight: 600; }
.regression { color: #b3141b; font-weight: 600; }
.nochange { color: #666; }
.toofew { color: #8a6d00; }
.note { color: #444; max-width: 80ch; }
figure { display: inline-block; margin: .4em .8em .8em 0; }
figure img { width: 900px; max-width: 100%; height: auto; border: 1px solid #ddd; }
figure.flame { display: block; }
figure.flame svg { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
"""

_VERDICT_CLASS = {
    _stats.IMPROVEMENT: "improvement",
    _stats.REGRESSION: "regression",
    _stats.NO_CHANGE: "nochange",
    _stats.TOO_FEW: "toofew",
    _stats.BELOW_THRESHOLD: "nochange",
}


def h(s: object) -> str:
    """HTML-escape anything (quotes too, for attribute values)."""
    return html.escape("" if s is None else str(s), quote=True)


def _td(text: str, cls: str | None = None) -> str:
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _img(path: Path, alt: str) -> str:
    raw = Path(path).read_bytes()
    width, height = struct.unpack(">II", raw[16:24])  # the PNG's IHDR
    data = base64.b64encode(raw).decode("ascii")
    return f'<img alt="{h(alt)}" width="{width}" height="{height}" src="data:image/png;base64,{data}">'


def _group(g: ArchGroup, c: Comparison, plots: dict[str, dict[str, Path]]) -> list[str]:
    out = [f"<h2>{h(g.key)}</h2>"]
    out.append('<table class="meta">')
    out.append("<tr><td>Units</td><td>" + ", ".join(
        f"{h(words.units_text(g, s))} {h(s)} ({h(', '.join(g.kernels(s)) or 'kernel unknown')})" for s in g.side_names)
        + "</td></tr>")
    for side in g.side_names:
        if g.sources(side):
            out.append(f"<tr><td>Traces {h(side)}</td><td class=\"mono\">{h('; '.join(g.sources(side)))}</td></tr>")
    if g.config_note:
        out.append(f"<tr><td>Note</td><td>{h(g.config_note)}</td></tr>")
    out.append("</table>")
    if g.functions:
        out.append("<h3>Call latency</h3><table>")
        out.append('<tr><th class="l">function</th><th class="l">side</th><th>units</th><th>calls</th><th>median</th>'
                   "<th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th><th>stddev</th></tr>")
        for func, rows in by_function(g).items():
            sides = [(g.side_names[0], rows[0].before, rows[0].change.units_before)]
            sides += [(f.against, f.after, f.change.units_after) for f in rows]
            for i, (label, s, units) in enumerate(sides):
                cells = [
                    _td(f"<code>{h(func)}</code>" if i == 0 else "", "l"),
                    _td(h(label), "l"),
                    _td(str(units)),
                    _td(str(s.n)),
                ] + [_td(fmt.ns(v)) for v in (s.median_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns, s.mean_ns, s.stddev_ns)]
                out.append(f'<tr class="{"first" if i == 0 else ""}">' + "".join(cells) + "</tr>")
        out.append("</table>")
        out.append("<h3>Change</h3><table>")
        out.append('<tr><th class="l">function</th><th class="l">side</th><th>median</th><th>95% CI</th><th>p99</th>'
                   '<th>95% CI</th><th>p (rank test, Holm)</th><th class="l">verdict</th></tr>')
        for f in g.functions:
            ch = f.change
            med = fmt.pct(ch.median_pct) if ch.significant or not ch.has_verdict else f"~ ({fmt.pct(ch.median_pct)})"
            out.append(
                "<tr>" + _td(f"<code>{h(f.function)}</code>", "l") + _td(h(f.against), "l") + _td(h(med))
                + _td(h(fmt.ci(ch.median_ci))) + _td(h(fmt.pct(ch.p99_pct))) + _td(h(fmt.ci(ch.p99_ci)))
                + _td(h(fmt.pval(ch.p_adjusted)))
                + f'<td class="l {_VERDICT_CLASS.get(ch.verdict, "")}">{h(ch.verdict)}</td></tr>'
            )
        out.append("</table><ul>")
        out += [f"<li><code>{h(f.function)}</code> ({h(f.against)}): {h(words.verdict_text(f, g, c))}</li>" for f in g.functions]
        short = [f for f in g.functions if not f.change.has_verdict]
        if short:
            word = words.unit_word(g.runs[g.side_names[0]] + g.runs[short[0].against], 2)[:-1]
            out.append(f"<li>{h(words.need_text(short[0].change, word))}</li>")
        out += [f"<li>tracer: {h(words.source_text(rows[0]))}</li>" for rows in by_function(g).values()]
        out.append("</ul>")
    else:
        out.append("<p>No calls of the functions of interest were traced.</p>")
    if g.windows:
        out.append("<h3>Worst latency windows</h3><table>")
        out.append('<tr><th class="l">tracer</th><th class="l">side</th><th>worst</th><th class="l">task</th>'
                   '<th class="l">started at</th><th class="l">ended at</th><th class="l">run</th>'
                   '<th class="l">all windows</th></tr>')
        for w in g.windows:
            for label, s in ((c.before_label, w.before), (w.against, w.after)):
                if s is None:
                    out.append(f'<tr>{_td(h(w.tracer), "l")}{_td(h(label), "l")}<td colspan="6" class="l">no windows</td></tr>')
                    continue
                out.append(
                    "<tr>" + _td(h(w.tracer), "l") + _td(h(label), "l") + _td(h(fmt.ns(s.worst_latency_ns)))
                    + _td(h(f"{s.comm}-{s.pid}"), "l") + _td(f"<code>{h(s.started_at)}</code>", "l")
                    + _td(f"<code>{h(s.ended_at)}</code>", "l") + _td(h(s.run_name), "l")
                    + _td(h(", ".join(fmt.ns(x) for x in s.latencies_ns)), "l") + "</tr>"
                )
            if w.change is not None:
                median = words.window_text(w, g)
                out.append(f'<tr>{_td(h(w.tracer), "l")}{_td("change", "l")}{_td(h(fmt.pct(w.change_pct)))}'
                           f'<td colspan="5" class="l">{h(median)}</td></tr>')
        out.append("</table>")
    if g.events:
        out.append("<h3>Events per run</h3><table>")
        out.append(f'<tr><th class="l">event</th><th>{h(c.before_label)} (per run)</th><th>{h(c.after_label)} (per run)</th></tr>')
        for ev in g.events:
            out.append("<tr>" + _td(h(ev.name), "l") + _td(h(", ".join(map(str, ev.before)) or "-"))
                       + _td(h(", ".join(map(str, ev.after)) or "-")) + "</tr>")
        out.append("</table>")
    if g.prediction:
        p = g.prediction
        out.append(f"<h3>Model prediction ({h(p.get('model', 'tracekit.model'))})</h3>")
        out.append(f'<p class="note">{h(p.get("note", ""))}</p><table>')
        out.append('<tr><th class="l">function</th><th>predicted change</th><th>measured median change</th></tr>')
        measured = {f.function: f.change.median_pct for f in g.functions}
        for row in p.get("rows", []):
            pc = _stats.percent_change(row.get("before_ns"), row.get("after_ns"))
            out.append("<tr>" + _td(h(row.get("function", "?")), "l") + _td(h(fmt.pct(pc)))
                       + _td(h(fmt.pct(measured.get(row.get("function"))))) + "</tr>")
        out.append("</table>")
    if plots:
        out.append("<h3>Plots</h3><div>")
        for key, files in plots.items():
            if files.get("png"):
                kind, _, name = key.partition(":")
                caption = {"cdf": "CDF of call durations", "hist": "histogram of call durations",
                           "window": "worst window timeline"}.get(kind, kind)
                out.append(f"<figure>{_img(files['png'], key)}<figcaption>{h(name)}: {h(caption)}"
                           f" (<code>{h(Path(files['png']).name)}</code>, SVG beside it)</figcaption></figure>")
        out.append("</div>")
    return out


def _flames(flames: list[tuple[str, str | None, str]]) -> list[str]:
    """The flame graphs, inline SVG (their names and tooltips escaped by
    :func:`tracekit.flamegraph.render_svg`); a line saying why for one that could not be
    drawn."""
    out = ['<h2>Flame graphs</h2><p class="note">Widths: time per run before; colour: change per run after '
           "(red grew, blue shrank); hover a frame for both sides' times.</p>"]
    for caption, svg, why in flames:
        if svg is None:
            out.append(f'<p class="note">{h(caption)}: no flame graph ({h(why)})</p>')
        else:
            out.append(f'<figure class="flame">{svg.strip()}<figcaption>{h(caption)}'
                       "</figcaption></figure>")
    return out


def render_html(c: Comparison, plots: dict[str, dict[str, dict[str, Path]]] | None = None,
                flames: list[tuple[str, str | None, str]] | None = None) -> str:
    """The whole report.html, plots (from :func:`tracekit.reports.plots.make_plots`)
    embedded, and the flame graphs of the functions of interest
    (:func:`tracekit.reports.report.flame_graphs`) inline."""
    title = f"tracekit report: {c.patch}, {' vs '.join(s.name for s in c.sides)}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{h(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{h(title)}</h1>",
    ]
    p = c.patch_info
    out.append('<table class="meta">')
    if p is not None:
        out.append(f"<tr><td>Subject</td><td><strong>{h(p.full_subject)}</strong></td></tr>")
        for name, val in (("Author", p.author), ("Date", p.date),
                          ("Files", ", ".join(p.files)), ("Touches", ", ".join(p.functions))):
            if val:
                out.append(f"<tr><td>{name}</td><td>{h(val)}</td></tr>")
        if p.link:
            out.append(f'<tr><td>Link</td><td><a href="{h(p.link)}">{h(p.link)}</a></td></tr>')
    out.append(f"<tr><td>Functions</td><td>{h(', '.join(c.functions_requested))} "
               f"({h(c.functions_from)}; shown where traced)</td></tr>")
    if c.functions_missing:
        out.append(f"<tr><td>Not in the data</td><td>{h(', '.join(c.functions_missing))}</td></tr>")
    out.append("</table>")
    from tracekit.reports.render_text import summary_sentences

    out.append("<h2>Summary</h2><ul>" + "".join(f"<li>{h(s)}</li>" for s in summary_sentences(c)) + "</ul>")
    for g in c.groups:
        out += _group(g, c, (plots or {}).get(g.key, {}))
    if flames:
        out += _flames(flames)
    out.append(f'<h2>Method</h2><p class="note">{h(words.method_note())}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"
