#!/usr/bin/env bash
# modelwerk's model server against MLServer 1.7.1 (adaptive batching), measured in one run.
#
# Usage: bash bench/serving/run.sh                 everything (about 35 min on an idle 2-core box)
#        STEPS="floor load summary" bash bench/serving/run.sh
# Env:   PERF_WORK  models, bodies, venvs, run dirs (default: $TMPDIR/mlserver-baseline, shared with
#                   the baseline harness, so an existing MLServer venv and trained models are reused)
#        OUT        results (default: bench/serving/out)   BASELINE  the MLServer baseline harness
#        DUR (s per run, 20)  REPS (3)  CONC (1,8,64)  ROWS (1,100)  QUIET_WAIT (30)
#        SERVERS (modelwerk:1,mlserver:1; also onnx:1 = the compiled model, floor:1 = HTTP floor)
#        MW_DELAY_MS (10: MLServer's best setting is 64 requests / 10 ms; both get the same)
# Only 127.0.0.1 is contacted; servers are stopped by process group id by run.py.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BASELINE="${BASELINE:-$ROOT/../shared/bench/mlserver-baseline}"
export PERF_WORK="${PERF_WORK:-${TMPDIR:-/tmp}/mlserver-baseline}"
OUT="${OUT:-$HERE/out}"
PY="${PY:-$ROOT/.venv/bin/python}"
STEPS="${STEPS:-setup train prepare floor load summary}"
mkdir -p "$PERF_WORK" "$OUT"
for step in $STEPS; do
  echo "=== $step $(date -u +%FT%TZ)"
  case "$step" in
    setup)
      command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }
      if [ ! -x "$PERF_WORK/venv/bin/mlserver" ]; then
        python3.11 -m venv "$PERF_WORK/venv"
        "$PERF_WORK/venv/bin/pip" install -r "$BASELINE/requirements-mlserver.txt"
      fi ;;
    train)   (cd "$PERF_WORK" && "$PERF_WORK/venv/bin/python" "$BASELINE/train_models.py") ;;
    prepare) "$PY" "$HERE/prepare.py" ;;
    env)     { date -u +%FT%TZ; uname -a; nproc; free -m | head -2; lscpu | grep -E "Model name|MHz" || true
               uptime; "$PY" --version; wrk --version 2>&1 | head -1 || true
               "$PY" -m pip freeze 2>/dev/null | grep -iE "uvicorn|uvloop|httptools|orjson|scikit|numpy"
             } > "$OUT/environment.txt" 2>&1 ;;
    floor)   "$PY" "$HERE/floor.py" --out "$OUT" ;;
    load)    nice -n "${PERF_NICE:--10}" "$PY" "$HERE/run.py" --out "$OUT" \
               --servers "${SERVERS:-modelwerk:1,mlserver:1}" --rows "${ROWS:-1,100}" \
               --conc "${CONC:-1,8,64}" --reps "${REPS:-3}" --duration "${DUR:-20}" \
               --mw-batch-delay-ms "${MW_DELAY_MS:-10}" --quiet-wait "${QUIET_WAIT:-30}" \
               --tag="${TAG:-}" ;;
    summary) "$PY" "$HERE/summarize.py" --out "$OUT" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
