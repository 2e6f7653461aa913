#!/usr/bin/env bash
# Runs one libFuzzer harness for a bounded time (TESTING.md C, T1 budget).
# Usage: run_fuzz.sh BINARY SECONDS WORKDIR [SEED_DIR...]
# New corpus entries go to WORKDIR/corpus (not the repo); crashes, leaks,
# timeouts and OOMs go to WORKDIR/artifacts and fail the run. Minimize a
# finding with BINARY -minimize_crash=1 and add it to
# tests/fuzz/regressions/<harness>/.
set -euo pipefail
bin=$1; secs=$2; work=$3; shift 3
mkdir -p "$work/corpus" "$work/artifacts"
seeds=()
for d in "$@"; do [ -d "$d" ] && seeds+=("$d"); done
exec "$bin" -max_total_time="$secs" -detect_leaks=1 -timeout=5 -rss_limit_mb=1024 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "${seeds[@]}"
