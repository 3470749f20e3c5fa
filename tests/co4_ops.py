"""Custom ops with the argument shapes CO-4 is about (defined through trtshim's facade)."""

from __future__ import annotations

import torch

from trtshim.compat import custom_op

SCALE = "(Tensor x, float k=1.0, *, float bias=0.0) -> Tensor"  # defaulted, and keyword-only
MIX = "(Tensor x, float k) -> Tensor"  # a required scalar


@custom_op("trtshim_co4::scale", mutates_args=(), schema=SCALE)
def scale(x: torch.Tensor, k: float = 1.0, *, bias: float = 0.0) -> torch.Tensor:
    return x * k + bias


@scale.register_fake
def _(x: torch.Tensor, k: float = 1.0, *, bias: float = 0.0) -> torch.Tensor:
    return torch.empty_like(x)


@custom_op("trtshim_co4::mix", mutates_args=(), schema=MIX)
def mix(x: torch.Tensor, k: float) -> torch.Tensor:
    return x * k


@mix.register_fake
def _(x: torch.Tensor, k: float) -> torch.Tensor:
    return torch.empty_like(x)


class Calls(torch.nn.Module):
    """One call of each shape: positional scalar, keyword-only scalar, defaults left out, required scalar."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.ops.trtshim_co4.scale(x, 2.0)
        b = torch.ops.trtshim_co4.scale(x, 3.0, bias=0.5)
        c = torch.ops.trtshim_co4.scale(x)
        d = torch.ops.trtshim_co4.mix(x, 4.0)
        return a + b + c + d


def exported_calls() -> tuple[torch.export.ExportedProgram, torch.Tensor]:
    x = torch.randn(2, 3)
    return torch.export.export(Calls(), (x,)), x


def op_calls(program: torch.export.ExportedProgram) -> list[torch.fx.Node]:
    return [n for n in program.graph.nodes if getattr(n.target, "namespace", None) == "trtshim_co4"]


# what each call must hand the plugin: (k, bias) or (k,)
EXPECTED = [{"k": 2.0, "bias": 0.0}, {"k": 3.0, "bias": 0.5}, {"k": 1.0, "bias": 0.0}, {"k": 4.0}]
