"""nox sessions for trtshim, generated from the version matrix (``src/trtshim/matrix/data.json``).

``nox -l`` lists them. Sessions install with uv. Local wheel folders named in this machine's pip
configuration (``find-links``, and ``files/`` beside a ``file://`` index) are passed to uv as
find-links only where they exist: uv does not read pip's configuration itself.

* ``tests``: the default suite on torch 2.13.0.
* ``matrix(torch=X.Y)``: the torch-level suite (seed scenario, every fix test) on each torch minor.
* ``trt(torch_tensorrt=X.Y.Z)``: torch-tensorrt-rtx on its CUDA torch; imports the real torch_tensorrt.
* ``gpu``: compile -> save -> load -> compare with real TensorRT engines, where TensorRT runs.
* ``ci``: what ``.ci/run`` runs after ``tests``. ``report``: runs a set of sessions and writes docs/compatibility.md.
* ``artifacts``: save under every torch minor, load under every minor: the cross-version table.
* ``fuzz(torch=X.Y)``: 2,000 damaged and hostile artifacts through ``compat.load`` (2.4 and 2.13).
* ``zoo(torch=X.Y)``: torchvision / timm / transformers models against torch's own round trip; ``zoo_report``.
* ``demo``, ``lint``, ``typecheck``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time

import nox

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))
from trtshim.matrix.model import Matrix

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.environ.get("TRTSHIM_RESULTS", os.path.join(HERE, ".nox", "_results"))
MATRIX = Matrix.load()
DEFAULT_TORCH = "2.13.0"
TORCH_LINES = MATRIX.torch_minors()
TORCH_VERSIONS = {line: MATRIX.torch_release(line).latest for line in TORCH_LINES}
RTX = [r.version for r in MATRIX.torch_tensorrt_releases("torch-tensorrt-rtx")]
RTX_LATEST_PER_LINE = sorted({".".join(v.split(".")[:2]): v for v in RTX}.values())
CI_DIAGONAL = ["2.2", "2.5", "2.8", "2.11", "2.15"]
CI_TRT = RTX_LATEST_PER_LINE[-1]
MIN_FREE_GB = 12  # a CUDA torch adds 3-7 GB to uv's cache


@functools.cache
def local_wheel_folders(*, cpu_torch: bool = True) -> list[str]:
    """Folders of local wheels from pip's configuration, read once per run; only existing ones."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    folders: list[str] = []
    for key, value in re.findall(r"^\S*?\.?(find-links|extra-index-url|index-url)='(.*)'$", out, re.M):
        for item in value.split():
            path = item[len("file://") :] if item.startswith("file://") else item
            if key != "find-links":
                if not item.startswith("file://"):
                    continue
                path = os.path.join(os.path.dirname(path.rstrip("/")), "files")
            if not os.path.isdir(path) or path in folders:
                continue
            if not cpu_torch and any(f.startswith("torch-") and "+cpu" in f for f in os.listdir(path)):
                continue  # a CPU torch cannot host torch_tensorrt
            folders.append(path)
    return folders


def uv_env(session: nox.Session, *, cpu_torch: bool = True) -> dict[str, str]:
    env = {
        "UV_PYTHON_DOWNLOADS": "never",
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(session.virtualenv.location, "inductor"),
    }
    folders = local_wheel_folders(cpu_torch=cpu_torch)
    if folders:
        env["UV_FIND_LINKS"] = ",".join(folders)
    return env


def companions(torch_version: str) -> list[str]:
    """Companion pins the matrix's rules give for this torch (e.g. numpy<2 for old torch)."""
    out = ["numpy"]
    for rule in MATRIX.rules_for("torch", torch_version):
        action = rule.action
        if action.get("kind") == "pin" and action.get("package"):
            out = [p for p in out if p != action["package"]] + [f"{action['package']}{action['specifier']}"]
    return out


def guard_disk(session: nox.Session) -> None:
    free = shutil.disk_usage(os.path.expanduser("~")).free / 2**30
    if free < MIN_FREE_GB:
        session.error(
            f"only {free:.1f} GiB free: a CUDA torch needs up to 7 GiB of uv cache. "
            "Free space first (`uv cache prune`, or `uv cache clean torch`)."
        )


def install_torch(session: nox.Session, torch: str, *, cpu_torch: bool = True) -> None:
    guard_disk(session)
    session.install(f"torch=={torch}", *companions(torch), env=uv_env(session, cpu_torch=cpu_torch))


