"""A registered pytree output type, defined the way Hugging Face defines ``ModelOutput``s: a class whose
module registers it (serialized name ``<module>.<class>``) when the module is imported."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils import _pytree as pytree


@dataclass
class Detection:
    boxes: torch.Tensor
    scores: torch.Tensor


def _flatten(d: Detection) -> tuple[list[torch.Tensor], None]:
    return [d.boxes, d.scores], None


def _unflatten(values: list[torch.Tensor], _: None) -> Detection:
    return Detection(*values)


def _flatten_with_keys(d: Detection) -> tuple[list[tuple[pytree.KeyEntry, torch.Tensor]], None]:
    return [(pytree.GetAttrKey("boxes"), d.boxes), (pytree.GetAttrKey("scores"), d.scores)], None


_register = getattr(pytree, "register_pytree_node", None) or pytree._register_pytree_node
try:
    _register(
        Detection,
        _flatten,
        _unflatten,
        serialized_type_name=f"{__name__}.Detection",
        flatten_with_keys_fn=_flatten_with_keys,
    )
except TypeError:  # torch 2.2 has no flatten_with_keys_fn
    _register(Detection, _flatten, _unflatten, serialized_type_name=f"{__name__}.Detection")


class Detector(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> Detection:
        y = self.head(x)
        return Detection(boxes=y[:, :4], scores=y[:, 4].sigmoid())
