"""The version matrix as typed, read-only objects: ``Matrix.load()`` and its queries.

Reads ``data.json`` (generated from PyPI by ``python -m trtshim.matrix refresh``) and ``rules.json``
(curated knowledge). No network, no torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from trtshim.errors import TrtShimError
from trtshim.matrix.specs import spec_line

FLAVOURS = ("torch-tensorrt", "torch-tensorrt-rtx")
_HERE = Path(__file__).resolve().parent


def release_of(version: str) -> Version:
    """The release a version string belongs to: ``2.4.0a0+nv24.07`` and ``2.5.0+cu124`` -> ``2.4.0`` / ``2.5.0``."""
    try:
        v = Version(version)
    except InvalidVersion as exc:
        raise TrtShimError(f"not a version: {version!r}", "pass a version like 2.5 or 2.5.0") from exc
    return Version(".".join(str(p) for p in (*v.release, 0, 0)[: max(3, len(v.release))]))


def line_of(version: str) -> str:
    """``major.minor`` of a version string."""
    v = release_of(version)
    return f"{v.major}.{v.minor}"


def cuda_major(cuda: str | None) -> int | None:
    return int(cuda.split(".")[0]) if cuda else None


@dataclass(frozen=True)
class TorchTensorRTRelease:
    """One torch-tensorrt / torch-tensorrt-rtx release as published on PyPI (linux x86_64, cp311 wheel)."""

    flavour: str
    version: str
    torch: str
    tensorrt: Mapping[str, str]
    requires: Mapping[str, str]
    requires_python: str
    cpython: tuple[str, ...]
    platforms: tuple[str, ...]
    glibc: str | None
    cuda: str | None
    abi_version: str | None
    built_with: Mapping[str, str] = field(default_factory=dict)
    wheel: str = ""

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> TorchTensorRTRelease:
        return cls(
            flavour=row["flavour"],
            version=row["version"],
            torch=row["torch"],
            tensorrt=dict(row["tensorrt"]),
            requires=dict(row.get("requires", {})),
            requires_python=row.get("requires_python", ""),
            cpython=tuple(row.get("cpython", ())),
            platforms=tuple(row.get("platforms", ())),
            glibc=row.get("glibc"),
            cuda=row.get("cuda"),
            abi_version=row.get("abi_version"),
            built_with=dict(row.get("built_with", {})),
            wheel=(row.get("wheel") or {}).get("filename", ""),
        )

    @property
    def is_rtx(self) -> bool:
        return self.flavour == "torch-tensorrt-rtx"

    @property
    def torch_specifier(self) -> SpecifierSet:
        return SpecifierSet(self.torch)

    @property
    def cuda_family(self) -> str | None:
        """``cu12`` / ``cu13`` when the TensorRT requirement names one, else None."""
        for name in self.tensorrt:
            m = re.search(r"-(cu\d+)", name)
            if m:
                return m.group(1)
        return None

    @property
    def tensorrt_line(self) -> str | None:
        """TensorRT (or TensorRT-RTX) ``major.minor`` it requires, e.g. ``10.3`` or ``11.0``."""
        for spec in self.tensorrt.values():
            line = spec_line(spec)
            if line:
                return line
        return None

    def accepts_torch(self, version: str) -> bool:
        return self.torch_specifier.contains(release_of(version), prereleases=True)

    def __str__(self) -> str:
        return f"{self.flavour} {self.version}"


@dataclass(frozen=True)
class TorchLine:
    """One torch minor line on PyPI; wheel facts are those of its newest patch (linux x86_64)."""

    line: str
    releases: tuple[str, ...]
    latest: str
    requires_python: str
    cpython: tuple[str, ...]
    platforms: tuple[str, ...]
    glibc: str | None
    cuda: str | None
    cuda_source: str | None

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> TorchLine:
        return cls(
            line=row["line"],
            releases=tuple(row["releases"]),
            latest=row["latest"],
            requires_python=row.get("requires_python", ""),
            cpython=tuple(row.get("cpython", ())),
            platforms=tuple(row.get("platforms", ())),
            glibc=row.get("glibc"),
            cuda=row.get("cuda"),
            cuda_source=row.get("cuda_source"),
        )


@dataclass(frozen=True)
class AbiGroup:
    """Releases whose runtimes share ``ABI_VERSION``: a saved TRT program loads only inside its group."""

    flavour: str
    abi_version: str
    releases: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    """A curated companion rule from rules.json."""

    id: str
    package: str
    specifier: str
    action: Mapping[str, Any]
    reason: str
    evidence: str

    @property
    def kind(self) -> str:
        return str(self.action.get("kind", ""))

    def matches(self, package: str, version: str) -> bool:
        if package != self.package:
            return False
        try:
            return SpecifierSet(self.specifier).contains(release_of(version), prereleases=True)
        except TrtShimError:
            return False


@dataclass(frozen=True)
class Matrix:
    """The whole matrix: torch_tensorrt releases, torch lines, ABI groups, TensorRT versions and rules."""

    generated: str
    sources: tuple[str, ...]
    releases: tuple[TorchTensorRTRelease, ...]
    torch_lines: tuple[TorchLine, ...]
    abi_groups: tuple[AbiGroup, ...]
    tensorrt_versions: Mapping[str, tuple[str, ...]]
    rules: tuple[Rule, ...]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Matrix:
        """The matrix shipped with trtshim (cached), or one read from a data.json at ``path``."""
        if path is None:
            return _default_matrix()
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")), _read_json("rules.json"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], rules: Mapping[str, Any] | None = None) -> Matrix:
        """Build from the parsed data.json (and rules.json) content."""
        return cls(
            generated=data.get("generated", ""),
            sources=tuple(data.get("sources", ())),
            releases=tuple(TorchTensorRTRelease.from_dict(r) for r in data["torch_tensorrt"]),
            torch_lines=tuple(TorchLine.from_dict(r) for r in data["torch"]),
            abi_groups=tuple(
                AbiGroup(flavour, g["abi_version"], tuple(g["releases"]))
                for flavour, groups in sorted(data.get("abi_groups", {}).items())
                for g in groups
            ),
            tensorrt_versions={k: tuple(v) for k, v in data.get("tensorrt_versions", {}).items()},
            rules=tuple(
                Rule(
                    id=r["id"],
                    package=r["condition"]["package"],
                    specifier=r["condition"].get("specifier", ""),
                    action=dict(r["action"]),
                    reason=r["reason"],
                    evidence=r["evidence"],
                )
                for r in (rules or {}).get("rules", ())
            ),
        )

    # --- torch ------------------------------------------------------------------------------------

    def torch_minors(self) -> list[str]:
        """Torch minor lines in the matrix, oldest first (``["2.2", ..., "2.15"]``)."""
        return [t.line for t in self.torch_lines]

    def torch_release(self, line: str) -> TorchLine:
        """The torch line of ``line`` (``"2.5"``, or any version in it such as ``"2.5.1+cu124"``)."""
        wanted = line_of(line)
        for t in self.torch_lines:
            if t.line == wanted:
                return t
        rule = next((r for r in self.rules_for("torch", f"{wanted}.0") if r.kind == "require"), None)
        if rule is not None:
            raise TrtShimError(f"torch {wanted}: {rule.reason}", f"use torch {rule.action.get('use')}")
        known = self.torch_minors()
        raise TrtShimError(
            f"torch {wanted} is not in the version matrix", f"known torch lines: {known[0]} to {known[-1]}"
        )

    # --- torch_tensorrt ---------------------------------------------------------------------------

    def torch_tensorrt_releases(self, flavour: str | None = None) -> list[TorchTensorRTRelease]:
        """Releases oldest first; one flavour, or both when ``flavour`` is None."""
        if flavour is not None:
            _check_flavour(flavour)
        return [r for r in self.releases if flavour is None or r.flavour == flavour]

    def torch_tensorrt(self, version: str, flavour: str = "torch-tensorrt") -> TorchTensorRTRelease:
        """One release by version (local tags such as ``+cu121`` are ignored)."""
        _check_flavour(flavour)
        wanted = release_of(version)
        for r in self.releases:
            if r.flavour == flavour and Version(r.version) == wanted:
                return r
        known = [r.version for r in self.torch_tensorrt_releases(flavour)]
        raise TrtShimError(
            f"{flavour} {version} is not in the version matrix",
            f"known {flavour} releases: {', '.join(known)}",
        )

    def for_torch(self, line: str, flavour: str = "torch-tensorrt") -> list[TorchTensorRTRelease]:
        """The releases of ``flavour`` that accept some torch of ``line``, oldest first (may be empty)."""
        torch = self.torch_release(line)
        return [
            r
            for r in self.torch_tensorrt_releases(flavour)
            if any(r.accepts_torch(v) for v in torch.releases)
        ]

    def torch_lines_for(self, release: TorchTensorRTRelease) -> list[TorchLine]:
        """The torch lines a release accepts."""
        return [t for t in self.torch_lines if any(release.accepts_torch(v) for v in t.releases)]

    def abi_group(self, version: str, flavour: str = "torch-tensorrt") -> AbiGroup:
        """The ABI group of a release."""
        release = self.torch_tensorrt(version, flavour)
        for g in self.abi_groups:
            if g.flavour == flavour and release.version in g.releases:
                return g
        raise TrtShimError(f"{release} has no known engine ABI version", "re-run the matrix refresh")

    # --- derived facts ----------------------------------------------------------------------------

    def cuda_mismatch(self, release: TorchTensorRTRelease, torch: TorchLine) -> str | None:
        """Why PyPI's default torch of ``torch`` cannot run ``release`` (CUDA majors differ), or None."""
        want, have = cuda_major(release.cuda), cuda_major(torch.cuda)
        if want is None or have is None or want == have:
            return None
        return (
            f"{release} is built for CUDA {release.cuda}, but PyPI's torch {torch.latest} wheels are "
            f"CUDA {torch.cuda}: install a CUDA {want} build of torch"
        )

    def rules_for(self, package: str, version: str) -> list[Rule]:
        """Curated rules whose condition matches ``package`` at ``version``."""
        return [r for r in self.rules if r.matches(package, version)]

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


def pytorch_index(cuda: str) -> str:
    """The download.pytorch.org index of a CUDA version (``13.0`` -> ``.../whl/cu130``)."""
    major, minor = cuda.split(".")[:2]
    return f"https://download.pytorch.org/whl/cu{major}{minor}"


def _check_flavour(flavour: str) -> None:
    if flavour not in FLAVOURS:
        raise TrtShimError(
            f"unknown torch_tensorrt flavour {flavour!r}", f"use one of: {', '.join(FLAVOURS)}"
        )


def _read_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_HERE / name).read_text(encoding="utf-8"))
    return data


@lru_cache(maxsize=1)
def _default_matrix() -> Matrix:
    return Matrix.from_dict(_read_json("data.json"), _read_json("rules.json"))
