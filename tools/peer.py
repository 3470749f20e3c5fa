#!/usr/bin/env python
"""PyTorch's own export test suite (test/export/test_export.py) through a save/load round trip, the way
its test_serdes.py runs it: every exported program is saved and loaded back before the test checks it.

Modes (the round trip each test's exported program goes through):
  torch          torch.export.save / torch.export.load (what test_serdes.py does)
  torch_safe     the same, with torch.export.load under torch.serialization.safe_globals(the test
                 module's classes, torch.nn classes, serde's _reconstruct_fake_tensor), as newer
                 upstream test_serdes.py does
  trtshim        trtshim.compat.save / trtshim.compat.load (allow_imports: torch's test utilities, whose
                 tensor subclasses some tests use); the test gets compat.load(path).program
  trtshim_safe   the same, under the same safe_globals scope (trtshim's pickle scan honours it)
  --compare A.json B.json   the tests A passes and B does not, grouped by B's first error line

The suite is not part of this repository: point ``TRTSHIM_PEER_TESTS`` at a PyTorch checkout's
test/export folder (test_export.py, testing.py, test_serdes.py) of the torch release installed.
Strict and non-strict variants, class prefixes, name suffixes and expected-failure marks follow
test_serdes.py, so test ids are the same in every mode. Output: <out>/<mode>.json (every test's
outcome and first error line). Extra pytest arguments go after "--".
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import re
import sys
import tempfile
import time
import types

SRC_DIR = os.environ.get("TRTSHIM_PEER_TESTS", "")


# --------------------------------------------------------------------------------------------------
# the generated test module
# --------------------------------------------------------------------------------------------------


def _torch_roundtrip(ep):
    from torch.export import load, save

    buffer = io.BytesIO()
    save(ep, buffer)
    buffer.seek(0)
    return load(buffer)


def _trtshim_roundtrip(ep):
    from trtshim import compat

    with tempfile.TemporaryDirectory(prefix="peer_rt_") as d:
        path = os.path.join(d, "program.pt2")
        compat.save(ep, path)
        # the tests' own tensor subclasses (TwoTensor, CustomTensorPlainOut) come from torch's test
        # utilities; trtshim loads a subclass only where the caller vouches for its package
        module = compat.load(path, allow_imports=["torch.testing._internal"])
        return module.program


def _safe_globals():
    # Same allow-list as the newer upstream test_serdes.py variant (seen in intel/torch-xpu-ops'
    # copy): the test module's classes, torch.nn classes and serde's _reconstruct_fake_tensor.
    # torch 2.14.1's torch.export.load unpickles sample inputs weights_only, which refuses them.
    import inspect

    import test_export
    import torch
    from torch._export.serde import serialize as serde_serialize

    test_classes = [
        obj
        for _, obj in inspect.getmembers(test_export, inspect.isclass)
        if obj.__module__ == test_export.__name__
    ]
    nn_classes = [obj for _, obj in inspect.getmembers(torch.nn, inspect.isclass)]
    return test_classes + nn_classes + [serde_serialize._reconstruct_fake_tensor]


def _torch_safe_roundtrip(ep):
    import torch
    from torch.export import load, save

    buffer = io.BytesIO()
    save(ep, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals(_safe_globals()):
        return load(buffer)


ROUNDTRIPS = {
    "torch": _torch_roundtrip,
    "torch_safe": _torch_safe_roundtrip,
    "trtshim": _trtshim_roundtrip,
    "trtshim_safe": lambda ep: _under_safe_globals(_trtshim_roundtrip, ep),
}


def _under_safe_globals(roundtrip, ep):  # type: ignore[no-untyped-def]
    import torch

    with torch.serialization.safe_globals(_safe_globals()):
        return roundtrip(ep)


def build_module(mode: str) -> types.ModuleType:
    """A module shaped like test_serdes.py whose mocked export round-trips through ``mode``."""
    if SRC_DIR not in sys.path:
        sys.path.insert(0, SRC_DIR)
    import test_export
    import testing
    from torch.export import export

    roundtrip = ROUNDTRIPS[mode]

    def mocked_export_strict(*args, **kwargs):
        ep = export(*args, **kwargs, strict=True) if "strict" not in kwargs else export(*args, **kwargs)
        return roundtrip(ep)

    def mocked_export_non_strict(*args, **kwargs):
        ep = export(*args, **kwargs)
        return roundtrip(ep)

    mod = types.ModuleType(f"peer_serdes_{mode}")
    mod.__file__ = __file__
    for cls in (test_export.TestDynamismExpression, test_export.TestExport):
        for strict in (True, False):
            if strict:
                test_class = testing.make_test_cls_with_mocked_export(
                    cls,
                    "SerDesExport",
                    test_export.SERDES_STRICT_SUFFIX,
                    mocked_export_strict,
                    xfail_prop="_expected_failure_serdes",
                )
            else:
                test_class = testing.make_test_cls_with_mocked_export(
                    cls,
                    "SerDesExportNonStrict",
                    test_export.SERDES_NON_STRICT_SUFFIX,
                    mocked_export_non_strict,
                    xfail_prop="_expected_failure_serdes_non_strict",
                )
            test_class.__module__ = mod.__name__
            setattr(mod, test_class.__name__, test_class)
    return mod


# --------------------------------------------------------------------------------------------------
# running and recording
# --------------------------------------------------------------------------------------------------


def _first_line(text: str) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


class Recorder:
    def __init__(self) -> None:
        self.tests: dict[str, dict[str, str]] = {}
        self._errors: dict[str, str] = {}

    def _tid(self, nodeid: str) -> str:
        return nodeid.split("::", 1)[1] if "::" in nodeid else nodeid

    def pytest_runtest_makereport(self, item, call):
        if call.excinfo is not None and call.when in ("setup", "call"):
            ex = call.excinfo
            msg = f"{ex.typename}: {_first_line(str(ex.value))}" if str(ex.value).strip() else ex.typename
            self._errors.setdefault(self._tid(item.nodeid), msg)

    def pytest_runtest_logreport(self, report):
        tid = self._tid(report.nodeid)
        prev = self.tests.get(tid)
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        elif report.failed:
            outcome = "failed" if report.when == "call" else "error"
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = "passed"
        if report.when != "call" and outcome == "passed":
            if prev is None:
                self.tests[tid] = {"outcome": "passed", "error": ""}
            return
        if prev is not None and prev["outcome"] not in ("passed",) and report.when == "teardown":
            return
        err = ""
        if outcome in ("failed", "error", "xfailed"):
            err = self._errors.get(tid) or _first_line(getattr(report, "longreprtext", ""))
        elif outcome == "skipped":
            lr = report.longrepr
            err = _first_line(lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr))
        elif outcome == "xpassed":
            err = "unexpected success"
        self.tests[tid] = {"outcome": outcome, "error": err}


def run_mode(mode: str, out_dir: str, extra: list[str]) -> str:
    import pytest

    os.makedirs(out_dir, exist_ok=True)
    module = build_module(mode)
    sys.modules[module.__name__] = module
    # pytest collects from files; write a tiny shim file importing the generated classes.
    shim_dir = tempfile.mkdtemp(prefix="peer_shim_")
    shim = os.path.join(shim_dir, f"test_peer_serdes_{mode}.py")
    with open(shim, "w") as f:
        f.write(
            "import sys\n"
            f"_m = sys.modules[{module.__name__!r}]\n"
            "for _n in dir(_m):\n"
            "    if _n.startswith('SerDes'):\n"
            "        _c = getattr(_m, _n)\n"
            "        _c.__module__ = __name__\n"
            "        globals()[_n] = _c\n"
            "del _n, _c, _m, sys\n"
        )
    rec = Recorder()
    t0 = time.time()
    rc = pytest.main(
        [shim, "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", "--rootdir", shim_dir, *extra],
        plugins=[rec],
    )
    wall = time.time() - t0
    counts = collections.Counter(t["outcome"] for t in rec.tests.values())
    result = {
        "mode": mode,
        "pytest_rc": int(rc),
        "wall_s": round(wall, 1),
        "counts": dict(sorted(counts.items())),
        "tests": dict(sorted(rec.tests.items())),
    }
    path = os.path.join(out_dir, f"{mode}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"[{mode}] {dict(counts)} in {wall:.0f}s -> {path}")
    return path


# --------------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------------

GOOD = {"passed", "xfailed", "skipped"}


def compare(torch_json: str, shim_json: str, report: str | None) -> dict:
    with open(torch_json) as fa, open(shim_json) as fb:
        a, b = json.load(fa), json.load(fb)
    ta, tb = a["tests"], b["tests"]
    only_shim = {}
    for tid, ra in ta.items():
        rb = tb.get(tid)
        if rb is None:
            continue
        if (ra["outcome"] == "passed" and rb["outcome"] != "passed") or (ra["outcome"] == "xfailed" and rb["outcome"] in ("failed", "error", "xpassed")):
            only_shim[tid] = rb
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for tid, r in only_shim.items():
        groups[re.sub(r"/tmp/peer_rt_\w+/", "<tmp>/", r["error"]) or r["outcome"]].append(tid)
    out = {
        "torch": {"counts": a["counts"], "wall_s": a["wall_s"]},
        "trtshim": {"counts": b["counts"], "wall_s": b["wall_s"]},
        "torch_passed": sum(r["outcome"] == "passed" for r in ta.values()),
        "trtshim_passed": sum(r["outcome"] == "passed" for r in tb.values()),
        "both_passed": sum(
            r["outcome"] == "passed" and tb.get(t, {}).get("outcome") == "passed" for t, r in ta.items()
        ),
        "trtshim_only_passed": sorted(
            t for t, r in tb.items() if r["outcome"] == "passed" and ta.get(t, {}).get("outcome") != "passed"
        ),
        "trtshim_only_failures": {t: r["error"] for t, r in sorted(only_shim.items())},
        "groups": {
            k: {"count": len(v), "example": sorted(v)[0], "tests": sorted(v)}
            for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))
        },
    }
    if report:
        with open(report, "w") as f:
            json.dump(out, f, indent=1)
    print(f"torch passed {out['torch_passed']}, trtshim passed {out['trtshim_passed']}, "
          f"both {out['both_passed']}, trtshim-only failures {len(only_shim)}")
    for k, g in out["groups"].items():
        print(f"  {g['count']:4d}  {k[:160]}\n        e.g. {g['example']}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=sorted(ROUNDTRIPS))
    p.add_argument("--out", default=os.path.join(".nox", "_results", "peer"))
    p.add_argument("--compare", nargs=2, metavar=("TORCH_JSON", "TRTSHIM_JSON"))
    p.add_argument("--report", default=None)
    args = p.parse_args(argv)
    if args.compare:
        compare(*args.compare, args.report)
        return 0
    if not args.mode:
        p.error("--mode or --compare is required")
    if not SRC_DIR or not os.path.exists(os.path.join(SRC_DIR, "test_export.py")):
        p.error("set TRTSHIM_PEER_TESTS to a PyTorch checkout's test/export folder")
    run_mode(args.mode, args.out, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
