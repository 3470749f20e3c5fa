"""CompiledModule construction against the tensor count: 100 / 1,600 / 6,400 lifted tensors.

Construction used to rebuild the set of registered names once per tensor (quadratic: 4.2 s at 3,200
tensors). For each size this prints, measured in one run: the time to build a CompiledModule from the
program, ``ep.module()``'s time for the same program (torch's own unlifting, for scale), microseconds
per tensor (flat when construction is linear), and the compile / load ratios against torch
(``compat.compile`` / the same export in torch alone, ``compat.load`` / ``torch.export.load``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

import torch
from torch import nn


class Stack(nn.Module):
    def __init__(self, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tensors", default="100,1600,6400")
    args = parser.parse_args()
    from trtshim import compat

    with warnings.catch_warnings():  # warm-up: torch.export's first call pays for its imports
        warnings.simplefilter("ignore")
        compat.compile(Stack(2), (torch.randn(2, 4),), backend="export")
        torch.export.export(Stack(2), (torch.randn(2, 4),))
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}; Linear(4, 4) stacks, 2 tensors a layer; median of 3 (1 for compile/export)")
    print(f"{'tensors':>8} {'build s':>8} {'us/tensor':>10} {'ep.module s':>12} {'compile/export':>15} {'load/torch.load':>16}")
    for n in (int(v) for v in args.tensors.split(",")):
        print(row(n))


def torch_export(model: nn.Module, x: torch.Tensor) -> torch.export.ExportedProgram:
    """What compat.compile's export backend does, in torch alone: export, and on torch >= 2.6 the
    decomposition to the inference IR (``run_decompositions``)."""
    from trtshim.compat import detect
    from trtshim.compat.backends.export import default_strict, returns_training_ir

    env = detect()
    ep = torch.export.export(model, (x,), strict=default_strict(env))
    return ep.run_decompositions({}) if returns_training_ir(env) else ep


def row(n: int) -> str:
    from trtshim import compat

    x = torch.randn(2, 4)
    model = Stack(n // 2).eval()
    t_export, ep = timed(lambda: torch_export(model, x), repeat=1)
    t_compile, compiled_any = timed(lambda: compat.compile(model, (x,), backend="export"), repeat=1)
    compiled: compat.CompiledModule = compiled_any  # type: ignore[assignment]
    t_build, _ = timed(lambda: compat.CompiledModule(compiled.program, backend="export", environment=compiled.environment))
    t_module, _ = timed(lambda: compiled.program.module())
    with tempfile.TemporaryDirectory() as tmp:
        ours, plain = os.path.join(tmp, "ours.pt2"), os.path.join(tmp, "plain.pt2")
        compat.save(compiled, ours)
        torch.export.save(ep, plain)
        t_load, _ = timed(lambda: compat.load(ours))
        t_torch_load, _ = timed(lambda: torch.export.load(plain))
    return (
        f"{n:>8} {t_build:8.3f} {t_build / n * 1e6:10.1f} {t_module:12.3f} "
        f"{t_compile / t_export:15.3f} {t_load / t_torch_load:16.3f}"
    )


if __name__ == "__main__":
    main()
