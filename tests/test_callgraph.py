"""The call-tree body reader (tracekit.parsers.callgraph): the compiled reader against the
plain-Python reference reader of the same grammar, body by body, on bodies printed the way
the kernel prints them (kernel/trace/trace_functions_graph.c: ``print_graph_duration()``,
``print_graph_entry_leaf()``, ``print_graph_entry_nested()``, ``print_graph_return()``,
``print_graph_retval()``, ``print_graph_comment()``, ``print_graph_irq()``) and on the same
bodies damaged.  Expected values are the ones each body was printed from.
"""

from __future__ import annotations

import polars as pl
from helpers import damage, print_graph_duration, stated_duration_ns
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.parsers import callgraph as cg
from tracekit.parsers import scan
from tracekit.schema import Kind

NAMES = st.sampled_from(["f", "zap_pte_range.isra.0", "__x64_sys_exit_group", "do_wp_page.cold",
                         "_raw_spin_lock", "a$b"])


def _retval(draw) -> str:
    """print_graph_retval(): ``0x%lx``, or ``%ld`` for an error code."""
    v = draw(st.integers(-4095, 2**40))
    return f"{v}" if v < 0 else f"0x{v:x}"


@st.composite
def bodies(draw) -> tuple[str, cg.Body]:
    """One body, from its duration column on, and what it says."""
    shape = draw(st.sampled_from(["entry", "leaf", "exit", "exit_named", "leaf_retval", "exit_retval",
                                  "entry_args", "comment", "irq_entry", "irq_exit"]))
    if shape.startswith("irq"):
        arrow = "==========>" if shape == "irq_entry" else "<=========="
        return f"   {arrow} |", cg.Body(Kind.IRQ_ENTRY if shape == "irq_entry" else Kind.IRQ_EXIT, None, None, None, None)
    depth = draw(st.integers(0, 12))
    name = draw(NAMES)
    if shape.startswith(("leaf", "exit")):
        d = draw(st.integers(0, 10**10))
        column, dur = print_graph_duration(d, draw(st.sampled_from(" +!#*@$"))), stated_duration_ns(d)
    else:
        column, dur = "               |", None
    indent = " " * (2 + 2 * depth)
    if shape == "comment":
        msg = draw(st.sampled_from(["pgtfree: begin", "sched_switch: prev_pid=1 ==> next_pid=2", " two  blanks ", ""]))
        text = f"/* {msg} */"
        want = cg.Body(Kind.COMMENT, None, None, None, text[3:-3])
        return column + draw(st.sampled_from(["", indent])) + text, want
    tree, kind, func = {
        "entry": (f"{name}() {{", Kind.ENTRY, name),
        "entry_args": (f"{name}(mm=0xffff8881, addr=4096) {{", Kind.ENTRY, name),
        "leaf": (f"{name}();", Kind.LEAF, name),
        "leaf_retval": (f"{name}(); /* = {_retval(draw)} */", Kind.LEAF, name),
        "exit": ("}", Kind.EXIT, None),
        "exit_named": (f"}} /* {name} */", Kind.EXIT, name),
        "exit_retval": (f"}} /* {name} {draw(st.sampled_from(['= ', 'ret=']))}{_retval(draw)} */", Kind.EXIT, name),
    }[shape]
    return column + indent + tree, cg.Body(kind, dur, depth, func, None)


def _compiled(texts: list[str]) -> list[cg.Body | None]:
    """Every body through the compiled reader, as Body values (None where it refuses)."""
    raw = ("\n".join(texts) + "\n").encode("latin-1")
    starts, ends = scan.line_bounds(scan.buffer(raw))
    kind, dur, depth, offs = cg.scan_bodies(scan.buffer(raw), starts, ends)
    out: list[cg.Body | None] = []
    for i in range(len(texts)):
        if kind[i] == cg.NONE:
            out.append(None)
            continue
        for k in range(4):  # every offset within its line
            assert offs[k, i] == -1 or starts[i] <= offs[k, i] <= ends[i]
        name = raw[offs[0, i]:offs[1, i]].decode("latin-1") if offs[0, i] >= 0 else None
        comment = raw[offs[2, i]:offs[3, i]].decode("latin-1") if offs[2, i] >= 0 else None
        out.append(cg.Body(cg.KINDS[kind[i]], None if dur[i] < 0 else int(dur[i]),
                           None if depth[i] < 0 else int(depth[i]), name, comment))
    return out


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(bodies(), st.integers(0, 3)), min_size=1, max_size=30), st.data())
def test_compiled_bodies_read_as_the_reference_reads_them(cases, data):
    texts, wants = [], []
    for (text, want), harm in cases:
        if harm == 0:
            damaged = damage(data.draw, text, b" |.)-(}{;/*#=<>0123456789ux\t\x00\xff", least=1)
            if damaged != text:
                text, want = damaged, None
        texts.append(text)
        wants.append(want)
    for text, want, got in zip(texts, wants, _compiled(texts)):
        if got is not None:  # nothing taken that the reference reads otherwise
            assert got == cg.reference_body(text), text
        if want is not None:  # every body printed the kernel's way is taken, as printed
            assert got == want, text
            assert cg.reference_body(text) == want, text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_read_without_failing(data):
    starts, ends = scan.line_bounds(scan.buffer(data))
    kind, dur, depth, offs = cg.scan_bodies(scan.buffer(data), starts, ends)
    assert ((offs == -1) | ((offs >= 0) & (offs <= len(data)))).all()


def test_a_column_of_bodies_reads_the_refused_ones_by_the_general_path():
    bodies = pl.Series([
        "   0.378 us    |    do_raw_spin_trylock();",
        "               |  set_track() {",
        " + 11.487 us   |  } /* tlb_finish_mmu = -22 */",
        "   1.000 us    |  }   /* unmap_vmas */ /* x */",  # refused by the compiled reader, read by the regex
        "   ==========> |",
        "               |  /* pgtfree: begin */",
        "not a body",
        None,
    ])
    got = cg.read_bodies(bodies)
    assert got["kind"].to_list() == [Kind.LEAF, Kind.ENTRY, Kind.EXIT, Kind.EXIT, Kind.IRQ_ENTRY, Kind.COMMENT, None, None]
    assert got["dur_ns"].to_list() == [378, None, 11487, 1000, None, None, None, None]
    assert got["depth"].to_list() == [1, 0, 0, 0, None, None, None, None]
    assert got["raw_func"].to_list() == ["do_raw_spin_trylock", "set_track", "tlb_finish_mmu", "unmap_vmas", None, None, None, None]
    assert got["comment"].to_list() == [None] * 5 + ["pgtfree: begin", None, None]


def test_trace_cmd_funcgraph_bodies():
    # trace-cmd's function_graph plugin prints the same body after the record's
    # "funcgraph_entry:" / "funcgraph_exit:" (padded to 20 columns)
    line = b"  pgtfree2-563   [000]   117.611230: funcgraph_entry:        1.963 us   |      preempt_count_add();"
    at = line.index(b"funcgraph_entry:") + len(b"funcgraph_entry:")
    kind, dur, depth, ns, ne, cs, ce = cg.read_body(scan.buffer(line), at, len(line))
    assert (cg.KINDS[kind], dur, depth, line[ns:ne]) == (Kind.LEAF, 1963, 2, b"preempt_count_add")
