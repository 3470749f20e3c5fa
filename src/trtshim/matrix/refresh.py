"""Maintainer step: rebuild ``data.json`` from PyPI metadata (``python -m trtshim.matrix refresh``).

Reads, for linux x86_64 / CPython 3.11:

* the PEP 691 simple-API page of torch, torch-tensorrt, torch-tensorrt-rtx and the TensorRT distributions;
* each torch_tensorrt wheel (downloaded, cached): ``METADATA``, ``torch_tensorrt/_version.py`` and
  ``include/torch_tensorrt/core/runtime/runtime.h``;
* the ``METADATA`` of the newest torch wheel of each minor line (PEP 658 file or an HTTP range read).

Never run by the tests; the output is committed.
"""

from __future__ import annotations

import datetime
import json
import re
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from trtshim.matrix import _pypi
from trtshim.matrix.specs import format_spec, glibc_of, python_tags

DATA_PATH = Path(__file__).with_name("data.json")
FLAVOURS = ("torch-tensorrt", "torch-tensorrt-rtx")
TTRT_RANGE = SpecifierSet(">=2.2.0,<=2.14.0")
TORCH_LINES = [f"2.{m}" for m in range(2, 16)]
TENSORRT_DISTS = (
    "tensorrt",
    "tensorrt-cu12",
    "tensorrt-cu12-libs",
    "tensorrt-cu12-bindings",
    "tensorrt-cu13",
    "tensorrt-cu13-libs",
    "tensorrt-cu13-bindings",
    "tensorrt-rtx",
)
TARGET = {"python": "cp311", "platform": "linux_x86_64"}
SOURCES = [
    "https://pypi.org/simple/{name}/ (PEP 691 JSON): releases, files, Requires-Python, yanked",
    "torch_tensorrt wheel (cp311, manylinux x86_64): *.dist-info/METADATA Requires-Dist / Requires-Python",
    "torch_tensorrt wheel: torch_tensorrt/_version.py __cuda_version__, __tensorrt_version__",
    "torch_tensorrt wheel: include/torch_tensorrt/core/runtime/runtime.h ABI_VERSION",
    "torch wheel (cp311, manylinux x86_64, newest patch): *.dist-info/METADATA via PEP 658 or HTTP range read",
]


def marker_environment() -> dict[str, str]:
    """The marker environment of CPython 3.11 on linux x86_64."""
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update(
        python_version="3.11",
        python_full_version="3.11.9",
        implementation_name="cpython",
        implementation_version="3.11.9",
        platform_python_implementation="CPython",
        platform_system="Linux",
        platform_machine="x86_64",
        sys_platform="linux",
        os_name="posix",
        platform_release="",
        platform_version="",
        extra="",
    )
    return env


def _requires(metadata: str) -> dict[str, str]:
    """Requires-Dist that apply on the target platform (no extras): normalized name -> specifier."""
    env = marker_environment()
    out: dict[str, str] = {}
    for line in Parser().parsestr(metadata).get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        spec = format_spec(req.specifier)
        out[name] = ",".join(s for s in (out.get(name), spec) if s) if name in out else spec
    return out


