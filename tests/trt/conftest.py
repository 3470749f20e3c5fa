"""The real torch_tensorrt (torch-tensorrt-rtx) on a CUDA build of torch, on a machine without a GPU.

Importing it needs two torch.cuda functions patched (they are called at import time and would raise
"Found no NVIDIA driver"). The patches live here only, for the trt sessions, and are undone at the end.
Every test here skips, saying why, where torch_tensorrt is not installed.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest


def _known_import_failure(env: Any) -> str | None:
    """The matrix rule that says this torch_tensorrt release cannot import, if there is one."""
    from trtshim.matrix.model import Matrix

    pkg = env.torch_tensorrt
    rules = Matrix.load().rules_for(pkg.name, pkg.raw) if pkg else []
    return next((r.reason for r in rules if r.id.endswith("does-not-import")), None)


@pytest.fixture(scope="session")
def ttrt() -> Any:
    from trtshim.compat import detect

    env = detect()
    if env.torch_tensorrt is None:
        pytest.skip("torch_tensorrt is not installed (the trt nox sessions install torch-tensorrt-rtx)")
    torch = importlib.import_module("torch")
    if torch.version.cuda is None:
        pytest.skip("torch is a CPU build: libtorchtrt needs libtorch_cuda")
    saved = {name: getattr(torch.cuda, name) for name in ("get_device_capability", "current_device")}
    if not torch.cuda.is_available():
        torch.cuda.get_device_capability = lambda *a, **k: (0, 0)
        torch.cuda.current_device = lambda: 0
    try:
        try:
            module = importlib.import_module("torch_tensorrt")
        except Exception as exc:
            known = _known_import_failure(env)
            if known is None:
                raise
            pytest.skip(f"{env.torch_tensorrt} does not import, a known defect ({exc}): {known}")
        yield module
    finally:
        for name, fn in saved.items():
            setattr(torch.cuda, name, fn)
