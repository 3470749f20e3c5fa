"""trtshim: one stable compile / save / load API for PyTorch + Torch-TensorRT.

``import trtshim`` is cheap and has no side effects: it imports neither torch nor
torch_tensorrt nor tensorrt. The submodules load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trtshim._version import __version__

if TYPE_CHECKING:
    from trtshim import compat, errors, fixes, matrix

__all__ = ["__version__", "compat", "errors", "fixes", "matrix"]

_SUBMODULES = frozenset({"compat", "errors", "fixes", "matrix"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"trtshim.{name}")
    raise AttributeError(f"module 'trtshim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
