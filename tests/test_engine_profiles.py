"""Engine profiles by construction (``compat.backends.profiles``), checked on plain torch: every dynamic
dim gets an explicit (min, opt, max) in the program's ShapeEnv (what torch_tensorrt builds profiles
from) and in its ``range_constraints`` (what the input contract, the manifest and torch's own module
read), the same for a freshly exported program and for one loaded back from a file. The real builder's
view of the same profiles is in ``tests/trt/test_engine_builds.py``."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch.export import Dim

from trtshim import compat, errors
from trtshim.compat.backends import profiles
from trtshim.compat.call.module import CompiledModule

pytestmark = pytest.mark.requires("torch>=2.3")  # Dim min/max as torch_tensorrt >= 2.3 reads them


class TwoInputs(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x * 2).sum(1), y.sum(1)


def _program(dynamic: dict, batch: int = 4) -> torch.export.ExportedProgram:
    x, y = torch.randn(batch, 3), torch.randn(batch, 5)
    return torch.export.export(TwoInputs(), (x, y), dynamic_shapes=dynamic, strict=False)


def _loaded(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    return torch.export.load(buf)


def _apply(ep: torch.export.ExportedProgram, **kwargs) -> list[profiles.DimProfile]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.DimBoundWarning)
        return profiles.apply(ep, dim_names=kwargs.pop("dim_names", None), **kwargs)


KINDS = {
    "unbounded": lambda: {"x": {0: Dim("b")}, "y": {0: Dim("c")}},
    "min only": lambda: {"x": {0: Dim("b", min=3)}, "y": None},
    "max only": lambda: {"x": {0: Dim("b", max=64)}, "y": None},
    "bounded": lambda: {"x": {0: Dim("b", min=2, max=16)}, "y": None},
    "shared": lambda: (lambda b: {"x": {0: b}, "y": {0: b}})(Dim("b", max=32)),
}
EXPECTED = {  # (min, opt, max) of the first dim, as torch_tensorrt builds it (0/1 rule: 2 -> 1)
    "unbounded": (1, 4, 4096),
    "min only": (3, 4, 4096),
    "max only": (1, 4, 64),
    "bounded": (1, 4, 16),
    "shared": (1, 4, 32),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_dim_kind_gets_the_same_profile_fresh_and_loaded(kind: str) -> None:
    fresh = _apply(_program(KINDS[kind]()))
    loaded = _apply(_loaded(_program(KINDS[kind]())))
    assert (fresh[0].min, fresh[0].opt, fresh[0].max) == EXPECTED[kind]
    assert [(p.min, p.opt, p.max) for p in loaded] == [(p.min, p.opt, p.max) for p in fresh]
    for p in fresh:
        assert p.min <= p.opt <= p.max
    ep = _program(KINDS[kind]())
    (first, *_) = _apply(ep)
    symbol = next(s for s in ep.range_constraints if str(s) == first.symbol)
    assert int(ep.range_constraints[symbol].lower) >= first.min  # the recorded range holds the engines' min


def test_a_loaded_unbounded_dim_is_what_torch_tensorrt_cannot_build() -> None:
    """The upstream input: torch writes an unbounded Dim as [0, int_oo]; (0, hint, 0 * 2**12) is no profile."""
    ep = _loaded(_program(KINDS["unbounded"]()))
    lows = {str(r.lower) for r in ep.range_constraints.values()}
    assert lows == {"0"} and all(profiles._is_unbounded(r.upper) for r in ep.range_constraints.values())
    _apply(ep)
    assert {int(r.upper) for r in ep.range_constraints.values()} == {profiles.DEFAULT_UNBOUNDED_MAX}


def test_an_unbounded_dim_is_bounded_announced_and_enforced() -> None:
    ep = _program({"x": {0: Dim("batch")}, "y": {0: Dim("batch")}})
    names = {str(s): "batch" for s in ep.range_constraints}
    with pytest.warns(errors.DimBoundWarning, match=r"Dim 'batch' has no max.*up to 100"):
        (got,) = profiles.apply(ep, unbounded_max=100, dim_names=names)
    assert (got.min, got.max, got.bounded_here) == (1, 100, True)
    module = CompiledModule(ep, backend="export", environment=compat.detect(), dim_names=names)
    module(torch.randn(100, 3), torch.randn(100, 5))
    with pytest.raises(errors.InputMismatchError, match=r"size 101 on dim 0, outside the range \[\d, 100\] of Dim 'batch'"):
        module(torch.randn(101, 3), torch.randn(101, 5))
    with pytest.raises(Exception, match="101|100"):  # torch's own module holds the same bound
        _loaded(ep).module()(torch.randn(101, 3), torch.randn(101, 5))


def test_opt_is_taken_and_kept_inside_the_range() -> None:
    ep = _program({"x": {0: Dim("b", max=16)}, "y": None})
    names = {str(s): "b" for s in ep.range_constraints}
    (got,) = _apply(ep, opt={"b": 8}, dim_names=names)
    assert (got.min, got.opt, got.max) == (1, 8, 16)
    for bad, match in (({"b": 17}, "outside its range"), ({"nope": 3}, "names no dynamic dim")):
        with pytest.raises(errors.OptionError, match=match):
            _apply(_program({"x": {0: Dim("b", max=16)}, "y": None}), opt=bad, dim_names=names)
    with pytest.raises(errors.OptionError, match="unbounded_dim_max"):
        _apply(_program(KINDS["unbounded"]()), unbounded_max=1)


def test_a_bound_below_the_example_is_refused() -> None:
    with pytest.raises(errors.OptionError, match="below the example size 50"):
        _apply(_program({"x": {0: Dim("b")}, "y": None}, batch=50), unbounded_max=16)


def test_the_tensorrt_program_inherits_the_bound() -> None:
    """trtshim's hybrid exporter takes the TensorRT program's ranges from the same ShapeEnv (SE-3's
    harvest), so the compiled module's contract holds the bound the engines were built for."""
    from torch._guards import detect_fake_mode

    from trtshim.compat.programs import program as prog
    from trtshim.fixes.se3_range_constraints import harvest

    ep = _program(KINDS["unbounded"]())
    _apply(ep, unbounded_max=512)
    users = prog.user_input_placeholders(ep)
    ranges = harvest(users, detect_fake_mode([n.meta["val"] for n in users]))
    assert ranges and {int(r.upper) for r in ranges.values()} == {512}


