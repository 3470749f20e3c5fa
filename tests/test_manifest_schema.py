"""A manifest is untrusted input: every malformed one is a CorruptedArtifactError naming the field,
before anything is used (these escaped as TypeError / AttributeError / KeyError / RecursionError /
MemoryError before), and generated mutations of a real manifest never escape as anything else."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trtshim import compat, errors
from trtshim.compat.artifact.manifest import MANIFEST_NAME, read_manifest


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()).eval()
    compiled = compat.compile(model, (torch.randn(2, 4),), backend="export")
    return Path(compat.save(compiled, tmp_path_factory.mktemp("schema") / "m.pt2", include_source=True))


def with_manifest(src: Path, dst: Path, text: bytes) -> Path:
    """A copy of ``src`` whose manifest member holds ``text`` (the zip's CRCs stay valid)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = text if info.filename.rsplit("/", 1)[-1] == MANIFEST_NAME else zin.read(info)
            zout.writestr(info.filename, data)
    return dst


def manifest_of(path: Path) -> dict[str, Any]:
    manifest, _ = read_manifest(path)
    assert manifest is not None
    return manifest


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m["custom_ops"].append(None), "manifest.custom_ops[0]: expected an object"),
        (lambda m: m.update(environment=5), "manifest.environment: expected an object, got int"),
        (lambda m: m["custom_ops"].append({"namespace": "x"}), "manifest.custom_ops[0].qualname: missing"),
        (lambda m: m.update(source="x"), "manifest.source: expected an object, got str"),
        (lambda m: m["inputs"][0].update(dynamic=[{"symbol": 3}]), "manifest.inputs[0].dynamic[0].symbol: expected str"),
        (lambda m: m.update(export_schema=[8]), "manifest.export_schema: expected 2 items"),
        (lambda m: m.update(schema=True), "manifest.schema: expected int, got bool"),
        (lambda m: m["pytree_types"].append({"type": "t"}), "manifest.pytree_types[0].module: missing"),
    ],
)
def test_a_malformed_field_is_named(artifact: Path, tmp_path: Path, edit: Any, field: str) -> None:
    manifest = manifest_of(artifact)
    edit(manifest)
    bad = with_manifest(artifact, tmp_path / "bad.pt2", json.dumps(manifest).encode())
    for call in (lambda: compat.load(bad), lambda: compat.load(bad, on_mismatch="recompile"), lambda: read_manifest(bad)):
        with pytest.raises(errors.CorruptedArtifactError, match="malformed") as info:
            call()
        assert field in info.value.reason and len(info.value.reason.splitlines()) == 1


def test_deep_and_huge_manifests_are_refused_quickly(artifact: Path, tmp_path: Path) -> None:
    deep = with_manifest(artifact, tmp_path / "deep.pt2", b'{"schema": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(errors.CorruptedArtifactError, match="nested too deeply"):
        compat.load(deep)
    bomb = with_manifest(artifact, tmp_path / "bomb.pt2", b'{"schema": 1, "x": "' + b"0" * (64 * 2**20) + b'"}')
    assert bomb.stat().st_size < 2**20  # 64 MiB of zeros deflate to well under 1 MiB
    with pytest.raises(errors.CorruptedArtifactError, match="larger than 4 MiB"):
        compat.load(bomb)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_mutated_manifests_never_escape(artifact: Path, tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    manifest = manifest_of(artifact)
    paths = [p for p in _paths(manifest) if p]
    where = data.draw(st.sampled_from(paths))
    *parent_path, key = where
    parent: Any = manifest
    for k in parent_path:
        parent = parent[k]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = data.draw(JSON)
    bad = with_manifest(artifact, Path(tmp_path_factory.mktemp("mut")) / "m.pt2", json.dumps(manifest).encode())
    try:
        loaded = compat.load(bad)
    except errors.TrtShimError as exc:
        assert exc.reason and len(exc.reason.splitlines()) == 1
        return
    x = torch.randn(2, 4)
    reference = compat.load(artifact)
    with torch.inference_mode():
        assert torch.equal(loaded(x), reference(x))  # a field nothing reads may change; the model may not


def _copy_with(src: Path, dst: Path, extra: list[tuple[str, bytes]], *, compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compress) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        for name, data in extra:
            zout.writestr(name, data)
    return dst


@pytest.mark.parametrize("name", ["../../etc/evil", "/abs/evil", "a/../../evil", "C:/evil"])
def test_member_names_that_escape_the_archive_are_refused(artifact: Path, tmp_path: Path, name: str) -> None:
    bad = _copy_with(artifact, tmp_path / "escape.pt2", [(name, b"x")])
    with pytest.raises(errors.CorruptedArtifactError, match="escapes the archive"):
        compat.load(bad)


def test_a_duplicated_member_is_refused(artifact: Path, tmp_path: Path) -> None:
    """Two members of one name: torch's reader takes one of them; edited weights rode in that way."""
    with zipfile.ZipFile(artifact) as zf:
        weights = max((i for i in zf.infolist() if MANIFEST_NAME not in i.filename), key=lambda i: i.file_size)
        data = zf.read(weights)
    bad = tmp_path / "dup.pt2"
    with pytest.warns(UserWarning, match="Duplicate name"):
        _copy_with(artifact, bad, [(weights.filename, bytes(len(data)))])
    with pytest.raises(errors.CorruptedArtifactError, match="twice"):
        compat.load(bad)


def test_a_size_deflate_cannot_produce_is_refused_before_reading(artifact: Path, tmp_path: Path) -> None:
    """A member declaring 2 GiB from a few compressed bytes (a bomb, or a lie) is refused from the directory."""
    import struct

    bad = _copy_with(artifact, tmp_path / "bomb.pt2", [("extra/bomb.txt", b"0" * 1000)], compress=zipfile.ZIP_DEFLATED)
    raw = bytearray(bad.read_bytes())
    name = b"extra/bomb.txt"
    for signature, size_at in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # central directory, local header
        at = raw.find(signature)
        while at != -1 and name not in raw[at : at + 46 + len(name) + 4]:
            at = raw.find(signature, at + 4)
        assert at != -1
        raw[at + size_at : at + size_at + 4] = struct.pack("<I", 2**31)
    bad.write_bytes(bytes(raw))
    with pytest.raises(errors.CorruptedArtifactError, match="more than deflate can produce"):
        compat.load(bad)
