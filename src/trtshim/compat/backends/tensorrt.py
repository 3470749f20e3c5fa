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
from trtshim.compat.backends import profiles, tensorrt_api
from trtshim.compat.backends.engine_builds import BuildLog, recording
from trtshim.compat.call.input_names import dim_names
from trtshim.compat.environment import Environment
from trtshim.errors import (
    BackendFallbackWarning,
    BackendUnavailableError,
    CompileError,
    DroppedFlagWarning,
    OptionError,
    announce,
    first_line,
)
from trtshim.fixes import FixReport, active

#: what to do when the builder drops a requested engine option (TensorRT-RTX has no hardware compatibility)
ON_DROPPED = ("warn", "refuse")


@dataclass
class CompileJob:
    """What the ``compile.program`` hooks get: the program for ``dynamo.compile`` and what to keep in torch."""

    program: ExportedProgram
    release: str  # the installed torch_tensorrt
    copied: bool = False  # ``program`` is already a graph copy of the caller's
    keep: dict[str, str] = field(default_factory=dict)  # op -> why it runs in PyTorch


@dataclass(frozen=True)
class Source:
    """The exported program TensorRT builds from, its Dim names, and the options for the build."""

    program: ExportedProgram
    dim_names: dict[str, str]
    options: dict[str, Any]


def export_source(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    env: Environment,
    dynamic_shapes: Any,
    precision: str,
    options: dict[str, Any],
) -> Source:
    """Export ``model`` for TensorRT (training IR: dynamo.compile decomposes it itself) with every dynamic
    dim's profile made explicit (``profiles.apply``); options are checked before anything runs."""
    if env.torch_tensorrt is None:
        raise BackendUnavailableError("torch_tensorrt is not installed")
    options = dict(options)
    strict = options.pop("strict", None)
    tensorrt_api.translate(
        env.torch_tensorrt.raw, precision=precision, options=_builder_options(dict(options))[0]
    )  # fail fast on options
    program = export_backend.export(
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
    names = dim_names(model, args, kwargs, dynamic_shapes, program)
    profiles.apply(
        program,
        unbounded_max=options.get("unbounded_dim_max", profiles.DEFAULT_UNBOUNDED_MAX),
        opt=options.get("opt"),
        dim_names=names,
    )
    return Source(program, names, options)


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
    builds: BuildLog | None = None,
) -> tuple[ExportedProgram, ExportedProgram]:
    """(the TensorRT program, the exported source it was built from); ``builds`` gets what the builder did."""
    source = export_source(
        model, args, kwargs, env=env, dynamic_shapes=dynamic_shapes, precision=precision, options=options
    )
    program = compile_exported(
        source.program,
        env=env,
        precision=precision,
        torch_executed_ops=torch_executed_ops,
        options=source.options,
        args=args,
        fixes=fixes,
        builds=builds,
        dim_names=source.dim_names,
    )
    return program, source.program


def engine_record(requested: dict[str, Any], builds: BuildLog) -> dict[str, Any]:
    """What the manifest says of the engines: each option as applied (every engine has it), as requested,
    every engine's profiles and flags as the builder had them, and the device they were built for."""
    engines = [b.to_dict() for b in builds.builds]
    applied = {
        name: bool(engines) and all(e["applied"][name] for e in engines)
        for name in ("version_compatible", "hardware_compatible", "refit")
    }
    return {
        **applied,
        "requested": {name: bool(requested.get(name)) for name in applied},
        "engines": engines,
        "dims": list(builds.dims),  # the call contract's lower bounds (the engines' min, 0 and 1 included)
        "device": build_device(),
    }


def dropped_in_record(record: dict[str, Any]) -> dict[str, str]:
    """Options a record's engines were asked for and built without."""
    requested = record.get("requested") or {}
    return {k: "what the cached engine was built with" for k, v in requested.items() if v and not record.get(k)}


def build_device() -> dict[str, Any] | None:
    """The GPU engines are built for here (name, compute capability); None without one."""
    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return {"name": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}


