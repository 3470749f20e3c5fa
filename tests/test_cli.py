from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import run_python
from trtshim import compat
from trtshim.cli import main


def test_doctor_json(capsys) -> None:
    code = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    env = compat.detect()
    assert code == (1 if env.problems else 0)
    assert report["environment"]["torch"] == env.to_dict()["torch"]
    assert report["runtime"]["torch_version"] == torch.__version__
    assert report["runtime"]["cuda_build"] == torch.version.cuda
    assert report["auto_backend"]["backend"] in ("export", "tensorrt") and report["auto_backend"]["reason"]


def test_doctor_human(capsys) -> None:
    main(["doctor"])
    out = capsys.readouterr().out
    assert "backend='auto' ->" in out and compat.detect().to_dict()["torch"] in out


def test_inspect_shows_the_manifest(tmp_path: Path, small_cnn, example, compile_quiet, capsys) -> None:
    path = compat.save(compile_quiet(small_cnn, (example,)), tmp_path / "m.pt2")
    assert main(["inspect", path]) == 0
    human = capsys.readouterr().out
    assert f"torch          {torch.__version__}" in human and "float32 [2, 3, 16, 16]" in human
    assert main(["inspect", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["archive"] == "torch.export" and data["manifest"]["backend"] == "export"


def test_inspect_bad_file_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.pt2"
    bad.write_text("hello")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: ") and "not a zip archive" in err[0]
    assert err[1].startswith("  hint: ")


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    proc = run_python(
        f"import sys\nfrom trtshim.cli import main\nsys.exit(main(['demo', '--json', '--keep', {str(tmp_path)!r}]))"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["max_abs_error"] <= 1e-5
    assert result["backend"] == "export" or result["backend"] == "tensorrt"
    assert (tmp_path / "demo.pt2").exists()


def test_python_dash_m() -> None:
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "trtshim", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("trtshim ")


def test_keygen_sign_verify_without_torch(tmp_path: Path, small_cnn, example, compile_quiet) -> None:
    pytest.importorskip("cryptography")
    path = compat.save(compile_quiet(small_cnn, (example,)), tmp_path / "m.pt2")
    script = (
        "import sys\n"
        "from trtshim.cli import main\n"
        f"codes = [main(['keygen', {str(tmp_path / 'k')!r}]), main(['sign', {path!r}, '--key', {str(tmp_path / 'k.key')!r}]),\n"
        f"         main(['verify', {path!r}, '--key', {str(tmp_path / 'k.pub')!r}])]\n"
        "print(codes, 'torch' in sys.modules)\n"
    )
    done = run_python(script)
    assert done.stdout.strip().splitlines()[-1] == "[0, 0, 0] False", done.stdout + done.stderr  # verify loads nothing and imports no torch
    damaged = bytearray(Path(path).read_bytes())
    at = damaged.find(small_cnn.conv.weight.detach().numpy().tobytes()[:32])
    damaged[at + 3] ^= 0x40  # an exponent byte of a conv weight
    Path(path).write_bytes(bytes(damaged))
    assert main(["verify", path]) == 2  # the zip's CRC would tell as well; the table says which member
