"""The version matrix: which torch / torch_tensorrt / TensorRT releases trtshim supports and pairs."""

from __future__ import annotations

# The oldest release of each package that trtshim supports. A fix whose ``fixed_in`` is at or below
# these is dead code (tests/test_fixes_registry.py fails until it is deleted).
SUPPORTED_FLOOR = {"torch": "2.2.0", "torch_tensorrt": "2.2.0"}
