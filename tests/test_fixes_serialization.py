"""SE-3 and friends: upstream failure with the fix off on an affected torch, success with it on."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
import torch

from trtshim import compat
from trtshim.compat.programs import hybrid
from trtshim.fixes import active, by_id

ENV = compat.detect()


def _dynamic_graph() -> tuple[torch.fx.GraphModule, torch.Tensor]:
    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(5, 2)

        def forward(self, x):
            return self.lin(x).relu()

    x = torch.randn(3, 5)
    ep = torch.export.export(M(), (x,), dynamic_shapes={"x": {0: torch.export.Dim("b", min=2, max=64)}})
    try:
        gm = ep.module(check_guards=False)
    except TypeError:
        gm = ep.module()
    return gm, x


def _round_trip_and_run(ep, x):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(ep, buf)
        buf.seek(0)
        loaded = torch.export.load(buf)
    return compat.CompiledModule(loaded, backend="hybrid", environment=ENV)(x)


def _empty_ranges() -> tuple[torch.export.ExportedProgram, torch.Tensor]:
    """A dynamic-batch program as the legacy upstream exporter wrote it: ``range_constraints={}``."""
    gm, x = _dynamic_graph()
    ep = hybrid.export_hybrid(gm, (x,))
    ep._range_constraints = {}
    return ep, x


def test_hybrid_exporter_keeps_range_constraints() -> None:
    gm, x = _dynamic_graph()
    fixed = hybrid.export_hybrid(gm, (x,))
    ((low, high),) = [(int(r.lower), int(r.upper)) for r in fixed.range_constraints.values()]
    assert (low, high) in ((2, 64),)
    assert _round_trip_and_run(fixed, torch.randn(7, 5)).shape == (7, 2)


@pytest.mark.requires(*by_id("SE-3").requirements)
def test_se3_empty_ranges_fail_to_load_upstream() -> None:
    broken, _ = _empty_ranges()
    with pytest.raises(KeyError, match="s0"):
        _round_trip_and_run(broken, torch.randn(7, 5))


@pytest.mark.requires("torch>=2.6")
def test_se3_newer_torch_rebuilds_ranges_itself() -> None:
    assert not by_id("SE-3").matches(ENV)[0]
    broken, _ = _empty_ranges()
    assert _round_trip_and_run(broken, torch.randn(7, 5)).shape == (7, 2)


def test_se3_save_repairs_a_program_with_empty_ranges(tmp_path) -> None:
    broken, _ = _empty_ranges()
    path = compat.save(broken, tmp_path / "p.pt2")
    loaded = compat.load(path)
    assert loaded(torch.randn(9, 5)).shape == (9, 2)
    applied = {f["id"] for f in loaded.manifest["fixes"] if f["applied"]}
    assert ("SE-3" in applied) is by_id("SE-3").matches(ENV)[0]


def _with_engine(saved, tmp_path, engine: dict, name: str = "engine.pt2"):
    from trtshim.testing.rewrite import rewrite_manifest

    return rewrite_manifest(saved, tmp_path / f"{Path(saved).stem}-{name}", lambda m: m.update(engine=engine))


def test_se6_engine_abi_is_checked_before_deserializing(tmp_path, small_cnn, example, monkeypatch) -> None:
    from trtshim import errors
    from trtshim.compat.artifact import loading
    from trtshim.compat.environment import Environment
    from trtshim.compat.versions import PackageVersion
    from trtshim.fixes.se6_engine_abi import check_engine

    saved = compat.save(compat.compile(small_cnn, (example,), backend="export"), tmp_path / "m.pt2")
    engine = {
        "torch_tensorrt": "2.8.0",
        "flavour": "torch-tensorrt",
        "tensorrt": "10.12.0.36",
        "abi": "7",
        "version_compatible": False,
        "hardware_compatible": False,
    }
    path = _with_engine(saved, tmp_path, engine)
    deserialized = []
    monkeypatch.setattr(loading, "_deserialize", lambda *a: deserialized.append(a))
    env = compat.detect()
    if env.torch_tensorrt is None:
        with pytest.raises(
            errors.IncompatibleArtifactError, match="torch_tensorrt is not installed here"
        ) as info:
            compat.load(path)
        assert "torch-tensorrt==2.8.0" in info.value.hint
    other = Environment(
        env.python, env.platform, env.torch, PackageVersion("torch-tensorrt", "2.11.0"), env.tensorrt
    )
    with pytest.raises(errors.IncompatibleArtifactError, match="engine ABI 7.*engine ABI 8"):
        check_engine({"engine": engine}, other)
    same = Environment(
        env.python, env.platform, env.torch, PackageVersion("torch-tensorrt", "2.10.0"), env.tensorrt
    )
    with pytest.warns(errors.ArtifactCompatibilityWarning, match="not version-compatible"):
        check_engine({"engine": engine}, same)  # same ABI group (7), other TensorRT: a warning
    assert deserialized == []


def test_se6_engines_run_only_on_the_compute_capability_they_were_built_for(monkeypatch) -> None:
    """The manifest records the device engines were built for; a load elsewhere is refused before
    deserializing unless the engines are hardware-compatible (as the builder applied it)."""
    from trtshim import errors
    from trtshim.fixes.se6_engine_abi import _check_device

    built = {"device": {"name": "NVIDIA H200", "compute_capability": "9.0"}, "hardware_compatible": False}
    _check_device({"device": None})  # manifests of engines built without a recorded device
    _check_device({**built, "hardware_compatible": True})
    if not torch.cuda.is_available():
        with pytest.raises(errors.IncompatibleArtifactError, match="built for NVIDIA H200.*no CUDA device"):
            _check_device(built)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA RTX 4090")
    for capability, refused in (((8, 9), True), ((9, 0), False)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        if refused:
            with pytest.raises(errors.IncompatibleArtifactError, match=r"compute capability 9.0 .*is 8.9") as info:
                _check_device(built)
            assert "on_mismatch='recompile'" in info.value.hint
        else:
            _check_device(built)


def test_portable_artifact_recompiles_from_its_source(tmp_path, small_cnn, example) -> None:
    """An artifact whose engines cannot run here, carrying its source program: refused by default,
    rebuilt on this stack with on_mismatch="recompile" (announced with our warning)."""
    from trtshim import errors

    compiled = compat.compile(small_cnn, (example,), backend="export")
    lean = compat.save(compiled, tmp_path / "lean.pt2")
    portable = compat.save(compiled, tmp_path / "portable.pt2", include_source=True)
    size_lean, size_portable = (
        (tmp_path / "lean.pt2").stat().st_size,
        (tmp_path / "portable.pt2").stat().st_size,
    )
    assert size_portable > size_lean
    # the source is stored once, as bytes (base64 text made it ~2.3x); here it is the same program
    assert size_portable / size_lean < 2.1, (size_lean, size_portable)
    from trtshim.compat.artifact.manifest import format_manifest, read_manifest

    shown = format_manifest(read_manifest(portable)[0], size_portable)  # trtshim inspect
    assert f"stored as bytes   file {size_portable / (size_portable - read_manifest(portable)[0]['source']['bytes']):.2f}x" in shown
    with torch.inference_mode():  # torch's own reader takes the file, source member and all
        assert torch.equal(torch.export.load(portable).module()(example), small_cnn(example))
    engine = {
        "torch_tensorrt": "1.0.0",
        "flavour": "torch-tensorrt",
        "tensorrt": "0",
        "abi": "0",
        "version_compatible": False,
        "hardware_compatible": False,
    }
    path = _with_engine(portable, tmp_path, engine)
    with pytest.raises(errors.IncompatibleArtifactError):
        compat.load(path)
    with pytest.warns(errors.BackendFallbackWarning, match="recompiling"):
        rebuilt = compat.load(path, on_mismatch="recompile")
    with torch.inference_mode():
        assert torch.equal(rebuilt(example), small_cnn(example))
    leaner = _with_engine(lean, tmp_path, engine)
    with pytest.raises(errors.IncompatibleArtifactError):  # nothing to rebuild from
        compat.load(leaner, on_mismatch="recompile")
    with pytest.raises(errors.OptionError):
        compat.load(path, on_mismatch="ignore")
    print(
        f"include_source size cost: {size_lean} -> {size_portable} bytes ({size_portable / size_lean:.2f}x)"
    )


def test_a_torch_log_record_that_cannot_be_formatted_does_not_fail_the_load(tmp_path) -> None:
    """torch 2.10 logs 'Loaded object of type %s after initial failure: %s' with one argument while
    loading 2.8/2.9 archives that hold a ScriptObject; load() listens to torch's log and must not break."""
    import logging

    from trtshim.compat.logs import Records

    handler = Records()
    record = logging.LogRecord("torch", logging.WARNING, __file__, 1, "a %s and %s", (1,), None)
    handler.emit(record)
    assert handler.messages == ["a %s and %s"]
    from trtshim.compat.artifact.loading import _WellFormedRecords

    assert _WellFormedRecords().filter(record) and record.getMessage() == "a %s and %s (1,)"


