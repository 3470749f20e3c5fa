"""SE-3: a program saved without range constraints fails to load with a dynamic dim: ``KeyError: s0``.

Upstream: Torch-TensorRT's legacy exporter hard-coded ``range_constraints={}`` (2.3.0-2.10.0;
pytorch/TensorRT#2792, #3108, #3205, #3174); torch up to 2.5 then cannot rebuild the ShapeEnv on load
(pytorch/pytorch#137365, #136897; measured: 2.2-2.5 fail, 2.8-2.15 load). Fix: trtshim's exporter
harvests every dynamic dim's range from the graph's ShapeEnv, and ``save`` refills an empty
``range_constraints`` the same way. Delete when torch < 2.6 leaves the matrix.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

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
)
