"""``CompiledModule``: what ``compile`` and ``load`` return.

It calls the program's flat graph directly with the lifted parameters / buffers / constants
already bound, after the program's input contract (``compat.contract``: what torch's own module
refuses, plus dtype and device) checked from a plan built once. ``ExportedProgram.module()``
instead runs a pytree flatten, a guard pass and an unflatten on every call. Lifted tensors are registered on this module under their original FQNs,
so ``.to()``, ``.state_dict()`` and ``.parameters()`` behave as on the source model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.export import ExportedProgram
from torch.utils import _pytree as pytree

from trtshim.compat.call.contract import InputBinder, InputContract
from trtshim.compat.call.input_specs import (
    InputSpec,
    dim_names_of_manifest,
    input_specs_of,
    paths_of_manifest,
)
from trtshim.compat.programs import program as prog
from trtshim.errors import ArtifactError, CompileError

if TYPE_CHECKING:
    from trtshim.compat.environment import Environment
    from trtshim.fixes.registry import FixReport


def _is_leaf(spec: Any) -> bool:
    is_leaf = getattr(spec, "is_leaf", None)
    return bool(is_leaf()) if callable(is_leaf) else spec.type is None


#: the keys of a manifest's ``engine`` record that describe the engines as built
ENGINE_KEYS = ("version_compatible", "hardware_compatible", "refit", "requested", "engines", "dims", "device")


def engine_of_manifest(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The engines as an artifact's manifest records them (``{}`` where it holds none)."""
    engine = (manifest or {}).get("engine") or {}
    return {k: engine[k] for k in ENGINE_KEYS if k in engine}