def test_co5_symint_crossing_an_engine_boundary(tmp_path) -> None:
    from trtshim.testing.engine_standin import make_hybrid, make_seed_model

    model, engine = make_seed_model()
    x = torch.randn(2, 3, 8, 8)
    gm = make_hybrid(model, engine, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=2, max=8)}})
    call = next(
        n for n in gm.graph.nodes if n.op == "call_module" and str(n.target).startswith("_run_on_acc")
    )
    placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
    with gm.graph.inserting_before(call):  # the batch size travels into the engine, as partitioners do
        size = gm.graph.call_function(torch.ops.aten.sym_size.int, (placeholder, 0))
    size.meta["val"] = placeholder.meta["val"].shape[0]
    call.args = (*call.args, size)
    gm.recompile()
    with torch.inference_mode():
        assert torch.equal(gm(x), model(x))  # eager hands the SymInt over as a 0-d tensor

    broken = hybrid.export_hybrid(gm, (x,), fixes=active("hybrid").without("CO-5"))
    with pytest.raises((RuntimeError, TypeError), match="Tensor"):  # a SymInt where Tensor[] is declared
        compat.CompiledModule(broken, backend="hybrid", environment=ENV)(x)
    fixed = hybrid.export_hybrid(gm, (x,))
    targets = [str(n.target) for n in fixed.graph.nodes if n.op == "call_function"]
    assert "aten.scalar_tensor.default" in targets
    path = compat.save(fixed, tmp_path / "co5.pt2")
    loaded = compat.load(path)
    x5 = torch.randn(5, 3, 8, 8)
    with torch.inference_mode():
        assert torch.equal(loaded(x5), model(x5))


