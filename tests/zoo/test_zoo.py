"""The model zoo: torchvision, timm and Hugging Face transformers models built from configs (random
weights, no downloads), compiled by trtshim, saved, loaded in a fresh process, and compared call by
call with torch's own ``torch.export.export`` -> ``save`` -> ``load`` -> ``.module()`` round trip
(``trtshim.testing.conformance``). Runs in ``nox -s zoo`` (``TRTSHIM_ZOO=1``); each model's row
(ok / same refusal as torch / trtshim-only failure) goes to ``$TRTSHIM_RESULTS/zoo/<torch>.json``
for ``tools/zoo_report.py``."""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("TRTSHIM_ZOO"):
    pytest.skip("the model zoo runs in `nox -s zoo` (TRTSHIM_ZOO=1)", allow_module_level=True)

import torch
from torch.export import Dim

from conftest import run_python
from trtshim import compat, errors
from trtshim.compat.artifact.manifest import read_manifest
from trtshim.compat.backends import export as export_backend
from trtshim.errors import first_line
from trtshim.testing import conformance

LINE = compat.detect().torch.line  # type: ignore[union-attr]
RESULTS = os.environ.get("TRTSHIM_RESULTS", "")


@dataclass
class Case:
    model: torch.nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    dynamic: Any = None
    probes: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    atol: float = 1e-4


def _image(b: int, size: int = 32) -> torch.Tensor:
    return torch.randn(b, 3, size, size)


def _ids(b: int, s: int) -> torch.Tensor:
    return torch.randint(0, 100, (b, s))


def _vision(model: torch.nn.Module, size: int, dynamic: Any, batches: tuple[int, ...], atol: float = 1e-4) -> Case:
    probes = [("new values", (_image(2, size),), {})]
    probes += [(f"batch {b}", (_image(b, size),), {}) for b in batches]
    probes.append(("other image size", (_image(2, size + 8),), {}))
    return Case(model.eval(), (_image(2, size),), dynamic=dynamic, probes=probes, atol=atol)


def torchvision_resnet18() -> Case:
    tv = pytest.importorskip("torchvision")
    return _vision(tv.models.resnet18(num_classes=10), 64, {"x": {0: Dim("batch", max=8)}}, (1, 5, 8, 9))


def torchvision_mobilenet_v3() -> Case:
    tv = pytest.importorskip("torchvision")
    return _vision(tv.models.mobilenet_v3_small(num_classes=10), 64, None, (3,))


def torchvision_vit() -> Case:
    tv = pytest.importorskip("torchvision")
    vit = tv.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    )
    return _vision(vit, 32, {"x": {0: Dim("batch")}}, (1, 3, 17))


def timm_resnet10t() -> Case:
    timm = pytest.importorskip("timm")
    case = _vision(timm.create_model("resnet10t", pretrained=False, num_classes=10), 64, {"x": {0: Dim("batch")}}, (1, 3, 12))
    torch._dynamo.mark_dynamic(case.args[0], 0)  # leaves a Python set on the example tensor, pickled with it
    return case


def timm_vit_tiny() -> Case:
    timm = pytest.importorskip("timm")
    vit = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2, num_classes=10
    )
    return _vision(vit, 32, None, (3,))


def _hf() -> Any:
    return pytest.importorskip("transformers")


def bert_encoder() -> Case:
    tf = _hf()
    config = tf.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64,
    )
    ids, mask = _ids(2, 8), torch.ones(2, 8, dtype=torch.long)
    batch, seq = Dim("batch"), Dim("seq", max=64)
    dyn = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    probes = [
        ("new ids", (), {"input_ids": _ids(2, 8), "attention_mask": mask}),
        ("keywords in another order", (), {"attention_mask": mask, "input_ids": _ids(2, 8)}),
        ("seq 16, batch 5", (), {"input_ids": _ids(5, 16), "attention_mask": torch.ones(5, 16, dtype=torch.long)}),
        ("seq 65 (above max)", (), {"input_ids": _ids(2, 65), "attention_mask": torch.ones(2, 65, dtype=torch.long)}),
        ("mask of another length", (), {"input_ids": _ids(2, 8), "attention_mask": torch.ones(2, 9, dtype=torch.long)}),
    ]
    return Case(tf.BertModel(config).eval(), (), {"input_ids": ids, "attention_mask": mask}, dyn, probes)


