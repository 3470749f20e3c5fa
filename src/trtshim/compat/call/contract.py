"""The input contract of a program: every check torch's own loaded ``ep.module()`` makes, precomputed.

torch checks each call against the program's placeholders (``_check_input_constraints_for_graph``):
non-tensor inputs must equal the value they were exported with (same type; NaN equals NaN), tensors
must have the exported rank, static dims their size, dynamic dims the same size wherever they share
a symbol, derived dims (``2 * batch``) a size of their form, and every dim its declared range (the
lower bound only above 2: torch lets 0/1 through at runtime; a Dim of TensorRT engines is held to the
engines' range at every size, ``engine_ranges``). trtshim checks the same, plus dtype
and device, plus an input exported as ``None`` (torch lets a tensor through there and silently ignores
it: ``mask=None`` exported, a mask passed, the result differs from eager) (a TensorRT engine is built for one of each), and builds the plan once so that a call
costs a few microseconds. Inputs are bound the way torch binds them: positional as exported,
keywords by name in any order, dicts by key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.utils import _pytree as pytree

from trtshim.compat.call.input_specs import DynamicDim, InputSpec, shown_bound
from trtshim.compat.programs import program as prog
from trtshim.compat.programs.pytree_types import children
from trtshim.errors import InputMismatchError

# --- the runtime check --------------------------------------------------------------------------

_TENSOR, _CONSTANT, _SYMINT, _NONE, _SKIP = range(5)


class InputContract:
    """The checks of one program's inputs, planned once; ``check(flat)`` raises ``InputMismatchError``."""

    def __init__(self, ep: ExportedProgram, specs: Sequence[InputSpec]) -> None:
        self.specs = tuple(specs)
        exprs = {str(r): r for r in ep.range_constraints}
        placeholder_vals = [n.meta.get("val") for n in prog.user_input_placeholders(ep)]
        plan: list[tuple[Any, ...]] = []
        self._symbolic = False
        for i, spec in enumerate(self.specs):
            val: Any = placeholder_vals[i]
            if spec.kind == "tensor":
                dyn = [_dim_rule(d, val.shape[d.axis].node.expr if d.axis is not None else None, exprs) for d in spec.dynamic]
                plan.append((_TENSOR, spec.dtype, len(spec.shape), spec.static_dims, tuple(r for r in dyn if r)))
                self._symbolic = self._symbolic or bool(dyn)
            elif spec.kind == "symint":
                rule = _dim_rule(spec.dynamic[0], val.node.expr, exprs)
                plan.append((_SYMINT, rule) if rule else (_SKIP,))
                self._symbolic = True
            elif spec.kind == "constant" and spec.value is not None:
                v = spec.value
                plan.append((_CONSTANT, type(v), v, isinstance(v, float) and math.isnan(v)))
            elif spec.kind == "constant":
                plan.append((_NONE,))
            else:
                plan.append((_SKIP,))
        self._plan = tuple(plan)
        self.n_inputs = len(self._plan)

    def check(self, flat: Sequence[Any], device: torch.device | None) -> None:
        if len(flat) != self.n_inputs:
            raise InputMismatchError(
                f"expected {self.n_inputs} input(s), got {len(flat)}",
                "pass the same inputs as the example_inputs given to compile",
            )
        seen: dict[str, int] | None = {} if self._symbolic else None
        for i, (x, rule) in enumerate(zip(flat, self._plan)):
            code = rule[0]
            if code == _TENSOR:
                if not isinstance(x, torch.Tensor):
                    raise self._error(i, f"must be a tensor, got {type(x).__name__}")
                _, dtype, ndim, static, dyn = rule
                if x.dtype != dtype:
                    raise self._error(i, f"has dtype {x.dtype}, compiled for {dtype}", f"cast it: x.to({dtype})")
                shape = x.shape
                if len(shape) != ndim:
                    raise self._error(
                        i, f"has rank {len(shape)} (shape {tuple(shape)}), compiled for rank {ndim}", self._expected(i)
                    )
                for axis, size in static:
                    if shape[axis] != size:
                        raise self._error(
                            i,
                            f"has size {shape[axis]} on dim {axis}, compiled for {size} ({self._expected(i)})",
                            "compile with dynamic_shapes to accept other sizes on that dim",
                        )
                for d in dyn:
                    self._check_dim(i, shape[d[0]], d, seen)
                if device is not None and x.device != device:
                    raise self._error(
                        i,
                        f"is on {x.device}, the module's weights are on {device}",
                        f"move the input (x.to({str(device)!r})) or the module (.to(...))",
                    )
            elif code == _CONSTANT:
                _, kind, value, nan = rule
                if type(x) is not kind or (not nan and x != value) or (nan and not math.isnan(x)):
                    raise self._error(
                        i,
                        f"was compiled for the value {value!r} ({kind.__name__}), got {x!r}",
                        "torch.export specializes non-tensor inputs: compile again with the new value "
                        "(or pass it as a tensor)",
                    )
            elif code == _NONE:
                if x is not None:
                    raise self._error(
                        i,
                        f"was compiled as None, got {type(x).__name__}: the program ignores it",
                        "torch.export specializes None inputs; compile with an example value for it "
                        "to have it used",
                    )
            elif code == _SYMINT:
                if type(x) is not int:
                    raise self._error(i, f"must be an int, got {type(x).__name__}")
                self._check_dim(i, x, rule[1], seen)

    def engine_ranges(self, ranges: Mapping[str, tuple[int, int]]) -> None:
        """Hold every dim of a symbol in ``ranges`` (symbol -> the (min, max) its TensorRT engines were built
        for) to that range at every size: an engine takes no size below its profile's min, 0 and 1 included."""
        plan: list[tuple[Any, ...]] = []
        for rule in self._plan:
            if rule[0] == _TENSOR:
                rule = (*rule[:4], tuple((*d[:5], ranges.get(d[1])) for d in rule[4]))
            elif rule[0] == _SYMINT:
                rule = (_SYMINT, (*rule[1][:5], ranges.get(rule[1][1])))
            plan.append(rule)
        self._plan = tuple(plan)

    def _check_dim(self, i: int, size: int, rule: tuple[Any, ...], seen: dict[str, int] | None) -> None:
        axis, key, lo, hi, derived, engine = rule
        assert seen is not None
        if derived is None:
            prev = seen.setdefault(key, size)
            if prev != size:
                raise self._error(
                    i, f"has size {size}{_on(axis)}, but {self._dim(i, axis)} is {prev} in an earlier input",
                    "inputs that share a Dim must agree on its size",
                )
        else:
            expr, symbol = derived
            sym = str(symbol)
            if sym in seen:
                want = int(expr.subs({symbol: seen[sym]}))
                if want != size:
                    raise self._error(i, f"has size {size}{_on(axis)}, expected {want} ({self._dim(i, axis)})")
            else:
                import sympy
                from torch.utils._sympy.solve import try_solve

                solution = try_solve(sympy.Eq(expr, size), symbol)
                if solution is None:
                    raise self._error(i, f"has size {size}{_on(axis)}, not of the form {self._dim(i, axis)}")
                seen[sym] = int(solution[1])
        if (lo > 2 and size < lo) or (hi is not None and size > hi):
            raise self._error(
                i,
                f"has size {size}{_on(axis)}, outside the range [{lo}, {shown_bound(hi)}] of {self._dim(i, axis)}",
                "compile with a wider Dim range (min/max) to accept it",
            )
        if engine is not None:
            value = size if derived is None else seen[key]
            if not engine[0] <= value <= engine[1]:
                of = "" if derived is None else f" ({key} = {value})"
                raise self._error(
                    i,
                    f"has size {size}{_on(axis)}{of}, outside the TensorRT engines' range [{engine[0]}, {engine[1]}] "
                    f"of {self._dim(i, axis)}",
                    "the engines were built for that range only: compile with a wider Dim range (min/max) to accept it",
                )

    def _dim(self, i: int, axis: int | None) -> str:
        for d in self.specs[i].dynamic:
            if d.axis == axis:
                return f"Dim {d.dim!r}" if d.dim else f"dim {d.symbol}"
        return "the dim"

    def _expected(self, i: int) -> str:
        return f"expected {self.specs[i].describe()}"

    def _error(self, i: int, what: str, hint: str | None = None) -> InputMismatchError:
        return InputMismatchError(f"input {i} ({self.specs[i].label}) {what}", hint or self._expected(i))


