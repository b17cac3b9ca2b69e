#!/bin/bash
# whole.sh MODEL N ROUNDS: base and branch alternating, each in its own process
for r in $(seq 1 $3); do
  for t in smallconv_base smallconv; do
    ( cd /work/wt/$t && . .venv/bin/activate && DSEDGE_CACHE_DIR=/work/wt/$t/.cache python3 /work/wt/smallconv/benchmarks/smallconv/whole.py /work/wt/$t $1 $2 2>/dev/null )
  done
done
