"""torch 2.4 -> 2.5: export schema 5.3 -> 7.3.

Fields: ``ExportedProgram.dialect`` (a string) is replaced by ``verifiers`` (a list of dialects) and
``torch_version`` (2.5 writes ``"<=2.4"`` for programs from before the field); ``GraphModule`` gains
``metadata`` (empty).
"""

from __future__ import annotations

from trtshim.compat.artifact.migrations import Archive, Step


def apply(archive: Archive) -> None:
    program = archive.program
    dialect = program.pop("dialect", None)
    program.setdefault("verifiers", [dialect] if dialect else [])
    program.setdefault("torch_version", "<=2.4")
    program["graph_module"].setdefault("metadata", {})


STEP = Step(
    id="torch-2.4-to-2.5",
    source=(5, 3),
    target=(7, 3),
    changes=(
        "ExportedProgram.dialect -> verifiers [dialect]",
        "ExportedProgram.torch_version: added ('<=2.4')",
        "GraphModule.metadata: added ({})",
    ),
    apply=apply,
)
