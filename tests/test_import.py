"""`import trtshim` and `detect()` must stay cheap and free of torch / torch_tensorrt / tensorrt."""

from __future__ import annotations

import json

from conftest import run_python

HEAVY = ("torch", "torch_tensorrt", "tensorrt", "tensorrt_rtx", "numpy")


def test_import_trtshim_imports_no_heavy_package() -> None:
    code = (
        "import sys, json, trtshim, trtshim.errors, trtshim.fixes, trtshim.matrix\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_detect_imports_no_heavy_package() -> None:
    code = (
        "import sys, json\nfrom trtshim import compat\nenv = compat.detect()\nstr(env); env.to_dict()\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_public_names_resolve_lazily() -> None:
    code = (
        "import sys\nfrom trtshim import compat\nassert 'torch' not in sys.modules\n"
        "compat.compile, compat.save, compat.load, compat.CompiledModule\nassert 'torch' in sys.modules\n"
        "print('ok')"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
