"""``CompiledModule``: what ``compile`` and ``load`` return.

It calls the program's flat graph directly with the lifted parameters / buffers / constants
already bound, after the input checks that catch real mistakes (count, rank, dtype, device,
static dims). ``ExportedProgram.module()`` instead runs a pytree flatten, a guard pass and an
unflatten on every call. Lifted tensors are registered on this module under their original FQNs,
so ``.to()``, ``.state_dict()`` and ``.parameters()`` behave as on the source model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn
from torch.export import ExportedProgram
from torch.utils import _pytree as pytree

from trtshim.compat import program as prog
from trtshim.errors import InputMismatchError

if TYPE_CHECKING:
    from trtshim.compat.environment import Environment
    from trtshim.fixes.registry import FixReport


@dataclass(frozen=True)
class InputSpec:
    """What one flat user input must look like. ``shape`` holds ints for static dims, names for dynamic."""

    name: str
    dtype: torch.dtype | None  # None: a non-tensor input
    shape: tuple[int | str, ...]
    dynamic: tuple[tuple[int, str, int, int | None], ...]  # (axis, symbol, min, max)

    @property
    def static_dims(self) -> tuple[tuple[int, int], ...]:
        return tuple((i, d) for i, d in enumerate(self.shape) if isinstance(d, int))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", "") if self.dtype is not None else None,
            "shape": list(self.shape),
            "dynamic": [{"axis": a, "symbol": s, "min": lo, "max": hi} for a, s, lo, hi in self.dynamic],
        }


def _bound(value: Any) -> int | None:
    try:
        v = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if abs(v) < 2**62 else None


def input_specs_of(ep: ExportedProgram) -> list[InputSpec]:
    ranges = {str(k): v for k, v in ep.range_constraints.items()}
    out: list[InputSpec] = []
    for node in prog.user_input_placeholders(ep):
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            out.append(InputSpec(node.name, None, (), ()))
            continue
        shape: list[int | str] = []
        dynamic: list[tuple[int, str, int, int | None]] = []
        for axis, d in enumerate(val.shape):
            if isinstance(d, int):
                shape.append(d)
                continue
            sym = str(d)
            shape.append(sym)
            r = ranges.get(sym)
            lo = _bound(getattr(r, "lower", 0)) or 0
            dynamic.append((axis, sym, lo, _bound(getattr(r, "upper", None))))
        out.append(InputSpec(node.name, val.dtype, tuple(shape), tuple(dynamic)))
    return out


def _assign(root: nn.Module, fqn: str, value: Any, kind: str) -> None:
    *path, leaf = fqn.split(".")
    mod = root
    for part in path:
        child = mod._modules.get(part)
        if child is None:
            child = nn.Module()
            mod.add_module(part, child)
        mod = child
    if kind == "PARAMETER":
        if not isinstance(value, nn.Parameter):  # integer params cannot require grad (upstream #4480)
            value = nn.Parameter(value, requires_grad=value.requires_grad and value.is_floating_point())
        mod.register_parameter(leaf, value)
    else:
        mod.register_buffer(leaf, value, persistent=(kind == "BUFFER_P"))


def _is_leaf(spec: Any) -> bool:
    is_leaf = getattr(spec, "is_leaf", None)
    return bool(is_leaf()) if callable(is_leaf) else spec.type is None


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
    ) -> None:
        super().__init__()
        from trtshim.fixes.registry import FixReport

        self._program = program
        self._backend = backend
        self._environment = environment
        self._fix_report = fixes if fixes is not None else FixReport(())
        self._manifest = manifest
        self.engine_options: dict[str, Any] = {}  # TensorRT build flags the manifest records (SE-6)
        self.source_program: ExportedProgram | None = None  # before TensorRT compilation (include_source)
        self.compile_options: dict[str, Any] = {}  # how it was compiled, to recompile from the source
        # The graph module is not registered as a child: its placeholders are bound here instead.
        self._graph_forward: Callable[..., Any] = prog.runnable_graph_module(program).forward

        slots = prog.input_slots(program)
        constants = prog.program_constants(program)
        self._custom_objs: dict[str, Any] = {}
        self._slot_plan: list[tuple[str, str | int]] = []  # ("lifted", fqn) | ("user", index) | ("obj", fqn)
        for slot in slots:
            if slot.kind == "USER_INPUT":
                self._slot_plan.append(("user", slot.index or 0))
                continue
            value = prog.lifted_value(program, slot, constants)
            fqn = slot.target or slot.name
            if isinstance(value, torch.Tensor) and slot.kind != "TOKEN":
                kind = "BUFFER_P" if slot.kind == "BUFFER" and slot.persistent is not False else slot.kind
                if fqn not in self._lifted_names():
                    _assign(self, fqn, value, kind)
                self._slot_plan.append(("lifted", fqn))
            else:
                self._custom_objs[fqn] = value
                self._slot_plan.append(("obj", fqn))
        self._n_user = sum(1 for k, _ in self._slot_plan if k == "user")
        self._lifted_first = all(
            k != "user" for k, _ in self._slot_plan[: len(self._slot_plan) - self._n_user]
        )

        self.input_specs: tuple[InputSpec, ...] = tuple(input_specs_of(program))
        self._checks = tuple(
            (s.dtype, len(s.shape), s.static_dims) if s.dtype is not None else None for s in self.input_specs
        )
        in_spec, out_spec = program.call_spec.in_spec, program.call_spec.out_spec
        flat_args_spec = pytree.tree_flatten((tuple(range(self._n_user)), {}))[1]
        self._in_spec = in_spec
        self._flat_call = in_spec is None or in_spec == flat_args_spec
        self._out_spec = out_spec
        plan = prog.output_plan(program)
        self._user_outputs = plan.user
        self._mutations = plan.mutations
        self._all_outputs_user = not plan.mutations and plan.user == tuple(range(plan.total))
        self._single_output = out_spec is not None and _is_leaf(out_spec)
        self._refresh()

    # --- public facts ------------------------------------------------------------------------

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

    def _lifted_names(self) -> set[str]:
        return {n for n, _ in self.named_parameters()} | {n for n, _ in self.named_buffers()}

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

    def _check(self, flat: tuple[Any, ...] | list[Any]) -> None:
        if len(flat) != self._n_user:
            raise InputMismatchError(
                f"expected {self._n_user} input(s), got {len(flat)}",
                "pass the same inputs as the example_inputs given to compile",
            )
        device = self._device
        for i, (x, check) in enumerate(zip(flat, self._checks)):
            if check is None:
                continue
            if not isinstance(x, torch.Tensor):
                raise InputMismatchError(f"input {i} must be a tensor, got {type(x).__name__}")
            dtype, ndim, static = check
            if x.dtype != dtype:
                raise InputMismatchError(
                    f"input {i} has dtype {x.dtype}, compiled for {dtype}", f"cast it: x.to({dtype})"
                )
            if x.dim() != ndim:
                raise InputMismatchError(
                    f"input {i} has rank {x.dim()} (shape {tuple(x.shape)}), compiled for rank {ndim}",
                    f"expected shape {list(self.input_specs[i].shape)}",
                )
            shape = x.shape
            for axis, size in static:
                if shape[axis] != size:
                    raise InputMismatchError(
                        f"input {i} has size {shape[axis]} on dim {axis}, compiled for {size} "
                        f"(shape {list(self.input_specs[i].shape)})",
                        "compile with dynamic_shapes to accept other sizes on that dim",
                    )
            if device is not None and x.device != device:
                raise InputMismatchError(
                    f"input {i} is on {x.device}, the module's weights are on {device}",
                    f"move the input (x.to({str(device)!r})) or the module (.to(...))",
                )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._flat_call and not kwargs:
            flat: Any = args
        else:
            flat, spec = pytree.tree_flatten((args, kwargs))
            if spec != self._in_spec:
                raise InputMismatchError(
                    "inputs are structured differently from the example inputs given to compile",
                    f"expected the structure {self._in_spec}",
                )
        self._check(flat)
        if self._lifted_first:
            out = self._graph_forward(*self._bound, *flat)
        else:
            out = self._graph_forward(*self._interleave(flat))
        if not self._all_outputs_user:
            for pos, fqn in self._mutations:
                prog.attribute(self, fqn).copy_(out[pos])
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
