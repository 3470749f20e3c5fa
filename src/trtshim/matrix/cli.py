"""``trtshim pins``: print a working version set, or check an environment / requirements file."""

from __future__ import annotations

import argparse

from trtshim.matrix.formats import FORMATS
from trtshim.matrix.model import FLAVOURS

_INSTALLED = "<installed>"


def add_pins_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``trtshim pins`` options to ``parser``."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--torch", metavar="X.Y", help="a torch line (2.5) or release (2.5.1)")
    which.add_argument("--torch-tensorrt", metavar="X.Y.Z", help="a torch_tensorrt release (2.5.0)")
    parser.add_argument(
        "--flavour", choices=FLAVOURS, default="torch-tensorrt", help="default: torch-tensorrt"
    )
    parser.add_argument(
        "--python", metavar="X.Y", help="the CPython of the target machine: a set without wheels for it is refused"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="constraints",
        help="constraints (pip/uv -c file, default), requirements (-r file), pyproject (an optional-dependency "
        "group), uv / uv-override ([tool.uv] constraint / override block) or json",
    )
    parser.add_argument(
        "--check",
        nargs="?",
        const=_INSTALLED,
        metavar="FILE",
        help="check a requirements/constraints file, a pyproject.toml or a uv.lock, or the installed "
        "environment when FILE is left out",
    )


def run_pins(args: argparse.Namespace) -> int:
    """Run ``trtshim pins``; 1 when ``--check`` found conflicts. Bad input raises TrtShimError."""
    from trtshim.matrix import check, formats, pins

    if args.check is None:
        print(
            formats.format(
                pins.pins(
                    torch=args.torch,
                    torch_tensorrt=args.torch_tensorrt,
                    flavour=args.flavour,
                    env={"python": args.python} if args.python else None,
                ),
                args.format,
            ),
            end="",
        )
        return 0
    source: dict[str, str] | check.Requirements
    notes: tuple[str, ...] = ()
    if args.check == _INSTALLED:
        from trtshim.compat.environment import installed_distributions

        installed = dict(installed_distributions())
        numpy = _numpy_version()
        if numpy:
            installed["numpy"] = numpy
        source, label = installed, "installed environment"
    else:
        source = check.read_requirements(args.check)
        label, notes = args.check, source.notes
    conflicts = check.check(source)
    if args.format == "json":
        import json

        print(
            json.dumps(
                {"source": label, "conflicts": [vars(c) for c in conflicts], "notes": list(notes)},
                indent=2,
                default=list,
            )
        )
        return 1 if conflicts else 0
    shown = source.specs if isinstance(source, check.Requirements) else {k: f"=={v}" for k, v in source.items()}
    print(
        f"{label}: "
        + (", ".join(f"{n}{s}" for n, s in sorted(shown.items()) if _watched(n)) or "nothing relevant")
    )
    for note in notes:
        print(f"  note: {note}")
    if not conflicts:
        print("ok: no conflicts")
        return 0
    print(f"{len(conflicts)} conflict{'s' if len(conflicts) != 1 else ''}:")
    for i, c in enumerate(conflicts, 1):
        print(f"  {i}. {c.problem}\n     fix: {c.fix}")
    return 1


def _watched(name: str) -> bool:
    return name in ("torch", "numpy") or name.startswith(("torch-tensorrt", "tensorrt"))


def _numpy_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("numpy")
    except metadata.PackageNotFoundError:
        return None
