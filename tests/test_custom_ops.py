"""Custom ops: one definition through the facade on every torch (CO-1); ops travel with artifacts (CO-3);
TorchScript saves through torch.jit.save (SE-5); load errors carry torch's real cause (SE-2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from conftest import run_python
from trtshim import compat, errors
from trtshim.compat.artifact.manifest import read_manifest
from trtshim.compat.gates import requires


def _demo_artifact(tmp_path: Path) -> str:
    from trtshim import demo

    compiled = compat.compile(demo.make_model(), (torch.randn(1, 3, 8, 8),), backend="export")
    return compat.save(compiled, tmp_path / "demo.pt2")


def test_facade_op_exports_saves_and_loads(tmp_path: Path) -> None:
    from trtshim import demo

    path = _demo_artifact(tmp_path)
    loaded = compat.load(path)
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        assert torch.equal(loaded(x), demo.make_model()(x))


def test_facade_op_passes_opcheck() -> None:
    opcheck = getattr(torch.library, "opcheck", None)
    if opcheck is None:
        pytest.skip(f"torch {torch.__version__} has no torch.library.opcheck (added in 2.4)")
    import trtshim.demo  # noqa: F401

    opcheck(torch.ops.trtshim_demo.scaled_tanh.default, (torch.randn(3, 4), 2.0))


def test_co1_one_definition_where_the_torch_api_drifts() -> None:
    """Upstream: torch <= 2.3 has no torch.library.register_fake / custom_op (AttributeError), and an op
    defined with Library.define + impl but no fake kernel cannot be exported on any torch."""
    from trtshim.compat import register_fake

    if requires("torch<2.4"):
        with pytest.raises(AttributeError, match="has no attribute 'register_fake'"):
            torch.library.register_fake  # noqa: B018
        with pytest.raises(AttributeError, match="has no attribute 'custom_op'"):
            torch.library.custom_op  # noqa: B018
    lib = torch.library.Library("trtshim_co1", "FRAGMENT")
    lib.define("double(Tensor x) -> Tensor")
    lib.impl("double", lambda x: x * 2, "CPU")  # a device kernel, as real ops have

    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.trtshim_co1.double(x) + 1

    x = torch.randn(2, 3)
    with pytest.raises(Exception) as info:  # its type moved between torch releases
        torch.export.export(Model(), (x,))
    cause = f"{type(info.value).__name__}: {info.value}"
    assert any(k in cause.lower() for k in ("unsupported operator", "unsupportedoperator", "fake")), cause
    register_fake("trtshim_co1::double", lambda x: torch.empty_like(x))  # the facade, on every torch
    program = torch.export.export(Model(), (x,))
    assert torch.equal(program.module()(x), x * 2 + 1)


def test_fresh_process_without_permission_names_op_and_module(tmp_path: Path) -> None:
    path = _demo_artifact(tmp_path)
    code = (
        "import sys\nfrom trtshim import compat, errors\n"
        f"try:\n    compat.load({path!r})\nexcept errors.MissingOpError as e:\n"
        "    print(e.reason); print(e.hint); print('trtshim.demo' in sys.modules)\n"
    )
    proc = run_python(code, env={"TRTSHIM_ALLOW_IMPORTS": ""})
    assert proc.returncode == 0, proc.stderr
    reason, hint, imported = proc.stdout.strip().splitlines()
    assert "trtshim_demo::scaled_tanh (defined in trtshim.demo)" in reason
    assert "allow_imports=['trtshim.demo']" in hint
    assert imported == "False"  # nothing named inside the file was imported


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_allowed_import_registers_the_op(tmp_path: Path, how: str) -> None:
    path = _demo_artifact(tmp_path)
    torch.save(torch.randn(1, 3, 8, 8), tmp_path / "x.pt")
    allow = "allow_imports=['trtshim.demo']" if how == "argument" else ""
    code = (
        "import sys, torch\nfrom trtshim import compat\n"
        f"m = compat.load({path!r}{', ' + allow if allow else ''})\n"
        f"y = m(torch.load({os.fspath(tmp_path / 'x.pt')!r}))\n"
        "print('trtshim.demo' in sys.modules, tuple(y.shape))\n"
    )
    env = {"TRTSHIM_ALLOW_IMPORTS": "trtshim.demo" if how == "environment" else ""}
    proc = run_python(code, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True (1, 10)"


def test_an_unrelated_allowed_module_is_not_imported(tmp_path: Path) -> None:
    path = _demo_artifact(tmp_path)
    code = (
        "import sys\nfrom trtshim import compat, errors\n"
        f"try:\n    compat.load({path!r}, allow_imports=['json'])\nexcept errors.MissingOpError:\n"
        "    print('refused', 'trtshim.demo' in sys.modules)\n"
    )
    proc = run_python(code)
    assert proc.stdout.strip() == "refused False", proc.stderr


def test_plain_archive_with_unregistered_op_surfaces_the_real_cause(tmp_path: Path) -> None:
    """torch >= 2.11 raises 'check the warnings above' and only logs the cause; 2.8 raises KeyError
    'version'. Our error names the operator either way (SE-2 on torch's side)."""
    from trtshim import demo

    plain = tmp_path / "plain.pt2"
    torch.export.save(torch.export.export(demo.make_model(), (torch.randn(1, 3, 8, 8),)), plain)
    code = (
        "import warnings\nwarnings.simplefilter('ignore')\nfrom trtshim import compat, errors\n"
        f"try:\n    compat.load({os.fspath(plain)!r})\n"
        "except errors.TrtShimError as e:\n    print(type(e).__name__); print(e.reason)\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    kind, reason = proc.stdout.strip().splitlines()[:2]
    assert "scaled_tanh" in reason, reason
    assert kind in ("MissingOpError", "ArtifactError")


def test_torchscript_round_trip_with_manifest(tmp_path: Path, small_cnn, example) -> None:
    script = torch.jit.trace(small_cnn, (example,))
    path = compat.save(script, tmp_path / "m.ts")
    manifest, kind = read_manifest(path)
    assert kind == "torchscript" and manifest is not None
    assert manifest["backend"] == "torchscript" and manifest["environment"]["torch"] == torch.__version__
    with pytest.raises(errors.UnsafeArtifactError, match="TorchScript archive: it holds code") as info:
        compat.load(path)  # code from a file runs only where the caller vouches for the file
    assert "trust_code=True" in info.value.hint
    loaded = compat.load(path, trust_code=True)
    assert loaded.backend == "torchscript"
    with torch.inference_mode():
        assert torch.allclose(loaded(example), small_cnn(example), atol=1e-6)
    extra = {"trtshim_manifest.json": ""}
    torch.jit.load(path, _extra_files=extra)  # plain torch reads it too
    assert json.loads(extra["trtshim_manifest.json"])["format"] == "torchscript"
