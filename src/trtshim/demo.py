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
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from trtshim.compat.custom_ops import custom_op
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
    fixes_applied: tuple[str, ...]
    max_abs_error: float
    timings: dict[str, float] = field(default_factory=dict)
    artifact: str = ""
    artifact_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ok"] = self.ok
        return d


def run(*, device: str = "cpu", workdir: str | None = None, say: Callable[[str], None] = print) -> DemoResult:
    from trtshim import compat

    total = 5
    say(
        f"[1/{total}] environment\n"
        + "\n".join("      " + line for line in str(compat.detect()).splitlines())
    )
    model = make_model().to(device)
    x = torch.randn(2, 3, 32, 32, device=device)
    timings: dict[str, float] = {}

    say(f"[2/{total}] compile (backend='auto') ...")
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BackendFallbackWarning)
        compiled = compat.compile(model, (x,), backend="auto")
    timings["compile_s"] = time.perf_counter() - t
    for w in caught:
        if issubclass(w.category, BackendFallbackWarning):
            say(f"      fallback announced: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    say(f"      backend {compiled.backend!r} in {timings['compile_s']:.2f} s")

    own_tmp = workdir is None
    folder = workdir or tempfile.mkdtemp(prefix="trtshim-demo-")
    artifact = os.path.join(folder, "demo.pt2")
    say(f"[3/{total}] save -> {artifact}")
    t = time.perf_counter()
    compat.save(compiled, artifact)
    timings["save_s"] = time.perf_counter() - t
    size = os.path.getsize(artifact)
    say(f"      {size / 1024:.1f} KiB in {timings['save_s']:.2f} s")

    say(f"[4/{total}] load in a fresh process and run ...")
    inputs, outputs = os.path.join(folder, "inputs.pt"), os.path.join(folder, "outputs.pt")
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
    timings["load_s"] = child["load_s"]
    say(f"      loaded in {child['load_s']:.2f} s (process total {timings['fresh_process_s']:.2f} s)")

    say(f"[5/{total}] compare with eager")
    with torch.inference_mode():
        expected = model(x).cpu()
    got = torch.load(outputs)
    err = float((got - expected).abs().max())
    result = DemoResult(compiled.backend, compiled.fixes_applied, err, timings, artifact, size)
    say(f"      max abs error {err:.3g} (tolerance {TOLERANCE:g}): {'match' if result.ok else 'MISMATCH'}")
    if own_tmp:
        for name in (inputs, outputs):
            os.unlink(name)
    return result


def _child(artifact: str, inputs: str, outputs: str, device: str) -> None:
    from trtshim import compat

    t = time.perf_counter()
    module = compat.load(artifact, device=device)
    load_s = time.perf_counter() - t
    with torch.inference_mode():
        y = module(torch.load(inputs).to(device))
    torch.save(y.cpu(), outputs)
    print(json.dumps({"load_s": load_s, "backend": module.backend}))


if __name__ == "__main__":
    _child(*sys.argv[1:5])
