"""pytest plugin: save every .dse the tests serialise, as fuzz seeds (not committed).

    DSE_FUZZ_DUMP=/tmp/kseeds python -m pytest -q -p runtimes.c.fuzz.dump_plugin tests/runtime/test_kernels_*.py

The kernel tests build one small artifact per case (every op, dtype, attribute form and
refusal), which reaches every kernel's `check` and `run`; wrapping `Artifact.to_bytes` collects
them (deduplicated by content, at most DSE_FUZZ_DUMP_MAX bytes each, default 16384) as seeds for
fuzz_loader without touching the tests.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dsedge import artifact as _artifact

_DIR = os.environ.get("DSE_FUZZ_DUMP")
_MAX = int(os.environ.get("DSE_FUZZ_DUMP_MAX", "16384"))

if _DIR:
    _orig = _artifact.Artifact.to_bytes

    def _to_bytes(self, *a, **kw):
        data = _orig(self, *a, **kw)
        if len(data) <= _MAX:
            p = Path(_DIR) / f"kernel_{hashlib.sha1(data).hexdigest()[:16]}.dse"
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        return data

    _artifact.Artifact.to_bytes = _to_bytes
