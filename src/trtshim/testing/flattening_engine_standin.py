"""A stand-in for ``tensorrt::Engine`` as AOTInductor needs it: a TorchBind class that flattens.

AOTInductor packages a program holding engine objects only where the engine's class has
``__obj_flatten__`` and a fake class with ``__obj_unflatten__`` (torch_tensorrt registers both for
``tensorrt::Engine`` from 2.8). No class shipped in torch wheels flattens, so this one is built here:
``trtshim_flat_standin::Engine`` (C++, compiled with torch's own extension builder against the installed
wheel, ~20 s once per torch, cached) holds a conv's weight and bias, and
``trtshim_flat_standin::execute_engine(Tensor[] inputs, Engine engine) -> Tensor[]`` runs that conv in its
C++ CPU kernel, so AOTInductor's C++ runtime calls it through the dispatcher as it calls TensorRT's.

``load()`` builds (or reuses) the library and registers the fake class and the op's fake; importing
this module does it too (a process that loads a saved package names this module in ``allow_imports``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import torch

NAMESPACE = "trtshim_flat_standin"
QUALNAME = f"{NAMESPACE}::execute_engine"

SOURCE = r"""
#include <torch/custom_class.h>
#include <torch/library.h>
#include <ATen/ATen.h>

struct FlatteningEngine : torch::CustomClassHolder {
  at::Tensor weight;
  at::Tensor bias;
  FlatteningEngine(at::Tensor w, at::Tensor b) : weight(std::move(w)), bias(std::move(b)) {}
};

static std::vector<at::Tensor> execute_engine(std::vector<at::Tensor> inputs,
                                              c10::intrusive_ptr<FlatteningEngine> engine) {
  return {at::conv2d(inputs[0], engine->weight, engine->bias, 1, 1)};
}

TORCH_LIBRARY(trtshim_flat_standin, m) {
  m.class_<FlatteningEngine>("Engine")
      .def(torch::init<at::Tensor, at::Tensor>())
      .def("__obj_flatten__",
           [](const c10::intrusive_ptr<FlatteningEngine>& self) {
             return std::make_tuple(std::make_tuple(std::string("weight"), self->weight),
                                    std::make_tuple(std::string("bias"), self->bias));
           })
      .def_pickle(
          [](const c10::intrusive_ptr<FlatteningEngine>& self) {
            return std::vector<at::Tensor>{self->weight, self->bias};
          },
          [](std::vector<at::Tensor> state) {
            return c10::make_intrusive<FlatteningEngine>(state[0], state[1]);
          });
  m.def("execute_engine(Tensor[] inputs, __torch__.torch.classes.trtshim_flat_standin.Engine engine) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(trtshim_flat_standin, CPU, m) { m.impl("execute_engine", execute_engine); }
"""

_lock = threading.Lock()
_loaded = False


def _build_folder() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(root, "trtshim", f"flat-standin-torch-{torch.__version__}")
    os.makedirs(folder, exist_ok=True)
    return folder


def load() -> None:
    """Build (or reuse) the library, load it, register the fake class and the op's fake (once)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        from torch.utils.cpp_extension import load_inline

        load_inline(
            name=NAMESPACE, cpp_sources=[SOURCE], is_python_module=False, build_directory=_build_folder(), verbose=False
        )

        @torch._library.register_fake_class(f"{NAMESPACE}::Engine")
        class FakeEngine:
            def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
                self.weight, self.bias = weight, bias

            @classmethod
            def __obj_unflatten__(cls, flattened: Any) -> FakeEngine:
                return cls(**dict(flattened))

        @torch.library.register_fake(QUALNAME)
        def _fake(inputs: list[torch.Tensor], engine: Any) -> list[torch.Tensor]:
            return [torch.empty_like(inputs[0])]  # a fake reads no engine state: the engine keeps the shape

        from trtshim.compat.programs.custom_ops import remember_origin

        remember_origin(QUALNAME, __name__)
        _loaded = True


def make_engine(conv: torch.nn.Conv2d) -> Any:
    """An engine object running ``conv`` (3x3, padding 1, as many channels out as in: shape-preserving)."""
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.bias is not None
    assert conv.in_channels == conv.out_channels
    load()
    return torch.classes.trtshim_flat_standin.Engine(conv.weight.detach().clone(), conv.bias.detach().clone())


class HybridNet(torch.nn.Module):
    """The shape of a Torch-TensorRT hybrid module: weighted layers in PyTorch around an engine call."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.inner = torch.nn.Conv2d(8, 8, 3, padding=1)  # what the engine runs
        self.tail = torch.nn.Conv2d(8, 4, 3, padding=1)
        self.engine = make_engine(self.inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.trtshim_flat_standin.execute_engine([torch.relu(self.head(x))], self.engine)[0]
        return self.tail(torch.relu(y))

    def eager(self, x: torch.Tensor) -> torch.Tensor:
        """The same computation without the engine."""
        return self.tail(torch.relu(self.inner(torch.relu(self.head(x)))))


load()
