"""The input contract of a program: every check torch's own loaded ``ep.module()`` makes, precomputed.

torch checks each call against the program's placeholders (``_check_input_constraints_for_graph``):
non-tensor inputs must equal the value they were exported with (same type; NaN equals NaN), tensors
must have the exported rank, static dims their size, dynamic dims the same size wherever they share
a symbol, derived dims (``2 * batch``) a size of their form, and every dim its declared range (the
lower bound only above 2: torch lets 0/1 through at runtime). trtshim checks the same, plus dtype
and device (a TensorRT engine is built for one of each), and builds the plan once so that a call
costs a few microseconds. Inputs are bound the way torch binds them: positional as exported,
keywords by name in any order, dicts by key.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch.export import ExportedProgram
from torch.utils import _pytree as pytree

from trtshim.compat import program as prog
from trtshim.errors import InputMismatchError

_CONSTANT_TYPES = (bool, int, float, str)


class DynamicDim(NamedTuple):
    """A dynamic dim of an input. ``axis`` is None when the input itself is a dynamic int."""

    axis: int | None
    symbol: str  # torch's symbol (``s0``, ``s77``) or expression (``2*s0``)
    min: int
    max: int | None  # None: no upper bound
    dim: str | None = None  # the name of the user's ``torch.export.Dim``, where known


@dataclass(frozen=True)
class InputSpec:
    """What one flat user input must look like. ``shape`` holds ints for static dims, symbols for dynamic."""

    name: str
    dtype: torch.dtype | None  # None: a non-tensor input
    shape: tuple[int | str, ...]
    dynamic: tuple[DynamicDim, ...]
    kind: str = "tensor"  # "tensor" | "constant" (int/float/str/bool/None) | "symint" | "object"
    value: Any = None  # the exported value of a constant input
    path: str | None = None  # what the user calls it (``x``, ``inputs['mask']``), where known

    @property
    def label(self) -> str:
        return self.path or self.name

    @property
    def static_dims(self) -> tuple[tuple[int, int], ...]:
        return tuple((i, d) for i, d in enumerate(self.shape) if isinstance(d, int))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", "") if self.dtype is not None else None,
            "shape": list(self.shape),
            "dynamic": [
                {"axis": d.axis, "symbol": d.symbol, "min": d.min, "max": d.max, "dim": d.dim}
                for d in self.dynamic
            ],
        }
        if self.path is not None and self.path != self.name:
            out["path"] = self.path
        if self.kind != "tensor":
            out["kind"] = self.kind
            if self.kind == "constant":
                out["value"] = _json_value(self.value)
                out["type"] = type(self.value).__name__
        return out

    def describe(self) -> str:
        """``float32 [batch, 3, 16, 16]``, ``int = 3``, ``SymInt n in [1, 8]``: for messages and inspect."""
        if self.kind == "constant":
            return f"{type(self.value).__name__} = {self.value!r}"
        names = {d.axis: (d.dim or d.symbol) for d in self.dynamic}
        if self.kind == "symint":
            d = self.dynamic[0] if self.dynamic else None
            return f"SymInt {names.get(None, '?')} in [{d.min if d else 0}, {_shown(d.max if d else None)}]"
        if self.kind == "object":
            return "object"
        dims = [str(names.get(i, s)) for i, s in enumerate(self.shape)]
        return f"{str(self.dtype).replace('torch.', '')} [{', '.join(dims)}]"


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no nan / inf
    return value


def _shown(bound: int | None) -> str:
    return "inf" if bound is None else str(bound)


def bound_of(value: Any) -> int | None:
    """A range bound as an int, or None for no bound (sympy ``oo``, torch's ``int_oo``, ``sys.maxsize``)."""
    if value is None:
        return None
    try:
        v = int(value)
    except Exception:  # int(int_oo) raises AttributeError, int(sympy.oo) TypeError
        return None
    return v if abs(v) < 2**62 else None


def _ranges(ep: ExportedProgram) -> dict[str, tuple[int, int | None]]:
    out: dict[str, tuple[int, int | None]] = {}
    for sym, r in ep.range_constraints.items():
        out[str(sym)] = (bound_of(getattr(r, "lower", 0)) or 0, bound_of(getattr(r, "upper", None)))
    return out


def _dynamic(expr: Any, axis: int | None, ranges: Mapping[str, tuple[int, int | None]], names: Mapping[str, str]) -> DynamicDim:
    symbol = str(expr)
    lo, hi = ranges.get(symbol, (0, None))
    return DynamicDim(axis, symbol, lo, hi, names.get(symbol))


def input_specs_of(
    ep: ExportedProgram, dim_names: Mapping[str, str] | None = None, paths: Sequence[str] | None = None
) -> list[InputSpec]:
    """One ``InputSpec`` per flat user input, from the placeholders and the signature (``paths``: the
    user's names of the inputs, from ``input_paths`` or a manifest)."""
    ranges = _ranges(ep)
    names = dim_names or {}
    constants = {
        getattr(s.arg, "name", None): s.arg.value
        for s in ep.graph_signature.input_specs
        if type(s.arg).__name__ == "ConstantArgument"
    }
    out: list[InputSpec] = []
    for node in prog.user_input_placeholders(ep):
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor):
            shape: list[int | str] = []
            dynamic: list[DynamicDim] = []
            for axis, d in enumerate(val.shape):
                if isinstance(d, int):
                    shape.append(d)
                    continue
                shape.append(str(d))
                dynamic.append(_dynamic(d, axis, ranges, names))
            out.append(InputSpec(node.name, val.dtype, tuple(shape), tuple(dynamic)))
        elif isinstance(val, torch.SymInt):
            out.append(InputSpec(node.name, None, (), (_dynamic(val, None, ranges, names),), kind="symint"))
        elif node.name in constants or val is None or isinstance(val, _CONSTANT_TYPES):
            value = constants.get(node.name, val)
            kind = "constant" if value is None or isinstance(value, _CONSTANT_TYPES) else "object"
            out.append(InputSpec(node.name, None, (), (), kind=kind, value=value))
        else:
            out.append(InputSpec(node.name, None, (), (), kind="object"))
    if paths is not None and len(paths) == len(out):
        out = [dataclasses.replace(spec, path=p) for spec, p in zip(out, paths)]
    return out


