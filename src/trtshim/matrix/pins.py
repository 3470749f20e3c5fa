"""Working version sets: ``pins(torch=..., torch_tensorrt=...)`` -> a ``PinSet`` chosen from the matrix data.

Rendering them is ``matrix.formats``; checking an installed set or a requirements file is ``matrix.check``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from trtshim.errors import TrtShimError
from trtshim.matrix.model import (
    Matrix,
    TorchLine,
    TorchTensorRTRelease,
    pytorch_index,
    release_of,
)
from trtshim.matrix.specs import compact_python, format_spec

# manylinux_2_28 is what current PyPI torch wheels need; only a stricter glibc floor is worth a note.
GLIBC_COMMON = "2.28"


@dataclass(frozen=True)
class Pin:
    """One line of a working set: a distribution, its specifier and why."""

    name: str
    specifier: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}{self.specifier}"


@dataclass(frozen=True)
class PinSet:
    """A working set: torch, one torch_tensorrt flavour, its TensorRT and companions."""

    torch: str
    torch_tensorrt: str
    flavour: str
    pins: tuple[Pin, ...]
    notes: tuple[str, ...] = ()
    torch_index_url: str | None = None
    generated: str = ""

    def get(self, name: str) -> Pin | None:
        return next((p for p in self.pins if p.name == canonicalize_name(name)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "torch": self.torch,
            "torch_tensorrt": self.torch_tensorrt,
            "flavour": self.flavour,
            "pins": [asdict(p) for p in self.pins],
            "notes": list(self.notes),
            "torch_index_url": self.torch_index_url,
            "matrix_generated": self.generated,
        }


def pins(
    *,
    torch: str | None = None,
    torch_tensorrt: str | None = None,
    flavour: str = "torch-tensorrt",
    env: Mapping[str, str] | None = None,
    matrix: Matrix | None = None,
) -> PinSet:
    """A working set for a torch line (``"2.5"``) or a torch_tensorrt release (``"2.5.0"``); newest if neither.

    ``env`` may give ``python`` (``"3.12"``) and ``glibc`` (``"2.31"``) of the target machine; a set
    that cannot install there raises TrtShimError.
    """
    m = matrix or Matrix.load()
    release, torch_line = _choose(m, torch, torch_tensorrt, flavour)
    torch_version = _torch_version(torch, torch_line, release)
    notes: list[str] = []
    out = [
        Pin("torch", f"=={torch_version}", _torch_reason(torch, torch_line, release)),
        Pin(flavour, f"=={release.version}", _release_reason(m, release, torch_line)),
    ]
    out += tensorrt_pins(m, release)
    for rule in m.rules_for("torch", torch_version):
        if rule.kind == "pin":
            out.append(
                Pin(rule.action["package"], rule.action["specifier"], f"{rule.reason} ({rule.evidence})")
            )
    for rule in m.rules_for(release.flavour, release.version):
        if rule.kind == "avoid" and rule.action.get("package") == release.flavour:
            notes.append(f"{release} is not recommended: {rule.reason}; use {rule.action.get('use')}")
    if release.is_rtx:
        notes.append(m.rule("one-torch-tensorrt-flavour").reason + " (uninstall torch-tensorrt first)")
    index_url = None
    mismatch = m.cuda_mismatch(release, torch_line)
    if mismatch and release.cuda:
        index_url = pytorch_index(release.cuda)
        notes.append(f"{mismatch} from {index_url} (torch=={torch_version} resolves to its +cu build there)")
    floor = max(Version(torch_line.glibc or "0"), Version(GLIBC_COMMON))
    if release.glibc and Version(release.glibc) > floor:
        notes.append(
            f"{release} needs glibc >= {release.glibc} (its linux x86_64 wheel is manylinux_{release.glibc.replace('.', '_')})"
        )
    _check_env(release, torch_line, env or {})
    return PinSet(
        torch=torch_version,
        torch_tensorrt=release.version,
        flavour=release.flavour,
        pins=tuple(out),
        notes=tuple(notes),
        torch_index_url=index_url,
        generated=m.generated,
    )


def _choose(
    m: Matrix, torch: str | None, torch_tensorrt: str | None, flavour: str
) -> tuple[TorchTensorRTRelease, TorchLine]:
    if torch_tensorrt is not None:
        release = m.torch_tensorrt(torch_tensorrt, flavour)
        lines = m.torch_lines_for(release)
        if torch is None:
            if not lines:
                raise TrtShimError(f"no torch line in the matrix satisfies {release} (torch{release.torch})")
            return release, lines[-1]
        line = m.torch_release(torch)
        if line not in lines:
            raise TrtShimError(
                f"{release} requires torch{release.torch}, not torch {torch}",
                f"drop --torch, or use --torch {' / '.join(t.line for t in lines)}",
            )
        return release, line
    if torch is None:
        release = m.torch_tensorrt_releases(flavour)[-1]
        return release, m.torch_lines_for(release)[-1]
    line = m.torch_release(torch)
    if torch != line.line and str(release_of(torch)) not in line.releases:
        raise TrtShimError(
            f"torch {torch} is not a release on PyPI",
            f"torch {line.line} releases: {', '.join(line.releases)}",
        )
    candidates = [r for r in m.for_torch(line.line, flavour) if r.accepts_torch(torch) or torch == line.line]
    preferred = [r for r in candidates if not any(x.kind == "avoid" for x in m.rules_for(flavour, r.version))]
    chosen = (preferred or candidates)[-1:] if candidates else []
    if not chosen:
        paired = [t.line for t in m.torch_lines if m.for_torch(t.line, flavour)]
        raise TrtShimError(
            f"no {flavour} release pairs with torch {torch}",
            f"torch lines with a {flavour} release: {', '.join(paired)}",
        )
    return chosen[0], line


def _torch_version(torch: str | None, line: TorchLine, release: TorchTensorRTRelease) -> str:
    if torch is not None and torch != line.line:
        return torch
    ok = [v for v in line.releases if release.accepts_torch(v)]
    return ok[-1]


def _torch_reason(torch: str | None, line: TorchLine, release: TorchTensorRTRelease) -> str:
    if torch is not None and torch != line.line:
        return f"requested; {release} accepts torch{release.torch}"
    return f"newest torch {line.line} patch that {release} accepts (torch{release.torch})"


def _release_reason(m: Matrix, release: TorchTensorRTRelease, line: TorchLine) -> str:
    others = [r.version for r in m.for_torch(line.line, release.flavour) if r.version != release.version]
    extra = f"; also pairs: {', '.join(others)}" if others else ""
    return f"the {release.flavour} release for torch {line.line} (CUDA {release.cuda}, ABI {release.abi_version}){extra}"


def tensorrt_pins(m: Matrix, release: TorchTensorRTRelease) -> list[Pin]:
    """Exact pins for every TensorRT distribution of a release, all at one TensorRT version.

    Companions the release leaves implicit (``tensorrt-cu12`` under ``tensorrt==10.1.0``, the cuXX
    ``-libs`` / ``-bindings``) are pinned too, so no distribution can float to another version.
    """
    wanted = dict(release.tensorrt)
    why = {n: f"required by {release} ({n}{s})" for n, s in wanted.items()}
    family = release.cuda_family
    if family and not release.is_rtx:
        spec = next(s for n, s in wanted.items() if family in n)
        for name in (f"tensorrt-{family}", f"tensorrt-{family}-libs", f"tensorrt-{family}-bindings"):
            if name not in wanted and m.tensorrt_versions.get(name):
                wanted[name], why[name] = (
                    spec,
                    f"the {family} TensorRT family of {release}, kept at one version",
                )
    if "tensorrt" in wanted:
        for rule in m.rules:
            if rule.package != "tensorrt" or rule.kind != "pin":
                continue
            if any(rule.matches("tensorrt", v) for v in _available(m, "tensorrt", wanted["tensorrt"])):
                for name in rule.action["packages"]:
                    wanted[name] = format_spec(
                        SpecifierSet(wanted["tensorrt"]) & SpecifierSet(wanted.get(name, ""))
                    )
                    why[name] = f"{rule.reason} ({rule.evidence})"
    chosen = _common_release(m, release, wanted)
    built = release.built_with.get("tensorrt_rtx" if release.is_rtx else "tensorrt")
    if chosen is not None and built:
        same = chosen[: len(Version(built).release)] == Version(built).release
        chosen_text = ".".join(map(str, chosen))
        extra = (
            f"; TensorRT {chosen_text}: the release the wheel was built with"
            if same
            else f"; built with {built}, which PyPI lacks: {chosen_text} is the closest release"
        )
        why = {n: w + extra for n, w in why.items()}
    out = []
    for name in sorted(wanted, key=_trt_order):
        if chosen is None:
            out.append(
                Pin(name, wanted[name], why[name] + "; no single TensorRT version found in the matrix data")
            )
            continue
        version = max(v for v in _available(m, name, wanted[name]) if _rel(v) == chosen)
        out.append(Pin(name, f"=={version}", why[name]))
    return out


def _trt_order(name: str) -> tuple[int, str]:
    return (0 if name == "tensorrt" else 1 if not name.endswith(("-libs", "-bindings")) else 2), name


def _rel(version: str) -> tuple[int, ...]:
    return Version(version).release


def _available(m: Matrix, name: str, spec: str) -> list[str]:
    s = SpecifierSet(spec)
    return [v for v in m.tensorrt_versions.get(name, ()) if s.contains(v, prereleases=True)]


def _common_release(
    m: Matrix, release: TorchTensorRTRelease, wanted: Mapping[str, str]
) -> tuple[int, ...] | None:
    """The TensorRT release every wanted distribution has: the one the wheel was built with if possible."""
    sets = [{_rel(v) for v in _available(m, n, s)} for n, s in wanted.items()]
    common = sorted(set.intersection(*sets)) if sets else []
    if not common:
        return None
    built_raw = release.built_with.get("tensorrt_rtx" if release.is_rtx else "tensorrt")
    if built_raw:
        built = Version(built_raw).release
        exact = [r for r in common if r[: len(built)] == built]
        same_minor = [r for r in common if r[:2] == built[:2]]
        if exact or same_minor:
            return (exact or same_minor)[-1]
        return common[0]  # nothing of the built-with line: the closest newer release
    return common[-1]


def _check_env(release: TorchTensorRTRelease, torch: TorchLine, env: Mapping[str, str]) -> None:
    python = env.get("python")
    if python:
        tag = "cp" + "".join(python.split(".")[:2])
        for name, tags in ((str(release), release.cpython), (f"torch {torch.line}", torch.cpython)):
            if tag not in tags:
                raise TrtShimError(
                    f"{name} has no wheel for Python {python}",
                    f"it has wheels for Python {compact_python(list(tags))}",
                )
        from trtshim.matrix.rows import FIRST_EXPORT_TORCH

        first = FIRST_EXPORT_TORCH.get(".".join(python.split(".")[:2]))
        if first and tuple(int(x) for x in torch.line.split(".")) < tuple(int(x) for x in first.split(".")):
            raise TrtShimError(
                f"torch {torch.line} has a wheel for Python {python}, but its torch.export does not run there",
                f"use torch {first} or newer on Python {python}",
            )
    glibc = env.get("glibc")
    if glibc and release.glibc and Version(glibc) < Version(release.glibc):
        raise TrtShimError(
            f"{release} needs glibc >= {release.glibc}, this machine has {glibc}",
            "use a newer distribution (or container), or a torch_tensorrt release with an older manylinux tag",
        )
