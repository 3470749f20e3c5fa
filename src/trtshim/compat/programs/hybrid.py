"""Build a correct ``ExportedProgram`` from a hybrid graph: torch ops holding weights + opaque engine calls.

Torch-TensorRT's legacy exporter (``dynamo/_exporter.py``) is where LP-1, LP-5, LP-6, LP-7, LP-8 and
SE-3 live. This one, for the ``fx.GraphModule`` that ``torch_tensorrt.compile`` returns (or any graph
of that shape), runs with the ``hybrid`` fixes' hooks (``registry.POINTS``); each fix's code is in its
module under ``trtshim.fixes``:

* inlines torch submodules, wiring their inputs **positionally** (never by name: LP-7);
* replaces each engine submodule by ``op(inputs, engine)`` where the engine object is an attribute
  reached through ``get_attr`` and lifted as a custom object, and hoists any ScriptObject passed
  inline (LP-1 defect 2): nothing opaque is ever rendered into generated code;
* gives each lifted value the kind of where it lives: parameter, buffer (with its ``persistent``
  flag: LP-5), tensor constant or custom object; never a user input (LP-1 defect 1); integer
  parameters stay what they are (LP-6); a SymInt crossing an engine boundary is wrapped to a 0-d
  tensor on the way in and turned back with ``aten.item`` on the way out, as the op schema demands (CO-5);
* keeps the range constraints of every dynamic dim (SE-3), and checks the result (placeholders
  match the signature, user-input count matches the flat user args).

torch 2.2 has no custom-object inputs (no ``InputKind.CUSTOM_OBJ``). There opaque objects stay inline
in the call, the one form 2.2's serializer stores (as ``_custom_obj_N`` constants) and restores;
weights are lifted as everywhere else, and ``program.runnable_graph_module`` reaches the objects
through attributes when trtshim builds the callable graph.
"""

from __future__ import annotations

import contextlib
import operator
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn
from torch.export import ExportedProgram
from torch.export import graph_signature as gs
from torch.utils import _pytree as pytree

from trtshim.compat.programs.program import fake_mode as fake_mode_of
from trtshim.compat.programs.program import is_script_object, register
from trtshim.errors import TrtShimError
from trtshim.fixes import FixReport, active
from trtshim.fixes.co5_symint_engine_boundary import is_symint
from trtshim.fixes.se3_range_constraints import harvest as harvest_range_constraints


class HybridExportError(TrtShimError):
    default_hint = "the graph is not a hybrid graph trtshim can export; see trtshim.compat.programs.hybrid"


def engine_call(module: nn.Module) -> tuple[Any, Any] | None:
    """``(op, engine object)`` for a module that stands for an engine, else ``None``."""
    hook = getattr(module, "trtshim_engine_call", None)
    if callable(hook):
        result: tuple[Any, Any] = hook()
        return result
    if type(module).__name__ == "TorchTensorRTModule" and hasattr(module, "engine"):
        return torch.ops.tensorrt.execute_engine.default, module.engine
    return None


def _class_fqn(obj: Any) -> str:
    try:
        return str(obj._type().qualified_name())
    except Exception:
        return str(getattr(obj, "script_class_name", type(obj).__qualname__))


