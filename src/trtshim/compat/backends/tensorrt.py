"""The TensorRT backend: export first (our export path), then ``torch_tensorrt.dynamo.compile`` — the one
call that works on every release 2.2-2.14 — with options translated per release, then trtshim's hybrid
exporter turns the result into an ExportedProgram that saves and loads like any other.

Runs only where TensorRT engines can be built and run (see ``backends.tensorrt_usable``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.export import ExportedProgram

from trtshim.compat import logs
from trtshim.compat.backends import export as export_backend
from trtshim.compat.backends import tensorrt_api
from trtshim.compat.environment import Environment
from trtshim.errors import BackendFallbackWarning, BackendUnavailableError, CompileError, announce, first_line
from trtshim.fixes import FixReport, active


@dataclass
class CompileJob:
    """What the ``compile.program`` hooks get: the program for ``dynamo.compile`` and what to keep in torch."""

    program: ExportedProgram
    release: str  # the installed torch_tensorrt
    copied: bool = False  # ``program`` is already a graph copy of the caller's
    keep: dict[str, str] = field(default_factory=dict)  # op -> why it runs in PyTorch


def compile_program(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    env: Environment,
    dynamic_shapes: Any,
    precision: str,
    torch_executed_ops: tuple[str, ...],
    options: dict[str, Any],
    fixes: FixReport | None = None,
) -> tuple[ExportedProgram, ExportedProgram]:
    """(the TensorRT program, the exported source it was built from)."""
    if env.torch_tensorrt is None:
        raise BackendUnavailableError("torch_tensorrt is not installed")
    options = dict(options)
    strict = options.pop("strict", None)
    tensorrt_api.translate(
        env.torch_tensorrt.raw, precision=precision, options=options
    )  # fail fast on options
    source = export_backend.export(
        model,
        args,
        kwargs,
        env=env,
        dynamic_shapes=dynamic_shapes,
        precision="fp32",
        # dynamo.compile runs its own run_decompositions: a training-IR program is what it expects,
        # and decomposing to inference IR first doubled the whole compile (measured, torch 2.14)
        options={"strict": strict, "ir": "training"},
    ).program
    program = compile_exported(
        source,
        env=env,
        precision=precision,
        torch_executed_ops=torch_executed_ops,
        options=options,
        args=args,
        fixes=fixes,
    )
    return program, source


def example_args(program: ExportedProgram) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like the program's user inputs (dynamic dims at their smallest allowed size)."""
    from trtshim.compat.input_specs import input_specs_of

    out = []
    for spec in input_specs_of(program):
        lows = {d.axis: max(d.min, 1) for d in spec.dynamic}
        shape = [d if isinstance(d, int) else lows.get(i, 1) for i, d in enumerate(spec.shape)]
        out.append(torch.zeros(shape, dtype=spec.dtype or torch.float32))
    return tuple(out)


def compile_exported(
    program: ExportedProgram,
    *,
    env: Environment,
    precision: str = "fp32",
    torch_executed_ops: tuple[str, ...] | list[str] = (),
    options: dict[str, Any] | None = None,
    args: tuple[Any, ...] | None = None,
    fixes: FixReport | None = None,
) -> ExportedProgram:
    """``torch_tensorrt.dynamo.compile`` on an exported program, then back to an ExportedProgram.

    The ``compile.program`` hooks of ``fixes`` (default: the compile and hybrid fixes this stack needs)
    run first: ``program`` is left as it was (CP-1); plugin-converted custom ops get their scalars
    positionally or stay in PyTorch (CO-4).
    """
    fixes = fixes if fixes is not None else active("compile", "hybrid")
    if env.torch_tensorrt is None:
        raise BackendUnavailableError("torch_tensorrt is not installed")
    release = env.torch_tensorrt.raw
    trt_options = dict(options or {})
    if torch_executed_ops:
        trt_options["torch_executed_ops"] = tuple(torch_executed_ops)
    strongly_typed = env.torch_tensorrt_flavour == "torch-tensorrt-rtx"  # TensorRT-RTX
    plan = tensorrt_api.translate(
        release, precision=precision, options=trt_options, strongly_typed=strongly_typed
    )
    args = args if args is not None else example_args(program)
    job = CompileJob(program, release)
    for hook in fixes.hooks("compile.program"):  # CP-1, CO-4
        hook(job)
    program = job.program
    torch_tensorrt = importlib.import_module("torch_tensorrt")
    for op, why in job.keep.items():
        announce(
            f"{op} runs in PyTorch, not as a TensorRT plugin: on torch_tensorrt {release} {why} (CO-4)",
            BackendFallbackWarning,
        )
    if job.keep:
        trt_options["torch_executed_ops"] = (*trt_options.get("torch_executed_ops", ()), *job.keep)
        plan = tensorrt_api.translate(
            release, precision=precision, options=trt_options, strongly_typed=strongly_typed
        )
    call_kwargs = plan.resolved_kwargs()
    inputs = list(args)
    debug: Any = contextlib.nullcontext()
    if plan.debugger:  # torch_tensorrt >= 2.8: debug output through a context manager
        debug = torch_tensorrt.dynamo.Debugger(log_level="debug")
    # TensorRT's own messages go to a logger outside the "torch_tensorrt" tree
    trt_loggers = ("torch_tensorrt", "torch_tensorrt [TensorRT Conversion Context]")
    with logs.captured(*trt_loggers, level=logging.ERROR) as records:
        try:
            with debug:
                if plan.inputs_keyword is None:
                    compiled = torch_tensorrt.dynamo.compile(program, inputs, **call_kwargs)
                else:
                    compiled = torch_tensorrt.dynamo.compile(
                        program, **{plan.inputs_keyword: inputs}, **call_kwargs
                    )
        except Exception as exc:
            raise CompileError(
                f"torch_tensorrt {release} dynamo.compile failed: {_cause(exc, records)}"
            ) from exc
    if isinstance(compiled, ExportedProgram):  # torch_tensorrt 2.2 with output_format="exported_program"
        return compiled
    from trtshim.compat.hybrid import export_hybrid

    return export_hybrid(compiled, args, fixes=fixes)


def _cause(exc: Exception, records: logs.Records) -> str:
    """The exception's first line; when that says nothing (a bare assert), what torch_tensorrt logged."""
    first = first_line(exc)
    text = f"{type(exc).__name__}: {first}".rstrip(": ")
    logged = [first_line(m) for m in records.messages if m.strip()]
    specific = [m for m in logged if "Error Code" in m] or logged
    if specific and (not first or first.endswith(":") or "While interpreting" in first):
        text = f"{text} -- logged cause: {specific[0]}"
    return text
