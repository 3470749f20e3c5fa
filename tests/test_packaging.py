"""What users install: ``uv build`` makes a wheel and an sdist from this tree; each installs into a clean
virtual environment (no torch) and ``trtshim doctor`` runs there, naming this version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from trtshim._version import __version__

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")


def _uv(*args: str) -> subprocess.CompletedProcess[str]:
    # not the test session's own environment: uv must create and fill the clean one named in args
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PYTHON") and not k.startswith("UV_PROJECT")}
    return subprocess.run(["uv", *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = _uv("build", "--quiet", "--out-dir", str(out), str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_the_sdist_holds_the_project_and_nothing_of_a_machine(built: Path) -> None:
    (sdist,) = built.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        tops = {name.split("/")[1] for name in tar.getnames() if "/" in name}
    assert {"src", "tests", "README.md", "pyproject.toml", "CHANGELOG.md"} <= tops
    assert not tops & {".hypothesis", ".nox", ".venv", "__pycache__", ".mypy_cache"}, tops


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_each_distribution_installs_and_runs_doctor(built: Path, tmp_path: Path, kind: str) -> None:
    (dist,) = built.glob("*.whl" if kind == "wheel" else "*.tar.gz")
    venv = tmp_path / "venv"
    assert _uv("venv", "--quiet", "--python", sys.executable, str(venv)).returncode == 0
    installed = _uv("pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(dist))
    assert installed.returncode == 0, installed.stderr[-2000:]
    doctor = subprocess.run([str(venv / "bin" / "trtshim"), "doctor"], capture_output=True, text=True, timeout=300)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"trtshim {__version__}" in doctor.stdout and "torch           not installed" in doctor.stdout