def test_corner_shapes_give_each_input_its_profile() -> None:
    """What torch_tensorrt 2.2 builds profiles from (Input min / opt / max shapes), derived dims included."""

    class Derived(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x.sum() + y.sum()

    b = Dim("b", max=16)
    ep = torch.export.export(
        Derived(), (torch.randn(4, 3), torch.randn(8, 3)), dynamic_shapes={"x": {0: b}, "y": {0: 2 * b}}, strict=False
    )
    dims = _apply(ep)
    # b in a derived dim takes b >= 2 (torch_tensorrt builds 2 * b from b's lower bound, 2), and so does
    # the contract: b = 1 would give y a size below its engine profile
    assert profiles.corner_shapes(ep, dims) == [((2, 3), (4, 3), (16, 3)), ((4, 3), (8, 3), (32, 3))]
    assert int(ep.range_constraints[next(s for s in ep.range_constraints if str(s) == dims[0].symbol)].lower) == 2


DERIVED = lambda: (lambda b: {"x": {0: b}, "y": {0: 2 * b}})(Dim("b", max=32))  # noqa: E731


@pytest.mark.parametrize("kind", [*KINDS, "derived"])
def test_the_call_refuses_sizes_below_and_above_the_engines_range(kind: str, tmp_path) -> None:
    """recorded = enforced: the manifest's engine record holds each Dim's engine range, and the call holds
    every size to it (torch's rule lets 0 and 1 through below any min; an engine does not take them)."""
    from trtshim.compat.artifact.trust import manifest_schema
    from trtshim.compat.backends import tensorrt as tensorrt_backend
    from trtshim.compat.backends.engine_builds import BuildLog
    from trtshim.compat.call.module import engine_of_manifest

    is_derived = kind == "derived"
    if is_derived:  # y = 2b
        ep = torch.export.export(
            TwoInputs(), (torch.randn(4, 3), torch.randn(8, 5)), dynamic_shapes=DERIVED(), strict=False
        )
    else:
        ep = _program(KINDS[kind]())
    names = {str(s): "b" for s in ep.range_constraints}
    dims = _apply(ep, dim_names=names)
    log = BuildLog(dims=profiles.recorded(dims))
    record = tensorrt_backend.engine_record({}, log)
    manifest_schema.validate({"schema": 1, "engine": {**record, "torch_tensorrt": None}}, "m.pt2")
    first = dims[0]
    from trtshim.compat.artifact.manifest import format_manifest

    shown = format_manifest({"engine": {**record, "torch_tensorrt": None}})
    assert f"Dim 'b'        engines take [{first.min}, {first.max}], opt {first.opt}" in shown  # trtshim inspect

    def pair(b: int) -> tuple[torch.Tensor, torch.Tensor]:
        y_rows = 2 * b if is_derived else (b if kind in ("unbounded", "shared") else 4)
        return torch.randn(b, 3), torch.randn(y_rows, 5)

    fresh = CompiledModule(ep, backend="tensorrt", environment=compat.detect(), dim_names=names)
    fresh.engine_options = record
    as_loaded = CompiledModule(
        ep, backend="tensorrt", environment=compat.detect(), manifest={"engine": record}, dim_names=names
    )
    assert engine_of_manifest({"engine": record})["dims"] == profiles.recorded(dims)
    for module in (fresh, as_loaded):
        module(*pair(first.min))
        module(*pair(first.max))
        for bad in (first.min - 1, first.max + 1):
            engines_only = bad < first.min <= 2  # where torch's own rule lets the size through
            what = rf"TensorRT engines' range \[{first.min}, {first.max}\]" if engines_only else r"range \[\d+, \d+\]"
            with pytest.raises(errors.InputMismatchError, match=rf"size {bad} on dim 0, outside the {what} of Dim 'b'"):
                module(*pair(bad))
    # without the engine record, torch's rule: a size below the min passes where the min is 1 or 2
    plain = CompiledModule(ep, backend="export", environment=compat.detect(), dim_names=names)
    if first.min in (1, 2):
        plain(*pair(first.min - 1))
