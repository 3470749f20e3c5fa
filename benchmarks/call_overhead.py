"""Per-call cost of a compiled small CNN at batch 1 on CPU: eager, ``ep.module()``, the bare flat graph
(lifted state pre-bound, the floor any wrapper can reach) and trtshim's ``CompiledModule``.

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


def per_call_us(fn, x, calls: int) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(calls):
        fn(x)
    sync()
    return (time.perf_counter() - t) / calls * 1e6


def measure(size: int, rounds: int, calls: int, device: str = "cpu") -> dict[str, float]:
    from trtshim import compat

    torch.manual_seed(0)
    model = SmallCNN().eval().to(device)
    x = torch.randn(1, 3, size, size, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compat.compile(model, (x,), backend="export")
    ep = compiled.program
    ep_module = ep.module()
    bound = compiled._bound
    graph = ep.graph_module

    def bare(inp):
        return graph(*bound, inp)

    variants = {"eager": model, "ep.module()": ep_module, "bare graph": bare, "CompiledModule": compiled}
    with torch.inference_mode():
        ref = model(x)
        for name, fn in variants.items():
            out = fn(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            assert torch.allclose(out, ref, atol=1e-5), name
            per_call_us(fn, x, 50)  # warm-up
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                samples[name].append(per_call_us(fn, x, calls))
    return {name: statistics.median(v) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200, help="calls per round and variant")
    parser.add_argument("--sizes", default="8,16,32", help="input heights/widths to measure, comma-separated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__} on {args.device}, small CNN (2 conv + 2 bn + linear), batch 1, {args.threads} thread(s), "
        f"median of {args.rounds} rounds x {args.calls} calls, microseconds per call"
    )
    print(
        f"{'input':>10} {'eager':>8} {'ep.module':>10} {'bare':>8} {'Compiled':>9}  {'C/bare':>7} {'C/ep.module':>11}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        med = measure(size, args.rounds, args.calls, args.device)
        r_bare = med["CompiledModule"] / med["bare graph"]
        r_ep = med["CompiledModule"] / med["ep.module()"]
        print(
            f"{f'3x{size}x{size}':>10} {med['eager']:8.1f} {med['ep.module()']:10.1f} {med['bare graph']:8.1f} "
            f"{med['CompiledModule']:9.1f}  {r_bare:7.3f} {r_ep:11.3f}"
        )
    print("goals: CompiledModule / bare graph <= 1.05; CompiledModule / ep.module() <= 0.50")


if __name__ == "__main__":
    main()
