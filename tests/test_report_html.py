"""report.html and report.md: self-contained, and every string from a trace or a patch
escaped (a hostile subject or task name is shown, never run)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from _report_store import HOSTILE, hostile_source
from tracekit.reports.patch import PatchInfo
from tracekit.reports.report import write_report


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.srcs += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    src, long_func = hostile_source()
    info = PatchInfo(subject=HOSTILE + ' "quoted" & more', prefix="PATCH", author="<img src=x onerror=alert(1)>",
                     message_id='x"><script>y</script>@example.org', functions=[HOSTILE])
    out = tmp_path_factory.mktemp("hostile")
    res = write_report("evil", store=src, patch_info=info, out_dir=out,
                       functions=[HOSTILE, long_func])
    return res


def test_html_escapes_everything(written):
    html = written.files["html"].read_text()
    assert "<script" not in html.lower()
    assert "<b>bold</b>" not in html  # a window's ended_at symbol
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    p = _Tags()
    p.feed(html)
    assert "script" not in p.tags
    # Self-contained: images are data: URIs, the only link is the patch's lore Link.
    assert all(s.startswith("data:image/png;base64,") or s.startswith("https://lore.kernel.org/r/") for s in p.srcs)
    assert any(s.startswith("data:image/png;base64,") for s in p.srcs)
    assert "<style>" in html and "<link" not in html


def test_markdown_escapes_everything(written):
    md = written.files["md"].read_text()
    assert "<script" not in md.lower() and "<b>" not in md
    assert "&lt;script&gt;" in md


def test_text_and_json_keep_the_strings_verbatim(written):
    import json

    data = json.loads(written.files["json"].read_text())
    assert data["patch"]["subject"].startswith(HOSTILE)
    funcs = [r["function"] for r in data["groups"][0]["results"]]
    assert HOSTILE in funcs
    assert written.comparison.groups[0].windows[0].before.started_at == HOSTILE


def test_html_embeds_a_flame_graph_per_function_of_interest(tmp_path, corpus):
    import tracekit

    qemu = "qemu/x86_64-6.1.0-56-preempt-none"
    store = tmp_path / "store"
    for rel, label in ((f"{qemu}/fgraph_default.txt", "before"), (f"{qemu}/fgraph_procabs.txt", "after")):
        tracekit.ingest([str(corpus / rel)], store, patch="p", label=label, arch="x86_64")
    res = write_report("p", store=store, out_dir=tmp_path / "out", functions=["unmap_vmas", "nosuch_func"])
    page = res.files["html"].read_text()
    parser = _Tags()
    parser.feed(page)
    assert parser.srcs == [] or all(s.startswith(("data:", "#")) for s in parser.srcs)  # one self-contained file
    assert page.count('<figure class="flame"><svg xmlns="http://www.w3.org/2000/svg"') == 1
    flame = page[page.index('<figure class="flame">'):page.index("</figure>", page.index('<figure class="flame">'))]
    titles = re.findall(r"<title>([^<]*)</title>", flame)
    names = {t.split(":")[0] for t in titles}
    # the calls through unmap_vmas: it and its callees (counted in the trace), not its callers
    assert "unmap_vmas" in names and "unmap_single_vma" in names
    assert "exit_mmap" not in names and "free_pgtables" not in names
    assert any(t.startswith("unmap_vmas: before ") and " after " in t for t in titles)
    assert "unmap_vmas: calls through it, after against before" in flame
