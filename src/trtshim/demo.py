"""The seed scenario, end to end: weighted layers + a custom op, compile -> save -> load in a fresh
process -> compare with eager. Importing this module registers the op ``trtshim_demo::scaled_tanh``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trtshim.compat.programs.custom_ops import custom_op
from trtshim.errors import BackendFallbackWarning

TOLERANCE = 1e-5


@custom_op("trtshim_demo::scaled_tanh", mutates_args=(), schema="(Tensor x, float scale) -> Tensor")
def scaled_tanh(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.tanh(x) * scale


@scaled_tanh.register_fake
def _(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.empty_like(x)


class DemoNet(nn.Module):
    """conv + batchnorm (weights and buffers), a custom op in the middle, then a classifier head."""

    def __init__(self, channels: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        y = torch.ops.trtshim_demo.scaled_tanh(y, 2.0)
        y = self.conv2(y).mean(dim=(2, 3))
        return self.head(y)


def make_model(seed: int = 0) -> DemoNet:
    torch.manual_seed(seed)
    model = DemoNet().eval()
    mean, var = model.bn.running_mean, model.bn.running_var
    assert mean is not None and var is not None
    with torch.no_grad():  # non-trivial running stats, so the buffers matter
        mean.uniform_(-0.5, 0.5)
        var.uniform_(0.5, 2.0)
    return model


@dataclass
class DemoResult:
    backend: str
    fixes: dict[str, list[str]]  # stage -> the fixes applied there (compile, save, load)
    max_abs_error: float
    timings: dict[str, float] = field(default_factory=dict)
    artifact: str = ""  # where it was written (removed afterwards unless kept)
    artifact_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ok"] = self.ok
        return d


def _keep_folder(keep: str) -> str:
    """``--keep DIR``, checked before anything is compiled: created if missing, and writable."""
    from trtshim.errors import OptionError

    folder = os.path.abspath(keep)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OptionError(f"cannot create the folder {folder}: {exc.strerror}", "pass a writable folder to --keep") from exc
    if not os.access(folder, os.W_OK):
        raise OptionError(f"the folder {folder} is not writable", "pass a writable folder to --keep")
    return folder


def run(
    *,
    device: str = "cpu",
    backend: str = "auto",
    keep: str | None = None,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """The demo; ``keep``: a folder that keeps the artifact (else everything goes into a temporary
    folder that is removed before returning, whatever happens)."""
    if keep is not None:
        folder = _keep_folder(keep)
        return _run(folder, device, backend, say, kept=True)
    with tempfile.TemporaryDirectory(prefix="trtshim-demo-") as folder:
        return _run(folder, device, backend, say, kept=False)


def _run(folder: str, device: str, backend: str, say: Callable[[str], None], *, kept: bool) -> DemoResult:
    from trtshim import compat

    total = 5
    say(
        f"[1/{total}] environment\n"
        + "\n".join("      " + line for line in str(compat.detect()).splitlines())
    )
    model = make_model().to(device)
    x = torch.randn(2, 3, 32, 32, device=device)
    timings: dict[str, float] = {}

    say(f"[2/{total}] compile (backend={backend!r}) ...")
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BackendFallbackWarning)
        compiled = compat.compile(model, (x,), backend=backend)
    timings["compile_s"] = time.perf_counter() - t
    for w in caught:
        if issubclass(w.category, BackendFallbackWarning):
            say(f"      fallback announced: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    say(f"      backend {compiled.backend!r} in {timings['compile_s']:.2f} s")

    artifact = os.path.join(folder, "demo.pt2")
    say(f"[3/{total}] save -> {artifact}" + ("" if kept else "  (a temporary folder; --keep DIR keeps it)"))
    t = time.perf_counter()
    compat.save(compiled, artifact)
    timings["save_s"] = time.perf_counter() - t
    size = os.path.getsize(artifact)
    manifest, _ = compat.read_manifest(artifact)
    saved = [f["id"] for f in (manifest or {}).get("fixes", []) if f["applied"] and "save" in f.get("stages", [])]
    say(f"      {size / 1024:.1f} KiB in {timings['save_s']:.2f} s")

    say(f"[4/{total}] load in a fresh process and run ...")
    with tempfile.TemporaryDirectory(prefix="trtshim-demo-io-") as io_folder:
        inputs, outputs = os.path.join(io_folder, "inputs.pt"), os.path.join(io_folder, "outputs.pt")
        torch.save(x.cpu(), inputs)
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "trtshim.demo", artifact, inputs, outputs, device],
            capture_output=True,
            text=True,
        )
        timings["fresh_process_s"] = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"the fresh process failed:\n{proc.stderr.strip()}")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        got = torch.load(outputs)
    timings["load_s"] = child["load_s"]
    say(f"      loaded in {child['load_s']:.2f} s (process total {timings['fresh_process_s']:.2f} s)")

    say(f"[5/{total}] compare with eager")
    with torch.inference_mode():
        expected = model(x).cpu()
    err = float((got - expected).abs().max())
    fixes = {"compile": list(compiled.fixes_applied), "save": saved, "load": child["fixes"]}
    result = DemoResult(compiled.backend, fixes, err, timings, artifact, size)
    say(f"      max abs error {err:.3g} (tolerance {TOLERANCE:g}): {'match' if result.ok else 'MISMATCH'}")
    return result


def _child(artifact: str, inputs: str, outputs: str, device: str) -> None:
    from trtshim import compat

    t = time.perf_counter()
    module = compat.load(artifact, device=device)
    load_s = time.perf_counter() - t
    with torch.inference_mode():
        y = module(torch.load(inputs).to(device))
    torch.save(y.cpu(), outputs)
    print(json.dumps({"load_s": load_s, "backend": module.backend, "fixes": list(module.fixes_applied)}))


if __name__ == "__main__":
    _child(*sys.argv[1:5])
