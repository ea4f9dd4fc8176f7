#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation (the
# flags `cargo fuzz build --sanitizer none` uses, so the stable toolchain
# does) and runs each for SECONDS (default 60) from its corpus in
# fuzz/corpus/<target>. A crash fails the script and leaves its input in
# fuzz/artifacts/. With KEEP=1, inputs that add coverage are merged into
# the kept corpus.
#
#   bash fuzz/run.sh [SECONDS] [TARGET ...]     targets: model_json rules manifest
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(model_json rules manifest)
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build -q --release --target "$triple" --target-dir ../target/fuzz --bins
mkdir -p artifacts
for t in "${targets[@]}"; do
  scratch="$(mktemp -d)"
  echo "== $t: ${secs}s from $(ls corpus/$t | wc -l) kept inputs"
  # New inputs go to the scratch directory; the kept corpus is only read.
  status=0
  "../target/fuzz/$triple/release/$t" -max_total_time="$secs" -print_final_stats=1 \
    -max_len=65536 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="artifacts/$t-" \
    "$scratch" "corpus/$t" > "$scratch.log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|ERROR|panicked|SUMMARY" "$scratch.log" || true
  [ "$status" -eq 0 ] || tail -40 "$scratch.log"
  if [ "${KEEP:-0}" = 1 ]; then
    "../target/fuzz/$triple/release/$t" -merge=1 "corpus/$t" "$scratch" >/dev/null 2>&1
  fi
  rm -rf "$scratch" "$scratch.log"
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $t failed (exit $status): see fuzz/artifacts/" >&2
    exit "$status"
  fi
done
