"""``compat.load`` with integrity on against ``torch.export.load``, warm (the file in the page cache).

For each size this saves one model with ``compat.save`` and times, interleaved in rounds so that both
see the same machine state: ``torch.export.load`` of the file, ``compat.load`` as users call it (every
member's SHA-256 checked; bulk tensor bytes hashed in the helper process while torch deserializes),
the same with the bulk hashed in a thread of this process (``$TRTSHIM_HASH_WORKER=0``), and without
verification. Prints medians and the ratios to torch, all measured in this run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings

import torch
from timing import interleaved_medians
from torch import nn


class Wide(nn.Module):
    """Eight bias-free Linear layers holding about ``mb`` MiB of float32 weights."""

    def __init__(self, mb: int) -> None:
        super().__init__()
        rows = max(1, mb * 2**20 // 4 // 4096 // 8)
        self.layers = nn.ModuleList(nn.Linear(4096, rows, bias=False) for _ in range(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([layer(x) for layer in self.layers], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", default="50,500", help="model sizes in MiB")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    from trtshim import compat

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}; {os.cpu_count()} cores; median of {args.rounds} interleaved rounds, warm")
    print(f"{'MiB':>5} {'torch s':>8} {'trtshim s':>10} {'ratio':>6} {'thread-hash':>12} {'ratio':>6} {'no verify':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for mb in (int(v) for v in args.mb.split(",")):
            x = torch.randn(2, 4096)
            path = os.path.join(tmp, f"wide{mb}.pt2")
            compat.save(compat.compile(Wide(mb), (x,), backend="export"), path)
            cases = {
                "torch": lambda p=path: torch.export.load(p),
                "trtshim": lambda p=path: compat.load(p),
                "thread": lambda p=path: _without_worker(lambda: compat.load(p)),
                "noverify": lambda p=path: compat.load(p, verify=False),
            }
            med = interleaved_medians(cases, args.rounds)  # the warm-up fills the page cache, starts the helper
            base = med["torch"]
            print(
                f"{mb:>5} {base:>8.3f} {med['trtshim']:>10.3f} {med['trtshim'] / base:>6.2f} "
                f"{med['thread']:>12.3f} {med['thread'] / base:>6.2f} {med['noverify']:>10.3f} {med['noverify'] / base:>6.2f}"
            )
            os.unlink(path)


def _without_worker(fn):  # type: ignore[no-untyped-def]
    os.environ["TRTSHIM_HASH_WORKER"] = "0"
    try:
        return fn()
    finally:
        del os.environ["TRTSHIM_HASH_WORKER"]


if __name__ == "__main__":
    main()