# --- Dim names -------------------------------------------------------------------------------


def _dim_name(d: Any) -> str | None:
    """The name of a ``torch.export.Dim`` (a class before torch 2.9, an object since); None for hints."""
    if d is None or isinstance(d, (int, str)):
        return None
    name = getattr(d, "__name__", None)
    return name if isinstance(name, str) else None


def _key(entry: Any) -> Any:
    """A pytree key entry as ``int`` (sequence index), ``("k", key)`` (mapping) or ``("a", name)``."""
    if hasattr(entry, "idx"):
        return int(entry.idx)
    if hasattr(entry, "key"):
        return ("k", entry.key)
    if hasattr(entry, "name"):
        return ("a", entry.name)
    return None


def _leaf_paths(value: Any) -> list[tuple[Any, ...] | None]:
    """The key path of each pytree leaf of ``value`` (None where it cannot be told)."""
    with_path = getattr(pytree, "tree_flatten_with_path", None)
    if with_path is not None:
        return [tuple(_key(k) for k in path) for path, _ in with_path(value)[0]]

    def walk(v: Any, prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        if isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                yield from walk(x, (*prefix, i))
        elif isinstance(v, dict):
            for k, x in v.items():
                yield from walk(x, (*prefix, ("k", k)))
        else:
            yield prefix

    paths: list[tuple[Any, ...] | None] = list(walk(value, ()))  # torch 2.2: no paths from pytree
    n = len(pytree.tree_leaves(value))
    return paths if len(paths) == n else [None] * n


def _follow(spec: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if spec is None or key is None:
            return None
        if isinstance(key, tuple) and key[0] == "a":
            spec = spec.get(key[1]) if isinstance(spec, Mapping) else getattr(spec, key[1], None)
        else:
            spec = spec[key[1] if isinstance(key, tuple) else key]
    return spec


def _path_text(top: str, path: tuple[Any, ...] | None) -> str:
    if path is None:
        return top
    parts = [f".{k[1]}" if isinstance(k, tuple) and k[0] == "a" else f"[{k[1]!r}]" if isinstance(k, tuple) else f"[{k}]" for k in path]
    return top + "".join(parts)


@dataclass(frozen=True)
class _Leaf:
    top: str  # the argument's name in the signature (or its position)
    position: int  # the argument's place among the signature's arguments, as dynamic_shapes orders them
    path: tuple[Any, ...] | None  # inside the argument


def _user_leaves(model: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[_Leaf]:
    """One entry per flat user input, in the program's order (positional arguments, then keywords)."""
    try:
        params = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        params = []
    tops = [(params[i] if i < len(params) else str(i), a) for i, a in enumerate(args)] + list(kwargs.items())
    order = {name: i for i, name in enumerate(params)}
    ranked = sorted(range(len(tops)), key=lambda i: order.get(tops[i][0], len(order) + i))
    out: list[_Leaf] = []
    for i, (name, value) in enumerate(tops):
        out += [_Leaf(name, ranked.index(i), path) for path in _leaf_paths(value)]
    return out


def input_paths(model: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[str]:
    """What the user calls each flat input: ``x``, ``k``, ``inputs['mask']``, ``pair[0]``."""
    return [_path_text(leaf.top, leaf.path) for leaf in _user_leaves(model, args, kwargs)]


def dim_names(
    model: Any, args: Sequence[Any], kwargs: Mapping[str, Any], dynamic_shapes: Any, ep: ExportedProgram
) -> dict[str, str]:
    """torch's symbol -> the user's ``Dim`` name, by walking ``dynamic_shapes`` beside the inputs.

    ``dynamic_shapes`` is keyed by argument name or ordered like the signature's arguments, and
    nested like each argument; a dim given no name (``Dim.AUTO``) keeps torch's symbol.
    """
    if not dynamic_shapes:
        return {}
    per_flat: list[Any] = []  # the dims spec of each flat leaf
    for leaf in _user_leaves(model, args, kwargs):
        try:
            if isinstance(dynamic_shapes, Mapping):
                top = dynamic_shapes.get(leaf.top)
            else:
                top = list(dynamic_shapes)[leaf.position]
            per_flat.append(_follow(top, leaf.path) if leaf.path else (top if leaf.path == () else None))
        except (KeyError, IndexError, TypeError):
            per_flat.append(None)
    out: dict[str, str] = {}
    for node, spec in zip(prog.user_input_placeholders(ep), per_flat):
        val = node.meta.get("val")
        if isinstance(val, torch.SymInt):
            int_name = _dim_name(spec)
            if int_name:
                out.setdefault(str(val), int_name)
            continue
        if not isinstance(val, torch.Tensor) or spec is None:
            continue
        items = spec.items() if isinstance(spec, Mapping) else enumerate(spec) if isinstance(spec, (list, tuple)) else ()
        for axis, d in items:
            dim_name = _dim_name(d)
            if dim_name and isinstance(axis, int) and axis < val.dim() and not isinstance(val.shape[axis], int):
                out.setdefault(str(val.shape[axis]), dim_name)
    return out


def paths_of_manifest(manifest: Mapping[str, Any]) -> list[str] | None:
    """The user's input names a manifest records (None unless every input has one)."""
    specs = manifest.get("inputs")
    if not isinstance(specs, list):
        return None
    paths = [s.get("path", s.get("name")) if isinstance(s, dict) else None for s in specs]
    return paths if all(isinstance(p, str) for p in paths) else None  # type: ignore[return-value]


def dim_names_of_manifest(manifest: Mapping[str, Any]) -> dict[str, str]:
    """symbol -> Dim name as a manifest's ``inputs`` record them (entries of the wrong shape are skipped)."""
    out: dict[str, str] = {}
    specs = manifest.get("inputs")
    for spec in specs if isinstance(specs, list) else ():
        dims = spec.get("dynamic") if isinstance(spec, dict) else None
        for d in dims if isinstance(dims, list) else ():
            if isinstance(d, dict) and isinstance(d.get("symbol"), str) and isinstance(d.get("dim"), str):
                out[d["symbol"]] = d["dim"]
    return out


# --- the runtime check --------------------------------------------------------------------------

_TENSOR, _CONSTANT, _SYMINT, _SKIP = range(4)


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
            elif code == _SYMINT:
                if type(x) is not int:
                    raise self._error(i, f"must be an int, got {type(x).__name__}")
                self._check_dim(i, x, rule[1], seen)

    def _check_dim(
        self, i: int, size: int, rule: tuple[int | None, str, int, int | None, Any], seen: dict[str, int] | None
    ) -> None:
        axis, key, lo, hi, derived = rule
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
                f"has size {size}{_on(axis)}, outside the range [{lo}, {_shown(hi)}] of {self._dim(i, axis)}",
                "compile with a wider Dim range (min/max) to accept it",
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


def _dim_rule(
    d: DynamicDim, expr: Any, exprs: Mapping[str, Any]
) -> tuple[int | None, str, int, int | None, Any] | None:
    """(axis, symbol, min, max, derived) for one dynamic dim; None where torch defers to graph asserts."""
    if expr is None:
        return None
    free: set[Any] = set(getattr(expr, "free_symbols", ()))
    if len(free) != 1:
        return None  # several symbols: torch checks them by runtime asserts inside the graph
    (symbol,) = tuple(free)
    if expr == symbol:
        return (d.axis, str(symbol), d.min, d.max, None)
    in_ranges = str(expr) in exprs
    return (d.axis, str(symbol), d.min if in_ranges else 0, d.max if in_ranges else None, (expr, symbol))


# --- binding (args, kwargs) to the flat inputs -------------------------------------------------


def children(spec: Any) -> list[Any]:
    children = getattr(spec, "children", None)  # torch >= 2.8; children_specs before (deprecated since)
    return list(children()) if callable(children) else list(spec.children_specs)


def _in_spec_order(value: Any, spec: Any) -> Any:
    """``value`` with every dict's keys in the order ``spec`` has them (torch accepts any order)."""
    kids = children(spec)
    if spec.type in (dict,) and isinstance(value, dict) and set(value) == set(spec.context):
        return {k: _in_spec_order(value[k], child) for k, child in zip(spec.context, kids)}
    if spec.type in (tuple, list) and type(value) is spec.type and len(value) == len(kids):
        return spec.type(_in_spec_order(v, child) for v, child in zip(value, kids))
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
        flat, spec = pytree.tree_flatten(_in_spec_order((args, kwargs), self.in_spec))
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
