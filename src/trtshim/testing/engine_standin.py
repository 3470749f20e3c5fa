"""A stand-in for the TensorRT engine op, for machines where no TensorRT engine can run.

``trtshim_standin::execute_engine(Tensor[] inputs, <ScriptObject> engine) -> Tensor[]`` has the
shape of ``tensorrt::execute_engine``: a real ``torch.library`` op whose engine argument is a real
TorchBind ScriptObject. The "engine" is quantized conv packed params
(``torch.classes.quantized.Conv2dPackedParamsBase``, built into every torch wheel), and the kernel
runs that conv. ``EngineStandIn`` plays ``TorchTensorRTModule`` and ``make_hybrid`` plays
``torch_tensorrt.compile``: it exports a model, partitions it, and replaces one torch segment
with an engine call, so the graph has the exact shape of a Torch-TensorRT hybrid graph.

Importing this module registers the op (once per process).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import fx, nn

from trtshim.compat.programs.custom_ops import register_fake, remember_origin

NAMESPACE = "trtshim_standin"
ENGINE_CLASS = "__torch__.torch.classes.quantized.Conv2dPackedParamsBase"
QUALNAME = f"{NAMESPACE}::execute_engine"

_lib = torch.library.Library(NAMESPACE, "DEF")
_lib.define(f"execute_engine(Tensor[] inputs, {ENGINE_CLASS} engine) -> Tensor[]")


def _execute_engine(inputs: list[torch.Tensor], engine: Any) -> list[torch.Tensor]:
    weight, bias = engine.unpack()
    return [torch.nn.functional.conv2d(inputs[0], weight.dequantize(), bias, padding=1)]


_lib.impl("execute_engine", _execute_engine, "CompositeExplicitAutograd")


def _fake_execute_engine(inputs: list[torch.Tensor], engine: Any) -> list[torch.Tensor]:
    return [torch.empty_like(inputs[0])]  # the stand-in engine is a shape-preserving 3x3 conv


register_fake(QUALNAME, _fake_execute_engine)
remember_origin(QUALNAME, __name__)


def make_engine(conv: nn.Conv2d) -> tuple[Any, nn.Conv2d]:
    """Pack ``conv`` into an engine object; returns it and ``conv`` with exactly the weights the engine uses."""
    assert conv.in_channels == conv.out_channels and conv.padding == (1, 1), (
        "the stand-in engine is shape-preserving"
    )
    with warnings.catch_warnings():  # torch >= 2.13 deprecates quantized tensors; the stand-in needs one
        warnings.simplefilter("ignore", UserWarning)
        qweight = torch.quantize_per_tensor(conv.weight.detach(), 0.01, 0, torch.qint8)
    bias = conv.bias.detach() if conv.bias is not None else None
    packed = torch.ops.quantized.conv2d_prepack(qweight, bias, [1, 1], [1, 1], [1, 1], 1)
    with torch.no_grad():
        conv.weight.copy_(qweight.dequantize())
    return packed, conv


class EngineStandIn(nn.Module):
    """Plays ``TorchTensorRTModule``: holds an engine ScriptObject, calls the engine op in forward."""

    def __init__(self, engine: Any) -> None:
        super().__init__()
        self.engine = engine

    def trtshim_engine_call(self) -> tuple[Any, Any]:
        """(op, engine object): how trtshim's hybrid exporter inlines this module."""
        return torch.ops.trtshim_standin.execute_engine.default, self.engine

    def forward(self, *inputs: Any) -> torch.Tensor:
        # like TorchTensorRTModule, scalar (SymInt) inputs are handed to the engine as 0-d tensors
        tensors = [
            i if isinstance(i, torch.Tensor) else torch.scalar_tensor(i, dtype=torch.int64) for i in inputs
        ]
        return torch.ops.trtshim_standin.execute_engine(tensors, self.engine)[0]


class SeedModel(nn.Module):
    """The seed scenario: conv (+bias) + batchnorm, an "engine" segment, conv + an integer parameter."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.engine_conv = nn.Conv2d(channels, channels, 3, padding=1)  # becomes the engine
        self.conv3 = nn.Conv2d(channels, 2, 3, padding=1)
        self.steps = nn.Parameter(torch.tensor([2], dtype=torch.int64), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv1(x)))
        y = self.engine_conv(y)
        return self.conv3(torch.relu(y)) * self.steps


def make_seed_model(seed: int = 0) -> tuple[SeedModel, Any]:
    torch.manual_seed(seed)
    model = SeedModel().eval()
    mean, var = model.bn.running_mean, model.bn.running_var
    assert mean is not None and var is not None
    with torch.no_grad():
        mean.uniform_(-0.5, 0.5)
        var.uniform_(0.5, 2.0)
    engine, _ = make_engine(model.engine_conv)
    return model, engine


def make_hybrid(
    model: SeedModel, engine: Any, example: tuple[torch.Tensor, ...], **export_kwargs: Any
) -> fx.GraphModule:
    """Do what ``torch_tensorrt.compile`` does to ``model``: export, partition, swap one segment for an engine.

    The result is an ``fx.GraphModule`` whose top graph calls ``_run_on_gpu_0`` (torch ops, weights as
    ``get_attr`` inside it), ``_run_on_acc_1`` (the engine) and ``_run_on_gpu_2``: the layout of
    Torch-TensorRT's output, with the fake-tensor metadata of one export throughout.
    """
    from torch.fx.passes.utils.fuser_utils import fuse_by_partitions

    from trtshim.compat.serial import tracing_lock

    with tracing_lock():  # torch.export is not thread-safe; trtshim may be tracing in another thread
        ep = torch.export.export(model, example, **export_kwargs)
    try:
        gm = ep.module(check_guards=False)  # torch >= 2.9 would add a guards submodule to partition
    except TypeError:
        gm = ep.module()
    nodes = [n for n in gm.graph.nodes if n.op == "call_function"]
    in_engine = [n for n in nodes if _in_module(n, "engine_conv")]
    if not in_engine:
        raise RuntimeError("the engine segment was not found in the exported graph")
    first, last = nodes.index(in_engine[0]), nodes.index(in_engine[-1])
    segments: list[list[fx.Node]] = [nodes[:first], nodes[first : last + 1], nodes[last + 1 :]]
    for segment in segments:  # weights used by a segment live inside it, as in TRT's partitions
        members = set(segment)
        segment[:0] = [
            n for n in gm.graph.nodes if n.op == "get_attr" and n.users and all(u in members for u in n.users)
        ]
    try:
        fused = fuse_by_partitions(gm, [dict.fromkeys(s) for s in segments])
    except (TypeError, AttributeError):  # older torch takes lists
        fused = fuse_by_partitions(gm, segments)  # type: ignore[arg-type]
    calls = [n for n in fused.graph.nodes if n.op == "call_module" and n.target.startswith("fused_")]
    for index, node in enumerate(sorted(calls, key=lambda n: int(n.target.rsplit("_", 1)[-1]))):
        name = f"_run_on_acc_{index}" if index == 1 else f"_run_on_gpu_{index}"
        fused.add_module(name, EngineStandIn(engine) if index == 1 else fused.get_submodule(node.target))
        delattr(fused, node.target)
        node.target = name
    fused.graph.eliminate_dead_code()
    fused.delete_all_unused_submodules()
    fused.recompile()
    return fused


def _in_module(node: fx.Node, name: str) -> bool:
    for value in (node.meta.get("nn_module_stack") or {}).values():
        path = value[0] if isinstance(value, tuple) else value
        if str(path).split(".")[-1] == name or str(path) == name:
            return True
    return False
