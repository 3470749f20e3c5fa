"""Runtime facts that need imports: an explicit, lazy probe (``probe_runtime()``), never run at import."""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any

# TensorRT-RTX runs engines only on these compute capabilities (its own error message on 9.0 lists them).
RTX_COMPUTE_CAPABILITIES = ((8, 0), (8, 6), (8, 9), (12, 0), (12, 1))


@dataclass(frozen=True)
class RuntimeFacts:
    torch_version: str
    cuda_build: str | None  # torch.version.cuda; None for a CPU build
    cuda_available: bool
    device_name: str | None
    compute_capability: tuple[int, int] | None
    torch_tensorrt_imports: bool | None  # None: not checked (not installed)
    torch_tensorrt_error: str | None
    # "tensorrt" or "tensorrt_rtx": torch_tensorrt's proxy when it imports, else the installed distribution
    tensorrt_flavour: str | None

    @property
    def tensorrt_can_run(self) -> tuple[bool, str]:
        """Whether TensorRT engines can run here, and why not (the most definite reason first)."""
        if self.torch_tensorrt_imports is None:
            return False, "torch_tensorrt is not installed"
        cc = self.compute_capability
        rtx = self.tensorrt_flavour == "tensorrt_rtx"
        if rtx and cc is not None and cc not in RTX_COMPUTE_CAPABILITIES and cc <= (12, 1):
            supported = ", ".join(f"{a}.{b}" for a, b in RTX_COMPUTE_CAPABILITIES)
            why = (
                f"TensorRT-RTX cannot run engines on compute capability {cc[0]}.{cc[1]} "
                f"({self.device_name}; it runs {supported}): install torch-tensorrt (TensorRT) for this GPU"
            )
            if not self.torch_tensorrt_imports:
                why += f"; torch_tensorrt does not import either: {self.torch_tensorrt_error}"
            return False, why
        if not self.torch_tensorrt_imports:
            return False, f"torch_tensorrt does not import: {self.torch_tensorrt_error}"
        if not self.cuda_build:
            return False, "torch is a CPU build (torch.version.cuda is None)"
        if not self.cuda_available:
            return False, "no CUDA device is available"
        return True, "TensorRT engines can run"

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["compute_capability"] = list(self.compute_capability) if self.compute_capability else None
        d["tensorrt_can_run"] = self.tensorrt_can_run[0]
        d["tensorrt_reason"] = self.tensorrt_can_run[1]
        return d


_lock = threading.Lock()
_cached: RuntimeFacts | None = None


def probe_runtime(*, refresh: bool = False) -> RuntimeFacts:
    """Import torch (and torch_tensorrt when installed) and report what they can do. Cached."""
    global _cached
    with _lock:
        if _cached is None or refresh:
            _cached = _probe()
        return _cached


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _probe() -> RuntimeFacts:
    import torch

    from trtshim.compat.environment import detect

    cuda_available = bool(torch.cuda.is_available())
    device_name = torch.cuda.get_device_name(0) if cuda_available else None
    cc = tuple(torch.cuda.get_device_capability(0)) if cuda_available else None
    imports: bool | None = None
    error: str | None = None
    env = detect()
    flavour = {"torch-tensorrt": "tensorrt", "torch-tensorrt-rtx": "tensorrt_rtx"}.get(
        env.torch_tensorrt_flavour or ""
    )
    if env.torch_tensorrt is not None:
        try:
            ttrt = importlib.import_module("torch_tensorrt")
            imports = True
            features = getattr(ttrt, "ENABLED_FEATURES", None)
            flavour = "tensorrt_rtx" if getattr(features, "tensorrt_rtx", False) else "tensorrt"
        except Exception as exc:  # an import of a native stack fails in many ways; report, never crash
            imports, error = False, _first_line(exc)
    return RuntimeFacts(
        torch_version=torch.__version__,
        cuda_build=torch.version.cuda,
        cuda_available=cuda_available,
        device_name=device_name,
        compute_capability=(int(cc[0]), int(cc[1])) if cc else None,
        torch_tensorrt_imports=imports,
        torch_tensorrt_error=error,
        tensorrt_flavour=flavour,
    )
