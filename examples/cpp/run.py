"""Build ``load_package.cpp`` against the installed torch wheel (its ``include`` and ``lib``), compile a
model with trtshim's inductor backend, save it with ``compat.save``, run the C++ loader on the file and
compare its outputs with eager. ``python examples/cpp/run.py [WORKDIR] [--device cuda]``; exits non-zero
on a mismatch. With ``--device cuda`` the model is compiled for the GPU and the loader runs it there
(linked against the wheel's CUDA libraries).
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time

import torch

from trtshim import compat

HERE = os.path.dirname(os.path.abspath(__file__))


def build(workdir: str, cuda: bool = False) -> str:
    """``g++`` against the wheel's headers and libraries (the wheel's own C++ ABI flag)."""
    root = os.path.dirname(torch.__file__)
    binary = os.path.join(workdir, "load_package")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [
        # C++20: torch >= 2.14's headers use concepts
        os.environ.get("CXX", "g++"), "-O1", "-std=c++20", f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        os.path.join(HERE, "load_package.cpp"), "-o", binary,
        "-I", os.path.join(root, "include"), "-I", os.path.join(root, "include", "torch", "csrc", "api", "include"),
        "-L", os.path.join(root, "lib"), f"-Wl,-rpath,{os.path.join(root, 'lib')}",
        "-ltorch", "-ltorch_cpu", "-lc10", *(["-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda"] if cuda else []),
    ]
    started = time.time()
    subprocess.run(cmd, check=True)
    print(f"built {binary} in {time.time() - started:.1f} s against torch {torch.__version__} ({sysconfig.get_platform()})")
    return binary


def write_tensors(path: str, tensors: list[torch.Tensor]) -> None:
    with open(path, "wb") as fh:
        fh.write(struct.pack("<I", len(tensors)))
        for t in tensors:
            t = t.float().contiguous()
            fh.write(struct.pack("<I", t.dim()) + struct.pack(f"<{t.dim()}q", *t.shape))
            fh.write(t.numpy().tobytes())


def read_tensors(path: str) -> list[torch.Tensor]:
    with open(path, "rb") as fh:
        data = fh.read()
    (count,), pos, out = struct.unpack_from("<I", data), 4, []
    for _ in range(count):
        (rank,) = struct.unpack_from("<I", data, pos)
        shape = struct.unpack_from(f"<{rank}q", data, pos + 4)
        pos += 4 + 8 * rank
        n = int(torch.Size(shape).numel())
        out.append(torch.frombuffer(bytearray(data[pos : pos + 4 * n]), dtype=torch.float32).reshape(shape))
        pos += 4 * n
    return out


def main(workdir: str, device: str = "cpu") -> int:
    os.makedirs(workdir, exist_ok=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    ).eval().to(device)
    x = torch.randn(2, 3, 32, 32, device=device)
    compiled = compat.compile(model, (x,), backend="inductor", dynamic_shapes=({0: torch.export.Dim("batch", max=64)},))
    archive = compat.save(compiled, os.path.join(workdir, "model.pt2"))
    binary = build(workdir, cuda=device == "cuda")
    probe = torch.randn(5, 3, 32, 32)
    write_tensors(os.path.join(workdir, "in.bin"), [probe])
    lib = os.path.join(os.path.dirname(torch.__file__), "lib")  # the package's own library dlopens libtorch
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [lib, os.environ.get("LD_LIBRARY_PATH")]))}
    run = subprocess.run(
        [binary, archive, os.path.join(workdir, "in.bin"), os.path.join(workdir, "out.bin"), device],
        capture_output=True, text=True, env=env,
    )
    print(run.stdout.strip() or run.stderr.strip())
    if run.returncode != 0:
        return run.returncode
    (got,) = read_tensors(os.path.join(workdir, "out.bin"))
    with torch.no_grad():
        want = model(probe.to(device)).cpu()
    error = (got - want).abs().max().item()
    print(f"C++ output vs eager: max abs error {error:.2e}")
    return 0 if error < 1e-4 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", default=None)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    opts = parser.parse_args()
    sys.exit(main(opts.workdir or tempfile.mkdtemp(prefix="trtshim-cpp-"), opts.device))
