"""The rows, pins and CI matrix follow the CPython they are for: no row whose torch or torch_tensorrt has
no wheel for it, and the diagonal's ends replaced by the oldest / newest minor that has one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trtshim import errors
from trtshim.matrix import pins, rows
from trtshim.matrix.model import Matrix

MATRIX = Matrix.load()


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_every_row_has_wheels_for_its_python(python: str) -> None:
    tag = rows.python_tag(python)
    selected = rows.rows("all", python=python)
    assert selected and all(r.python == python for r in selected)
    for row in selected:
        line = ".".join(row.torch.split(".")[:2])
        assert tag in MATRIX.torch_release(line).cpython, row.id
        if row.torch_tensorrt:
            (release,) = [r for r in MATRIX.torch_tensorrt_releases(row.flavour) if r.version == row.torch_tensorrt]
            assert tag in release.cpython, row.id
    dropped = {f"torch-{line}" for line in MATRIX.torch_minors() if tag not in MATRIX.torch_release(line).cpython}
    assert not dropped & {r.id for r in selected}
    first = rows.FIRST_EXPORT_TORCH.get(python)
    if first:
        assert all(tuple(map(int, r.torch.split(".")[:2])) >= tuple(map(int, first.split("."))) for r in selected)


def test_an_untested_python_is_refused() -> None:
    with pytest.raises(errors.OptionError, match="not tested on Python 3.14"):
        rows.rows("ci", python="3.14")


def test_the_ci_diagonal_keeps_its_ends_on_every_python() -> None:
    ids = {py: [r.id for r in rows.rows("ci", python=py)] for py in ("3.10", "3.11", "3.13")}
    assert ids["3.11"][:5] == [f"torch-{line}" for line in rows.CI_TORCH]
    assert ids["3.13"][0] == "torch-2.6"  # 2.5 has a cp313 wheel but its torch.export refuses 3.13
    assert next(r.id for r in rows.rows("ci", python="3.12")) == "torch-2.4"  # 2.2/2.3: no torch.export on 3.12
    assert "torch-2.15" not in ids["3.10"] and "torch-2.14" in ids["3.10"]  # 2.15 dropped cp310
    for row_ids in ids.values():
        assert row_ids[-1].startswith("rtx-")


def test_pins_and_the_cli_refuse_a_set_without_wheels() -> None:
    with pytest.raises(errors.TrtShimError, match="no wheel for Python 3.13"):
        pins.pins(torch="2.2", env={"python": "3.13"})
    out = subprocess.run(
        [sys.executable, "-m", "trtshim", "matrix", "--python", "3.13", "--format", "github"],
        capture_output=True, text=True, timeout=120,
    )
    include = json.loads(out.stdout)["include"]
    assert {r["python"] for r in include} == {"3.13"} and "torch-2.2" not in {r["name"] for r in include}
    refused = subprocess.run(
        [sys.executable, "-m", "trtshim", "pins", "--torch", "2.2", "--python", "3.13"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "no wheel for Python 3.13" in refused.stderr


def test_matrix_sessions_follow_the_python(tmp_path) -> None:
    nox = pytest.importorskip("nox")
    del nox
    noxfile = tmp_path / "noxfile.py"
    noxfile.write_text(
        "import trtshim.nox\n"
        "@trtshim.nox.matrix_session(rows='ci', python='3.13')\n"
        "def tests(session, row):\n    pass\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(noxfile), "-l", "--json", "-s", "tests"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    sessions = [s["session"] for s in json.loads(out.stdout)]
    assert sessions and "tests(torch-2.5)" not in sessions and "tests(torch-2.6)" in sessions, out.stderr[-1500:]
