"""The supported rows as data: one row = one environment a test session runs in (a torch minor, or a
torch_tensorrt release with its working set), with the pins and install rules trtshim uses itself.

``rows("ci")`` feeds trtshim's own noxfile, ``trtshim.nox.matrix_session`` (a downstream noxfile) and
``trtshim matrix --format github`` (a CI runner matrix): the same rows everywhere. Imports no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trtshim.errors import OptionError
from trtshim.matrix.model import Matrix

PYTHON = "3.11"  #: the one Python every torch 2.2-2.15 and torch_tensorrt 2.2-2.14 release has wheels for
CI_TORCH = ("2.2", "2.5", "2.8", "2.11", "2.15")  #: a diagonal through the export schema majors
SETS = ("ci", "torch", "trt", "all")
CPU_RUNNER = "ubuntu-latest"
GPU_RUNNER = ("self-hosted", "linux", "x64", "gpu")


@dataclass(frozen=True)
class Row:
    """One environment: what to install (``requirements``, with ``index_url`` where torch must come from
    the PyTorch index) and whether it needs a GPU to be meaningful."""

    id: str  # e.g. "torch-2.5" or "rtx-2.14.0": a nox session's parameter id, a CI job's name
    torch: str
    requirements: tuple[str, ...]
    torch_tensorrt: str | None = None
    flavour: str | None = None
    gpu: bool = False
    python: str = PYTHON
    index_url: str | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def companions(torch_version: str, matrix: Matrix | None = None) -> list[str]:
    """What installs beside this torch: numpy, pinned as the matrix's rules say (``numpy<2`` for torch <= 2.3)."""
    m = matrix or Matrix.load()
    out = ["numpy"]
    for rule in m.rules_for("torch", torch_version):
        if rule.kind == "pin" and rule.action.get("package"):
            package = rule.action["package"]
            out = [p for p in out if p != package] + [f"{package}{rule.action['specifier']}"]
    return out


def python_tag(python: str) -> str:
    """``"3.12"`` -> ``"cp312"``, the wheel tag of that CPython."""
    return "cp" + "".join(python.split(".")[:2])


def torch_row(line: str, matrix: Matrix | None = None, python: str = PYTHON) -> Row:
    """A torch minor at its newest patch, with its companions, on ``python``."""
    m = matrix or Matrix.load()
    version = m.torch_release(line).latest
    return Row(f"torch-{line}", version, (f"torch=={version}", *companions(version, m)), python=python)


#: the first torch minor whose torch.export (TorchDynamo) runs on a CPython; earlier minors have wheels for it
#: but refuse "Python 3.12+ not yet supported for torch.compile" (measured: nox -s pythons)
FIRST_EXPORT_TORCH = {"3.12": "2.4", "3.13": "2.6"}
#: the CPythons trtshim is tested on (pyproject's requires-python and classifiers say the same)
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def has_wheel(line: str, python: str, matrix: Matrix | None = None) -> bool:
    """Whether torch ``line`` runs trtshim on ``python``: its newest patch has a linux x86_64 wheel for it
    and its torch.export supports it."""
    m = matrix or Matrix.load()
    first = FIRST_EXPORT_TORCH.get(".".join(python.split(".")[:2]))
    if first is not None and _minor_key(line) < _minor_key(first):
        return False
    return python_tag(python) in m.torch_release(line).cpython


def tensorrt_row(
    release: str, flavour: str = "torch-tensorrt-rtx", matrix: Matrix | None = None, python: str = PYTHON
) -> Row:
    """A torch_tensorrt release with its working set (``trtshim pins``) on ``python``; a GPU row.
    ``TrtShimError`` where the release or its torch has no wheel for ``python``."""
    from trtshim.matrix.pins import pins

    m = matrix or Matrix.load()
    pinset = pins(torch_tensorrt=release, flavour=flavour, matrix=m, env={"python": python})
    prefix = "rtx" if flavour == "torch-tensorrt-rtx" else "trt"
    requirements = tuple(str(p) for p in pinset.pins)
    if not any(r.startswith("numpy") for r in requirements):
        requirements += tuple(c for c in companions(pinset.torch, m) if c.startswith("numpy"))
    return Row(
        f"{prefix}-{pinset.torch_tensorrt}",
        pinset.torch,
        requirements,
        torch_tensorrt=pinset.torch_tensorrt,
        flavour=pinset.flavour,
        gpu=True,
        python=python,
        index_url=pinset.torch_index_url,
        notes=pinset.notes,
    )


