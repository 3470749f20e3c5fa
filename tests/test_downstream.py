"""What downstream repos reuse: the rows as a CI runner matrix, ``trtshim.nox`` sessions, the example noxfile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_python
from trtshim.cli import main
from trtshim.matrix import rows
from trtshim.matrix.pins import pins

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "downstream"
SRC = Path(__file__).resolve().parent.parent / "src"


def test_github_matrix_lists_the_rows_with_their_pins(capsys) -> None:
    assert main(["matrix", "--format", "github", "--gpu-runner", "self-hosted,gpu"]) == 0
    matrix = json.loads(capsys.readouterr().out)
    include = matrix["include"]
    assert [job["name"] for job in include] == [r.id for r in rows.rows("ci")]
    for job in include:
        if job["gpu"]:
            assert job["runs-on"] == ["self-hosted", "gpu"] and job["torch_tensorrt"]
            expected = pins(torch_tensorrt=job["torch_tensorrt"], flavour=job["flavour"])
            assert set(job["pins"].split()) >= {str(p) for p in expected.pins}
        else:
            assert job["runs-on"] == "ubuntu-latest" and job["pins"].startswith(f"torch=={job['torch']}")
    old = next(job for job in include if job["name"] == "torch-2.2")
    assert "numpy<2" in old["pins"].split()  # the matrix's companion rule travels with the row


def test_every_row_set_resolves(capsys) -> None:
    for which in rows.SETS:
        assert main(["matrix", "--rows", which, "--format", "json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed and all(r["requirements"][0].startswith("torch==") for r in listed)
    assert len(rows.rows("all")) == len(rows.rows("torch")) + len(rows.rows("trt"))


def test_trtshim_nox_imports_neither_nox_nor_torch() -> None:
    done = run_python("import sys, trtshim.nox; print('nox' in sys.modules, 'torch' in sys.modules)")
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_the_example_noxfile_lists_the_same_rows() -> None:
    pytest.importorskip("nox")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(EXAMPLE / "noxfile.py"), "-l", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    sessions = [s["session"] for s in json.loads(done.stdout)]
    assert sessions == [f"tests({r.id})" for r in rows.rows("ci")]
