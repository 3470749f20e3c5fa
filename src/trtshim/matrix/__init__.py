"""The version matrix: which torch / torch_tensorrt / TensorRT releases trtshim supports and pairs.

Importing this package reads nothing and imports no torch; ``Matrix.load()`` reads the shipped
``data.json`` (from PyPI metadata) and ``rules.json`` (curated rules) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trtshim.matrix.check import Conflict
    from trtshim.matrix.model import Matrix
    from trtshim.matrix.pins import Pin, PinSet

# The oldest release of each package that trtshim supports. A fix whose ``fixed_in`` is at or below
# these is dead code (tests/test_fixes_registry.py fails until it is deleted). tests/test_matrix.py
# checks that these are the oldest releases in data.json.
SUPPORTED_FLOOR = {"torch": "2.2.0", "torch_tensorrt": "2.2.0"}

_LAZY = {
    "Matrix": "trtshim.matrix.model",
    "Pin": "trtshim.matrix.pins",
    "PinSet": "trtshim.matrix.pins",
    "Conflict": "trtshim.matrix.check",
}

# the modules ``pins`` (``pins()``), ``formats`` (``format()``) and ``check`` (``check()``) are not re-exported here.
__all__ = ["SUPPORTED_FLOOR", "Conflict", "Matrix", "Pin", "PinSet"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
