"""LP-1 ... LP-8: each test shows the upstream failure (its real error text) with the fix off, on a
torch where the defect exists, and the working result with the fix on. Gates read installed versions."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch
from torch import fx

from trtshim import compat
from trtshim.compat.gates import requires
from trtshim.compat.programs import hybrid
from trtshim.fixes import REGISTRY, active, by_id, select
from trtshim.fixes.lp1_engine_with_weights import graph_module_fallback_patch
from trtshim.testing.engine_standin import make_engine, make_hybrid, make_seed_model

ENV = compat.detect()
HYBRID = active("hybrid")


def decision(fix_id: str):
    (d,) = [d for d in select(ENV, REGISTRY).decisions if d.fix.id == fix_id]
    return d


@pytest.fixture(scope="module")
def seed():
    model, engine = make_seed_model()
    x = torch.randn(1, 3, 8, 8)
    return model, make_hybrid(model, engine, (x,)), x


def test_lp1_weights_declared_as_user_inputs(seed) -> None:
    model, gm, x = seed
    broken = hybrid.export_hybrid(gm, (x,), fixes=HYBRID.without("hybrid.lifted_kind"))  # LP-1's first half
    if requires("torch<2.3"):  # torch 2.2 has no input-count check: the graph is called short of its weights
        with pytest.raises(TypeError, match=r"forward\(\) missing \d+ required positional arguments"):
            broken(x)
    else:
        with pytest.raises(RuntimeError, match=r"Unexpected number of inputs \(expected \d+, got 1\)"):
            broken.module()(x)
    fixed = hybrid.export_hybrid(gm, (x,))
    with torch.inference_mode():
        assert torch.equal(compat.CompiledModule(fixed, backend="hybrid", environment=ENV)(x), model(x))
    assert decision("LP-1").applied


def test_lp1_inline_engine_object_drops_attributes() -> None:
    """The torch-side half, reproduced as in pytorch#116831: an inline ScriptObject makes code
    generation fail and the fallback GraphModule loses every get_attr target."""
    import importlib

    patch = graph_module_fallback_patch()
    if not patch.available():
        pytest.skip(f"torch {torch.__version__} has no _create_graph_module_for_export: no fallback to guard")
    exported_program = importlib.import_module(patch.module)
    _create_graph_module_for_export = exported_program._create_graph_module_for_export

    engine, _ = make_engine(torch.nn.Conv2d(3, 3, 3, padding=1))
    g = fx.Graph()
    x = g.placeholder("x")
    w = g.get_attr("conv_weight")
    y = g.call_function(
        torch.ops.aten.convolution.default, (x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    )
    g.output(g.call_function(torch.ops.trtshim_standin.execute_engine.default, ([y], engine)))
    root = torch.nn.Module()
    root.register_parameter("conv_weight", torch.nn.Parameter(torch.randn(3, 3, 3, 3)))

    original = _create_graph_module_for_export
    with pytest.warns(UserWarning, match="Unable to execute the generated python source code"):
        broken = _create_graph_module_for_export(root, g)
    assert not hasattr(broken, "conv_weight")  # the upstream defect
    with pytest.raises(RuntimeError, match="Node referenced nonexistent target"):
        fx.Interpreter(broken).run(torch.randn(1, 3, 8, 8))

    with patch, pytest.warns(UserWarning):
        guarded = exported_program._create_graph_module_for_export(root, g)
    assert hasattr(guarded, "conv_weight")
    out = fx.Interpreter(guarded).run(torch.randn(1, 3, 8, 8))
    assert out[0].shape == (1, 3, 8, 8)
    assert exported_program._create_graph_module_for_export is original  # restored on exit


@pytest.mark.requires("torch>=2.3")  # 2.2 has no custom-object inputs: objects stay inline (test_seed_scenario)
def test_lp1_exporter_hoists_inline_objects(seed) -> None:
    _, gm, x = seed
    broken = hybrid.export_hybrid(gm, (x,), fixes=HYBRID.without("hybrid.opaque", "hybrid.build_scope"))
    with pytest.raises(SyntaxError):  # generated code cannot render the inline ScriptObject
        broken.module()
    fixed = hybrid.export_hybrid(gm, (x,))
    objs = [s for s in fixed.graph_signature.input_specs if s.kind.name == "CUSTOM_OBJ"]
    assert [s.target for s in objs] == ["_run_on_acc_1_engine"]


def _target() -> str:
    return "original"


def test_scoped_patch_is_thread_safe_and_restores() -> None:
    from trtshim.fixes.patching import ScopedPatch

    patch = ScopedPatch(__name__, "_target", lambda original: lambda: "patched")
    module = sys.modules[__name__]
    inside = threading.Barrier(4)
    seen = []

    def worker() -> None:
        with patch:
            inside.wait()
            seen.append(module._target())
            inside.wait()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == ["patched"] * 4
    assert module._target() == "original" and not patch.active


def test_lp2_program_is_not_callable(small_cnn, example, compile_quiet) -> None:
    compiled = compile_quiet(small_cnn, (example,))
    d = decision("LP-2")
    if requires("torch>=2.3"):
        with pytest.raises(RuntimeError, match="Unable to call ExportedProgram directly"):
            compiled.program(example)
        assert d.applied
    else:
        assert not d.applied and "outside" in d.reason  # torch 2.2 programs are callable
    with torch.inference_mode():
        assert torch.equal(compiled(example), small_cnn(example))


def test_lp4_load_moves_lifted_constants(small_cnn, example, compile_quiet, tmp_path: Path) -> None:
    path = tmp_path / "m.pt2"
    compat.save(compile_quiet(small_cnn, (example,)), path)
    import inspect

    assert "map_location" not in inspect.signature(torch.export.load).parameters  # the upstream gap
    plain = torch.export.load(path).module().to("meta")
    if requires("torch>=2.5"):
        with pytest.raises(
            RuntimeError, match="is not on the expected device meta"
        ):  # a constant stayed on cpu
            plain(example.to("meta"))
        assert decision("LP-4").applied
    else:  # torch <= 2.4 registers lifted constants as buffers of .module(): nothing to fix
        assert plain(example.to("meta")).device.type == "meta"
        assert not decision("LP-4").applied
    loaded = compat.load(path, device="meta")
    assert loaded(example.to("meta")).device.type == "meta"


@pytest.mark.requires(*by_id("LP-5").requirements)
def test_lp5_buffer_without_persistent_flag(seed) -> None:
    _, gm, x = seed
    d = decision("LP-5")
    with pytest.raises(AssertionError, match="Failed to specify persistent flag on BUFFER"):
        hybrid.export_hybrid(gm, (x,), fixes=HYBRID.without("LP-5"))
    fixed = hybrid.export_hybrid(gm, (x,))
    buffers = [s for s in fixed.graph_signature.input_specs if s.kind.name == "BUFFER"]
    assert buffers and all(s.persistent is True for s in buffers)
    assert d.applied


def test_lp5_non_persistent_buffers_keep_their_flag() -> None:
    class WithScale(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", torch.full((1,), 3.0), persistent=False)

        def forward(self, x):
            return x * self.scale

    gm = fx.symbolic_trace(WithScale())
    gm.register_buffer("scale", torch.full((1,), 3.0), persistent=False)  # fx's copy drops the flag
    x = torch.randn(2)
    for node in gm.graph.nodes:  # symbolic_trace gives no fake values; add them as export would
        if node.op == "placeholder":
            node.meta["val"] = x
    ep = hybrid.export_hybrid(gm, (x,))
    (spec,) = [s for s in ep.graph_signature.input_specs if s.kind.name == "BUFFER"]
    assert getattr(spec, "persistent", False) is False or requires("torch<2.3")
    assert torch.equal(compat.CompiledModule(ep, backend="hybrid", environment=ENV)(x), x * 3)


def test_lp6_integer_parameter() -> None:
    class Steps(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.steps = torch.nn.Parameter(torch.tensor([3], dtype=torch.int64), requires_grad=False)

        def forward(self, x):
            return x * self.steps

    gm = fx.symbolic_trace(Steps())
    x = torch.randn(4)
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            node.meta["val"] = x
    with pytest.raises(
        RuntimeError, match="Only Tensors of floating point and complex dtype can require gradients"
    ):
        hybrid.export_hybrid(gm, (x,), fixes=HYBRID.without("LP-6"))
    fixed = hybrid.export_hybrid(gm, (x,))
    assert fixed.state_dict["steps"].dtype == torch.int64
    assert torch.equal(compat.CompiledModule(fixed, backend="hybrid", environment=ENV)(x), x * 3)
    assert decision("LP-6").applied


def _collision_graph() -> tuple[fx.GraphModule, torch.Tensor, torch.Tensor]:
    """A parent whose node names collide with the submodule's placeholder names, crosswise."""
    sub_graph = fx.Graph()
    a = sub_graph.placeholder("b")  # first input is named like the parent's *second* value
    b = sub_graph.placeholder("a")
    sub_graph.output(sub_graph.call_function(torch.ops.aten.sub.Tensor, (a, b)))
    sub = fx.GraphModule(torch.nn.Module(), sub_graph)
    g = fx.Graph()
    pa, pb = g.placeholder("a"), g.placeholder("b")
    g.output(g.call_module("_run_on_gpu_0", (pa, pb)))
    root = torch.nn.Module()
    root.add_module("_run_on_gpu_0", sub)
    gm = fx.GraphModule(root, g)
    xa, xb = torch.tensor([5.0]), torch.tensor([2.0])
    for node, val in zip([pa, pb], [xa, xb]):
        node.meta["val"] = val
    return gm, xa, xb


