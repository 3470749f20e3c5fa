"""LP-6: lifting an integer parameter crashes: ``Only Tensors of floating point and complex dtype can require gradients``.

Upstream: Torch-TensorRT's ``lift()`` re-wrapped state as ``nn.Parameter(t)`` (requires_grad=True)
until 2.14.0 (pytorch/TensorRT#4480). Fix: the hybrid exporter keeps existing Parameters and never
asks for gradients on non-float tensors; ``save`` declares them persistent buffers, because torch 2.9's
own loader re-wraps parameters the same way and fails (measured: 2.8 and 2.11 load them).
Delete when torch_tensorrt < 2.14 and torch 2.9 leave the matrix.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

FIX = Fix(
    id="LP-6",
    family="lifted-params",
    title="integer parameters are lifted without requires_grad",
    affected={"torch": ">=2.2"},
    fixed_in={"torch_tensorrt": "2.14.0"},
    links=("https://github.com/pytorch/TensorRT/pull/4480",),
    stage="save",
    how="transform",
)
