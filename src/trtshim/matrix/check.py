"""Conflicts in an installed set or a requirements file, against the matrix data (``trtshim pins --check``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from trtshim.errors import TrtShimError
from trtshim.matrix.model import (
    FLAVOURS,
    Matrix,
    TorchTensorRTRelease,
    cuda_major,
    line_of,
    pytorch_index,
    release_of,
)
from trtshim.matrix.pins import tensorrt_pins
from trtshim.matrix.specs import format_spec


@dataclass(frozen=True)
class Conflict:
    """A problem in an installed set or requirements file, and how to fix it."""

    code: str
    problem: str
    fix: str
    packages: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}"


@dataclass(frozen=True)
class Requirements:
    """What a requirements file pins: name -> specifier (``==2.4.1``), plus notes on skipped lines."""

    specs: Mapping[str, str]
    notes: tuple[str, ...] = ()


def read_requirements(path: str | os.PathLike[str]) -> Requirements:
    """What a file pins: a requirements / constraints file (``name==ver`` lines; options, includes and URLs
    skipped with a note), a ``pyproject.toml`` (dependencies, optional and group dependencies, uv's
    constraint and override dependencies) or a ``uv.lock`` (every locked version)."""
    name = os.path.basename(os.fspath(path))
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if name.endswith(".toml") or name.endswith(".lock"):
        data = _toml(text, os.fspath(path))
        if name == "uv.lock" or ("package" in data and "project" not in data):
            return _locked(data)
        return _pyproject(data)
    specs: dict[str, str] = {}
    notes: list[str] = []
    for number, raw in enumerate(text.replace("\\\n", " ").splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            notes.append(f"line {number}: ignored option {line!r} (included files are not followed)")
            continue
        _add(specs, notes, line, f"line {number}")
    return Requirements(specs, tuple(notes))


def _add(specs: dict[str, str], notes: list[str], text: str, where: str) -> None:
    """Fold one requirement into ``specs`` (specifiers of one name intersect), or note why not."""
    try:
        req = Requirement(text)
    except InvalidRequirement:
        notes.append(f"{where}: not understood, ignored: {text!r}")
        return
    if req.url:
        notes.append(f"{where}: URL requirement for {req.name} not checked")
        return
    name = canonicalize_name(req.name)
    specs[name] = format_spec(SpecifierSet(specs.get(name, "")) & req.specifier)


def _toml(text: str, path: str) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise TrtShimError(f"reading {path} needs Python 3.11+ or the tomli package", "pip install tomli") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TrtShimError(f"{path} is not valid TOML: {exc}", "fix the file, or check a requirements file") from exc


def _pyproject(data: dict[str, Any]) -> Requirements:
    """Every requirement a pyproject declares; uv's override-dependencies replace what they name."""
    specs: dict[str, str] = {}
    notes: list[str] = []
    project = data.get("project", {})
    uv = data.get("tool", {}).get("uv", {})
    sections: list[tuple[str, list[Any]]] = [("dependencies", project.get("dependencies", []))]
    sections += [(f"optional-dependencies.{k}", v) for k, v in project.get("optional-dependencies", {}).items()]
    sections += [(f"dependency-groups.{k}", v) for k, v in data.get("dependency-groups", {}).items()]
    sections += [("tool.uv.constraint-dependencies", uv.get("constraint-dependencies", []))]
    for where, items in sections:
        for item in items:
            if isinstance(item, str):
                _add(specs, notes, item, where)
    overrides: dict[str, str] = {}
    for item in uv.get("override-dependencies", []):
        _add(overrides, notes, item, "tool.uv.override-dependencies")
    specs.update(overrides)
    cuda = _pytorch_index_cuda(uv, "torch")
    if cuda and re.fullmatch(r"==[^,*+]+", specs.get("torch", "")):  # torch from the PyTorch index: its +cu build
        specs["torch"] += f"+{cuda}"
        notes.append(f"torch comes from the PyTorch {cuda} index (tool.uv.sources)")
    read = [w for w, items in sections if items] + (["tool.uv.override-dependencies"] if overrides else [])
    notes.append(f"read {', '.join(read) or 'no dependency section'}")
    return Requirements(specs, tuple(notes))


def _pytorch_index_cuda(uv: dict[str, Any], package: str) -> str | None:
    """``cu130`` when uv takes ``package`` from a PyTorch ``.../whl/cu130`` index (``[tool.uv.sources]``)."""
    urls = {i.get("name"): str(i.get("url", "")) for i in uv.get("index", []) if isinstance(i, dict)}
    sources = uv.get("sources", {}).get(package, [])
    for source in sources if isinstance(sources, list) else [sources]:
        url = urls.get(source.get("index")) if isinstance(source, dict) else None
        found = re.search(r"/whl/(cu\d+)/?$", url or "")
        if found:
            return found.group(1)
    return None


def _locked(data: dict[str, Any]) -> Requirements:
    """The versions a ``uv.lock`` resolved (its ``[[package]]`` tables)."""
    specs: dict[str, str] = {
        str(canonicalize_name(p["name"])): f"=={p['version']}"
        for p in data.get("package", [])
        if isinstance(p, dict) and p.get("name") and p.get("version")
    }
    return Requirements(specs, (f"read {len(specs)} locked packages",))


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
