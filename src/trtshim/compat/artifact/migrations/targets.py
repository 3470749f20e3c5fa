"""Writing for an older torch (``save(..., target_torch="2.6")``): the program serialized by this torch,
then every schema field the target's schema lacks removed where it holds its default, else refused with
the feature's name; across schema majors, the value changes of the migration steps undone; written in the
legacy zip layout, which every torch 2.3+ reads.

What each torch's schema has is data (``schema_fields.json``, made by ``tools/schema_fields.py`` under
every torch minor). The walk is typed by this torch's own schema dataclasses, so a field is known by the
class it belongs to, not by its name alone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from typing import Any

from trtshim.errors import IncompatibleArtifactError, OptionError

#: fields an older reader rebuilds itself: dropped whatever they hold
DROPPABLE = {
    ("Node", "name"),  # node names are regenerated on load
    ("Node", "is_hop_single_tensor_return"),
    ("NamedArgument", "kind"),  # positional / keyword: older readers bind by schema
    ("ExportedProgram", "guards_code"),  # trtshim's own input contract checks the inputs
}
#: fields an older torch's serde schema declares but its deserializer cannot pass on (measured: 2.3-2.5
#: fail with ``ModuleCallSignature.__init__() got an unexpected keyword argument 'forward_arg_names'``)
DROP_BELOW = {("ModuleCallSignature", "forward_arg_names"): (2, 6)}
OLDEST = "2.3"  #: torch 2.2's schema (every union field written, null or not) is not written


@functools.lru_cache(maxsize=1)
def schema_fields() -> dict[str, Any]:
    with open(os.path.join(os.path.dirname(__file__), "schema_fields.json")) as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def target_schema(line: str) -> tuple[int, int]:
    """The export schema torch ``line`` (``"2.6"``) reads, from the recorded data."""
    known = schema_fields()
    if line not in known:
        raise OptionError(
            f"target_torch={line!r} is not a torch minor trtshim knows", f"use one of {', '.join(known)}"
        )
    major, minor = known[line]["schema"]
    return int(major), int(minor)


def downgraded(program: dict[str, Any], line: str) -> dict[str, Any]:
    """``program`` (this torch's serialized JSON) made readable by torch ``line``, in place; refuses
    (``IncompatibleArtifactError``) with every feature the target lacks."""
    from torch._export.serde import schema

    if tuple(int(x) for x in line.split(".")) < tuple(int(x) for x in OLDEST.split(".")):
        raise OptionError(
            f"target_torch={line!r}: torch 2.2's archive format is not written", f"target {OLDEST} or newer"
        )
    target = schema_fields()[line]
    major, minor = target_schema(line)
    if major < 7:  # torch 2.4 -> 2.5 undone: verifiers back to the one dialect string
        verifiers = program.pop("verifiers", None) or ["ATEN"]
        program["dialect"] = verifiers[0]
        program.pop("torch_version", None)
        program.get("graph_module", {}).pop("metadata", None)
    problems: list[str] = []
    version = tuple(int(x) for x in line.split("."))
    classes = {k: set(v) for k, v in target["classes"].items()}
    droppable = set(DROPPABLE)
    for (cls, name), below in DROP_BELOW.items():
        if version < below and cls in classes:
            classes[cls].discard(name)
            droppable.add((cls, name))
    _walk(program, schema.ExportedProgram, classes, problems, frozenset(droppable))
    if major < 8 and program.get("range_constraints"):
        problems.append("dynamic dims (torch <= 2.5 cannot rebuild the ShapeEnv of a newer torch's program: KeyError on load)")
    if problems:
        raise IncompatibleArtifactError(
            f"torch {line} cannot express this program: it lacks {', '.join(sorted(set(problems)))}",
            f"save for a newer torch (target_torch), or change the model so it does not use {problems[0]}",
        )
    if major < 8:
        _as_none_as_tuple(program)  # torch 2.5 -> 2.6 undone
    if version < (2, 4):
        _rename_builtin_inputs(program)
    program["schema_version"] = {"major": major, "minor": minor}
    return program


def _rename_builtin_inputs(program: dict[str, Any]) -> None:
    """torch 2.3 renames a placeholder named like a Python builtin (``input`` -> ``input_1``) on load and
    then finds its input spec under the old name (``SpecViolationError``); such inputs are renamed here."""
    import builtins
    import keyword

    from trtshim.compat.artifact.migrations import walk

    graph = program["graph_module"]["graph"]
    names = [a.get("as_tensor", {}).get("name") for a in graph.get("inputs", []) if isinstance(a, dict)]
    taken = set(graph.get("tensor_values", {}))
    renames = {}
    for name in names:
        if name and (keyword.iskeyword(name) or hasattr(builtins, name)):
            new, i = f"{name}_1", 1
            while new in taken:
                i += 1
                new = f"{name}_{i}"
            renames[name] = new
            taken.add(new)
    if not renames:
        return

    def visit(d: dict[str, Any]) -> None:
        if set(d) == {"name"} and d["name"] in renames:  # a TensorArgument
            d["name"] = renames[d["name"]]

    walk(program, visit)
    values = graph.get("tensor_values", {})
    for old, new in renames.items():
        if old in values:
            values[new] = values.pop(old)


def _as_none_as_tuple(obj: Any) -> None:
    from trtshim.compat.artifact.migrations import walk

    def visit(d: dict[str, Any]) -> None:
        if d.get("as_none") is True:
            d["as_none"] = []

    walk(obj, visit)


def _walk(
    value: Any,
    tp: Any,
    target: dict[str, set[str]],
    problems: list[str],
    droppable: frozenset[tuple[str, str]],
) -> None:
    """Remove from ``value`` (typed ``tp`` in this torch's schema) the fields the target's classes lack."""
    tp = _strip_annotated(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:  # Optional[X] and X | None
        if value is None:
            return
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = _strip_annotated(options[0]) if len(options) == 1 else tp
        origin = typing.get_origin(tp)
    if origin in (list, typing.List) and isinstance(value, list):  # noqa: UP006
        items = typing.get_args(tp)
        for v in value:
            _walk(v, items[0] if items else Any, target, problems, droppable)
        return
    if origin in (dict, typing.Dict) and isinstance(value, dict):  # noqa: UP006
        args = typing.get_args(tp)
        for v in value.values():
            _walk(v, args[1] if len(args) == 2 else Any, target, problems, droppable)
        return
    if not (isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict)):
        return
    hints = _hints(tp)
    known = target.get(tp.__name__)  # None: the class is new or renamed there; its fields are kept
    fields = {f.name: f for f in dataclasses.fields(tp)}
    for key in list(value):
        if known is not None and key in fields and key not in known:
            if (tp.__name__, key) in droppable or value[key] == _default_json(fields[key]):
                del value[key]
            else:
                problems.append(f"{tp.__name__}.{key}")
            continue
        if key in hints:
            _walk(value[key], hints[key], target, problems, droppable)


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    import sys

    return typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]))


_MISSING = object()


def _default_json(f: dataclasses.Field[Any]) -> Any:
    """A field's default as JSON holds it (``None``, ``{}``, ``[]``, ``False``); a sentinel when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _MISSING
