"""Recorded = applied, through the real builder: what trtshim reads back of every engine
(``compat.backends.engine_builds``) equals what torch_tensorrt handed TensorRT (spied independently on
``IOptimizationProfile.set_shape`` and the builder config), profiles are trtshim's for every Dim kind,
fresh and loaded alike, and a flag the flavour drops is announced or refused.

Without a GPU the build succeeds and deserialization fails: each compile ends in the CompileError
that names the logged cause, after the builder has done its work."""

from __future__ import annotations

import importlib
import io
import warnings
from typing import Any

import pytest
import torch
from torch.export import Dim

from trtshim import compat, errors
from trtshim.compat import logs
from trtshim.compat.backends import tensorrt as tensorrt_backend
from trtshim.compat.backends.engine_builds import BuildLog


@pytest.fixture
def set_shapes(ttrt, monkeypatch) -> list[tuple[str, tuple, tuple, tuple]]:
    """Every ``IOptimizationProfile.set_shape`` call (name, min, opt, max), beside trtshim's own reading."""
    trt = importlib.import_module("tensorrt")
    calls: list[tuple[str, tuple, tuple, tuple]] = []
    original = trt.IOptimizationProfile.set_shape

    def spy(self: Any, name: str, low: Any, opt: Any, high: Any) -> Any:
        calls.append((name, tuple(low), tuple(opt), tuple(high)))
        return original(self, name, low, opt, high)

    monkeypatch.setattr(trt.IOptimizationProfile, "set_shape", spy)
    if not torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a, **k: (16 << 30, 16 << 30))
    return calls


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x))


def _build(model: Any, args: tuple, dynamic: Any = None, **options: Any) -> tuple[BuildLog, str]:
    """compile through the backend; (what the builder did, the CompileError's reason or 'built')."""
    log = BuildLog()
    try:
        tensorrt_backend.compile_program(
            model, args, {}, env=compat.detect(), dynamic_shapes=dynamic, precision="fp32",
            torch_executed_ops=(), options={"min_block_size": 1, **options}, builds=log,
        )
    except errors.CompileError as exc:
        if torch.cuda.is_available():
            raise
        return log, exc.reason
    return log, "built"


def _rebuild(program: torch.export.ExportedProgram, **options: Any) -> BuildLog:
    """Rebuild from a program saved and loaded back (what load(..., on_mismatch='recompile') does)."""
    buf = io.BytesIO()
    torch.export.save(program, buf)
    buf.seek(0)
    log = BuildLog()
    try:
        tensorrt_backend.compile_exported(
            torch.export.load(buf), env=compat.detect(), options={"min_block_size": 1, **options}, builds=log
        )
    except errors.CompileError as exc:
        if torch.cuda.is_available():
            raise
        assert "deserializeCudaEngine" in exc.reason, exc.reason  # the build itself succeeded
    return log


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x)).sum(0) + self.lin(y).sum(0)


def _shared(derived: bool) -> dict[str, Any]:
    b = Dim("b", max=32)
    return {"x": {0: b}, "y": {0: 2 * b if derived else b}}


#: kind -> (dynamic_shapes, y's rows in the example, [(min, opt, max) rows of each dynamic engine input])
KINDS = {
    "unbounded": (lambda: {"x": {0: Dim("b")}, "y": None}, 4, [(1, 4, 4096)]),
    "min only": (lambda: {"x": {0: Dim("b", min=3)}, "y": None}, 4, [(3, 4, 4096)]),
    "max only": (lambda: {"x": {0: Dim("b", max=64)}, "y": None}, 4, [(1, 4, 64)]),
    "bounded": (lambda: {"x": {0: Dim("b", min=2, max=16)}, "y": None}, 4, [(1, 4, 16)]),
    "shared": (lambda: _shared(False), 4, [(1, 4, 32), (1, 4, 32)]),
    "derived": (lambda: _shared(True), 8, [(1, 4, 32), (4, 8, 64)]),  # torch_tensorrt: 2 * b from b >= 2
}


