"""Backported fixes for upstream torch / torch_tensorrt defects, selected per installed versions.

``REGISTRY`` lists every fix trtshim knows; ``select(env)`` says which this environment needs.
"""

from __future__ import annotations

from trtshim.fixes.registry import FAMILIES, STAGES, Decision, Fix, FixReport, select

REGISTRY: tuple[Fix, ...] = ()

__all__ = ["FAMILIES", "REGISTRY", "STAGES", "Decision", "Fix", "FixReport", "select"]
