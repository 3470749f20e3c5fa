"""Read an ExportedProgram through its graph signature: what each placeholder is bound to.

Lifted values are resolved only through ``input_specs[i].target`` (an FQN) into ``state_dict`` /
``constants``, never by placeholder name or position (upstream TensorRT#4349 keyed on names).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind
from torch.utils import _pytree as pytree

from trtshim.errors import TrtShimError

LIFTED_KINDS = ("PARAMETER", "BUFFER", "CONSTANT_TENSOR", "CUSTOM_OBJ", "TOKEN")


@dataclass(frozen=True)
class Slot:
    """One placeholder of the flat graph: a user input (``index``) or a lifted value (``kind``, ``target``)."""

    kind: str  # InputKind name
    name: str  # placeholder name
    target: str | None  # FQN of the lifted value
    persistent: bool | None = None
    index: int | None = None  # position among user inputs


def program_constants(ep: ExportedProgram) -> dict[str, Any]:
    """``ep.constants`` (torch >= 2.3) or ``ep.tensor_constants`` (2.2)."""
    consts = getattr(ep, "constants", None)
    if consts is None:
        consts = getattr(ep, "tensor_constants", None) or {}
    return dict(consts)


def input_slots(ep: ExportedProgram) -> list[Slot]:
    slots: list[Slot] = []
    user = 0
    for spec in ep.graph_signature.input_specs:
        kind = spec.kind.name
        name = getattr(spec.arg, "name", "")
        if spec.kind == InputKind.USER_INPUT:
            slots.append(Slot(kind, name, None, index=user))
            user += 1
        else:
            slots.append(Slot(kind, name, spec.target, getattr(spec, "persistent", None)))
    return slots


def lifted_value(ep: ExportedProgram, slot: Slot, constants: dict[str, Any]) -> Any:
    """The value a lifted placeholder is bound to."""
    if slot.kind == "TOKEN":
        return torch.empty(0)
    target = slot.target or ""
    in_state_dict = slot.kind == "PARAMETER" or (slot.kind == "BUFFER" and slot.persistent is not False)
    if in_state_dict and target in ep.state_dict:
        return ep.state_dict[target]
    if target in constants:
        return constants[target]
    if target in ep.state_dict:
        return ep.state_dict[target]
    raise TrtShimError(
        f"program input {slot.name!r} ({slot.kind}) is bound to {target!r}, which the program does not hold",
        "the ExportedProgram is inconsistent; re-export the model",
    )


@dataclass(frozen=True)
class OutputPlan:
    user: tuple[int, ...]  # positions of user outputs in the flat graph output
    mutations: tuple[tuple[int, str], ...]  # (position, buffer FQN) written back after each call
    total: int
    input_mutations: tuple[tuple[int, int], ...] = ()  # (position, user input index) copied into the caller's tensor


def output_plan(ep: ExportedProgram) -> OutputPlan:
    """Where each flat output goes: to the caller, into a buffer, or into the caller's own input tensor
    (``USER_INPUT_MUTATION``: ``cache.add_(x)`` updates the tensor passed in, as eager and torch's
    ``ep.module()`` do)."""
    user: list[int] = []
    mutations: list[tuple[int, str]] = []
    inputs: list[tuple[int, int]] = []
    user_index = {s.name: s.index for s in input_slots(ep) if s.kind == "USER_INPUT"}
    specs = ep.graph_signature.output_specs
    for i, spec in enumerate(specs):
        if spec.kind == OutputKind.BUFFER_MUTATION:
            mutations.append((i, str(spec.target)))
        elif spec.kind == OutputKind.USER_OUTPUT:
            user.append(i)
        elif spec.kind == OutputKind.USER_INPUT_MUTATION:
            index = user_index.get(str(spec.target))
            if index is None:
                raise TrtShimError(
                    f"the program mutates input {spec.target!r}, which is not among its user inputs",
                    "the ExportedProgram is inconsistent; re-export the model",
                )
            inputs.append((i, index))
        # LOSS_OUTPUT, GRADIENT_TO_*, TOKEN: not user-visible at inference
    return OutputPlan(tuple(user), tuple(mutations), len(specs), tuple(inputs))


def fake_mode(nodes: list[torch.fx.Node]) -> Any:
    """The fake mode (holding the ShapeEnv) of the nodes' example values, or None."""
    from torch._guards import detect_fake_mode

    return detect_fake_mode([n.meta.get("val") for n in nodes if isinstance(n.meta.get("val"), torch.Tensor)])


def user_input_placeholders(ep: ExportedProgram) -> list[torch.fx.Node]:
    phs = [n for n in ep.graph.nodes if n.op == "placeholder"]
    slots = input_slots(ep)
    if len(phs) != len(slots):
        raise TrtShimError(
            f"the program's graph has {len(phs)} placeholders but its signature lists {len(slots)} inputs",
            "the ExportedProgram was built inconsistently (upstream TensorRT#2576); re-export it",
        )
    return [n for n, s in zip(phs, slots) if s.kind == "USER_INPUT"]


