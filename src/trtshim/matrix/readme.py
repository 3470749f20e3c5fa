"""The README support table, rendered from the matrix (``python -m trtshim.matrix readme``)."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.version import Version

from trtshim.matrix.model import Matrix, TorchTensorRTRelease
from trtshim.matrix.pins import GLIBC_COMMON
from trtshim.matrix.specs import compact_python

START = "<!-- matrix:start -->"
END = "<!-- matrix:end -->"
_BLOCK = re.compile(re.escape(START) + r"\n(.*?)" + re.escape(END), re.S)


def _tensorrt(release: TorchTensorRTRelease) -> str:
    line = release.tensorrt_line or "?"
    return f"{line} ({release.cuda_family})" if release.cuda_family else line


def _cuda(matrix: Matrix, release: TorchTensorRTRelease) -> str:
    lines = matrix.torch_lines_for(release)
    if lines and matrix.cuda_mismatch(release, lines[-1]):
        return f"{release.cuda} (PyPI torch is {lines[-1].cuda}: needs a cu{(release.cuda or '').replace('.', '')} torch)"
    return release.cuda or "?"


def render_table(matrix: Matrix) -> str:
    """The Markdown support table (newest first) plus its footnotes, as it sits between the markers."""
    rtx = {r.version: r for r in matrix.torch_tensorrt_releases("torch-tensorrt-rtx")}
    rows = [
        "| torch_tensorrt | torch | TensorRT | CUDA | Python | ABI group | torch-tensorrt-rtx |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reversed(matrix.torch_tensorrt_releases("torch-tensorrt")):
        twin = rtx.get(r.version)
        avoid = next((x for x in matrix.rules_for(r.flavour, r.version) if x.kind == "avoid"), None)
        version = f"{r.version} (use {avoid.action.get('use')})" if avoid else r.version
        rows.append(
            f"| {version} | `{r.torch}` | {_tensorrt(r)} | {_cuda(matrix, r)} | "
            f"{compact_python(list(r.cpython))} | {r.abi_version} | "
            + (f"{twin.version} (TensorRT-RTX {twin.tensorrt_line})" if twin else "—")
            + " |"
        )
    groups = "; ".join(
        f"{g.abi_version}: {', '.join(g.releases)}"
        for g in matrix.abi_groups
        if g.flavour == "torch-tensorrt"
    )
    unpaired = [t.line for t in matrix.torch_lines if not matrix.for_torch(t.line)]
    glibc = ", ".join(
        f"{r.version} needs glibc >= {r.glibc}"
        for r in matrix.torch_tensorrt_releases("torch-tensorrt")
        if r.glibc and Version(r.glibc) > Version(GLIBC_COMMON)
    )
    notes = [
        "",
        "* TensorRT and CUDA are those of the linux x86_64 wheel on PyPI (`Requires-Dist`, `__cuda_version__`).",
        f"* A saved TensorRT program loads only within its ABI group ({groups}).",
        f"* torch 2.1 has no torch_tensorrt release; torch {', '.join(unpaired) or '—'} has none yet.",
        *([f"* glibc: {glibc} (manylinux tags of the linux x86_64 wheels)."] if glibc else []),
        "* `trtshim pins --torch X.Y` prints a working set; `trtshim pins --check` checks one.",
        f"* Generated from PyPI metadata on {matrix.generated} by `python -m trtshim.matrix refresh`.",
    ]
    return "\n".join(rows + notes) + "\n"


def extract_block(text: str) -> str | None:
    """The text between the matrix markers, or None when the markers are missing."""
    m = _BLOCK.search(text)
    return m.group(1) if m else None


def update_readme(path: str | Path, matrix: Matrix | None = None, *, write: bool = True) -> bool:
    """Rewrite the block between the markers; returns whether it changed."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if extract_block(text) is None:
        raise ValueError(f"{p}: no {START} ... {END} block")
    table = render_table(matrix or Matrix.load())
    new = _BLOCK.sub(lambda _: f"{START}\n{table}{END}", text, count=1)
    if write and new != text:
        p.write_text(new, encoding="utf-8")
    return new != text
