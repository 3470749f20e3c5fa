"""trtshim's TensorRT adapter against the real torch_tensorrt package (imported, not its source)."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import pytest
import torch

from trtshim import compat, errors
from trtshim.compat import backends
from trtshim.compat.backends import tensorrt_api
from trtshim.testing import tensorrt_save


class ConvNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv(x))) + 1.0


def _bind(fn, plan: tensorrt_api.CallPlan, program, inputs) -> inspect.BoundArguments:
    sig = inspect.signature(fn)
    if plan.inputs_keyword is None:
        return sig.bind(program, inputs, **plan.kwargs)
    return sig.bind(program, **{plan.inputs_keyword: inputs}, **plan.kwargs)


def test_imports_and_detects_the_rtx_flavour(ttrt) -> None:
    env = compat.detect()
    assert env.torch_tensorrt_flavour == "torch-tensorrt-rtx"
    assert env.torch_tensorrt is not None and ttrt.__version__.startswith(
        env.torch_tensorrt.raw.split("+")[0]
    )
    assert ttrt.ENABLED_FEATURES.tensorrt_rtx
    facts = compat.probe_runtime(refresh=True)
    assert facts.torch_tensorrt_imports and facts.tensorrt_flavour == "tensorrt_rtx"
    ok, why = backends.tensorrt_usable()
    if not torch.cuda.is_available():
        assert not ok and why == "no CUDA device is available"


@pytest.mark.parametrize(
    ("precision", "options"),
    [
        ("fp32", {}),
        ("fp16", {"refit": True, "truncate_double": True, "min_block_size": 1}),
        ("bf16", {"torch_executed_ops": ("torch.ops.aten.relu.default",), "workspace_size": 1 << 20}),
        ("fp32", {"version_compatible": True, "hardware_compatible": True, "debug": False}),
    ],
)
def test_translated_call_binds_the_live_signature(ttrt, precision, options) -> None:
    env = compat.detect()
    for strongly_typed in (False, True):  # the standard flavour's call, and the one RTX gets
        plan = tensorrt_api.translate(
            env.torch_tensorrt.raw,  # type: ignore[union-attr]
            precision=precision,
            options=options,
            strongly_typed=strongly_typed,
        )
        bound = _bind(ttrt.dynamo.compile, plan, object(), [torch.randn(1, 3, 8, 8)])
        params = inspect.signature(ttrt.dynamo.compile).parameters
        for name in plan.kwargs:
            assert name in params, f"{name} would fall into **kwargs and be dropped"
        assert bound.arguments


def test_unknown_option_is_refused_before_torch_tensorrt_drops_it(ttrt) -> None:
    env = compat.detect()
    with pytest.raises(errors.OptionError):
        tensorrt_api.translate(env.torch_tensorrt.raw, options={"enabled_precision": {torch.half}})  # type: ignore[union-attr]


def test_save_plan_binds_the_live_save(ttrt) -> None:
    env = compat.detect()
    kwargs = tensorrt_save.save_plan(env.torch_tensorrt.raw, retrace=True, inputs=[torch.randn(1)])  # type: ignore[union-attr]
    params = inspect.signature(ttrt.save).parameters
    assert "retrace" in kwargs and all(name in params for name in kwargs)


def test_partitioning_keeps_torch_executed_ops_in_torch(ttrt) -> None:
    from torch_tensorrt.dynamo import partitioning

    x = torch.randn(1, 3, 8, 8)
    ep = torch.export.export(ConvNet().eval(), (x,))
    gm = ep.run_decompositions(ttrt.dynamo.lowering.get_decompositions()).module()
    partitioned, _ = partitioning.fast_partition(
        gm, min_block_size=1, torch_executed_ops={"torch.ops.aten.relu.default"}
    )
    names = [name for name, _ in partitioned.named_children()]
    assert any(n.startswith("_run_on_acc") for n in names) and any(n.startswith("_run_on_gpu") for n in names)
    relu_in = {
        name
        for name, sub in partitioned.named_children()
        if any(str(n.target) == "aten.relu.default" for n in sub.graph.nodes if n.op == "call_function")
    }
    assert relu_in and all(name.startswith("_run_on_gpu") for name in relu_in)


def test_converter_registry_says_where_a_custom_op_runs(ttrt) -> None:
    from torch_tensorrt.dynamo.conversion._ConverterRegistry import DYNAMO_CONVERTERS

    import trtshim.demo  # noqa: F401  (registers trtshim_demo::scaled_tanh)

    assert torch.ops.aten.convolution.default in DYNAMO_CONVERTERS
    assert torch.ops.trtshim_demo.scaled_tanh.default not in DYNAMO_CONVERTERS  # falls back to torch


def test_engine_op_schema_is_what_the_hybrid_exporter_emits(ttrt) -> None:
    from trtshim.compat.programs.hybrid import engine_call

    schema = torch.ops.tensorrt.execute_engine.default._schema
    assert str(schema.arguments[0].type) == "List[Tensor]"
    assert "tensorrt.Engine" in str(schema.arguments[1].type)
    assert [str(r.type) for r in schema.returns] == ["List[Tensor]"]

    class TorchTensorRTModule(torch.nn.Module):  # the attribute layout engine_call reads
        engine = object()

    op, obj = engine_call(TorchTensorRTModule())  # type: ignore[misc]
    assert op is torch.ops.tensorrt.execute_engine.default and obj is TorchTensorRTModule.engine


def test_programs_without_engines_interoperate_with_torch_tensorrt(ttrt, tmp_path: Path) -> None:
    env = compat.detect()
    model, x = ConvNet().eval(), torch.randn(1, 3, 8, 8)
    gm = torch.export.export(model, (x,)).module()
    ours = tmp_path / "ours.pt2"
    compat.save(gm, ours, example_inputs=(x,))
    theirs_loaded = ttrt.load(str(ours))  # torch_tensorrt reads what trtshim writes
    module = theirs_loaded.module() if hasattr(theirs_loaded, "module") else theirs_loaded
    with torch.inference_mode():
        assert torch.allclose(module(x), model(x), atol=1e-6)

    theirs = tmp_path / "theirs.pt2"
    kwargs = tensorrt_save.save_plan(env.torch_tensorrt.raw, retrace=True, inputs=[x])  # type: ignore[union-attr]
    ttrt.save(gm, str(theirs), **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.ProvenanceWarning)
        loaded = compat.load(theirs)  # and trtshim reads what torch_tensorrt writes
    with torch.inference_mode():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_co4_reads_the_live_converter_registry(ttrt) -> None:
    """CO-4 rewrites only calls torch_tensorrt converts with a generated plugin converter."""
    import co4_ops  # noqa: F401  (registers trtshim_co4::scale)
    from trtshim.fixes.co4_plugin_scalars import plugin_converted

    assert not plugin_converted(torch.ops.aten.relu.default)  # a hand-written converter
    assert not plugin_converted(torch.ops.trtshim_co4.scale.default)  # no plugin generated for it
    if ttrt.ENABLED_FEATURES.qdp_plugin:  # TensorRT's QDP plugins: generate one and see it recognised
        from torch_tensorrt.dynamo.conversion import plugins

        plugins.custom_op("trtshim_co4::scale", supports_dynamic_shapes=True)
        assert plugin_converted(torch.ops.trtshim_co4.scale.default)


def test_the_live_engine_class_is_what_compat_package_needs(ttrt) -> None:
    """``compat.package`` packages TensorRT engines where the release registers a fake ``tensorrt::Engine``
    that unflattens (AOTInductor traces engines with it): the live package has it, and the gate agrees.
    (Packaging a real engine needs one to deserialize, which no TensorRT here can do.)"""
    from torch._library import fake_class_registry

    from trtshim.compat import detect
    from trtshim.compat.backends import inductor

    fake = fake_class_registry.find_fake_class("__torch__.torch.classes.tensorrt.Engine")
    assert fake is not None and hasattr(fake, "__obj_unflatten__")
    assert inductor.engines_packageable(detect()) == (True, f"torch_tensorrt {detect().torch_tensorrt.raw} >= 2.8")
