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


@pytest.mark.slow
def test_demo_leaves_nothing_behind_without_keep(tmp_path: Path) -> None:
    """Every temporary folder the demo makes (its artifact, the fresh process's inputs/outputs) is gone."""
    proc = run_python(
        "import sys\nfrom trtshim.cli import main\nsys.exit(main(['demo', '--json', '--backend', 'export']))",
        env={"TMPDIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["artifact"].startswith(str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    assert set(result["fixes"]) == {"compile", "save", "load"} and "LP-8" in result["fixes"]["compile"]


def test_demo_checks_keep_before_compiling(tmp_path: Path, capsys, monkeypatch) -> None:
    from trtshim import compat as compat_module

    compiled = []
    monkeypatch.setattr(compat_module, "compile", lambda *a, **k: compiled.append(a))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["demo", "--keep", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot create the folder") and "hint: pass a writable folder" in err
    assert compiled == []  # refused before any work


def test_inspect_into_a_closed_pipe_is_quiet(tmp_path: Path, small_cnn, example, compile_quiet) -> None:
    import subprocess

    path = compat.save(compile_quiet(small_cnn, (example,)), tmp_path / "m.pt2")
    done = subprocess.run(
        f"{sys.executable} -m trtshim inspect {path} --json | head -1", shell=True, capture_output=True, text=True
    )
    assert done.stdout == "{\n" and done.stderr == ""  # no BrokenPipeError traceback


def test_inspect_names_dims_of_a_plain_exported_program(tmp_path: Path, capsys) -> None:
    class Scale(torch.nn.Module):
        def forward(self, x, k: int):
            return x * k

    batch = torch.export.Dim("batch", max=8)
    ep = torch.export.export(Scale(), (torch.randn(3, 4), 3), dynamic_shapes={"x": {0: batch}, "k": None})
    path = compat.save(ep, tmp_path / "ep.pt2")
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    # the user's Dim name, not torch's symbol (input names are torch's: arg0_1 on torch <= 2.3)
    assert "float32 [batch, 4]" in out and "int = 3" in out


def test_fixes_report_by_stage(capsys) -> None:
    from trtshim.fixes import active

    assert main(["fixes", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["by_stage"]["call"]) == set(active("call").applied_ids)
    assert set(report["by_stage"]["save"]) == set(active("save").applied_ids)
    assert all(f["stages"] for f in report["fixes"])
    assert main(["fixes"]) == 0
    assert "applied, by the stage they act at" in capsys.readouterr().out


def test_torch_internal_deprecations_are_hidden_only_inside_trtshim(small_cnn, example, tmp_path: Path) -> None:
    import warnings

    from trtshim.compat import serial

    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = compat.compile(small_cnn, (example,), backend="export")
        compat.load(compat.save(compiled, tmp_path / "m.pt2"))
        with serial.quiet_torch_internals():
            warnings.warn("the caller's own", FutureWarning, stacklevel=1)
    noise = [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning)) and "own" not in str(w.message)]
    assert noise == [] and any("the caller's own" in str(w.message) for w in caught)
    assert warnings.filters == before  # the scope is restored


@pytest.mark.requires("torch>=2.10,<2.14")  # where torch warns about its own LeafSpec use (measured: 2.10-2.13)
def test_torch_internal_deprecations_show_without_the_scope(small_cnn, example, monkeypatch) -> None:
    import contextlib
    import warnings

    from trtshim.compat import serial

    monkeypatch.setattr(serial, "quiet_torch_internals", contextlib.nullcontext)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compat.compile(small_cnn, (example,), backend="export")
    assert any("LeafSpec" in str(w.message) for w in caught)
