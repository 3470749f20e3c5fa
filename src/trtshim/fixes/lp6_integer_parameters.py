"""LP-6: lifting an integer parameter crashes: ``Only Tensors of floating point and complex dtype can require gradients``.

Upstream: Torch-TensorRT's ``lift()`` re-wrapped state as ``nn.Parameter(t)`` (requires_grad=True)
until 2.14.0 (pytorch/TensorRT#4480). Fix: the hybrid exporter keeps existing Parameters and never
asks for gradients on non-float tensors; ``save`` declares them persistent buffers, because torch 2.9's
own loader re-wraps parameters the same way and fails (measured: 2.8 and 2.11 load them).
Delete when torch_tensorrt < 2.14 and torch 2.9 leave the matrix.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from trtshim.fixes.registry import Fix


def keep_parameter(value: Any) -> Any:
    """Hook ``hybrid.parameter``: a Parameter stays itself; a tensor never asks for gradients it cannot
    have (upstream: ``nn.Parameter(t)``, requires_grad=True, which fails on integers)."""
    from torch import nn

    if isinstance(value, nn.Parameter):
        return value
    return nn.Parameter(value, requires_grad=value.is_floating_point() and value.requires_grad)


def integer_parameters_as_buffers(ep: Any) -> tuple[Any, list[str]]:
    """``ep`` with non-float parameters declared as persistent buffers, and their FQNs.

    torch 2.9's own ``torch.export.load`` re-wraps parameters as ``nn.Parameter(t)`` and fails on
    integers. As a buffer a value keeps its FQN, dtype and state_dict key on every torch. Older torch
    saves them as they are: their archives never reach 2.9, and on 2.2 a buffer among the parameters
    would break ``ExportedProgram.__call__`` (it binds by kind, not by order). ``ep`` itself is left
    alone: the result shares its graph and tensors, with its own signature and state_dict mapping.
    """
    import torch
    from torch.export.graph_signature import InputKind

    from trtshim.compat.gates import release_in

    if not release_in(torch.__version__, ">=2.6"):  # only 2.6+ archives reach 2.9's loader (no metadata scan per save)
        return ep, []
    specs = list(ep.graph_signature.input_specs)
    has_persistent = "persistent" in {f.name for f in dataclasses.fields(specs[0])} if specs else False
    state = dict(ep.state_dict)
    demoted = []
    for i, spec in enumerate(specs):
        if spec.kind != InputKind.PARAMETER or spec.target not in state:
            continue
        value = state[spec.target]
        if value.is_floating_point() or value.is_complex():
            continue
        kwargs: dict[str, Any] = {"kind": InputKind.BUFFER, "arg": spec.arg, "target": spec.target}
        if has_persistent:
            kwargs["persistent"] = True
        specs[i] = type(spec)(**kwargs)
        state[str(spec.target)] = value.detach()
        demoted.append(str(spec.target))
    if not demoted:
        return ep, []
    out = copy.copy(ep)
    out._graph_signature = dataclasses.replace(ep.graph_signature, input_specs=specs)
    out._state_dict = state
    return out, demoted


def saved_program(ep: Any) -> Any:
    """Hook ``save.program``: integer parameters are saved as buffers (torch 2.9's loader)."""
    return integer_parameters_as_buffers(ep)[0]


FIX = Fix(
    id="LP-6",
    family="lifted-params",
    title="integer parameters are lifted without requires_grad, and saved as buffers",
    affected={"torch": ">=2.2"},
    fixed_in={"torch_tensorrt": "2.14.0"},
    links=("https://github.com/pytorch/TensorRT/pull/4480",),
    stage="hybrid",
    how="transform",
    hooks={"hybrid.parameter": keep_parameter, "save.program": saved_program},
)
