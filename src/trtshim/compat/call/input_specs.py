"""What each flat user input of a program must look like (``InputSpec``), read from its placeholders,
signature and range constraints; the form the manifest stores (``to_dict``) and reads back."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch.export import ExportedProgram

from trtshim.compat.call.summary import input_summary
from trtshim.compat.programs import program as prog

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
        """``float32 [batch, 3]  (batch in [1, 8])``, ``int = 3``: what ``trtshim inspect`` shows of it."""
        return input_summary(self.to_dict())


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no nan / inf
    return value


def shown_bound(bound: int | None) -> str:
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
