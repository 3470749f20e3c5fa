"""Programs users deploy that torch's own ``torch.export.save`` / ``load`` round trip handles: trtshim
gives the same outputs, the same side effects (buffers and the caller's tensors, after every call) and
the same refusals, and refuses where torch is silently wrong (a tensor passed where ``None`` was
exported). Each test compares with torch, not with trtshim."""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import pytest
import torch

from conftest import run_python
from trtshim import compat, errors
from trtshim.compat.call.module import CompiledModule
from trtshim.compat.gates import requires
from trtshim.testing.conformance import OK, Reference, compare_steps


def _exported_or_skip(model: torch.nn.Module, args: tuple) -> torch.export.ExportedProgram:
    try:
        return torch.export.export(model, args)
    except Exception as exc:  # the rule holds where the program exports
        pytest.skip(f"torch {torch.__version__} cannot export it: {type(exc).__name__}")


def torch_round_trip(ep: torch.export.ExportedProgram) -> torch.nn.Module:
    return reference_or_skip(ep).module


def reference_or_skip(ep: torch.export.ExportedProgram) -> Reference:
    """torch's own round trip of ``ep``; where torch cannot save or read it back, trtshim must refuse
    with one of its own errors (or load it), and the comparison ends there."""
    try:
        return Reference(ep)
    except Exception as exc:
        why = f"{type(exc).__name__}: {errors.first_line(exc)[:120]}"
    try:
        path = compat.save(ep, Path(tempfile.mkdtemp()) / "m.pt2")
        compat.load(path)
    except errors.TrtShimError:
        pass
    pytest.skip(f"torch {torch.__version__}'s own round trip fails ({why}); trtshim refused with its own error or loaded it")


def _trtshim_round_trip(model: torch.nn.Module, args: tuple, tmp_path: Path, **kwargs) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.DecompositionFallbackWarning)
        compiled = compat.compile(model, args, backend="export", **kwargs)
    return compat.load(compat.save(compiled, tmp_path / "m.pt2"))


class AliasedBuffers(torch.nn.Module):
    """Two buffers sharing one storage, one mutated: torch's run_decompositions cannot take it."""

    def __init__(self) -> None:
        super().__init__()
        t = torch.zeros(4)
        self.register_buffer("a", t)
        self.register_buffer("b", t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.a.add_(x)
        return self.b * 2


class StaticKVCache(torch.nn.Module):
    """One attention layer decoding with a static KV cache (buffers written at ``pos`` every step), the
    shape transformers' ``TorchExportableModuleWithStaticCache`` exports."""

    def __init__(self, dim: int = 8, length: int = 6) -> None:
        super().__init__()
        self.q, self.k, self.v = (torch.nn.Linear(dim, dim) for _ in range(3))
        self.register_buffer("key_cache", torch.zeros(1, length, dim))
        self.register_buffer("value_cache", torch.zeros(1, length, dim))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        self.key_cache.index_copy_(1, pos, self.k(x))
        self.value_cache.index_copy_(1, pos, self.v(x))
        mask = torch.arange(self.key_cache.shape[1]) <= pos
        scores = (self.q(x) @ self.key_cache.transpose(1, 2)).masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, -1) @ self.value_cache


