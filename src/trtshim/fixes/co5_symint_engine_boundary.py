"""CO-5: a SymInt crossing an engine boundary violates ``execute_engine(Tensor[] ...) -> Tensor[]``.

Upstream: Torch-TensorRT's inliner passes ``sym_size`` SymInts into ``input_tensors`` and wires SymInt
outputs straight through ``getitem`` (pytorch/TensorRT#4620, #4614); the schema violation breaks
re-export and AOTI serialization of dynamic-shape graphs. Fix: trtshim's hybrid exporter wraps SymInt
inputs with ``aten.scalar_tensor`` and unwraps SymInt outputs with ``aten.item``. Delete when no
supported torch_tensorrt inlines SymInts into the engine call (fix release not established upstream).
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

FIX = Fix(
    id="CO-5",
    family="custom-ops",
    title="SymInts cross engine boundaries as 0-d tensors, as the engine op's schema demands",
    affected={"torch": ">=2.2"},
    fixed_in={},
    links=(
        "https://github.com/pytorch/TensorRT/issues/4620",
        "https://github.com/pytorch/TensorRT/issues/4614",
    ),
    stage="save",
    how="transform",
)