def _release_files(index: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_version: dict[str, list[dict[str, Any]]] = {}
    for f in index["files"]:
        if not f["filename"].endswith(".whl") or f.get("yanked"):
            continue
        _, version, _, _ = parse_wheel_filename(f["filename"])
        by_version.setdefault(str(version), []).append(f)
    return by_version


def _target_wheel(files: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The cp311 manylinux x86_64 wheel with the highest build tag (what pip would pick)."""
    best: tuple[tuple[Any, ...], dict[str, Any]] | None = None
    for f in files:
        _, _, build, tags = parse_wheel_filename(f["filename"])
        if any(
            t.interpreter == "cp311" and "linux" in t.platform and t.platform.endswith("x86_64") for t in tags
        ):
            key = (build, f["filename"])
            if best is None or key > best[0]:
                best = (key, f)
    return best[1] if best else None


def _platforms(files: list[dict[str, Any]]) -> list[str]:
    return sorted({t.platform for f in files for t in parse_wheel_filename(f["filename"])[3]})


def _read_member(zf: zipfile.ZipFile, suffix: str) -> str | None:
    name = next((n for n in zf.namelist() if n.endswith(suffix)), None)
    return zf.read(name).decode("utf-8", "replace") if name else None


def _py_string(source: str | None, name: str) -> str | None:
    m = re.search(rf"^{name}\s*=\s*['\"]([^'\"]*)['\"]", source or "", re.M)
    return m.group(1) if m else None


def _ttrt_row(flavour: str, version: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    wheel = _target_wheel(files)
    if wheel is None:
        raise RuntimeError(f"{flavour} {version}: no cp311 manylinux x86_64 wheel")
    with zipfile.ZipFile(_pypi.download_wheel(wheel)) as zf:
        metadata = _read_member(zf, ".dist-info/METADATA") or ""
        version_py = _read_member(zf, "torch_tensorrt/_version.py")
        runtime_h = _read_member(zf, "include/torch_tensorrt/core/runtime/runtime.h")
    requires = _requires(metadata)
    abi = re.search(r'ABI_VERSION\s*=\s*"([^"]+)"', runtime_h or "")
    built_with = {
        key: value
        for key, value in (
            ("tensorrt", _py_string(version_py, "__tensorrt_version__")),
            ("tensorrt_rtx", _py_string(version_py, "__tensorrt_rtx_version__")),
        )
        if value
    }
    return {
        "flavour": flavour,
        "version": version,
        "torch": requires.pop("torch", ""),
        "tensorrt": {n: s for n, s in requires.items() if n.startswith("tensorrt")},
        "requires": {n: s for n, s in requires.items() if not n.startswith("tensorrt")},
        "requires_python": Parser().parsestr(metadata).get("Requires-Python", ""),
        "cpython": python_tags(f["filename"] for f in files),
        "platforms": _platforms(files),
        "glibc": glibc_of(wheel["filename"]),
        "cuda": _py_string(version_py, "__cuda_version__"),
        "abi_version": abi.group(1) if abi else None,
        "built_with": built_with,
        "wheel": {"filename": wheel["filename"], "sha256": wheel["hashes"]["sha256"]},
    }


def _torch_cuda(requires: dict[str, str]) -> tuple[str | None, str | None]:
    """CUDA major.minor of a torch wheel from its pins: nvidia-cuda-runtime-cuNN==X.Y.Z or cuda-toolkit==X.Y.Z."""
    for name in sorted(requires):
        if re.fullmatch(r"nvidia-cuda-runtime(-cu\d+)?", name) or name == "cuda-toolkit":
            m = re.search(r"==\s*(\d+)\.(\d+)", requires[name])
            if m:
                return f"{m.group(1)}.{m.group(2)}", f"{name}{requires[name]}"
    return None, None


def _torch_row(line: str, by_version: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    releases = sorted((v for v in by_version if re.fullmatch(rf"{re.escape(line)}\.\d+", v)), key=Version)
    if not releases:
        raise RuntimeError(f"torch {line}: no releases on PyPI")
    latest = releases[-1]
    wheel = _target_wheel(by_version[latest])
    if wheel is None:
        raise RuntimeError(f"torch {latest}: no cp311 manylinux x86_64 wheel")
    metadata = _pypi.wheel_metadata(wheel)
    cuda, cuda_source = _torch_cuda(_requires(metadata))
    return {
        "line": line,
        "releases": releases,
        "latest": latest,
        "requires_python": Parser().parsestr(metadata).get("Requires-Python", ""),
        "cpython": python_tags(f["filename"] for f in by_version[latest]),
        "platforms": _platforms(by_version[latest]),
        "glibc": glibc_of(wheel["filename"]),
        "cuda": cuda,
        "cuda_source": cuda_source,
        "wheel": wheel["filename"],
    }


def _abi_groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["abi_version"] is None:
            continue
        flavour_groups = groups.setdefault(row["flavour"], [])
        if flavour_groups and flavour_groups[-1]["abi_version"] == row["abi_version"]:
            flavour_groups[-1]["releases"].append(row["version"])
        else:
            flavour_groups.append({"abi_version": row["abi_version"], "releases": [row["version"]]})
    return groups


def _tensorrt_versions(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Released versions of each TensorRT distribution inside the TensorRT range of some row.

    A row's range is matched against every distribution of the family, not just those it names,
    so companions it leaves unpinned (``tensorrt-cu12`` under ``tensorrt==10.1.0``) are listed too.
    """
    ranges = [
        (name.startswith("tensorrt-rtx"), SpecifierSet(spec))
        for r in rows
        for name, spec in r["tensorrt"].items()
    ]
    out: dict[str, list[str]] = {}
    for name in TENSORRT_DISTS:
        specs = [s for rtx, s in ranges if rtx == name.startswith("tensorrt-rtx")]
        versions: set[Version] = set()
        for f in _pypi.simple_index(name)["files"]:
            if f.get("yanked"):
                continue
            m = re.match(r"^[A-Za-z0-9_.-]+?-(\d[^-]*?)(\.tar\.gz|\.zip|-.*\.whl)$", f["filename"])
            try:
                v = Version(m.group(1)) if m else None
            except InvalidVersion:
                v = None
            if v is not None and not v.is_prerelease and any(s.contains(v) for s in specs):
                versions.add(v)
        if versions:
            out[name] = [str(v) for v in sorted(versions)]
    return out


def build(today: str | None = None) -> dict[str, Any]:
    """Read PyPI and return the matrix data (what ``data.json`` holds)."""
    rows: list[dict[str, Any]] = []
    for flavour in FLAVOURS:
        by_version = _release_files(_pypi.simple_index(flavour))
        for version in sorted(by_version, key=Version):
            if Version(version) in TTRT_RANGE:
                rows.append(_ttrt_row(flavour, version, by_version[version]))
    torch_files = _release_files(_pypi.simple_index("torch"))
    return {
        "schema": 1,
        "generated": today or datetime.date.today().isoformat(),
        "target": TARGET,
        "sources": SOURCES,
        "torch_tensorrt": rows,
        "torch": [_torch_row(line, torch_files) for line in TORCH_LINES],
        "abi_groups": _abi_groups(rows),
        "tensorrt_versions": _tensorrt_versions(rows),
    }


def dumps(data: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def refresh(path: Path = DATA_PATH, today: str | None = None) -> Path:
    """Rebuild the data from PyPI and write it to ``path``."""
    path.write_text(dumps(build(today)), encoding="utf-8")
    return path
