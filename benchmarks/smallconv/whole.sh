#!/bin/bash
# whole.sh MODEL N ROUNDS: base and branch alternating, each in its own process. The base checkout
# (session 18): git -C /work/main worktree add --detach /work/wt/smallconv_base dd1bce3, with its own
# venv (python3 -m venv --system-site-packages .venv; pip install --no-deps --no-build-isolation -e .).
for r in $(seq 1 $3); do
  for t in smallconv_base smallconv; do
    ( cd /work/wt/$t && . .venv/bin/activate && DSEDGE_CACHE_DIR=/work/wt/$t/.cache python3 /work/wt/smallconv/benchmarks/smallconv/whole.py /work/wt/$t $1 $2 2>/dev/null )
  done
done
