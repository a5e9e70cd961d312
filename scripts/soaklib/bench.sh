# shellcheck shell=bash
# scripts/soaklib/bench.sh — what scripts/bench-download, bench-prewarm and bench-mount share in bash
# (sourced after BENCH_NAME is set): the python library's entry point, the --json option and the
# A/B mode.
#
# A/B: with BENCH_SOAK_A and BENCH_SOAK_B both set (two soak binaries, e.g. before and after a
# change), every tool that runs soak runs once with each binary in every round, A first in odd
# rounds and B first in even ones (so a drift of the machine hits both alike), and its rows are
# recorded as TOOL.A and TOOL.B. The summary then prints the A/B table: medians with min–max, and
# whether the difference is inside the spread (python3 -m soaklib.summary; soaklib/report.py).
# --json FILE (or BENCH_JSON=FILE): the summary also writes the results as JSON.

SOAKLIB_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# soaklib MODULE ARGS...   run python3 -m soaklib.MODULE with scripts/ on the module path
soaklib() { PYTHONPATH="$SOAKLIB_SCRIPTS${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 python3 -m "soaklib.$1" "${@:2}"; }

BENCH_JSON=${BENCH_JSON:-}
# bench_args ARGS...  -> BENCH_ARGS (the arguments without --json FILE) and BENCH_JSON
bench_args() {
  BENCH_ARGS=()
  while (($#)); do
    case "$1" in
      --json) [[ $# -ge 2 ]] || { echo "$BENCH_NAME: --json needs a file name" >&2; exit 2; }; BENCH_JSON=$2; shift 2 ;;
      --json=*) BENCH_JSON=${1#--json=}; shift ;;
      *) BENCH_ARGS+=("$1"); shift ;;
    esac
  done
  if [[ -n "$BENCH_JSON" ]]; then BENCH_JSON=$(realpath -m -- "$BENCH_JSON"); fi
}

# bench_summary KIND RESULTS   the table, targets, A/B table (and JSON); returns the summary's status
bench_summary() { soaklib summary "$1" "$2" ${BENCH_JSON:+--json "$BENCH_JSON"}; }

AB=0
AB_SIDE=-
if [[ -n "${BENCH_SOAK_A:-}" || -n "${BENCH_SOAK_B:-}" ]]; then
  if [[ -z "${BENCH_SOAK_A:-}" || -z "${BENCH_SOAK_B:-}" ]]; then
    echo "$BENCH_NAME: set both BENCH_SOAK_A and BENCH_SOAK_B (or neither)" >&2; exit 2
  fi
  for _b in "$BENCH_SOAK_A" "$BENCH_SOAK_B"; do
    [[ -x "$_b" ]] || { echo "$BENCH_NAME: no soak binary at $_b" >&2; exit 2; }
  done
  BENCH_SOAK_A=$(realpath "$BENCH_SOAK_A"); BENCH_SOAK_B=$(realpath "$BENCH_SOAK_B")
  AB=1
  SOAK_BIN=$BENCH_SOAK_A   # what the script's own checks and version line see
fi
# ab_sides ROUND   the sides of one round in order: "A B" in odd rounds, "B A" in even ones; "-" without A/B
ab_sides() {
  if [[ $AB != 1 ]]; then echo -; elif (( $1 % 2 )); then echo A B; else echo B A; fi
}
# ab_use SIDE   point SOAK at that side's binary (exported: the tools run in child shells)
ab_use() {
  AB_SIDE=$1
  case "$1" in
    A) SOAK=$BENCH_SOAK_A ;;
    B) SOAK=$BENCH_SOAK_B ;;
  esac
  export SOAK
}
# ab_tool TOOL   the name a row is recorded under: TOOL.A / TOOL.B while a side is in use
ab_tool() { if [[ $AB_SIDE == - ]]; then echo "$1"; else echo "$1.$AB_SIDE"; fi; }

# bench_env BASE   after `eval "$(scripts/seaweed env ...)"`: drop the host's credential sources and
# proxies, keep instance metadata off, refuse a non-loopback endpoint (soaklib/env.py), and set the
# peer tools' environment with private empty config files under BASE (soaklib/peers.py)
bench_env() {
  local lines
  lines=$(soaklib env shell) || exit 2
  eval "$lines"
  lines=$(soaklib peers peer-env "$1") || { echo "$BENCH_NAME: could not set the peer tools' environment" >&2; exit 2; }
  eval "$lines"
}
