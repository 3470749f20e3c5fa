"""SE-10: torch 2.2 and 2.3 cannot load their own archives when a module path holds a comma (e.g. nn.Sequential).

Found by trtshim's cross-version checks: the serializer writes ``nn_module_stack`` entries joined by
commas and a path like ``getattr(L['fn'], '0')`` splits into too many fields on load:
``import_nn_module_stack() takes 3 positional arguments but 4 were given``. torch 2.4 parses them (measured: 2.2 and 2.3 fail on an nn.Sequential).
Fix: ``load`` on torch 2.2/2.3 drops that (debug-only) node metadata from an in-memory copy of the
archive. Delete when torch 2.3 leaves the matrix.
"""

from __future__ import annotations

from typing import Any

from trtshim.fixes.registry import Fix


def strip_module_stacks(program: Any) -> None:
    """Hook ``load.program_json``: drop every node's ``nn_module_stack`` metadata, in place."""
    if isinstance(program, dict):
        meta = program.get("metadata")
        if isinstance(meta, dict):
            meta.pop("nn_module_stack", None)
        for value in program.values():
            strip_module_stacks(value)
    elif isinstance(program, list):
        for value in program:
            strip_module_stacks(value)


FIX = Fix(
    id="SE-10",
    family="serialization",
    title="archives whose module paths contain commas load on torch 2.2 and 2.3",
    affected={"torch": ">=2.2,<2.4"},
    fixed_in={"torch": "2.4.0"},
    links=("https://github.com/pytorch/pytorch/blob/v2.3.1/torch/_export/serde/serialize.py",),
    stage="load",
    how="transform",
    hooks={"load.program_json": strip_module_stacks},
)
