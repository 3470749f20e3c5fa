"""SE-9: torch 2.4 cannot load any torch 2.3 archive: ``assert serialized_example_inputs is not None``.

Found by trtshim's cross-version checks (schema 5.1 -> 5.3, same major, so torch does not refuse it up
front): 2.3 archives have no ``serialized_example_inputs.pt`` member and 2.4's loader asserts on it.
Fix: ``load`` on torch 2.4 hands ``torch.export.load`` an in-memory copy of such an archive with an
empty member added (read as "no example inputs"). Delete when torch 2.4 leaves the matrix.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

EXAMPLE_INPUTS = "serialized_example_inputs.pt"


def add_example_inputs(names: list[str]) -> dict[str, bytes]:
    """Hook ``load.members``: an empty example-inputs member where the archive has none."""
    return {} if EXAMPLE_INPUTS in names else {EXAMPLE_INPUTS: b""}


FIX = Fix(
    id="SE-9",
    family="serialization",
    title="torch 2.3 archives load on torch 2.4 (missing example-inputs member)",
    affected={"torch": ">=2.4,<2.5"},
    fixed_in={"torch": "2.5.0"},
    links=("https://github.com/pytorch/pytorch/blob/v2.4.1/torch/_export/__init__.py",),
    stage="load",
    how="transform",
    hooks={"load.members": add_example_inputs},
)