def custom_ops(ep: ExportedProgram) -> list[torch._ops.OpOverload]:
    """Every non-aten operator overload the graph calls, in first-use order (nested graphs included)."""
    seen: dict[str, torch._ops.OpOverload] = {}

    def visit(gm: torch.fx.GraphModule) -> None:
        for node in gm.graph.nodes:
            t = node.target
            if node.op == "call_function" and getattr(t, "_name", None) == "with_effects" and len(node.args) > 1:
                t = node.args[1]  # an op taking a TorchBind object runs as with_effects(token, op, *args)
            if node.op == "call_function" and isinstance(t, torch._ops.OpOverload):
                ns = t.namespace
                if ns not in ("aten", "prim", "prims"):
                    seen.setdefault(t.name(), t)
        for child in gm.children():
            if isinstance(child, torch.fx.GraphModule):
                visit(child)

    visit(ep.graph_module)
    return list(seen.values())


def is_script_object(value: Any) -> bool:
    """A TorchBind object (or its fake) — what an engine is to the graph."""
    if isinstance(value, torch.ScriptObject):
        return True
    fake = getattr(getattr(torch, "_library", None), "fake_class_registry", None)
    return bool(fake is not None and isinstance(value, getattr(fake, "FakeScriptObject", ())))


_INLINE_CODEGEN_WARNING = "Unable to execute the generated python source code from the graph"


@contextlib.contextmanager
def quiet_inline_object_codegen() -> Iterator[None]:
    """Silence torch 2.2's warning that a graph with inline objects has no runnable code.

    trtshim never runs that code: ``runnable_graph_module`` builds one that reaches the objects
    through attributes. Every other warning passes through.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_INLINE_CODEGEN_WARNING)
        yield


def runnable_graph_module(ep: ExportedProgram) -> fx.GraphModule:
    """``ep.graph_module``, or a copy whose opaque objects are attributes when the graph holds them inline.

    torch 2.2 keeps custom objects inline in calls; generated Python cannot render them, so its
    ``ExportedProgram`` falls back to an uncallable module and interprets the graph. The copy moves
    each inline object to an attribute reached by ``get_attr``, and compiles normally.
    """
    gm = ep.graph_module
    objects: dict[int, Any] = {}
    for node in gm.graph.nodes:
        for a in pytree.tree_leaves((node.args, node.kwargs)):
            if is_script_object(a):
                objects.setdefault(id(a), a)
    if not objects:
        return gm
    graph = fx.Graph()
    out = graph.graph_copy(gm.graph, {})
    graph.output(out)
    attrs: dict[str, Any] = {}
    for node in graph.nodes:
        if node.op == "get_attr":
            attrs[str(node.target)] = attribute(gm, str(node.target))
    names: dict[int, fx.Node] = {}
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue

        def hoisted(a: Any, node: fx.Node = node) -> Any:
            if not is_script_object(a):
                return a
            if id(a) not in names:
                name = f"_trtshim_obj_{len(names)}"
                attrs[name] = a
                with graph.inserting_before(node):
                    names[id(a)] = graph.get_attr(name)
            return names[id(a)]

        node.args = fx.node.map_aggregate(node.args, hoisted)
        node.kwargs = fx.node.map_aggregate(node.kwargs, hoisted)
    return fx.GraphModule(attrs, graph)


def attribute(root: Any, target: str) -> Any:
    """``root.a.b.c`` for ``target="a.b.c"``."""
    for part in target.split("."):
        root = getattr(root, part)
    return root


def has_attribute(root: Any, target: str) -> bool:
    """Whether ``root.a.b.c`` exists for ``target="a.b.c"``."""
    try:
        attribute(root, target)
    except AttributeError:
        return False
    return True


def register(
    root: nn.Module, fqn: str, value: Any, kind: str, *, parameter: Callable[[Any], Any] | None = None
) -> None:
    """Put ``value`` on ``root`` under ``fqn`` (submodules created on the way) as what ``kind`` says:
    ``PARAMETER`` (through ``parameter``; default: kept as given, no gradients asked of integers: LP-6),
    ``BUFFER`` (persistent), ``BUFFER_NP`` (non-persistent), anything else a plain attribute."""
    from trtshim.fixes.lp6_integer_parameters import keep_parameter

    *path, leaf = fqn.split(".")
    mod = root
    for part in path:
        child = mod._modules.get(part)
        if child is None:
            child = nn.Module()
            mod.add_module(part, child)
        mod = child
    if kind == "PARAMETER":
        mod.register_parameter(leaf, (parameter or keep_parameter)(value))
    elif kind in ("BUFFER", "BUFFER_NP"):
        mod.register_buffer(leaf, value, persistent=kind == "BUFFER")
    else:
        setattr(mod, leaf, value)
