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
  local patch=preempt-none-to-full
  # The bundled real captures (fixtures/README.md): one Debian 6.1 kernel booted
  # preempt=none ("before") and preempt=full ("after"), THP off.
  for side in before after; do
    local d=fixtures/x86_64/$side preempt
    if [ $side = before ]; then preempt=none; else preempt=full; fi
    "$tk" ingest "$d"/fgraph_procabs.txt.gz "$d"/fgraph_filter.txt.gz "$d"/function.txt.gz "$d"/events.txt.gz \
      --store "$store" --patch "$patch" --label "$side" --arch x86_64 --kernel 6.1.0-56-amd64 --preempt "$preempt"
  done
  "$tk" runs --store "$store"
  if "$tk" report --help >/dev/null 2>&1; then
    "$tk" report --store "$store" --patch "$patch" --out ./tracekit-report
    cat ./tracekit-report/report.txt
  fi
}

case "${1:-}" in
  demo) demo ;;
  test) setup; shift; exec .venv/bin/python -m pytest -q "$@" ;;
  bench) setup; shift; exec .venv/bin/python benchmarks/bench_ingest.py "$@" ;;
  *) echo "usage: ./run.sh demo | test [pytest args] | bench [--mib N]" >&2; exit 2 ;;
esac