class _Builder:
    """Copies a hybrid GraphModule into one flat graph whose attributes all live on ``self.root``."""

    def __init__(self, source: fx.GraphModule, fixes: FixReport) -> None:
        self.source = source
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.attrs: dict[str, fx.Node] = {}  # FQN on root -> its get_attr node
        self.kinds: dict[
            str, str
        ] = {}  # FQN -> PARAMETER / BUFFER / BUFFER_NP / CONSTANT_TENSOR / CUSTOM_OBJ
        self.values: dict[str, Any] = {}
        self.user_placeholders: list[fx.Node] = []
        self._opaque = fixes.hook("hybrid.opaque", lambda lift, fqn, obj: obj)
        self._engine_input = fixes.hook("hybrid.engine_input", lambda builder, arg: arg)
        self._engine_output = fixes.hook("hybrid.engine_output", lambda builder, item, value: item)

    # attributes ---------------------------------------------------------------------------------

    def attr(self, owner: nn.Module, target: str, fqn: str) -> Any:
        """A get_attr node for ``owner.<target>``, registered on root under ``fqn`` with its kind."""
        if fqn in self.attrs:
            return self.attrs[fqn]
        *path, leaf = target.split(".")
        holder: Any = owner
        for part in path:
            holder = getattr(holder, part)
        value = getattr(holder, leaf)
        if isinstance(holder, nn.Module) and leaf in holder._parameters:
            kind = "PARAMETER"
        elif isinstance(holder, nn.Module) and leaf in holder._buffers:
            kind = "BUFFER_NP" if leaf in holder._non_persistent_buffers_set else "BUFFER"
        elif isinstance(value, torch.Tensor):
            kind = "CONSTANT_TENSOR"
        elif is_script_object(value):
            return self.opaque(fqn, value)
        else:
            raise HybridExportError(
                f"attribute {fqn!r} holds a {type(value).__name__}, which cannot be lifted"
            )
        return self.lifted(fqn, value, kind)

    def lifted(self, fqn: str, value: Any, kind: str) -> fx.Node:
        fqn = self._unique(fqn, value)
        if fqn in self.attrs:
            return self.attrs[fqn]
        self.kinds[fqn] = kind
        self.values[fqn] = value
        node = self.graph.get_attr(fqn)
        self.attrs[fqn] = node
        return node

    def opaque(self, fqn: str, value: Any) -> Any:
        """An opaque (ScriptObject) value: what the ``hybrid.opaque`` hook makes of it (LP-1)."""
        return self._opaque(self.lifted, fqn, value)

    def _unique(self, fqn: str, value: Any) -> str:
        base, i = fqn, 0
        while fqn in self.values and self.values[fqn] is not value:
            i += 1
            fqn = f"{base}_{i}"
        return fqn

    # graph copy ---------------------------------------------------------------------------------

    def copy(self, gm: fx.GraphModule, args: list[Any], prefix: str) -> Any:
        """Copy ``gm``'s graph, binding its placeholders positionally to ``args``; returns its output."""
        env: dict[fx.Node, Any] = {}
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        if len(args) > len(placeholders):
            raise HybridExportError(
                f"{prefix or 'the graph'} takes {len(placeholders)} inputs, is called with {len(args)}"
            )
        for ph, arg in zip(placeholders, args):
            env[ph] = arg
        for ph in placeholders[len(args) :]:
            if ph.args:  # a default value
                env[ph] = ph.args[0]
            else:
                raise HybridExportError(f"input {ph.target!r} of {prefix} is not provided")

        def lookup(n: fx.Node) -> Any:
            return env[n]

        for node in gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                return pytree.tree_map(
                    lambda a: a,
                    fx.node.map_aggregate(node.args[0], lambda a: env[a] if isinstance(a, fx.Node) else a),
                )
            if node.op == "get_attr":
                env[node] = self.attr(gm, str(node.target), _join(prefix, str(node.target)))
            elif node.op == "call_module" and str(node.target).rsplit(".", 1)[-1] == "_guards_fn":
                env[node] = (
                    None  # torch >= 2.9 .module() guards: the program's range constraints replace them
                )
            elif node.op == "call_module":
                sub = gm.get_submodule(str(node.target))
                call_args = [
                    fx.node.map_aggregate(a, lambda x: env[x] if isinstance(x, fx.Node) else x)
                    for a in node.args
                ]
                if node.kwargs:
                    raise HybridExportError(
                        f"submodule call {node.target!r} passes keyword arguments; only positional are supported"
                    )
                env[node] = self.call_submodule(sub, call_args, _join(prefix, str(node.target)), node)
            elif (
                node.op == "call_function"
                and node.target is operator.getitem
                and isinstance(env.get(node.args[0]), (tuple, list))
            ):
                env[node] = env[node.args[0]][node.args[1]]  # indexing a submodule's multiple outputs
            else:
                env[node] = self.copy_node(node, lookup, prefix)
        raise HybridExportError("the graph has no output node")

    def copy_node(self, node: fx.Node, lookup: Callable[[fx.Node], Any], prefix: str) -> fx.Node:
        def hoist(a: Any) -> Any:
            if isinstance(a, fx.Node):
                return lookup(a)
            if is_script_object(a):  # opaque object inline: hoist it (LP-1)
                return self.opaque(_join(prefix, f"_inline_obj_{node.name}"), a)
            return a

        args = fx.node.map_aggregate(node.args, hoist)
        kwargs = fx.node.map_aggregate(node.kwargs, hoist)
        new = self.graph.create_node(node.op, node.target, args, kwargs, name=node.name)
        new.meta = dict(node.meta)
        return new

    def fake_scalar(self) -> Any:
        """A fake 0-d int64 tensor in the graph's fake mode (what a SymInt is inside an engine call)."""
        mode = fake_mode_of([n for n in self.graph.nodes if n.op == "placeholder"])
        if mode is None:
            return None
        with mode:
            return torch.empty((), dtype=torch.int64)

    def call_submodule(self, sub: nn.Module, args: list[Any], fqn: str, node: fx.Node) -> Any:
        call = engine_call(sub)
        if call is not None:
            op, engine = call
            obj = self.opaque(f"{fqn}_engine".replace(".", "_"), engine)
            inputs = [self._engine_input(self, a) for a in args]  # CO-5
            out = self.graph.call_function(op, (inputs, obj))
            val = node.meta.get("val")
            vals = list(val) if isinstance(val, (tuple, list)) else [val]
            out.meta["val"] = [self.fake_scalar() if is_symint(v) else v for v in vals]
            items: list[Any] = []
            for i, v in enumerate(vals):
                item = self.graph.call_function(operator.getitem, (out, i))
                item.meta["val"] = out.meta["val"][i]
                items.append(self._engine_output(self, item, v))  # CO-5
            return tuple(items) if isinstance(val, (tuple, list)) else items[0]
        if isinstance(sub, fx.GraphModule):
            return self.copy(sub, args, fqn)
        if type(sub).__name__ == "PythonTorchTensorRTModule":  # SE-1: its engine is no TorchBind object
            raise HybridExportError(
                f"submodule {fqn!r} runs its engine in torch_tensorrt's Python runtime, which holds no "
                "serializable engine object (pytorch/TensorRT#2652)",
                "compile with use_python_runtime=False (the C++ runtime's engines serialize)",
            )
        raise HybridExportError(
            f"submodule {fqn!r} is a {type(sub).__name__}: neither a graph nor an engine",
            "trace it to an fx.GraphModule, or give it a trtshim_engine_call() method",
        )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _placeholder_name(kind: str, fqn: str) -> str:
    prefix = {"PARAMETER": "p", "BUFFER": "b", "BUFFER_NP": "b", "CONSTANT_TENSOR": "c", "CUSTOM_OBJ": "obj"}[
        kind
    ]
    return f"{prefix}_{re.sub(r'[^0-9a-zA-Z_]', '_', fqn)}".lower()


