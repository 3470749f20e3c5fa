"""Version-matrix sessions for a downstream ``noxfile.py``: the rows trtshim tests itself on, installed the
way trtshim installs them (uv; pins and companions from the matrix data; local wheel folders named in
pip's configuration passed to uv as find-links; the PyTorch index where a row's torch lives there).

    import nox
    import trtshim.nox

    @trtshim.nox.matrix_session(rows="ci")
    def tests(session: nox.Session, row: trtshim.nox.Row) -> None:
        trtshim.nox.install(session, row)          # torch (+ torch_tensorrt, TensorRT) for this row
        session.install("-e", ".", env=trtshim.nox.uv_env(session, row))
        session.run("pytest", env=trtshim.nox.uv_env(session, row))

``nox -l`` then lists ``tests(torch-2.2)``, ..., ``tests(rtx-2.14.0)``; ``trtshim matrix --format github``
prints the same rows for a CI runner matrix. Importing this module imports neither nox nor torch.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from trtshim.matrix.rows import Row, rows

__all__ = ["Row", "install", "local_wheel_folders", "matrix_session", "rows", "uv_env"]

MIN_FREE_GB = 8  #: a CUDA torch not yet in uv's cache adds up to 7 GB (one already there is hard-linked)


@functools.cache
def local_wheel_folders(*, cpu_torch: bool = True) -> tuple[str, ...]:
    """Folders of local wheels named in pip's configuration (``find-links``; ``files/`` beside a ``file://``
    index), read once; only existing ones. ``cpu_torch=False`` leaves out folders holding a CPU torch
    (it cannot host torch_tensorrt). uv does not read pip's configuration itself."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    folders: list[str] = []
    for key, value in re.findall(r"^\S*?\.?(find-links|extra-index-url|index-url)='(.*)'$", out, re.M):
        for item in value.split():
            path = item[len("file://") :] if item.startswith("file://") else item
            if key != "find-links":
                if not item.startswith("file://"):
                    continue
                path = os.path.join(os.path.dirname(path.rstrip("/")), "files")
            if not os.path.isdir(path) or path in folders:
                continue
            if not cpu_torch and any(f.startswith("torch-") and "+cpu" in f for f in os.listdir(path)):
                continue
            folders.append(path)
    return tuple(folders)


def uv_env(session: Any, row: Row | None = None) -> dict[str, str]:
    """Environment for ``session.install`` / ``session.run`` under uv for ``row``."""
    env = {
        "UV_PYTHON_DOWNLOADS": "never",
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(session.virtualenv.location, "inductor"),
    }
    folders = local_wheel_folders(cpu_torch=not (row is not None and row.torch_tensorrt))
    if folders:
        env["UV_FIND_LINKS"] = ",".join(folders)
    if row is not None and row.index_url:  # torch +cuXYZ from the PyTorch index, the rest from PyPI
        env["UV_EXTRA_INDEX_URL"] = row.index_url
        env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    return env


def guard_disk(session: Any, folder: str = "~") -> None:
    """Stop the session, with the way out, when the disk is too full for another torch in uv's cache."""
    free = shutil.disk_usage(os.path.expanduser(folder)).free / 2**30
    if free < MIN_FREE_GB:
        session.error(
            f"only {free:.1f} GiB free (under {MIN_FREE_GB}): a CUDA torch needs up to 7 GiB of uv cache. "
            "Free space first (`uv cache prune`, or `uv cache clean torch`)."
        )


def install(session: Any, row: Row, *extra: str) -> None:
    """Install ``row``'s requirements (and ``extra``) into ``session``'s environment."""
    guard_disk(session)
    session.install(*row.requirements, *extra, env=uv_env(session, row))


def matrix_session(
    rows: str | Sequence[Row] = "ci", *, python: str | None = None, **session_kwargs: Any
) -> Callable[[Callable[..., Any]], Any]:
    """Decorate ``fn(session, row)`` into one nox session per row (``name(row.id)``), on the row's Python
    unless ``python`` is given; ``rows``: a row set of ``trtshim.matrix.rows.rows`` (only the rows with
    wheels for ``python``) or rows of your own."""
    import nox

    from trtshim.matrix import rows as row_sets

    selected = row_sets.rows(rows, python=python or row_sets.PYTHON) if isinstance(rows, str) else list(rows)
    pythons = {r.python for r in selected}

    def decorate(fn: Callable[..., Any]) -> Any:
        parametrized = nox.parametrize("row", selected, ids=[r.id for r in selected])(fn)
        chosen = python or (pythons.pop() if len(pythons) == 1 else sorted(pythons))
        return nox.session(python=chosen, **session_kwargs)(parametrized)

    return decorate
