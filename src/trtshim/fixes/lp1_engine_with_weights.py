"""LP-1: a program holding weighted layers *and* an engine op fails at inference.

Upstream: Torch-TensorRT's legacy exporter declared lifted weights as user inputs
(``Unexpected number of inputs (expected 3, got 1)``) and passed the engine ScriptObject inline, so
torch's ``_create_graph_module_for_export`` hit a SyntaxError, fell back to an empty GraphModule and
dropped every ``get_attr`` target (``GraphModule does not contain attribute conv_weight``).
Links: pytorch/TensorRT#2576, pytorch/pytorch#116831, fixed in TensorRT#2575 (kinds) and #2691
(engine as a lifted custom object; torch_tensorrt 2.3.0). The torch-side fallback is still there.
Fix: trtshim's hybrid exporter (``trtshim.compat.programs.hybrid``) lifts by kind and hoists every opaque
object; while it builds a program, a scoped patch makes the fallback copy ``get_attr`` targets.
Delete when torch_tensorrt < 2.3 leaves the matrix *and* torch's fallback copies attributes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from trtshim.fixes.patching import ScopedPatch
from trtshim.fixes.registry import Fix


def _copy_get_attrs(original: Any) -> Any:
    def create_graph_module_for_export(root: Any, graph: Any) -> Any:
        from torch.fx.graph_module import _copy_attr

        from trtshim.compat.programs.program import has_attribute

        gm = original(root, graph)
        for node in graph.nodes:
            target = str(node.target)
            if node.op == "get_attr" and not has_attribute(gm, target) and has_attribute(root, target):
                _copy_attr(root, gm, target)
        return gm

    return create_graph_module_for_export


GRAPH_MODULE_FALLBACK = ScopedPatch(
    "torch.export.exported_program", "_create_graph_module_for_export", _copy_get_attrs
)
# torch 2.2 keeps the same fallback in the private module (looked up there at each call)
GRAPH_MODULE_FALLBACK_2_2 = ScopedPatch(
    "torch._export.exported_program", "_create_graph_module_for_export", _copy_get_attrs
)


def graph_module_fallback_patch() -> ScopedPatch:
    """The patch for the installed torch (check ``available()``)."""
    return GRAPH_MODULE_FALLBACK if GRAPH_MODULE_FALLBACK.available() else GRAPH_MODULE_FALLBACK_2_2


def declared_kind(kind: str) -> str:
    """Hook ``hybrid.lifted_kind``: a lifted value is declared as what it is (defect 1: a user input)."""
    return kind


def lift_opaque(lift: Callable[[str, Any, str], Any], fqn: str, obj: Any) -> Any:
    """Hook ``hybrid.opaque``: an opaque object becomes a lifted custom object (defect 2: left inline).
    torch 2.2 has no custom-object inputs; its serializer stores inline objects itself."""
    from torch.export import graph_signature

    return lift(fqn, obj, "CUSTOM_OBJ") if hasattr(graph_signature, "CustomObjArgument") else obj


@contextlib.contextmanager
def guarded_build() -> Any:
    """Hook ``hybrid.build_scope``: while a program is built, torch's code-generation fallback copies
    every ``get_attr`` target (still dropped by torch 2.13), and torch 2.2's inline-object warning is quiet."""
    from trtshim.compat.programs.program import quiet_inline_object_codegen

    patch = graph_module_fallback_patch()
    with patch if patch.available() else contextlib.nullcontext(), quiet_inline_object_codegen():
        yield


FIX = Fix(
    id="LP-1",
    family="lifted-params",
    title="weights + engine op: lift by kind, hoist opaque objects, keep get_attr targets on fallback",
    affected={"torch": ">=2.2"},
    fixed_in={"torch_tensorrt": "2.3.0", "torch": ""},
    links=(
        "https://github.com/pytorch/TensorRT/issues/2576",
        "https://github.com/pytorch/pytorch/issues/116831",
        "https://github.com/pytorch/TensorRT/pull/2575",
        "https://github.com/pytorch/TensorRT/pull/2691",
    ),
    stage="hybrid",
    how="transform+patch",
    hooks={
        "hybrid.lifted_kind": declared_kind,
        "hybrid.opaque": lift_opaque,
        "hybrid.build_scope": guarded_build,
    },
)
