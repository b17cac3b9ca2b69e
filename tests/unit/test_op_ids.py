"""Op ids are append-only (dsedge/ops/registry.py): tests/unit/data/op_ids.txt pins every id ever
issued. An artifact names its ops by id, so an id that changed its op, or was reused, would make a
runtime already shipped run a different op on a new artifact without any error."""
from pathlib import Path

import dsedge.ops  # noqa: F401  (registers the ops)
from dsedge.ops.registry import REGISTRY

PINNED = Path(__file__).parent / "data" / "op_ids.txt"


def pinned() -> dict[int, str]:
    out: dict[int, str] = {}
    for ln in PINNED.read_text().splitlines():
        if ln.strip() and not ln.startswith("#"):
            i, name = ln.split()
            assert int(i) not in out, f"op id {i} pinned twice"
            out[int(i)] = name
    return out


def test_every_registered_op_is_pinned_under_its_id():
    pins = pinned()
    for op in REGISTRY.all():
        assert op.id in pins, f"op {op.name} (id {op.id}) is not in {PINNED.name}: append `{op.id} {op.name}`"
        assert pins[op.id] == op.name, f"op id {op.id} was issued to {pins[op.id]}, now names {op.name}"


def test_no_pinned_id_is_reused_or_renamed():
    by_id = {op.id: op.name for op in REGISTRY.all()}
    assert len(by_id) == len(REGISTRY.all())                     # ids unique in the registry
    for i, name in pinned().items():                             # a retired id stays retired
        assert by_id.get(i, name) == name, f"op id {i} ({name}) now names {by_id[i]}"
