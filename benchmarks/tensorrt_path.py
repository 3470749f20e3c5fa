"""trtshim's TensorRT path against the direct torch_tensorrt calls, measured in one run.

Where TensorRT engines run (``trtshim doctor`` says so), it times, for a small CNN on CUDA:
compile (``compat.compile(backend="tensorrt")`` vs ``torch.export.export`` + ``torch_tensorrt.dynamo.compile``),
save (``compat.save`` vs ``torch_tensorrt.save``), load (``compat.load`` vs ``torch_tensorrt.load``), and
the per-call cost of the loaded module vs ``torch_tensorrt.load(...).module()``; it prints ratios.

Where torch_tensorrt imports but no engine can be deserialized (a machine without a usable GPU),
``--build-only`` times what still runs: torch_tensorrt lowering, the converters and
``build_serialized_network`` up to the failed deserialization, against trtshim's own work around that
call (export, translation, the CP-1 program copy). It says which mode ran. Elsewhere it says why it
cannot run and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from call_overhead import SmallCNN, per_call_us


def _median_s(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def full(repeats: int, calls: int) -> None:
    import torch

    from trtshim import compat

    ttrt = importlib.import_module("torch_tensorrt")
    torch.manual_seed(0)
    model = SmallCNN().eval().cuda()
    x = torch.randn(1, 3, 32, 32, device="cuda")
    release = compat.detect().torch_tensorrt.raw  # type: ignore[union-attr]
    from trtshim.compat.backends import tensorrt_api
    from trtshim.testing import tensorrt_save

    plan = tensorrt_api.translate(release, options={"min_block_size": 1})
    direct = lambda: ttrt.dynamo.compile(torch.export.export(model, (x,)), [x], **plan.resolved_kwargs())  # noqa: E731
    ours = lambda: compat.compile(model, (x,), backend="tensorrt", options={"min_block_size": 1})  # noqa: E731
    rows = {"compile": (_median_s(ours, repeats), _median_s(direct, repeats))}
    compiled, theirs = ours(), direct()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = os.path.join(tmp, "ours.pt2"), os.path.join(tmp, "theirs.pt2")
        save_kwargs = tensorrt_save.save_plan(release, retrace=False, inputs=[x])
        rows["save"] = (
            _median_s(lambda: compat.save(compiled, a), repeats),
            _median_s(lambda: ttrt.save(theirs, b, **save_kwargs), repeats),
        )
        rows["load"] = (
            _median_s(lambda: compat.load(a, device="cuda"), repeats),
            _median_s(lambda: ttrt.load(b), repeats),
        )
        loaded, reference = compat.load(a, device="cuda"), ttrt.load(b).module()
    with torch.inference_mode():
        us = (per_call_us(loaded, x, calls), per_call_us(reference, x, calls))
    print(f"mode: full (TensorRT engines run; torch_tensorrt {release}, {torch.cuda.get_device_name(0)})")
    for name, (t_ours, t_direct) in rows.items():
        print(
            f"  {name:8s} trtshim {t_ours * 1e3:9.1f} ms   direct {t_direct * 1e3:9.1f} ms   ratio {t_ours / t_direct:.3f}"
        )
    print(f"  per call trtshim {us[0]:9.1f} us   .module() {us[1]:9.1f} us   ratio {us[0] / us[1]:.3f}")


def build_only(repeats: int) -> None:
    import torch

    if not torch.cuda.is_available():  # torch_tensorrt calls these at import and compile time
        torch.cuda.get_device_capability = lambda *a, **k: (0, 0)
        torch.cuda.current_device = lambda: 0
        torch.cuda.mem_get_info = lambda *a, **k: (16 << 30, 16 << 30)
        print("note: torch.cuda.get_device_capability / current_device / mem_get_info patched (no GPU)")
    ttrt = importlib.import_module("torch_tensorrt")
    from trtshim import compat, errors
    from trtshim.compat.backends import tensorrt as tensorrt_backend

    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = torch.randn(1, 3, 32, 32)
    env = compat.detect()
    plan = tensorrt_backend.tensorrt_api.translate(env.torch_tensorrt.raw, options={"min_block_size": 1})  # type: ignore[union-attr]

    def direct() -> None:  # what a user writes without trtshim
        with contextlib.suppress(RuntimeError, AssertionError):  # no engine can be deserialized here
            ttrt.dynamo.compile(torch.export.export(model, (x,)), [x], **plan.resolved_kwargs())

    def ours() -> None:  # the backend behind compat.compile(backend="tensorrt")
        try:
            tensorrt_backend.compile_program(
                model,
                (x,),
                {},
                env=env,
                dynamic_shapes=None,
                precision="fp32",
                torch_executed_ops=(),
                options={"min_block_size": 1},
            )
        except errors.CompileError as exc:
            if "deserializeCudaEngine" not in exc.reason:
                raise

    t_direct, t_ours = [], []
    for _ in range(repeats):  # interleaved, so drift on a busy machine hits both alike
        t_direct.append(_median_s(direct, 1))
        t_ours.append(_median_s(ours, 1))
    d, o = statistics.median(t_direct), statistics.median(t_ours)
    print(f"mode: build-only (no engine can be deserialized here; torch_tensorrt {env.torch_tensorrt.raw})")  # type: ignore[union-attr]
    print(
        "  export + dynamo.compile up to the engine build (lowering, converters, build_serialized_network):"
    )
    print(f"  trtshim {o * 1e3:8.1f} ms   direct {d * 1e3:8.1f} ms   ratio {o / d:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--build-only", action="store_true", help="time up to the engine build")
    args = parser.parse_args()
    from trtshim.compat.backends import tensorrt_usable

    ok, why = tensorrt_usable()
    if ok and not args.build_only:
        full(args.repeats, args.calls)
    elif args.build_only and importlib.util.find_spec("torch_tensorrt") is not None:
        build_only(args.repeats)
    else:
        print(
            f"skipped: no TensorRT engine can run here: {why} (--build-only needs torch_tensorrt installed)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