def run_suite(session: nox.Session, name: str, *pytest_args: str, env: dict[str, str] | None = None) -> None:
    """pytest with a junit report and a JSON record (versions, fixes applied, duration) for ``report``."""
    os.makedirs(RESULTS, exist_ok=True)
    junit = os.path.join(RESULTS, f"{name}.xml")
    started = time.time()
    try:
        session.run(
            "python", "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}", *pytest_args, env=env
        )
    finally:
        fixes = session.run("python", "-m", "trtshim", "fixes", "--json", silent=True, env=env) or "{}"
        record = {
            "session": name,
            "duration_s": round(time.time() - started, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "fixes": json.loads(fixes),
        }
        with open(os.path.join(RESULTS, f"{name}.json"), "w") as fh:
            json.dump(record, fh, indent=1)


@nox.session
def tests(session: nox.Session) -> None:
    """The default suite on torch 2.13.0 (the local CPU wheel where this machine has one)."""
    install_torch(session, DEFAULT_TORCH)
    session.install("-e", ".[test]", env=uv_env(session))
    run_suite(session, "tests", *session.posargs, env=uv_env(session))


@nox.session(python="3.11")
@nox.parametrize("torch", TORCH_LINES, ids=TORCH_LINES)
def matrix(session: nox.Session, torch: str) -> None:
    """The torch-level suite on one torch minor (its newest patch on PyPI)."""
    install_torch(session, TORCH_VERSIONS[torch])
    session.install("-e", ".[test]", env=uv_env(session))
    run_suite(session, f"matrix-{torch}", "-m", "not network", *session.posargs, env=uv_env(session))


@nox.session(python="3.11")
@nox.parametrize("torch_tensorrt", RTX_LATEST_PER_LINE, ids=RTX_LATEST_PER_LINE)
def trt(session: nox.Session, torch_tensorrt: str) -> None:
    """torch-tensorrt-rtx on the CUDA torch it pairs with: the TRT-adapter tests against the real package."""
    from trtshim.matrix import pins as matrix_pins

    working_set = [
        str(p) for p in matrix_pins.pins(torch_tensorrt=torch_tensorrt, flavour="torch-tensorrt-rtx").pins
    ]
    torch_pin = next(p for p in working_set if p.startswith("torch=="))
    guard_disk(session)
    env = uv_env(session, cpu_torch=False)
    session.install(*working_set, *companions(torch_pin.split("==")[1]), env=env)
    session.install("-e", ".[test]", env=env)
    run_suite(session, f"trt-{torch_tensorrt}", "tests/trt", *session.posargs, env=env)


#: torch minors of the model zoo (one <= 2.4, one 2.6-2.9, the newest) and the model libraries each pairs with
ZOO_PACKAGES = {
    "2.4": ["torchvision==0.19.1", "timm", "transformers<4.50"],
    "2.8": ["torchvision==0.23.0", "timm", "transformers"],
    "2.15": ["torchvision==0.29.2", "timm", "transformers"],
}


FUZZ_LINES = ["2.4", "2.13"]  # the legacy zip archive and the PT2 archive


@nox.session(python="3.11")
@nox.parametrize("torch", FUZZ_LINES, ids=FUZZ_LINES)
def fuzz(session: nox.Session, torch: str) -> None:
    """2,000 damaged and hostile artifacts (trtshim.testing.fuzz) on one torch minor; JSON in _results/fuzz/."""
    install_torch(session, TORCH_VERSIONS[torch])
    session.install("-e", ".[test]", env=uv_env(session))
    folder = os.path.join(RESULTS, "fuzz")  # beside the session records `report` reads, not among them
    os.makedirs(folder, exist_ok=True)
    cases = os.environ.get("TRTSHIM_FUZZ_CASES", "2000")
    out = os.path.join(folder, f"{torch}.json")
    session.run("python", "-m", "trtshim.testing.fuzz", "--cases", cases, "--json", out, env=uv_env(session))


@nox.session(python="3.11")
@nox.parametrize("torch", list(ZOO_PACKAGES), ids=list(ZOO_PACKAGES))
def zoo(session: nox.Session, torch: str) -> None:
    """The model zoo: torchvision, timm and transformers models from configs (random weights, no downloads)
    against torch's own export round trip, each loaded in a fresh process; rows for tools/zoo_report.py."""
    guard_disk(session)
    version = TORCH_VERSIONS[torch]
    env = uv_env(session)
    session.install(f"torch=={version}", *ZOO_PACKAGES[torch], *companions(version), env=env)
    session.install("-e", ".[test]", env=env)
    rows = os.path.join(RESULTS, "zoo", f"{torch}.json")
    if os.path.exists(rows):
        os.remove(rows)
    env = {**env, "TRTSHIM_ZOO": "1", "TRTSHIM_RESULTS": RESULTS, "HF_HUB_OFFLINE": "1"}
    run_suite(session, f"zoo-{torch}", "tests/zoo", "-rf", *session.posargs, env=env)


@nox.session(venv_backend="none")
def zoo_report(session: nox.Session) -> None:
    """docs/zoo.md from the rows the zoo sessions recorded."""
    session.run(sys.executable, os.path.join(HERE, "tools", "zoo_report.py"), os.path.join(RESULTS, "zoo"), external=True)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """Real engines: compile -> save -> load (fresh process) -> compare, in the current environment (where
    torch_tensorrt and TensorRT are installed). Skips, with the reason, where no TensorRT engine can run."""
    probe = (
        "from trtshim.compat.backends import tensorrt_usable as u; ok, why = u(); print('ok' if ok else why)"
    )
    verdict = (session.run("python", "-c", probe, silent=True, external=True) or "").strip().splitlines()[-1:]
    if verdict != ["ok"]:
        session.skip(f"no TensorRT engine can run here: {verdict[0] if verdict else 'unknown'}")
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/gpu",
        "-rs",
        *session.posargs,
        external=True,
    )


