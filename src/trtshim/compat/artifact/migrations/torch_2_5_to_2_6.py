"""torch 2.5 -> 2.6: export schema 7.3 -> 8.0.

Fields: every ``as_none`` (``Argument``, ``OptionalTensorArgument``, ``ConstantValue``) changes from an
empty tuple (``[]`` in JSON) to ``true``.
"""

from __future__ import annotations

from typing import Any

from trtshim.compat.artifact.migrations import Archive, Step, walk


def _as_none(d: dict[str, Any]) -> None:
    if d.get("as_none") == []:
        d["as_none"] = True


def apply(archive: Archive) -> None:
    walk(archive.program, _as_none)


STEP = Step(
    id="torch-2.5-to-2.6",
    source=(7, 0),
    target=(8, 0),
    changes=("as_none: () -> true (Argument, OptionalTensorArgument, ConstantValue)",),
    apply=apply,
)
