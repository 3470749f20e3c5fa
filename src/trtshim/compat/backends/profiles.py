"""TensorRT optimization profiles by construction: every dynamic dim of a program gets an explicit
(min, opt, max) before ``torch_tensorrt.dynamo.compile`` sees it.

torch_tensorrt derives an engine input's profile from the ShapeEnv of the program's placeholders (the
symbol's ``var_to_range`` for min / max, its example hint ``var_to_val`` for opt), with the 0/1 rule
(a lower bound of 2 becomes 1). A dim without a max gets ``min * 2**12`` there, said only in its log,
and a loaded program's unbounded dim (range ``[0, int_oo]``) gets the invalid profile ``(0, 2, 0)``.
trtshim bounds every unbounded dim explicitly (``unbounded_dim_max``, announced with
``DimBoundWarning``), keeps opt inside [min, max] (or takes the caller's ``opt``), and writes the bound
into the program's ``range_constraints`` too (the lower bound raised to what the engines take: 1, or 2
for a Dim inside a derived dim), so that the module's input contract, the manifest, torch's
own loaded module and any rebuild from the stored source all hold the range the engines were built for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.export import ExportedProgram

from trtshim.compat.programs import program as prog
from trtshim.errors import DimBoundWarning, OptionError, announce

#: the bound an unbounded dim gets (what torch_tensorrt built for a dim of min 1, made explicit)
DEFAULT_UNBOUNDED_MAX = 4096


@dataclass(frozen=True)
class DimProfile:
    symbol: str
    name: str  # the user's Dim name, or torch's symbol
    min: int
    opt: int
    max: int
    bounded_here: bool  # the max is trtshim's bound, not the user's


def recorded(dims: list[DimProfile]) -> list[dict[str, Any]]:
    """``dims`` as the manifest's engine record holds them (what the call contract enforces)."""
    return [{"symbol": d.symbol, "dim": d.name, "min": d.min, "opt": d.opt, "max": d.max} for d in dims]


def _is_unbounded(bound: Any) -> bool:
    """int_oo / sympy.oo (either sign) or torch's sys.maxsize stand-in."""
    if getattr(bound, "is_infinite", False):
        return True
    try:
        return abs(int(bound)) >= (1 << 62)
    except (TypeError, OverflowError, ValueError, AttributeError):
        return True


def _symbols(ep: ExportedProgram) -> tuple[dict[Any, Any], set[Any]]:
    """Each symbol that is a user input's dim -> the ShapeEnv that holds it; and the symbols that some
    user input's dim holds inside an expression (a derived Dim: ``2 * b``)."""
    out: dict[Any, Any] = {}
    derived: set[Any] = set()
    for node in prog.user_input_placeholders(ep):
        val = node.meta.get("val")
        dims = val.shape if isinstance(val, torch.Tensor) else (val,) if isinstance(val, torch.SymInt) else ()
        for d in dims:
            sym_node = getattr(d, "node", None)
            expr = getattr(sym_node, "expr", None)
            if expr is not None and getattr(expr, "is_Symbol", False):
                out.setdefault(expr, getattr(sym_node, "shape_env", None))
            elif expr is not None:
                derived.update(getattr(expr, "free_symbols", ()))
    return out, derived


def apply(
    ep: ExportedProgram,
    *,
    unbounded_max: int = DEFAULT_UNBOUNDED_MAX,
    opt: Mapping[str, int] | None = None,
    dim_names: Mapping[str, str] | None = None,
) -> list[DimProfile]:
    """Give every dynamic dim of ``ep`` its explicit profile, in place (ShapeEnv and
    ``range_constraints``); returns what each dim got."""
    from torch.utils._sympy.value_ranges import ValueRanges

    if not isinstance(unbounded_max, int) or isinstance(unbounded_max, bool) or unbounded_max < 2:
        raise OptionError(f"unbounded_dim_max={unbounded_max!r} must be an int >= 2")
    names = dict(dim_names or {})
    wanted = dict(opt or {})
    ranges = ep.range_constraints
    out: list[DimProfile] = []
    symbols, in_expressions = _symbols(ep)
    for symbol, shape_env in symbols.items():
        if shape_env is None or symbol not in shape_env.var_to_range:
            continue
        name = names.get(str(symbol), str(symbol))
        current = shape_env.var_to_range[symbol]
        low = int(current.lower) if not _is_unbounded(current.lower) and int(current.lower) >= 1 else 2
        bounded_here = _is_unbounded(current.upper)
        high = max(unbounded_max, low) if bounded_here else int(current.upper)
        hints = getattr(shape_env, "backed_var_to_val", None) or shape_env.var_to_val
        example = hints.get(symbol)
        if bounded_here and example is not None and int(example) > high:
            raise OptionError(
                f"unbounded_dim_max={unbounded_max} is below the example size {example} of Dim {name!r}",
                "raise unbounded_dim_max or give the Dim a max",
            )
        value = wanted.pop(name, wanted.pop(str(symbol), None))
        if value is not None and not low <= int(value) <= high and not (int(value) == 1 and low == 2):
            raise OptionError(f"opt for Dim {name!r} is {value}, outside its range [{low}, {high}]")
        chosen = int(value) if value is not None else min(max(int(example) if example is not None else low, low), high)
        # torch_tensorrt's 0/1 rule builds a symbol of lower bound 2 from 1, but a derived dim (2 * b) from
        # b's lower bound: where b is in such a dim, the engines take b >= 2 only
        built_min = 1 if low == 2 and symbol not in in_expressions else low
        shape_env.var_to_range[symbol] = ValueRanges(low, high)
        if symbol in ranges:
            ranges[symbol] = ValueRanges(max(int(ranges[symbol].lower), built_min), high)
        if chosen != example:
            hints[symbol] = chosen
        if bounded_here:
            announce(
                f"Dim {name!r} has no max: its TensorRT engines are built for sizes up to {high} and the "
                f"module refuses larger ones (compile(..., unbounded_dim_max=N) sets the bound)",
                DimBoundWarning,
            )
        out.append(DimProfile(str(symbol), name, built_min, chosen, high, bounded_here))
    if wanted:
        raise OptionError(f"opt names no dynamic dim of the program: {sorted(wanted)}", "use the Dim names of dynamic_shapes")
    return out


def corner_shapes(
    ep: ExportedProgram, dims: list[DimProfile]
) -> list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None]:
    """Each user input's (min, opt, max) shape under ``dims`` (derived dims evaluated at each corner);
    None for an input that is not a tensor. What torch_tensorrt 2.2 builds profiles from
    (``torch_tensorrt.Input(min_shape=, opt_shape=, max_shape=)``)."""
    values = {corner: {d.symbol: getattr(d, corner) for d in dims} for corner in ("min", "opt", "max")}
    out: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None] = []
    for node in prog.user_input_placeholders(ep):
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            out.append(None)
            continue
        corners = []
        for corner in ("min", "opt", "max"):
            shape = []
            for d in val.shape:
                expr = getattr(getattr(d, "node", None), "expr", None)
                if expr is None:
                    shape.append(int(d))
                else:
                    subs = {s: values[corner][str(s)] for s in expr.free_symbols if str(s) in values[corner]}
                    shape.append(int(expr.subs(subs)))
            corners.append(tuple(shape))
        out.append((corners[0], corners[1], corners[2]))
    return out