def newest_per_line(flavour: str, matrix: Matrix | None = None) -> list[str]:
    """The newest torch_tensorrt release of each release line of ``flavour``."""
    m = matrix or Matrix.load()
    newest: dict[str, str] = {}
    for release in m.torch_tensorrt_releases(flavour):
        newest[".".join(release.version.split(".")[:2])] = release.version
    return sorted(newest.values(), key=lambda v: tuple(int(x) for x in v.split(".")[:3]))


def rows(which: str = "ci", matrix: Matrix | None = None, python: str = PYTHON) -> list[Row]:
    """``ci``: torch minors 2.2/2.5/2.8/2.11/2.15 plus the newest torch-tensorrt-rtx; ``torch``: every torch
    minor; ``trt``: the newest release of each torch-tensorrt and torch-tensorrt-rtx line; ``all``: both.

    ``python``: only rows whose torch (and torch_tensorrt) have wheels for that CPython; in ``ci``, the
    oldest and the newest torch minor that have one stand in for the diagonal's ends where those have none."""
    from trtshim.errors import TrtShimError

    m = matrix or Matrix.load()
    if which not in SETS:
        raise OptionError(f"unknown row set {which!r}", f"choose one of {', '.join(SETS)}")
    if ".".join(python.split(".")[:2]) not in PYTHONS:
        raise OptionError(f"trtshim is not tested on Python {python}", f"use one of {', '.join(PYTHONS)}")
    usable = [line for line in m.torch_minors() if has_wheel(line, python, m)]
    if not usable:
        raise OptionError(f"no supported torch has wheels for Python {python}", f"use Python {PYTHON}")
    torch_lines = [line for line in usable if which != "ci" or line in CI_TORCH]
    if which == "ci" and usable[0] not in torch_lines and _minor_key(usable[0]) > _minor_key(CI_TORCH[0]):
        torch_lines.insert(0, usable[0])  # the oldest torch with a wheel for this Python
    if which == "ci" and usable[-1] not in torch_lines and _minor_key(usable[-1]) < _minor_key(CI_TORCH[-1]):
        torch_lines.append(usable[-1])  # and the newest
    out = [torch_row(line, m, python) for line in torch_lines] if which != "trt" else []
    candidates: list[tuple[str, str]] = []
    if which == "ci":
        candidates = [(v, "torch-tensorrt-rtx") for v in reversed(newest_per_line("torch-tensorrt-rtx", m))]
    elif which in ("trt", "all"):
        candidates = [(v, f) for f in ("torch-tensorrt", "torch-tensorrt-rtx") for v in newest_per_line(f, m)]
    for release, flavour in candidates:
        try:
            out.append(tensorrt_row(release, flavour, m, python))
        except TrtShimError:  # no wheel for this Python
            continue
        if which == "ci":
            break  # the newest one that installs
    return out


def _minor_key(line: str) -> tuple[int, ...]:
    return tuple(int(x) for x in line.split("."))


def github_matrix(
    selected: list[Row],
    *,
    cpu_runner: str = CPU_RUNNER,
    gpu_runner: tuple[str, ...] | str = GPU_RUNNER,
    session: str = "tests",
) -> dict[str, Any]:
    """A GitHub Actions ``strategy.matrix`` (``{"include": [...]}``): one job per row, GPU rows on
    ``gpu_runner`` (left out where it is empty: no GPU runner), each with its pins as one install line,
    the index it needs, and the nox session ``trtshim.nox.matrix_session`` makes of it (``session(row)``)."""
    include = []
    for row in selected:
        if row.gpu and not gpu_runner:
            continue
        include.append(
            {
                "name": row.id,
                "session": f"{session}({row.id})",
                "runs-on": (gpu_runner if isinstance(gpu_runner, str) else list(gpu_runner)) if row.gpu else cpu_runner,
                "python": row.python,
                "torch": row.torch,
                "torch_tensorrt": row.torch_tensorrt or "",
                "flavour": row.flavour or "",
                "gpu": row.gpu,
                "pins": " ".join(row.requirements),
                "index_url": row.index_url or "",
            }
        )
    return {"include": include}
