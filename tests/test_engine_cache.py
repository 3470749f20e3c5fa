"""trtshim's engine cache (``compat.backends.engine_cache``) around a build that makes a real hybrid
program: the seed model with one segment swapped for the engine stand-in (``trtshim_standin::
execute_engine`` taking a real TorchBind object; no TensorRT engine can run here). What is proven here is
the cache: a hit skips the build, every key change misses, a damaged or foreign entry is rebuilt, the
folder is bounded, concurrent writers are safe. The TensorRT build itself is ``tests/trt``'s."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from conftest import run_python
from trtshim import compat, errors
from trtshim.compat.backends.engine_cache import SUFFIX, EngineCache, cached
from trtshim.compat.call.module import CompiledModule
from trtshim.compat.environment import Environment
from trtshim.compat.programs.hybrid import export_hybrid
from trtshim.compat.versions import PackageVersion

pytestmark = pytest.mark.requires("torch>=2.3")  # hybrid programs with custom-object inputs

HOW = {"precision": "fp32", "torch_executed_ops": [], "options": {}}


class Builder:
    """The build a miss runs: a hybrid program from the seed model; counts its calls."""

    def __init__(self, seed: int = 0) -> None:
        from trtshim.testing.engine_standin import make_hybrid, make_seed_model

        self.model, self.engine = make_seed_model(seed)
        self.x = torch.randn(1, 3, 8, 8)
        self.source = torch.export.export(self.model, (self.x,))
        self._make_hybrid = make_hybrid
        self.calls = 0

    def __call__(self) -> CompiledModule:
        self.calls += 1
        program = export_hybrid(self._make_hybrid(self.model, self.engine, (self.x,)), (self.x,))
        return CompiledModule(program, backend="tensorrt", environment=compat.detect())


def _run(store: EngineCache, builder: Builder, env: Environment | None = None, **parts) -> tuple[CompiledModule, bool]:
    env = env or compat.detect()
    key = lambda: store.key(builder.source, env, None, **{"how": HOW, **parts})  # noqa: E731
    return cached(store, key, builder)


def test_a_hit_skips_the_build_and_answers_the_same(tmp_path: Path) -> None:
    store = EngineCache(str(tmp_path))
    builder = Builder()
    cold, hit = _run(store, builder)
    assert (hit, builder.calls) == (False, 1)
    warm, hit = _run(store, builder)
    assert (hit, builder.calls) == (True, 1)
    torch.testing.assert_close(warm(builder.x), cold(builder.x), rtol=0, atol=0)
    torch.testing.assert_close(warm(builder.x), builder.model(builder.x))
    assert len(list(tmp_path.glob(f"*{SUFFIX}"))) == 1


def test_every_key_change_misses(tmp_path: Path) -> None:
    store = EngineCache(str(tmp_path))
    builder = Builder()
    _run(store, builder)
    env = compat.detect()
    other_release = Environment(env.python, env.platform, env.torch, PackageVersion("torch-tensorrt", "2.9.0"), env.tensorrt)
    changes = {
        "precision": lambda: _run(store, builder, how={**HOW, "precision": "fp16"}),
        "options": lambda: _run(store, builder, how={**HOW, "options": {"unbounded_dim_max": 100}}),
        "Dim names": lambda: _run(store, builder, dim_names={"s0": "batch"}),
        "torch_tensorrt release": lambda: _run(store, builder, env=other_release),
    }
    for what, run in changes.items():
        before = builder.calls
        _, hit = run()
        assert not hit and builder.calls == before + 1, f"a change of {what} hit the cache"
    weights = Builder()
    with torch.no_grad():
        weights.model.conv1.weight.add_(1.0)
    weights.source = torch.export.export(weights.model, (weights.x,))
    _, hit = _run(store, weights)
    assert not hit and weights.calls == 1, "changed weights hit the cache"
    assert builder.calls == 5


@pytest.mark.parametrize("damage", ["flipped byte", "not an artifact", "truncated"])
def test_a_damaged_entry_is_announced_removed_and_rebuilt(tmp_path: Path, damage: str) -> None:
    store = EngineCache(str(tmp_path))
    builder = Builder()
    _run(store, builder)
    (entry,) = tmp_path.glob(f"*{SUFFIX}")
    data = bytearray(entry.read_bytes())
    if damage == "flipped byte":
        data[len(data) // 3] ^= 0xFF
    elif damage == "not an artifact":
        data = bytearray(b"PK\x03\x04 not a zip at all")
    else:
        data = data[: len(data) // 2]
    entry.write_bytes(bytes(data))
    with pytest.warns(errors.EngineCacheWarning, match="unusable.*rebuilding"):
        module, hit = _run(store, builder)
    assert not hit and builder.calls == 2
    torch.testing.assert_close(module(builder.x), builder.model(builder.x))
    _, hit = _run(store, builder)
    assert hit and builder.calls == 2  # the rebuilt entry is good


def test_the_folder_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    builder = Builder()
    store = EngineCache(str(tmp_path))
    _run(store, builder, dim_names={"a": "1"})
    size = next(tmp_path.glob(f"*{SUFFIX}")).stat().st_size
    small = EngineCache(str(tmp_path), max_bytes=int(size * 2.5))
    _run(small, builder, dim_names={"a": "2"})
    first, second = (small.key(builder.source, compat.detect(), None, how=HOW, dim_names={"a": n}) for n in "12")
    tick = time.time_ns() + 10**9  # one tick for both (a coarse clock), ahead of this process's clock
    for key in (first, second):
        os.utime(small.path(key), ns=(tick, tick))
    assert small.get(first) is not None  # used again
    _run(small, builder, dim_names={"a": "3"})
    keys = {
        name: small.path(small.key(builder.source, compat.detect(), None, how=HOW, dim_names={"a": name}))
        for name in "123"
    }
    assert {n: os.path.exists(p) for n, p in keys.items()} == {"1": True, "2": False, "3": True}


def test_a_hit_in_a_fresh_process_never_builds(tmp_path: Path) -> None:
    """A second process finds what the first stored; two processes storing one key at once both succeed."""
    code = f"""
import sys, torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_engine_cache import Builder, _run, EngineCache
store = EngineCache({str(tmp_path)!r})
builder = Builder()
module, hit = _run(store, builder)
print(hit, builder.calls, torch.allclose(module(builder.x), builder.model(builder.x), atol=1e-5))
"""
    first, second = run_python(code), run_python(code)
    assert first.stdout.split() == ["False", "1", "True"], first.stderr[-2000:]
    assert second.stdout.split() == ["True", "0", "True"], second.stderr[-2000:]
    for entry in tmp_path.glob(f"*{SUFFIX}"):
        entry.unlink()
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    assert [o[0].split()[2] for o in outs] == ["True", "True"]
    assert len(list(tmp_path.glob(f"*{SUFFIX}"))) == 1 and not list(tmp_path.glob("*.tmp"))


def test_the_cache_option_is_for_tensorrt_only(small_cnn, example, tmp_path: Path) -> None:
    with pytest.raises(errors.OptionError, match="cache= is for TensorRT engines"):
        compat.compile(small_cnn, (example,), backend="export", cache=tmp_path)