GOLDEN = Path(__file__).parent / "data" / "golden"


def _golden_io(golden: Path) -> dict:
    return torch.load(golden.with_name(golden.name.replace(".pt2", ".io.pt")), weights_only=True)


@pytest.mark.requires(*by_id("SE-9").requirements)
def test_se9_torch_2_3_archives_load_on_torch_2_4() -> None:
    from trtshim.compat.artifact import legacy

    golden = GOLDEN / "2.3" / "plain_cnn.pt2"
    io_ = _golden_io(golden)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AssertionError):  # the upstream failure: torch's own loader
            torch.export.load(golden)
        with pytest.raises(AssertionError):  # the same with SE-9 left out of the load fixes
            torch.export.load(legacy.repaired(str(golden), active("load").without("SE-9")))
        loaded = compat.load(golden)
    assert torch.allclose(loaded(*io_["inputs"]), io_["outputs"], atol=1e-5)
    assert "SE-9" in loaded.fixes_applied


@pytest.mark.requires(*by_id("SE-7").requirements)
def test_se7_none_user_inputs_from_torch_2_3_load_on_torch_2_4() -> None:
    from trtshim.compat.artifact import legacy

    golden = GOLDEN / "2.3" / "none_input.pt2"
    io_ = _golden_io(golden)
    assert io_["inputs"][1] is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the upstream failure with SE-7 left out (SE-9's repair alone, so that 2.4 reads the file at all)
        broken = torch.export.load(legacy.repaired(str(golden), active("load").without("SE-7")))
        assert [n.name for n in broken.graph.nodes if n.op == "placeholder"][3] == "_unnamed"
        with pytest.raises(SyntaxError) as info:  # upstream: forward(self, arg1163_1, , arg1166_1, ...)
            broken.module()
        assert ", ," in (info.value.text or "")
        with pytest.raises(TypeError, match="takes 1 positional argument"):  # the program itself
            broken.graph_module(*io_["inputs"])
        loaded = compat.load(golden)
    assert torch.allclose(loaded(*io_["inputs"]), io_["outputs"], atol=1e-5)
    assert "SE-7" in loaded.fixes_applied


@pytest.mark.requires(*by_id("SE-10").requirements)
def test_se10_module_paths_with_commas_load_on_torch_2_2_and_2_3() -> None:
    from trtshim.compat.artifact import legacy

    line = ENV.torch.line  # type: ignore[union-attr]
    golden = GOLDEN / ("2.2" if line == "2.2" else "2.3") / "plain_cnn.pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for source in (golden, legacy.repaired(str(golden), active("load").without("SE-10"))):
            with pytest.raises(Exception, match="positional arguments but 4 were given|Failed deserializing"):
                torch.export.load(source)  # the upstream failure: torch's own loader, and SE-10 left out
        loaded = compat.load(golden)
    assert torch.allclose(loaded(*_golden_io(golden)["inputs"]), _golden_io(golden)["outputs"], atol=1e-5)


def _loaded_derived_program() -> tuple[torch.export.ExportedProgram, torch.export.ExportedProgram]:
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 4)

        def forward(self, x, y):
            return torch.relu(self.lin(x)).sum(0) + self.lin(y).sum(0)

    torch.manual_seed(0)
    b = torch.export.Dim("b", max=64)
    fresh = torch.export.export(Two().eval(), (torch.randn(4, 8), torch.randn(8, 8)), dynamic_shapes={"x": {0: b}, "y": {0: 2 * b}})
    buf = io.BytesIO()
    torch.export.save(fresh, buf)
    buf.seek(0)
    return fresh, torch.export.load(buf)


