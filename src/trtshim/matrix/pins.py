"""Working version sets (``pins``), their renderers (``format``) and conflict checks (``check``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Union

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from trtshim.errors import TrtShimError
from trtshim.matrix.model import (
    FLAVOURS,
    Matrix,
    TorchLine,
    TorchTensorRTRelease,
    cuda_major,
    line_of,
    pytorch_index,
    release_of,
)
from trtshim.matrix.specs import compact_python, format_spec

FORMATS = ("constraints", "requirements", "uv", "json")
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


@dataclass(frozen=True)
class Conflict:
    """A problem in an installed set or requirements file, and how to fix it."""

    code: str
    problem: str
    fix: str
    packages: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}"


# --- pins ---------------------------------------------------------------------------------------


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
    glibc = env.get("glibc")
    if glibc and release.glibc and Version(glibc) < Version(release.glibc):
        raise TrtShimError(
            f"{release} needs glibc >= {release.glibc}, this machine has {glibc}",
            "use a newer distribution (or container), or a torch_tensorrt release with an older manylinux tag",
        )


# --- renderers ----------------------------------------------------------------------------------


def format(pinset: PinSet, fmt: str = "constraints") -> str:
    """Render a PinSet: ``constraints`` / ``requirements`` (pip files), ``uv`` (pyproject TOML) or ``json``."""
    if fmt == "json":
        return json.dumps(pinset.to_dict(), indent=2, sort_keys=True) + "\n"
    if fmt not in FORMATS:
        raise TrtShimError(f"unknown pins format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    head = [
        f"# trtshim pins: torch {pinset.torch} + {pinset.flavour} {pinset.torch_tensorrt} "
        f"(linux x86_64 metadata, matrix generated {pinset.generated})"
    ]
    head += [f"# note: {n}" for n in pinset.notes]
    if fmt == "uv":
        return _format_uv(pinset, head)
    lines = [*head]
    if fmt == "constraints":
        lines.append("# use: pip install -c THIS_FILE ...  or  uv pip install -c THIS_FILE ...")
        if pinset.torch_index_url:
            lines.append(f"# torch: add --extra-index-url {pinset.torch_index_url} to the install command")
    else:
        lines.append("# use: pip install -r THIS_FILE  or  uv pip install -r THIS_FILE")
        if pinset.torch_index_url:
            lines.append(f"--extra-index-url {pinset.torch_index_url}")
    for p in pinset.pins:
        lines += [f"# {p.name}: {p.reason}", str(p)]
    return "\n".join(lines) + "\n"


def _format_uv(pinset: PinSet, head: list[str]) -> str:
    lines = [
        *head,
        "# uv: paste into pyproject.toml; `uv lock` / `uv sync` read [tool.uv] constraint-dependencies",
        "# (constraints limit versions, they add no packages; for `uv pip install` use --format constraints).",
        "[tool.uv]",
        "constraint-dependencies = [",
    ]
    lines += [f'    "{p}",  # {p.reason.replace(chr(34), chr(39))}' for p in pinset.pins]
    lines.append("]")
    if pinset.torch_index_url:
        name = "pytorch-" + pinset.torch_index_url.rstrip("/").rsplit("/", 1)[-1]
        lines += [
            "",
            "[[tool.uv.index]]",
            f'name = "{name}"',
            f'url = "{pinset.torch_index_url}"',
            "explicit = true",
            "",
            "# applies when torch is a dependency of the project",
            "[tool.uv.sources]",
            f'torch = [{{ index = "{name}" }}]',
        ]
    return "\n".join(lines) + "\n"


# --- check --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirements:
    """What a requirements file pins: name -> specifier (``==2.4.1``), plus notes on skipped lines."""

    specs: Mapping[str, str]
    notes: tuple[str, ...] = ()


def read_requirements(path: str | os.PathLike[str]) -> Requirements:
    """Parse ``name==ver`` / ``name>=..`` lines; options, ``-r`` / ``-c`` includes and URLs are skipped with a note."""
    specs: dict[str, str] = {}
    notes: list[str] = []
    with open(path, encoding="utf-8") as fh:
        text = fh.read().replace("\\\n", " ")
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            notes.append(f"line {number}: ignored option {line!r} (included files are not followed)")
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            notes.append(f"line {number}: not understood, ignored: {line!r}")
            continue
        if req.url:
            notes.append(f"line {number}: URL requirement for {req.name} not checked")
            continue
        name = canonicalize_name(req.name)
        specs[name] = format_spec(SpecifierSet(specs.get(name, "")) & req.specifier)
    return Requirements(specs, tuple(notes))


Source = Union[Mapping[str, str], Requirements, str, "os.PathLike[str]"]


def check(installed: Source, *, matrix: Matrix | None = None) -> list[Conflict]:
    """Conflicts in an installed set (name -> version) or a requirements file (path or ``Requirements``)."""
    m = matrix or Matrix.load()
    if isinstance(installed, (str, os.PathLike)):
        installed = read_requirements(installed)
    if isinstance(installed, Requirements):
        specs, complete = dict(installed.specs), False
    else:
        specs, complete = {canonicalize_name(k): f"=={v}" for k, v in installed.items()}, True
    pinned = {n: p for n, s in specs.items() if (p := _pinned(s)) is not None}
    out: list[Conflict] = []
    flavours = [f for f in FLAVOURS if f in specs]
    if len(flavours) > 1:
        rule = m.rule("one-torch-tensorrt-flavour")
        out.append(Conflict("two-flavours", rule.reason, "keep exactly one of them", tuple(flavours)))
    for flavour in flavours:
        out += _check_release(m, flavour, specs, pinned, complete)
    suggestion = ""
    for flavour in flavours:
        try:
            release = m.torch_tensorrt(pinned.get(flavour, ""), flavour)
        except TrtShimError:
            continue
        suggestion = f"for {release}: " + ", ".join(str(p) for p in tensorrt_pins(m, release))
    out += _check_tensorrt_mix(pinned, suggestion)
    torch = pinned.get("torch")
    numpy = pinned.get("numpy")
    if torch and numpy:
        for rule in m.rules_for("torch", torch):
            target = rule.action.get("package")
            if (
                rule.kind == "pin"
                and target == "numpy"
                and not SpecifierSet(rule.action["specifier"]).contains(numpy)
            ):
                out.append(
                    Conflict(
                        "numpy",
                        f"torch {torch} with numpy {numpy}: {rule.reason}",
                        "pin numpy<2",
                        ("torch", "numpy"),
                    )
                )
    return out


def _pinned(spec: str) -> str | None:
    m = re.fullmatch(r"===?([^,*]+)", spec.strip())
    return m.group(1) if m else None


def _check_release(
    m: Matrix, flavour: str, specs: Mapping[str, str], pinned: Mapping[str, str], complete: bool
) -> list[Conflict]:
    version = pinned.get(flavour)
    if version is None:
        return []
    try:
        release = m.torch_tensorrt(version, flavour)
    except TrtShimError as exc:
        return [Conflict("unknown-release", exc.reason, exc.hint, (flavour,))]
    out: list[Conflict] = []
    for rule in m.rules_for(flavour, version):
        if rule.kind == "avoid" and rule.action.get("package") == flavour:
            out.append(Conflict("avoid", rule.reason, f"pin {flavour}=={rule.action['use']}", (flavour,)))
    if out:  # this release is to be replaced: advice on completing it would contradict that
        return out
    out += _check_torch(m, release, specs.get("torch"), pinned.get("torch"), complete)
    for pin in tensorrt_pins(m, release):
        have = pinned.get(pin.name)
        need = SpecifierSet(pin.specifier)
        if have is not None and not (need.contains(have, prereleases=True) or _rel_eq(have, need)):
            out.append(
                Conflict(
                    "tensorrt-version",
                    f"{release} needs {pin.name}{pin.specifier}, but {pin.name} {have} is {'installed' if complete else 'pinned'}",
                    f"pin {pin}: every TensorRT distribution of {release} at one version" + _link(pin.reason),
                    (flavour, pin.name),
                )
            )
        elif have is None and complete and pin.name in release.tensorrt:
            out.append(
                Conflict(
                    "tensorrt-missing",
                    f"{release} needs {pin.name}, which is not installed",
                    f"install {pin}",
                    (pin.name,),
                )
            )
    return out


def _link(text: str) -> str:
    found = re.search(r"https://\S+?(?=[);]|$)", text)
    return f" (see {found.group(0)})" if found else ""


def _rel_eq(have: str, need: SpecifierSet) -> bool:
    """Treat ``10.1.0.27`` as meeting ``==10.1.0`` (metadata pins three parts, wheels carry four)."""
    return all(s.operator == "==" for s in need) and any(
        Version(have).release[: len(Version(s.version).release)] == Version(s.version).release for s in need
    )


def _check_torch(
    m: Matrix, release: TorchTensorRTRelease, spec: str | None, version: str | None, complete: bool
) -> list[Conflict]:
    if spec is None:
        if complete:
            return [
                Conflict(
                    "torch-missing",
                    f"{release} is installed without torch",
                    f"install torch{release.torch}",
                    ("torch",),
                )
            ]
        return []
    lines = m.torch_lines_for(release)
    newest = next(
        (v for t in reversed(lines) for v in reversed(t.releases) if release.accepts_torch(v)), None
    )
    if version is None:  # a range: is any torch release inside both?
        every = [v for t in m.torch_lines for v in t.releases]
        if any(SpecifierSet(spec).contains(v) and release.accepts_torch(v) for v in every):
            return []
        return [
            Conflict(
                "torch-version",
                f"{release} requires torch{release.torch}, but torch{spec} is asked for",
                f"pin torch=={newest}",
                ("torch", release.flavour),
            )
        ]
    out: list[Conflict] = []
    if not release.accepts_torch(version):
        fix = f"pin torch=={newest} (the newest torch that {release} accepts)"
        try:
            paired = m.for_torch(version, release.flavour)
            if paired:
                fix += f", or keep torch {line_of(version)} and pin {release.flavour}=={paired[-1].version}"
            else:
                fix += f"; torch {line_of(version)} has no {release.flavour} release"
        except TrtShimError as exc:
            fix += f"; {exc.reason}"
        out.append(
            Conflict(
                "torch-version",
                f"{release} requires torch{release.torch}, but torch {version} is "
                f"{'installed' if complete else 'pinned'}",
                fix,
                ("torch", release.flavour),
            )
        )
        return out
    local = Version(version).local or ""
    want = cuda_major(release.cuda)
    cu = re.fullmatch(r"cu(\d+?)(\d)", local)
    if local == "cpu":
        out.append(
            Conflict(
                "torch-cpu",
                f"torch {version} is a CPU build; {release} needs CUDA {release.cuda}",
                f"install torch from {pytorch_index(release.cuda or '12.4')}",
                ("torch",),
            )
        )
    elif cu and want is not None and int(cu.group(1)) != want:
        out.append(
            Conflict(
                "cuda-mismatch",
                f"torch {version} is a CUDA {cu.group(1)}.{cu.group(2)} build; "
                f"{release} is built for CUDA {release.cuda}",
                f"install torch=={release_of(version)} from {pytorch_index(release.cuda or '')}",
                ("torch",),
            )
        )
    elif not local:
        problem = m.cuda_mismatch(release, m.torch_release(version))
        if problem:
            out.append(
                Conflict(
                    "cuda-mismatch",
                    problem.split(":")[0] + f" (torch {version})",
                    f"install torch=={version} from {pytorch_index(release.cuda or '')}",
                    ("torch",),
                )
            )
    return out


def _check_tensorrt_mix(pinned: Mapping[str, str], suggestion: str) -> list[Conflict]:
    out: list[Conflict] = []
    standard = {
        n: v for n, v in pinned.items() if n.startswith("tensorrt") and not n.startswith("tensorrt-rtx")
    }
    families = sorted({f for n in standard for f in re.findall(r"-(cu\d+)", n)})
    if len(families) > 1:
        names = sorted(n for n in standard if re.search(r"-cu\d+", n))
        out.append(
            Conflict(
                "mixed-cuda",
                f"TensorRT wheels for several CUDA majors are mixed ({', '.join(families)}): {', '.join(names)}",
                "uninstall the TensorRT distributions of the other CUDA major; keep the family your torch_tensorrt "
                "requires (see `trtshim pins`)",
                tuple(names),
            )
        )
    releases = {
        n: Version(v).release[:3] for n, v in standard.items() if not n.endswith(("-lean", "-dispatch"))
    }
    if len(set(releases.values())) > 1:
        shown = ", ".join(f"{n} {standard[n]}" for n in sorted(releases))
        out.append(
            Conflict(
                "mixed-tensorrt",
                f"mixed TensorRT versions: {shown}",
                "install every TensorRT distribution at one version ("
                + (suggestion or "`trtshim pins --torch-tensorrt X` lists them")
                + ")",
                tuple(sorted(releases)),
            )
        )
    return out
