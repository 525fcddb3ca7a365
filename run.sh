#!/usr/bin/env bash
# tracekit's two commands on a fresh machine (Python 3.11+ with venv):
#   ./run.sh demo    set up, ingest the bundled fixtures into ./tracekit-store, report them
#   ./run.sh test    set up, run the test suite (pytest)
# and one more:
#   ./run.sh bench   set up, run the ingest benchmark (200 MiB of generated function_graph)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}

setup() {
  # A project-local virtualenv, (re)installed when pyproject.toml changes: tracekit alone
  # for the demo, with the test extras for test and bench (which serve the demo too).
  local extras=${1:-} stamp=.venv/.tracekit-installed want have
  want=$(sha256sum pyproject.toml | cut -c1-16)
  have=$(cat "$stamp" 2>/dev/null || true)
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  if [ "$have" != "$want$extras" ] && [ "$have" != "$want[test]" ]; then
    .venv/bin/python -m pip install -q -e ".$extras"
    echo "$want$extras" > "$stamp"
  fi
}

SEED_WORKLOAD=pgtfree:forks=2,mb=256,sparse=64,loops=0

seed() {
  # The seed's story on real kernels (fixtures/README.md, "seed"): Debian's 6.1 built twice,
  # with free_pgtables and tlb_finish_mmu made non-preemptible again as in 2.6.22 ("before")
  # and as it is, preemptible ("after"); five boots a side under QEMU -icount, each boot's
  # traces ingested with its own boot id (the unit of the report's statistics).
  local tk=$1 store=$2 patch=$3
  .venv/bin/python - "$store" "$patch" <<'EOF'
import json, sys
from pathlib import Path
import tracekit

store, patch = sys.argv[1:]
# bN/: a boot's kprobe spans and preemptoff window; graph/: one boot's function_graph
# call tree of exit_mmap, a patch of its own (function tracing stretches what it measures)
for side, label in (("patched", "before"), ("unpatched", "after")):
    for boot in sorted(p.parent for p in Path("fixtures/seed", side).glob("*/capture.json")):
        meta = json.loads((boot / "capture.json").read_text())
        tracekit.ingest(sorted(str(p) for p in boot.glob("*.txt.gz")), store=store, label=label,
                        patch=patch + ("-call-tree" if boot.name == "graph" else ""),
                        arch=meta["arch"], kernel=meta["kernel_release"], boot=meta["boot_id"],
                        preempt=meta["preempt"], on_error="raise")
EOF
  # The model's costs fitted to the preemptible kernel's kprobe spans only; the report
  # predicts the non-preemptible kernel's worst window from them.
  "$tk" calibrate --store "$store" --patch "$patch" --label after --source kprobe --workload "$SEED_WORKLOAD" \
    --strategy modern --preempt --before modern-np-pgfree --after modern >/dev/null
}


demo() {
  setup
  local tk=.venv/bin/tracekit store=${TRACEKIT_STORE:-./tracekit-store} seed_patch=preemptible-pgtable-freeing
  seed "$tk" "$store" "$seed_patch"
  # Further bundled captures, one boot a side (so the report gives numbers and says how
  # many boots a verdict needs): one Debian 6.1 kernel booted preempt=none ("before") and
  # preempt=full ("after"); ppc64le Debian 6.1.0-47 ("before") against 6.1.0-50 ("after").
  local d
  for side in before after; do
    d=fixtures/x86_64/$side
    "$tk" ingest "$d"/fgraph_exit_mmap.txt.gz "$d"/fgraph_teardown.txt.gz "$d"/function.txt.gz "$d"/events.txt.gz \
      "$d"/kprobes.txt.gz --store "$store" --patch preempt-none-to-full --label "$side" --arch x86_64 \
      --boot "x86_64-6.1.0-56-$side" \
      --kernel 6.1.0-56-amd64 --preempt "$([ $side = before ] && echo none || echo full)" >/dev/null
    d=fixtures/ppc64le/$side
    "$tk" ingest "$d"/fgraph_exit_mmap.txt.gz "$d"/fgraph_teardown.txt.gz "$d"/function.txt.gz "$d"/events.txt.gz \
      "$d"/kprobes.txt.gz --store "$store" --patch ppc-kernel-update --label "$side" --arch ppc64le \
      --boot "ppc64le-$([ $side = before ] && echo 6.1.0-47 || echo 6.1.0-50)-$side" \
      --kernel "$([ $side = before ] && echo 6.1.0-47-powerpc64le || echo 6.1.0-50-powerpc64le)" --preempt voluntary >/dev/null
  done
  for patch in "$seed_patch" preempt-none-to-full ppc-kernel-update; do
    "$tk" report --store "$store" --patch "$patch" --out "./tracekit-report/$patch" --quiet
  done
  cat "./tracekit-report/$seed_patch/report.txt"
  echo
  echo "Further examples (one boot a side; reports in ./tracekit-report/):"
  for patch in preempt-none-to-full ppc-kernel-update; do
    echo "  ./tracekit-report/$patch/report.txt"
  done
}

case "${1:-}" in
  demo) demo ;;
  test) setup '[test]'; shift; exec .venv/bin/python -m pytest -q "$@" ;;
  bench) setup '[test]'; shift; exec .venv/bin/python benchmarks/bench_ingest.py "$@" ;;
  *) echo "usage: ./run.sh demo | test [pytest args] | bench [--mib N]" >&2; exit 2 ;;
esac
