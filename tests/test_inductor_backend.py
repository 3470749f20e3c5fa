"""The inductor backend: AOTInductor's compiled code through the same compile / save / load, compared
with eager; the archive is torch's own PT2 package (``aoti_load_package`` reads it; on torch 2.6-2.7 with
the program nested in it); ``load`` treats it as code (trust_code or a signature) and checks it before
anything runs."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch.export import Dim

from conftest import run_python
from trtshim import compat, errors
from trtshim.compat.gates import requires
from trtshim.testing.rewrite import resealed, rewrite_manifest

needs_packages = pytest.mark.requires("torch>=2.6")


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean((2, 3))) * scale


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> tuple[torch.nn.Module, compat.CompiledModule, Path]:
    if not requires("torch>=2.6"):
        pytest.skip("the inductor backend needs torch >= 2.6")
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(2, 3, 16, 16)
    module = compat.compile(
        model, (x,), example_kwargs={"scale": torch.ones(1)}, backend="inductor",
        dynamic_shapes={"x": {0: Dim("batch", max=16)}, "scale": None},
    )
    path = Path(compat.save(module, tmp_path_factory.mktemp("aoti") / "net.pt2"))
    return model, module, path


@needs_packages
def test_compiled_code_answers_as_eager_and_keeps_the_contract(packaged) -> None:
    model, module, _ = packaged
    assert module.backend == "inductor"
    for batch in (1, 2, 16):
        x = torch.randn(batch, 3, 16, 16)
        torch.testing.assert_close(module(x, scale=torch.full((1,), 2.0)), model(x, torch.full((1,), 2.0)))
    with pytest.raises(errors.InputMismatchError, match="Dim 'batch'"):
        module(torch.randn(17, 3, 16, 16), scale=torch.ones(1))
    with pytest.raises(errors.InputMismatchError, match="dtype"):
        module(torch.randn(2, 3, 16, 16, dtype=torch.float64), scale=torch.ones(1))


@needs_packages
def test_the_archive_is_torchs_own_package(packaged) -> None:
    model, _, path = packaged
    runner = torch._inductor.aoti_load_package(str(path))
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(runner(x, scale=torch.ones(1)), model(x, torch.ones(1)))
    manifest, kind = compat.read_manifest(path)
    assert kind == "aoti" and manifest["backend"] == "inductor" and manifest["aoti"]["device"] == "cpu"
    from trtshim.compat.backends import inductor

    names = zipfile.ZipFile(path).namelist()
    if requires("torch<2.8"):  # torch's package holds no program: trtshim nests it, and torch reads it back
        assert inductor.nested_program(names) == inductor.PROGRAM_MEMBER
        program = torch.export.load(io.BytesIO(zipfile.ZipFile(path).read(inductor.PROGRAM_MEMBER)))
        torch.testing.assert_close(program.module()(x, scale=torch.ones(1)), model(x, torch.ones(1)))
    else:
        assert inductor.nested_program(names) is None


@needs_packages
def test_load_in_a_fresh_process_needs_trust_and_answers_as_eager(packaged, tmp_path) -> None:
    model, _, path = packaged
    with pytest.raises(errors.UnsafeArtifactError, match="AOTInductor code"):
        compat.load(path)
    x = torch.randn(5, 3, 16, 16)
    torch.save((x, model(x, torch.ones(1))), tmp_path / "io.pt")
    code = (
        "import torch\nfrom trtshim import compat\n"
        f"x, want = torch.load({str(tmp_path / 'io.pt')!r})\n"
        f"m = compat.load({str(path)!r}, trust_code=True)\n"
        "print(type(m).__name__, torch.allclose(m(x, scale=torch.ones(1)), want, atol=1e-5))\n"
    )
    out = run_python(code)
    assert out.stdout.split() == ["PackagedModule", "True"], out.stderr[-2000:]
    again = compat.save(compat.load(path, trust_code=True), tmp_path / "again.pt2")  # a loaded module re-saves
    torch.testing.assert_close(compat.load(again, trust_code=True)(x, scale=torch.ones(1)), model(x, torch.ones(1)))


@needs_packages
def test_a_signature_by_a_trusted_key_stands_for_trust_code(packaged, tmp_path) -> None:
    pytest.importorskip("cryptography")
    _, _, path = packaged
    signed = tmp_path / "signed.pt2"
    shutil.copy(path, signed)
    key, pub = compat.keygen(tmp_path / "team")
    compat.sign(signed, key)
    assert compat.load(signed, public_key=pub).backend == "inductor"


def _shared_library_with_constructor(folder: Path, marker: Path) -> bytes:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    source = folder / "evil.c"
    source.write_text(
        "#include <stdio.h>\n__attribute__((constructor)) static void run(void) {\n"
        f'  FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("ran", f); fclose(f); }}\n}}\n'
    )
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(folder / "evil.so"), str(source)], check=True)
    return (folder / "evil.so").read_bytes()


def _replaced(data: bytes, predicate, new: bytes, rename: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            if predicate(info.filename):
                if rename:
                    info.filename = rename
                zout.writestr(info, new)
            else:
                zout.writestr(info, zin.read(info))
    return out.getvalue()


@needs_packages
def test_hostile_packages_are_refused_before_their_code_runs(packaged, tmp_path) -> None:
    _, _, path = packaged
    marker = tmp_path / "constructor-ran"
    evil = _shared_library_with_constructor(tmp_path, marker)
    original = path.read_bytes()
    is_wrapper = lambda name: name.endswith(".so")  # noqa: E731  (torch 2.6 names it <hash>.so)

    swapped = tmp_path / "swapped.pt2"  # the library replaced, the table left as it was
    swapped.write_bytes(_replaced(original, is_wrapper, evil))
    with pytest.raises(errors.CorruptedArtifactError):
        compat.load(swapped, trust_code=True)

    resealed_file = tmp_path / "resealed.pt2"  # the table computed anew: integrity is not authenticity
    resealed_file.write_bytes(resealed(_replaced(original, is_wrapper, evil)))
    with pytest.raises(errors.UnsafeArtifactError, match="AOTInductor code"):
        compat.load(resealed_file)

    traversal = tmp_path / "traversal.pt2"
    traversal.write_bytes(resealed(_replaced(original, is_wrapper, evil, "archive/data/aotinductor/model/../../../../evil.so")))
    with pytest.raises(errors.CorruptedArtifactError, match="escapes the archive"):
        compat.load(traversal, trust_code=True)
    with pytest.raises(errors.CorruptedArtifactError, match="escapes the archive"):  # also with verify=False
        compat.load(traversal, trust_code=True, verify=False)
    from trtshim.compat.backends import inductor

    with pytest.raises(errors.CorruptedArtifactError, match="outside its folder"):  # the package's own check
        inductor.check_members(str(traversal), zipfile.ZipFile(traversal).namelist())
    assert not marker.exists(), "a hostile library's constructor ran"


@needs_packages
def test_a_swapped_library_of_the_same_size_is_refused_before_its_code_runs(packaged, tmp_path, monkeypatch) -> None:
    """A model's library (1 MiB and more) is a bulk member, hashed beside torch's read of the program; nothing
    that loads the library may run before that digest has matched (torch.export.load of a package loads it).
    The bulk threshold is lowered so that this test's small library takes that path."""
    from trtshim.compat.artifact.trust import integrity

    monkeypatch.setattr(integrity, "BULK_BYTES", 1)
    _, _, path = packaged
    marker = tmp_path / "constructor-ran"
    evil = _shared_library_with_constructor(tmp_path, marker)
    is_wrapper = lambda name: name.endswith(".so")  # noqa: E731
    with zipfile.ZipFile(path) as zf:
        size = next(info.file_size for info in zf.infolist() if is_wrapper(info.filename))
    assert len(evil) <= size
    swapped = tmp_path / "swapped-same-size.pt2"  # same stored size and method: only the digest differs
    swapped.write_bytes(_replaced(path.read_bytes(), is_wrapper, evil + b"\0" * (size - len(evil))))
    with pytest.raises(errors.CorruptedArtifactError, match="changed after it was saved"):
        compat.load(swapped, trust_code=True)
    assert not marker.exists(), "a hostile library's constructor ran before its digest was checked"


