"""``compat.save`` (manifest, SHA-256 member table, atomic write with fsync) against ``torch.export.save``.

The member digests are taken from the bytes while torch writes them (``integrity.StreamDigests``, a
thread beside the writer) instead of reading the file back. For each size this saves one program,
interleaved in rounds: ``torch.export.save`` to the same folder, ``compat.save`` as users call it, and
``compat.save`` with the digests read back after the write (``seal`` without the streamed digests: what
save did before). Prints medians and the ratios to torch, all measured in this run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from unittest import mock

import torch
from load_integrity import Wide
from timing import interleaved_medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", default="8,50,500", help="model sizes in MiB")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    from trtshim import compat
    from trtshim.compat import integrity

    seal = integrity.seal

    def read_back_save(module: object, path: str) -> None:
        with mock.patch.object(integrity, "seal", lambda p, streamed=None: seal(p)):
            compat.save(module, path)

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}; {os.cpu_count()} cores; median of {args.rounds} interleaved rounds")
    print(f"{'MiB':>5} {'torch s':>8} {'trtshim s':>10} {'ratio':>6} {'read-back s':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TRTSHIM_BENCH_DIR")) as tmp:
        for mb in (int(v) for v in args.mb.split(",")):
            module = compat.compile(Wide(mb), (torch.randn(2, 4096),), backend="export")
            cases = {
                "torch": lambda m=module: torch.export.save(m.program, os.path.join(tmp, "torch.pt2")),
                "trtshim": lambda m=module: compat.save(m, os.path.join(tmp, "trtshim.pt2")),
                "readback": lambda m=module: read_back_save(m, os.path.join(tmp, "readback.pt2")),
            }
            med = interleaved_medians(cases, args.rounds)
            base = med["torch"]
            print(
                f"{mb:>5} {base:>8.3f} {med['trtshim']:>10.3f} {med['trtshim'] / base:>6.2f} "
                f"{med['readback']:>12.3f} {med['readback'] / base:>6.2f}"
            )


if __name__ == "__main__":
    main()