def bert_classifier_tuple() -> Case:
    tf = _hf()
    config = tf.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, num_labels=3
    )
    ids = _ids(2, 8)
    probes = [
        ("new ids", (), {"input_ids": _ids(2, 8), "return_dict": False}),
        ("return_dict changed", (), {"input_ids": ids, "return_dict": True}),
        ("other seq (static)", (), {"input_ids": _ids(2, 9), "return_dict": False}),
    ]
    model = tf.BertForSequenceClassification(config).eval()
    return Case(model, (), {"input_ids": ids, "return_dict": False}, None, probes)


def gpt2_decoder() -> Case:
    tf = _hf()
    config = tf.GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    ids = _ids(2, 8)
    probes = [
        ("new ids", (), {"input_ids": _ids(2, 8), "use_cache": False}),
        ("seq 20", (), {"input_ids": _ids(2, 20), "use_cache": False}),
        ("use_cache changed", (), {"use_cache": True, "input_ids": ids}),
        ("keywords in another order", (), {"use_cache": False, "input_ids": ids}),
    ]
    model = tf.GPT2LMHeadModel(config).eval()
    return Case(model, (), {"input_ids": ids, "use_cache": False}, {"input_ids": {1: Dim("seq", max=64)}, "use_cache": None}, probes)


def gpt2_optional_mask() -> Case:
    """Exported with ``attention_mask=None``: a mask passed later is ignored by torch's module (a result
    unlike eager's); trtshim refuses it."""
    tf = _hf()
    config = tf.GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    ids = _ids(2, 8)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[:, :3] = 0
    probes = [
        ("new ids, mask None", (), {"input_ids": _ids(2, 8), "attention_mask": None, "use_cache": False}),
        ("a mask where None was exported", (), {"input_ids": ids, "attention_mask": mask, "use_cache": False}),
    ]
    model = tf.GPT2LMHeadModel(config).eval()
    return Case(model, (), {"input_ids": ids, "attention_mask": None, "use_cache": False}, None, probes)


def t5_encoder_decoder() -> Case:
    tf = _hf()
    config = tf.T5Config(
        vocab_size=100, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=2, decoder_start_token_id=0
    )
    ids, dec = _ids(2, 8), _ids(2, 4)
    probes = [
        ("new ids", (), {"input_ids": _ids(2, 8), "decoder_input_ids": _ids(2, 4), "use_cache": False}),
        ("keywords in another order", (), {"use_cache": False, "decoder_input_ids": dec, "input_ids": ids}),
        ("other decoder length (static)", (), {"input_ids": ids, "decoder_input_ids": _ids(2, 5), "use_cache": False}),
        ("use_cache changed", (), {"input_ids": ids, "decoder_input_ids": dec, "use_cache": True}),
    ]
    model = tf.T5ForConditionalGeneration(config).eval()
    return Case(model, (), {"input_ids": ids, "decoder_input_ids": dec, "use_cache": False}, None, probes)


def vit_vision() -> Case:
    tf = _hf()
    config = tf.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
    )
    x = _image(2)
    probes = [
        ("new pixels", (), {"pixel_values": _image(2)}),
        ("batch 6", (), {"pixel_values": _image(6)}),
        ("batch 9 (above max)", (), {"pixel_values": _image(9)}),
    ]
    return Case(tf.ViTModel(config).eval(), (), {"pixel_values": x}, {"pixel_values": {0: Dim("batch", max=8)}}, probes)