def _example(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(4, 8), torch.randn(KINDS[kind][1], 8)


@pytest.mark.parametrize("kind", list(KINDS))
def test_profiles_are_ours_and_read_back_as_set(set_shapes, kind: str) -> None:
    """A static input beside the dynamic ones has no profile (before: reading one failed the build)."""
    dynamic, _, rows = KINDS[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.DimBoundWarning)
        log, outcome = _build(TwoInputs().eval(), _example(kind), dynamic())
    assert outcome == "built" or "deserializeCudaEngine" in outcome, outcome
    ((*profiles,),) = [b.profiles for b in log.builds]
    assert [(p.min, p.opt, p.max) for p in profiles] == [((lo, 8), (opt, 8), (hi, 8)) for lo, opt, hi in rows]
    assert set_shapes == [(p.name, p.min, p.opt, p.max) for p in profiles]  # recorded = what TensorRT got
    # what the call contract enforces: the Dim's range every engine input takes (y = 2b takes b >= 2)
    (dim,) = log.dims
    low, high = (rows[1][0] // 2, rows[1][2] // 2) if kind == "derived" else (rows[0][0], rows[0][2])
    assert (dim["dim"], dim["min"], dim["max"]) == ("b", low, high)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_rebuild_from_a_loaded_source_builds_the_same_profile(set_shapes, kind: str) -> None:
    """Before: a loaded unbounded dim built (0, 2, 0) and the rebuild failed in the builder; a loaded
    derived dim failed in torch's run_decompositions (SE-11)."""
    dynamic, _, _ = KINDS[kind]
    from trtshim.compat.backends import export as export_backend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.DimBoundWarning)
        first, _ = _build(TwoInputs().eval(), _example(kind), dynamic())
        source = export_backend.export(
            TwoInputs().eval(), _example(kind), {}, env=compat.detect(), dynamic_shapes=dynamic(),
            options={"ir": "training"},
        ).program
        tensorrt_backend.profiles.apply(source)  # what compile_exported did to the source it saves
        again = _rebuild(source)
    assert [b.profiles for b in again.builds] == [b.profiles for b in first.builds]
    assert all(b.nbytes for b in again.builds)


def test_requested_flags_are_read_back_and_a_dropped_one_is_announced(ttrt, set_shapes) -> None:
    env = compat.detect()
    with pytest.warns(errors.DroppedFlagWarning, match="without hardware_compatible=True") as caught:
        log, _ = _build(Net().eval(), (torch.randn(4, 8),), version_compatible=True, hardware_compatible=True)
    (build,) = log.builds
    applied = build.applied()
    if env.torch_tensorrt_flavour == "torch-tensorrt-rtx":  # TensorRT-RTX has no hardware compatibility
        assert applied["hardware_compatible"] is False and build.hardware_compatibility == "NONE"
    assert applied["version_compatible"] is True and "VERSION_COMPATIBLE" in build.flags
    assert not any("version_compatible" in str(w.message) for w in caught)
    record = tensorrt_backend.engine_record({"version_compatible": True, "hardware_compatible": True}, log)
    assert record["requested"]["hardware_compatible"] is True
    assert record["hardware_compatible"] is False and record["version_compatible"] is True


def test_a_dropped_flag_is_refused_on_request(ttrt, set_shapes) -> None:
    with pytest.raises(errors.CompileError, match="without hardware_compatible=True") as info:
        tensorrt_backend.compile_program(
            Net().eval(), (torch.randn(4, 8),), {}, env=compat.detect(), dynamic_shapes=None, precision="fp32",
            torch_executed_ops=(), options={"min_block_size": 1, "hardware_compatible": True, "on_dropped_flag": "refuse"},
        )
    assert "deserializeCudaEngine" not in info.value.reason  # the flag, not what came after it


def test_a_generic_builder_error_carries_tensorrts_logged_cause(ttrt) -> None:
    with logs.captured("torch_tensorrt [TensorRT Conversion Context]") as records:
        import logging

        logging.getLogger("torch_tensorrt [TensorRT Conversion Context]").error(
            "IOptimizationProfile::isValid: Error Code 4: API Usage Error (Invalid optimization profiles)"
        )
    exc = RuntimeError("TensorRT build_serialized_network returned None; engine build failed.")
    text = tensorrt_backend._cause(exc, records)
    assert text.startswith("RuntimeError: TensorRT build_serialized_network returned None")
    assert "logged cause: IOptimizationProfile::isValid: Error Code 4" in text


def test_the_engine_cache_stores_only_what_was_built(set_shapes, tmp_path) -> None:
    """Through the real builder: without a GPU the engine cannot be deserialized, so the build fails
    after TensorRT built the plan, and the cache stores nothing (a failed build is never an entry)."""
    from trtshim.compat.backends.engine_cache import SUFFIX, EngineCache, cached

    source = tensorrt_backend.export_source(
        Net().eval(), (torch.randn(4, 8),), {}, env=compat.detect(), dynamic_shapes=None, precision="fp32",
        options={"min_block_size": 1},
    )
    log = BuildLog()

    def build() -> Any:
        return tensorrt_backend.compile_exported(source.program, env=compat.detect(), options=source.options, builds=log)

    store = EngineCache(str(tmp_path))
    key = lambda: store.key(source.program, compat.detect(), tensorrt_backend.build_device(), how={})  # noqa: E731
    if torch.cuda.is_available():
        pytest.skip("engines deserialize here: the GPU session covers the cache's hits")
    with pytest.raises(errors.CompileError, match="deserializeCudaEngine"):
        cached(store, key, build)
    assert len(log.builds) == 1 and log.builds[0].nbytes  # TensorRT built a plan
    assert not list(tmp_path.glob(f"*{SUFFIX}")) and not list(tmp_path.glob("*.tmp"))
