"""Concurrency and faults (issue 11): threads, a save killed at random points, a full disk."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from trtshim import compat, errors
from trtshim.compat.artifact import atomic
from trtshim.fixes.lp1_engine_with_weights import graph_module_fallback_patch
from trtshim.testing.engine_standin import make_hybrid, make_seed_model


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_eight_threads_compile_save_and_load_with_right_outputs(tmp_path: Path) -> None:
    patch = graph_module_fallback_patch()
    target = __import__(patch.module, fromlist=[patch.attribute]) if patch.available() else None
    original = getattr(target, patch.attribute) if target is not None else None
    results: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(i))
            if i % 2:  # a hybrid graph: the engine stand-in between weighted layers
                model, engine = make_seed_model(seed=i)
                path = tmp_path / f"hybrid{i}.pt2"
                compat.save(make_hybrid(model, engine, (x,)), path, example_inputs=(x,))
            else:
                model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh()).eval()
                with torch.no_grad():
                    for p in model.parameters():
                        p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(100 + i)))
                path = tmp_path / f"plain{i}.pt2"
                compat.save(compat.compile(model, (x,), backend="export"), path)
            for _ in range(2):
                loaded = compat.load(path)
                # torch's tracer patches nn.Module.__call__ process-wide while it runs: a module called in
                # one thread while another exports can be traced into (measured once on torch 2.8)
                with torch.inference_mode(), compat.tracing_lock():
                    got, want = loaded(x), model(x)
                diff = (got - want).abs().max().item()
                results[i] = "ok" if torch.equal(got, want) else f"wrong outputs (max abs diff {diff:.3g})"
        except Exception as exc:  # reported below, per thread
            results[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    print(f"threads: {sum(r == 'ok' for r in results.values())} of 8 ok")
    assert results == dict.fromkeys(range(8), "ok")
    assert not patch.active
    if target is not None:
        assert getattr(target, patch.attribute) is original  # no patched torch attribute left behind
    assert _temporaries(tmp_path) == []


_SAVER = textwrap.dedent(
    """
    import sys, torch
    from trtshim import compat
    path = sys.argv[1]
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.Tanh()).eval()
        models.append(compat.compile(m, (torch.randn(2, 512),), backend="export"))
    print("ready", flush=True)
    while True:
        for m in models:
            compat.save(m, path)
    """
)


def _expected_outputs() -> list[torch.Tensor]:
    x = torch.ones(2, 512)
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.Tanh()).eval()
        torch.randn(2, 512)
        with torch.inference_mode():
            out.append(m(x))
    return out


def test_a_save_killed_at_random_points_leaves_the_old_file_and_no_temporaries(tmp_path: Path) -> None:
    """Eight savers killed (SIGKILL) at random moments while they rewrite one file with two models."""
    path = tmp_path / "m.pt2"
    expected = _expected_outputs()
    rng = random.Random(11)
    outcomes = {"old or new file intact": 0, "no file yet": 0, "temporaries left by the kill": 0}
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for _ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 1.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
        outcomes["temporaries left by the kill"] += bool(_temporaries(tmp_path))
        if not path.exists():
            outcomes["no file yet"] += 1
            continue
        loaded = compat.load(path)  # every digest checked: a half-written file would be refused
        with torch.inference_mode():
            got = loaded(torch.ones(2, 512))
        assert any(torch.equal(got, e) for e in expected)
        outcomes["old or new file intact"] += 1
    print(f"kills: {outcomes}")
    assert outcomes["old or new file intact"] >= 6
    torch.manual_seed(0)
    compat.save(compat.compile(torch.nn.Linear(2, 2), (torch.randn(1, 2),), backend="export"), path)
    assert _temporaries(tmp_path) == []  # the next save removed what the killed ones left


def test_stale_temporaries_of_live_processes_are_kept(tmp_path: Path) -> None:
    mine = tmp_path / f".m.pt2.{os.getpid()}.abc.tmp"
    dead = tmp_path / ".m.pt2.999999999.abc.tmp"  # no such pid
    other = tmp_path / ".other.pt2.999999999.abc.tmp"
    for p in (mine, dead, other):
        p.write_bytes(b"x")
    assert atomic.remove_stale_temporaries(str(tmp_path), "m.pt2") == [dead.name]
    assert mine.exists() and other.exists() and not dead.exists()


@pytest.fixture
def small_filesystem(tmp_path: Path):
    """A 1 MiB tmpfs (needs root and mount rights: skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_a_typed_error_and_keeps_the_old_file(small_filesystem: Path) -> None:
    torch.manual_seed(0)
    small = torch.nn.Linear(4, 4).eval()
    x = torch.randn(2, 4)
    path = small_filesystem / "m.pt2"
    compat.save(compat.compile(small, (x,), backend="export"), path)
    before = path.read_bytes()
    big = torch.nn.Linear(1024, 1024).eval()  # 4 MiB of weights: more than the filesystem holds
    with pytest.raises(errors.ArtifactWriteError, match="no space left") as info:
        compat.save(compat.compile(big, (torch.randn(2, 1024),), backend="export"), path)
    assert "unchanged" in info.value.hint
    assert path.read_bytes() == before and _temporaries(small_filesystem) == []
    with torch.inference_mode():
        assert torch.equal(compat.load(path)(x), small(x))


def test_a_save_over_an_existing_file_swaps_it_in_one_step(tmp_path: Path) -> None:
    """Over an existing regular file (Linux), the new file is swapped in by renameat2(RENAME_EXCHANGE) and
    the old one removed; a folder in the way is refused as os.replace refuses it, and left where it was."""
    from unittest import mock

    torch.manual_seed(0)
    first = compat.compile(torch.nn.Linear(4, 4), (torch.randn(2, 4),), backend="export")
    second = compat.compile(torch.nn.Linear(4, 4), (torch.randn(2, 4),), backend="export")
    path = tmp_path / "m.pt2"
    compat.save(first, path)
    swapped: list[bool] = []
    real = atomic._exchange
    with mock.patch.object(atomic, "_exchange", lambda tmp, p: swapped.append(real(tmp, p)) or swapped[-1]):
        compat.save(second, path)
    if sys.platform.startswith("linux"):
        assert swapped == [True]
    x = torch.randn(2, 4)
    with torch.inference_mode():
        assert torch.equal(compat.load(path)(x), second.program.module()(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2"]  # the old file went with its temporary name
    folder = tmp_path / "taken.pt2"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(OSError):
        compat.save(second, folder)
    assert (folder / "inside").is_dir() and _temporaries(tmp_path) == []
