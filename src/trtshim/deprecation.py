"""Deprecating trtshim's own public names: every rename from now on goes through here.

A deprecated name keeps working, warns ``TrtShimDeprecationWarning`` (a ``FutureWarning``: shown by
default, to users and not only to developers) naming its replacement and the trtshim version it goes
away in, and is listed in ``DEPRECATED``; the test suite fails once trtshim's own version reaches that
version, so a name is never removed silently nor kept forever.

    old_name = deprecated_alias(new_name, "old_name", since="0.2", removed_in="0.4")   # a function or class
    __getattr__ = module_getattr(__name__, {"OLD": ("NEW", NEW, "0.2", "0.4")})          # a module constant
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from trtshim.errors import TrtShimWarning

F = TypeVar("F", bound=Callable[..., Any])


class TrtShimDeprecationWarning(TrtShimWarning, FutureWarning):
    """A trtshim name that is going away; the message names the replacement and the version."""


@dataclass(frozen=True)
class Deprecation:
    name: str  # the old, dotted name
    replacement: str
    since: str
    removed_in: str

    def message(self) -> str:
        return (
            f"{self.name} is deprecated since trtshim {self.since} and goes away in {self.removed_in}: "
            f"use {self.replacement}"
        )


#: every deprecated name, for the test that fails once ``removed_in`` is reached
DEPRECATED: dict[str, Deprecation] = {}


def _register(name: str, replacement: str, since: str, removed_in: str) -> Deprecation:
    from packaging.version import Version

    if Version(removed_in) <= Version(since):
        raise ValueError(f"{name}: removed_in {removed_in} must come after since {since}")
    entry = Deprecation(name, replacement, since, removed_in)
    DEPRECATED[name] = entry
    return entry


def deprecated_alias(target: F, name: str, *, since: str, removed_in: str, module: str | None = None) -> F:
    """``target`` under its old ``name``: same behaviour, a warning on each call (or instantiation)."""
    qualified = f"{module or target.__module__}.{name}"
    entry = _register(qualified, f"{target.__module__}.{target.__qualname__}", since, removed_in)

    if isinstance(target, type):
        cls: Any = type(name, (target,), {"__init__": _warning_init(target, entry), "__doc__": entry.message()})
        cls.__module__ = module or target.__module__
        return cls

    @functools.wraps(target)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(entry.message(), TrtShimDeprecationWarning, stacklevel=2)
        return target(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = name
    return alias  # type: ignore[return-value]


def _warning_init(base: type, entry: Deprecation) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        warnings.warn(entry.message(), TrtShimDeprecationWarning, stacklevel=2)
        base.__init__(self, *args, **kwargs)  # type: ignore[misc]

    return __init__


def module_getattr(module: str, renamed: Mapping[str, tuple[str, Any, str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving old names: ``{old: (new name, value, since, removed_in)}``."""
    entries = {old: (_register(f"{module}.{old}", f"{module}.{new}", since, gone), value) for old, (new, value, since, gone) in renamed.items()}

    def __getattr__(name: str) -> Any:
        if name in entries:
            entry, value = entries[name]
            warnings.warn(entry.message(), TrtShimDeprecationWarning, stacklevel=2)
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def overdue(version: str | None = None) -> list[Deprecation]:
    """Deprecated names that should be gone by ``version`` (default: this trtshim)."""
    from packaging.version import Version

    from trtshim._version import __version__

    here = Version(version or __version__)
    return [d for d in DEPRECATED.values() if Version(d.removed_in) <= here]
