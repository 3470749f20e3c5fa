from __future__ import annotations

import warnings

import pytest
import torch

from trtshim import compat, errors
from trtshim.compat import backends
from trtshim.compat.gates import requires


def test_export_backend_matches_eager_and_ep_module(small_cnn, example, compile_quiet) -> None:
    compiled = compile_quiet(small_cnn, (example,))
    assert isinstance(compiled, torch.nn.Module)
    assert compiled.backend == "export"
    with torch.inference_mode():
        expected = small_cnn(example)
        assert torch.equal(compiled(example), expected)
        assert torch.equal(compiled.program.module()(example), expected)


def test_state_is_registered_under_the_original_names(small_cnn, example, compile_quiet) -> None:
    compiled = compile_quiet(small_cnn, (example,))
    if requires("torch<2.3"):  # 2.2 lifts constants and non-persistent buffers as state
        assert set(small_cnn.state_dict()) < set(compiled.state_dict())
    else:
        assert set(compiled.state_dict()) == set(small_cnn.state_dict())
    assert dict(compiled.named_buffers())["scale"].item() == 0.5  # non-persistent buffer is bound too
    # loading new weights through the usual API changes the result
    with torch.inference_mode():
        before = small_cnn(example)
    state = {k: v.clone() for k, v in small_cnn.state_dict().items()}
    state["head.bias"] += 1.0
    compiled.load_state_dict(state, strict=not requires("torch<2.3"))
    with torch.inference_mode():
        assert torch.allclose(compiled(example), before + 1.0, atol=1e-6)


def test_integer_parameters_survive(example, compile_quiet) -> None:
    class WithIntParam(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(16, 2)
            self.steps = torch.nn.Parameter(torch.tensor([3], dtype=torch.int64), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) * self.steps

    model = WithIntParam().eval()
    x = torch.randn(4, 16)
    compiled = compile_quiet(model, (x,))
    assert compiled.steps.dtype == torch.int64
    assert torch.equal(compiled(x), model(x))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ((), "expected 1 input"),
        ((torch.randn(2, 3, 16, 16), torch.randn(1)), "expected 1 input"),
        ((torch.randn(2, 3, 16, 16, dtype=torch.float64),), "dtype torch.float64"),
        ((torch.randn(3, 16, 16),), "rank 3"),
        ((torch.randn(2, 4, 16, 16),), "size 4 on dim 1"),
        ((torch.randn(3, 3, 16, 16),), "size 3 on dim 0"),
        (([1.0],), "must be a tensor"),
    ],
)
def test_input_mistakes_raise_typed_errors(small_cnn, example, compile_quiet, bad, match) -> None:
    compiled = compile_quiet(small_cnn, (example,))
    with pytest.raises(errors.InputMismatchError, match=match) as info:
        compiled(*bad)
    assert info.value.hint
    assert len(info.value.reason.splitlines()) == 1


def test_dynamic_batch(small_cnn, example, compile_quiet) -> None:
    batch = torch.export.Dim("batch", min=1, max=15)  # torch 2.2's strict export caps conv batches below 16
    compiled = compile_quiet(small_cnn, (example,), dynamic_shapes={"x": {0: batch}})
    x5 = torch.randn(5, 3, 16, 16)
    with torch.inference_mode():
        assert torch.allclose(compiled(x5), small_cnn(x5), atol=1e-6)
    (spec,) = compiled.input_specs
    axis, symbol, low, high, name = spec.dynamic[0]
    assert spec.shape[0] == symbol and axis == 0 and high == 15 and name == "batch"
    assert low == 1 or (
        low == 2 and requires("torch<2.5")
    )  # 0/1 specialization
    with pytest.raises(errors.InputMismatchError, match="size 4 on dim 1"):
        compiled(torch.randn(5, 4, 16, 16))


def test_nested_inputs_and_outputs(compile_quiet) -> None:
    class Nested(torch.nn.Module):
        def forward(self, pair, *, bias):
            a, b = pair
            return {"sum": a + b + bias, "diff": (a - b,)}

    a, b, bias = torch.randn(3), torch.randn(3), torch.randn(3)
    compiled = compile_quiet(Nested(), ((a, b),), example_kwargs={"bias": bias})
    out = compiled((a, b), bias=bias)
    assert torch.equal(out["sum"], a + b + bias) and torch.equal(out["diff"][0], a - b)
    with pytest.raises(errors.InputMismatchError, match="structured differently"):
        compiled(a, b, bias=bias)


def test_buffer_mutation_is_written_back(compile_quiet) -> None:
    class Counter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("calls", torch.zeros(1))

        def forward(self, x):
            self.calls.add_(1)
            return x * 2

    compiled = compile_quiet(Counter(), (torch.randn(2),))
    compiled(torch.randn(2))
    compiled(torch.randn(2))
    assert compiled.calls.item() == 2


def test_fp16_precision_on_export_backend(small_cnn, example, compile_quiet) -> None:
    compiled = compile_quiet(small_cnn, (example,), precision="fp16")
    assert compiled.conv.weight.dtype == torch.float16
    assert small_cnn.conv.weight.dtype == torch.float32  # the user's model is untouched
    with pytest.raises(errors.InputMismatchError, match="float16"):
        compiled(example)


def test_bad_options_are_errors_not_dropped(small_cnn, example) -> None:
    with pytest.raises(errors.OptionError, match="does not take option"):
        compat.compile(small_cnn, (example,), backend="export", workspace_size=1 << 20)
    with pytest.raises(errors.OptionError, match="precision"):
        compat.compile(small_cnn, (example,), backend="export", precision="int3")
    with pytest.raises(errors.OptionError, match="unknown backend"):
        compat.compile(small_cnn, (example,), backend="onnx")
    with pytest.raises(errors.UnsupportedModelError):
        compat.compile(lambda x: x, (example,), backend="export")  # type: ignore[arg-type]


def test_export_failure_is_a_compile_error_with_cause(example) -> None:
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow cannot be exported
                return x
            return -x

    with pytest.raises(errors.CompileError, match="torch.export.export failed") as info:
        compat.compile(DataDependent(), (example,), backend="export")
    assert info.value.__cause__ is not None


def test_auto_falls_back_with_our_warning_once(small_cnn, example, monkeypatch) -> None:
    if backends.tensorrt_usable()[0]:
        pytest.skip("TensorRT is usable here: auto does not fall back")
    monkeypatch.setattr(backends, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = compat.compile(small_cnn, (example,))
        compat.compile(small_cnn, (example,))
    fallback = [w for w in caught if issubclass(w.category, errors.BackendFallbackWarning)]
    assert first.backend == "export"
    assert len(fallback) == 1
    assert "torch-only 'export' backend" in str(fallback[0].message)


def test_explicit_tensorrt_backend_refuses_where_it_cannot_run(small_cnn, example) -> None:
    ok, _why = backends.tensorrt_usable()
    if ok:
        pytest.skip("TensorRT is usable here")
    with pytest.raises(errors.BackendUnavailableError, match="cannot run here"):
        compat.compile(small_cnn, (example,), backend="tensorrt")


def test_to_moves_every_lifted_tensor(small_cnn, example, compile_quiet) -> None:
    compiled = compile_quiet(small_cnn, (example,)).to(torch.float64)
    assert all(t.dtype == torch.float64 for t in compiled.state_dict().values() if t.is_floating_point())
    assert compiled.scale.dtype == torch.float64  # non-persistent buffer
    with torch.inference_mode():
        out = compiled._graph_forward(*compiled._bound, example.double())
    assert out[0].dtype == torch.float64
