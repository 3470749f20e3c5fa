"""One artifact file opened once for every check a load makes before torch reads it.

``OpenedArchive(path)`` reads the zip directory once (and refuses what no torch writes: names escaping
the archive, a name twice, sizes deflate cannot produce), finds each member's bytes from its local header
once, and maps the file. The manifest reader, the member table check and the pickle scan take it instead
of a path: a small member's bytes are read once and kept (the digest and the scan see the same bytes),
a large one is reached through the map without a copy. Torch-free.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

from trtshim.errors import ArtifactNotFoundError, CorruptedArtifactError, NotAnArtifactError

ZIP_MAGIC = b"PK\x03\x04"
KEEP_BYTES = 1 << 20  # members up to this size are read once and kept
_ZIP_ERRORS = (zipfile.BadZipFile, ValueError, EOFError, OSError, OverflowError, NotImplementedError)


@dataclass(frozen=True)
class Member:
    name: str
    offset: int  # of its stored bytes in the file
    stored: int  # length of its stored bytes
    method: int  # zip compression method

    def record(self, digest: str, algorithm: str) -> dict[str, Any]:
        return {algorithm: digest, "stored": self.stored, "method": self.method}


class OpenedArchive:
    """A zip artifact opened for reading: ``infos`` and ``names`` (the directory, checked), ``place(name)``
    (where its stored bytes lie), ``stored(name)`` / ``read(name)`` (its bytes, kept when small)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise ArtifactNotFoundError(f"no such file: {self.path}")
        if os.path.isdir(self.path):
            raise NotAnArtifactError(f"{self.path} is a folder, not an artifact file")
        self._fh = open(self.path, "rb")  # noqa: SIM115 (held until close())
        try:
            head = self._fh.read(4)
            self._fh.seek(0)
            try:
                self.zip = zipfile.ZipFile(self._fh)
            except _ZIP_ERRORS as exc:  # ValueError: name bytes
                if head == ZIP_MAGIC:
                    raise CorruptedArtifactError(f"{self.path} is a damaged zip archive (truncated?): {exc}") from exc
                shown = head.hex() if head else "an empty file"
                raise NotAnArtifactError(f"{self.path} is not a zip archive (it starts with {shown})") from exc
            self.infos = self.zip.infolist()
            check_members(self.path, self.infos)
            self.names = [i.filename for i in self.infos]
            self.size = os.fstat(self._fh.fileno()).st_size
            self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        except BaseException:
            self._fh.close()
            raise
        self._places: dict[str, Member] | None = None
        self._kept: dict[str, bytes] = {}

    def __enter__(self) -> OpenedArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._kept.clear()
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a caller still holds a view: the map goes with it
                self._map.close()
        self.zip.close()
        self._fh.close()

    @property
    def file(self) -> Any:
        """The open file (positions move: seek before reading)."""
        return self._fh

    def places(self) -> dict[str, Member]:
        """Every member's stored bytes: offset, length, method (from its local header, as readers find them)."""
        if self._places is None:
            self._places = {m.name: m for m in _places(self.path, self._fh, self.infos, self.size)}
        return self._places

    def stored(self, name: str) -> Any:
        """The member's stored bytes (``bytes`` when kept, else a view of the map: release it after use)."""
        if name in self._kept:
            return self._kept[name]
        member = self.places()[name]
        data = self._slice(member)
        if member.stored <= KEEP_BYTES:
            self._kept[name] = bytes(data)
            return self._kept[name]
        return data

    def _slice(self, member: Member) -> Any:
        """The member's stored bytes, from the map (a view, no copy): the one place bytes are read."""
        if self._map is None:
            return b""
        return memoryview(self._map)[member.offset : member.offset + member.stored]

    def head(self, name: str, n: int = 4) -> bytes:
        """The first ``n`` bytes of the member's content (stored members: from the map, nothing else read)."""
        member = self.places()[name]
        if member.method == zipfile.ZIP_STORED and self._map is not None:
            return bytes(self._map[member.offset : member.offset + min(n, member.stored)])
        with self.zip.open(name) as fh:
            return fh.read(n)

    def read(self, name: str, limit: int | None = None) -> bytes:
        """The member's content (at most ``limit`` + 1 bytes where a limit is given: declared sizes can lie)."""
        member = self.places()[name]
        if member.method == zipfile.ZIP_STORED:
            data = self.stored(name)
            return bytes(data if limit is None else data[: limit + 1])
        try:
            with self.zip.open(name) as fh:
                return fh.read(-1 if limit is None else limit + 1)
        except (*_ZIP_ERRORS, zlib.error) as exc:
            raise CorruptedArtifactError(f"{self.path}: member {name!r} cannot be read: {exc}") from exc


def check_members(path: str, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse what no torch writes and a reader could be fooled by: member names that escape the archive,
    the same name twice (readers disagree on which one counts), sizes deflate cannot produce."""
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise CorruptedArtifactError(f"{path} has a member whose name escapes the archive: {name!r}")
        if name in seen:
            raise CorruptedArtifactError(
                f"{path} holds the member {name!r} twice", "the file was edited after it was saved"
            )
        seen.add(name)
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > 1100 * info.compress_size + 2**20:
            raise CorruptedArtifactError(
                f"{path} declares {info.file_size} bytes for its member {name!r} from {info.compress_size} "
                "compressed bytes, more than deflate can produce",
                "the file was edited after it was saved",
            )


def _places(path: str, fh: Any, infos: list[zipfile.ZipInfo], size: int) -> list[Member]:
    out: list[Member] = []
    for info in infos:
        fh.seek(info.header_offset)
        header = fh.read(30)
        name_length = int.from_bytes(header[26:28], "little")
        stored_name = fh.read(name_length)
        if len(header) != 30 or header[:4] != ZIP_MAGIC or stored_name != _name_bytes(info):
            raise CorruptedArtifactError(f"{path}: the local header of member {info.filename!r} is damaged")
        start = info.header_offset + 30 + name_length + int.from_bytes(header[28:30], "little")
        if start + info.compress_size > size:
            raise CorruptedArtifactError(f"{path}: member {info.filename!r} runs past the end of the file")
        out.append(Member(info.filename, start, info.compress_size, info.compress_type))
    return out


def members(path: str, infos: list[zipfile.ZipInfo] | None = None) -> list[Member]:
    """Where each member's stored bytes lie in the file at ``path`` (``infos``: its directory, if read)."""
    with open(path, "rb") as fh:
        if infos is None:
            with zipfile.ZipFile(fh) as zf:
                infos = zf.infolist()
        return _places(path, fh, infos, os.fstat(fh.fileno()).st_size)


def _name_bytes(info: zipfile.ZipInfo) -> bytes:
    """A member's name as its headers store it (UTF-8 where flag bit 11 says so, else cp437)."""
    return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