def example_args(program: ExportedProgram) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like the program's user inputs (dynamic dims at their smallest allowed size)."""
    from trtshim.compat.call.input_specs import input_specs_of

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
    builds: BuildLog | None = None,
    dim_names: dict[str, str] | None = None,
) -> ExportedProgram:
    """``torch_tensorrt.dynamo.compile`` on an exported program, then back to an ExportedProgram.

    Every dynamic dim of ``program`` first gets its explicit profile (``profiles.apply``: an unbounded
    dim is bounded by ``unbounded_dim_max``, announced; ``opt={"batch": 8}`` sets a dim's opt).
    The ``compile.program`` hooks of ``fixes`` (default: the compile and hybrid fixes this stack needs)
    run first: ``program`` is left as it was (CP-1); plugin-converted custom ops get their scalars
    positionally or stay in PyTorch (CO-4). Every engine the builder makes is read back into ``builds``
    (profiles, flags, hardware compatibility); a requested option an engine was built without is
    announced (``DroppedFlagWarning``) or, with ``on_dropped_flag="refuse"``, a ``CompileError``.
    """
    fixes = fixes if fixes is not None else active("compile", "hybrid")
    if env.torch_tensorrt is None:
        raise BackendUnavailableError("torch_tensorrt is not installed")
    release = env.torch_tensorrt.raw
    own = dict(options or {})
    dims = profiles.apply(
        program,
        unbounded_max=own.get("unbounded_dim_max", profiles.DEFAULT_UNBOUNDED_MAX),
        opt=own.get("opt"),
        dim_names=dim_names,
    )
    trt_options, on_dropped = _builder_options(own)
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
    inputs: list[Any] = list(args)
    if tensorrt_api.compile_api(release).profile_source == "inputs" and dims:  # 2.2: profiles come from Input objects only
        inputs = _profile_inputs(torch_tensorrt, program, dims, inputs)
    debug: Any = contextlib.nullcontext()
    if plan.debugger:  # torch_tensorrt >= 2.8: debug output through a context manager
        debug = torch_tensorrt.dynamo.Debugger(log_level="debug")
    # TensorRT's own messages go to a logger outside the "torch_tensorrt" tree
    trt_loggers = ("torch_tensorrt", "torch_tensorrt [TensorRT Conversion Context]")
    log = builds if builds is not None else BuildLog()
    log.dims = profiles.recorded(dims)
    with logs.captured(*trt_loggers, level=logging.ERROR) as records, recording() as seen:
        try:
            with debug:
                if plan.inputs_keyword is None:
                    compiled = torch_tensorrt.dynamo.compile(program, inputs, **call_kwargs)
                else:
                    compiled = torch_tensorrt.dynamo.compile(
                        program, **{plan.inputs_keyword: inputs}, **call_kwargs
                    )
        except Exception as exc:
            log.builds.extend(seen.builds)
            _check_dropped(log, trt_options, on_dropped, env)
            raise CompileError(
                f"torch_tensorrt {release} dynamo.compile failed: {_cause(exc, records)}"
            ) from exc
    log.builds.extend(seen.builds)
    _check_dropped(log, trt_options, on_dropped, env)
    if isinstance(compiled, ExportedProgram):  # torch_tensorrt 2.2 with output_format="exported_program"
        return compiled
    from trtshim.compat.programs.hybrid import export_hybrid

    return export_hybrid(compiled, args, fixes=fixes)


#: trtshim's own options of the TensorRT backend (the rest are translated for dynamo.compile)
OWN_OPTIONS = ("on_dropped_flag", "unbounded_dim_max", "opt")


def _profile_inputs(torch_tensorrt: Any, program: ExportedProgram, dims: list[Any], args: list[Any]) -> list[Any]:
    """``torch_tensorrt.Input`` objects carrying each dynamic input's (min, opt, max) shape."""
    out: list[Any] = []
    for arg, corners in zip(args, profiles.corner_shapes(program, dims)):
        if corners is None or corners[0] == corners[2] or not isinstance(arg, torch.Tensor):
            out.append(arg)
            continue
        low, opt, high = corners
        out.append(torch_tensorrt.Input(min_shape=low, opt_shape=opt, max_shape=high, dtype=arg.dtype))
    return out


def _builder_options(options: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the options for ``dynamo.compile``, what to do with a dropped flag)."""
    on_dropped = options.pop("on_dropped_flag", "warn")
    if on_dropped not in ON_DROPPED:
        raise OptionError(f"on_dropped_flag={on_dropped!r} is not one of {ON_DROPPED}")
    options.pop("unbounded_dim_max", None)
    options.pop("opt", None)
    return options, str(on_dropped)


def _check_dropped(log: BuildLog, requested: dict[str, Any], on_dropped: str, env: Environment) -> None:
    announce_dropped(log.dropped(requested), on_dropped, env)


def announce_dropped(dropped: dict[str, str], on_dropped: str, env: Environment) -> None:
    """A requested option the engines lack: ``DroppedFlagWarning``, or CompileError (``on_dropped='refuse'``)."""
    if not dropped:
        return
    flavour = f"{env.torch_tensorrt_flavour} {env.torch_tensorrt.raw if env.torch_tensorrt else ''}".strip()
    what = "; ".join(f"{name}=True (the engine has {has})" for name, has in dropped.items())
    reason = f"{flavour} (TensorRT {env.tensorrt_version}) built the engine without {what}"
    if on_dropped == "refuse":
        raise CompileError(reason, "drop the option, or build with a TensorRT flavour that supports it")
    announce(f"{reason}; the manifest records what was applied", DroppedFlagWarning)


def _cause(exc: Exception, records: logs.Records) -> str:
    """The exception's first line, and TensorRT's logged error wherever it says more (the builder's
    "returned None" hides the profile or Myelin error that TensorRT logged)."""
    first = first_line(exc)
    text = f"{type(exc).__name__}: {first}".rstrip(": ")
    logged = [first_line(m) for m in records.messages if m.strip()]
    specific = [m for m in logged if "Error Code" in m] or logged
    if specific and specific[0] not in text:
        text = f"{text} -- logged cause: {specific[0]}"
    return text
