"""CO-4: torch_tensorrt's generated plugin converter loses a custom op's scalar arguments.

Upstream: ``_generate_plugin_converter``'s ``custom_kernel_converter`` ignores the node's kwargs and maps
only the positional arguments after the tensors onto the plugin's attributes. 2.6 passes just those;
2.7-2.9 keep only attributes that have a schema default (a required scalar never reaches the plugin:
a signature mismatch); 2.10+ (commit 6b6bb484) fills defaults and then the positional values. On
every release 2.6-2.14 a scalar given by keyword (a keyword-only argument; torch.export keeps those in
kwargs) is replaced by its default or dropped: a silently wrong attribute.
Fix, a graph transform before ``dynamo.compile``: each plugin-converted call passes its non-tensor
arguments positionally, defaults filled in; a call that cannot be expressed that way on the installed
release (a keyword-only value that is not the default, or any keyword-only argument on 2.6; a
required scalar on 2.7-2.9; tensors after a scalar) keeps its op in PyTorch (``torch_executed_ops``), announced with BackendFallbackWarning.
Delete when the supported releases read the node's kwargs (not the case in 2.14.0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trtshim.compat.gates import release_in
from trtshim.fixes.registry import Fix


def _is_tensor_type(arg: Any) -> bool:
    return "Tensor" in str(arg.type)


def _custom_op(target: Any) -> bool:
    namespace = getattr(target, "namespace", None)
    return namespace is not None and namespace not in ("aten", "prims", "prim", "tensorrt")


def rewrite_call(node: Any, release: str) -> str | None:
    """Pass ``node``'s non-tensor arguments positionally, in place; or the reason it cannot be done."""
    schema = node.target._schema
    arguments = list(schema.arguments)
    kwarg_only = [a for a in arguments if a.kwarg_only]
    positional = [a for a in arguments if not a.kwarg_only]
    first_scalar = next((i for i, a in enumerate(positional) if not _is_tensor_type(a)), len(positional))
    if any(_is_tensor_type(a) for a in positional[first_scalar:]):
        return "a tensor argument follows a scalar; the converter slices tensors off the front"
    if release_in(release, "==2.6.*") and kwarg_only:
        names = ", ".join(a.name for a in kwarg_only)
        return (
            f"torch_tensorrt 2.6 hands the plugin positional scalars only; keyword-only {names} never arrive"
        )
    for arg in kwarg_only:
        if arg.name in node.kwargs and node.kwargs[arg.name] != arg.default_value:
            return f"keyword-only argument {arg.name!r}={node.kwargs[arg.name]!r} would be replaced by its default"
    values: list[Any] = []
    for i, arg in enumerate(positional):
        if i < len(node.args):
            values.append(node.args[i])
        elif arg.name in node.kwargs:
            values.append(node.kwargs[arg.name])
        elif arg.has_default_value():
            values.append(arg.default_value)
        else:
            return f"argument {arg.name!r} has no value"
    if release_in(release, ">=2.7,<2.10"):
        required = [a.name for a in positional[first_scalar:] if a.default_value is None]
        if required:
            return f"torch_tensorrt 2.7-2.9 drop scalar arguments without a default: {', '.join(required)}"
    node.args = tuple(values)
    node.kwargs = {k: v for k, v in node.kwargs.items() if k in {a.name for a in kwarg_only}}
    return None


def rewrite(graph: Any, release: str, plugin_converted: Callable[[Any], bool]) -> dict[str, str]:
    """Rewrite every plugin-converted custom-op call in ``graph``; ``{op: reason}`` for ops to keep in torch."""
    keep: dict[str, str] = {}
    for node in graph.nodes:
        if node.op != "call_function" or not _custom_op(node.target) or not plugin_converted(node.target):
            continue
        reason = rewrite_call(node, release)
        if reason is not None:
            namespace, name = node.target._schema.name.split("::")  # OpOverload._opname: torch 2.4+
            keep.setdefault(f"torch.ops.{namespace}.{name}.{node.target._overloadname}", reason)
    return keep


def plugin_converted(target: Any) -> bool:
    """Whether torch_tensorrt converts ``target`` with a generated plugin converter (imports torch_tensorrt)."""
    from torch_tensorrt.dynamo.conversion._ConverterRegistry import DYNAMO_CONVERTERS

    converters, _ = DYNAMO_CONVERTERS.get_all_converters_with_target(target)
    return any(getattr(fn, "__name__", "") == "custom_kernel_converter" for fn in converters)


def rewrite_before_compile(job: Any) -> None:
    """Hook ``compile.program``: rewrite a copy of the program; ops that cannot be rewritten go to ``job.keep``."""
    from trtshim.fixes.cp1_compile_mutates_program import copy_before_compile

    copy_before_compile(job)  # dynamo.compile's lowering edits the graph it is given
    job.keep.update(rewrite(job.program.graph_module.graph, job.release, plugin_converted))
    job.program.graph_module.recompile()


FIX = Fix(
    id="CO-4",
    family="custom-ops",
    title="plugin-converted custom ops get their scalars positionally, or stay in PyTorch (announced)",
    affected={"torch_tensorrt": ">=2.6"},
    fixed_in={},
    links=(
        "https://github.com/pytorch/TensorRT/pull/3321",
        "https://github.com/pytorch/TensorRT/commit/6b6bb484",
    ),
    stage="compile",
    how="transform",
    hooks={"compile.program": rewrite_before_compile},
)
