"""Artifacts: ``save`` writes one standard torch.export archive with a trtshim manifest inside; ``load``
reads it back (or any torch.export archive) as untrusted input.

One module an idea: ``record`` (what the manifest records), ``saving`` (``save``), ``atomic`` (the
all-or-nothing write), ``checks`` (what ``load`` checks before deserializing), ``migrations`` (a program
of an older schema major, step by step), ``legacy`` (old archives migrated and repaired in memory),
``loading`` (``load``), ``upgrading`` (``trtshim upgrade``: an old file rewritten once).

Whether a file is trusted is judged in ``trust/`` (member table, signature, pickle scan, manifest schema);
``manifest`` reads the manifest. ``save`` and ``load`` are imported on first use, so that the torch-free
parts (``trtshim inspect`` / ``verify``) import no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load", "save"]
_LAZY = {"load": "trtshim.compat.artifact.loading", "save": "trtshim.compat.artifact.saving"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trtshim.compat.artifact' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
