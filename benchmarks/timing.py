"""Interleaved timing for the benchmarks: every case once per round, rounds repeated, medians, so that
drift on a busy machine hits all cases alike. Each round runs the cases in another order (shuffled, seeded),
so that no case always follows the same one: a call that comes right after one that freed much memory
can pay far more (measured on a 2-core VM: about 1 s more for a 500 MB save, whichever case came next). Garbage is collected before each timed call (outside the
timing): a loaded program's graph holds reference cycles, and the weights of the last call's result
would otherwise still occupy memory while the next case runs."""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from typing import Any


def interleaved_medians(
    cases: dict[str, Callable[[], Any]], rounds: int, settle: Callable[[], Any] | None = None
) -> dict[str, float]:
    """Median seconds of each case over ``rounds`` interleaved rounds (after one warm-up call each);
    ``settle`` runs before each timed call, outside the timing (as garbage collection does)."""
    return {name: statistics.median(values) for name, values in interleaved_times(cases, rounds, settle).items()}


def interleaved_times(
    cases: dict[str, Callable[[], Any]], rounds: int, settle: Callable[[], Any] | None = None
) -> dict[str, list[float]]:
    """Seconds of each case in each of ``rounds`` interleaved rounds, in round order (see ``interleaved_medians``)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    order = random.Random(0)
    names = list(cases)
    for _ in range(rounds):
        order.shuffle(names)
        for name in names:
            fn = cases[name]
            gc.collect()
            if settle is not None:
                settle()
            start = time.perf_counter()
            result = fn()  # freed after the timing: torch's results hold cycles (freed by gc), others not
            times[name].append(time.perf_counter() - start)
            del result
    return times


def round_ratios(times: dict[str, list[float]], case: str, base: str) -> tuple[float, float]:
    """Lowest and highest per-round ratio ``case / base``: the spread behind the ratio of the medians."""
    ratios = [a / b for a, b in zip(times[case], times[base], strict=True)]
    return min(ratios), max(ratios)
