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
  # A project-local virtualenv, (re)installed when pyproject.toml changes.
  local stamp=.venv/.tracekit-installed want
  want=$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[test]'
    echo "$want" > "$stamp"
  fi
}

demo() {
  setup
  local tk=.venv/bin/tracekit store=${TRACEKIT_STORE:-./tracekit-store}
  # The bundled real captures (fixtures/README.md says how each was made):
  #  x86_64:  one Debian 6.1 kernel booted preempt=none ("before") and preempt=full ("after")
  #  ppc64le: Debian 6.1.0-47 ("before") against 6.1.0-50 ("after"), a kernel update
  # Every trace of a side was recorded in one boot (--boot): one boot a side, so the report
  # gives the numbers and says how many boots a verdict needs.
  local d
  for side in before after; do
    d=fixtures/x86_64/$side
    "$tk" ingest "$d"/fgraph_exit_mmap.txt.gz "$d"/fgraph_teardown.txt.gz "$d"/function.txt.gz "$d"/events.txt.gz \
      "$d"/kprobes.txt.gz --store "$store" --patch preempt-none-to-full --label "$side" --arch x86_64 \
      --boot "x86_64-6.1.0-56-$side" \
      --kernel 6.1.0-56-amd64 --preempt "$([ $side = before ] && echo none || echo full)"
    d=fixtures/ppc64le/$side
    "$tk" ingest "$d"/fgraph_exit_mmap.txt.gz "$d"/fgraph_teardown.txt.gz "$d"/function.txt.gz "$d"/events.txt.gz \
      "$d"/kprobes.txt.gz --store "$store" --patch ppc-kernel-update --label "$side" --arch ppc64le \
      --boot "ppc64le-$([ $side = before ] && echo 6.1.0-47 || echo 6.1.0-50)-$side" \
      --kernel "$([ $side = before ] && echo 6.1.0-47-powerpc64le || echo 6.1.0-50-powerpc64le)" --preempt voluntary
  done
  "$tk" runs --store "$store"
  for patch in preempt-none-to-full ppc-kernel-update; do
    "$tk" report --store "$store" --patch "$patch" --out "./tracekit-report/$patch" --quiet
  done
  for patch in preempt-none-to-full ppc-kernel-update; do
    echo
    cat "./tracekit-report/$patch/report.txt"
  done
}

case "${1:-}" in
  demo) demo ;;
  test) setup; shift; exec .venv/bin/python -m pytest -q "$@" ;;
  bench) setup; shift; exec .venv/bin/python benchmarks/bench_ingest.py "$@" ;;
  *) echo "usage: ./run.sh demo | test [pytest args] | bench [--mib N]" >&2; exit 2 ;;
esac
