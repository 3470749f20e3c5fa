"""``python -m trtshim.matrix refresh|readme``: maintainer steps for the version matrix."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trtshim.matrix", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ref = sub.add_parser("refresh", help="rebuild data.json from PyPI metadata (network)")
    ref.add_argument("--date", help="the 'generated' date to record (default: today)")
    ref.add_argument("--output", help="where to write (default: data.json next to this module)")
    rd = sub.add_parser("readme", help="rewrite the support table in README.md")
    rd.add_argument("path", nargs="?", help="the README to update (default: the checkout's README.md)")
    rd.add_argument("--check", action="store_true", help="only report whether the table is current")
    args = parser.parse_args(argv)

    if args.command == "refresh":
        from pathlib import Path

        from trtshim.matrix import refresh

        out = refresh.refresh(Path(args.output) if args.output else refresh.DATA_PATH, args.date)
        print(f"wrote {out}")
        return 0

    from pathlib import Path

    from trtshim.matrix import readme

    if args.path is None:
        checkout = Path(__file__).resolve().parents[3] / "README.md"  # src/trtshim/matrix -> repo root
        args.path = str(checkout if checkout.exists() else "README.md")
    changed = readme.update_readme(args.path, write=not args.check)
    if args.check:
        print(f"{args.path}: {'out of date' if changed else 'up to date'}")
        return 1 if changed else 0
    print(f"{args.path}: {'updated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
