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
    from trtshim.compat.artifact.manifest import read_manifest
    from trtshim.compat.artifact.trust.signing import keygen, sign
    from trtshim.compat.call.module import CompiledModule
    from trtshim.compat.programs.custom_ops import custom_op, register_fake
    from trtshim.compat.runtime import RuntimeFacts, probe_runtime
    from trtshim.compat.serial import tracing_lock

__all__ = [
    "CompiledModule",
    "Environment",
    "RuntimeFacts",
    "compile",
    "custom_op",
    "detect",
    "keygen",
    "load",
    "package",
    "probe_runtime",
    "read_manifest",
    "register_fake",
    "save",
    "sign",
    "tracing_lock",
]

_LAZY = {
    "compile": "trtshim.compat.api",
    "package": "trtshim.compat.api",
    "save": "trtshim.compat.artifact",
    "load": "trtshim.compat.artifact",
    "CompiledModule": "trtshim.compat.call.module",
    "custom_op": "trtshim.compat.programs.custom_ops",
    "register_fake": "trtshim.compat.programs.custom_ops",
    "read_manifest": "trtshim.compat.artifact.manifest",
    "probe_runtime": "trtshim.compat.runtime",
    "RuntimeFacts": "trtshim.compat.runtime",
    "tracing_lock": "trtshim.compat.serial",
    "sign": "trtshim.compat.artifact.trust.signing",
    "keygen": "trtshim.compat.artifact.trust.signing",
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
