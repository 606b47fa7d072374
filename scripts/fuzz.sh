#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang, ASan, UBSan) and runs
# each for OSPREY_FUZZ_SECONDS (default 600) from its seed corpus
# (fuzz/corpus/<name>), growing a working corpus in build/fuzz-corpus/<name>.
# OSPREY_FUZZ_ONLY=name[,name] runs those only. A crash leaves its input in
# build/fuzz-artifacts/ and fails the run; each fuzzer's last stats line
# (execs/s, coverage) is printed, and all of them are kept in
# build/fuzz-results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${OSPREY_FUZZ_SECONDS:-600}"
cmake --preset fuzz >/dev/null
cmake --build build/fuzz --target osprey_fuzzers
mkdir -p build/fuzz-artifacts build/fuzz-corpus
# Every finding stops the fuzzer, but for the third-party ones listed.
export UBSAN_OPTIONS="suppressions=$PWD/fuzz/ubsan.supp:halt_on_error=1:print_stacktrace=1"
: > build/fuzz-results.txt
status=0
for seeds in fuzz/corpus/*/; do
  name="$(basename "$seeds")"
  if [ -n "${OSPREY_FUZZ_ONLY:-}" ] && [[ ",$OSPREY_FUZZ_ONLY," != *",$name,"* ]]; then continue; fi
  work="build/fuzz-corpus/$name"
  mkdir -p "$work"
  log="build/fuzz-artifacts/$name.log"
  echo "fuzz: $name for ${SECONDS_EACH}s"
  # -rss_limit_mb: a decompression bomb or runaway allocation is a finding too.
  if ! "build/fuzz/fuzz/$name" "$work" "$seeds" -max_total_time="$SECONDS_EACH" \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="build/fuzz-artifacts/$name-" >"$log" 2>&1; then
    echo "fuzz: $name FAILED (input and report: build/fuzz-artifacts/$name-*, $log)"
    grep -m 20 -E "ERROR|SUMMARY|runtime error|==[0-9]+==" "$log" || tail -20 "$log"
    status=1
  fi
  stats="$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 || true)"
  execs="$(grep -E 'stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)"
  echo "$name: ${stats} execs/s=${execs}" | tee -a build/fuzz-results.txt
done
exit $status
