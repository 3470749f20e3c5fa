"""The user's names for a program's inputs: ``Dim`` names (torch keeps only its symbols, ``s77``) and
input paths (``x``, ``inputs['mask']``; torch's placeholders may be ``arg1_1``), found by walking
``dynamic_shapes`` and the inputs beside the model's signature at compile time."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.utils import _pytree as pytree

from trtshim.compat.programs import program as prog


def _dim_name(d: Any) -> str | None:
    """The name of a ``torch.export.Dim`` (a class before torch 2.9, an object since); None for hints."""
    if d is None or isinstance(d, (int, str)):
        return None
    name = getattr(d, "__name__", None)
    return name if isinstance(name, str) else None


def _key(entry: Any) -> Any:
    """A pytree key entry as ``int`` (sequence index), ``("k", key)`` (mapping) or ``("a", name)``."""
    if hasattr(entry, "idx"):
        return int(entry.idx)
    if hasattr(entry, "key"):
        return ("k", entry.key)
    if hasattr(entry, "name"):
        return ("a", entry.name)
    return None


def _leaf_paths(value: Any) -> list[tuple[Any, ...] | None]:
    """The key path of each pytree leaf of ``value`` (None where it cannot be told)."""
    with_path = getattr(pytree, "tree_flatten_with_path", None)
    if with_path is not None:
        return [tuple(_key(k) for k in path) for path, _ in with_path(value)[0]]

    def walk(v: Any, prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        if isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                yield from walk(x, (*prefix, i))
        elif isinstance(v, dict):
            for k, x in v.items():
                yield from walk(x, (*prefix, ("k", k)))
        else:
            yield prefix

    paths: list[tuple[Any, ...] | None] = list(walk(value, ()))  # torch 2.2: no paths from pytree
    n = len(pytree.tree_leaves(value))
    return paths if len(paths) == n else [None] * n


def _follow(spec: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if spec is None or key is None:
            return None
        if isinstance(key, tuple) and key[0] == "a":
            spec = spec.get(key[1]) if isinstance(spec, Mapping) else getattr(spec, key[1], None)
        else:
            spec = spec[key[1] if isinstance(key, tuple) else key]
    return spec


def _path_text(top: str, path: tuple[Any, ...] | None) -> str:
    if path is None:
        return top
    parts = [f".{k[1]}" if isinstance(k, tuple) and k[0] == "a" else f"[{k[1]!r}]" if isinstance(k, tuple) else f"[{k}]" for k in path]
    return top + "".join(parts)


@dataclass(frozen=True)
class _Leaf:
    top: str  # the argument's name in the signature (or its position)
    position: int  # the argument's place among the signature's arguments, as dynamic_shapes orders them
    path: tuple[Any, ...] | None  # inside the argument


def _user_leaves(model: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[_Leaf]:
    """One entry per flat user input, in the program's order (positional arguments, then keywords)."""
    try:
        params = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        params = []
    tops = [(params[i] if i < len(params) else str(i), a) for i, a in enumerate(args)] + list(kwargs.items())
    order = {name: i for i, name in enumerate(params)}
    ranked = sorted(range(len(tops)), key=lambda i: order.get(tops[i][0], len(order) + i))
    out: list[_Leaf] = []
    for i, (name, value) in enumerate(tops):
        out += [_Leaf(name, ranked.index(i), path) for path in _leaf_paths(value)]
    return out


def input_paths(model: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[str]:
    """What the user calls each flat input: ``x``, ``k``, ``inputs['mask']``, ``pair[0]``."""
    return [_path_text(leaf.top, leaf.path) for leaf in _user_leaves(model, args, kwargs)]


def dim_names(
    model: Any, args: Sequence[Any], kwargs: Mapping[str, Any], dynamic_shapes: Any, ep: ExportedProgram
) -> dict[str, str]:
    """torch's symbol -> the user's ``Dim`` name, by walking ``dynamic_shapes`` beside the inputs.

    ``dynamic_shapes`` is keyed by argument name or ordered like the signature's arguments, and
    nested like each argument; a dim given no name (``Dim.AUTO``) keeps torch's symbol.
    """
    if not dynamic_shapes:
        return {}
    per_flat: list[Any] = []  # the dims spec of each flat leaf
    for leaf in _user_leaves(model, args, kwargs):
        try:
            if isinstance(dynamic_shapes, Mapping):
                top = dynamic_shapes.get(leaf.top)
            else:
                top = list(dynamic_shapes)[leaf.position]
            per_flat.append(_follow(top, leaf.path) if leaf.path else (top if leaf.path == () else None))
        except (KeyError, IndexError, TypeError):
            per_flat.append(None)
    out: dict[str, str] = {}
    for node, spec in zip(prog.user_input_placeholders(ep), per_flat):
        val = node.meta.get("val")
        if isinstance(val, torch.SymInt):
            int_name = _dim_name(spec)
            if int_name:
                out.setdefault(str(val), int_name)
            continue
        if not isinstance(val, torch.Tensor) or spec is None:
            continue
        items = spec.items() if isinstance(spec, Mapping) else enumerate(spec) if isinstance(spec, (list, tuple)) else ()
        for axis, d in items:
            dim_name = _dim_name(d)
            if dim_name and isinstance(axis, int) and axis < val.dim() and not isinstance(val.shape[axis], int):
                out.setdefault(str(val.shape[axis]), dim_name)
    return out


def recorded_dim_names(ep: ExportedProgram) -> dict[str, str]:
    """torch's symbol -> the ``Dim`` name, as far as the program's own ShapeEnv still knows it: an
    ``ExportedProgram`` exported by the caller (not through ``compile``) keeps the names in memory only."""
    from torch._guards import detect_fake_mode

    users = prog.user_input_placeholders(ep)
    mode = detect_fake_mode([n.meta.get("val") for n in users if isinstance(n.meta.get("val"), torch.Tensor)])
    shape_env = getattr(mode, "shape_env", None)
    names = getattr(shape_env, "source_name_to_debug_name", None) or {}
    out: dict[str, str] = {}
    for symbol in ep.range_constraints:
        for source in getattr(shape_env, "var_to_sources", {}).get(symbol, ()):
            text = source.name() if callable(source.name) else source.name  # a method up to torch 2.x
            if names.get(text):
                out[str(symbol)] = names[text]
                break
    return out
