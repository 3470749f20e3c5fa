"""``compat.package``: AOTInductor's compiled code for a program holding engine objects, the shape of a
Torch-TensorRT hybrid program. No TensorRT engine runs here, so the engine is a stand-in that flattens as
``tensorrt::Engine`` does from torch_tensorrt 2.8 (``trtshim.testing.flattening_engine_standin``: a real
TorchBind class and op, built in C++ against the installed wheel). Which torch_tensorrt releases can
package their engines is checked against each release's source in ``test_tensorrt_conformance``."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from torch.export import Dim

from conftest import run_python
from trtshim import compat, errors
from trtshim.compat.backends import inductor
from trtshim.compat.environment import Environment
from trtshim.compat.versions import PackageVersion

pytestmark = [pytest.mark.requires("torch>=2.8"), pytest.mark.slow]  # fake classes AOTInductor can trace
STANDIN = "trtshim.testing.flattening_engine_standin"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> tuple[torch.nn.Module, compat.CompiledModule, Path]:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed (the stand-in engine is C++)")
    from trtshim.testing.flattening_engine_standin import HybridNet

    torch.manual_seed(0)
    model = HybridNet().eval()
    x = torch.randn(2, 3, 16, 16)
    hybrid = compat.compile(model, (x,), backend="export", dynamic_shapes={"x": {0: Dim("batch", max=8)}})
    module = compat.package(hybrid)
    return model, module, Path(compat.save(module, tmp_path_factory.mktemp("pkg") / "hybrid.pt2"))


def test_a_program_holding_engines_packages_and_answers_as_eager(packaged) -> None:
    model, module, path = packaged
    assert module.backend == "inductor"
    for batch in (1, 3, 8):
        x = torch.randn(batch, 3, 16, 16)
        torch.testing.assert_close(module(x), model.eager(x))
    with pytest.raises(errors.InputMismatchError, match="Dim 'batch'"):
        module(torch.randn(9, 3, 16, 16))
    names = zipfile.ZipFile(path).namelist()
    # the engine object goes in once, as AOTInductor's constant: the program is nested beside the package
    assert sum(n.endswith("custom_obj_0") for n in names) == 1 and inductor.nested_program(names)
    runner = torch._inductor.aoti_load_package(str(path))  # torch's own loader reads the file as it is
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(runner(x), model.eager(x))


@pytest.mark.requires("torch>=2.13")  # measured: 2.13, 2.14, 2.15 fail; 2.8 writes the object once
def test_torch_writes_the_engine_twice_into_its_own_pt2_archive(packaged) -> None:
    """The upstream defect the nested layout avoids: package_pt2 with the program and AOTInductor's files
    writes the engine object to the same member twice."""
    import io

    from torch.export.pt2_archive._package import package_pt2

    _, module, _ = packaged
    with pytest.raises(RuntimeError, match="serialize file twice"):
        package_pt2(io.BytesIO(), exported_programs={"model": module.program}, aoti_files={"model": module.aoti_files})


def test_the_saved_package_loads_in_a_fresh_process_where_the_engine_op_is_allowed(packaged, tmp_path) -> None:
    model, _, path = packaged
    x = torch.randn(5, 3, 16, 16)
    torch.save((x, model.eager(x)), tmp_path / "io.pt")
    code = (
        "import torch\nfrom trtshim import compat, errors\n"
        f"x, want = torch.load({str(tmp_path / 'io.pt')!r})\n"
        "try:\n"
        f"    compat.load({str(path)!r}, trust_code=True)\n"
        "except errors.MissingOpError as exc:\n"
        "    print('refused', 'allow_imports' in exc.hint)\n"
        f"m = compat.load({str(path)!r}, trust_code=True, allow_imports=[{STANDIN!r}])\n"
        "print(type(m).__name__, torch.allclose(m(x), want, atol=1e-5))\n"
    )
    out = run_python(code)
    assert out.stdout.split() == ["refused", "True", "PackagedModule", "True"], out.stderr[-2000:]


def test_packaging_takes_only_compiled_modules(packaged) -> None:
    _, module, _ = packaged
    with pytest.raises(errors.OptionError, match="already packaged"):
        compat.package(module)
    with pytest.raises(errors.OptionError, match="got Linear"):
        compat.package(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_tensorrt_engines_package_only_where_torch_tensorrt_can() -> None:
    env = compat.detect()

    def on(release: str | None) -> Environment:
        ttrt = PackageVersion("torch-tensorrt", release) if release else None
        return Environment(env.python, env.platform, env.torch, ttrt, env.tensorrt)

    assert inductor.engines_packageable(on("2.8.0"))[0] and inductor.engines_packageable(on("2.14.0"))[0]
    ok, why = inductor.engines_packageable(on("2.7.0"))
    assert not ok and "torch_tensorrt 2.7.0 does not package its engines" in why
    ok, why = inductor.engines_packageable(on("2.5.0"))
    assert not ok and "torch_tensorrt 2.5.0 registers no fake tensorrt::Engine" in why
    assert "not installed" in inductor.engines_packageable(on(None))[1]


def test_a_hostile_pickle_inside_the_nested_program_is_refused_before_anything_runs(packaged, tmp_path) -> None:
    """The nested program is scanned like any member: an engine object swapped for a pickle that calls
    os.system is refused (the table resealed, the caller vouching for code), and nothing runs."""
    import io

    from trtshim.testing.rewrite import resealed

    _, _, path = packaged
    marker = tmp_path / "ran"
    evil_pickle = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    evil_object = io.BytesIO()
    with zipfile.ZipFile(evil_object, "w") as z:
        z.writestr("archive/data.pkl", evil_pickle)

    def swap(data: bytes, member: str, new: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
            for info in zin.infolist():
                zout.writestr(info, new if info.filename == member else zin.read(info))
        return out.getvalue()

    original = path.read_bytes()
    nested = inductor.nested_program(zipfile.ZipFile(path).namelist())
    assert nested is not None
    program = zipfile.ZipFile(path).read(nested)
    # the engine object: its own member (torch >= 2.9), or inside the constants' pickle archive (2.8)
    obj = next(n for n in zipfile.ZipFile(io.BytesIO(program)).namelist() if "/constants/" in n and not n.endswith(".json"))
    hostile = tmp_path / "hostile.pt2"
    hostile.write_bytes(resealed(swap(original, nested, swap(program, obj, evil_object.getvalue()))))
    with pytest.raises(errors.UnsafeArtifactError, match="system"):
        compat.load(hostile, trust_code=True, allow_imports=[STANDIN])
    assert not marker.exists()
