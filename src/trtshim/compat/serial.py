"""One process-wide lock for what traces or (de)serializes programs: ``compile``, ``save``, ``load``.

torch.export keeps its dispatch-mode and fake-mode stacks process-global: two threads exporting at once
fail (``AssertionError: Trying to pop empty mode stack``, measured on torch 2.13 with 8 threads). trtshim's
entry points hold this re-entrant lock, so they may be called from any number of threads; calling a
compiled module is not serialized. torch's tracer also patches ``nn.Module.__call__`` process-wide while
it runs, so a module called in one thread while another thread compiles or saves can be traced into
(wrong outputs, measured once in 8 threads on torch 2.8): hold ``tracing_lock()`` around such calls, and
around tracing of your own (``torch.export.export``, ``torch_tensorrt.compile``) in other threads.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_LOCK = threading.RLock()


def tracing_lock() -> threading.RLock:
    """The lock ``compile``, ``save`` and ``load`` hold while they call torch."""
    return _LOCK


def serialized(fn: F) -> F:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]
