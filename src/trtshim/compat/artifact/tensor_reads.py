"""Raw tensor members read for torch's loader by several threads, their digests taken as the bytes arrive.

torch 2.9+ loads each raw tensor member of a torch.export archive on its own
(``torch.export.pt2_archive._package._build_file_map``: ``PyTorchFileReader.get_storage_from_record``
on 2.13+, ``get_record`` before): one thread copies the member from the file into new memory. While
``serving(archive, check)`` is open, a load of that archive's path on this thread gets the same tensors
from trtshim instead: ``THREADS`` threads copy the member in ``BLOCK`` pieces straight into the memory
torch would have allocated, and, when ``check`` verifies, another thread takes the member's digest
piece by piece, in order, as each piece arrives (while it is still in the cache). So no second pass
over the file runs beside torch, and the bytes hashed are the very bytes handed to torch.

Served: members of at least ``MIN_BYTES`` (1 MiB, or 32 MiB on fewer than 4 cores) that ``check``
lists as ``read_here`` (without a check: the raw tensor members of that size), and only where torch
asks for exactly their length. Anything else goes through torch's own reader, and ``check.finish()``
hashes what was not served. The hook is a ``ScopedPatch`` of ``PT2ArchiveReader``: other threads,
other files and ``torch.load`` see torch's reader.
"""

from __future__ import annotations

import ctypes
import os
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import torch

from trtshim.compat.artifact import workers
from trtshim.compat.artifact.trust import integrity
from trtshim.compat.artifact.trust.opened import Member, OpenedArchive
from trtshim.compat.gates import requires
from trtshim.fixes.patching import ScopedPatch

BLOCK = 1 << 22


def _cores() -> int:
    """The cores this process may run on (its affinity: a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: members this large are read here; smaller ones are left to torch's reader and hashed by the helper
#: beside it. With 4 cores or more the reader wins at every size (16 cores, torch 2.11, load with
#: digests against torch's: members of 6 MiB 0.72x, 25 MiB 0.60x, 62 MiB 0.57x, against 0.97x, 0.96x
#: and 1.03x hashed beside torch). On 2 cores only where torch's copy meets fresh pages: glibc serves
#: blocks under 32 MiB from memory it reuses, where one copy runs at memory speed and the helper's
#: hashing hides behind torch's own work (50 MiB: 1.04-1.08x read here, ~1.00x beside); blocks of 32 MiB
#: and more are always fresh pages, whose faults make torch's copy ~5x slower (500 MiB: 0.77x, 1.00x).
MIN_BYTES = (1 << 20) if _cores() >= 4 else (32 << 20)
THREADS = max(1, min(8, _cores()))
_local = threading.local()


def served_here() -> bool:
    """Whether this torch's archive loader reads raw tensor members one by one (``_build_file_map``:
    through ``get_storage_from_record`` on torch 2.13+, ``get_record`` before)."""
    if not hasattr(os, "preadv") or not requires("torch>=2.9"):  # earlier: weights are one torch.save blob
        return False
    from torch.export.pt2_archive import _package

    return hasattr(_package, "_build_file_map")


def tensor_members(archive: OpenedArchive) -> set[str]:
    """The members this torch's loader reads as raw tensors: stored, under ``data/weights/`` or
    ``data/constants/`` of the archive's top folder, and not a config or a pickle."""
    if not served_here():
        return set()
    out = set()
    for member in archive.places().values():
        inner = member.name.split("/", 1)[-1]
        if (
            member.method == zipfile.ZIP_STORED
            and member.stored >= MIN_BYTES
            and inner.startswith(("data/weights/", "data/constants/"))
            and not inner.endswith((".json", ".pt", ".pkl"))
        ):
            out.add(member.name)
    return out