def _inline_by_name(gm: fx.GraphModule) -> fx.GraphModule:
    """The upstream mechanism in miniature: submodule placeholders matched to parent nodes by name."""
    out = fx.Graph()
    parent = {n.name: out.node_copy(n) for n in gm.graph.nodes if n.op == "placeholder"}
    call = next(n for n in gm.graph.nodes if n.op == "call_module")
    sub = gm.get_submodule(str(call.target))
    env = {p: parent[p.name] for p in sub.graph.nodes if p.op == "placeholder"}
    result = None
    for n in sub.graph.nodes:
        if n.op == "call_function":
            result = env[n] = out.node_copy(n, lambda a: env[a])
    out.output(result)
    return fx.GraphModule(torch.nn.Module(), out)


def test_lp7_submodule_inputs_wired_positionally() -> None:
    gm, xa, xb = _collision_graph()
    assert torch.equal(gm(xa, xb), xa - xb)  # 3: what the graph means
    assert torch.equal(_inline_by_name(gm)(xa, xb), xb - xa)  # -3: by-name wiring swapped the inputs
    ep = hybrid.export_hybrid(gm, (xa, xb))
    assert torch.equal(compat.CompiledModule(ep, backend="hybrid", environment=ENV)(xa, xb), xa - xb)
    assert decision("LP-7").applied


def test_lp8_lifted_values_are_not_keyed_by_node_name(small_cnn, example, compile_quiet) -> None:
    ep = compile_quiet(small_cnn, (example,)).program
    params = [s for s in ep.graph_signature.input_specs if s.kind.name == "PARAMETER"]
    names = [s.arg.name for s in params]
    with pytest.raises(KeyError):  # what a lookup by placeholder name does
        [ep.state_dict[n] for n in names]
    from trtshim.compat.programs.program import input_slots, lifted_value, program_constants

    slots = [s for s in input_slots(ep) if s.kind == "PARAMETER"]
    values = [lifted_value(ep, s, program_constants(ep)) for s in slots]
    assert [v.shape for v in values] == [ep.state_dict[s.target].shape for s in params]
    assert decision("LP-8").applied


def test_fixes_not_needed_are_not_applied_and_say_why() -> None:
    report = select(ENV, REGISTRY)
    for d in report.decisions:
        assert d.reason
        if not d.applied:
            assert "outside" in d.reason or "not installed" in d.reason or "probe" in d.reason
    assert by_id("LP-1").links
