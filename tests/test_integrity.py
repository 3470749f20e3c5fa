"""Member digests (issue 11): a changed byte in any member, a missing or extra member, an edited table is
``CorruptedArtifactError``; bulk members are checked while torch deserializes, in the helper process or
a thread; signatures (Ed25519) cover the whole artifact."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from trtshim import compat, errors
from trtshim.compat.artifact import tensor_reads
from trtshim.compat.artifact.trust import integrity, signing
from trtshim.compat.gates import requires
from trtshim.fixes import by_id
from trtshim.testing.engine_standin import make_hybrid, make_seed_model


def copy_with(
    src: Path, dst: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None
) -> Path:
    """A copy of ``src`` with members replaced (bytes) or dropped (None); CRCs recomputed, so only the
    digests can tell."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change.get(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


def flipped(data: bytes) -> bytes:
    if not data:
        return b"x"
    out = bytearray(data)
    at = min(len(out) - 1, (len(out) // 2) | 3)  # the sign/exponent byte of a little-endian float32
    out[at] ^= 0x40
    return bytes(out)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, torch.Tensor, torch.Tensor]]:
    """A plain artifact with a 1.5 MiB weight (a bulk member) and a hybrid one: (path, input, expected)."""
    folder = tmp_path_factory.mktemp("integrity")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(768, 512), torch.nn.Tanh()).eval()
    x = torch.randn(2, 768)
    plain = folder / "plain.pt2"
    compat.save(compat.compile(model, (x,), backend="export"), plain)
    seed, engine = make_seed_model()
    xs = torch.randn(1, 3, 8, 8)
    hybrid = folder / "hybrid.pt2"
    compat.save(make_hybrid(seed, engine, (xs,)), hybrid, example_inputs=(xs,))
    with torch.inference_mode():
        return {"plain": (plain, x, model(x)), "hybrid": (hybrid, xs, seed(xs))}


def test_a_saved_artifact_carries_a_table_of_every_member(artifacts) -> None:
    path, x, expected = artifacts["plain"]
    with zipfile.ZipFile(path) as zf:
        names = {i.filename for i in zf.infolist()}
        found = integrity.read_table(str(path), zf)
    assert found is not None
    table, _ = found
    listed = set(table["members"])
    assert listed == {n for n in names if not n.endswith(integrity.TABLE_NAME)}
    assert any(n.endswith("trtshim_manifest.json") for n in listed)  # the manifest is covered too
    with torch.inference_mode():
        assert torch.equal(compat.load(path)(x), expected)
    if not requires(*by_id("SE-10").requirements):  # torch's own loader on 2.2/2.3 cannot read it (SE-10)
        extra = {integrity.TABLE_NAME: ""}
        torch.export.load(path, extra_files=extra)  # torch's own reader takes the appended member
        assert extra[integrity.TABLE_NAME]


@pytest.mark.parametrize("kind", ["plain", "hybrid"])
def test_a_changed_byte_in_any_member_is_refused(artifacts, kind: str, tmp_path: Path) -> None:
    path, x, expected = artifacts[kind]
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    refused, torch_loaded_wrong = 0, 0
    for name, data in members.items():
        bad = copy_with(path, tmp_path / "bad.pt2", {name: flipped(data)})
        with pytest.raises(errors.CorruptedArtifactError):
            compat.load(bad)
        refused += 1
        if (
            "/weights/weight_" in name
        ):  # what torch alone makes of the same file: the damaged weight, silently
            with torch.inference_mode():
                torch_loaded_wrong += not torch.equal(torch.export.load(bad).module()(x), expected)
    assert refused == len(members)
    if kind == "plain" and any("/weights/weight_" in n for n in members):  # weights as members of their own
        assert torch_loaded_wrong >= 1


def test_missing_extra_and_retabled_members_are_refused(artifacts, tmp_path: Path) -> None:
    path, _, _ = artifacts["plain"]
    with zipfile.ZipFile(path) as zf:
        names = [i.filename for i in zf.infolist()]
    table = next(n for n in names if n.endswith(integrity.TABLE_NAME))
    victim = next(n for n in names if "weight" in n or "state_dict" in n)
    folder = table[: -len(integrity.TABLE_NAME)]
    cases = {
        "lacks the member": copy_with(path, tmp_path / "missing.pt2", {victim: None}),
        "does not list": copy_with(path, tmp_path / "extra.pt2", {}, add={folder + "payload.bin": b"x"}),
        "lacks the member table": copy_with(path, tmp_path / "untabled.pt2", {table: None}),
        "malformed": copy_with(path, tmp_path / "badtable.pt2", {table: b'{"algorithm": "md5"}'}),
    }
    for words, bad in cases.items():
        with pytest.raises(errors.CorruptedArtifactError, match=words):
            compat.load(bad)