ZOO: dict[str, Callable[[], Case]] = {
    "torchvision resnet18": torchvision_resnet18,
    "torchvision mobilenet_v3_small": torchvision_mobilenet_v3,
    "torchvision VisionTransformer": torchvision_vit,
    "timm resnet10t": timm_resnet10t,
    "timm vit_tiny": timm_vit_tiny,
    "transformers BertModel (encoder)": bert_encoder,
    "transformers BertForSequenceClassification (tuple)": bert_classifier_tuple,
    "transformers GPT2LMHeadModel (decoder)": gpt2_decoder,
    "transformers GPT2LMHeadModel (mask exported as None)": gpt2_optional_mask,
    "transformers T5ForConditionalGeneration (encoder-decoder)": t5_encoder_decoder,
    "transformers ViTModel (vision)": vit_vision,
}

CHILD = """
import json, sys, torch, warnings
warnings.simplefilter("ignore")
from torch.utils import _pytree as pytree
from trtshim import compat, errors
from trtshim.compat.artifact.manifest import read_manifest
path, probes_path, out_path = sys.argv[1:4]
manifest, _ = read_manifest(path)
modules = sorted({t["module"] for t in manifest.get("pytree_types", [])})
first = None
if modules:
    try:
        compat.load(path)
        first = "loaded without imports"
    except errors.MissingTypeError as exc:
        first = exc.hint
module = compat.load(path, allow_imports=modules)
results = []
for args, kwargs in torch.load(probes_path, weights_only=False):
    try:
        with torch.inference_mode():
            results.append(("ok", pytree.tree_leaves(module(*args, **kwargs))))
    except Exception as exc:
        results.append(("refused", type(exc).__name__, getattr(exc, "reason", str(exc))))
torch.save(results, out_path)
print(json.dumps({"without_imports": first, "modules": modules}))
"""


def _torch_export(case: Case, strict: bool) -> tuple[Any, str | None]:
    try:
        return torch.export.export(case.model, case.args, case.kwargs, dynamic_shapes=case.dynamic, strict=strict), None
    except Exception as exc:  # torch's own refusal is the reference
        return None, f"{type(exc).__name__}: {first_line(exc)[:200]}"


def _record(row: dict[str, Any], table: str = "") -> None:
    """One model's row in ``$TRTSHIM_RESULTS/zoo[/table]/<torch>.json``."""
    if not RESULTS:
        return
    folder = os.path.join(RESULTS, "zoo", table)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{LINE}.json")
    rows = json.loads(Path(path).read_text()) if os.path.exists(path) else []
    rows = [r for r in rows if r["model"] != row["model"]] + [row]
    Path(path).write_text(json.dumps(rows, indent=1))


def _child_outcome(entry: tuple[Any, ...]) -> tuple[bool, Any]:
    if entry[0] == "ok":
        return True, entry[1]
    cls = getattr(errors, entry[1], None)
    exc = cls(entry[2]) if isinstance(cls, type) and issubclass(cls, errors.TrtShimError) else RuntimeError(f"{entry[1]}: {entry[2]}")
    return False, exc


