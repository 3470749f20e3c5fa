"""SE-6: a saved TensorRT program loads only inside its engine-ABI group; elsewhere the runtime fails late.

Upstream: ``Program to be deserialized targets a different Torch-TensorRT ABI Version (X) than the
Torch-TensorRT Runtime ABI Version (Y)`` (TRTEngine::verify_serialization_fmt); ABI groups per release
are in the matrix data. The embedded plan is also tied to the TensorRT version unless built
version-compatible. Fix: the manifest records the engine ABI, TensorRT version and compatibility flags;
``load`` compares them before deserializing and refuses a cross-ABI load with the reason. Not fixed
upstream (a format property): never deleted.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

FIX = Fix(
    id="SE-6",
    family="serialization",
    title="engine ABI and TensorRT version recorded at save, checked before load",
    affected={"torch_tensorrt": ">=2.2"},
    fixed_in={},
    links=("https://github.com/pytorch/TensorRT/blob/main/core/runtime/runtime.h",),
    stage="load",
    how="transform",
)
