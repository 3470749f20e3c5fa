"""The input contract: a CompiledModule (compiled or loaded) refuses what torch's own round trip refuses,
binds inputs the way torch binds them, and handles unbounded dims. Each defect of issue 10 has a test
here that fails without its fix; torch's behaviour is the reference, measured in the same test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.export import Dim

from trtshim import compat, errors
from trtshim.compat.artifact.manifest import format_manifest, read_manifest
from trtshim.compat.call.input_specs import bound_of
from trtshim.compat.gates import requires
from trtshim.testing import conformance


def assert_conforms(model: nn.Module, ours: nn.Module, ref: Any, *args: Any, **kwargs: Any) -> None:
    """trtshim refuses what torch refuses, and never returns a result that differs from torch's."""
    verdict = conformance.compare(model, ours, ref, args, kwargs)
    assert not verdict.failed, verdict.detail


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, k: Any) -> torch.Tensor:
        return self.lin(x) * (2.0 if k is True else 0.5 if k is False else k)


@pytest.mark.parametrize(("compiled_with", "called_with"), [(3, 5), (True, False), (0.5, 1.5), (3, 3.0)])
@pytest.mark.parametrize("as_keyword", [False, True])
def test_a_changed_non_tensor_input_is_refused(tmp_path: Path, compiled_with, called_with, as_keyword) -> None:
    torch.manual_seed(0)
    model, x = Scaled().eval(), torch.randn(2, 4)
    args, kwargs = ((x,), {"k": compiled_with}) if as_keyword else ((x, compiled_with), {})
    compiled = compat.compile(model, args, example_kwargs=kwargs, backend="export")
    loaded, ref, _ = conformance.save_and_load(compiled, tmp_path / "k.pt2")  # torch 2.2: loaded is None
    call_args, call_kwargs = ((x,), {"k": called_with}) if as_keyword else ((x, called_with), {})
    for ours in (m for m in (compiled, loaded) if m is not None):
        with pytest.raises(errors.InputMismatchError, match=r"\(k\) was compiled for the value"):
            ours(*call_args, **call_kwargs)
        assert_conforms(model, ours, ref, *call_args, **call_kwargs)
        assert_conforms(model, ours, ref, *args, **kwargs)  # the compiled value still runs
    assert compiled.input_specs[1].describe() == f"{type(compiled_with).__name__} = {compiled_with!r}"


