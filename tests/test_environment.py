from __future__ import annotations

import importlib.metadata as md
import os
from pathlib import Path

import pytest

from trtshim.compat import detect
from trtshim.compat.environment import Environment, installed_distributions
from trtshim.compat.versions import PackageVersion, release_line


@pytest.mark.parametrize(
    ("raw", "line", "release", "ngc", "pre"),
    [
        ("2.5.0+cu124", "2.5", "2.5.0", False, False),
        ("2.13.0+cpu", "2.13", "2.13.0", False, False),
        ("2.4.0a0+3bcc3cddb5.nv24.07", "2.4", "2.4.0", True, True),
        ("2.6.0.dev20241112+cu124", "2.6", "2.6.0", False, True),
        ("2.12.0rc3", "2.12", "2.12.0", False, True),
        ("10.3.0.26", "10.3", "10.3.0", False, False),
        ("2.6.1", "2.6", "2.6.1", False, False),
    ],
)
def test_versions_map_to_their_release_line(raw: str, line: str, release: str, ngc: bool, pre: bool) -> None:
    pkg = PackageVersion("torch", raw)
    assert pkg.line == line
    assert str(pkg.release) == release
    assert pkg.is_ngc is ngc
    assert pkg.is_prerelease is pre


def test_ngc_prerelease_counts_as_its_release_line_in_ranges() -> None:
    from packaging.specifiers import SpecifierSet

    pkg = PackageVersion("torch", "2.4.0a0+3bcc3cddb5.nv24.07")
    assert pkg.version not in SpecifierSet(">=2.4")  # what a naive comparison says
    assert pkg.release in SpecifierSet(">=2.4")  # what fix ranges compare


def test_not_a_version() -> None:
    assert release_line("not-a-version") is None


def test_detect_agrees_with_importlib_metadata() -> None:
    env = detect()
    assert env.torch is not None
    assert env.torch.raw == md.version("torch")
    for pkg in env.tensorrt:
        assert pkg.raw == md.version(pkg.name)