_KIND_ORDER = ("PARAMETER", "BUFFER", "BUFFER_NP", "CONSTANT_TENSOR", "CUSTOM_OBJ")


def _fields(cls: Any) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


class _SpecHooks:
    """The two hooks every input spec asks, looked up once per export: what a lifted value is declared as
    (LP-1; upstream: a user input) and the spec's extra fields (LP-5; upstream: none)."""

    def __init__(self, fixes: FixReport) -> None:
        self.declared: Callable[[str], str] = fixes.hook("hybrid.lifted_kind", lambda kind: "USER")
        self.fields: Callable[[str], dict[str, Any]] = fixes.hook("hybrid.spec_fields", lambda kind: {})


def _input_spec(
    kind: str, name: str, fqn: str | None, hooks: _SpecHooks, class_fqn: str | None = None
) -> gs.InputSpec:
    if kind != "USER" and hooks.declared(kind) == "USER":
        return _input_spec("USER", name, None, hooks)  # what the pre-fix upstream exporter declared (LP-1)
    kinds = {"BUFFER_NP": "BUFFER", "USER": "USER_INPUT"}
    input_kind = getattr(gs.InputKind, kinds.get(kind, kind), None)
    if input_kind is None:
        raise HybridExportError(
            f"torch {torch.__version__} has no InputKind.{kind}: it cannot express a lifted {kind.lower()} ",
            "use torch >= 2.3 for graphs that hold opaque engine objects",
        )
    arg: Any = (
        gs.CustomObjArgument(name=name, class_fqn=class_fqn or "")
        if kind == "CUSTOM_OBJ"
        else gs.TensorArgument(name=name)
    )
    kwargs: dict[str, Any] = {"kind": input_kind, "arg": arg, "target": fqn}
    kwargs.update(hooks.fields(kind))  # LP-5
    return gs.InputSpec(**kwargs)


