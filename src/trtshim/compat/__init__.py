"""The stable API: ``detect``, ``compile``, ``save``, ``load`` and what they return.

Only ``detect`` and ``Environment`` are torch-free; everything else imports torch on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trtshim.compat.environment import Environment, detect

if TYPE_CHECKING:
    from trtshim.compat.api import compile
    from trtshim.compat.artifact import load, save
    from trtshim.compat.custom_ops import custom_op, register_fake
    from trtshim.compat.manifest import read_manifest
    from trtshim.compat.module import CompiledModule
    from trtshim.compat.runtime import RuntimeFacts, probe_runtime
    from trtshim.compat.serial import tracing_lock
    from trtshim.compat.signing import keygen, sign

__all__ = [
    "CompiledModule",
    "Environment",
    "RuntimeFacts",
    "compile",
    "custom_op",
    "detect",
    "keygen",
    "load",
    "probe_runtime",
    "read_manifest",
    "register_fake",
    "save",
    "sign",
    "tracing_lock",
]

_LAZY = {
    "compile": "trtshim.compat.api",
    "save": "trtshim.compat.artifact",
    "load": "trtshim.compat.artifact",
    "CompiledModule": "trtshim.compat.module",
    "custom_op": "trtshim.compat.custom_ops",
    "register_fake": "trtshim.compat.custom_ops",
    "read_manifest": "trtshim.compat.manifest",
    "probe_runtime": "trtshim.compat.runtime",
    "RuntimeFacts": "trtshim.compat.runtime",
    "tracing_lock": "trtshim.compat.serial",
    "sign": "trtshim.compat.signing",
    "keygen": "trtshim.compat.signing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trtshim.compat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
