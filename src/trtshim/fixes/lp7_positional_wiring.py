"""LP-7: inlining a torch submodule matched its inputs to parent nodes *by name*; a collision rewires or drops nodes.

Upstream: Torch-TensorRT's ``inline_torch_modules`` (legacy exporter, 2.2.0-2.13.0), fixed in 2.14.0
(pytorch/TensorRT#4446). Fix: the hybrid exporter binds submodule placeholders positionally to the
call's arguments. Delete when torch_tensorrt < 2.14 leaves the matrix.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

FIX = Fix(
    id="LP-7",
    family="lifted-params",
    title="submodule inputs are wired positionally, never by name",
    affected={"torch": ">=2.2"},
    fixed_in={"torch_tensorrt": "2.14.0"},
    links=("https://github.com/pytorch/TensorRT/pull/4446",),
    stage="hybrid",
    how="design",
    lives_in="trtshim.compat.programs.hybrid._Builder.copy (placeholders bound by position)",
)
