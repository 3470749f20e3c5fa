"""nox sessions for trtshim. Run ``nox -l`` to list them.

Sessions install with uv. Local wheel folders named in this machine's pip configuration
(``find-links``, and ``files/`` beside a ``file://`` index) are passed to uv as find-links only
where they exist: uv does not read pip's configuration itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True

DEFAULT_TORCH = "2.13.0"
HERE = os.path.dirname(os.path.abspath(__file__))


def local_wheel_folders() -> list[str]:
    """Folders of local wheels from pip's configuration, read at run time; only existing ones."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    folders: list[str] = []
    for key, value in re.findall(r"^\S*?\.?(find-links|extra-index-url|index-url)='(.*)'$", out, re.M):
        for item in value.split():
            path = item[len("file://") :] if item.startswith("file://") else item
            if key != "find-links":
                if not item.startswith("file://"):
                    continue
                path = os.path.join(os.path.dirname(path.rstrip("/")), "files")
            if os.path.isdir(path) and path not in folders:
                folders.append(path)
    return folders


def uv_env(session: nox.Session) -> dict[str, str]:
    env = {
        "UV_PYTHON_DOWNLOADS": "never",
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(session.virtualenv.location, "inductor"),
    }
    folders = local_wheel_folders()
    if folders:
        env["UV_FIND_LINKS"] = ",".join(folders)
    return env


def install_torch(session: nox.Session, torch: str) -> None:
    extra = ["numpy<2"] if tuple(int(p) for p in torch.split(".")[:2]) <= (2, 3) else ["numpy"]
    session.install(f"torch=={torch}", *extra, env=uv_env(session))


@nox.session
def tests(session: nox.Session) -> None:
    """The default suite on torch 2.13.0 (the local CPU wheel where this machine has one)."""
    install_torch(session, DEFAULT_TORCH)
    session.install("-e", ".[test]", env=uv_env(session))
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs, env=uv_env(session))


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: ``trtshim demo`` on the torch-only default backend."""
    install_torch(session, DEFAULT_TORCH)
    session.install(".", env=uv_env(session))
    session.run("trtshim", "demo", *session.posargs, env=uv_env(session))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the project."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over src/trtshim (with torch installed, so its types are real)."""
    install_torch(session, DEFAULT_TORCH)
    session.install("mypy", "-e", ".", env=uv_env(session))
    session.run("mypy", env=uv_env(session))
