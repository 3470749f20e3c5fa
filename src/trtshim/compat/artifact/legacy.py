"""Legacy (torch <= 2.7, zip) archives prepared in memory for this torch's loader: migrated across
export schema majors (``migrations``), then repaired by the load fixes' hooks: ``load.program_json``
edits the program (SE-7, SE-10), ``load.members`` adds members (SE-9). The file itself is never changed."""

from __future__ import annotations

import io
import json
import zipfile

from trtshim.compat.artifact import migrations
from trtshim.compat.artifact.trust.opened import OpenedArchive
from trtshim.errors import CorruptedArtifactError, first_line
from trtshim.fixes import FixReport

PROGRAM = migrations.PROGRAM
_MALFORMED = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError)


def schema_in(path: str | io.BytesIO | OpenedArchive) -> tuple[int, int] | None:
    """The export schema of a legacy archive's program (None: not a legacy archive, or unreadable)."""
    if isinstance(path, OpenedArchive):
        try:
            return migrations.schema_of(json.loads(path.read(PROGRAM))) if PROGRAM in path.names else None
        except (CorruptedArtifactError, *_MALFORMED):
            return None
    if isinstance(path, io.BytesIO):
        path.seek(0)
    try:
        with zipfile.ZipFile(path) as zf:
            if PROGRAM not in zf.namelist():
                return None
            return migrations.schema_of(json.loads(zf.read(PROGRAM)))
    except (zipfile.BadZipFile, OSError, *_MALFORMED):
        return None


def chain_for(source: str | io.BytesIO, here: tuple[int, int]) -> list[migrations.Step]:
    """The migration steps a legacy archive of an older schema major needs to be read here."""
    saved = schema_in(source)
    return migrations.plan(saved, here) if saved and saved[0] < here[0] else []


def repaired(
    path: str | io.BytesIO, fixes: FixReport, chain: list[migrations.Step] | None = None
) -> str | io.BytesIO:
    """``path`` migrated by ``chain`` and repaired by the hooks of ``fixes``, in memory; or ``path``
    itself when nothing applies."""
    edit_program = fixes.hooks("load.program_json")
    add_members = fixes.hooks("load.members")
    if not chain and not edit_program and not add_members:
        return path
    if isinstance(path, io.BytesIO):
        path.seek(0)
    try:
        archive = migrations.open_archive(path)
        if archive is None:
            return path
        migrations.migrate(archive, chain or [])
        for hook in edit_program:
            hook(archive.program)
    except _MALFORMED as exc:
        raise CorruptedArtifactError(
            f"the program inside {path} is malformed: {type(exc).__name__}: {first_line(exc)}",
            "torch's own loader fails on it too; get the file again from its source",
        ) from exc
    for hook in add_members:
        for name, data in hook(list(archive.members)).items():
            archive.add(name, data)
    return archive.to_bytes()
