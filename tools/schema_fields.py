"""The torch.export schema of each torch minor, as data for ``save(..., target_torch=...)``.

usage:
  python tools/schema_fields.py dump             # under one torch: its schema version and the fields of
                                                  # each schema dataclass, as JSON on stdout
  python tools/schema_fields.py merge DUMP...    # writes src/trtshim/compat/artifact/migrations/schema_fields.json

Run ``dump`` in an environment of every torch minor (e.g. the ``artifacts_save`` nox sessions' venvs);
the merged file is committed, like the version matrix.
"""

from __future__ import annotations

import json
import os
import sys

SKIP = ("Payload", "AOTInductor", "ExternKernel", "Model", "Program")  # not part of a saved program's JSON
OUT = os.path.join(os.path.dirname(__file__), "..", "src", "trtshim", "compat", "artifact", "migrations", "schema_fields.json")


def dump() -> None:
    import dataclasses

    import torch
    from torch._export.serde import schema

    version = schema.SCHEMA_VERSION
    classes = {
        name: [f.name for f in dataclasses.fields(obj)]
        for name, obj in vars(schema).items()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and not name.startswith(SKIP)
    }
    line = ".".join(torch.__version__.split(".")[:2])
    schema_version = list(version) if isinstance(version, tuple) else [int(version), 0]
    print(json.dumps({"line": line, "torch": torch.__version__, "schema": schema_version, "classes": classes}))


def merge(paths: list[str]) -> None:
    lines = {}
    for path in paths:
        with open(path) as fh:
            d = json.load(fh)
        classes = {k: v for k, v in d["classes"].items() if not k.startswith(SKIP)}
        lines[d["line"]] = {"torch": d["torch"], "schema": d["schema"], "classes": classes}
    ordered = dict(sorted(lines.items(), key=lambda kv: tuple(int(x) for x in kv[0].split("."))))
    with open(OUT, "w") as fh:
        json.dump(ordered, fh, indent=None, separators=(",", ":"), sort_keys=False)
        fh.write("\n")


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump()
    else:
        merge(sys.argv[2:])
