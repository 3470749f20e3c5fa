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
