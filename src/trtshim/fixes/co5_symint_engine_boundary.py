"""CO-5: a SymInt crossing an engine boundary violates ``execute_engine(Tensor[] ...) -> Tensor[]``.

Upstream: Torch-TensorRT's inliner passes ``sym_size`` SymInts into ``input_tensors`` and wires SymInt
outputs straight through ``getitem`` (pytorch/TensorRT#4620, #4614); the schema violation breaks
re-export and AOTI serialization of dynamic-shape graphs. Fix: trtshim's hybrid exporter wraps SymInt
inputs with ``aten.scalar_tensor`` and unwraps SymInt outputs with ``aten.item``. Delete when no
supported torch_tensorrt inlines SymInts into the engine call (fix release not established upstream).
"""

from __future__ import annotations

from typing import Any

from trtshim.fixes.registry import Fix


def is_symint(value: Any) -> bool:
    import torch

    return isinstance(value, (int, torch.SymInt)) and not isinstance(value, bool)


def wrap_input(builder: Any, arg: Any) -> Any:
    """Hook ``hybrid.engine_input``: a SymInt going into an engine's ``Tensor[]`` becomes a 0-d tensor."""
    import torch
    from torch import fx

    if not (isinstance(arg, fx.Node) and is_symint(arg.meta.get("val"))):
        return arg
    node = builder.graph.call_function(torch.ops.aten.scalar_tensor.default, (arg,), {"dtype": torch.int64})
    node.meta["val"] = builder.fake_scalar()
    return node


def unwrap_output(builder: Any, item: Any, value: Any) -> Any:
    """Hook ``hybrid.engine_output``: a scalar an engine returns goes back to a SymInt (``aten.item``)."""
    import torch

    if not is_symint(value):
        return item
    node = builder.graph.call_function(torch.ops.aten.item.default, (item,))
    node.meta["val"] = value
    return node


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
    stage="hybrid",
    how="transform",
    hooks={"hybrid.engine_input": wrap_input, "hybrid.engine_output": unwrap_output},
)
