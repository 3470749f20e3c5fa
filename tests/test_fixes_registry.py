from __future__ import annotations

import importlib
import json
import re

import pytest
from packaging.version import Version

from trtshim import compat
from trtshim.cli import main
from trtshim.compat.environment import Environment
from trtshim.compat.versions import PackageVersion
from trtshim.fixes import FAMILIES, REGISTRY, STAGES, select
from trtshim.matrix import SUPPORTED_FLOOR


def env_with(torch: str | None, ttrt: str | None = None) -> Environment:
    return Environment(
        python="3.11.7",
        platform="linux-x86_64",
        torch=PackageVersion("torch", torch) if torch else None,
        torch_tensorrt=PackageVersion("torch-tensorrt", ttrt) if ttrt else None,
    )


@pytest.mark.parametrize("fix", REGISTRY, ids=lambda f: f.id)
def test_every_fix_carries_its_provenance(fix) -> None:
    assert re.fullmatch(r"(LP|CO|SE|CP)-\d+", fix.id)
    assert fix.family in FAMILIES and fix.stage in STAGES
    assert fix.links and all(link.startswith("https://github.com/pytorch/") for link in fix.links)
    module = importlib.import_module(
        next(m for m in _fix_modules() if getattr(importlib.import_module(m), "FIX", None) is fix)
    )
    doc = module.__doc__ or ""
    assert fix.id in doc.splitlines()[0]
    assert "Delete when" in doc or "never deleted" in doc


def _fix_modules() -> list[str]:
    import pkgutil

    import trtshim.fixes as pkg

    return [
        f"trtshim.fixes.{m.name}"
        for m in pkgutil.iter_modules(pkg.__path__)
        if re.match(r"(lp|co|se|cp)\d", m.name)
    ]


def test_ids_are_unique() -> None:
    assert len({f.id for f in REGISTRY}) == len(REGISTRY)


@pytest.mark.parametrize("fix", REGISTRY, ids=lambda f: f.id)
def test_no_fix_outlives_the_matrix(fix) -> None:
    """Self-expiry: a fix fixed upstream at or below the oldest supported release is dead code."""
    for package, version in fix.fixed_in.items():
        if version:
            assert Version(version) > Version(SUPPORTED_FLOOR[package]), (
                f"{fix.id} is fixed in {package} {version}, at or below the supported floor "
                f"{SUPPORTED_FLOOR[package]}: delete the fix"
            )


def test_select_uses_release_lines_and_gives_reasons() -> None:
    old = {d.fix.id: d for d in select(env_with("2.2.2"), REGISTRY, stages=("call",)).decisions}
    assert not old["LP-2"].applied and "outside >=2.3" in old["LP-2"].reason
    ngc = {
        d.fix.id: d
        for d in select(env_with("2.4.0a0+3bcc3cddb5.nv24.07"), REGISTRY, stages=("call",)).decisions
    }
    assert ngc["LP-2"].applied and "2.4.0a0+3bcc3cddb5.nv24.07 in >=2.3" in ngc["LP-2"].reason
    none = select(env_with(None), REGISTRY).decisions
    assert all(not d.applied and "not installed" in d.reason for d in none)


def test_cli_lists_every_fix(capsys) -> None:
    assert main(["fixes"]) == 0
    out = capsys.readouterr().out
    for fix in REGISTRY:
        assert re.search(rf"^{fix.id}\s+(applied|skipped)", out, re.M)
    assert main(["fixes", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in data["fixes"]] == [f.id for f in REGISTRY]
    assert data["environment"]["torch"] == compat.detect().to_dict()["torch"]


def test_every_hook_point_is_called_by_trtshim_and_hooked_by_a_fix() -> None:
    from pathlib import Path

    from trtshim.fixes import POINTS

    code = "".join(p.read_text() for p in Path(compat.__file__).parent.rglob("*.py"))
    hooked = {point for fix in REGISTRY for point in fix.hooks}
    for point in POINTS:
        assert f'"{point}"' in code, f"{point} is declared but trtshim's code never calls it"
        assert point in hooked, f"{point} has no fix"


def test_a_fix_left_out_is_reported_and_its_hooks_are_gone() -> None:
    from trtshim.fixes import active

    report = active("hybrid", env=env_with("2.13.0"))
    assert report.hooks("hybrid.engine_input")  # CO-5 on torch 2.13 (no probe: the same on every torch here)
    without = report.without("CO-5", "hybrid.opaque")
    assert without.hooks("hybrid.engine_input") == [] and without.hooks("hybrid.opaque") == []
    assert without.hooks("hybrid.lifted_kind") == report.hooks("hybrid.lifted_kind")  # LP-1's other hooks stay
    (co5,) = [d for d in without.decisions if d.fix.id == "CO-5"]
    assert not co5.applied and co5.reason == "left out"
    assert "CO-5" not in without.applied_ids and report.left_out == frozenset()
    with pytest.raises(KeyError, match="SE-9"):
        report.without("SE-9")  # not a hybrid-stage fix: a typo in a test fails loudly
    with pytest.raises(KeyError, match="no.such"):
        report.hooks("no.such")


def test_a_fix_needs_hooks_or_a_place_in_the_code() -> None:
    from trtshim.fixes import Fix

    with pytest.raises(ValueError, match="hooks or a lives_in"):
        Fix("XX-1", "compile", "t", {}, {}, (), "compile", "transform")
    with pytest.raises(ValueError, match="unknown hook point"):
        Fix("XX-1", "compile", "t", {}, {}, (), "compile", "transform", hooks={"compile.nothing": print})