def _start(name: str) -> tuple[Case, dict[str, Any], bool]:
    """The model's case (seeded), its result row, and whether this torch exports strictly by default."""
    torch.manual_seed(0)
    row: dict[str, Any] = {"model": name, "torch": torch.__version__}
    return ZOO[name](), row, export_backend.default_strict(compat.detect())


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_conforms_to_torch(name: str, tmp_path: Path) -> None:
    case, row, strict = _start(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain, torch_error = _torch_export(case, strict)
        if torch_error and strict:  # torch <= 2.4 exports strictly by default; users of HF pass strict=False
            plain, torch_error = _torch_export(case, False)
            strict = bool(torch_error)
            row["strict_false"] = not strict  # exported with strict=False, by torch and trtshim alike
        try:
            compiled = compat.compile(
                case.model, case.args, example_kwargs=case.kwargs, dynamic_shapes=case.dynamic, backend="export", strict=strict
            )
        except errors.CompileError as exc:
            row.update(verdict=conformance.SAME_REFUSAL if torch_error else conformance.TRTSHIM_ONLY, detail=exc.reason[:300])
            _record(row)
            assert torch_error, f"trtshim failed to compile what torch exports: {exc}"
            return
    assert plain is not None, f"trtshim compiled what torch.export.export refused: {torch_error}"
    reference = conformance.Reference(plain)
    path = compat.save(compiled, tmp_path / "model.pt2")
    manifest, _ = read_manifest(path)
    assert manifest is not None
    probes_path = tmp_path / "probes.pt"
    torch.save([(a, k) for _, a, k in case.probes], probes_path)
    out_path = tmp_path / "out.pt"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = run_python(
        f"import runpy, sys; sys.argv = ['child', {str(path)!r}, {str(probes_path)!r}, {str(out_path)!r}]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    fresh = torch.load(out_path, weights_only=False)
    counts: Counter[str] = Counter()
    failures = []
    for (label, args, kwargs), entry in zip(case.probes, fresh):
        for where, verdict in (
            ("in process", conformance.compare(case.model, compiled, reference, args, kwargs, atol=case.atol)),
            (
                "fresh process",
                conformance.compare(case.model, None, reference, args, kwargs, atol=case.atol, outcome=_child_outcome(entry)),
            ),
        ):
            counts[verdict.kind] += 1
            if verdict.failed:
                failures.append(f"{label} ({where}): {verdict.detail}")
    row.update(
        verdict=conformance.TRTSHIM_ONLY if failures else conformance.OK,
        probes=dict(counts),
        pytree_types=[t["type"] for t in manifest.get("pytree_types", [])],
        without_imports=child["without_imports"],
        detail="; ".join(failures)[:500],
    )
    _record(row)
    assert not failures, "\n".join(failures)


# --- stateful programs and quantized weights: called step by step (conformance.compare_steps) ---------


def llama_static_cache() -> tuple[torch.nn.Module, dict[str, Any], list[tuple[tuple[Any, ...], dict[str, Any]]]]:
    """An LLM exported with its KV cache the way transformers documents for deployment."""
    tf = _hf()
    integration = pytest.importorskip("transformers.integrations.executorch")
    wrapper = getattr(integration, "TorchExportableModuleWithStaticCache", None)
    if wrapper is None:
        pytest.skip(f"transformers {tf.__version__} has no TorchExportableModuleWithStaticCache")
    config = tf.LlamaConfig(
        vocab_size=100, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64,
    )
    model = tf.LlamaForCausalLM(config).eval()
    model.generation_config.cache_implementation = "static"
    model.generation_config.cache_config = {"batch_size": 1, "max_cache_len": 16}
    import inspect

    params = inspect.signature(wrapper.__init__).parameters
    module = wrapper(model, batch_size=1, max_cache_len=16) if "max_cache_len" in params else wrapper(model)
    first = {"input_ids": torch.tensor([[1]]), "cache_position": torch.tensor([0])}
    steps = [((), {"input_ids": torch.tensor([[i + 3]]), "cache_position": torch.tensor([i])}) for i in range(8)]
    return module.requires_grad_(False), first, steps


def torchao_int8_linear() -> tuple[torch.nn.Module, dict[str, Any], list[tuple[tuple[Any, ...], dict[str, Any]]]]:
    """Weights quantized by torchao (int8 dynamic activation, int8 weight): tensor-subclass weights and
    torchao's own ops, loaded in the fresh process with ``allow_imports=["torchao"]``."""
    ao = pytest.importorskip("torchao.quantization")
    config = getattr(ao, "Int8DynamicActivationInt8WeightConfig", None)
    if config is None:
        pytest.skip("this torchao has no Int8DynamicActivationInt8WeightConfig")
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    ao.quantize_(model, config())
    return model, {"x": torch.randn(4, 32)}, [((torch.randn(4, 32),), {}) for _ in range(3)]


STATEFUL: dict[str, Callable[[], Any]] = {
    "transformers LlamaForCausalLM static KV cache (8 decode steps)": llama_static_cache,
    "torchao int8 dynamic-activation Linear (subclass weights, custom ops)": torchao_int8_linear,
}

STEP_CHILD = """
import sys, torch, warnings
warnings.simplefilter("ignore")
from torch.utils import _pytree as pytree
from trtshim import compat
path, calls_path, out_path = sys.argv[1:4]
module = compat.load(path, allow_imports=["torchao", "transformers"])
results = []
for args, kwargs in torch.load(calls_path, weights_only=False):
    with torch.inference_mode():
        results.append(pytree.tree_leaves(module(*args, **kwargs)))
torch.save(results, out_path)
"""


@pytest.mark.parametrize("name", list(STATEFUL))
def test_zoo_stateful_program_conforms_to_torch(name: str, tmp_path: Path) -> None:
    """Called step by step in process (outputs, buffers, the caller's tensors after every call) and,
    loaded in a fresh process, the same sequence of outputs as torch's round trip."""
    import copy

    torch.manual_seed(0)
    model, first, calls = STATEFUL[name]()
    eager = copy.deepcopy(model)
    row: dict[str, Any] = {"model": name, "torch": torch.__version__}
    args = tuple(first.values()) if name.startswith("torchao") else ()
    kwargs = {} if args else first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            plain = torch.export.export(copy.deepcopy(model), args, kwargs, strict=False)
        except Exception as exc:
            row.update(verdict=conformance.SAME_REFUSAL, detail=f"torch.export.export failed: {first_line(exc)[:200]}")
            _record(row)
            with pytest.raises(errors.CompileError):
                compat.compile(model, args, example_kwargs=kwargs, backend="export", strict=False)
            return
        reference = conformance.Reference(plain)
        compiled = compat.compile(copy.deepcopy(model), args, example_kwargs=kwargs, backend="export", strict=False)
    path = compat.save(compiled, tmp_path / "model.pt2")
    verdict = conformance.compare_steps(eager, compat.load(path, allow_imports=["torchao"]), reference, calls)
    calls_path, out_path, script = tmp_path / "calls.pt", tmp_path / "out.pt", tmp_path / "child.py"
    torch.save(calls, calls_path)
    script.write_text(STEP_CHILD)
    proc = run_python(
        f"import runpy, sys; sys.argv = ['child', {str(path)!r}, {str(calls_path)!r}, {str(out_path)!r}]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = torch.load(out_path, weights_only=False)
    theirs = conformance.Reference(plain).module
    for step, ((call_args, call_kwargs), got) in enumerate(zip(calls, fresh)):
        with torch.inference_mode():
            expected = torch.utils._pytree.tree_leaves(theirs(*call_args, **call_kwargs))
        if not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(got, expected)):
            verdict = conformance.Verdict(conformance.TRTSHIM_ONLY, f"fresh process, step {step}: differs from torch")
            break
    row.update(verdict=verdict.kind, ir=compiled.program_ir, steps=len(calls), detail=verdict.detail[:300])
    _record(row)
    assert not verdict.failed, verdict.detail


# --- the AOTInductor column: the same models compiled to native code (backend="inductor") -------------

AOTI_CHILD = """
import sys, torch, warnings
warnings.simplefilter("ignore")
from torch.utils import _pytree as pytree
from trtshim import compat
from trtshim.compat.artifact.manifest import read_manifest
path, probes_path, out_path = sys.argv[1:4]
manifest, _ = read_manifest(path)
modules = sorted({t["module"] for t in manifest.get("pytree_types", [])})
module = compat.load(path, trust_code=True, allow_imports=modules)
results = []
for args, kwargs in torch.load(probes_path, weights_only=False):
    with torch.inference_mode():
        results.append(pytree.tree_leaves(module(*args, **kwargs)))
torch.save(results, out_path)
"""


def _median_call_ms(fn: Callable[[], Any], calls: int = 20) -> float:
    import statistics
    import time

    with torch.inference_mode():
        fn()
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _leaves(out: Any) -> list[torch.Tensor]:
    from torch.utils import _pytree as pytree

    return [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def _close(got: Any, want: Any, atol: float) -> float | None:
    """The largest absolute difference, or None where the outputs differ in structure or shape."""
    a, b = _leaves(got), _leaves(want)
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return None
    return max((float((x.float() - y.float()).abs().max()) for x, y in zip(a, b) if x.numel()), default=0.0)


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_as_an_aoti_package(name: str, tmp_path: Path) -> None:
    """backend="inductor": compile time, call time against eager and the export backend, outputs against
    eager on every probe the export backend accepts (the inductor module refuses the same ones), and the
    saved package loaded (trust_code=True) in a fresh process; rows for the zoo's AOTInductor table."""
    import time

    case, row, strict = _start(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _torch_export(case, strict)[1] and strict:
            strict = bool(_torch_export(case, False)[1])
        options = dict(example_kwargs=case.kwargs, dynamic_shapes=case.dynamic, strict=strict)
        try:
            start = time.perf_counter()
            exported = compat.compile(case.model, case.args, backend="export", **options)
            row["export_s"] = time.perf_counter() - start
        except errors.CompileError as exc:
            row.update(verdict="not exportable", detail=exc.reason[:200])
            _record(row, "aoti")
            pytest.skip(f"torch cannot export it here: {exc.reason[:200]}")
        try:
            start = time.perf_counter()
            packaged = compat.compile(case.model, case.args, backend="inductor", **options)
            row["compile_s"] = time.perf_counter() - start
        except errors.BackendUnavailableError as exc:
            row.update(verdict="refused", detail=exc.reason)
            _record(row, "aoti")
            pytest.skip(exc.reason)
        except errors.CompileError as exc:
            row.update(verdict="compile failed", detail=exc.reason[:300])
            _record(row, "aoti")
            raise
    failures, worst, ran = [], 0.0, []
    for label, args, kwargs in case.probes:
        with torch.inference_mode():
            try:
                exported(*args, **kwargs)
            except errors.TrtShimError:  # outside the contract: the package must refuse it too
                try:
                    packaged(*args, **kwargs)
                    failures.append(f"{label}: the export backend refuses it, the package runs it")
                except errors.TrtShimError:
                    pass
                continue
            want = case.model(*args, **kwargs)
            diff = _close(packaged(*args, **kwargs), want, case.atol)
        ran.append((label, args, kwargs, want))
        if diff is None or diff > max(case.atol, 1e-3):
            failures.append(f"{label}: outputs differ from eager (max abs diff {diff})")
        worst = max(worst, diff or 0.0)
    path = compat.save(packaged, tmp_path / "model.pt2")
    probes_path, out_path, script = tmp_path / "probes.pt", tmp_path / "out.pt", tmp_path / "child.py"
    torch.save([(a, k) for _, a, k, _ in ran], probes_path)
    script.write_text(AOTI_CHILD)
    proc = run_python(
        f"import runpy, sys; sys.argv = ['child', {str(path)!r}, {str(probes_path)!r}, {str(out_path)!r}]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    if proc.returncode != 0:
        failures.append(f"fresh process: {proc.stderr.strip().splitlines()[-1:]}")
    else:
        for (label, _, _, want), got in zip(ran, torch.load(out_path, weights_only=False)):
            diff = _close(got, want, case.atol)
            if diff is None or diff > max(case.atol, 1e-3):
                failures.append(f"{label} (fresh process): outputs differ from eager (max abs diff {diff})")
    args, kwargs = case.args, case.kwargs
    row.update(
        eager_ms=_median_call_ms(lambda: case.model(*args, **kwargs)),
        export_ms=_median_call_ms(lambda: exported(*args, **kwargs)),
        aoti_ms=_median_call_ms(lambda: packaged(*args, **kwargs)),
        max_abs_diff=worst,
        probes=len(ran),
        verdict="ok" if not failures else "outputs differ",
        detail="; ".join(failures)[:500],
    )
    _record(row, "aoti")
    assert not failures, "\n".join(failures)
