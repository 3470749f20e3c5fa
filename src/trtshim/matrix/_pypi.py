"""Small PyPI reader for the maintainer refresh: simple-API file lists, wheel members by HTTP range reads.

Only ``refresh`` imports this module; nothing at runtime touches the network.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

SIMPLE_URL = "https://pypi.org/simple/{name}/"
_ACCEPT_JSON = "application/vnd.pypi.simple.v1+json"
_BLOCK = 1 << 18
_TIMEOUT = 60


def cache_dir() -> Path:
    """Where downloaded wheels and metadata live: ``$TRTSHIM_CACHE`` or ``~/.cache/trtshim``."""
    root = os.environ.get("TRTSHIM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "trtshim")
    return Path(root)


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "trtshim-matrix-refresh", **(headers or {})})
    with urllib.request.urlopen(req, timeout=_TIMEOUT) as resp:
        data: bytes = resp.read()
        return data


def simple_index(name: str) -> dict[str, Any]:
    """The PEP 691 JSON page of a project: ``files`` (filename, url, hashes, requires-python, yanked)."""
    data: dict[str, Any] = json.loads(_get(SIMPLE_URL.format(name=name), {"Accept": _ACCEPT_JSON}))
    return data


class _RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file; reads are HTTP range requests in cached blocks."""

    def __init__(self, url: str, size: int) -> None:
        super().__init__()
        self.url, self.size, self.pos = url, size, 0
        self._blocks: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def _block(self, index: int) -> bytes:
        if index not in self._blocks:
            start = index * _BLOCK
            end = min(self.size, start + _BLOCK) - 1
            self._blocks[index] = _get(self.url, {"Range": f"bytes={start}-{end}"})
        return self._blocks[index]

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.pos + size)
        out = bytearray()
        while self.pos < end:
            block = self._block(self.pos // _BLOCK)
            offset = self.pos % _BLOCK
            chunk = block[offset : offset + (end - self.pos)]
            if not chunk:
                break
            out += chunk
            self.pos += len(chunk)
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def wheel_metadata(file: dict[str, Any]) -> str:
    """The ``METADATA`` of a wheel: PEP 658 ``.metadata`` if served, else a range read of the zip (cached)."""
    target = cache_dir() / "metadata" / (file["filename"] + ".METADATA")
    if target.exists():
        return target.read_text(encoding="utf-8")
    try:
        text = _get(file["url"] + ".metadata").decode("utf-8")
    except urllib.error.HTTPError:
        with zipfile.ZipFile(_RangeFile(file["url"], int(file["size"]))) as zf:
            member = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(member).decode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return text


def download_wheel(file: dict[str, Any]) -> Path:
    """Download a (small) wheel into the cache, checking its sha256."""
    target = cache_dir() / "wheels" / file["filename"]
    expected = file.get("hashes", {}).get("sha256")
    if target.exists() and (not expected or hashlib.sha256(target.read_bytes()).hexdigest() == expected):
        return target
    data = _get(file["url"])
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise RuntimeError(f"sha256 mismatch for {file['filename']}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target
