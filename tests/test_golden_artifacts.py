"""Artifacts saved by older torch releases (tests/data/golden/<line>/, written by tools/artifacts.py):
each loads and matches what the saving torch computed, or is refused with our error — never a crash."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

from trtshim import compat, errors
from trtshim.compat.artifact.record import export_schema_version
from trtshim.compat.manifest import read_manifest

GOLDEN = Path(__file__).parent / "data" / "golden"
ARTIFACTS = sorted(GOLDEN.glob("*/*.pt2"))
ALLOW = ["trtshim.demo", "trtshim.testing.engine_standin"]


def test_goldens_are_present() -> None:
    assert {p.parent.name for p in ARTIFACTS} >= {"2.5", "2.6", "2.8", "2.11"}


@pytest.mark.parametrize("path", ARTIFACTS, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_golden_loads_or_is_refused(path: Path) -> None:
    manifest, _ = read_manifest(path)
    assert manifest is not None
    saved, here = tuple(manifest["export_schema"]), tuple(export_schema_version())
    io = torch.load(path.with_name(f"{path.stem}.io.pt"), weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if saved[0] != here[0]:
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
    with torch.inference_mode():
        assert torch.allclose(module(*io["inputs"]), io["outputs"], atol=1e-5)
