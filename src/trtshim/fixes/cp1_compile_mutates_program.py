"""CP-1: ``torch_tensorrt.dynamo.compile`` rewrites the caller's ExportedProgram in place.

Upstream: ``pre_export_lowering`` runs its passes on ``exported_program.graph_module`` itself
(torch_tensorrt 2.3+; passes from 2.8: ``remove_detach``; from 2.10 also ``remove_assert_nodes`` and
``rule_based_autocast``). After an fp16 compile on 2.13/2.14 the caller's program computes in fp16
(measured: ``ep.module()(x).dtype == torch.float16``), and from 2.10 its shape assertions are gone.
trtshim keeps the exported source (``include_source``) to recompile from, so it must stay intact.
Fix: hand ``dynamo.compile`` a copy of the program whose graph is new and whose weights are shared
(no extra weight memory). Not fixed upstream as of 2.14.0. Delete when every supported release
copies the program before lowering it.
"""

from __future__ import annotations

import copy
from typing import Any

from trtshim.fixes.registry import Fix


def graph_copy(program: Any) -> Any:
    """A deep copy of ``program`` that shares its tensors and opaque objects (weights are not copied)."""
    import torch

    shared: dict[int, Any] = {}
    for store in (program.state_dict, getattr(program, "constants", None) or {}):
        for value in store.values():
            shared[id(value)] = value
    for _, value in program.graph_module.named_buffers():
        shared[id(value)] = value
    for _, value in program.graph_module.named_parameters():
        shared[id(value)] = value
    for value in vars(program.graph_module).values():
        if isinstance(value, (torch.Tensor, torch.ScriptObject)):
            shared[id(value)] = value
    return copy.deepcopy(program, memo=dict(shared))


def copy_before_compile(job: Any) -> None:
    """Hook ``compile.program``: ``dynamo.compile`` gets a graph copy (once, whoever asks first)."""
    if not job.copied:
        job.program = graph_copy(job.program)
        job.copied = True


FIX = Fix(
    id="CP-1",
    family="compile",
    title="dynamo.compile gets a copy of the program (its lowering rewrites the caller's graph)",
    affected={"torch_tensorrt": ">=2.8"},
    fixed_in={},
    links=(
        "https://github.com/pytorch/TensorRT/blob/v2.14.0/py/torch_tensorrt/dynamo/lowering/passes/_aten_lowering_pass.py",
    ),
    stage="compile",
    how="transform",
    hooks={"compile.program": copy_before_compile},
)
