from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import run_python
from trtshim import compat, errors
from trtshim.compat.artifact import checks, loading, record
from trtshim.compat.artifact.manifest import MANIFEST_NAME, read_manifest
from trtshim.compat.gates import requires
from trtshim.fixes import active
from trtshim.testing.rewrite import rewrite_manifest


@pytest.fixture
def saved(small_cnn, example, compile_quiet, tmp_path: Path) -> Path:
    path = tmp_path / "model.pt2"
    compat.save(compile_quiet(small_cnn, (example,)), path)
    return path


def test_round_trip(saved: Path, small_cnn, example) -> None:
    loaded = compat.load(saved)
    assert isinstance(loaded, compat.CompiledModule)
    with torch.inference_mode():
        assert torch.equal(loaded(example), small_cnn(example))
    assert loaded.manifest is not None and loaded.backend == "export"


def test_plain_torch_export_load_reads_our_archive(saved: Path, small_cnn, example) -> None:
    extra = {MANIFEST_NAME: ""}
    ep = torch.export.load(saved, extra_files=extra)
    with torch.inference_mode():
        assert torch.equal(ep.module()(example), small_cnn(example))
    assert json.loads(extra[MANIFEST_NAME])["backend"] == "export"
    assert json.loads(extra[MANIFEST_NAME])["exporter"] == "torch.export.export"


def test_manifest_records_provenance(saved: Path) -> None:
    manifest, kind = read_manifest(saved)
    assert kind == "torch.export" and manifest is not None
    env = manifest["environment"]
    assert env["torch"] == torch.__version__ and env["cuda"] == torch.version.cuda
    assert {"python", "torch_tensorrt", "torch_tensorrt_flavour", "tensorrt_version"} <= set(env)
    assert manifest["export_schema"] == record.export_schema_version()
    (name,) = torch.export.load(saved).graph_signature.user_inputs  # "x"; "argN_1" on torch <= 2.3
    expected = {"name": name, "dtype": "float32", "shape": [2, 3, 16, 16], "dynamic": []}
    if name != "x":
        expected["path"] = "x"  # the user's name of the input, where torch's placeholder differs
    assert manifest["inputs"] == [expected]
    assert manifest["custom_ops"] == []
    fixes = {f["id"]: f for f in manifest["fixes"]}
    save_stage = {d.fix.id for d in active("save").decisions}  # LP-6, SE-3, SE-6
    assert set(fixes) == {"LP-2", "LP-8"} | save_stage  # the call-path fixes CompiledModule carries; none at export
    assert all(f["reason"] and isinstance(f["applied"], bool) for f in fixes.values())


def test_custom_ops_are_recorded_with_their_module(tmp_path: Path) -> None:
    from trtshim import demo

    model = demo.make_model()
    compiled = compat.compile(model, (torch.randn(1, 3, 8, 8),), backend="export")
    path = compat.save(compiled, tmp_path / "demo.pt2")
    manifest, _ = read_manifest(path)
    assert manifest is not None
    (op,) = manifest["custom_ops"]
    assert op["qualname"] == "trtshim_demo::scaled_tanh"
    assert op["module"] == "trtshim.demo"
    assert "float scale" in op["schema"]


def test_load_in_a_fresh_process(saved: Path, small_cnn, example, tmp_path: Path) -> None:
    torch.save(example, tmp_path / "x.pt")
    code = (
        "import torch, warnings\nfrom trtshim import compat\n"
        f"m = compat.load({os.fspath(saved)!r})\n"
        f"torch.save(m(torch.load({os.fspath(tmp_path / 'x.pt')!r})), {os.fspath(tmp_path / 'y.pt')!r})"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    with torch.inference_mode():
        assert torch.equal(torch.load(tmp_path / "y.pt"), small_cnn(example))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda p, good: p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2]),
            errors.CorruptedArtifactError,
            "damaged zip",
        ),
        (lambda p, good: p.write_bytes(os.urandom(4096)), errors.NotAnArtifactError, "not a zip archive"),
        (lambda p, good: p.write_text('{"not": "a zip"}'), errors.NotAnArtifactError, "not a zip archive"),
        (lambda p, good: p.write_bytes(b""), errors.NotAnArtifactError, "empty file"),
        (
            lambda p, good: zipfile.ZipFile(p, "w").writestr("hello.txt", "hi"),
            errors.NotAnArtifactError,
            "not a torch.export",
        ),
    ],
    ids=["truncated", "random-bytes", "json", "empty", "other-zip"],
)
def test_bad_files_raise_the_right_error(saved: Path, tmp_path: Path, make, error, match) -> None:
    bad = tmp_path / "bad.pt2"
    make(bad, saved)
    with pytest.raises(error, match=match) as info:
        compat.load(bad)
    assert isinstance(info.value, errors.TrtShimError) and info.value.hint


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(errors.ArtifactNotFoundError):
        compat.load(tmp_path / "nope.pt2")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError, for callers that catch that
        compat.load(tmp_path / "nope.pt2")


def test_corrupted_member_is_reported_as_corrupted(saved: Path, small_cnn, tmp_path: Path) -> None:
    data = bytearray(saved.read_bytes())
    weight = small_cnn.conv.weight.detach().contiguous().numpy().tobytes()
    start = data.find(weight[:64])  # torch stores tensors uncompressed: find the conv weight's bytes
    assert start > 0
    data[start : start + 16] = bytes(16)  # zero 16 bytes of it: the member's CRC no longer matches
    bad = tmp_path / "flipped.pt2"
    bad.write_bytes(bytes(data))
    with pytest.raises(errors.CorruptedArtifactError, match="(BLAKE3|SHA-256) of its member '.*(weight|state_dict)"):
        compat.load(bad)
    try:  # torch's own loader: its zip reader (>= 2.8) does not check CRCs and returns damaged weights
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plain = torch.export.load(bad)
    except Exception:
        return  # older torch read archives with Python's zipfile, which does check
    assert not torch.equal(plain.state_dict["conv.weight"], small_cnn.conv.weight)