class CompiledModule(nn.Module):
    """A compiled model with a stable call path. Build it with ``trtshim.compat.compile`` or ``load``."""

    def __init__(
        self,
        program: ExportedProgram,
        *,
        backend: str,
        environment: Environment,
        fixes: FixReport | None = None,
        manifest: dict[str, Any] | None = None,
        dim_names: dict[str, str] | None = None,
        input_paths: list[str] | None = None,
    ) -> None:
        super().__init__()
        from trtshim.fixes.registry import FixReport

        self._program = program
        self._backend = backend
        self._environment = environment
        self._fix_report = fixes if fixes is not None else FixReport(())
        self._manifest = manifest
        self.source_program: ExportedProgram | None = None  # before TensorRT compilation (include_source)
        self.compile_options: dict[str, Any] = {}  # how it was compiled, to recompile from the source
        self.from_cache = False  # compile(..., cache=DIR) found its engines in the cache
        # "inference" | "training" where trtshim exported it (the manifest's ``ir`` after a load)
        self.program_ir: str | None = (manifest or {}).get("ir")
        # The graph module is not registered as a child: its placeholders are bound here instead.
        self._graph_forward: Callable[..., Any] = prog.runnable_graph_module(program).forward

        slots = prog.input_slots(program)
        constants = prog.program_constants(program)
        self._custom_objs: dict[str, Any] = {}
        self._slot_plan: list[tuple[str, str | int]] = []  # ("lifted", fqn) | ("user", index) | ("obj", fqn)
        registered: set[str] = set()
        for slot in slots:
            if slot.kind == "USER_INPUT":
                self._slot_plan.append(("user", slot.index or 0))
                continue
            value = prog.lifted_value(program, slot, constants)
            fqn = slot.target or slot.name
            if isinstance(value, torch.Tensor) and slot.kind != "TOKEN":
                # every lifted tensor is state of this module, so .to() moves constants too (LP-4)
                persistent = slot.kind == "BUFFER" and slot.persistent is not False
                kind = slot.kind if slot.kind == "PARAMETER" else "BUFFER" if persistent else "BUFFER_NP"
                if fqn not in registered:
                    prog.register(self, fqn, value, kind)
                    registered.add(fqn)
                self._slot_plan.append(("lifted", fqn))
            else:
                self._custom_objs[fqn] = value
                self._slot_plan.append(("obj", fqn))
        self._n_user = sum(1 for k, _ in self._slot_plan if k == "user")
        self._lifted_first = all(
            k != "user" for k, _ in self._slot_plan[: len(self._slot_plan) - self._n_user]
        )

        if manifest is not None:
            dim_names = dim_names_of_manifest(manifest) if dim_names is None else dim_names
            input_paths = paths_of_manifest(manifest) if input_paths is None else input_paths
        self.input_specs: tuple[InputSpec, ...] = tuple(input_specs_of(program, dim_names, input_paths))
        self._contract = InputContract(program, self.input_specs)
        # TensorRT engines as built (SE-6's manifest record): flags, profiles, each Dim's engine range
        self.engine_options = engine_of_manifest(manifest)
        out_spec = program.call_spec.out_spec
        self._binder = InputBinder(program.call_spec.in_spec, self.input_specs)
        self._flat_call = self._binder.flat_call
        self._out_spec = out_spec
        plan = prog.output_plan(program)
        leaves = None if out_spec is None else out_spec.num_leaves
        if leaves is not None and leaves != len(plan.user):
            error = CompileError if manifest is None else ArtifactError
            raise error(
                f"the program returns {len(plan.user)} user outputs but its output spec holds {leaves}: "
                "calling it would drop or misplace outputs",
                "torch's run_decompositions does this to tensor-subclass outputs; compile with ir='training'",
            )
        self._user_outputs = plan.user
        self._mutations = plan.mutations
        self._input_mutations = plan.input_mutations
        self._all_outputs_user = (
            not plan.mutations and not plan.input_mutations and plan.user == tuple(range(plan.total))
        )
        self._single_output = out_spec is not None and _is_leaf(out_spec)
        self._refresh()

    # --- public facts ------------------------------------------------------------------------

    @property
    def engine_options(self) -> dict[str, Any]:
        """What the TensorRT builder applied (flags, requested, engines, device) and each Dim's engine
        range (``dims``): the call refuses a size outside it, below its min too (0 and 1 included)."""
        return self._engine_options

    @engine_options.setter
    def engine_options(self, record: dict[str, Any]) -> None:
        self._engine_options = dict(record)
        dims = record.get("dims") or []
        self._contract.engine_ranges(
            {d["symbol"]: (int(d["min"]), int(d["max"])) for d in dims if isinstance(d, dict) and "symbol" in d}
        )

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def environment(self) -> Environment:
        return self._environment

    @property
    def fixes_applied(self) -> tuple[str, ...]:
        """Ids of the fixes applied while building this module (the full report: ``fix_report``)."""
        return self._fix_report.applied_ids

    @property
    def fix_report(self) -> FixReport:
        return self._fix_report

    @property
    def program(self) -> ExportedProgram:
        """The underlying ExportedProgram (its state is the one bound here at build time)."""
        return self._program

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The manifest this module was loaded with (``None`` for a freshly compiled one)."""
        return self._manifest

    @property
    def device(self) -> torch.device | None:
        return self._device

    # --- state binding -----------------------------------------------------------------------

    def _refresh(self) -> None:
        """Rebind the flat argument prefix after anything replaced lifted tensors (``.to()``, loads)."""
        values: list[Any] = []
        for kind, key in self._slot_plan:
            if kind == "lifted":
                values.append(prog.attribute(self, str(key)))
            elif kind == "obj":
                values.append(self._custom_objs[str(key)])
        self._bound = tuple(values)
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        self._device = tensors[0].device if tensors else self._placeholder_device()

    def _placeholder_device(self) -> torch.device | None:
        for node in prog.user_input_placeholders(self._program):
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor):
                return val.device
        return None

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> CompiledModule:
        super()._apply(fn, *args, **kwargs)
        self._refresh()
        return self

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._refresh()
        return result

    # --- the call path -----------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        flat: Any = args if self._flat_call and not kwargs else self._binder.flatten(args, kwargs)
        self._contract.check(flat, self._device)
        if self._lifted_first:
            out = self._graph_forward(*self._bound, *flat)
        else:
            out = self._graph_forward(*self._interleave(flat))
        if not self._all_outputs_user:
            for pos, fqn in self._mutations:
                prog.attribute(self, fqn).copy_(out[pos])
            for pos, index in self._input_mutations:
                flat[index].copy_(out[pos])
            out = [out[i] for i in self._user_outputs]
        if self._single_output:
            return out[0]
        return pytree.tree_unflatten(list(out), self._out_spec)

    def _interleave(self, flat: Any) -> list[Any]:
        bound = iter(self._bound)
        return [flat[int(key)] if kind == "user" else next(bound) for kind, key in self._slot_plan]

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"backend={self._backend!r}, inputs={len(self.input_specs)}, parameters={n}"


class PackagedModule(CompiledModule):
    """A ``CompiledModule`` whose calls run AOTInductor's compiled code (``backend="inductor"``): the
    program still gives the input contract, the manifest's facts and what ``save`` writes."""

    def __init__(self, program: ExportedProgram, runner: Any, files: list[str], **kwargs: Any) -> None:
        super().__init__(program, backend="inductor", **kwargs)
        self._runner = runner
        self.aoti_files = list(files)  # the compiled files ``save`` packages with the program

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        flat: Any = args if self._flat_call and not kwargs else self._binder.flatten(args, kwargs)
        self._contract.check(flat, self._device)
        return self._runner(*args, **kwargs)


class ScriptedModule(nn.Module):
    """A TorchScript artifact loaded by ``load``: the ScriptModule plus the same facts as CompiledModule."""

    def __init__(self, script: Any, *, environment: Environment, manifest: dict[str, Any] | None) -> None:
        super().__init__()
        self.script = script
        self._environment = environment
        self._manifest = manifest

    backend = property(lambda self: "torchscript")
    environment = property(lambda self: self._environment)
    manifest = property(lambda self: self._manifest)
    fixes_applied: tuple[str, ...] = ()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.script(*args, **kwargs)
