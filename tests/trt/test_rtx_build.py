"""trtshim's TensorRT call path through the real converters, up to the serialized engine.

On a machine without a GPU, torch_tensorrt builds the TensorRT network and serializes the engine,
then fails to deserialize it (no CUDA driver). The tests watch the real ``build_serialized_network``
call: which layers were built, in which dtype, and how many bytes came out. Where engines run, the
compile also succeeds; here it must fail with the deserialization cause in our CompileError.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import pytest
import torch

from trtshim import compat, errors
from trtshim.compat.backends import export as export_backend
from trtshim.compat.backends import tensorrt as tensorrt_backend
from trtshim.compat.backends import tensorrt_api
from trtshim.fixes import active

LOW = {"fp32": "FLOAT", "fp16": "HALF", "bf16": "BF16"}


class Built:
    """What each ``Builder.build_serialized_network`` call saw and returned."""

    def __init__(self) -> None:
        self.networks: list[tuple[list[tuple[str, str]], int]] = []

    def layers(self, kind: str) -> list[str]:
        ((network, _),) = self.networks
        return [dtype for layer, dtype in network if layer == kind]


@pytest.fixture
def built(ttrt, monkeypatch) -> Built:
    trt = importlib.import_module("tensorrt")
    seen = Built()
    original = trt.Builder.build_serialized_network

    def spy(self: Any, network: Any, config: Any) -> Any:
        layers = [network.get_layer(i) for i in range(network.num_layers)]
        out = original(self, network, config)
        seen.networks.append(
            (
                [(layer.type.name, layer.get_output(0).dtype.name) for layer in layers],
                0 if out is None else out.nbytes,
            )
        )
        return out

    monkeypatch.setattr(trt.Builder, "build_serialized_network", spy)
    if not torch.cuda.is_available():  # dynamo.compile sizes its workspace from the device
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a, **k: (16 << 30, 16 << 30))
    return seen


def _program() -> tuple[torch.export.ExportedProgram, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 16, 16)
    return export_backend.export(model, (x,), {}, env=compat.detect(), options={}).program, x


def _compile(program: Any, x: torch.Tensor, precision: str, **kwargs: Any) -> Any:
    """The backend's compile; where no engine can be deserialized, the CompileError it must raise."""
    try:
        return tensorrt_backend.compile_exported(
            program,
            env=compat.detect(),
            precision=precision,
            options={"min_block_size": 1},
            args=(x,),
            **kwargs,
        )
    except errors.CompileError as exc:
        if torch.cuda.is_available():
            raise
        assert "deserializeCudaEngine" in exc.reason, exc.reason  # the logged cause, not a bare assert
        return exc


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_converters_build_the_engine_in_the_requested_precision(built, precision) -> None:
    program, x = _program()
    _compile(program, x, precision)
    assert built.layers("CONVOLUTION") == [LOW[precision]]
    assert built.layers("ACTIVATION") == [LOW[precision]]
    assert built.networks[0][1] > 100_000  # a serialized engine came out of the builder


def test_strongly_typed_tensorrt_ignores_builder_precision(built) -> None:
    """Why RTX gets autocast on 2.10-2.12: the standard flavour's fp16 call builds an FP32 engine."""
    env = compat.detect()
    if tensorrt_api.compile_api(env.torch_tensorrt.raw).precision == "autocast":  # type: ignore[union-attr]
        pytest.skip("2.13+ has no builder-precision mechanism: autocast is the only one")
    program, x = _program()
    plan = tensorrt_api.translate(env.torch_tensorrt.raw, precision="fp16")  # type: ignore[union-attr]
    ttrt = importlib.import_module("torch_tensorrt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ttrt.dynamo.compile(program, [x], min_block_size=1, **plan.resolved_kwargs())
        except (RuntimeError, AssertionError):  # the engine cannot be deserialized without a GPU
            if torch.cuda.is_available():
                raise
    assert any("Strongly typed is enabled by default" in str(w.message) for w in caught)
    assert built.layers("CONVOLUTION") == ["FLOAT"]  # fp16 silently lost


def test_cp1_compile_leaves_the_callers_program_intact(built) -> None:
    program, x = _program()
    before = [(n.op, str(n.target)) for n in program.graph.nodes]
    _compile(program, x, "fp16", fixes=active("compile", "hybrid").without("CP-1", "CO-4"))  # CO-4 copies too
    mutated = [(n.op, str(n.target)) for n in program.graph.nodes]
    assert mutated != before  # the upstream defect: lowering rewrote the caller's graph
    assert program.module()(x).dtype == torch.float16

    program, x = _program()
    _compile(program, x, "fp16")
    assert [(n.op, str(n.target)) for n in program.graph.nodes] == before
    assert program.module()(x).dtype == torch.float32
    assert len(built.networks) == 2  # both compiles reached the builder
