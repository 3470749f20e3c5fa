"""CO-4 on CPU: the rewrite keeps torch semantics and decides per release what a plugin can receive.

Against each release's real converter code: tests/test_tensorrt_conformance.py (network).
"""

from __future__ import annotations

import pytest
import torch

from co4_ops import exported_calls, op_calls
from trtshim.fixes.co4_plugin_scalars import rewrite


@pytest.mark.parametrize("release", ["2.6.0", "2.9.0", "2.10.0", "2.14.0"])
def test_rewrite_passes_scalars_positionally_and_keeps_the_rest_in_torch(release: str) -> None:
    program, x = exported_calls()
    with torch.inference_mode():
        expected = program.module()(x)
    keep = rewrite(program.graph_module.graph, release, lambda target: True)
    program.graph_module.recompile()
    a, b, c, d = op_calls(program)
    assert b.kwargs == {"bias": 0.5}  # a keyword-only value cannot be positional
    if release.startswith("2.6"):  # keyword-only scalars never reach a 2.6 plugin, default or not
        assert "positional scalars only" in keep["torch.ops.trtshim_co4.scale.default"]
    else:
        assert a.args[1:] == (2.0,) and c.args[1:] == (1.0,)  # the omitted default is now explicit
        assert "keyword-only argument 'bias'=0.5" in keep["torch.ops.trtshim_co4.scale.default"]
    if release.startswith("2.9"):
        assert "drop scalar arguments without a default: k" in keep["torch.ops.trtshim_co4.mix.default"]
    else:
        assert "torch.ops.trtshim_co4.mix.default" not in keep and d.args[1:] == (4.0,)
    with torch.inference_mode():
        assert torch.equal(program.module()(x), expected)  # torch runs the rewritten graph the same


def test_rewrite_leaves_ops_without_a_plugin_converter_alone() -> None:
    program, _ = exported_calls()
    before = [(n.args, dict(n.kwargs)) for n in op_calls(program)]
    assert rewrite(program.graph_module.graph, "2.14.0", lambda target: False) == {}
    assert [(n.args, dict(n.kwargs)) for n in op_calls(program)] == before
