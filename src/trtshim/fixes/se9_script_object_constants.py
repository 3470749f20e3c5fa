"""SE-9: torch 2.10 cannot load a 2.8/2.9 archive whose constants hold a ScriptObject (an engine).

Found by trtshim's cross-version checks: 2.10's loader reads the legacy constants file with
``torch.load(weights_only=True)``, which rejects ``torch.ScriptObject`` (``Unsupported global: GLOBAL
torch.ScriptObject``), and then fails formatting its own message (``TypeError: not enough arguments
for format string``). Measured: 2.9 and 2.11-2.15 load the same files. Fix: ``load`` allowlists
``torch.ScriptObject`` (``torch.serialization.safe_globals``) around ``torch.export.load`` on the
affected torch only. Delete when torch 2.10 leaves the matrix.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

FIX = Fix(
    id="SE-9",
    family="serialization",
    title="ScriptObject constants from 2.8/2.9 archives load on torch 2.10",
    affected={"torch": ">=2.10,<2.11"},
    fixed_in={"torch": "2.11.0"},
    links=("https://github.com/pytorch/pytorch/blob/v2.10.0/torch/export/pt2_archive/_package.py",),
    stage="load",
    how="patch",
)
