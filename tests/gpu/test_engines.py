"""End to end with real TensorRT engines: compile -> save -> load in a fresh process -> compare.

Runs where TensorRT engines can run (a CUDA device that the installed TensorRT flavour supports).
Everywhere else every test skips with the reason ``trtshim doctor`` gives; none passes vacuously.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trtshim import compat
from trtshim.compat import backends

USABLE, WHY = backends.tensorrt_usable()
pytestmark = pytest.mark.skipif(not USABLE, reason=f"no TensorRT engine can run here: {WHY}")


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return self.conv2(torch.relu(self.bn(self.conv(x))))


@pytest.mark.parametrize(
    "torch_executed_ops", [(), ("torch.ops.aten.relu.default",)], ids=["all-trt", "hybrid"]
)
def test_compile_save_load_compare(tmp_path: Path, torch_executed_ops) -> None:
    model = Net().eval().cuda()
    x = torch.randn(2, 3, 16, 16, device="cuda")
    compiled = compat.compile(
        model, (x,), backend="tensorrt", torch_executed_ops=torch_executed_ops, min_block_size=1
    )
    assert compiled.backend == "tensorrt"
    with torch.inference_mode():
        expected = model(x)
        assert torch.allclose(compiled(x), expected, atol=1e-2, rtol=1e-2)
    path = compat.save(compiled, tmp_path / "trt.pt2")
    torch.save(x.cpu(), tmp_path / "x.pt")
    code = (
        "import torch\nfrom trtshim import compat\n"
        f"m = compat.load({os.fspath(path)!r}, device='cuda')\n"
        f"y = m(torch.load({os.fspath(tmp_path / 'x.pt')!r}).cuda())\n"
        f"torch.save(y.cpu(), {os.fspath(tmp_path / 'y.pt')!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.allclose(torch.load(tmp_path / "y.pt"), expected.cpu(), atol=1e-2, rtol=1e-2)


def test_fp16_means_fp16(tmp_path: Path) -> None:
    model = Net().eval().cuda()
    x = torch.randn(2, 3, 16, 16, device="cuda")
    compiled = compat.compile(model, (x,), backend="tensorrt", precision="fp16", min_block_size=1)
    with torch.inference_mode():
        assert torch.allclose(compiled(x).float(), model(x), atol=5e-2, rtol=5e-2)
