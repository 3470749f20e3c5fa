"""Cost of ``import trtshim`` and of ``trtshim.compat.detect()``, each in fresh interpreters.

Reports the median over several fresh processes, measured inside the child with perf_counter
(interpreter start-up excluded), plus ``python -X importtime``'s own figure for ``import trtshim``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CHILD = """
import time
t0 = time.perf_counter()
import trtshim
t1 = time.perf_counter()
from trtshim import compat
env = compat.detect()
t2 = time.perf_counter()
import sys
assert "torch" not in sys.modules
print(f"{(t1 - t0) * 1e3:.3f} {(t2 - t1) * 1e3:.3f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    imports, detects = [], []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
        a, b = map(float, out.split())
        imports.append(a)
        detects.append(b)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import trtshim"], capture_output=True, text=True
    )
    last = [line for line in proc.stderr.splitlines() if line.rstrip().endswith("| trtshim")]
    cumulative_us = int(last[-1].split("|")[1]) if last else -1
    print(f"fresh processes: {args.runs}")
    print(
        f"import trtshim           median {statistics.median(imports):6.2f} ms  max {max(imports):6.2f} ms  (goal <= 20 ms)"
    )
    print(
        f"compat.detect() (first)  median {statistics.median(detects):6.2f} ms  max {max(detects):6.2f} ms  (goal <= 30 ms)"
    )
    print(f"-X importtime cumulative for trtshim: {cumulative_us / 1000:.2f} ms")


if __name__ == "__main__":
    main()