@nox.session
def ci(session: nox.Session) -> None:
    """What .ci/run runs after ``tests``: a diagonal of torch minors, the newest trt session, the report."""
    for target in [*(f"matrix({t})" for t in CI_DIAGONAL), f"trt({CI_TRT})"]:
        session.notify(target)
    session.notify("report", posargs=["--no-run"])


ARTIFACTS = os.environ.get("TRTSHIM_ARTIFACTS", os.path.join(HERE, ".nox", "_artifacts"))


def _artifacts(session: nox.Session, torch: str, verb: str) -> None:
    install_torch(session, TORCH_VERSIONS[torch])
    session.install("-e", ".", env=uv_env(session))
    session.run("python", "tools/artifacts.py", verb, ARTIFACTS, env=uv_env(session))


@nox.session(python="3.11")
@nox.parametrize("torch", TORCH_LINES, ids=TORCH_LINES)
def artifacts_save(session: nox.Session, torch: str) -> None:
    """Save the fixed artifact set (plain CNN, dynamic batch, custom op, None input, seed hybrid) under one torch minor."""
    _artifacts(session, torch, "save")


@nox.session(python="3.11")
@nox.parametrize("torch", TORCH_LINES, ids=TORCH_LINES)
def artifacts_load(session: nox.Session, torch: str) -> None:
    """Load every saved artifact set under one torch minor: ok / refused with our error / crashed."""
    _artifacts(session, torch, "load")


@nox.session(venv_backend="none")
def artifacts(session: nox.Session) -> None:
    """The cross-version table: every minor saves, every minor loads, then the report renders 14x14."""
    for line in TORCH_LINES:
        session.notify(f"artifacts_save({line})")
    for line in TORCH_LINES:
        session.notify(f"artifacts_load({line})")
    session.notify("report", posargs=["--no-run"])


@nox.session(venv_backend="none")
def report(session: nox.Session) -> None:
    """Run sessions (posargs: torch lines, default all) and write docs/compatibility.md from their records.

    ``nox -s report -- --no-run`` only renders what earlier sessions recorded.
    """
    args = list(session.posargs)
    if "--no-run" not in args:
        lines = [a for a in args if a in TORCH_LINES] or TORCH_LINES
        targets = [f"matrix({line})" for line in lines]
        session.run(sys.executable, "-m", "nox", "-s", *targets, success_codes=[0, 1], external=True)
    session.run(
        sys.executable, os.path.join(HERE, "tools", "compat_report.py"), RESULTS, ARTIFACTS, external=True
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: ``trtshim demo`` on the torch-only default backend."""
    install_torch(session, DEFAULT_TORCH)
    session.install(".", env=uv_env(session))
    session.run("trtshim", "demo", *session.posargs, env=uv_env(session))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the project."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "tools", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over src/trtshim (with torch installed, so its types are real)."""
    install_torch(session, DEFAULT_TORCH)
    session.install("mypy", "-e", ".", env=uv_env(session))
    session.run("mypy", env=uv_env(session))
