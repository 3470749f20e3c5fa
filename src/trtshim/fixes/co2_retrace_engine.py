"""CO-2: re-exporting a compiled graph needs a fake class for its engine object, which TensorRT lacked.

Upstream: ``torch_tensorrt.save(..., retrace=True)`` runs ``torch.export.export`` over the compiled
module; tracing its ``tensorrt::Engine`` needs ``__obj_flatten__`` and a registered fake class, added in
torch_tensorrt 2.6.0 (pytorch/pytorch#138344, TensorRT PRs #3262, #3322). The same holds for any
TorchBind engine: non-strict re-export fails on torch 2.5+ with ``... does not have a field with name
'__obj_flatten__'`` (2.2: ``Invalid get_attr type <class 'torch.ScriptObject'>``; 2.3/2.4 trace it).
Fix: trtshim's save never re-traces a compiled graph: the hybrid exporter builds the program from the
graph as it is. Delete when torch_tensorrt < 2.6 leaves the matrix.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

FIX = Fix(
    id="CO-2",
    family="custom-ops",
    title="compiled graphs are saved without re-tracing (no fake class needed for the engine)",
    affected={"torch_tensorrt": ">=2.3,<2.6"},
    fixed_in={"torch_tensorrt": "2.6.0"},
    links=(
        "https://github.com/pytorch/pytorch/issues/138344",
        "https://github.com/pytorch/TensorRT/pull/3262",
        "https://github.com/pytorch/TensorRT/pull/3322",
    ),
    stage="hybrid",
    how="design",
    lives_in="trtshim.compat.programs.hybrid.export_hybrid (builds the program from the graph as it is)",
)
