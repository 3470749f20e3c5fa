"""What is installed: ``detect()`` reads distribution metadata and imports nothing heavy.

Installed versions come from the ``*.dist-info`` / ``*.egg-info`` metadata on ``sys.path``, the same
files ``importlib.metadata`` reads, scanned directly because importing ``importlib.metadata`` alone
costs more than the whole of ``detect()`` is allowed to. ``tests/test_environment.py`` checks that
both agree. Runtime facts (CUDA, devices, whether torch_tensorrt imports) are a separate, explicit
probe: ``probe_runtime()``.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from typing import Any, NamedTuple

from trtshim.compat.versions import PackageVersion

TORCH = "torch"
TORCH_TENSORRT_FLAVOURS = ("torch-tensorrt", "torch-tensorrt-rtx")
_WATCHED = re.compile(r"^(torch|torch-tensorrt(-rtx)?|tensorrt([-.][a-z0-9-]+)?)$")
_NORMALIZE = re.compile(r"[-_.]+")


def _normalize(name: str) -> str:
    return _NORMALIZE.sub("-", name).lower()


def _version_from_metadata(folder: str) -> str | None:
    for fname in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, fname), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
                    if not line.strip():
                        break
        except OSError:
            continue
    return None


_SCANNED: dict[tuple[tuple[str, int], ...], dict[str, str]] = {}  # by (folder, mtime) of each path entry


def installed_distributions(path: list[str] | None = None) -> dict[str, str]:
    """Watched distributions (torch, torch-tensorrt*, tensorrt*) -> version; first on sys.path wins.
    Listed again only where a folder on the path changed (an install or removal changes its mtime)."""
    entries = list(path if path is not None else sys.path)
    key = tuple((entry, _mtime(entry or ".")) for entry in entries)
    cached = _SCANNED.get(key)
    if cached is None:
        if len(_SCANNED) > 64:
            _SCANNED.clear()
        cached = _SCANNED[key] = _scan(entries)
    return dict(cached)


def _mtime(folder: str) -> int:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return -1


def _scan(entries: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in entries:
        try:
            with os.scandir(entry or ".") as it:
                names = [e.name for e in it if e.name.endswith((".dist-info", ".egg-info"))]
        except OSError:
            continue
        for dirname in names:
            stem = dirname.rsplit(".", 1)[0]
            name, _, version = stem.partition("-")
            key = _normalize(name)
            if key in found or not _WATCHED.match(key):
                continue
            version = version or _version_from_metadata(os.path.join(entry or ".", dirname)) or ""
            if version:
                found[key] = version
    return found


class Environment(NamedTuple):
    """The installed stack, from metadata alone. ``problems`` lists inconsistencies found."""

    python: str
    platform: str
    torch: PackageVersion | None
    torch_tensorrt: PackageVersion | None
    tensorrt: tuple[PackageVersion, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def torch_tensorrt_flavour(self) -> str | None:
        """``"torch-tensorrt"`` or ``"torch-tensorrt-rtx"``: both install the import package torch_tensorrt."""
        return self.torch_tensorrt.name if self.torch_tensorrt else None

    @property
    def tensorrt_version(self) -> str | None:
        """The TensorRT (or TensorRT-RTX) version, taken from the core library distribution."""
        for suffix in ("-libs", "", "-bindings"):
            for pkg in self.tensorrt:
                if pkg.name.endswith(suffix) and not pkg.name.endswith(("-lean", "-dispatch")):
                    return pkg.raw
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "platform": self.platform,
            "torch": self.torch.raw if self.torch else None,
            "torch_line": self.torch.line if self.torch else None,
            "torch_tensorrt": self.torch_tensorrt.raw if self.torch_tensorrt else None,
            "torch_tensorrt_flavour": self.torch_tensorrt_flavour,
            "tensorrt": {p.name: p.raw for p in self.tensorrt},
            "problems": list(self.problems),
        }

    def __str__(self) -> str:
        def show(p: PackageVersion | None) -> str:
            return p.raw if p else "not installed"

        trt = ", ".join(str(p) for p in self.tensorrt) or "not installed"
        lines = [
            f"python          {self.python} ({self.platform})",
            f"torch           {show(self.torch)}",
            f"torch_tensorrt  {show(self.torch_tensorrt)}"
            + (f"  [{self.torch_tensorrt_flavour}]" if self.torch_tensorrt else ""),
            f"tensorrt        {trt}",
        ]
        lines += [f"problem         {p}" for p in self.problems]
        return "\n".join(lines)


def _problems(dists: dict[str, str]) -> list[str]:
    out: list[str] = []
    ttrt = [n for n in TORCH_TENSORRT_FLAVOURS if n in dists]
    if len(ttrt) > 1:
        out.append(
            "torch-tensorrt and torch-tensorrt-rtx are both installed; they ship the same import package "
            "and overwrite each other (uninstall one)"
        )
    torch_pkg = PackageVersion(TORCH, dists[TORCH]) if TORCH in dists else None
    for name in ttrt:
        pkg = PackageVersion(name, dists[name])
        if torch_pkg is None:
            out.append(f"{name} {pkg.raw} is installed without torch")
        elif pkg.line != torch_pkg.line:
            out.append(
                f"{name} {pkg.raw} is built for torch {pkg.line}, but torch {torch_pkg.raw} is installed"
            )
    trt = {n: v for n, v in dists.items() if n.startswith("tensorrt")}
    standard = {n: v for n, v in trt.items() if not n.startswith("tensorrt-rtx")}
    rtx = {n: v for n, v in trt.items() if n.startswith("tensorrt-rtx")}
    for family in (standard, rtx):
        cuda_majors = sorted({m.group(1) for n in family for m in [re.search(r"-cu(\d+)", n)] if m})
        if len(cuda_majors) > 1:
            out.append("TensorRT wheels for several CUDA majors are mixed: " + ", ".join(sorted(family)))
        releases = {
            n: PackageVersion(n, v).release for n, v in family.items() if not n.endswith(("lean", "dispatch"))
        }
        if len({r for r in releases.values() if r is not None}) > 1:
            shown = ", ".join(f"{n}=={family[n]}" for n in sorted(releases))
            out.append(f"TensorRT distributions disagree on the version: {shown}")
    if "torch-tensorrt-rtx" in dists and standard and not rtx:
        out.append("torch-tensorrt-rtx is installed with standard TensorRT only; it needs tensorrt-rtx")
    if "torch-tensorrt" in dists and rtx and not standard:
        out.append("torch-tensorrt is installed with TensorRT-RTX only; it needs standard tensorrt")
    return out


def detect(path: list[str] | None = None) -> Environment:
    """Describe the installed stack without importing torch, torch_tensorrt or tensorrt."""
    dists = installed_distributions(path)
    ttrt_name = next((n for n in TORCH_TENSORRT_FLAVOURS if n in dists), None)
    return Environment(
        python=platform.python_version(),
        platform=f"{sys.platform}-{platform.machine()}",
        torch=PackageVersion(TORCH, dists[TORCH]) if TORCH in dists else None,
        torch_tensorrt=PackageVersion(ttrt_name, dists[ttrt_name]) if ttrt_name else None,
        tensorrt=tuple(PackageVersion(n, v) for n, v in sorted(dists.items()) if n.startswith("tensorrt")),
        problems=tuple(_problems(dists)),
    )
