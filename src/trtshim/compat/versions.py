"""Version strings -> comparable release lines. Pure ``packaging``; no torch.

PyPI local tags (``2.5.0+cu124``), NGC builds (``2.4.0a0+3bcc3cddb5.nv24.07``), nightlies
(``2.6.0.dev20241112+cu124``) and release candidates all map to the release they belong to:
an NGC ``2.4.0a0`` is the 2.4 line, not "older than 2.4".
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from packaging.version import InvalidVersion, Version


class PackageVersion(NamedTuple):
    """One installed distribution: its name and version, parsed once."""

    name: str
    raw: str

    @property
    def version(self) -> Version | None:
        return parse(self.raw)

    @property
    def release(self) -> Version | None:
        """The release this build belongs to (pre/dev/local parts dropped): what fix ranges compare."""
        v = self.version
        return Version(".".join(map(str, ((*v.release, 0, 0, 0))[:3]))) if v else None

    @property
    def line(self) -> str | None:
        """Major.minor release line, e.g. ``"2.5"``."""
        v = self.version
        return f"{v.major}.{v.minor}" if v else None

    @property
    def local(self) -> str | None:
        v = self.version
        return v.local if v else None

    @property
    def is_ngc(self) -> bool:
        return bool(self.local and re.search(r"(^|\.)nv\d", self.local))

    @property
    def is_prerelease(self) -> bool:
        v = self.version
        return bool(v and (v.is_prerelease or v.is_devrelease))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.raw, "line": self.line}

    def __str__(self) -> str:
        return f"{self.name} {self.raw}"


@lru_cache(maxsize=256)
def parse(raw: str) -> Version | None:
    try:
        return Version(raw)
    except InvalidVersion:
        return None


def release_line(raw: str) -> str | None:
    """``"2.5.0+cu124"`` -> ``"2.5"``; ``None`` for a string that is not a version."""
    return PackageVersion("", raw).line