@pytest.mark.parametrize("helper", ["process", "thread"])
def test_bulk_members_are_checked_before_the_program_is_handed_out(
    artifacts, tmp_path: Path, monkeypatch, helper: str
) -> None:
    path, x, expected = artifacts["plain"]
    if helper == "thread":
        monkeypatch.setenv("TRTSHIM_HASH_WORKER", "0")
    with zipfile.ZipFile(path) as zf:
        largest = max(zf.infolist(), key=lambda i: i.file_size)  # the weights (PT2) or the state-dict zip
        data = zf.read(largest)
    check = integrity.begin(str(path), None)
    assert check is not None and [m.name for m, _ in check._bulk] == [largest.filename]
    check.finish()
    bad = copy_with(path, tmp_path / "bulk.pt2", {largest.filename: flipped(data)})
    with pytest.raises(errors.CorruptedArtifactError, match="(BLAKE3|SHA-256) of its member"):
        compat.load(bad)
    with torch.inference_mode():
        assert torch.equal(compat.load(path)(x), expected)
    if helper == "process":
        assert integrity._WORKER._proc is not None and integrity._WORKER._proc.poll() is None


def served_by_trtshim(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The members trtshim's reader will read for torch, as it reads them."""
    served: list[str] = []
    real_read = tensor_reads._Session._read

    def spy(self, member, view, owner):  # type: ignore[no-untyped-def]
        served.append(member.name)
        return real_read(self, member, view, owner)

    monkeypatch.setattr(tensor_reads._Session, "_read", spy)
    return served


@pytest.mark.requires("torch>=2.9")
@pytest.mark.parametrize("reader", ["trtshim", "torch"])
def test_tensor_bytes_read_for_torch_are_the_bytes_checked(
    artifacts, tmp_path: Path, monkeypatch, reader: str
) -> None:
    """torch >= 2.9 reads raw tensor members one by one; trtshim reads them for it (several threads) and
    hashes the very bytes it hands over. A member it leaves to torch's own reader is hashed before the
    program is handed out. Either way a changed byte is refused and the values are torch's."""
    path, x, expected = artifacts["plain"]
    served = served_by_trtshim(monkeypatch)
    monkeypatch.setattr(tensor_reads, "MIN_BYTES", 1 << 20)  # the fixture's weight is 1.5 MiB
    if reader == "torch":  # trtshim declines every member: torch's own reader reads them
        monkeypatch.setattr(tensor_reads._Session, "storage", lambda self, name, numel, dtype: None)
        monkeypatch.setattr(tensor_reads._Session, "record", lambda self, name: None)
    with torch.inference_mode():
        assert torch.equal(compat.load(path)(x), expected)
        assert torch.equal(compat.load(path, verify=False)(x), expected)
    assert (len(served) == 2) == (reader == "trtshim"), served  # the weight, verified and not
    with zipfile.ZipFile(path) as zf:
        largest = max(zf.infolist(), key=lambda i: i.file_size)
        data = zf.read(largest)
    bad = copy_with(path, tmp_path / "bulk.pt2", {largest.filename: flipped(data)})
    with pytest.raises(errors.CorruptedArtifactError, match=f"of its member '{largest.filename}'"):
        compat.load(bad)
    assert not tensor_reads._PATCH.active


@pytest.mark.requires("torch>=2.9")
def test_a_weight_of_32_mib_or_more_is_read_by_trtshim_by_default(tmp_path: Path, monkeypatch) -> None:
    model = torch.nn.Linear(4096, 2200, bias=False).eval()  # 34.4 MiB of float32
    x = torch.randn(2, 4096)
    path = compat.save(compat.compile(model, (x,), backend="export"), tmp_path / "large.pt2")
    served = served_by_trtshim(monkeypatch)
    with torch.inference_mode():
        assert torch.equal(compat.load(path)(x), model(x))
    assert [n.rsplit("/", 1)[-1] for n in served] == ["weight_0"]


@pytest.mark.requires("torch>=2.9")
def test_only_the_loading_thread_gets_trtshims_reader(artifacts, monkeypatch) -> None:
    """The reader is torch's everywhere but in the thread that loads through trtshim, and again after."""
    import threading

    from torch.export.pt2_archive import _package

    from trtshim.compat.artifact.trust.opened import OpenedArchive

    path, x, expected = artifacts["plain"]
    original = _package.PT2ArchiveReader
    monkeypatch.setattr(tensor_reads, "MIN_BYTES", 1 << 20)
    with OpenedArchive(path) as archive, tensor_reads.serving(archive, None) as session:
        assert session is not None and _package.PT2ArchiveReader is not original
        elsewhere: list[Any] = []
        thread = threading.Thread(target=lambda: elsewhere.append(torch.export.load(str(path))))
        thread.start()
        thread.join()
        assert elsewhere and session.served == []  # another thread's load of the same file: torch's reader
        here = torch.export.load(str(path))
        assert len(session.served) == 1
    assert _package.PT2ArchiveReader is original
    with torch.inference_mode():
        assert torch.equal(here.module()(x), expected)
        assert torch.equal(elsewhere[0].module()(x), expected)


def test_verify_false_skips_the_digests(artifacts, tmp_path: Path) -> None:
    path, _, _ = artifacts["plain"]
    with zipfile.ZipFile(path) as zf:
        name = next(i.filename for i in zf.infolist() if "weight" in i.filename or "state_dict" in i.filename)
        data = zf.read(name)
    bad = copy_with(path, tmp_path / "bad.pt2", {name: flipped(data)})
    compat.load(bad, verify=False)  # the caller's choice: loads what torch loads


def test_signed_artifacts_load_only_with_the_right_key_and_an_unchanged_file(
    artifacts, tmp_path: Path
) -> None:
    pytest.importorskip("cryptography")
    path, x, expected = artifacts["plain"]
    private, public = signing.keygen(tmp_path / "team")
    other_private, other_public = signing.keygen(tmp_path / "other")
    copy = tmp_path / "m.pt2"
    copy.write_bytes(path.read_bytes())
    sig = signing.sign(copy, private)
    assert sig == str(copy) + ".sig"
    with torch.inference_mode():
        assert torch.equal(compat.load(copy, public_key=public)(x), expected)
    with pytest.raises(errors.SignatureError, match="does not match"):
        compat.load(copy, public_key=other_public)
    # an edited weight, the table sealed anew: the digests agree, the signature does not
    from trtshim.testing.rewrite import rewrite_manifest

    resealed = Path(rewrite_manifest(copy, tmp_path / "resealed.pt2", lambda m: m.update(created="x")))
    (tmp_path / "resealed.pt2.sig").write_bytes(Path(sig).read_bytes())
    compat.load(resealed)  # integrity alone cannot tell
    with pytest.raises(errors.SignatureError, match="does not match"):
        compat.load(resealed, public_key=public)
    with pytest.raises(errors.SignatureError, match="no readable signature"):
        compat.load(path, public_key=public)
    (tmp_path / "junk.sig").write_text("trtshim-ed25519 !!!")
    with pytest.raises(errors.SignatureError, match="malformed"):
        compat.load(copy, public_key=public, signature=tmp_path / "junk.sig")
    with pytest.raises(errors.SignatureError, match="PEM"):
        compat.load(copy, public_key=b"not a key")
    assert other_private


@pytest.mark.parametrize("width", [64, 1024])  # 1024: 4 MiB of weights, hashed beside the write (>= 1 MiB)
def test_digests_taken_while_writing_equal_a_read_back(tmp_path, width: int) -> None:
    """save hashes members as torch writes them (StreamDigests); the table must be what hashing the
    written file gives, member for member, and most members must come from the stream."""
    from unittest import mock

    from trtshim.compat.artifact import atomic
    from trtshim.compat.artifact.trust import integrity

    torch.manual_seed(0)
    compiled = compat.compile(
        torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU()), (torch.randn(2, width),), backend="export"
    )
    streamed: dict = {}
    seal = integrity.seal
    overlapped: list[int] = []
    pool = atomic._hashing_thread

    def spy(path, digests=None, **kw):
        streamed.update(digests.result() if digests is not None else {})
        return seal(path, digests, **kw)

    def counted():
        overlapped.append(1)
        return pool()

    with mock.patch.object(integrity, "seal", spy), mock.patch.object(atomic, "_hashing_thread", counted):
        path = compat.save(compiled, tmp_path / "m.pt2")
    assert bool(overlapped) == (width == 1024)
    import zipfile

    with zipfile.ZipFile(path) as zf:
        table = json.loads(zf.read(next(n for n in zf.namelist() if n.endswith(integrity.TABLE_NAME))))
    found = [m for m in integrity.members(str(path)) if m.name in table["members"]]
    kind = table["algorithm"]
    assert kind == integrity.algorithm()
    read_back = integrity._hash_ranges(str(path), [(m.offset, m.stored) for m in found], kind)
    assert [table["members"][m.name][kind] for m in found] == read_back
    from_stream = sum((m.offset, m.offset + m.stored) in streamed for m in found)
    # torch's PT2 writer goes front to back; the legacy layout (Python's zipfile) seeks back, and is read back
    if all(m.name.startswith("archive/") for m in found):
        assert from_stream == len(found), (from_stream, len(found))  # nested zips (torch < 2.9's weights) too
    tap = integrity.StreamDigests(kind)
    tap.feed(0, b"PK\x03\x04" + bytes(26))
    tap.feed(5, b"x")  # out of order: the tap stops and gives nothing
    assert tap.result() == {}


