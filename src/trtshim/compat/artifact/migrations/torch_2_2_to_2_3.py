"""torch 2.2 -> 2.3: export schema 2 -> 5.1.

Fields: ``schema_version`` (an int) becomes ``{major, minor}``; unions are written with their one set
field only (2.2 wrote every field, the unset ones as null); ``TensorMeta.storage_offset`` (an int)
becomes a ``SymInt`` (``{"as_int": n}``); ``InputToBufferSpec`` gains ``persistent`` (2.2 lifted only
persistent buffers into the state dict; a buffer not found there was non-persistent); a
``CustomObjArgument`` gains ``class_fqn``. Members: ``serialized_state_dict.json`` /
``serialized_constants.json`` (torch.save zips under a .json name) become ``*.pt``.
"""

from __future__ import annotations

from typing import Any

from trtshim.compat.artifact.migrations import Archive, Step, walk

#: the union types of schema 2, by the names of their fields (a dict with exactly these keys is a union)
_UNIONS = (
    {"as_expr", "as_int"},
    {"as_expr", "as_bool"},
    {"as_name", "as_int"},
    {"as_name", "as_bool"},
    {"as_tensor", "as_none"},
    {"as_int", "as_float", "as_bool"},  # SymExprHint
    {"user_input", "parameter", "buffer", "tensor_constant"},
    {"user_output", "loss_output", "buffer_mutation", "gradient_to_parameter", "gradient_to_user_input"},
)


def _is_union(d: dict[str, Any]) -> bool:
    keys = set(d)
    return any(keys == u for u in _UNIONS) or (len(keys) > 8 and all(k.startswith("as_") for k in keys))


def _compact(d: dict[str, Any]) -> None:
    if _is_union(d):
        for key in [k for k, v in d.items() if v is None]:
            del d[key]


def apply(archive: Archive) -> None:
    archive.rename("serialized_state_dict.json", "serialized_state_dict.pt")
    archive.rename("serialized_constants.json", "serialized_constants.pt")
    graph_module = archive.program["graph_module"]
    walk(archive.program, _compact)
    for meta in graph_module["graph"].get("tensor_values", {}).values():
        if isinstance(meta.get("storage_offset"), int):
            meta["storage_offset"] = {"as_int": meta["storage_offset"]}
    state = _state_dict_keys(archive)
    for spec in graph_module["signature"]["input_specs"]:
        buffer = spec.get("buffer")
        if isinstance(buffer, dict) and "persistent" not in buffer:
            buffer["persistent"] = state is None or buffer.get("buffer_name") in state

    def add_class_fqn(d: dict[str, Any]) -> None:
        obj = d.get("as_custom_obj")
        if isinstance(obj, dict):
            obj.setdefault("class_fqn", "")

    walk(archive.program, add_class_fqn)


def _state_dict_keys(archive: Archive) -> set[str] | None:
    """The names in the saved state dict (read with weights_only: no code runs), or None if unreadable."""
    import io

    import torch

    data = archive.members.get("serialized_state_dict.pt")
    if not data:
        return None
    try:
        state = torch.load(io.BytesIO(data), weights_only=True)
    except Exception:
        return None
    return set(state) if isinstance(state, dict) else None


STEP = Step(
    id="torch-2.2-to-2.3",
    source=(2, 0),
    target=(5, 1),
    changes=(
        "schema_version: int -> {major, minor}",
        "unions: only the set field is written",
        "TensorMeta.storage_offset: int -> SymInt",
        "InputToBufferSpec.persistent: added",
        "CustomObjArgument.class_fqn: added",
        "members serialized_state_dict/constants: .json -> .pt",
    ),
    apply=apply,
)
