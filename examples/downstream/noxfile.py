"""A downstream project's noxfile: its own tests on the rows trtshim supports, through ``trtshim.nox``.

Run it where nox can import trtshim (``uv tool install nox --with trtshim``, or
``python -m pip install nox trtshim`` in a virtual environment):

    nox -l                          # tests(torch-2.2), ..., tests(rtx-2.14.0): the rows of `trtshim matrix`
    nox -s "tests(torch-2.8)"       # one row

``TRTSHIM_REQUIREMENT`` says what to install as trtshim inside each session (default: ``trtshim``, from
PyPI; trtshim's own CI passes the repository root).
"""

from __future__ import annotations

import os

import nox

import trtshim.nox

nox.options.default_venv_backend = "uv"
TRTSHIM = os.environ.get("TRTSHIM_REQUIREMENT", "trtshim")


@trtshim.nox.matrix_session(rows="ci")
def tests(session: nox.Session, row: trtshim.nox.Row) -> None:
    """This project's tests on one row: torch (and torch_tensorrt with its TensorRT, on GPU rows) pinned."""
    trtshim.nox.install(session, row, "pytest")
    env = trtshim.nox.uv_env(session, row)
    session.install(TRTSHIM, env=env)
    session.run("pytest", "-q", "-p", "no:cacheprovider", "test_model.py", env=env)