def _on(axis: int | None) -> str:
    return "" if axis is None else f" on dim {axis}"


def _dim_rule(d: DynamicDim, expr: Any, exprs: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """(axis, symbol, min, max, derived, engine range) for one dynamic dim; None where torch defers to graph
    asserts. The engine range is set by ``InputContract.engine_ranges``."""
    if expr is None:
        return None
    free: set[Any] = set(getattr(expr, "free_symbols", ()))
    if len(free) != 1:
        return None  # several symbols: torch checks them by runtime asserts inside the graph
    (symbol,) = tuple(free)
    if expr == symbol:
        return (d.axis, str(symbol), d.min, d.max, None, None)
    in_ranges = str(expr) in exprs
    return (d.axis, str(symbol), d.min if in_ranges else 0, d.max if in_ranges else None, (expr, symbol), None)


# --- binding (args, kwargs) to the flat inputs -------------------------------------------------


def in_spec_order(value: Any, spec: Any) -> Any:
    """``value`` with every dict's keys in the order ``spec`` has them (torch accepts any order)."""
    kids = children(spec)
    if spec.type in (dict,) and isinstance(value, dict) and set(value) == set(spec.context):
        return {k: in_spec_order(value[k], child) for k, child in zip(spec.context, kids)}
    if spec.type in (tuple, list) and type(value) is spec.type and len(value) == len(kids):
        return spec.type(in_spec_order(v, child) for v, child in zip(value, kids))
    return value


class InputBinder:
    """(args, kwargs) -> the program's flat user inputs, as torch's ``ep.module()`` binds them."""

    def __init__(self, in_spec: Any, specs: Sequence[InputSpec]) -> None:
        self.in_spec = in_spec
        n = len(specs)
        # Every input a tensor / int / float / str / bool / SymInt: the contract's type checks then
        # also prove each value is a pytree leaf, so a flat structure needs no flatten per call.
        leaves_checked = all(s.kind in ("tensor", "symint") or (s.kind == "constant" and s.value is not None) for s in specs)
        self.flat_call = leaves_checked and (
            in_spec is None or in_spec == pytree.tree_flatten((tuple(range(n)), {}))[1]
        )
        self._keywords: tuple[int, tuple[str, ...]] | None = None  # (positional count, keyword order)
        if leaves_checked and in_spec is not None and not self.flat_call:
            want_args, want_kwargs = children(in_spec)
            n_args = len(children(want_args))
            keys = tuple(want_kwargs.context or ())
            flat_kwargs = pytree.tree_flatten((tuple(range(n_args)), dict.fromkeys(keys, 0)))[1]
            if want_kwargs.type is dict and flat_kwargs == in_spec:
                self._keywords = (n_args, keys)

    def flatten(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any] | tuple[Any, ...]:
        if self._keywords is not None:
            n_args, keys = self._keywords
            if len(args) == n_args and len(kwargs) == len(keys):
                try:
                    return (*args, *[kwargs[k] for k in keys])
                except KeyError:
                    pass
        flat, spec = pytree.tree_flatten((args, kwargs))
        if spec == self.in_spec:
            return flat
        flat, spec = pytree.tree_flatten(in_spec_order((args, kwargs), self.in_spec))
        if spec == self.in_spec:
            return flat
        raise InputMismatchError(*self._difference(args, kwargs))

    def _difference(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
        want_args, want_kwargs = children(self.in_spec)
        n_args = len(children(want_args))
        keys = list(want_kwargs.context or [])
        if len(args) != n_args:
            return (
                f"inputs are structured differently: {len(args)} positional input(s), compiled for {n_args}",
                "pass inputs the way they were passed to compile (positional vs keyword)",
            )
        if set(kwargs) != set(keys):
            return (
                f"inputs are structured differently: keyword input(s) {sorted(kwargs)}, compiled for {keys}",
                "pass inputs the way they were passed to compile (positional vs keyword)",
            )
        return (
            "inputs are structured differently from the example inputs given to compile "
            "(nesting, container types or dict keys)",
            f"expected the structure {' '.join(str(self.in_spec).split())}",
        )
