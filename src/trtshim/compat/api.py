"""``compile``: detect -> select fixes -> backend -> ``CompiledModule``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from trtshim.compat import backends
from trtshim.compat.call.input_names import dim_names, input_paths
from trtshim.compat.call.module import CompiledModule
from trtshim.compat.environment import detect
from trtshim.compat.serial import serialized
from trtshim.errors import OptionError, UnsupportedModelError
from trtshim.fixes import REGISTRY, select


@serialized
def compile(
    model: torch.nn.Module,
    example_inputs: Sequence[Any] | torch.Tensor,
    *,
    backend: str = "auto",
    dynamic_shapes: Any = None,
    precision: str = "fp32",
    torch_executed_ops: Sequence[str] = (),
    example_kwargs: dict[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    **backend_options: Any,
) -> CompiledModule:
    """Compile ``model`` for deployment, the same way on every supported torch / torch_tensorrt.

    ``backend``: ``"auto"`` (TensorRT when it can run here, else ``"export"``, announced with a
    ``BackendFallbackWarning``), ``"export"`` (torch-only), ``"tensorrt"`` or ``"inductor"`` (an
    AOTInductor package: compiled code, torch >= 2.6; option ``inductor_configs``).
    ``precision``: ``"fp32"``, ``"fp16"`` or ``"bf16"``.
    ``torch_executed_ops``: ops that must stay in PyTorch (every op does on the export backend).
    ``cache``: a folder for trtshim's engine cache (tensorrt backend; ``compat.backends.engine_cache``):
    a hit skips the TensorRT build, ``module.from_cache`` says which it was.
    ``backend_options``: backend specific; an unknown one is an error, never dropped.
    """
    from trtshim.compat.backends import export as export_backend

    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(f"compile() takes an nn.Module, got {type(model).__name__}")
    args = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    if precision not in export_backend.PRECISIONS:
        raise OptionError(
            f"precision={precision!r} is not supported", f"use one of {', '.join(export_backend.PRECISIONS)}"
        )
    if isinstance(torch_executed_ops, str):
        raise OptionError(
            "torch_executed_ops must be a collection of op names, not one string", "wrap it: [name]"
        )
    name = backends.resolve(backend)
    env = detect()
    kwargs = dict(example_kwargs or {})
    if name != "tensorrt":
        if cache is not None:
            raise OptionError(f"cache= is for TensorRT engines; the {name} backend builds none")
        if name == "inductor":
            from trtshim.compat.backends import inductor

            inductor.check_available(env)
            unknown = sorted(set(backend_options) - set(export_backend.OPTIONS) - set(inductor.OPTIONS))
            if unknown:
                raise OptionError(
                    f"the inductor backend does not take option(s) {', '.join(unknown)}",
                    f"its options are: {', '.join((*export_backend.OPTIONS, *inductor.OPTIONS))}",
                )
        export_options = {k: v for k, v in backend_options.items() if name != "inductor" or k not in inductor.OPTIONS}
        program, ir = export_backend.export(
            model,
            args,
            kwargs,
            env=env,
            dynamic_shapes=dynamic_shapes,
            precision=precision,
            options=export_options,
        )
        if name == "inductor":
            return _packaged(model, args, kwargs, dynamic_shapes, program, ir, env, backend_options)
        compiled = CompiledModule(
            program,
            backend=name,
            environment=env,
            fixes=select(env, REGISTRY, stages=("export", "call")),
            dim_names=dim_names(model, args, kwargs, dynamic_shapes, program),
            input_paths=input_paths(model, args, kwargs),
        )
        compiled.program_ir = ir
        return compiled
    from trtshim.compat.backends import engine_cache
    from trtshim.compat.backends import tensorrt as tensorrt_backend
    from trtshim.compat.backends.engine_builds import BuildLog

    report = select(env, REGISTRY, stages=("export", "compile", "hybrid", "call"))
    source = tensorrt_backend.export_source(
        model, args, kwargs, env=env, dynamic_shapes=dynamic_shapes, precision=precision, options=backend_options
    )
    paths = input_paths(model, args, kwargs)
    how = {
        "precision": precision,
        "torch_executed_ops": list(torch_executed_ops),
        "options": {k: v for k, v in backend_options.items() if k != "strict"},
    }
    builds = BuildLog()

    def build() -> CompiledModule:
        program = tensorrt_backend.compile_exported(
            source.program,
            env=env,
            precision=precision,
            torch_executed_ops=tuple(torch_executed_ops),
            options=source.options,
            args=args,
            fixes=report,
            builds=builds,
            dim_names=source.dim_names,
        )
        module = CompiledModule(
            program, backend=name, environment=env, fixes=report, dim_names=source.dim_names, input_paths=paths
        )
        module.engine_options = tensorrt_backend.engine_record(backend_options, builds)
        return module

    store = engine_cache.EngineCache.of(cache)
    module, hit = engine_cache.cached(
        store,
        key=lambda: store.key(  # type: ignore[union-attr]
            source.program, env, tensorrt_backend.build_device(), how=how, dim_names=source.dim_names, paths=paths
        ),
        build=build,
    )
    if hit:
        tensorrt_backend.announce_dropped(
            tensorrt_backend.dropped_in_record(module.engine_options),
            str(backend_options.get("on_dropped_flag", "warn")),
            env,
        )
    module.source_program = source.program
    module.compile_options = how
    module.from_cache = hit
    return module


def package(module: CompiledModule, *, inductor_configs: dict[str, Any] | None = None) -> CompiledModule:
    """AOTInductor's compiled code for a compiled module's program (the ``export`` or ``tensorrt`` backend's,
    TensorRT engines included where torch_tensorrt >= 2.8 can package them): a module of the inductor
    backend with the same input contract, names and engine record, which ``save`` writes as one package."""

    from trtshim.compat.backends import inductor
    from trtshim.compat.call.module import PackagedModule

    if not isinstance(module, CompiledModule) or isinstance(module, PackagedModule):
        raise OptionError(
            f"package() takes a module of the export or tensorrt backend, got {type(module).__name__}"
            + (" (already packaged)" if isinstance(module, PackagedModule) else ""),
            "pass what compat.compile or compat.load returned",
        )
    env = module.environment
    inductor.check_available(env)
    program = module.program
    inductor.check_engines(program, env)
    if program.example_inputs is None:
        raise OptionError("the module's program holds no example inputs, which AOTInductor compiles from", "compile it with compat.compile")
    options = {"inductor_configs": dict(inductor_configs or {})}
    files, runner = inductor.compiled(program, options)
    packaged = PackagedModule(
        program,
        runner,
        files,
        environment=env,
        fixes=module.fix_report,
        dim_names={d.symbol: d.dim for s in module.input_specs for d in s.dynamic if d.dim},
        input_paths=[s.path or s.name for s in module.input_specs],
    )
    packaged.engine_options = module.engine_options
    packaged.program_ir = module.program_ir
    packaged.compile_options = {"options": options}
    return packaged


def _packaged(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dynamic_shapes: Any,
    program: Any,
    ir: str,
    env: Any,
    options: dict[str, Any],
) -> CompiledModule:
    """The inductor backend: AOTInductor's compiled files for ``program``, loaded to run the calls."""

    from trtshim.compat.backends import inductor
    from trtshim.compat.call.module import PackagedModule

    files, runner = inductor.compiled(program, {k: v for k, v in options.items() if k in inductor.OPTIONS})
    module = PackagedModule(
        program,
        runner,
        files,
        environment=env,
        fixes=select(env, REGISTRY, stages=("export", "call")),
        dim_names=dim_names(model, args, kwargs, dynamic_shapes, program),
        input_paths=input_paths(model, args, kwargs),
    )
    module.program_ir = ir
    module.compile_options = {"options": {k: v for k, v in options.items() if k in inductor.OPTIONS}}
    return module