@needs_packages
def test_code_of_another_torch_is_refused_before_loading(packaged, tmp_path) -> None:
    _, _, path = packaged

    def other_torch(manifest: dict) -> None:
        manifest["environment"]["torch"] = "2.99.0"

    moved = rewrite_manifest(path, tmp_path / "other.pt2", other_torch)
    with pytest.raises(errors.IncompatibleArtifactError, match="compiled by torch 2.99.0"):
        compat.load(moved, trust_code=True)
    with pytest.raises(errors.IncompatibleArtifactError, match="device='cpu'|compiled for cpu"):
        compat.load(path, trust_code=True, device="meta")
    with pytest.raises(errors.IncompatibleArtifactError, match="cannot be upgraded"):
        from trtshim.compat.artifact.upgrading import plan_upgrade

        plan_upgrade(path)


@pytest.mark.requires("torch<2.6")
def test_older_torch_names_the_first_torch_with_packages() -> None:
    with pytest.raises(errors.BackendUnavailableError, match=r"torch >= 2.6 \(aoti_compile_and_package"):
        compat.compile(Net().eval(), (torch.randn(1, 3, 16, 16), torch.ones(1)), backend="inductor")


def test_the_inductor_backend_refuses_unknown_options() -> None:
    if not requires("torch>=2.6"):
        pytest.skip("the inductor backend needs torch >= 2.6")
    with pytest.raises(errors.OptionError, match="does not take option"):
        compat.compile(Net().eval(), (torch.randn(1, 3, 16, 16), torch.ones(1)), backend="inductor", bogus=1)


@needs_packages
@pytest.mark.slow
def test_the_cpp_example_loads_what_compat_save_wrote(tmp_path) -> None:
    """examples/cpp: libtorch's AOTIModelPackageLoader runs the archive; outputs equal eager."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    script = Path(__file__).parent.parent / "examples" / "cpp" / "run.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "C++ output vs eager: max abs error" in out.stdout
