"""``compat.save`` / ``compat.load`` against ``torch.export.save`` / ``torch.export.load(...).module()``.

For each model size (Linear stacks of float32 weights), in one run:

- save, interleaved rounds (medians), each call after ``os.sync()`` and after the previous save's replaced
  file is freed (both outside the timing: without them, the page cache's dirty bytes and the freeing of
  the last call's file slow whichever save comes next): torch; trtshim as users call it (BLAKE3 digests taken while
  torch writes, atomic rename); trtshim ``durable=True`` (fsync of the file and its folder); trtshim the
  way it saved before (SHA-256, the file read back after the write, fsync).
- load, warm (the file in the page cache): torch; trtshim (every digest checked); trtshim ``verify=False``.
- load in a fresh process (the file warm, the interpreter not): seconds for the load alone and the
  process's peak RSS, torch vs trtshim, alternating.
- file size with ``include_source=True`` against without: the source program stored as bytes, and what
  the same bytes cost as the base64 text that earlier versions stored.

Every ratio is against torch, measured in this run: the ratio of the medians, and for trtshim's save and load the
lowest and highest ratio within one round (``rounds a-b``), which shows how far the machine's noise reaches.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from unittest import mock

import torch
from timing import interleaved_times, round_ratios
from torch import nn


class Wide(nn.Module):
    """Eight bias-free Linear layers holding about ``mb`` MiB of float32 weights."""

    def __init__(self, mb: int) -> None:
        super().__init__()
        rows = max(1, mb * 2**20 // 4 // 4096 // 8)
        self.layers = nn.ModuleList(nn.Linear(4096, rows, bias=False) for _ in range(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([layer(x) for layer in self.layers], dim=1)


_FRESH = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import torch
kind, path = sys.argv[1], sys.argv[2]
if kind == "trtshim":
    from trtshim import compat
start = time.perf_counter()
module = torch.export.load(path).module() if kind == "torch" else compat.load(path)
seconds = time.perf_counter() - start
# VmHWM: this process's own peak (ru_maxrss starts from the parent's RSS at fork, which hides it)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"s": seconds, "rss_mib": peak / 1024}))
"""


def fresh_loads(path: str, rounds: int) -> dict[str, tuple[float, float]]:
    """(median seconds of the load, median peak RSS in MiB) per loader, each in a new process."""
    out: dict[str, list[dict[str, float]]] = {"torch": [], "trtshim": []}
    for _ in range(rounds):
        for kind in out:
            done = subprocess.run(
                [sys.executable, "-c", _FRESH, kind, path], capture_output=True, text=True, check=True
            )
            out[kind].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        k: (statistics.median(r["s"] for r in v), statistics.median(r["rss_mib"] for r in v)) for k, v in out.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", default="8,50,500,2048", help="model sizes in MiB")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--large-rounds", type=int, default=3, help="rounds for sizes of 1 GiB and more")
    parser.add_argument("--fresh-rounds", type=int, default=3)
    args = parser.parse_args()
    from trtshim import compat
    from trtshim.compat.artifact import atomic
    from trtshim.compat.artifact.trust import integrity

    seal = integrity.seal

    def save_before(module: object, path: str) -> None:
        """What save did before: SHA-256, every member read back after the write, fsync."""
        with mock.patch.object(integrity, "seal", lambda p, streamed=None, **kw: seal(p, None, "sha256", **kw)):
            compat.save(module, path, durable=True)

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}; {os.cpu_count()} cores; digest {integrity.algorithm()}")
    print(f"medians of {args.rounds} interleaved rounds (warm); fresh process: {args.fresh_rounds} rounds\n")
    rows: list[str] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("TRTSHIM_BENCH_DIR")) as tmp:
        for mb in (int(v) for v in args.mb.split(",")):
            rounds = args.rounds if mb < 1024 else args.large_rounds
            x = torch.randn(2, 4096)
            module = compat.compile(Wide(mb), (x,), backend="export")
            at = {k: os.path.join(tmp, f"{k}.pt2") for k in ("torch", "trtshim", "durable", "before", "source")}
            save_times = interleaved_times(
                {
                    "torch": lambda m=module, at=at: torch.export.save(m.program, at["torch"]),
                    "trtshim": lambda m=module, at=at: compat.save(m, at["trtshim"]),
                    "durable": lambda m=module, at=at: compat.save(m, at["durable"], durable=True),
                    "before": lambda m=module, at=at: save_before(m, at["before"]),
                },
                rounds,
                settle=lambda: (atomic.settle(), os.sync()),  # the last save's replaced file freed, then synced
            )
            compat.save(module, at["source"], include_source=True)
            lean, with_source = os.path.getsize(at["trtshim"]), os.path.getsize(at["source"])
            buf = io.BytesIO()
            torch.export.save(module.program, buf)
            as_text = lean + len(base64.b64encode(buf.getvalue()))
            del module, buf  # the loads below run without the compiled model in memory
            for name in ("torch", "durable", "before", "source"):  # nor the other files in the page cache
                os.unlink(at[name])
            os.sync()
            load_times = interleaved_times(
                {
                    "torch": lambda p=at["trtshim"]: torch.export.load(p).module(),
                    "trtshim": lambda p=at["trtshim"]: compat.load(p),
                    "noverify": lambda p=at["trtshim"]: compat.load(p, verify=False),
                },
                rounds,
            )
            save = {k: statistics.median(v) for k, v in save_times.items()}
            load = {k: statistics.median(v) for k, v in load_times.items()}
            save_spread = "{:.2f}-{:.2f}".format(*round_ratios(save_times, "trtshim", "torch"))
            load_spread = "{:.2f}-{:.2f}".format(*round_ratios(load_times, "trtshim", "torch"))
            fresh = fresh_loads(at["trtshim"], args.fresh_rounds)
            t, f = save["torch"], fresh["torch"]
            rows.append(
                f"{mb:>5} MiB | save {t:.3f} s: trtshim {save['trtshim'] / t:.2f}x (rounds {save_spread}), durable {save['durable'] / t:.2f}x, "
                f"before {save['before'] / t:.2f}x | load {load['torch']:.3f} s: trtshim {load['trtshim'] / load['torch']:.2f}x "
                f"(rounds {load_spread}), "
                f"no verify {load['noverify'] / load['torch']:.2f}x | fresh {f[0]:.3f} s: trtshim "
                f"{fresh['trtshim'][0] / f[0]:.2f}x, peak RSS {f[1]:.0f} vs {fresh['trtshim'][1]:.0f} MiB "
                f"({fresh['trtshim'][1] - f[1]:+.0f}) | source {with_source / lean:.2f}x (base64 text: {as_text / lean:.2f}x)"
            )
            print(rows[-1], flush=True)
            for p in at.values():
                if os.path.exists(p):
                    os.unlink(p)


if __name__ == "__main__":
    main()