def _fake_site(tmp_path: Path, dists: dict[str, str]) -> str:
    for name, version in dists.items():
        folder = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
        folder.mkdir()
        (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    return os.fspath(tmp_path)


def test_detect_flavour_and_tensorrt_set(tmp_path: Path) -> None:
    site = _fake_site(
        tmp_path,
        {
            "torch": "2.14.1+cu130",
            "torch-tensorrt-rtx": "2.14.0",
            "tensorrt-rtx": "1.6.1.120",
            "tensorrt-rtx-cu13-libs": "1.6.1.120",
            "tensorrt-rtx-cu13-bindings": "1.6.1.120",
        },
    )
    env = detect([site])
    assert env.torch is not None and env.torch.line == "2.14"
    assert env.torch_tensorrt_flavour == "torch-tensorrt-rtx"
    assert env.tensorrt_version == "1.6.1.120"
    assert env.problems == ()
    assert env.to_dict()["torch_tensorrt_flavour"] == "torch-tensorrt-rtx"
    assert "torch-tensorrt-rtx" in str(env)


def test_detect_flags_mixed_and_inconsistent_sets(tmp_path: Path) -> None:
    site = _fake_site(
        tmp_path,
        {
            "torch": "2.5.1",
            "torch-tensorrt": "2.4.0",
            "torch-tensorrt-rtx": "2.5.0",
            "tensorrt-cu12": "10.3.0",
            "tensorrt-cu12-libs": "10.1.0",
            "tensorrt-cu13-bindings": "10.3.0",
        },
    )
    problems = "\n".join(detect([site]).problems)
    assert "both installed" in problems
    assert "built for torch 2.4" in problems
    assert "several CUDA majors" in problems
    assert "disagree on the version" in problems


def test_first_distribution_on_path_wins(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _fake_site(a, {"torch": "2.5.1"})
    _fake_site(b, {"torch": "2.8.0"})
    assert installed_distributions([os.fspath(a), os.fspath(b)])["torch"] == "2.5.1"


def test_runtime_probe_is_explicit_and_reports_this_machine() -> None:
    import torch

    from trtshim.compat import probe_runtime

    facts = probe_runtime()
    assert facts.torch_version == torch.__version__
    assert facts.cuda_build == torch.version.cuda
    assert facts.cuda_available == torch.cuda.is_available()
    ok, why = facts.tensorrt_can_run
    if detect().torch_tensorrt is None:
        assert not ok and "not installed" in why
    assert set(facts.to_dict()) >= {"cuda_build", "tensorrt_can_run", "tensorrt_reason"}


@pytest.mark.parametrize(
    ("flavour", "cc", "ok", "why"),
    [
        ("tensorrt_rtx", (9, 0), False, "TensorRT-RTX cannot run engines on compute capability 9.0"),
        ("tensorrt_rtx", (8, 9), True, "TensorRT engines can run"),
        ("tensorrt_rtx", (12, 0), True, "TensorRT engines can run"),
        ("tensorrt", (9, 0), True, "TensorRT engines can run"),
    ],
)
def test_auto_explains_why_tensorrt_cannot_run(flavour, cc, ok, why) -> None:
    """What `trtshim doctor` says on an H200 (compute capability 9.0) with torch-tensorrt-rtx."""
    from trtshim.compat.runtime import RuntimeFacts

    facts = RuntimeFacts("2.14.1+cu130", "13.0", True, "NVIDIA H200", cc, True, None, flavour)
    assert facts.tensorrt_can_run[0] == ok and facts.tensorrt_can_run[1].startswith(why)
    cpu = RuntimeFacts("2.14.1+cu130", "13.0", False, None, None, True, None, flavour)
    assert cpu.tensorrt_can_run == (False, "no CUDA device is available")
    if not ok:  # the device rules it out even when the import fails: that is the reason to give first
        broken = RuntimeFacts(
            "2.11.0+cu130", "13.0", True, "NVIDIA H200", cc, False, "ImportError: x", flavour
        )
        reason = broken.tensorrt_can_run[1]
        assert reason.startswith(why) and "NVIDIA H200" in reason and "install torch-tensorrt" in reason
        assert reason.endswith("does not import either: ImportError: x")


def test_one_gate_for_every_distribution() -> None:
    from trtshim.compat.gates import release_in, requires

    env = Environment(
        python="3.11.7",
        platform="linux-x86_64",
        torch=PackageVersion("torch", "2.4.0a0+3bcc3cddb5.nv24.07"),
        torch_tensorrt=PackageVersion("torch-tensorrt-rtx", "2.4.0"),
        tensorrt=(PackageVersion("tensorrt-rtx", "1.2.0.54"),),
    )
    gate = requires("torch>=2.4,<2.5", "torch_tensorrt>=2.4", env=env)
    assert gate and str(gate) == "torch 2.4.0a0+3bcc3cddb5.nv24.07 in >=2.4,<2.5; torch_tensorrt 2.4.0 in >=2.4"
    assert requires("torch-tensorrt-rtx", env=env) and not requires("torch>=2.5", env=env)
    assert requires("tensorrt>=1.2", env=env) and requires("tensorrt-rtx==1.2.0.54", env=env)
    assert requires("tensorrt>=10", env=env).reason == "tensorrt 1.2.0.54 is outside >=10"
    assert requires("no-such-distribution-here", env=env).reason == "no-such-distribution-here is not installed"
    assert requires("packaging>=1", env=env)  # any other distribution: importlib.metadata
    assert not requires("torch>=2.2", env=env._replace(torch=None))
    assert release_in("2.6.0rc1", "==2.6.*") and not release_in("2.10.0", ">=2.7,<2.10")
    with pytest.raises(ValueError, match="not a requirement"):
        requires("torch >= = 2")


def test_a_package_installed_after_a_first_scan_is_seen(tmp_path) -> None:
    """installed_distributions lists a folder again once it changed (an install adds a .dist-info)."""
    from trtshim.compat.environment import installed_distributions

    site = tmp_path / "site"
    site.mkdir()
    assert installed_distributions([str(site)]) == {}
    (site / "torch-2.9.1.dist-info").mkdir()
    assert installed_distributions([str(site)]) == {"torch": "2.9.1"}
    (site / "torch-2.9.1.dist-info").rename(site / "torch-2.10.0.dist-info")  # an upgrade
    assert installed_distributions([str(site)]) == {"torch": "2.10.0"}