def test_plain_archive_loads_with_a_provenance_warning(small_cnn, example, tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt2"
    torch.export.save(torch.export.export(small_cnn, (example,)), plain)  # as torch_tensorrt.save writes
    with pytest.warns(errors.ProvenanceWarning, match="no provenance checks"):
        loaded = compat.load(plain)
    with torch.inference_mode():
        assert torch.equal(loaded(example), small_cnn(example))
    with pytest.raises(errors.MissingManifestError):
        compat.load(plain, strict=True)


def test_incompatible_schema_is_refused_before_deserializing(
    saved: Path, tmp_path: Path, monkeypatch
) -> None:
    def older(manifest: dict) -> None:
        manifest["export_schema"] = [record.export_schema_version()[0] - 1, 0]
        manifest["environment"]["torch"] = "2.2.2"

    rewritten = rewrite_manifest(saved, tmp_path / "old.pt2", older)
    called = []
    monkeypatch.setattr(loading, "_deserialize", lambda *a: called.append(a))
    with pytest.raises(errors.IncompatibleArtifactError, match="saved by torch 2.2.2") as info:
        compat.load(rewritten)
    assert "2.2" in info.value.hint and called == []


def test_save_is_atomic(small_cnn, example, compile_quiet, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "model.pt2"
    compiled = compile_quiet(small_cnn, (example,))
    compat.save(compiled, path)
    before = path.read_bytes()

    def explode(ep, f, **kwargs):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(torch.export, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        compat.save(compiled, path)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["model.pt2"]  # no temporary left behind


def test_save_refuses_what_it_cannot_write(tmp_path: Path, small_cnn) -> None:
    with pytest.raises(errors.TrtShimError, match="takes a CompiledModule"):
        compat.save(small_cnn, tmp_path / "x.pt2")  # type: ignore[arg-type]


def test_load_moves_state_to_the_requested_device(saved: Path) -> None:
    loaded = compat.load(saved, device="meta")  # a second device that exists on every machine
    assert {t.device.type for t in loaded.state_dict().values()} == {"meta"}
    assert loaded.scale.device.type == "meta" and loaded.device == torch.device("meta")
    assert all(v.device.type == "meta" for v in loaded._bound)


def test_newer_minor_schema_warns_after_it_loads(saved: Path, monkeypatch) -> None:
    here = record.export_schema_version()
    if here[1] == 0:
        pytest.skip("this torch's schema has minor 0: no older minor to pretend to be")
    monkeypatch.setattr(checks, "export_schema_version", lambda: [here[0], here[1] - 1])
    manifest, _ = read_manifest(saved)
    assert "saved by a newer torch" in (checks.check_compatible(manifest, compat.detect()) or "")  # type: ignore[arg-type]
    with pytest.warns(errors.ArtifactCompatibilityWarning, match="saved by a newer torch"):
        compat.load(saved)


def test_a_newer_archive_that_fails_is_one_refusal_without_a_warning(saved: Path, monkeypatch) -> None:
    here = record.export_schema_version()
    if here[1] == 0:
        pytest.skip("this torch's schema has minor 0: no older minor to pretend to be")
    monkeypatch.setattr(checks, "export_schema_version", lambda: [here[0], here[1] - 1])
    monkeypatch.setattr(loading, "export_schema_version", lambda: [here[0], here[1] - 1])

    def unreadable(*args):
        raise errors.ArtifactError("torch.export.load failed: KeyError: 'a field this torch lacks'")

    monkeypatch.setattr(loading, "_deserialize", unreadable)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(errors.IncompatibleArtifactError, match="saved by a newer torch") as info:
            compat.load(saved)
    assert [w for w in caught if issubclass(w.category, errors.ArtifactCompatibilityWarning)] == []
    assert "a field this torch lacks" in info.value.reason


def test_save_leaves_the_callers_program_alone(tmp_path) -> None:
    """Integer parameters are stored as buffers (LP-6, torch 2.6+), in the file only: the caller's
    program keeps them."""

    class Steps(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)
            self.steps = torch.nn.Parameter(torch.tensor([2]), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) * self.steps

    x = torch.randn(2, 3)
    program = torch.export.export(Steps(), (x,))
    kinds = [s.kind.name for s in program.graph_signature.input_specs]
    path = compat.save(program, tmp_path / "steps.pt2")
    assert [s.kind.name for s in program.graph_signature.input_specs] == kinds  # untouched
    assert "steps" in dict(program.module().named_parameters())
    saved = torch.export.load(path)
    spec = next(s for s in saved.graph_signature.input_specs if s.target == "steps")
    assert spec.kind.name == ("BUFFER" if requires("torch>=2.6") else "PARAMETER")  # only 2.6+ archives reach 2.9
    with torch.inference_mode():
        assert torch.equal(compat.load(path)(x), program.module()(x))


def test_our_warnings_name_the_callers_line(tmp_path: Path, small_cnn, example) -> None:
    """A warning points at the code that called trtshim, not at trtshim's own wrappers."""
    plain = tmp_path / "plain.pt2"
    torch.export.save(torch.export.export(small_cnn, (example,)), plain)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compat.load(plain)
    (provenance,) = [w for w in caught if issubclass(w.category, errors.ProvenanceWarning)]
    assert provenance.filename == __file__
