"""The torch-only backend: ``torch.export.export`` with every version-dependent default made explicit.

The IR: ``ir="inference"`` (the default) is what torch <= 2.5's ``export`` returned, a functional graph
whose mutations are outputs; from torch 2.6 it takes ``run_decompositions({})``. Where torch's own
decomposition fails on a program that exported (aliased mutated buffers, some KV-cache programs:
``expected compiled_fn to be GraphModule``), trtshim keeps the program ``export`` returned, which
torch's own save / load round trip runs as well, and says so with ``DecompositionFallbackWarning``;
the manifest records the IR the program has (``ir``). ``ir="training"`` never decomposes.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
from torch.export import ExportedProgram

from trtshim.compat.backends.tensorrt_api import PRECISIONS
from trtshim.compat.environment import Environment
from trtshim.compat.gates import requires
from trtshim.errors import (
    CompileError,
    DecompositionFallbackWarning,
    ExportFallbackWarning,
    OptionError,
    announce,
    first_line,
)

OPTIONS = ("strict", "ir")
IRS = ("inference", "training")


def default_strict(env: Environment) -> bool:
    """Our explicit ``strict`` choice. torch flipped its default to False in 2.8; non-strict export
    matured in 2.5, so we ask for non-strict from 2.5 on and strict before, on every release alike.
    Where our choice fails and the caller made none, the other mode is tried (``ExportFallbackWarning``):
    torch 2.5-2.7 export strictly by default, and some programs export only that way there."""
    return bool(requires("torch<2.5", env=env))


def returns_training_ir(env: Environment) -> bool:
    """torch >= 2.6 ``export`` returns the training IR; inference IR needs ``run_decompositions``."""
    return bool(requires("torch>=2.6", env=env))


class Exported(NamedTuple):
    program: ExportedProgram
    ir: str  # the IR the program has: "inference" or "training"


def decomposed(ep: ExportedProgram) -> Exported:
    """``ep`` in inference IR, or ``ep`` itself (training IR, announced) where torch cannot decompose it."""
    try:
        out = ep.run_decompositions({})
        leaves, users = out.call_spec.out_spec, _user_outputs(out)
        if leaves is not None and leaves.num_leaves != users:
            # tensor-subclass outputs (a TwoTensor weight added to x): the subclass is flattened into
            # its parts but the output spec still holds one tensor; torch's own module refuses to run
            raise ValueError(f"it returns {users} outputs for an output spec of {leaves.num_leaves}")
        return Exported(out, "inference")
    except Exception as exc:
        announce(
            f"torch's run_decompositions failed on this program ({type(exc).__name__}: {first_line(exc)}); "
            "trtshim keeps the training-IR program torch.export returned, which torch's own save/load "
            "runs too (manifest: ir=training)",
            DecompositionFallbackWarning,
        )
        return Exported(ep, "training")


def _user_outputs(ep: ExportedProgram) -> int:
    from torch.export.graph_signature import OutputKind

    return sum(1 for spec in ep.graph_signature.output_specs if spec.kind == OutputKind.USER_OUTPUT)


def _cast(x: Any, dtype: torch.dtype) -> Any:
    return x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x


def export(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    env: Environment,
    dynamic_shapes: Any = None,
    precision: str = "fp32",
    options: dict[str, Any],
) -> Exported:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OptionError(
            f"the export backend does not take option(s) {', '.join(unknown)}",
            f"its options are: {', '.join(OPTIONS)}",
        )
    ir = options.get("ir", "inference")
    if ir not in IRS:
        raise OptionError(f"ir={ir!r} is not one of {IRS}")
    if precision != "fp32":
        dtype = getattr(torch, PRECISIONS[precision])
        model = copy.deepcopy(model).to(dtype)
        args = tuple(_cast(a, dtype) for a in args)
        kwargs = {k: _cast(v, dtype) for k, v in kwargs.items()}
    chosen = options.get("strict")
    strict = default_strict(env) if chosen is None else bool(chosen)
    try:
        ep = torch.export.export(model, args, kwargs or None, dynamic_shapes=dynamic_shapes, strict=strict)
    except Exception as exc:
        first = f"{type(exc).__name__}: {first_line(exc)}"
        if chosen is not None:  # the caller's choice: no other mode is tried
            raise CompileError(f"torch.export.export failed (strict={strict}): {first}") from exc
        try:  # trtshim's default: the other mode, which is torch's own default on some release
            ep = torch.export.export(model, args, kwargs or None, dynamic_shapes=dynamic_shapes, strict=not strict)
        except Exception:
            raise CompileError(f"torch.export.export failed (strict={strict}, and strict={not strict}): {first}") from exc
        announce(
            f"torch.export.export failed with strict={strict} ({first}); the program was exported with "
            f"strict={not strict} (pass strict= to choose)",
            ExportFallbackWarning,
        )
    if ir == "inference" and returns_training_ir(env):
        return decomposed(ep)
    return Exported(ep, ir if returns_training_ir(env) else "inference")
