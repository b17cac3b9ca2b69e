"""Export of quantised graphs to the `.dse` artifact (docs/format.md, docs/kernels.md).

    from dsedge.export import save_dse, load_dse_graph
    save_dse(result, "model.dse", input_shapes={"input1": (1, 1, 64, 160)}, io_dtype="float32")
    g = load_dse_graph("model.dse")          # the artifact as an IR graph for dsedge.interp

specialize.py (static shapes, folding, guards), planner.py (arena plan), scratch.py (kernel
scratch formulas), dse.py (records, metadata, and the inverse for tests).
"""
from .dse import IO_DTYPES, Exported, export, load_dse_graph, save_dse, to_artifact  # noqa: F401
from .planner import MemoryPlan, check_plan, plan_memory  # noqa: F401
from .specialize import parse_shape, specialize  # noqa: F401
