"""Scoped, thread-safe monkeypatches: declared as data, active only inside ``with patch:``.

Several threads may enter the same patch; it is installed when the first enters and restored when
the last leaves (a reference count under a lock). Replacements must be supersets of the original
behaviour, since other threads see them while any scope is open.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any


@dataclass
class ScopedPatch:
    module: str  # e.g. "torch.export.exported_program"
    attribute: str  # e.g. "_create_graph_module_for_export"
    wrap: Callable[[Any], Any]  # original -> replacement
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _depth: int = field(default=0, repr=False)
    _original: Any = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self._depth > 0

    def available(self) -> bool:
        try:
            return hasattr(importlib.import_module(self.module), self.attribute)
        except ImportError:
            return False

    def __enter__(self) -> ScopedPatch:
        with self._lock:
            if self._depth == 0:
                target = importlib.import_module(self.module)
                self._original = getattr(target, self.attribute)
                setattr(target, self.attribute, self.wrap(self._original))
            self._depth += 1
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                setattr(importlib.import_module(self.module), self.attribute, self._original)
                self._original = None
