"""One process-wide lock for what traces or (de)serializes programs: ``compile``, ``save``, ``load``.

torch.export keeps its dispatch-mode and fake-mode stacks process-global: two threads exporting at once
fail (``AssertionError: Trying to pop empty mode stack``, measured on torch 2.13 with 8 threads). trtshim's
entry points hold this re-entrant lock, so they may be called from any number of threads; calling a
compiled module is not serialized. torch's tracer also patches ``nn.Module.__call__`` process-wide while
it runs, so a module called in one thread while another thread compiles or saves can be traced into
(wrong outputs, measured once in 8 threads on torch 2.8): hold ``tracing_lock()`` around such calls, and
around tracing of your own (``torch.export.export``, ``torch_tensorrt.compile``) in other threads.

Inside the same scope torch's deprecation notices about its *own* internals (raised from torch's
modules, e.g. ``isinstance(treespec, LeafSpec) is deprecated`` on every compile with torch 2.10+) are
not shown: users cannot act on them. Deprecations attributed to the caller's code still show.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_LOCK = threading.RLock()


def tracing_lock() -> threading.RLock:
    """The lock ``compile``, ``save`` and ``load`` hold while they call torch."""
    return _LOCK


#: torch's notices about torch's own code; the LeafSpec one is attributed to copyreg (a deepcopy inside torch)
_TORCH_INTERNAL_NOTICES = r".*isinstance\(treespec, LeafSpec\)` is deprecated"


@contextlib.contextmanager
def quiet_torch_internals() -> Iterator[None]:
    """Hide torch's deprecation notices about its own internals for the duration (restored on exit)."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"torch(\.|$)")
        warnings.filterwarnings("ignore", message=_TORCH_INTERNAL_NOTICES, category=FutureWarning)
        yield


def serialized(fn: F) -> F:
    """Run ``fn`` holding the tracing lock, with torch's internal deprecation notices hidden."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _LOCK, quiet_torch_internals():
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]
