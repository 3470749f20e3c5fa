"""Artifacts: ``save`` writes one standard torch.export archive with a trtshim manifest inside; ``load``
reads it back (or any torch.export archive) as untrusted input.

One module an idea: ``record`` (what the manifest records), ``saving`` (``save``), ``atomic`` (the
all-or-nothing write), ``checks`` (what ``load`` checks before deserializing), ``migrations`` (a program
of an older schema major, step by step), ``legacy`` (old archives migrated and repaired in memory),
``loading`` (``load``), ``upgrading`` (``trtshim upgrade``: an old file rewritten once).
"""

from __future__ import annotations

from trtshim.compat.artifact.loading import load
from trtshim.compat.artifact.saving import save

__all__ = ["load", "save"]
