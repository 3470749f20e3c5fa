"""Backends turn (model, example inputs) into an ExportedProgram. ``resolve`` picks one for ``"auto"``."""

from __future__ import annotations

import threading

from trtshim.errors import BackendFallbackWarning, BackendUnavailableError, OptionError, announce

NAMES = ("auto", "export", "tensorrt", "inductor")
_warned: set[str] = set()
_warned_lock = threading.Lock()


def tensorrt_usable() -> tuple[bool, str]:
    """Whether the TensorRT backend can run here, and the reason when not (metadata first, then a probe)."""
    from trtshim.compat.environment import detect

    if detect().torch_tensorrt is None:
        return False, "torch_tensorrt is not installed"
    from trtshim.compat.runtime import probe_runtime

    return probe_runtime().tensorrt_can_run


def resolve(name: str) -> str:
    """The concrete backend for ``name``; ``"auto"`` announces a fallback once per reason."""
    if name not in NAMES:
        raise OptionError(f"unknown backend {name!r}", f"choose one of {', '.join(NAMES)}")
    if name in ("export", "inductor"):
        return name
    ok, why = tensorrt_usable()
    if ok:
        return "tensorrt"
    if name == "tensorrt":
        raise BackendUnavailableError(f"the tensorrt backend cannot run here: {why}")
    with _warned_lock:
        first = why not in _warned
        _warned.add(why)
    if first:
        announce(f"backend='auto' uses the torch-only 'export' backend: {why}", BackendFallbackWarning)
    return "export"
