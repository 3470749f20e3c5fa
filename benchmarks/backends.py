"""Call latency of eager, the ``export`` backend and the ``inductor`` backend (AOTInductor compiled code),
per model, with each backend's compile time; on CPU here, on CUDA where ``--device cuda`` has a GPU.

All three run in one process, interleaved in rounds; prints medians and the ratios eager / backend.
Models: the small CNN of ``call_overhead.py``, torchvision's resnet18 and a 4-layer MLP (random weights).
``python benchmarks/backends.py [--rounds 30] [--device cpu]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from call_overhead import SmallCNN
from timing import interleaved_medians

from trtshim import compat


def _models() -> dict[str, tuple[torch.nn.Module, tuple[torch.Tensor, ...]]]:
    torch.manual_seed(0)
    out: dict[str, tuple[torch.nn.Module, tuple[torch.Tensor, ...]]] = {
        "small CNN, batch 8": (SmallCNN().eval(), (torch.randn(8, 3, 32, 32),)),
        "MLP 4x1024, batch 32": (
            torch.nn.Sequential(*[m for _ in range(4) for m in (torch.nn.Linear(1024, 1024), torch.nn.GELU())]).eval(),
            (torch.randn(32, 1024),),
        ),
    }
    try:
        import torchvision

        out["torchvision resnet18, batch 4"] = (torchvision.models.resnet18(num_classes=10).eval(), (torch.randn(4, 3, 64, 64),))
    except ImportError:
        pass
    return out


def _median_ms(fns: dict[str, Callable[..., Any]], args: tuple[Any, ...], rounds: int) -> dict[str, float]:
    synchronize = torch.cuda.synchronize if args and args[0].is_cuda else (lambda: None)

    def call(fn: Callable[..., Any]) -> Callable[[], Any]:
        return lambda: (fn(*args), synchronize())

    with torch.inference_mode():
        seconds = interleaved_medians({name: call(fn) for name, fn in fns.items()}, rounds)
    return {name: s * 1e3 for name, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    opts = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, device {opts.device}, {torch.get_num_threads()} threads")
    print(f"{'model':32} {'compile export':>15} {'compile inductor':>17} {'eager ms':>9} {'export ms':>10} {'inductor ms':>12} {'eager/inductor':>15}")
    for name, (model, args) in _models().items():
        model = model.to(opts.device)
        args = tuple(a.to(opts.device) for a in args)
        started = time.perf_counter()
        exported = compat.compile(model, args, backend="export")
        compile_export = time.perf_counter() - started
        started = time.perf_counter()
        packaged = compat.compile(model, args, backend="inductor")
        compile_inductor = time.perf_counter() - started
        torch.testing.assert_close(packaged(*args), model(*args), rtol=1e-3, atol=1e-4)
        ms = _median_ms({"eager": model, "export": exported, "inductor": packaged}, args, opts.rounds)
        print(
            f"{name:32} {compile_export:14.1f}s {compile_inductor:16.1f}s {ms['eager']:9.2f} {ms['export']:10.2f} "
            f"{ms['inductor']:12.2f} {ms['eager'] / ms['inductor']:14.2f}x"
        )


if __name__ == "__main__":
    main()