def _sealed_as(src: Path, dst: Path, algorithm: str) -> Path:
    """A copy of ``src`` whose member table is written anew in ``algorithm``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if not info.filename.endswith(integrity.TABLE_NAME):
                zout.writestr(info, zin.read(info))
    integrity.seal(str(dst), name=algorithm)
    return dst


def test_blake3_and_sha256_tables_both_verify_and_both_catch_a_changed_byte(
    artifacts, tmp_path: Path
) -> None:
    """New tables use BLAKE3 (the blake3 package, a dependency); SHA-256 tables (trtshim 0.1, or an
    install without blake3) keep verifying, and either catches a flipped weight byte."""
    pytest.importorskip("blake3")
    path, x, expected = artifacts["plain"]
    with zipfile.ZipFile(path) as zf:
        table, _ = integrity.read_table(str(path), zf) or ({}, b"")
    assert table["algorithm"] == "blake3" and all(len(r["blake3"]) == 64 for r in table["members"].values())
    for algorithm in ("sha256", "blake3"):
        sealed = _sealed_as(path, tmp_path / f"{algorithm}.pt2", algorithm)
        with torch.inference_mode():
            assert torch.equal(compat.load(sealed)(x), expected)
        with zipfile.ZipFile(sealed) as zf:
            weight = max(zf.infolist(), key=lambda i: i.file_size)
            data = zf.read(weight)
        bad = copy_with(sealed, tmp_path / f"bad-{algorithm}.pt2", {weight.filename: flipped(data)})
        with zipfile.ZipFile(bad) as zout, zipfile.ZipFile(sealed) as zin:  # the old table, the new weight
            assert zout.read(
                next(n for n in zout.namelist() if n.endswith(integrity.TABLE_NAME))
            ) == zin.read(next(n for n in zin.namelist() if n.endswith(integrity.TABLE_NAME)))
        with pytest.raises(
            errors.CorruptedArtifactError, match=f"{integrity.LABELS[algorithm]} of its member"
        ):
            compat.load(bad)


def test_a_blake3_table_without_the_blake3_package_is_a_typed_refusal(artifacts) -> None:
    """Where blake3 cannot be imported, new tables are SHA-256, and a BLAKE3 table is refused with the fix."""
    import sys
    from unittest import mock

    pytest.importorskip("blake3")
    path, _, _ = artifacts["plain"]
    with mock.patch.dict(sys.modules, {"blake3": None}):  # import blake3 raises ImportError
        assert integrity.algorithm() == "sha256"
        with pytest.raises(errors.CorruptedArtifactError, match="blake3 package is not installed") as info:
            compat.load(path)
    assert "pip install blake3" in str(info.value)


def test_save_is_atomic_always_and_fsyncs_only_when_durable(artifacts, tmp_path: Path) -> None:
    """``durable=True`` fsyncs the file and its folder; the default does not, and both rename a complete
    temporary file over the target (a failed save leaves the old file: test_atomic_save)."""
    import os
    from unittest import mock

    torch.manual_seed(0)
    compiled = compat.compile(torch.nn.Linear(8, 8), (torch.randn(2, 8),), backend="export")
    calls: list[int] = []
    real = os.fsync
    with mock.patch.object(os, "fsync", lambda fd: calls.append(fd) or real(fd)):
        compat.save(compiled, tmp_path / "fast.pt2")
        fast = len(calls)
        compat.save(compiled, tmp_path / "durable.pt2", durable=True)
    assert fast == 0 and len(calls) == 2  # the file, then its folder
    assert compat.load(tmp_path / "durable.pt2") is not None


@pytest.mark.parametrize("reader", ["trtshim", "helper"])
def test_load_opens_the_file_once_and_reads_each_member_at_most_once(artifacts, monkeypatch, reader: str) -> None:
    """One pass: compat.load opens the artifact once for its checks (torch then opens it itself; where the
    bulk digests run beside torch, they open it once more), and each member's bytes are read from it at
    most once: the manifest, the table, the digests and the pickle scan share them; the bulk tensor bytes
    are hashed once, by the helper or (torch >= 2.9, large members) as trtshim reads them for torch."""
    import builtins
    import io
    import os
    import sys
    from collections import Counter

    from trtshim.compat.artifact.trust.opened import OpenedArchive

    path, x, expected = artifacts["plain"]
    opens: list[str] = []
    real_open = builtins.open

    def spy_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == os.path.abspath(path):
            caller = sys._getframe(1).f_code
            if f"{os.sep}trtshim{os.sep}" in caller.co_filename:  # torch <= 2.4 opens it with zipfile
                opens.append(f"{os.path.basename(caller.co_filename)}:{caller.co_name}")
        return real_open(file, *args, **kwargs)

    reads: Counter[str] = Counter()
    real_slice = OpenedArchive._slice
    real_ranges = integrity._hash_ranges

    def spy_slice(self, member):  # type: ignore[no-untyped-def]
        reads[member.name] += 1
        return real_slice(self, member)

    places = {(m.offset, m.stored): m.name for m in integrity.members(str(path))}

    def spy_ranges(p, ranges, name):  # type: ignore[no-untyped-def]
        reads.update(places[r] for r in ranges)
        return real_ranges(p, ranges, name)

    real_copy = tensor_reads._copy

    def spy_copy(fd, member, view, owner, algorithm):  # type: ignore[no-untyped-def]
        reads[member.name] += 1
        return real_copy(fd, member, view, owner, algorithm)

    monkeypatch.setattr(tensor_reads, "_copy", spy_copy)
    monkeypatch.setattr(tensor_reads, "MIN_BYTES", 1 << 20 if reader == "trtshim" else 1 << 62)
    monkeypatch.setenv("TRTSHIM_HASH_WORKER", "0")  # the bulk digests in this process, where the spy sees them
    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_open)  # zipfile.ZipFile(path) opens through io.open
    monkeypatch.setattr(OpenedArchive, "_slice", spy_slice)
    monkeypatch.setattr(integrity, "_hash_ranges", spy_ranges)
    module = compat.load(path)
    monkeypatch.undo()
    # once for every check; where torch reads the tensors itself, once more by the bulk digests (a
    # process of their own where one can run)
    bulk_opens = [] if reader == "trtshim" and tensor_reads.served_here() else ["integrity.py:_hash_ranges"]
    assert sorted(opens) == [*bulk_opens, "opened.py:__init__"], opens
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert reads and max(reads.values()) == 1, reads
    assert set(reads) == set(names), set(names) - set(reads)  # and every member was read (checked)
    with torch.inference_mode():
        assert torch.equal(module(x), expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_after_a_save_saves_and_loads(tmp_path) -> None:
    """BLAKE3 hashes large members on several threads (rayon); a child forked after its parent did that
    inherits the pool without its threads. Before: the child's first large save never returned."""
    from conftest import run_python

    code = (
        "import os, sys, torch\nfrom trtshim import compat\n"
        "m = compat.compile(torch.nn.Linear(1024, 1024), (torch.randn(2, 1024),), backend='export')\n"
        f"compat.save(m, {str(tmp_path / 'parent.pt2')!r})\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    import faulthandler; faulthandler.dump_traceback_later(60, exit=True)  # a hung child ends\n"
        f"    compat.save(m, {str(tmp_path / 'child.pt2')!r})\n"
        f"    ok = compat.load({str(tmp_path / 'child.pt2')!r}) is not None\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('child exit', os.waitstatus_to_exitcode(status))\n"
    )
    try:
        out = run_python(code, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the forked child's save hung")
    assert "child exit 0" in out.stdout, out.stderr[-2000:]
