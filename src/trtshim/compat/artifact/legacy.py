"""Legacy (torch <= 2.7) archives repaired in memory for this torch's loader, by the ``load`` fixes'
hooks: ``load.program_json`` edits the program (SE-7, SE-10), ``load.members`` adds members (SE-9)."""

from __future__ import annotations

import io
import json
import zipfile

from trtshim.errors import CorruptedArtifactError, first_line
from trtshim.fixes import FixReport

PROGRAM = "serialized_exported_program.json"


def repaired(path: str, fixes: FixReport) -> str | io.BytesIO:
    """``path`` repaired in memory by the hooks of ``fixes``, or ``path`` itself when none applies."""
    edit_program = fixes.hooks("load.program_json")
    add_members = fixes.hooks("load.members")
    if not edit_program and not add_members:
        return path
    with zipfile.ZipFile(path) as src:
        names = src.namelist()
        if PROGRAM not in names:
            return path
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                if item.filename == PROGRAM and edit_program:
                    try:
                        program = json.loads(data)
                        for hook in edit_program:
                            hook(program)
                        data = json.dumps(program).encode()
                    except (
                        ValueError,
                        TypeError,
                        AttributeError,
                        KeyError,
                        IndexError,
                        RecursionError,
                    ) as exc:
                        raise CorruptedArtifactError(
                            f"the program inside {path} is malformed: {type(exc).__name__}: {first_line(exc)}",
                            "torch's own loader fails on it too; get the file again from its source",
                        ) from exc
                dst.writestr(item, data)
            for hook in add_members:
                for name, data in hook(names).items():
                    dst.writestr(name, data)
    buf.seek(0)
    return buf
