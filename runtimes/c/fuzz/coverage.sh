#!/bin/sh
# coverage.sh: line/function coverage of the loader (src/loader.c), the kernels' `check`
# functions and the whole runtime, from replaying .dse files through the fuzz target's check.
#
#   runtimes/c/fuzz/coverage.sh OUT_DIR FILE_OR_DIR...
#
# Builds replay_main.c + fuzz_loader.c + the runtime with clang source-based coverage
# (-fprofile-instr-generate -fcoverage-mapping, no sanitizers; `make cov`: the sources and flags
# of the build manifest, build.mk), replays the given corpora,
# merges the raw profile (llvm-profdata) and prints `llvm-cov report` for loader.c and for
# all runtime sources, then the coverage of every function whose name starts with dse__check
# (the kernels' load-time checks). Needs clang and the matching llvm-profdata/llvm-cov
# (Debian: apt-get install llvm).
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd); shift
ORIG=$(pwd)
cd "$HERE"
SRCS=$(make -s --no-print-directory print-SRCS)   # the library's sources (build.mk)
make -s --no-print-directory cov O="$OUT/build" >&2
cp "$OUT/build/replay_cov" "$OUT/replay_cov"
(cd "$ORIG" && LLVM_PROFILE_FILE="$OUT/replay.profraw" "$OUT/replay_cov" "$@") > "$OUT/replay.txt"
llvm-profdata merge -sparse "$OUT/replay.profraw" -o "$OUT/replay.profdata"
echo "== loader.c"
llvm-cov report "$OUT/replay_cov" -instr-profile="$OUT/replay.profdata" src/loader.c
echo "== runtime (every library source)"
llvm-cov report "$OUT/replay_cov" -instr-profile="$OUT/replay.profdata" $SRCS | tail -1
echo "== kernel check functions (dse__check*): functions, lines covered/total"
llvm-cov report -show-functions "$OUT/replay_cov" -instr-profile="$OUT/replay.profdata" $SRCS \
  | awk '$1 ~ /^dse__check/ { n++; if ($5 > $6) f++; L += $5; M += $6 }
         END { printf "%d/%d functions executed, lines %d/%d covered (%.1f %%)\n", f, n, L - M, L, 100 * (L - M) / L }'
