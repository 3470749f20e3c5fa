"""SE-3: a program saved without range constraints fails to load with a dynamic dim: ``KeyError: s0``.

Upstream: Torch-TensorRT's legacy exporter hard-coded ``range_constraints={}`` (2.3.0-2.10.0;
pytorch/TensorRT#2792, #3108, #3205, #3174); torch up to 2.5 then cannot rebuild the ShapeEnv on load
(pytorch/pytorch#137365, #136897; measured: 2.2-2.5 fail, 2.8-2.15 load). Fix: trtshim's exporter
harvests every dynamic dim's range from the graph's ShapeEnv, and ``save`` refills an empty
``range_constraints`` the same way. Delete when torch < 2.6 leaves the matrix.
"""

from __future__ import annotations

from typing import Any

from trtshim.fixes.registry import Fix


def harvest(user_nodes: list[Any], fake_mode: Any) -> dict[Any, Any]:
    """The range of every dynamic dim of ``user_nodes``' fake values, from the ShapeEnv (what
    torch.export records itself; trtshim's hybrid exporter calls this for every program it builds)."""
    import torch

    shape_env = getattr(fake_mode, "shape_env", None)
    if shape_env is None:
        return {}
    out: dict[Any, Any] = {}
    for node in user_nodes:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            continue
        for d in val.shape:
            expr = getattr(getattr(d, "node", None), "expr", None)
            for sym in getattr(expr, "free_symbols", ()):
                if sym in shape_env.var_to_range:
                    out[sym] = shape_env.var_to_range[sym]
    return out


def refill_range_constraints(ep: Any) -> Any:
    """Hook ``save.repair``: an empty ``range_constraints`` is refilled from the graph's ShapeEnv, in place."""
    from trtshim.compat.programs.program import fake_mode, user_input_placeholders

    if ep.range_constraints:
        return ep
    users = user_input_placeholders(ep)
    ranges = harvest(users, fake_mode(users))
    if ranges:
        ep._range_constraints = ranges
    return ep


FIX = Fix(
    id="SE-3",
    family="serialization",
    title="dynamic-dim range constraints survive save -> load",
    affected={"torch": "<2.6"},
    fixed_in={"torch": "2.6.0", "torch_tensorrt": "2.11.0"},
    links=(
        "https://github.com/pytorch/TensorRT/issues/2792",
        "https://github.com/pytorch/TensorRT/issues/3174",
        "https://github.com/pytorch/pytorch/issues/137365",
        "https://github.com/pytorch/pytorch/issues/136897",
    ),
    stage="save",
    how="transform",
    hooks={"save.repair": refill_range_constraints},
)
