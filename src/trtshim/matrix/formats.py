"""Render a ``PinSet`` for a downstream file: pip constraints or requirements, pyproject TOML (an
optional-dependency group; uv's constraint or override block), JSON."""

from __future__ import annotations

import json

from trtshim.errors import TrtShimError
from trtshim.matrix.pins import PinSet

FORMATS = ("constraints", "requirements", "pyproject", "uv", "uv-override", "json")


def format(pinset: PinSet, fmt: str = "constraints") -> str:
    """Render a PinSet: ``constraints`` / ``requirements`` (pip files); ``pyproject`` (an optional-dependency
    group), ``uv`` (``[tool.uv] constraint-dependencies``), ``uv-override`` (``override-dependencies``): TOML
    for pyproject.toml; or ``json``."""
    if fmt == "json":
        return json.dumps(pinset.to_dict(), indent=2, sort_keys=True) + "\n"
    if fmt not in FORMATS:
        raise TrtShimError(f"unknown pins format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    head = [
        f"# trtshim pins: torch {pinset.torch} + {pinset.flavour} {pinset.torch_tensorrt} "
        f"(linux x86_64 metadata, matrix generated {pinset.generated})"
    ]
    head += [f"# note: {n}" for n in pinset.notes]
    if fmt in ("uv", "uv-override"):
        return _format_uv(pinset, head, override=fmt == "uv-override")
    if fmt == "pyproject":
        return _format_pyproject(pinset, head)
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


def group_name(pinset: PinSet) -> str:
    """An extra's name for this set (PEP 685): ``torch-tensorrt-2-14-0``, ``torch-tensorrt-rtx-2-14-0``."""
    return f"{pinset.flavour}-{pinset.torch_tensorrt}".replace(".", "-").replace("_", "-").lower()


def _format_pyproject(pinset: PinSet, head: list[str]) -> str:
    name = group_name(pinset)
    intro = [
        f"# pyproject.toml: `pip install .[{name}]` / `uv sync --extra {name}` installs this working set;",
        "# several sets may live side by side as groups (uv: declare them conflicting in [tool.uv] conflicts).",
    ]
    return _toml_list(pinset, [*head, *intro], "project.optional-dependencies", name)


def _format_uv(pinset: PinSet, head: list[str], *, override: bool = False) -> str:
    key = "override-dependencies" if override else "constraint-dependencies"
    what = (
        "overrides replace every other requirement on these packages, a dependency's own pins included"
        if override
        else "constraints limit versions, they add no packages; for `uv pip install` use --format constraints"
    )
    intro = [f"# uv: paste into pyproject.toml; `uv lock` / `uv sync` read [tool.uv] {key}", f"# ({what})."]
    return _toml_list(pinset, [*head, *intro], "tool.uv", key)


def _toml_list(pinset: PinSet, intro: list[str], table: str, key: str) -> str:
    """``[table]`` with ``key = [pins]`` (each pin's reason as a comment), and the torch index where needed."""
    lines = [*intro, f"[{table}]", f"{key} = ["]
    lines += [f'    "{p}",  # {p.reason.replace(chr(34), chr(39))}' for p in pinset.pins]
    lines.append("]")
    lines += _uv_index(pinset)
    return "\n".join(lines) + "\n"


def _uv_index(pinset: PinSet) -> list[str]:
    """Where torch must come from the PyTorch index: uv's index and source tables for it."""
    lines: list[str] = []
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
    return lines
