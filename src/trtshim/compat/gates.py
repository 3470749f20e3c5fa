"""One version gate: ``requires("torch>=2.6", "tensorrt>=10")`` -> a bool that carries its reason.

Code, fixes (``Fix.affected``) and tests (``@pytest.mark.requires(...)``) all ask this one function.
Each requirement is a PEP 508 name plus specifier, compared against the *release* of the installed
version (NGC ``2.4.0a0+...nv24.07`` and nightlies count as the release line they belong to), in the
spirit of Lightning's ``RequirementCache``. Names: ``torch``; ``torch_tensorrt`` (either flavour);
``torch-tensorrt-rtx`` (that flavour only); ``tensorrt`` (the core library of either TensorRT family);
any other distribution through ``importlib.metadata``. Imports no torch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from trtshim.compat.environment import Environment, detect
from trtshim.compat.versions import PackageVersion, parse


@dataclass(frozen=True)
class Gate:
    """The answer of ``requires``: truthy when every requirement holds; ``reason`` says why (not)."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return self.reason


def _release(version: str) -> Version | None:
    """The release ``version`` belongs to, every component kept: ``2.4.0a0+nv`` -> 2.4.0, ``10.12.0.36`` stays."""
    parsed = parse(version)
    return Version(".".join(map(str, (*parsed.release, 0, 0)[: max(3, len(parsed.release))]))) if parsed else None


def release_in(version: str, specifier: str) -> bool:
    """Whether the release ``version`` belongs to is in ``specifier`` (``">=2.7,<2.10"``)."""
    release = _release(version)
    return release is not None and release in SpecifierSet(specifier)


def installed(name: str, env: Environment) -> PackageVersion | None:
    """The installed distribution ``name`` stands for in ``env`` (see the module docstring)."""
    key = canonicalize_name(name)
    if key == "torch":
        return env.torch
    if key == "torch-tensorrt":
        return env.torch_tensorrt
    if key == "torch-tensorrt-rtx":
        return env.torch_tensorrt if env.torch_tensorrt_flavour == key else None
    if key == "tensorrt":
        return PackageVersion(key, env.tensorrt_version) if env.tensorrt_version else None
    for pkg in env.tensorrt:
        if canonicalize_name(pkg.name) == key:
            return pkg
    from importlib import metadata

    try:
        return PackageVersion(key, metadata.version(key))
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> tuple[Requirement, str, str]:
    """(the requirement, its name as reasons show it, its specifier as written): parsed once per text."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"not a requirement: {text!r} ({exc})") from None
    name = req.name.replace("-", "_") if canonicalize_name(req.name) == "torch-tensorrt" else req.name
    return req, name, text.strip()[len(req.name) :].strip()  # as written: reasons quote it


def requires(*requirements: str, env: Environment | None = None) -> Gate:
    """Whether every requirement (``"torch>=2.3,<2.6"``, ``"torch_tensorrt"``) holds in ``env``
    (default: ``detect()``); the first that fails is the reason, else all of them."""
    env = env if env is not None else detect()
    held: list[str] = []
    for text in requirements:
        req, name, spec = _parsed(text)
        have = installed(req.name, env)
        release = _release(have.raw) if have is not None else None
        if have is None or release is None:
            return Gate(False, f"{name} is not installed")
        if spec and release not in req.specifier:
            return Gate(False, f"{name} {have.raw} is outside {spec}")
        held.append(f"{name} {have.raw} in {spec}" if spec else f"{name} {have.raw} is installed")
    return Gate(True, "; ".join(held) or "applies everywhere")
