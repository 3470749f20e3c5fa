"""Cross-version artifact check: save a fixed set of artifacts under one torch, load every set under another.

usage:
  python tools/artifacts.py save ROOT     # writes ROOT/<torch line>/<name>.pt2 (+ <name>.io.pt: inputs, outputs)
  python tools/artifacts.py load ROOT     # loads every ROOT/*/<name>.pt2, writes ROOT/_results/<line>.json

Each load is classified: "ok" (loads and matches what the saving torch computed), "refused: <our error>"
(a TrtShimError with its reason), "mismatch" (loads but differs) or "crashed: <exception>" (anything
else: a bug to fix).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from typing import Any, Callable

import torch

from trtshim import compat, errors

LINE = ".".join(torch.__version__.split(".")[:2])
ALLOW = ["trtshim.demo", "trtshim.testing.engine_standin"]


def _cnn() -> tuple[Any, tuple[torch.Tensor, ...], dict[str, Any]]:
    from trtshim import demo

    model = demo.DemoNet().eval()
    torch.manual_seed(0)
    return model, (torch.randn(2, 3, 16, 16),), {}


def _plain() -> tuple[Any, tuple[torch.Tensor, ...], dict[str, Any]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 5),
    ).eval()
    return model, (torch.randn(2, 3, 8, 8),), {}


def _dynamic() -> tuple[Any, tuple[torch.Tensor, ...], dict[str, Any]]:
    model, args, _ = _plain()
    return model, args, {"dynamic_shapes": ({0: torch.export.Dim("batch", min=2, max=8)},)}


class _NoneInput(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor, y: Any = None, z: Any = None) -> torch.Tensor:
        return self.lin(x) * 2 if y is None else self.lin(x) + y


def _none_input() -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    torch.manual_seed(0)
    return _NoneInput().eval(), (torch.randn(2, 3), None, torch.randn(2, 3)), {}


ARTIFACTS: dict[str, Callable[[], tuple[Any, tuple[Any, ...], dict[str, Any]]]] = {
    "plain_cnn": _plain,
    "dynamic_batch": _dynamic,
    "custom_op": _cnn,
    "none_input": _none_input,  # a None user input (SE-7)
}


def _without_stack_traces(gm: torch.fx.GraphModule) -> None:
    """Drop the source locations torch.export records: they name the saving machine's paths."""
    for module in gm.modules():
        if isinstance(module, torch.fx.GraphModule):
            for node in module.graph.nodes:
                node.meta.pop("stack_trace", None)


def save(root: str) -> None:
    from trtshim.testing.engine_standin import make_hybrid, make_seed_model

    folder = os.path.join(root, LINE)
    os.makedirs(folder, exist_ok=True)
    results = {}
    for name, make in ARTIFACTS.items():
        model, args, kw = make()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compiled = compat.compile(model, args, backend="export", **kw)
                _without_stack_traces(compiled.program.graph_module)
                compat.save(compiled, os.path.join(folder, f"{name}.pt2"))
            with torch.inference_mode():
                torch.save({"inputs": args, "outputs": model(*args)}, os.path.join(folder, f"{name}.io.pt"))
            results[name] = "saved"
        except Exception as exc:
            results[name] = f"not saved: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    model, engine = make_seed_model()
    x = torch.randn(1, 3, 8, 8)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hybrid = make_hybrid(model, engine, (x,))
            _without_stack_traces(hybrid)
            compat.save(hybrid, os.path.join(folder, "seed_hybrid.pt2"), example_inputs=(x,))
        with torch.inference_mode():
            torch.save({"inputs": (x,), "outputs": model(x)}, os.path.join(folder, "seed_hybrid.io.pt"))
        results["seed_hybrid"] = "saved"
    except errors.TrtShimError as exc:
        results["seed_hybrid"] = f"not saved: {type(exc).__name__}: {exc.reason[:120]}"
    print(json.dumps({"torch": torch.__version__, "saved": results}))


def load(root: str) -> None:
    table: dict[str, dict[str, str]] = {}
    for line in sorted(d for d in os.listdir(root) if not d.startswith("_")):
        folder = os.path.join(root, line)
        for fname in sorted(f for f in os.listdir(folder) if f.endswith(".pt2")):
            name = fname[:-4]
            table.setdefault(line, {})[name] = _try(
                os.path.join(folder, fname), os.path.join(folder, f"{name}.io.pt")
            )
    os.makedirs(os.path.join(root, "_results"), exist_ok=True)
    with open(os.path.join(root, "_results", f"{LINE}.json"), "w") as fh:
        json.dump({"loader": torch.__version__, "line": LINE, "results": table}, fh, indent=1)
    print(json.dumps({"loader": LINE, "results": table}))


def _try(path: str, io_path: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = compat.load(path, allow_imports=ALLOW)
            io = (
                torch.load(io_path, weights_only=False)
                if "weights_only" in torch.load.__code__.co_varnames
                else torch.load(io_path)
            )
            with torch.inference_mode():
                out = module(*io["inputs"])
        return "ok" if torch.allclose(out, io["outputs"], atol=1e-5) else "mismatch"
    except errors.TrtShimError as exc:
        return f"refused: {type(exc).__name__}"
    except Exception as exc:
        traceback.print_exc()
        return f"crashed: {type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"


if __name__ == "__main__":
    {"save": save, "load": load}[sys.argv[1]](sys.argv[2])
