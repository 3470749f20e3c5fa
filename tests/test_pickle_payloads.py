"""No code from a file runs in ``compat.load``: a ``__reduce__`` payload planted in any pickle of an
artifact (state dict, constants, example inputs, custom objects; nested ``torch.save`` zips included)
is refused with UnsafeArtifactError before torch unpickles anything. The same files given to a plain
``torch.export.load`` show the payload is real (it runs there on the torches whose loader unpickles
freely; counted, not required)."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path

import pytest
import torch

from trtshim import compat, errors
from trtshim.compat.gates import requires
from trtshim.testing.fuzz import Payload, pickle_paths, replace_member

COUNTS: dict[str, int] = {"cases": 0, "ran in compat.load": 0, "ran in torch.export.load": 0}


def _artifacts(tmp_path: Path) -> list[Path]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    compiled = compat.compile(model, (torch.randn(1, 3, 8, 8),), backend="export")
    out = [Path(compat.save(compiled, tmp_path / "plain.pt2", include_source=True))]
    if requires("torch>=2.3"):
        from trtshim.testing.engine_standin import make_hybrid, make_seed_model

        seed, engine = make_seed_model()
        x = torch.randn(1, 3, 8, 8)
        out.append(Path(compat.save(make_hybrid(seed, engine, (x,)), tmp_path / "seed.pt2", example_inputs=(x,))))
    return out


@pytest.mark.parametrize("protocol", [2, 4])  # GLOBAL and STACK_GLOBAL
def test_pickle_payloads_never_run_in_load(tmp_path: Path, protocol: int) -> None:
    import trtshim.testing.engine_standin  # noqa: F401  (registers the stand-in engine class)

    for artifact in _artifacts(tmp_path):
        original = artifact.read_bytes()
        members = pickle_paths(original)
        assert members, f"{artifact.name} holds no pickles?"
        for i, member in enumerate(members):
            marker = tmp_path / f"ran-{artifact.stem}-{protocol}-{i}"
            bad = tmp_path / f"bad-{artifact.stem}-{protocol}-{i}.pt2"
            bad.write_bytes(replace_member(original, member, pickle.dumps(Payload(str(marker)), protocol=protocol)))
            COUNTS["cases"] += 1
            with pytest.raises(errors.UnsafeArtifactError, match="os.system|posix.system") as info:
                compat.load(bad, verify=False)
            assert not marker.exists(), f"compat.load ran the payload planted in {member}"
            assert "loading it would run code" in info.value.reason
            with contextlib.suppress(Exception):  # the payload's return value breaks the load afterwards
                torch.export.load(bad)
            if marker.exists():
                COUNTS["ran in torch.export.load"] += 1
    assert COUNTS["ran in compat.load"] == 0


def test_the_loads_of_clean_artifacts_are_unchanged(tmp_path: Path) -> None:
    import trtshim.testing.engine_standin  # noqa: F401

    for artifact in _artifacts(tmp_path):
        assert compat.load(artifact) is not None  # the scan allows everything torch itself writes


def test_an_unregistered_custom_class_is_refused(tmp_path: Path) -> None:
    """A TorchBind class the process has not registered is not restored (its C++ code is not here)."""
    from trtshim.compat.artifact.trust import pickle_scan

    assert pickle_scan.allowed("__torch__.torch.classes.quantized", "Conv2dPackedParamsBase")
    assert not pickle_scan.allowed("__torch__.torch.classes.nowhere", "Thing")
    assert not pickle_scan.allowed("builtins", "eval") and not pickle_scan.allowed("torch", "load")


def test_constants_with_python_state_load(tmp_path: Path) -> None:
    """A tensor constant carrying Python attributes is pickled through ``_rebuild_from_type_v2`` (Hugging
    Face models' buffers on torch 2.8+: the zoo found the scan refusing them)."""

    class Tagged(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.offset = torch.ones(3)
            self.offset.tag = "kept"  # type: ignore[attr-defined]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.offset

    compiled = compat.compile(Tagged(), (torch.randn(2, 3),), backend="export")
    loaded = compat.load(compat.save(compiled, tmp_path / "tagged.pt2"))
    x = torch.randn(2, 3)
    assert torch.equal(loaded(x), x + 1)