class _Session:
    """What one load may read itself: members by the name torch's reader uses (without the top folder)."""

    def __init__(self, archive: OpenedArchive, check: integrity.Verification | None) -> None:
        self.path = os.path.abspath(archive.path)
        self.check = check
        names = check.read_here() if check is not None else tensor_members(archive)
        places = archive.places()
        self.members: dict[str, Member] = {name.split("/", 1)[-1]: places[name] for name in names}
        self.fd = archive.file.fileno()
        self.served: list[str] = []

    def serves(self, source: Any) -> bool:
        return isinstance(source, str) and os.path.abspath(source) == self.path

    def storage(self, name: str, numel: int, dtype: torch.dtype) -> torch.Tensor | None:
        """``get_storage_from_record``: a new tensor of ``numel`` ``dtype`` holding the member's bytes."""
        member = self.members.get(name)
        if member is None:
            return None
        try:
            tensor = torch.empty(numel, dtype=dtype)
        except (RuntimeError, TypeError):  # a dtype torch allocates otherwise: its own reader does it
            return None
        if tensor.numel() * tensor.element_size() != member.stored:
            return None
        view = memoryview((ctypes.c_char * member.stored).from_address(tensor.data_ptr())).cast("B")
        self._read(member, view, tensor)
        return tensor

    def record(self, name: str) -> bytearray | None:
        """``get_record``: the member's bytes (torch 2.9-2.12 wrap them with ``torch.frombuffer``)."""
        member = self.members.get(name)
        if member is None:
            return None
        data = bytearray(member.stored)
        self._read(member, memoryview(data), data)
        return data

    def _read(self, member: Member, view: memoryview, owner: Any) -> None:
        digest = _copy(self.fd, member, view, owner, self.check.algorithm if self.check is not None else None)
        if self.check is not None and digest is not None:
            self.check.took(member.name, digest)  # resolved by check.finish()
        self.served.append(member.name)


def _copy(fd: int, member: Member, view: memoryview, owner: Any, algorithm: str | None) -> Future[str] | None:
    """Copy the member's stored bytes into ``view`` (memory of ``owner``; several threads, ``BLOCK`` at a
    time). Returns once every byte is in place; the digest (``algorithm``) is taken in order by another
    thread as the pieces arrive, and its future holds ``owner`` alive until it is done."""
    pool = workers.pool("read", THREADS)
    pieces = [
        pool.submit(_read_into, fd, view[start : start + BLOCK], member.offset + start)
        for start in range(0, member.stored, BLOCK)
    ]
    digest = workers.pool("read-digest").submit(_digest, algorithm, pieces, view, owner) if algorithm else None
    try:
        for piece in pieces:
            piece.result()
    finally:
        if digest is None:
            view.release()
    return digest


def _digest(algorithm: str, pieces: list[Future[None]], view: memoryview, owner: Any) -> str:
    """The digest of ``view`` (memory of ``owner``), each piece hashed as soon as it has been read."""
    try:
        digest = integrity.hasher(algorithm)
        for index, piece in enumerate(pieces):
            piece.result()
            digest.update(view[index * BLOCK : (index + 1) * BLOCK])
        return str(digest.hexdigest())
    finally:
        view.release()
        del owner


def _read_into(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise OSError(f"the file ended {len(view) - done} bytes early (it was truncated while loading)")
        done += n


class _Records:
    """torch's ``PyTorchFileReader`` with ``get_storage_from_record`` and ``get_record`` served by the
    session where it can (its members; anything else goes to torch's reader)."""

    def __init__(self, real: Any, session: _Session) -> None:
        self._real = real
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def get_storage_from_record(self, name: str, numel: int, dtype: torch.dtype) -> Any:
        tensor = self._session.storage(name, numel, dtype)
        return tensor if tensor is not None else self._real.get_storage_from_record(name, numel, dtype)

    def get_record(self, name: str) -> Any:
        data = self._session.record(name)
        return data if data is not None else self._real.get_record(name)


def _reader_class(original: Any) -> Any:
    class PT2ArchiveReader(original):
        def __init__(self, archive_path_or_buffer: Any) -> None:
            super().__init__(archive_path_or_buffer)
            session: _Session | None = getattr(_local, "session", None)
            if session is not None and session.serves(archive_path_or_buffer):
                self.__dict__["archive_file"] = _Records(self.__dict__["archive_file"], session)

    PT2ArchiveReader.__qualname__ = original.__qualname__
    PT2ArchiveReader.__module__ = original.__module__
    return PT2ArchiveReader


_PATCH = ScopedPatch("torch.export.pt2_archive._package", "PT2ArchiveReader", _reader_class)


@contextmanager
def serving(archive: OpenedArchive, check: integrity.Verification | None) -> Iterator[_Session | None]:
    """Within: torch's loads of ``archive.path`` on this thread get their raw tensors from trtshim (none
    where this torch does not read them one by one: ``tensor_members`` is then empty)."""
    session = _Session(archive, check)
    if not session.members:
        yield None
        return
    previous = getattr(_local, "session", None)
    _local.session = session
    try:
        with _PATCH:
            yield session
    finally:
        _local.session = previous
