"""Per-call cost of a compiled small CNN at batch 1 on CPU: eager, ``ep.module()``, the bare flat graph
(lifted state pre-bound, the floor any wrapper can reach) and trtshim's ``CompiledModule``, whose call
checks the program's whole input contract (``compat.contract``).

Three cases: ``static`` (one tensor input), ``dynamic`` (``Dim("batch")``, unbounded on CPU; on CUDA
bounded by 65535, the batch cuDNN's convolution guards at export: symbol
binding and range checks on every call) and ``kwargs`` (a tensor, a keyword tensor and a keyword
float, passed in another order than at compile time: binding by name plus the value check).

All four run in one process, interleaved in rounds so drift on a busy machine hits them alike.
Prints medians and the ratios the project tracks: CompiledModule / bare graph (goal <= 1.05) and
CompiledModule / ep.module() (goal <= 0.5).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, stride=2)
        self.bn2 = nn.BatchNorm2d(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean(dim=(2, 3)))


class KeywordCNN(SmallCNN):
    def forward(self, x: torch.Tensor, *, shift: torch.Tensor, gain: float = 1.0) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x + shift) * gain


def per_call_us(fn, args, kwargs, calls: int) -> float:
    sync = torch.cuda.synchronize if args[0].is_cuda else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(calls):
        fn(*args, **kwargs)
    sync()
    return (time.perf_counter() - t) / calls * 1e6


def measure(case: str, size: int, rounds: int, calls: int, device: str = "cpu") -> dict[str, float]:
    from trtshim import compat

    torch.manual_seed(0)
    x = torch.randn(1, 3, size, size, device=device)
    model: nn.Module = (KeywordCNN() if case == "kwargs" else SmallCNN()).eval().to(device)
    kwargs: dict = {}
    dynamic = None
    if case == "kwargs":
        kwargs = {"shift": torch.randn(1, 3, 1, 1, device=device), "gain": 2.0}
    if case == "dynamic":
        bound = {"max": 65535} if device.startswith("cuda") else {}
        dynamic = {"x": {0: torch.export.Dim("batch", **bound)}}
    example = torch.cat([x, x]) if dynamic else x  # batch 1 would be specialized; the calls run at 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compat.compile(model, (example,), backend="export", example_kwargs=kwargs, dynamic_shapes=dynamic)
    ep = compiled.program
    ep_module = ep.module()
    bound = compiled._bound
    graph = ep.graph_module
    called = dict(reversed(list(kwargs.items())))  # another keyword order than at compile time
    flat_kwargs = list(kwargs.values())  # the graph's own order: as at compile time

    def bare(inp, **_: object):
        return graph(*bound, inp, *flat_kwargs)

    variants = {"eager": model, "ep.module()": ep_module, "bare graph": bare, "CompiledModule": compiled}
    with torch.inference_mode():
        ref = model(x, **kwargs)
        for name, fn in variants.items():
            out = fn(x, **called)
            out = out[0] if isinstance(out, (tuple, list)) else out
            assert torch.allclose(out, ref, atol=1e-5), name
            per_call_us(fn, (x,), called, 50)  # warm-up
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                samples[name].append(per_call_us(fn, (x,), called, calls))
    return {name: statistics.median(v) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200, help="calls per round and variant")
    parser.add_argument("--sizes", default="8,16,32", help="input heights/widths to measure, comma-separated")
    parser.add_argument("--cases", default="static,dynamic,kwargs", help="static, dynamic, kwargs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__} on {args.device}, small CNN (2 conv + 2 bn + linear), batch 1, {args.threads} thread(s), "
        f"median of {args.rounds} rounds x {args.calls} calls, microseconds per call"
    )
    print(
        f"{'case':>8} {'input':>10} {'eager':>8} {'ep.module':>10} {'bare':>8} {'Compiled':>9}  {'C/bare':>7} {'C/ep.module':>11}"
    )
    from trtshim.errors import CompileError

    for case in args.cases.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            try:
                med = measure(case, size, args.rounds, args.calls, args.device)
            except CompileError as exc:  # e.g. torch specializing the batch of a CUDA conv
                print(f"{case:>8} {f'3x{size}x{size}':>10}  not measured: {exc.reason[:100]}")
                continue
            r_bare = med["CompiledModule"] / med["bare graph"]
            r_ep = med["CompiledModule"] / med["ep.module()"]
            print(
                f"{case:>8} {f'3x{size}x{size}':>10} {med['eager']:8.1f} {med['ep.module()']:10.1f} "
                f"{med['bare graph']:8.1f} {med['CompiledModule']:9.1f}  {r_bare:7.3f} {r_ep:11.3f}"
            )
    print("goals: CompiledModule / bare graph <= 1.05; CompiledModule / ep.module() <= 0.50")


if __name__ == "__main__":
    main()
