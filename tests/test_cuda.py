"""Device mapping on a CUDA machine (LP-4). Skipped, with the reason, where torch has no CUDA device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trtshim import compat

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the CUDA checks need one"
)


def _on_cuda(model):
    model = model.cuda()
    model.offset = model.offset.cuda()  # a plain tensor attribute: .cuda() does not move it, in eager either
    return model


def test_saved_on_cuda_loads_where_asked(small_cnn, example, compile_quiet, tmp_path: Path) -> None:
    model, x = _on_cuda(small_cnn), example.cuda()
    path = compat.save(compile_quiet(model, (x,)), tmp_path / "cuda.pt2")
    plain = torch.export.load(path)
    saved_devices = {t.device.type for t in plain.state_dict.values()}
    print(f"torch.export.load of a CUDA program puts its state on: {sorted(saved_devices)}")

    on_cpu = compat.load(path, device="cpu")
    assert {t.device.type for t in on_cpu.state_dict().values()} == {"cpu"}
    assert all(v.device.type == "cpu" for v in on_cpu._bound)
    with torch.inference_mode():
        expected = model(x).cpu()
        assert torch.allclose(on_cpu(x.cpu()), expected, atol=1e-5)

    on_gpu = compat.load(path, device="cuda")
    assert all(v.device.type == "cuda" for v in on_gpu._bound)
    with torch.inference_mode():
        assert torch.allclose(on_gpu(x).cpu(), expected, atol=1e-5)


def test_input_on_the_wrong_device_is_a_typed_error(small_cnn, example, compile_quiet) -> None:
    from trtshim.errors import InputMismatchError

    compiled = compile_quiet(_on_cuda(small_cnn), (example.cuda(),))
    with pytest.raises(InputMismatchError, match="is on cpu"):
        compiled(example)


@pytest.mark.requires("torch>=2.8")
def test_an_inductor_package_compiled_on_cuda_loads_in_a_fresh_process(small_cnn, example, tmp_path: Path) -> None:
    """AOTInductor code for the GPU: compiled, saved, loaded by another process (trust_code), outputs equal
    to eager on the GPU; a load asking for the CPU is refused before the code is loaded."""
    import subprocess
    import sys

    from trtshim import errors

    probe = (  # torch's own package round trip, apart: where it crashes, the process dies with it
        "import torch\n"
        "m = torch.nn.Linear(4, 4).cuda(); x = torch.randn(2, 4, device='cuda')\n"
        f"p = torch._inductor.aoti_compile_and_package(torch.export.export(m, (x,)), package_path={str(tmp_path / 'probe.pt2')!r})\n"
        "torch._inductor.aoti_load_package(p)(x)\n"
    )
    crashed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600)
    if crashed.returncode < 0:
        pytest.skip(f"torch's own aoti_load_package of a CUDA package dies here (signal {-crashed.returncode})")
    model, x = _on_cuda(small_cnn), example.cuda()
    module = compat.compile(model, (x,), backend="inductor")
    torch.testing.assert_close(module(x), model(x), rtol=1e-3, atol=1e-4)
    path = compat.save(module, tmp_path / "cuda.pt2")
    assert compat.read_manifest(path)[0]["aoti"]["device"].startswith("cuda")
    torch.save((x.cpu(), model(x).detach().cpu()), tmp_path / "io.pt")
    code = (
        "import torch\nfrom trtshim import compat\n"
        f"x, want = torch.load({str(tmp_path / 'io.pt')!r})\n"
        f"m = compat.load({str(path)!r}, trust_code=True)\n"
        "got = m(x.cuda())\n"
        "print(got.device.type, torch.allclose(got.cpu(), want, rtol=1e-3, atol=1e-4))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.stdout.split() == ["cuda", "True"], out.stderr[-2000:]
    with pytest.raises(errors.IncompatibleArtifactError, match="compiled for cuda"):
        compat.load(path, trust_code=True, device="cpu")
