"""One way to define a custom op with a fake kernel, on every torch from 2.2 to 2.15.

torch >= 2.4: ``torch.library.custom_op`` + ``register_fake``. Older: ``Library.define`` + ``impl`` +
``impl_abstract``. trtshim also remembers which Python module defined each op, so artifacts can name it.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

_origins: dict[str, str] = {}
_lock = threading.Lock()
_libraries: dict[str, Any] = {}


def remember_origin(qualname: str, module: str) -> None:
    """Record that ``module`` defines ``qualname`` (for ops defined without this facade)."""
    with _lock:
        _origins[qualname] = module


def op_origin(qualname: str) -> str | None:
    """The Python module that defined ``ns::name``: what trtshim or ``torch.library.custom_op`` knows,
    else the file torch's dispatcher recorded for the definition (``Library.define``: torchao,
    modelopt, most libraries) mapped to the loaded module of that file."""
    if qualname in _origins:
        return _origins[qualname]
    ns = qualname.split("::", 1)[0]
    if ns == "tensorrt":
        return "torch_tensorrt"
    opdefs = getattr(getattr(torch, "_library", None), "custom_ops", None)
    opdef = getattr(opdefs, "OPDEFS", {}).get(qualname) if opdefs else None
    fn = getattr(opdef, "_init_fn", None)
    module = getattr(fn, "__module__", None)
    return module or _defining_module(qualname)


_DEFINED_AT = re.compile(r"^debug: registered at (.+?):\d+\s*$", re.MULTILINE)


def _defined_in_files(qualname: str) -> list[str]:
    """Files that registered ``qualname``: the dispatcher's record of its definition (torch >= 2.5 keeps
    the Python caller's file), then its fake kernel's source (``register_fake`` / ``impl_abstract``)."""
    files: list[str] = []
    try:
        found = _DEFINED_AT.search(torch._C._dispatch_dump(qualname) or "")
    except (AttributeError, RuntimeError):
        found = None
    if found:
        files.append(found.group(1))
    try:
        from torch._library.simple_registry import singleton

        entry = singleton.find(qualname)
        holder = getattr(entry, "fake_impl", None) or getattr(entry, "abstract_impl", None)
        source = getattr(getattr(holder, "kernel", None), "source", None)
    except (ImportError, AttributeError, RuntimeError):
        source = None
    if source:
        files.append(str(source).rsplit(":", 1)[0])
    return files


def _defining_module(qualname: str) -> str | None:
    """The loaded module whose file defined ``qualname``."""
    files = {os.path.realpath(f) for f in _defined_in_files(qualname) if os.path.isfile(f)}
    if not files:
        return None
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and name != "__main__" and os.path.realpath(file) in files:
            return name
    return None


def is_registered(qualname: str) -> bool:
    ns, _, name = qualname.partition("::")
    name = name.split(".", 1)[0]
    try:
        packet = getattr(getattr(torch.ops, ns), name)
    except (AttributeError, RuntimeError):
        return False
    return packet is not None


def custom_op(
    qualname: str,
    *,
    mutates_args: Sequence[str] = (),
    schema: str | None = None,
    device_types: str | Sequence[str] | None = None,
) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: define ``ns::name`` with the decorated function as its kernel.

    The returned object has ``.register_fake(fn)``. ``schema`` is only needed on torch < 2.4 when the
    function's annotations cannot be read.
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        with _lock:
            _origins[qualname] = fn.__module__
        lib_custom_op = getattr(torch.library, "custom_op", None)
        if lib_custom_op is not None:
            return lib_custom_op(
                qualname, fn, mutates_args=tuple(mutates_args), device_types=device_types, schema=schema
            )
        return _LegacyOp(qualname, fn, schema, mutates_args)

    return decorate


def register_fake(qualname: str, fn: Callable[..., Any] | None = None) -> Any:
    """``torch.library.register_fake`` (>= 2.4) or ``impl_abstract`` (2.2, 2.3)."""
    reg = getattr(torch.library, "register_fake", None) or torch.library.impl_abstract
    return reg(qualname, fn) if fn is not None else reg(qualname)


class _LegacyOp:
    """torch < 2.4: ``Library.define`` + ``impl`` under CompositeExplicitAutograd."""

    def __init__(
        self, qualname: str, fn: Callable[..., Any], schema: str | None, mutates: Sequence[str]
    ) -> None:
        ns, name = qualname.split("::", 1)
        if schema is None:
            from torch._custom_op.impl import infer_schema

            schema = infer_schema(fn)  # type: ignore[call-arg]  # the torch < 2.4 signature
        with _lock:
            lib = _libraries.get(ns)
            if lib is None:
                lib = _libraries[ns] = torch.library.Library(ns, "FRAGMENT")
        lib.define(f"{name}{schema}")
        lib.impl(name, fn, "CompositeExplicitAutograd")
        self._qualname = qualname
        self._fn = fn

    def register_fake(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        register_fake(self._qualname, fn)
        return fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ns, name = self._qualname.split("::", 1)
        return getattr(getattr(torch.ops, ns), name)(*args, **kwargs)
