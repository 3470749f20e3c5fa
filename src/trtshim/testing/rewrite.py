"""An artifact as another stack would have written it: its manifest edited, its member table sealed anew.

For tests of what ``load`` decides from a manifest (another torch, another engine ABI): the result
passes the integrity check, as a file really saved there would. Not for anything else: an edited
manifest no longer says the truth about the program.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from typing import Any

from trtshim.compat.artifact.manifest import MANIFEST_NAME, read_manifest
from trtshim.compat.artifact.trust import integrity


def resealed(data: bytes) -> bytes:
    """The archive ``data`` with its member table dropped and computed anew (as anyone can: integrity is
    not authenticity)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zin:
        items = [(i, zin.read(i)) for i in zin.infolist() if i.filename.rsplit("/", 1)[-1] != integrity.TABLE_NAME]
    fd, tmp = tempfile.mkstemp(suffix=".pt2")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zout:
            for info, member in items:
                zout.writestr(info, member)
        integrity.seal(tmp)
        with open(tmp, "rb") as sealed:
            return sealed.read()
    finally:
        os.unlink(tmp)


def rewrite_manifest(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], edit: Callable[[dict[str, Any]], None]
) -> str:
    """Copy ``src`` to ``dst`` with ``edit(manifest)`` applied to its manifest; re-seal; return ``dst``."""
    manifest, _ = read_manifest(src)
    if manifest is None:
        raise ValueError(f"{src} has no trtshim manifest to edit")
    edit(manifest)
    buf = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            is_manifest = info.filename.rsplit("/", 1)[-1] == MANIFEST_NAME
            zout.writestr(info, json.dumps(manifest).encode() if is_manifest else zin.read(info))
    with open(dst, "wb") as fh:
        fh.write(resealed(buf.getvalue()))
    return os.fspath(dst)
