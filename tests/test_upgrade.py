"""Forward-compatible artifacts: what an older torch saved loads on this one (migrated on load, or
rewritten once by ``trtshim upgrade``); the golden artifacts of every older torch are the evidence."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pytest
import torch

from trtshim import compat, errors
from trtshim.cli import main
from trtshim.compat.artifact import legacy, migrations
from trtshim.compat.artifact.manifest import read_manifest
from trtshim.compat.artifact.record import export_schema_version

GOLDEN = Path(__file__).parent / "data" / "golden"
ALLOW = ["trtshim.demo", "trtshim.testing.engine_standin"]
HERE = tuple(export_schema_version())
OLDER = [p for p in sorted(GOLDEN.glob("*/*.pt2")) if (legacy.schema_in(str(p)) or HERE)[0] < HERE[0]]


def _io(path: Path) -> dict:
    return torch.load(path.with_name(f"{path.stem}.io.pt"), weights_only=True)


def test_goldens_of_older_schema_majors_are_here() -> None:
    if HERE[0] < 8:
        pytest.skip("only torch >= 2.6 has every older schema major below it")
    majors = {legacy.schema_in(str(p))[0] for p in OLDER}  # type: ignore[index]
    assert majors == {2, 5, 7}  # torch 2.2, 2.3, 2.5


@pytest.mark.parametrize("path", OLDER, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_upgrade_rewrites_once_and_loads_without_migrating(path: Path, tmp_path: Path, capsys) -> None:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["upgrade", str(path), "--check", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["steps"] and "migration step" in plan["verdict"]
    new = tmp_path / "new.pt2"
    args = ["upgrade", str(path), str(new)] + [a for m in ALLOW for a in ("--allow-import", m)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0, capsys.readouterr().err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the old file is left as it was
    manifest, _ = read_manifest(new)
    assert manifest is not None and manifest["export_schema"] == list(HERE)
    (entry,) = manifest["history"]
    assert entry["export_schema"][0] < HERE[0] and entry["migrations"] == [s["id"] for s in plan["steps"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", errors.TrtShimWarning)  # no migration, no caveat: a file of this torch
        module = compat.load(new, allow_imports=ALLOW)
    io = _io(path)
    with torch.inference_mode():
        assert torch.allclose(module(*io["inputs"]), io["outputs"], atol=1e-5)
    assert main(["upgrade", str(new), "--check"]) == 0 and "loads here as it is" in capsys.readouterr().out
    assert main(["inspect", str(new)]) == 0 and "upgraded from  torch" in capsys.readouterr().out


def test_an_old_portable_artifact_recompiles_from_its_migrated_source(tmp_path: Path) -> None:
    """torch 2.5's artifact with its source program, whose engines (as its manifest now says) cannot run
    here: load(on_mismatch="recompile") rebuilds from the source, migrated from schema 7."""
    from trtshim.testing.rewrite import rewrite_manifest

    path = GOLDEN / "2.5" / "portable_cnn.pt2"
    if HERE[0] <= 7:
        pytest.skip("torch 2.5 reads its own source programs")
    engine = {"torch_tensorrt": "2.5.0", "flavour": "torch-tensorrt", "tensorrt": "10.3.0", "abi": "6",
              "version_compatible": False, "hardware_compatible": False}  # fmt: skip
    moved = rewrite_manifest(path, tmp_path / "engines.pt2", lambda m: m.update(engine=engine))
    with pytest.raises(errors.IncompatibleArtifactError):
        compat.load(moved)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = compat.load(moved, on_mismatch="recompile")
    assert any(issubclass(w.category, errors.BackendFallbackWarning) for w in caught)
    io = _io(path)
    with torch.inference_mode():
        assert torch.allclose(module(*io["inputs"]), io["outputs"], atol=1e-5)


def test_upgrade_refuses_to_overwrite_its_source(tmp_path: Path) -> None:
    if not OLDER:
        pytest.skip("no older golden here")
    copy = tmp_path / "old.pt2"
    copy.write_bytes(OLDER[0].read_bytes())
    with pytest.raises(errors.ArtifactError, match="writes a new file"):
        from trtshim.compat.artifact.upgrading import upgrade

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            upgrade(copy, copy, allow_imports=ALLOW)


def test_each_step_changes_only_what_it_names() -> None:
    """A step applied alone to a real golden: the version moves to its target, weights stay byte-equal."""
    for path in OLDER:
        archive = migrations.open_archive(str(path))
        assert archive is not None
        before = {n: d for n, d in archive.members.items() if n.endswith((".pt", ".json")) and "state_dict" in n}
        chain = migrations.plan(archive.schema, HERE)  # type: ignore[arg-type]
        for step in chain:
            step.apply(archive)
            archive.set_schema(*step.target)
            assert archive.schema == step.target
        after = {n.replace(".json", ".pt"): d for n, d in before.items()}
        for name, data in after.items():
            assert archive.members[name] == data  # weights are never rewritten


def _small() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, 5))
    return model.eval(), torch.randn(2, 3, 8, 8)


@pytest.mark.requires("torch>=2.7")
@pytest.mark.parametrize("line", ["2.3", "2.5", "2.6"])
def test_save_for_an_older_torch_writes_its_schema(line: str, tmp_path: Path) -> None:
    """The archive carries the target's schema version and none of the fields the target's schema lacks;
    this torch still reads it (older torches reading it: `nox -s artifacts`)."""
    import zipfile

    from trtshim.compat.artifact.migrations import targets

    model, x = _small()
    path = compat.save(compat.compile(model, (x,), backend="export"), tmp_path / "m.pt2", target_torch=line)
    with zipfile.ZipFile(path) as zf:
        program = json.loads(zf.read("serialized_exported_program.json"))
    major, minor = targets.target_schema(line)
    assert migrations.schema_of(program) == (major, minor)
    assert "guards_code" not in program and ("verifiers" in program) == (major >= 7)
    manifest, _ = read_manifest(path)
    assert manifest is not None and manifest["target_torch"] == line and manifest["export_schema"] == [major, minor]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = compat.load(path)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.requires("torch>=2.7")
def test_save_for_an_older_torch_refuses_what_it_lacks(tmp_path: Path) -> None:
    model, x = _small()
    dynamic = compat.compile(model, (x,), backend="export", dynamic_shapes={"input": {0: torch.export.Dim("b", max=8)}})
    with pytest.raises(errors.IncompatibleArtifactError, match="torch 2.5 cannot express this program: it lacks dynamic dims"):
        compat.save(dynamic, tmp_path / "d.pt2", target_torch="2.5")
    assert not (tmp_path / "d.pt2").exists()  # nothing half-written
    with pytest.raises(errors.OptionError, match="not a torch minor"):
        compat.save(dynamic, tmp_path / "d.pt2", target_torch="1.13")
    with pytest.raises(errors.OptionError, match="newer than this torch"):
        compat.save(dynamic, tmp_path / "d.pt2", target_torch="9.9")


def test_the_downgrade_walk_refuses_union_members_the_target_lacks() -> None:
    """A union alternative added later (Argument.as_float_lists, torch 2.12) cannot be written for 2.11."""
    from trtshim.compat.artifact.migrations import targets

    if "as_float_lists" not in targets.schema_fields()["2.12"]["classes"]["Argument"]:
        pytest.skip("recorded data without the field")
    try:
        from torch._export.serde import schema
    except ImportError:
        pytest.skip("no torch.export serde schema")
    if "as_float_lists" not in {f.name for f in __import__("dataclasses").fields(schema.Argument)}:
        pytest.skip("this torch's schema has no Argument.as_float_lists")
    program = {
        "graph_module": {"graph": {"nodes": [{"target": "x", "inputs": [{"name": "a", "arg": {"as_float_lists": [[1.0]]}}], "outputs": [], "metadata": {}}]}},
        "schema_version": {"major": 8, "minor": 20},
    }
    with pytest.raises(errors.IncompatibleArtifactError, match=r"Argument\.as_float_lists"):
        targets.downgraded(program, "2.11")