def _module_call_graph(in_spec: Any, out_spec: Any) -> list[Any]:
    from torch.export.exported_program import ModuleCallEntry, ModuleCallSignature

    sig_fields = _fields(ModuleCallSignature)
    kwargs: dict[str, Any] = {"inputs": [], "outputs": [], "in_spec": in_spec, "out_spec": out_spec}
    if "forward_arg_names" in sig_fields:
        kwargs["forward_arg_names"] = None
    return [ModuleCallEntry(fqn="", signature=ModuleCallSignature(**kwargs))]


def export_hybrid(
    gm: fx.GraphModule,
    example_args: tuple[Any, ...] | list[Any],
    example_kwargs: dict[str, Any] | None = None,
    *,
    fixes: FixReport | None = None,
) -> ExportedProgram:
    """An ``ExportedProgram`` equivalent to the hybrid ``gm`` (see the module docstring).

    ``fixes``: the set to build with (default: the ``hybrid`` fixes this stack needs). A test leaves
    one out (``active("hybrid").without("LP-5")``) to reproduce the upstream defect; the self-check of
    the result runs only with nothing left out.
    """
    fixes = fixes if fixes is not None else active("hybrid")
    flat_args, in_spec = pytree.tree_flatten((tuple(example_args), dict(example_kwargs or {})))
    source_placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(source_placeholders) != len(flat_args):
        raise HybridExportError(
            f"the graph has {len(source_placeholders)} inputs but {len(flat_args)} example inputs were given",
            "pass the inputs the graph was compiled with",
        )
    b = _Builder(gm, fixes)
    users: list[fx.Node] = []
    for ph in source_placeholders:
        new = b.graph.placeholder(ph.name)
        new.meta = dict(ph.meta)
        users.append(new)
    out = b.copy(gm, list(users), "")
    pytree_info = getattr(gm.graph._codegen, "pytree_info", None)
    if pytree_info is not None and pytree_info.out_spec is not None:
        # the graph's output node holds the flat outputs; its codegen holds the structure
        out_flat, out_spec = list(out), pytree_info.out_spec
        in_spec = pytree_info.in_spec or in_spec
    else:
        out_flat, out_spec = pytree.tree_flatten(out)
    b.graph.output(tuple(out_flat))

    fake_mode = fake_mode_of(users + [n for n in b.graph.nodes if n.op == "call_function"])
    # what upstream lift() did without LP-6: a fresh Parameter, requires_grad=True
    parameter = fixes.hook("hybrid.parameter", lambda t: nn.Parameter(t.detach()))
    specs: list[gs.InputSpec] = []
    spec_hooks = _SpecHooks(fixes)
    first_user = users[0] if users else None
    for kind in _KIND_ORDER:
        for fqn, node in list(b.attrs.items()):
            if b.kinds[fqn] != kind:
                continue
            name = _placeholder_name(kind, fqn)
            ctx = (
                b.graph.inserting_before(first_user)
                if first_user is not None
                else b.graph.inserting_before(node)
            )
            with ctx:
                ph = b.graph.placeholder(name)
            value = b.values[fqn]
            class_fqn = _class_fqn(value) if kind == "CUSTOM_OBJ" else None
            if kind == "CUSTOM_OBJ":
                ph.meta["val"] = gs.CustomObjArgument(name=ph.name, class_fqn=class_fqn or "")
            elif fake_mode is not None:
                ph.meta["val"] = fake_mode.from_tensor(value, static_shapes=True)
            node.replace_all_uses_with(ph)
            b.graph.erase_node(node)
            specs.append(_input_spec(kind, ph.name, fqn, spec_hooks, class_fqn))
            register(b.root, fqn, value, kind, parameter=parameter)
    specs += [_input_spec("USER", n.name, None, spec_hooks) for n in users]
    _fill_missing_meta(b, users, flat_args, fake_mode)
    out_specs = [_output_spec(n) for n in out_flat]
    signature = gs.ExportGraphSignature(input_specs=specs, output_specs=out_specs)
    state_kinds = (
        ("PARAMETER", "BUFFER")
        if "persistent" in _fields(gs.InputSpec)
        else ("PARAMETER", "BUFFER", "BUFFER_NP")
    )
    state_dict = {f: v for f, v in b.values.items() if b.kinds[f] in state_kinds}  # 2.2 keeps every buffer
    constants = {f: v for f, v in b.values.items() if b.kinds[f] not in state_kinds}
    if spec_hooks.declared("PARAMETER") == "USER":
        state_dict = {}  # the pre-fix exporter kept every lifted value as an input of the program (LP-1)
    ranges = harvest_range_constraints(users, fake_mode)
    build_scope = fixes.hook("hybrid.build_scope", contextlib.nullcontext)  # LP-1
    ep = _make_program(b, signature, state_dict, constants, ranges, in_spec, out_spec, build_scope)
    if not fixes.left_out:
        check_program(ep, len(flat_args))
    return ep