class Pair(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * 2 + y.sum(dim=1, keepdim=True)


def _pair(dynamic: dict[str, Any]) -> tuple[nn.Module, compat.CompiledModule, Any]:
    model = Pair()
    compiled = compat.compile(model, (torch.randn(3, 1), torch.randn(3, 5)), backend="export", dynamic_shapes=dynamic)
    return model, compiled, conformance.Reference(compiled.program)


def test_a_dynamic_dim_outside_its_range_is_refused(tmp_path: Path) -> None:
    batch = Dim("batch", min=2, max=8)
    model, compiled, ref = _pair({"x": {0: batch}, "y": {0: batch}})
    loaded = compat.load(compat.save(compiled, tmp_path / "r.pt2"))
    for ours in (compiled, loaded):
        with pytest.raises(errors.InputMismatchError, match=r"outside the range \[2, 8\] of Dim 'batch'"):
            ours(torch.randn(12, 1), torch.randn(12, 5))
        for n in (1, 2, 5, 8, 9, 12):
            assert_conforms(model, ours, ref, torch.randn(n, 1), torch.randn(n, 5))


def test_inputs_sharing_a_dim_must_agree() -> None:
    batch = Dim("batch", max=64)
    model, compiled, ref = _pair({"x": {0: batch}, "y": {0: batch}})
    with pytest.raises(errors.InputMismatchError, match="Dim 'batch' is 4 in an earlier input"):
        compiled(torch.randn(4, 1), torch.randn(6, 5))
    assert_conforms(model, compiled, ref, torch.randn(4, 1), torch.randn(6, 5))


def test_a_derived_dim_is_checked_like_torch_does() -> None:
    class Halves(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x[::2] + y

    if requires("torch<2.4"):
        pytest.skip("torch < 2.4 has no derived Dims (2 * Dim)")
    half = Dim("half", min=2, max=16)
    model = Halves()
    compiled = compat.compile(
        model, (torch.randn(8, 3), torch.randn(4, 3)), backend="export", dynamic_shapes={"x": {0: 2 * half}, "y": {0: half}}
    )
    ref = conformance.Reference(compiled.program)
    for nx, ny in ((12, 6), (12, 5), (13, 6), (40, 20), (2, 1)):
        assert_conforms(model, compiled, ref, torch.randn(nx, 3), torch.randn(ny, 3))


def test_unbounded_dims_compile_save_and_load(tmp_path: Path) -> None:
    batch, width = Dim("batch"), Dim("width", max=16)  # no max: the most common dynamic shape
    model, compiled, ref = _pair({"x": {0: batch}, "y": {0: batch, 1: width}})
    x_spec = compiled.input_specs[0]
    assert x_spec.dynamic[0].max is None and x_spec.dynamic[0].dim == "batch"
    path = compat.save(compiled, tmp_path / "unbounded.pt2")
    manifest, _ = read_manifest(path)
    assert manifest is not None
    dims = {d["dim"]: d for d in manifest["inputs"][1]["dynamic"]}
    assert dims["batch"]["max"] is None and dims["width"]["max"] == 16
    assert "[batch, width]" in format_manifest(manifest) and "batch in [" in format_manifest(manifest)
    loaded = compat.load(path)
    assert loaded.input_specs[1].dynamic[0].dim == "batch"  # the user's names survive the round trip
    for n in (1, 2, 7, 300):
        assert_conforms(model, loaded, ref, torch.randn(n, 1), torch.randn(n, 5))
    # an ExportedProgram and a plain torch.export archive with an unbounded dim
    compat.save(compiled.program, tmp_path / "from_ep.pt2")
    torch.export.save(compiled.program, tmp_path / "plain.pt2")
    with pytest.warns(errors.ProvenanceWarning):
        plain = compat.load(tmp_path / "plain.pt2")
    assert plain.input_specs[0].dynamic[0].max is None
    assert_conforms(model, plain, ref, torch.randn(9, 1), torch.randn(9, 5))


@pytest.mark.requires("torch>=2.3")  # 2.2 keeps engine objects inline: test_seed_scenario covers it
def test_a_hybrid_graph_with_an_unbounded_batch(tmp_path: Path) -> None:
    from trtshim.testing.engine_standin import make_hybrid, make_seed_model

    model, engine = make_seed_model()
    x = torch.randn(2, 3, 8, 8)
    dynamic = {"x": {0: Dim("batch")}}
    hybrid = make_hybrid(model, engine, (x,), dynamic_shapes=dynamic)
    path = compat.save(hybrid, tmp_path / "seed.pt2", example_inputs=(x,))
    manifest, _ = read_manifest(path)
    (torch_range,) = torch.export.export(model, (x,), dynamic_shapes=dynamic).range_constraints.values()
    batch = next(n for n in hybrid.graph.nodes if n.op == "placeholder").meta["val"].shape[0].node
    refined = batch.shape_env.var_to_range[batch.expr]  # torch 2.3's strict export learns batch <= 15 for convs
    assert manifest is not None
    assert manifest["inputs"][0]["dynamic"][0]["max"] in (bound_of(torch_range.upper), bound_of(refined.upper))
    loaded = compat.load(path)
    with torch.inference_mode():
        for n in (2, 5, 15):
            xn = torch.randn(n, 3, 8, 8)
            assert torch.equal(loaded(xn), model(xn))


def test_keywords_bind_by_name_in_any_order(tmp_path: Path) -> None:
    class Keywords(nn.Module):
        def forward(self, x: torch.Tensor, *, a: torch.Tensor, b: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
            return (x * a - b) * gain

    model = Keywords()
    x, a, b = torch.randn(3), torch.randn(3), torch.randn(3)
    compiled = compat.compile(model, (x,), example_kwargs={"a": a, "b": b, "gain": 2.0}, backend="export")
    loaded, ref, _ = conformance.save_and_load(compiled, tmp_path / "kw.pt2")  # torch 2.2: loaded is None
    for ours in (m for m in (compiled, loaded) if m is not None):
        assert_conforms(model, ours, ref, x, gain=2.0, b=b, a=a)
        assert_conforms(model, ours, ref, x, b=b, a=a, gain=2.0)
        assert_conforms(model, ours, ref, x, a=a, b=b, gain=3.0)  # a changed keyword value
        assert_conforms(model, ours, ref, x, a=a, gain=2.0)  # a missing keyword
        assert_conforms(model, ours, ref, x, a, b=b, gain=2.0)  # positional instead of keyword
        with pytest.raises(errors.InputMismatchError, match=r"keyword input\(s\) \['a', 'gain'\], compiled for"):
            ours(x, a=a, gain=2.0)


def test_nested_dicts_bind_by_key() -> None:
    class Nested(nn.Module):
        def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            return inputs["p"] * 3 - inputs["q"]

    model = Nested()
    p, q = torch.randn(2), torch.randn(2)
    compiled = compat.compile(model, ({"p": p, "q": q},), backend="export")
    ref = conformance.Reference(compiled.program)
    assert_conforms(model, compiled, ref, {"q": q, "p": p})
    assert_conforms(model, compiled, ref, {"p": p})


def test_construction_is_linear_in_the_tensor_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a CompiledModule walks its parameters a fixed number of times, not once per tensor
    (it rebuilt the set of names per tensor: 4.2 s at 3,200 tensors; benchmarks/construction.py)."""

    class Many(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(n))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = layer(x)
            return x

    model = Many(60)
    compiled = compat.compile(model, (torch.randn(1, 2),), backend="export")
    walks = []
    original = nn.Module.named_parameters

    def counted(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        walks.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nn.Module, "named_parameters", counted)
    rebuilt = compat.CompiledModule(compiled.program, backend="export", environment=compiled.environment)
    assert len(walks) <= 2, f"{len(walks)} walks over the parameters for 120 tensors"
    x = torch.randn(1, 2)
    assert torch.equal(rebuilt(x), model(x))


LOAD_DETECTION = """
import sys, torch, warnings
warnings.simplefilter("ignore")
from trtshim import compat, errors
allow = sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] else None
try:
    m = compat.load(sys.argv[1], allow_imports=allow)
except errors.TrtShimError as exc:
    print("refused", type(exc).__name__, exc.reason, "|", exc.hint)
    sys.exit(0)
out = m(torch.ones(2, 4))
print("loaded", type(out).__module__, type(out).__name__, tuple(out.boxes.shape))
"""


def test_registered_pytree_outputs_name_their_module(tmp_path: Path) -> None:
    """A fresh process that has not imported the output type's module gets one typed error naming it
    (it got a generic ArtifactError with torch's log); with allow_imports the module is imported."""
    import os

    from conftest import run_python
    from pytree_outputs import Detector

    torch.manual_seed(0)
    compiled = compat.compile(Detector().eval(), (torch.randn(2, 4),), backend="export")
    path = compat.save(compiled, tmp_path / "det.pt2")
    manifest, _ = read_manifest(path)
    assert manifest is not None
    assert manifest["pytree_types"] == [
        {"type": "pytree_outputs.Detection", "module": "pytree_outputs", "serialized_name": "pytree_outputs.Detection"}
    ]
    plain = tmp_path / "plain.pt2"
    torch.export.save(compiled.program, plain)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (os.path.dirname(__file__), os.environ.get("PYTHONPATH")) if p)}
    script = tmp_path / "child.py"
    script.write_text(LOAD_DETECTION)
    for artifact in (path, plain):
        refused = run_python(f"import runpy, sys; sys.argv = ['x', {str(artifact)!r}]; runpy.run_path({str(script)!r})", env=env)
        assert refused.returncode == 0, refused.stderr[-2000:]
        assert refused.stdout.startswith("refused MissingTypeError"), refused.stdout
        assert "pytree_outputs" in refused.stdout.split("|")[1]  # the hint names the module to import
        assert "was imported" not in refused.stdout
    loaded = run_python(
        f"import runpy, sys; sys.argv = ['x', {str(path)!r}, 'pytree_outputs']; runpy.run_path({str(script)!r})",
        env=env,
    )
    assert loaded.stdout.strip() == "loaded pytree_outputs Detection (2, 4)", loaded.stdout + loaded.stderr[-2000:]
