"""Render a ``PinSet`` for a downstream file: pip constraints, requirements, a uv block, JSON."""

from __future__ import annotations

import json

from trtshim.errors import TrtShimError
from trtshim.matrix.pins import PinSet

FORMATS = ("constraints", "requirements", "uv", "json")


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