def _output_spec(value: Any) -> gs.OutputSpec:
    if isinstance(value, fx.Node):
        arg: Any = gs.TensorArgument(name=value.name)
    else:  # a constant output; ConstantArgument gained a name field in torch 2.3
        fields = _fields(gs.ConstantArgument)
        arg = gs.ConstantArgument(**({"name": "", "value": value} if "name" in fields else {"value": value}))
    return gs.OutputSpec(kind=gs.OutputKind.USER_OUTPUT, arg=arg, target=None)


def _fill_missing_meta(b: _Builder, users: list[fx.Node], flat_args: list[Any], fake_mode: Any) -> None:
    """Graphs traced without fake values (e.g. ``fx.symbolic_trace``) get them by fake propagation."""
    nodes = [n for n in b.graph.nodes if n.op in ("placeholder", "call_function")]
    if all("val" in n.meta for n in nodes):
        return
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    mode = fake_mode or FakeTensorMode(allow_non_fake_inputs=True)
    by_name = {_placeholder_name(b.kinds[f], f): b.values[f] for f in b.values}
    user_values = dict(zip((n.name for n in users), flat_args))
    args = [by_name.get(n.name, user_values.get(n.name)) for n in b.graph.nodes if n.op == "placeholder"]
    saved = {n: n.meta.get("val") for n in b.graph.nodes if n.op == "placeholder"}
    FakeTensorProp(fx.GraphModule(b.root, b.graph), mode=mode).propagate(*args)
    for node, val in saved.items():  # keep what lifting set (custom objects carry CustomObjArgument)
        if val is not None:
            node.meta["val"] = val


def _make_program(
    b: _Builder,
    signature: gs.ExportGraphSignature,
    state_dict: dict[str, Any],
    constants: dict[str, Any],
    range_constraints: dict[Any, Any],
    in_spec: Any,
    out_spec: Any,
    build_scope: Callable[[], Any],
) -> ExportedProgram:
    import inspect

    params = inspect.signature(ExportedProgram.__init__).parameters
    kwargs: dict[str, Any] = {
        "root": b.root,
        "graph": b.graph,
        "graph_signature": signature,
        "state_dict": state_dict,
        "range_constraints": range_constraints,
        "module_call_graph": _module_call_graph(in_spec, out_spec),
    }
    if "equality_constraints" in params:  # torch 2.2
        kwargs["equality_constraints"] = []
    if "constants" in params:
        kwargs["constants"] = constants
    elif constants:  # torch 2.2: tensor constants only
        kwargs["tensor_constants"] = constants
    with build_scope():
        return ExportedProgram(**kwargs)


def check_program(ep: ExportedProgram, n_user_args: int) -> None:
    """The self-check after building: placeholders match the signature, user inputs match the args."""
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder"]
    specs = ep.graph_signature.input_specs
    if len(placeholders) != len(specs):
        raise HybridExportError(
            f"built a program with {len(placeholders)} placeholders for {len(specs)} input specs"
        )
    for node, spec in zip(placeholders, specs):
        if node.name != getattr(spec.arg, "name", None):
            raise HybridExportError(f"placeholder {node.name!r} does not match its input spec {spec.arg}")
    users = sum(1 for s in specs if s.kind == gs.InputKind.USER_INPUT)
    if users != n_user_args:
        raise HybridExportError(f"built a program with {users} user inputs for {n_user_args} flat user args")
    for node in ep.graph.nodes:
        if node.op == "get_attr" and not hasattr(ep.graph_module, str(node.target)):
            raise HybridExportError(f"the program's graph module lost the attribute {node.target!r} (LP-1)")
