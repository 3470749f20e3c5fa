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
from collections.abc import Callable
from typing import Any

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
    saved: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {}  # name -> (what to save, io, save kwargs)
    for name, make in ARTIFACTS.items():
        model, args, kw = make()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compiled = compat.compile(model, args, backend="export", **kw)
                _without_stack_traces(compiled.program.graph_module)
                compat.save(compiled, os.path.join(folder, f"{name}.pt2"))
            with torch.inference_mode():
                io = {"inputs": args, "outputs": model(*args)}
            torch.save(io, os.path.join(folder, f"{name}.io.pt"))
            saved[name] = (compiled, io, {})
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
            io = {"inputs": (x,), "outputs": model(x)}
        torch.save(io, os.path.join(folder, "seed_hybrid.io.pt"))
        saved["seed_hybrid"] = (hybrid, io, {"example_inputs": (x,)})
        results["seed_hybrid"] = "saved"
    except errors.TrtShimError as exc:
        results["seed_hybrid"] = f"not saved: {type(exc).__name__}: {exc.reason[:120]}"
    results.update(_save_for_older(folder, saved))
    print(json.dumps({"torch": torch.__version__, "saved": results}))


def _older_lines() -> list[str]:
    """The torch minors older than this one that save(..., target_torch=) writes for."""
    try:
        from trtshim.compat.artifact.migrations import targets
    except ImportError:  # a trtshim without target_torch
        return []
    key = lambda line: tuple(int(x) for x in line.split("."))  # noqa: E731
    lines = [t for t in targets.schema_fields() if key(targets.OLDEST) <= key(t) < key(LINE)]
    return sorted(lines, key=key)


def _save_for_older(folder: str, saved: dict[str, tuple[Any, Any, dict[str, Any]]]) -> dict[str, str]:
    """Each saved artifact again with target_torch=T for every older T, in <folder>/for-T/; a refusal at
    save is recorded beside it (<name>.refused), for the loader of T to count."""
    results = {}
    for target in _older_lines():
        sub = os.path.join(folder, f"for-{target}")
        os.makedirs(sub, exist_ok=True)
        for name, (obj, io, kw) in saved.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    compat.save(obj, os.path.join(sub, f"{name}.pt2"), target_torch=target, **kw)
                torch.save(io, os.path.join(sub, f"{name}.io.pt"))
                results[f"{name}@{target}"] = "saved"
            except errors.TrtShimError as exc:
                with open(os.path.join(sub, f"{name}.refused"), "w") as fh:
                    fh.write(f"{type(exc).__name__}: {exc.reason}\n")
                results[f"{name}@{target}"] = f"refused: {type(exc).__name__}"
    return results


def load(root: str) -> None:
    table: dict[str, dict[str, str]] = {}
    for line in sorted(d for d in os.listdir(root) if not d.startswith("_")):
        folder = os.path.join(root, line)
        for fname in sorted(f for f in os.listdir(folder) if f.endswith(".pt2")):
            name = fname[:-4]
            table.setdefault(line, {})[name] = _try(
                os.path.join(folder, fname), os.path.join(folder, f"{name}.io.pt")
            )
        targeted = os.path.join(folder, f"for-{LINE}")  # written for this torch by a newer one (target_torch)
        if os.path.isdir(targeted):
            for fname in sorted(os.listdir(targeted)):
                name, ext = os.path.splitext(fname)
                if ext == ".pt2":
                    outcome = _try(os.path.join(targeted, fname), os.path.join(targeted, f"{name}.io.pt"))
                elif ext == ".refused":
                    with open(os.path.join(targeted, fname)) as fh:
                        outcome = "refused: " + fh.read().split(":", 1)[0] + " (at save)"
                else:
                    continue
                table.setdefault(line, {})[f"{name}@target"] = outcome
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
