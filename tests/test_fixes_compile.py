"""CP-1's transform on CPU: the copy torch_tensorrt's lowering may edit shares weights, not the graph.

The upstream failure itself (dynamo.compile rewriting the caller's program) needs torch_tensorrt:
tests/trt/test_rtx_build.py reproduces it with the fix off and passes with it on.
"""

from __future__ import annotations

import pytest
import torch

from trtshim import compat
from trtshim.compat.gates import requires
from trtshim.compat.programs import program as prog
from trtshim.fixes import REGISTRY, select
from trtshim.fixes.cp1_compile_mutates_program import graph_copy
from trtshim.testing.engine_standin import make_hybrid, make_seed_model


def test_graph_copy_shares_weights_but_not_the_graph() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    x = torch.randn(1, 3, 8, 8)
    program = torch.export.export(model, (x,))
    copied = graph_copy(program)
    assert all(copied.state_dict[k] is v for k, v in program.state_dict.items())  # no weight memory
    code = program.graph_module.code
    node = next(n for n in copied.graph.nodes if n.op == "call_function")
    with copied.graph.inserting_after(node):  # what a lowering pass does to the graph it is given
        cast = copied.graph.call_function(torch.ops.aten.to.dtype, (node, torch.float16))
    node.replace_all_uses_with(cast, delete_user_cb=lambda user: user is not cast)
    copied.graph_module.recompile()
    assert program.graph_module.code == code
    assert "aten.to.dtype" not in str(list(program.graph.nodes)) and cast in copied.graph.nodes
    with torch.inference_mode():
        assert torch.equal(program.module()(x), model(x))


def test_graph_copy_shares_engine_objects() -> None:
    model, engine = make_seed_model()
    x = torch.randn(1, 3, 8, 8)
    path_free = compat.compile(model, (x,), backend="export").program  # a program without engines
    assert graph_copy(path_free).state_dict.keys() == path_free.state_dict.keys()
    if requires("torch<2.3"):
        pytest.skip(
            "torch 2.2 keeps engine objects inline; CP-1 applies with torch_tensorrt >= 2.8 (torch >= 2.8)"
        )
    from trtshim.compat.programs.hybrid import export_hybrid

    program = export_hybrid(make_hybrid(model, engine, (x,)), (x,))
    copied = graph_copy(program)
    objects = [v for v in prog.program_constants(program).values() if prog.is_script_object(v)]
    copied_objects = [v for v in prog.program_constants(copied).values() if prog.is_script_object(v)]
    inline = [a for n in copied.graph.nodes for a in n.args if prog.is_script_object(a)]
    assert copied_objects == objects or inline == [engine]  # the same object (inline on torch 2.2)


def test_cp1_is_selected_by_torch_tensorrt_release() -> None:
    from test_fixes_registry import env_with

    def applied(ttrt: str | None) -> bool:
        (d,) = [d for d in select(env_with("2.13.0", ttrt), REGISTRY).decisions if d.fix.id == "CP-1"]
        return d.applied

    # 2.3-2.7 run no pass in place (their pre-export pass list is empty); 2.8+ do
    assert [applied(v) for v in (None, "2.7.0", "2.8.0", "2.14.0")] == [False, False, True, True]
