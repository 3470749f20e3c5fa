"""Registered pytree node types a program's inputs and outputs use (Hugging Face's ``ModelOutput``s,
dataclasses, namedtuples): recorded in the manifest, checked before a load deserializes anything.

torch.export stores each such type by its serialized name only; a process where the defining module
has not run cannot read the program back (``Deserializing ... in pytree is not registered``). Like
custom ops, the defining module is imported only where the caller allows it.
"""

from __future__ import annotations

from typing import Any

from torch.utils import _pytree as pytree

_BUILTIN_NAMES = ("tuple", "list", "dict", "OrderedDict", "defaultdict", "deque", "namedtuple", "NoneType")


def children(spec: Any) -> list[Any]:
    """A TreeSpec's child specs (``children()`` on torch >= 2.8; ``children_specs``, deprecated since, before)."""
    kids = getattr(spec, "children", None)
    return list(kids()) if callable(kids) else list(getattr(spec, "children_specs", []))


def _node_classes(spec: Any) -> list[type]:
    """Every node class in a TreeSpec (a namedtuple's class is its context), first-use order."""
    out: list[type] = []
    stack = [spec]
    while stack:
        s = stack.pop()
        if s is None:
            continue
        typ, context = getattr(s, "type", None), getattr(s, "context", None)
        if typ is not None:
            cls = context if getattr(typ, "__name__", "") == "namedtuple" and isinstance(context, type) else typ
            builtin = cls.__module__ in ("builtins", "collections") and cls.__name__ in _BUILTIN_NAMES
            if not builtin and cls not in out:
                out.append(cls)
        stack.extend(reversed(children(s)))
    return out


def serialized_name(cls: type) -> str | None:
    entry = getattr(pytree, "SUPPORTED_SERIALIZED_TYPES", {}).get(cls)
    name = getattr(entry, "serialized_type_name", None)
    return name if isinstance(name, str) else None


def program_types(in_spec: Any, out_spec: Any) -> list[dict[str, Any]]:
    """Manifest records: ``{"type", "module", "serialized_name"}`` per non-builtin pytree node type."""
    seen: list[type] = []
    for spec in (in_spec, out_spec):
        for cls in _node_classes(spec):
            if cls not in seen:
                seen.append(cls)
    return [
        {"type": f"{c.__module__}.{c.__qualname__}", "module": c.__module__, "serialized_name": serialized_name(c)}
        for c in seen
    ]


def is_registered(record: dict[str, Any]) -> bool:
    name = record.get("serialized_name")
    known = getattr(pytree, "SERIALIZED_TYPE_TO_PYTHON_TYPE", None)
    if known is None or not isinstance(name, str):
        return True  # this torch cannot tell (or the type is stored by structure): let torch decide
    return name in known


def module_of_serialized_name(name: str) -> str:
    """``transformers.modeling_outputs.BaseModelOutput`` -> ``transformers.modeling_outputs``."""
    return name.rsplit(".", 1)[0] if "." in name else name
