"""LP-4: ``torch.export.load`` has no ``map_location``; weights and lifted constants load where they were saved.

Upstream: pytorch/pytorch#114000, pytorch/TensorRT#2341, #2626, pytorch/pytorch#118621; a
``map_location`` for ``torch.export.load`` (pytorch/pytorch#189876) is still open.
From torch 2.5 (measured: 2.2-2.4 no, 2.5-2.15 yes) ``ep.module().to(device)`` also leaves lifted tensor
constants behind: ``Tensor on device cpu is not on the expected device meta!``.
Fix: ``load(device=...)`` moves parameters, buffers *and* lifted tensor constants (registered as
buffers on ``CompiledModule``, so ``.to()`` moves them too). Delete when torch.export.load takes a
map_location on every supported torch.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

FIX = Fix(
    id="LP-4",
    family="lifted-params",
    title="load(device=...) moves weights, buffers and lifted tensor constants",
    affected={"torch": ">=2.5"},
    fixed_in={},
    links=(
        "https://github.com/pytorch/pytorch/issues/114000",
        "https://github.com/pytorch/TensorRT/issues/2626",
        "https://github.com/pytorch/pytorch/pull/189876",
    ),
    stage="load",
    how="design",
    lives_in="trtshim.compat.call.module.CompiledModule (lifted constants are buffers: .to() moves them)",
)