@pytest.mark.parametrize("model_type", [AliasedBuffers, StaticKVCache])
def test_stateful_programs_match_torch_call_by_call(model_type: type, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = model_type().eval().requires_grad_(False)  # deployed for inference, as export is used
    eager = copy.deepcopy(model)
    if model_type is AliasedBuffers:
        example = (torch.ones(4),)
        calls = [((torch.full((4,), float(i + 1)),), {}) for i in range(4)]
    else:
        example = (torch.randn(1, 1, 8), torch.tensor([0]))
        calls = [((torch.randn(1, 1, 8), torch.tensor([i])), {}) for i in range(6)]
    reference = reference_or_skip(_exported_or_skip(model, example))
    ours = _trtshim_round_trip(model, example, tmp_path)
    verdict = compare_steps(eager, ours, reference, calls)
    assert verdict.kind == OK, verdict.detail


@pytest.mark.requires("torch>=2.6")  # the first torch whose export returns the training IR
def test_a_failed_decomposition_keeps_the_exported_program_announced_and_recorded(tmp_path: Path) -> None:
    ep = _exported_or_skip(AliasedBuffers(), (torch.ones(4),))
    try:
        ep.run_decompositions({})
    except Exception:
        pass
    else:
        pytest.skip(f"torch {torch.__version__} decomposes aliased mutated buffers")
    with pytest.warns(errors.DecompositionFallbackWarning, match="run_decompositions failed"):
        compiled = compat.compile(AliasedBuffers(), (torch.ones(4),), backend="export")
    assert compiled.program_ir == "training"
    loaded = compat.load(compat.save(compiled, tmp_path / "m.pt2"))
    assert loaded.manifest["ir"] == "training" and loaded.program_ir == "training"
    plain = compat.compile(torch.nn.Linear(2, 2), (torch.randn(1, 2),), backend="export")
    assert plain.program_ir == "inference"


class InputMutation(torch.nn.Module):
    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        cache.add_(x)
        return cache * 2


def test_mutations_of_user_inputs_reach_the_callers_tensor(tmp_path: Path) -> None:
    args = (torch.ones(3), torch.zeros(3))
    reference = reference_or_skip(_exported_or_skip(InputMutation(), args))
    ours = _trtshim_round_trip(InputMutation(), args, tmp_path)
    cache = torch.zeros(3)  # one tensor the caller keeps passing: every module gets its own copy of it
    calls = [((torch.full((3,), float(i + 1)), cache), {}) for i in range(3)]
    assert compare_steps(InputMutation(), ours, reference, calls).kind == OK
    mine = torch.zeros(3)
    ours(torch.ones(3), mine)
    ours(torch.ones(3), mine)
    assert mine.tolist() == [2.0, 2.0, 2.0]


def test_examples_carrying_python_attributes_round_trip(tmp_path: Path) -> None:
    """``mark_dynamic`` leaves a set on the tensor: torch pickles it as ``__builtin__.set``."""
    x = torch.randn(4, 3)
    x._trtshim_marks = {0, 1}  # what torch._dynamo.mark_dynamic(x, 0) leaves: a Python set attribute
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    theirs = torch_round_trip(_exported_or_skip(model, (x,)))
    ours = _trtshim_round_trip(model, (x,), tmp_path)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def _two_tensor() -> type:
    two_tensor = pytest.importorskip("torch.testing._internal.two_tensor")
    return two_tensor.TwoTensor


class SubclassWeight(torch.nn.Module):
    def __init__(self, cls: type) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.p = torch.nn.Parameter(cls(torch.randn(3), torch.randn(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.p


def test_tensor_subclass_weights_load_where_this_process_allows_the_class(tmp_path: Path) -> None:
    cls = _two_tensor()
    model = SubclassWeight(cls)
    ep = _exported_or_skip(model, (torch.randn(3),))
    theirs = torch_round_trip(ep)
    path = compat.save(ep, tmp_path / "m.pt2")
    with pytest.raises(errors.UnsafeArtifactError, match="TwoTensor") as info:
        compat.load(path)
    assert "allow_imports" in info.value.hint
    x = torch.ones(3)
    ours = compat.load(path, allow_imports=["torch.testing._internal"])
    for mine, torchs in ((ours(x).a, theirs(x).a), (ours(x).b, theirs(x).b)):
        torch.testing.assert_close(mine, torchs, rtol=0, atol=0)
    if hasattr(torch.serialization, "safe_globals"):
        with torch.serialization.safe_globals([cls]):
            assert type(compat.load(path)(x)) is cls


def test_compiled_tensor_subclass_weights_answer_as_eager(tmp_path: Path) -> None:
    """torch 2.13/2.14's run_decompositions turns the TwoTensor output into two outputs under a one-leaf
    output spec (torch's own module then refuses to run it); before, trtshim returned the first part as
    a plain tensor. The decomposition now counts as failed: the program torch.export returned is kept."""
    cls = _two_tensor()
    model, x = SubclassWeight(cls), torch.ones(3)
    _exported_or_skip(model, (x,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.DecompositionFallbackWarning)
        try:
            compiled = compat.compile(model, (x,), backend="export")
        except errors.CompileError as exc:
            pytest.skip(f"torch {torch.__version__} cannot export it: {exc}")
    expected = model(x)
    for got in (compiled(x), compat.load(compat.save(compiled, tmp_path / "m.pt2"), allow_imports=["torch.testing._internal"])(x)):
        assert type(got) is type(expected)
        torch.testing.assert_close(got.a, expected.a, rtol=0, atol=0)
        torch.testing.assert_close(got.b, expected.b, rtol=0, atol=0)


def test_a_program_whose_outputs_disagree_with_its_output_spec_is_refused() -> None:
    model, x = SubclassWeight(_two_tensor()), torch.ones(3)
    ep = _exported_or_skip(model, (x,))
    try:
        decomposed = ep.run_decompositions({})
    except Exception as exc:  # torch 2.8: aot_export refuses traceable tensor subclasses
        pytest.skip(f"torch {torch.__version__} cannot decompose it: {type(exc).__name__}")
    users = [s for s in decomposed.graph_signature.output_specs if s.kind.name == "USER_OUTPUT"]
    if decomposed.call_spec.out_spec.num_leaves == len(users):
        pytest.skip(f"torch {torch.__version__} decomposes it consistently")
    with pytest.raises(errors.CompileError, match="2 user outputs but its output spec holds 1"):
        CompiledModule(decomposed, backend="export", environment=compat.detect())


def test_a_subclass_is_never_imported_because_a_file_names_it(tmp_path: Path) -> None:
    """The class's module is imported only when the caller allows it: a fresh process without the
    module loaded refuses, and the module stays unimported."""
    _two_tensor()
    ep = _exported_or_skip(SubclassWeight(_two_tensor()), (torch.randn(3),))
    path = compat.save(ep, tmp_path / "m.pt2")
    code = (
        "import sys, torch\nfrom trtshim import compat, errors\n"
        f"try:\n    compat.load({str(path)!r})\nexcept errors.UnsafeArtifactError as e:\n    print('refused')\n"
        "print('imported' if 'torch.testing._internal.two_tensor' in sys.modules else 'not imported')\n"
    )
    out = run_python(code)
    assert out.stdout.splitlines() == ["refused", "not imported"], out.stderr[-2000:]


def test_a_non_tensor_class_from_an_allowed_module_is_still_refused() -> None:
    from trtshim.compat.artifact.trust import pickle_scan

    assert pickle_scan.allowed("torch.testing._internal.two_tensor", "TwoTensor", ["torch.testing._internal"])
    assert not pickle_scan.allowed("torch.testing._internal.two_tensor", "TwoTensor", [])
    assert not pickle_scan.allowed("os", "system", ["os"])  # allow_imports never opens a function
    assert not pickle_scan.allowed("__builtin__", "eval") and pickle_scan.allowed("__builtin__", "set")
    assert pickle_scan.allowed("_codecs", "encode")  # bytes in protocol-2 pickles (fake-tensor inputs)


class OptionalMask(torch.nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x if mask is None else x * mask


def test_a_tensor_where_none_was_exported_is_refused(tmp_path: Path) -> None:
    ep = _exported_or_skip(OptionalMask(), (torch.ones(3), None))
    theirs = torch_round_trip(ep)
    ours = _trtshim_round_trip(OptionalMask(), (torch.ones(3), None), tmp_path)
    x, mask = torch.ones(3), torch.zeros(3)
    eager = OptionalMask()(x, mask)
    try:
        silently_wrong = not torch.equal(theirs(x, mask), eager)
    except Exception:
        silently_wrong = False  # this torch refuses it too
    with pytest.raises(errors.InputMismatchError, match=r"mask.*compiled as None, got Tensor"):
        ours(x, mask)
    torch.testing.assert_close(ours(x, None), theirs(x, None), rtol=0, atol=0)
    print(f"torch {torch.__version__}: a mask passed where None was exported is silently ignored: {silently_wrong}")


def test_none_where_a_tensor_was_exported_is_refused(tmp_path: Path) -> None:
    reference_or_skip(_exported_or_skip(OptionalMask(), (torch.ones(3), torch.ones(3))))
    ours = _trtshim_round_trip(OptionalMask(), (torch.ones(3), torch.ones(3)), tmp_path)
    with pytest.raises(errors.InputMismatchError, match=r"mask.*must be a tensor, got NoneType"):
        ours(torch.ones(3), None)


OPS_MODULE = '''
import torch
lib = torch.library.Library("trtshimlibop", "FRAGMENT")
lib.define("scale(Tensor x, float s) -> Tensor")
lib.impl("scale", lambda x, s: x * s, "CompositeExplicitAutograd")
{fake}("trtshimlibop::scale", lambda x, s: torch.empty_like(x))
'''


@pytest.mark.requires("torch>=2.3")  # custom ops in exported programs: LP-1's range
def test_ops_defined_by_library_define_name_their_module(tmp_path: Path) -> None:
    """Ops defined the way torchao and modelopt define theirs (``Library.define`` + ``impl``): the manifest
    names the module, so the hint and ``allow_imports`` (a parent package is enough) work."""
    package = tmp_path / "opslib"
    package.mkdir()
    (package / "__init__.py").write_text("")
    fake = "torch.library.register_fake" if requires("torch>=2.4") else "torch.library.impl_abstract"
    (package / "kernels.py").write_text(OPS_MODULE.format(fake=fake))
    env = {"PYTHONPATH": str(tmp_path)}
    save = (
        "import torch, opslib.kernels\nfrom trtshim import compat\n"
        "class M(torch.nn.Module):\n    def forward(self, x):\n        return torch.ops.trtshimlibop.scale(x, 2.0) + 1\n"
        "c = compat.compile(M(), (torch.ones(2),), backend='export')\n"
        f"compat.save(c, {str(tmp_path / 'm.pt2')!r})\n"
        f"print([o['module'] for o in compat.read_manifest({str(tmp_path / 'm.pt2')!r})[0]['custom_ops']])\n"
    )
    out = run_python(save, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['opslib.kernels']"
    load = (
        "import sys\nfrom trtshim import compat, errors\n"
        f"try:\n    compat.load({str(tmp_path / 'm.pt2')!r})\n"
        "except errors.MissingOpError as e:\n    print(e.hint)\n"
        f"m = compat.load({str(tmp_path / 'm.pt2')!r}, allow_imports=['opslib'])\n"
        "import torch\nprint(m(torch.ones(2)).tolist())\n"
    )
    out = run_python(load, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    hint, result = out.stdout.strip().splitlines()
    assert "opslib.kernels" in hint
    assert result == "[3.0, 3.0]"


def test_where_the_default_export_mode_fails_the_other_is_tried_and_announced() -> None:
    """torch 2.5-2.7 export strictly by default; trtshim's non-strict default fails on aliased mutated
    buffers on torch 2.5, where torch's own default exports them."""
    try:
        torch.export.export(AliasedBuffers(), (torch.ones(4),), strict=False)
    except Exception:
        pass
    else:
        pytest.skip(f"torch {torch.__version__} exports it non-strictly")
    _exported_or_skip(AliasedBuffers(), (torch.ones(4),))
    from trtshim.compat.backends import export as export_backend

    if export_backend.default_strict(compat.detect()):
        pytest.skip(f"trtshim exports strictly by default on torch {torch.__version__}: no fallback to see")
    with pytest.warns(errors.ExportFallbackWarning, match="strict=True"):
        compiled = compat.compile(AliasedBuffers(), (torch.ones(4),), backend="export")
    torch.testing.assert_close(compiled(torch.ones(4)), torch.full((4,), 2.0))
    with pytest.raises(errors.CompileError, match="strict=False"):  # the caller's choice is final
        compat.compile(AliasedBuffers(), (torch.ones(4),), backend="export", strict=False)
