"""The simulated CPU the teardown runs on: a clock, a preempt count, the call stack, and
what is measured on the way (docs/model.md#simulation, docs/model.md#outputs).

Latency is measured the way a waking real-time task would see it:

* CONFIG_PREEMPT: a *window* is a stretch with ``preempt_count() > 0``
  (``get_cpu_var`` in ``tlb_gather_mmu``, ``spin_lock``); it ends at the ``preempt_enable``
  that brings the count to 0, or at a ``need_resched()`` test inside it that bails out
  (modern ``zap_pte_range``).
* !CONFIG_PREEMPT: a window is the *gap* between consecutive rescheduling points
  (``cond_resched()``, or a ``need_resched()`` test that leads to one), from the start of the
  operation to its end.

Both are kept as a list of (duration_ns, multiplicity).  The walk is deterministic, so a
stretch of work that repeats exactly (the same ZAP_BLOCK again and again over a fully
populated region) is simulated once and multiplied by :meth:`Sim.repeat`: counts stay exact
while a 64 GiB exit takes seconds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Sim", "Mark", "COMPOSITION_KEYS"]

#: Counters whose change over a window is reported as that window's composition.
COMPOSITION_KEYS = (
    "ptes_zapped",
    "pages_freed",
    "pagetable_pages_freed",
    "tlb_flushes",
    "ipis",
    "hash_flushes",
    "unlinks",
    "vmas",
    "huge_pages_freed",
)


@dataclass
class Mark:
    clock: int
    n: Counter
    t_func: Counter
    calls: Counter
    n_windows: int
    n_flushes: int
    win_start: int | None
    preempt_count: int
    depth: int


@dataclass
class Sim:
    """One simulated CPU running the teardown.  ``record`` keeps every call and flush as an
    event list (for the trace emitters); it turns off :meth:`repeat`."""

    preempt: bool
    record: bool = False
    clock: int = 0
    preempt_count: int = 0
    n: Counter = field(default_factory=Counter)
    t_func: Counter = field(default_factory=Counter)
    calls: Counter = field(default_factory=Counter)
    window_log: list[tuple[int, int]] = field(default_factory=list)
    flush_log: list[tuple[int, int]] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    stack: list[tuple[str, int]] = field(default_factory=list)
    win_start: int | None = None
    win_base: tuple[int, ...] | None = None
    worst: dict[str, Any] | None = None
    #: (start_ns, end_ns, started_in, ended_in) of every window, when record
    window_list: list[tuple[int, int, str | None, str | None]] = field(default_factory=list)
    _win_func: str | None = None

    # -- time and calls ---------------------------------------------------------------
    def spend(self, ns: int) -> None:
        """Advance the clock by ``ns`` of work in the current function."""
        self.clock += ns

    def enter(self, func: str) -> None:
        if self.record:
            parent = self.stack[-1][0] if self.stack else None
            self.events.append(("entry", self.clock, func, len(self.stack), parent))
        self.stack.append((func, self.clock))

    def leave(self, func: str) -> None:
        name, t0 = self.stack.pop()
        assert name == func, (name, func)
        self.t_func[func] += self.clock - t0
        self.calls[func] += 1
        if self.record:
            self.events.append(("exit", self.clock, func, len(self.stack), self.clock - t0))

    def leaf(self, func: str, ns: int) -> None:
        """A call with no modelled children that takes ``ns``."""
        self.enter(func)
        self.clock += ns
        self.leave(func)

    def note_flush(self, cause: str, pages: int, ipis: int = 0, detail: str = "") -> None:
        """Count one TLB flush (arch ``tlb_flush``) by cause, with the pages it lets free."""
        self.n["tlb_flushes"] += 1
        self.n["flush:" + cause] += 1
        self.flush_log.append((pages, 1))
        if self.record:
            self.events.append(("tlb_flush", self.clock, cause, pages, ipis, detail))

    # -- windows ----------------------------------------------------------------------
    def _snap(self) -> tuple[int, ...]:
        n = self.n
        return tuple(n[k] for k in COMPOSITION_KEYS)

    def _open(self) -> None:
        self.win_start = self.clock
        self.win_base = self._snap()
        if self.record:
            self._win_func = self.stack[-1][0] if self.stack else None

    def _close(self) -> None:
        start = self.win_start
        assert start is not None
        dur = self.clock - start
        self.window_log.append((dur, 1))
        if self.record:
            end_func = self.stack[-1][0] if self.stack else None
            self.window_list.append((start, self.clock, self._win_func, end_func))
        if self.worst is None or dur > self.worst["dur_ns"]:
            now = self._snap()
            self.worst = {
                "dur_ns": dur,
                "start_ns": start,
                "end_ns": self.clock,
                "composition": {k: now[i] - self.win_base[i] for i, k in enumerate(COMPOSITION_KEYS)},
                "ended_in": self.stack[-1][0] if self.stack else None,
            }
        self.win_start = None

    def begin_op(self) -> None:
        """The operation starts (just after a rescheduling point)."""
        if not self.preempt:
            self._open()

    def end_op(self) -> None:
        """The operation ends (return to user space, or the exit path's schedule())."""
        if not self.preempt and self.win_start is not None:
            self._close()

    def preempt_disable(self) -> None:
        if self.preempt and self.preempt_count == 0:
            self._open()
        self.preempt_count += 1

    def preempt_enable(self) -> None:
        """``preempt_enable()``: on CONFIG_PREEMPT, reaching 0 is a preemption point."""
        self.preempt_count -= 1
        assert self.preempt_count >= 0
        if self.preempt and self.preempt_count == 0:
            self._close()

    def opportunity(self) -> None:
        """A point where a waiting task gets the CPU: ``cond_resched()`` on !PREEMPT, or a
        ``need_resched()`` test that bails out of a non-preemptible section."""
        if self.win_start is not None:
            self._close()
            self._open()

    def cond_resched(self, cost: int) -> None:
        """``cond_resched()``: a rescheduling point on !PREEMPT (a no-op window-wise on
        PREEMPT, where the code is already preemptible when it calls it)."""
        self.clock += cost
        self.n["cond_resched"] += 1
        if not self.preempt:
            self.opportunity()

    def spend_polled(self, count: int, each_ns: int, counter: str | None = None) -> None:
        """``count`` units of ``each_ns`` each preceded by a ``need_resched()`` test that can
        end the window (modern zap_pte_range's per-entry test).  ``counter`` is incremented
        once per unit, so that each window's composition holds its own unit."""
        if count <= 0:
            return
        if self.win_start is None or self.record:
            for _ in range(count):
                if self.win_start is not None:
                    self.opportunity()
                self.clock += each_ns
                if counter:
                    self.n[counter] += 1
            return
        self.opportunity()
        if count > 1:
            self.window_log.append((each_ns, count - 1))
            if self.worst is None or each_ns > self.worst["dur_ns"]:
                self.worst = {
                    "dur_ns": each_ns,
                    "start_ns": self.clock,
                    "end_ns": self.clock + each_ns,
                    "composition": {k: int(k == counter) for k in COMPOSITION_KEYS},
                    "ended_in": self.stack[-1][0] if self.stack else None,
                }
            if counter:
                self.n[counter] += count - 1
        self.clock += count * each_ns
        self.win_start = self.clock - each_ns
        self.win_base = self._snap()
        if counter:
            self.n[counter] += 1

    # -- exact repetition -------------------------------------------------------------
    def mark(self) -> Mark:
        return Mark(
            self.clock,
            self.n.copy(),
            self.t_func.copy(),
            self.calls.copy(),
            len(self.window_log),
            len(self.flush_log),
            self.win_start,
            self.preempt_count,
            len(self.stack),
        )

    def repeat(self, m: Mark, q: int) -> bool:
        """Replay ``q`` more times exactly what happened since mark ``m``.

        The caller has checked that its own state (gather, budget, address in the run) is
        back where it was at ``m``; this checks the window state and returns False, changing
        nothing, when a repetition would not be identical."""
        if q <= 0 or self.record:
            return False
        if self.preempt_count != m.preempt_count or len(self.stack) != m.depth:
            return False
        dt = self.clock - m.clock
        closed = self.window_log[m.n_windows :]
        if (self.win_start is None) != (m.win_start is None):
            return False
        if self.win_start is not None:
            if closed:
                if self.clock - self.win_start != m.clock - m.win_start:
                    return False
            elif self.win_start != m.win_start:
                return False
        d_comp = [self.n[k] - m.n.get(k, 0) for k in COMPOSITION_KEYS]
        for cur, old in ((self.n, m.n), (self.t_func, m.t_func), (self.calls, m.calls)):
            for k, v in list(cur.items()):
                d = v - old.get(k, 0)
                if d:
                    cur[k] = v + q * d
        self.window_log.extend((d, c * q) for d, c in closed)
        self.flush_log.extend((p, c * q) for p, c in self.flush_log[m.n_flushes :])
        self.clock += q * dt
        if self.win_start is not None and closed:
            self.win_start += q * dt
            # the open window's composition base moves with the counters
            self.win_base = tuple(b + q * d for b, d in zip(self.win_base, d_comp))
        return True

    # -- results ----------------------------------------------------------------------
    def windows(self) -> tuple[list[int], list[int]]:
        """(durations_ns, multiplicities) of every closed window, merged."""
        c: Counter = Counter()
        for d, k in self.window_log:
            c[d] += k
        ds = sorted(c)
        return ds, [c[d] for d in ds]

    def flushes_by_pages(self) -> dict[int, int]:
        c: Counter = Counter()
        for p, k in self.flush_log:
            c[p] += k
        return dict(sorted(c.items()))

