"""How ``compat.load`` takes its digests, against ``torch.export.load(...).module()``, per model size.

Cases, interleaved in one process (medians, per-round spread): torch; trtshim as users call it (raw tensor
members of ``tensor_reads.MIN_BYTES`` and more read by trtshim for torch, hashed as they arrive; smaller
bulk members hashed by the helper beside torch); trtshim with every bulk member hashed by the helper
beside torch's own reads (as before the reader existed); trtshim with every raw tensor member read by
trtshim (``MIN_BYTES`` = 1 MiB); ``verify=False`` with trtshim's reads. The file is in the page cache.
Use it to choose ``MIN_BYTES`` on a machine: the reader must win where it is used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import torch
from save_load import Wide
from timing import interleaved_times, round_ratios

from trtshim import compat
from trtshim.compat.artifact import tensor_reads


def with_min_bytes(path: str, min_bytes: int, verify: bool = True) -> Callable[[], Any]:
    def load() -> Any:
        default, tensor_reads.MIN_BYTES = tensor_reads.MIN_BYTES, min_bytes
        try:
            return compat.load(path, verify=verify)
        finally:
            tensor_reads.MIN_BYTES = default

    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", default="50,200,500", help="model sizes in MiB")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, reader {'on' if tensor_reads.served_here() else 'off'}")
    print(f"MIN_BYTES {tensor_reads.MIN_BYTES >> 20} MiB, {tensor_reads.THREADS} reading threads")
    with tempfile.TemporaryDirectory() as folder:
        for mb in (int(m) for m in args.mb.split(",")):
            path = os.path.join(folder, f"wide{mb}.pt2")
            model = Wide(mb).eval()
            compat.save(compat.compile(model, (torch.randn(2, 4096),), backend="export"), path)
            del model
            cases = {
                "torch": lambda path=path: torch.export.load(path).module(),
                "trtshim": with_min_bytes(path, tensor_reads.MIN_BYTES),
                "helper only": with_min_bytes(path, 1 << 62),
                "reader only": with_min_bytes(path, 1 << 20),
                "verify=False": with_min_bytes(path, tensor_reads.MIN_BYTES, verify=False),
            }
            times = interleaved_times(cases, args.rounds)
            base = statistics.median(times["torch"])
            member = mb * 2**20 // 8 >> 20
            print(f"\n{mb} MiB (8 members of {member} MiB): torch {base * 1000:.1f} ms")
            for name in list(cases)[1:]:
                median = statistics.median(times[name])
                low, high = round_ratios(times, name, "torch")
                print(f"  {name:<13} {median * 1000:8.1f} ms  {median / base:.2f}x  (rounds {low:.2f}-{high:.2f})")
            os.unlink(path)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
