"""Helpers over version specifiers and wheel filenames (no network, no torch)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from packaging.specifiers import Specifier, SpecifierSet
from packaging.version import Version

_OP_ORDER = {"===": 0, "==": 1, "~=": 2, ">=": 3, ">": 4, "<=": 5, "<": 6, "!=": 7}
_LEGACY_GLIBC = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}


def format_spec(spec: SpecifierSet | str) -> str:
    """A specifier set as text, lower bounds first (``>=2.5.0,<2.6.0``), stable across packaging versions."""
    specs = SpecifierSet(str(spec)) if isinstance(spec, str) else spec

    def key(s: Specifier) -> tuple[int, str]:
        return _OP_ORDER.get(s.operator, 9), s.version

    return ",".join(str(s) for s in sorted(specs, key=key))


def python_tags(filenames: Iterable[str]) -> list[str]:
    """CPython interpreter tags of wheels (``cp310``, ``cp313t``), sorted by version."""
    tags: set[str] = set()
    for name in filenames:
        if not name.endswith(".whl"):
            continue
        py, abi = name[:-4].split("-")[-3:-1]
        for tag in py.split("."):
            if tag.startswith("cp"):
                tags.add(tag + ("t" if abi.endswith("t") else ""))

    def key(tag: str) -> tuple[int, int, str]:
        digits = re.sub(r"\D", "", tag)
        return int(digits[:1] or 0), int(digits[1:] or 0), tag

    return sorted(tags, key=key)


def glibc_of(filename: str) -> str | None:
    """The lowest glibc a linux wheel's platform tags accept (``manylinux_2_28`` -> ``2.28``)."""
    found: list[Version] = []
    for tag in filename[:-4].split("-")[-1].split("."):
        m = re.match(r"manylinux_(\d+)_(\d+)_", tag)
        if m:
            found.append(Version(f"{m.group(1)}.{m.group(2)}"))
        else:
            legacy = next((v for k, v in _LEGACY_GLIBC.items() if tag.startswith(k + "_")), None)
            if legacy:
                found.append(Version(legacy))
    return str(min(found)) if found else None


def spec_line(spec: str) -> str | None:
    """``major.minor`` of a specifier's lower bound or pin (``>=10.7.0,<10.8.0`` -> ``10.7``)."""
    for s in SpecifierSet(spec):
        if s.operator in ("==", "===", ">=", "~=", ">"):
            release = Version(s.version.rstrip(".*")).release
            return ".".join(str(p) for p in (*release, 0)[:2])
    return None


def compact_python(tags: list[str]) -> str:
    """``['cp39', 'cp310', 'cp313t']`` -> ``3.9–3.10`` (free-threaded tags are left out)."""
    plain = [t for t in tags if not t.endswith("t")]
    if not plain:
        return "—"

    def show(tag: str) -> str:
        return f"{tag[2]}.{tag[3:]}"

    return show(plain[0]) if len(plain) == 1 else f"{show(plain[0])}–{show(plain[-1])}"
