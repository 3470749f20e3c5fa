"""torch 2.3 -> 2.4: export schema 5.1 -> 5.3 (the same major; torch 2.4 itself reads 5.1 only with
fixes SE-7 and SE-9, whose code this step reuses).

Fields: ``OptionalTensorArgument.as_tensor`` (a name) becomes a ``TensorArgument`` (``{"name": ...}``);
an unnamed ``None`` user input becomes a named ``constant_input`` (SE-7). Members: the example-inputs
member 2.4's reader expects is added, empty (SE-9: "no example inputs").
"""

from __future__ import annotations

from typing import Any

from trtshim.compat.artifact.migrations import Archive, Step, walk
from trtshim.fixes.se7_unnamed_none_inputs import name_none_inputs
from trtshim.fixes.se9_legacy_example_inputs import add_example_inputs


def _optional_tensor(d: dict[str, Any]) -> None:
    for value in d.get("as_optional_tensors") or ():
        if isinstance(value, dict) and isinstance(value.get("as_tensor"), str):
            value["as_tensor"] = {"name": value["as_tensor"]}


def apply(archive: Archive) -> None:
    walk(archive.program, _optional_tensor)
    name_none_inputs(archive.program)
    for name, data in add_example_inputs(list(archive.members)).items():
        archive.add(name, data)


STEP = Step(
    id="torch-2.3-to-2.4",
    source=(5, 0),
    target=(5, 3),
    changes=(
        "OptionalTensorArgument.as_tensor: str -> TensorArgument",
        "unnamed None user inputs -> named constant_input (SE-7)",
        "member serialized_example_inputs.pt: added, empty (SE-9)",
    ),
    apply=apply,
)
