"""C heap phases (dsedge.util.heap_phase): what the quantiser relies on from glibc, checked in
a fresh process (the settings are process-wide)."""
import subprocess
import sys

import pytest

from dsedge import util

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or util._libc() is None,
                                reason="glibc's mallopt/malloc_trim")

_PROG = r'''
import numpy as np, sys
from dsedge import util
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
if sys.argv[1] == "managed":
    util.return_freed_memory_promptly()
util.heap_phase("activations")
base = rss()
blocks = [np.ones(1 << 18, np.float32) for _ in range(200)]   # 200 activation-sized blocks of 1 MiB
del blocks[::2]        # every other one freed: holes the heap cannot give back from its top
held = rss() - base
util.heap_phase("weights")
after = rss() - base
print(held, after)
'''


def _run(mode):
    out = subprocess.run([sys.executable, "-c", _PROG, mode], capture_output=True, text=True, check=True)
    return [int(v) for v in out.stdout.split()]


def test_weights_phase_returns_freed_activation_blocks():
    held, after = _run("managed")
    assert held >= 190                  # recycled in the heap while activations run
    assert after <= 110                 # the 100 freed blocks went back to the system


def test_phases_are_no_ops_unless_the_process_asked_for_them():
    # a library user's process keeps glibc's defaults: 1 MiB blocks are mappings of their own
    # (freed at once), where the managed activation phase keeps them in the heap
    held, after = _run("library")
    assert held <= 110 and after <= 110


def test_unknown_phase_is_an_error():
    with pytest.raises(ValueError, match="gradients"):
        util.heap_phase("gradients")
