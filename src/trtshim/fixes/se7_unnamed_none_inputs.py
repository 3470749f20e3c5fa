"""SE-7: an archive from torch <= 2.3 with a ``None`` user input loads on torch 2.4 with no runnable code.

Upstream: torch <= 2.3 recorded a ``None`` user input as ``user_input: {arg: {as_none}}``, without a
name; 2.4's deserializer makes it a placeholder named ``""``, code generation fails, the fallback
module's ``forward(self)`` takes nothing (``TypeError: forward() takes 1 positional argument but 6
were given``; newer torch renders ``forward(self, arg1, , arg3)``: pytorch/pytorch#150515, 2.8).
Only torch 2.4 reads 2.3 archives (2.5+ refuse the schema major). Fix: ``load`` on torch 2.4 rewrites
such inputs, in memory, to the named ``constant_input`` form 2.4 writes itself. Delete when torch 2.4
leaves the matrix.
"""

from __future__ import annotations

from typing import Any

from trtshim.fixes.registry import Fix


def name_none_inputs(program: dict[str, Any]) -> int:
    """Give each unnamed ``None`` user input of a serialized program a name, in place; returns how many."""
    specs = program.get("graph_module", {}).get("signature", {}).get("input_specs", [])
    renamed = 0
    for i, spec in enumerate(specs):
        arg = spec.get("user_input", {}).get("arg") if isinstance(spec, dict) else None
        if isinstance(arg, dict) and set(arg) == {"as_none"}:
            specs[i] = {"constant_input": {"name": f"_none_input_{i}", "value": {"as_none": arg["as_none"]}}}
            renamed += 1
    return renamed


FIX = Fix(
    id="SE-7",
    family="serialization",
    title="torch <= 2.3 archives with None user inputs load on torch 2.4 (unnamed placeholders)",
    affected={"torch": ">=2.4,<2.5"},
    fixed_in={"torch": "2.5.0"},
    links=("https://github.com/pytorch/pytorch/pull/150515",),
    stage="load",
    how="transform",
    hooks={"load.program_json": name_none_inputs},
)
