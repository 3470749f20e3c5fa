"""Render docs/compatibility.md (+ .json) from the records nox sessions leave (``.nox/_results``).

usage: python tools/compat_report.py RESULTS_DIR [OUT_DIR]
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import xml.etree.ElementTree as ET
from typing import Any


def read_results(folder: str) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(folder, name)) as fh:
            record = json.load(fh)
        junit = os.path.join(folder, name[:-5] + ".xml")
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        if os.path.exists(junit):
            suite = ET.parse(junit).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            total = int(suite.get("tests", 0))
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            counts = {"passed": total - failed - skipped, "failed": failed, "skipped": skipped}
        env = record.get("fixes", {}).get("environment", {})
        applied = [f["id"] for f in record.get("fixes", {}).get("fixes", []) if f.get("applied")]
        rows.append(
            {
                "session": record["session"],
                "torch": env.get("torch"),
                "torch_tensorrt": env.get("torch_tensorrt"),
                "flavour": env.get("torch_tensorrt_flavour"),
                "python": env.get("python"),
                **counts,
                "fixes_applied": applied,
                "duration_s": record.get("duration_s"),
                "finished": record.get("finished"),
            }
        )
    return rows


def _order(row: dict[str, Any]) -> tuple[int, Any]:
    name = row["session"]
    if name.startswith("matrix-"):
        return (1, tuple(int(p) for p in name.split("-", 1)[1].split(".")))
    return (0 if name == "tests" else 2, name)


def render(rows: list[dict[str, Any]]) -> str:
    today = datetime.date.today().isoformat()
    lines = [
        "# Compatibility report",
        "",
        f"Generated {today} by `nox -s report` from the sessions' own records (pytest junit + `trtshim fixes --json`).",
        "Durations are the test run of each session (install time excluded).",
        "",
        "| session | torch | torch_tensorrt | passed | failed | skipped | fixes applied | duration |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=_order):
        ttrt = f"{r['torch_tensorrt']} ({r['flavour']})" if r["torch_tensorrt"] else "-"
        lines.append(
            f"| {r['session']} | {r['torch']} | {ttrt} | {r['passed']} | {r['failed']} | {r['skipped']} | "
            f"{', '.join(r['fixes_applied']) or '-'} | {r['duration_s']} s |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    folder = sys.argv[1]
    out = (
        sys.argv[2]
        if len(sys.argv) > 2
        else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")
    )
    rows = read_results(folder)
    if not rows:
        print(f"no session records in {folder}", file=sys.stderr)
        return 1
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "compatibility.md"), "w") as fh:
        fh.write(render(rows))
    with open(os.path.join(out, "compatibility.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    print(f"wrote {os.path.join(out, 'compatibility.md')} ({len(rows)} sessions)")
    return 1 if any(r["failed"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
