"""An artifact as another stack would have written it: its manifest edited, its member table sealed anew.

For tests of what ``load`` decides from a manifest (another torch, another engine ABI): the result
passes the integrity check, as a file really saved there would. Not for anything else: an edited
manifest no longer says the truth about the program.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from typing import Any

from trtshim.compat import integrity
from trtshim.compat.manifest import MANIFEST_NAME, read_manifest


def rewrite_manifest(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], edit: Callable[[dict[str, Any]], None]
) -> str:
    """Copy ``src`` to ``dst`` with ``edit(manifest)`` applied to its manifest; re-seal; return ``dst``."""
    manifest, _ = read_manifest(src)
    if manifest is None:
        raise ValueError(f"{src} has no trtshim manifest to edit")
    edit(manifest)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            leaf = info.filename.rsplit("/", 1)[-1]
            if leaf == integrity.TABLE_NAME:
                continue
            zout.writestr(info, json.dumps(manifest).encode() if leaf == MANIFEST_NAME else zin.read(info))
    integrity.seal(os.fspath(dst))
    return os.fspath(dst)
