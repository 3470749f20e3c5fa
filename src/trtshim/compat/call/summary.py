"""One input spec as a line of text (the contract's errors, ``trtshim inspect``); torch-free."""

from __future__ import annotations

from typing import Any


def input_summary(spec: dict[str, Any]) -> str:
    """``float32 [batch, 3, 16, 16]  (batch in [1, 64])``, ``int = 3``, ``SymInt n in [2, inf]``."""
    kind = spec.get("kind", "tensor")
    if kind == "constant":
        return f"{spec.get('type')} = {spec.get('value')!r}"
    dyn = spec.get("dynamic", [])
    names = {d.get("axis"): d.get("dim") or d.get("symbol") for d in dyn}
    ranges = ", ".join(
        f"{d.get('dim') or d.get('symbol')} in [{d.get('min')}, {'inf' if d.get('max') is None else d.get('max')}]"
        for d in dyn
    )
    if kind == "symint":
        return f"SymInt {ranges}"
    if kind != "tensor":
        return str(kind)
    dims = [str(names.get(a, s)) for a, s in enumerate(spec.get("shape", []))]
    return f"{spec.get('dtype')} [{', '.join(dims)}]" + (f"  ({ranges})" if ranges else "")
