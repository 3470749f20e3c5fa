"""The manifest's schema, as data, and its validation before any field is used.

A manifest comes from a file, and a file may come from anywhere: every field ``load`` and ``inspect``
read is checked for its type here first, so a damaged or edited manifest is one
``CorruptedArtifactError`` naming the field (``custom_ops[0].qualname: expected str, got None``),
never a ``TypeError`` from deep inside. Keys this trtshim does not know are allowed (a newer trtshim
may add some) and are not read.
"""

from __future__ import annotations

from typing import Any

from trtshim.errors import CorruptedArtifactError

MAX_MANIFEST_BYTES = 4 * 2**20  # real manifests are a few kB; the cap is read before anything else

Null = type(None)
Scalar = (str, int, float, bool, Null)


class Req:
    """A required key."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape


class ListOf:
    def __init__(self, item: Any, length: int | None = None) -> None:
        self.item, self.length = item, length


class Opt:
    """One of several shapes (``Opt(dict_shape, None)``: a record or null)."""

    def __init__(self, *shapes: Any) -> None:
        self.shapes = shapes


ANY_JSON = object()  # any value: read by nothing here

DIM = {"axis": (int, Null), "symbol": Req(str), "min": Req(int), "max": (int, Null), "dim": (str, Null)}
INPUT = {
    "name": Req(str),
    "path": str,
    "dtype": (str, Null),
    "shape": ListOf((int, str)),
    "dynamic": ListOf(DIM),
    "kind": str,
    "type": str,
    "value": Scalar,
}
OP = {
    "qualname": Req(str),
    "namespace": Req(str),
    "name": str,
    "overload": str,
    "schema": str,
    "module": (str, Null),
}
PYTREE_TYPE = {"type": Req(str), "module": Req(str), "serialized_name": (str, Null)}
FIX = {"id": Req(str), "family": str, "title": str, "applied": bool, "reason": str, "stages": ListOf(str)}
ENGINE = {
    "torch_tensorrt": (str, Null),
    "flavour": (str, Null),
    "tensorrt": (str, Null),
    "abi": (str, Null),
    "version_compatible": bool,  # as applied by the builder
    "hardware_compatible": bool,
    "refit": bool,
    "requested": dict,  # the same options as asked for
    "engines": ListOf(dict),  # per engine: inputs, profiles (min/opt/max), flags, hardware level, bytes
    "dims": ListOf({"symbol": Req(str), "dim": (str, Null), "min": Req(int), "opt": int, "max": Req(int)}),
    "device": Opt({"name": (str, Null), "compute_capability": Req(str)}, None),
}
SOURCE = {"member": Req(str), "bytes": int, "compile": {"precision": str, "torch_executed_ops": ListOf(str), "options": dict}}
ENVIRONMENT = {
    "python": (str, Null),
    "platform": (str, Null),
    "torch": (str, Null),
    "torch_line": (str, Null),
    "torch_tensorrt": (str, Null),
    "torch_tensorrt_flavour": (str, Null),
    "tensorrt": dict,
    "problems": ListOf(str),
    "cuda": (str, Null),
    "tensorrt_version": (str, Null),
}
MANIFEST = {
    "schema": Req(int),
    "trtshim": str,
    "integrity": Opt({"algorithm": Req(str), "table": Req(str)}, None),
    "created": str,
    "environment": ENVIRONMENT,
    "backend": str,
    "format": str,
    "export_schema": Opt(ListOf(int, length=2), None),  # null for TorchScript archives
    "exporter": (str, Null),
    "ir": (str, Null),  # "inference" | "training": the IR of the saved program, where trtshim exported it
    "inputs": ListOf(INPUT),
    "custom_ops": ListOf(OP),
    "pytree_types": ListOf(PYTREE_TYPE),
    "fixes": ListOf(FIX),
    "engine": Opt(ENGINE, None),
    "source": Opt(SOURCE, None),
    "history": ListOf(ANY_JSON),
    "target_torch": str,  # save(..., target_torch=): the torch minor the archive was written for  # trtshim upgrade: the versions an artifact came from, the migrations applied
}


def _name(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join(_name(x) for x in t)
    return "null" if t is Null else "object" if t is dict else "list" if t is list else t.__name__


def _problem(value: Any, shape: Any, where: str) -> str | None:
    """What is wrong with ``value`` against ``shape`` (None: nothing), as ``path: expected ..., got ...``."""
    if isinstance(shape, Req):
        shape = shape.shape
    if shape is ANY_JSON:
        return None
    if isinstance(shape, Opt):
        problems = [_problem(value, s, where) for s in shape.shapes]
        return None if any(p is None for p in problems) else next(p for p in problems if p)
    if shape is None:
        return None if value is None else f"{where}: expected null, got {type(value).__name__}"
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where}: expected an object, got {type(value).__name__}"
        for key, sub in shape.items():
            if key not in value:
                if isinstance(sub, Req):
                    return f"{where}.{key}: missing"
                continue
            found = _problem(value[key], sub, f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(shape, ListOf):
        if not isinstance(value, list):
            return f"{where}: expected a list, got {type(value).__name__}"
        if shape.length is not None and len(value) != shape.length:
            return f"{where}: expected {shape.length} items, got {len(value)}"
        for i, item in enumerate(value):
            found = _problem(item, shape.item, f"{where}[{i}]")
            if found:
                return found
        return None
    types = shape if isinstance(shape, tuple) else (shape,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    return None if ok else f"{where}: expected {_name(shape)}, got {type(value).__name__}"


def validate(manifest: Any, path: str) -> dict[str, Any]:
    """``manifest`` when it has the manifest's shape; else ``CorruptedArtifactError`` naming the field."""
    found = _problem(manifest, MANIFEST, "manifest")
    if found:
        raise CorruptedArtifactError(
            f"the manifest inside {path} is malformed: {found}",
            "the file was damaged or edited after it was saved; re-save it from its source",
        )
    return manifest
