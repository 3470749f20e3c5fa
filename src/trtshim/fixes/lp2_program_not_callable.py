"""LP-2: ``ExportedProgram`` is not callable (``Unable to call ExportedProgram directly``) from torch 2.3.

Upstream: pytorch/TensorRT#2685; torch_tensorrt 2.2 returned programs and called them directly.
Fix: ``compile`` and ``load`` return a ``CompiledModule`` (an ``nn.Module`` calling the flat graph),
callable the same way on every torch. Permanent upstream behaviour: never deleted.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

FIX = Fix(
    id="LP-2",
    family="lifted-params",
    title="programs are not callable: wrap them in CompiledModule",
    affected={"torch": ">=2.3"},
    fixed_in={},
    links=("https://github.com/pytorch/TensorRT/issues/2685",),
    stage="call",
    how="design",
    lives_in="trtshim.compat.call.module.CompiledModule (an nn.Module that calls the flat graph)",
)
