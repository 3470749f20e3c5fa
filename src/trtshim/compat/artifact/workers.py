"""trtshim's own worker threads: named executors, started on first use and again in a forked child
(whose copy of an executor has no threads, so a task submitted there would never run). Torch-free."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}  # name -> (the pid that started it, its executor)
_lock = threading.Lock()


def pool(name: str, threads: int = 1) -> ThreadPoolExecutor:
    """The executor ``trtshim-<name>`` of this process, with ``threads`` threads (fixed at first use)."""
    with _lock:
        pid, executor = _pools.get(name, (None, None))
        if executor is None or pid != os.getpid():
            executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"trtshim-{name}")
            _pools[name] = (os.getpid(), executor)
        return executor
