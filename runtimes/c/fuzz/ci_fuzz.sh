#!/bin/sh
# ci_fuzz.sh: a bounded libFuzzer run of the .dse loader for CI (and before a release).
#
#   runtimes/c/fuzz/ci_fuzz.sh [WORK_DIR]          (default WORK_DIR: build/ci_fuzz)
#
# Environment: DSE_FUZZ_SECONDS (default 120) the fuzzing time; DSE_FUZZ_MAX_LEN (default
# 32768) the largest input; DSE_FUZZ_MODEL_SEEDS=0 skips the real-model seeds; PYTHON
# (default python3) runs model_seeds.py.
#
# Steps:
#  1. Build fuzz_loader.c + the runtime with clang -fsanitize=fuzzer,address,undefined
#     (`make fuzz`, -fno-sanitize-recover=all: UB is a crash too).
#  2. Seeds: the committed corpus (runtimes/c/tests/corpus, read only) and the real exported
#     models of model_seeds.py (~1 minute; skipped with a warning when dsedge cannot be
#     imported) that fit DSE_FUZZ_MAX_LEN (digits int8/fp32/int8-io, the transformer: libFuzzer
#     would cut a larger file, which then fails the header's size check and reaches nothing).
#  3. Measure the corpus before (`-runs=0`: files, coverage edges `cov` and features `ft`),
#     fuzz for DSE_FUZZ_SECONDS with new inputs written to WORK_DIR/corpus, measure again.
#  4. Exit 0 when the fuzzer found nothing. On a finding (crash, sanitizer report, leak,
#     timeout, out-of-memory, a run over 10 s: the target bounds each run's work) exit 1 and
#     print the path of the kept input under WORK_DIR/crash/; fix it, then commit the input
#     as a regression file
#     (runtimes/c/fuzz/README.md).
#
# The growth summary is one line per measurement: "corpus before: N files, cov C, ft F".
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)          # runtimes/c
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${1:-$ROOT/build/ci_fuzz}
SECS=${DSE_FUZZ_SECONDS:-120}
MAXLEN=${DSE_FUZZ_MAX_LEN:-32768}
PY=${PYTHON:-python3}
rm -rf "$WORK/crash"
mkdir -p "$WORK/corpus" "$WORK/seeds" "$WORK/crash"
WORK=$(cd "$WORK" && pwd)
COMMITTED=$HERE/tests/corpus

echo "== build (clang, libFuzzer + ASan + UBSan)" >&2
make -s -j"$(nproc 2>/dev/null || echo 2)" -C "$HERE" fuzz O="$WORK/build" >&2
FUZZ=$WORK/build/fuzz_loader

if [ "${DSE_FUZZ_MODEL_SEEDS:-1}" != 0 ]; then
    echo "== model seeds" >&2
    if ! (cd "$ROOT" && "$PY" runtimes/c/fuzz/model_seeds.py "$WORK/seeds") >&2; then
        echo "warning: model_seeds.py failed; fuzzing from the committed corpus only" >&2
    fi
    find "$WORK/seeds" -type f -size +"$MAXLEN"c -delete
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
FLAGS="-max_len=$MAXLEN -timeout=25 -rss_limit_mb=2048 -print_final_stats=1"

count() { find "$@" -type f | wc -l; }
measure() {   # $1 = label: load every corpus file once, print files, cov and ft
    "$FUZZ" -runs=0 $FLAGS -artifact_prefix="$WORK/crash/" "$WORK/corpus" "$COMMITTED" "$WORK/seeds" > "$WORK/measure_$1.log" 2>&1 || true
    line=$(grep -E 'INITED|DONE' "$WORK/measure_$1.log" | tail -1)
    cov=$(echo "$line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$line" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    echo "corpus $1: $(count "$WORK/corpus" "$COMMITTED" "$WORK/seeds") files ($(count "$WORK/corpus") new), cov ${cov:-?}, ft ${ft:-?}"
}

measure before
echo "== fuzzing ${SECS} s" >&2
set +e
"$FUZZ" -max_total_time="$SECS" $FLAGS -artifact_prefix="$WORK/crash/" \
    "$WORK/corpus" "$COMMITTED" "$WORK/seeds" > "$WORK/fuzz.log" 2>&1
rc=$?
set -e
grep -E 'DONE|stat::number_of_executed_units|stat::peak_rss_mb' "$WORK/fuzz.log" | sed 's/^/  /' || true
measure after
found=$(find "$WORK/crash" -type f)
if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    echo "FINDING (libFuzzer exit $rc): the report is in $WORK/fuzz.log; input(s) kept:"
    for f in $found; do echo "  $f"; done
    grep -E 'ERROR: |SUMMARY: |runtime error' "$WORK/fuzz.log" | head -5
    case "$found" in *slow-unit-*)
        echo "slow-unit-*: one run took over 10 s (libFuzzer's -report_slow_units): a kernel did more work"
        echo "than fuzz_loader.c's bound (dse_fuzz_work_bound) allows for; find which with"
        echo "dse_fuzz_replay --fix-crc-to DIR FILE, then dsedge-run --profile DIR/FILE" ;;
    esac
    exit 1
fi
echo "no finding in ${SECS} s"
