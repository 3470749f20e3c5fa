"""Artifacts saved by older torch releases (tests/data/golden/<line>/, written by tools/artifacts.py):
each loads and matches what the saving torch computed, or is refused with our error — never a crash."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

from trtshim import compat, errors
from trtshim.compat.artifact.manifest import read_manifest
from trtshim.compat.artifact.record import export_schema_version

GOLDEN = Path(__file__).parent / "data" / "golden"
ARTIFACTS = sorted(GOLDEN.glob("*/*.pt2"))
ALLOW = ["trtshim.demo", "trtshim.testing.engine_standin"]


def test_goldens_are_present() -> None:
    assert {p.parent.name for p in ARTIFACTS} >= {"2.5", "2.6", "2.8", "2.11"}


@pytest.mark.parametrize("path", ARTIFACTS, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_golden_loads_or_is_refused(path: Path) -> None:
    """Older schema majors are migrated on load (announced); a newer major is refused with our error;
    a newer minor loads or is refused with our error, never a crash."""
    manifest, _ = read_manifest(path)
    assert manifest is not None
    saved, here = tuple(manifest["export_schema"]), tuple(export_schema_version())
    io = torch.load(path.with_name(f"{path.stem}.io.pt"), weights_only=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if saved[0] > here[0]:
            with pytest.raises(
                errors.IncompatibleArtifactError,
                match=re.escape(f"saved by torch {manifest['environment']['torch']}"),
            ):
                compat.load(path, allow_imports=ALLOW)
            return
        try:
            module = compat.load(path, allow_imports=ALLOW)
        except errors.TrtShimError:
            if saved > here:  # a newer minor schema: refusing with our error is allowed, crashing is not
                return
            raise
    upgraded = [w for w in caught if issubclass(w.category, errors.ArtifactUpgradeWarning)]
    assert len(upgraded) == (1 if saved[0] < here[0] else 0)
    with torch.inference_mode():
        assert torch.allclose(module(*io["inputs"]), io["outputs"], atol=1e-5)


@pytest.mark.parametrize("path", [p for p in ARTIFACTS if p.parent.name in ("2.2", "2.3", "2.5")], ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_older_schema_majors_refused_with_strict(path: Path) -> None:
    manifest, _ = read_manifest(path)
    assert manifest is not None
    if manifest["export_schema"][0] >= export_schema_version()[0]:
        pytest.skip("the same schema major here: nothing to migrate")
    with pytest.raises(errors.IncompatibleArtifactError, match="strict=True does not migrate") as info:
        compat.load(path, allow_imports=ALLOW, strict=True)
    assert "trtshim upgrade" in info.value.hint


def test_migration_chains_follow_the_schema_majors() -> None:
    from trtshim.compat.artifact import migrations

    ids = lambda saved, here: [s.id for s in migrations.plan(saved, here)]  # noqa: E731
    assert ids((2, 0), (8, 20)) == ["torch-2.2-to-2.3", "torch-2.3-to-2.4", "torch-2.4-to-2.5", "torch-2.5-to-2.6"]
    assert ids((5, 1), (7, 3)) == ["torch-2.3-to-2.4", "torch-2.4-to-2.5"]
    assert ids((5, 3), (8, 0)) == ["torch-2.4-to-2.5", "torch-2.5-to-2.6"]
    assert ids((2, 0), (5, 3)) == ["torch-2.2-to-2.3", "torch-2.3-to-2.4"]
    assert ids((2, 0), (5, 1)) == ["torch-2.2-to-2.3"]
    assert ids((8, 2), (8, 20)) == [] and ids((8, 0), (7, 3)) == [] and ids((1, 0), (8, 0)) == []
    for step in migrations.steps():
        assert step.changes and step.source < step.target