@pytest.mark.requires(*by_id("SE-11").requirements)
def test_se11_a_loaded_derived_dim_decomposes_before_dynamo_compile() -> None:
    """``dynamo.compile`` starts with ``run_decompositions``: torch's own fails on the loaded program, and
    passes after the ``compile.program`` hooks of this stack (SE-11 among them) ran on it."""
    from trtshim.compat.backends.tensorrt import CompileJob

    fresh, loaded = _loaded_derived_program()
    with pytest.raises(AssertionError):
        loaded.run_decompositions()  # the upstream failure
    _, loaded = _loaded_derived_program()
    job = CompileJob(loaded, "2.14.0")
    for hook in active("compile").hooks("compile.program"):
        hook(job)
    decomposed = job.program.run_decompositions()
    x, y = torch.randn(5, 8), torch.randn(10, 8)
    torch.testing.assert_close(decomposed.module()(x, y), fresh.module()(x, y))
    assert set(map(str, job.program.range_constraints)) == set(map(str, loaded.range_constraints))


@pytest.mark.requires("torch>=2.4", "torch<2.7")
def test_se11_older_torch_decomposes_a_loaded_derived_dim_itself() -> None:
    _, loaded = _loaded_derived_program()
    assert not by_id("SE-11").matches(ENV)[0]
    loaded.run_decompositions()
