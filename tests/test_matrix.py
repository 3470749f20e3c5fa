"""The version matrix: shipped data, pins, conflict checks, README table. Offline and fast."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trtshim.errors import TrtShimError
from trtshim.matrix import SUPPORTED_FLOOR
from trtshim.matrix import check as C
from trtshim.matrix import formats as F
from trtshim.matrix import pins as P
from trtshim.matrix.cli import add_pins_arguments, run_pins
from trtshim.matrix.model import Matrix, _read_json
from trtshim.matrix.readme import extract_block, render_table

README = Path(__file__).resolve().parents[1] / "README.md"
EXPECTED_RELEASES = [
    "2.2.0", "2.3.0", "2.4.0", "2.5.0", "2.6.0", "2.6.1", "2.7.0", "2.8.0", "2.9.0",
    "2.10.0", "2.11.0", "2.12.0", "2.12.1", "2.13.0", "2.14.0",
]  # fmt: skip


@pytest.fixture(scope="module")
def m() -> Matrix:
    return Matrix.load()


# --- data ---------------------------------------------------------------------------------------


def test_data_loads_and_is_cached(m: Matrix) -> None:
    assert Matrix.load() is m
    assert m.generated and m.sources
    assert m.torch_minors() == [f"2.{i}" for i in range(2, 16)]


def test_every_release_present(m: Matrix) -> None:
    assert [r.version for r in m.torch_tensorrt_releases("torch-tensorrt")] == EXPECTED_RELEASES
    rtx = [r.version for r in m.torch_tensorrt_releases("torch-tensorrt-rtx")]
    assert rtx == ["2.11.0", "2.12.0", "2.12.1", "2.13.0", "2.14.0"]


def test_supported_floor_matches_data(m: Matrix) -> None:
    oldest = {
        "torch": m.torch_release(m.torch_minors()[0]).releases[0],
        "torch_tensorrt": m.torch_tensorrt_releases("torch-tensorrt")[0].version,
    }
    assert oldest == SUPPORTED_FLOOR


def test_spot_facts(m: Matrix) -> None:
    r = m.torch_tensorrt("2.5.0")
    assert r.torch == ">=2.5.0,<2.6.0"
    assert r.tensorrt == {
        n: "==10.3.0" for n in ("tensorrt-cu12", "tensorrt-cu12-libs", "tensorrt-cu12-bindings")
    }
    assert r.cuda == "12.4"
    assert m.torch_tensorrt("2.13.0").tensorrt_line == "11.0"
    assert m.torch_tensorrt("2.9.0").cuda == "13.0" and m.torch_release("2.9").cuda == "12.8"
    assert m.torch_tensorrt("2.4.0+cu121").version == "2.4.0"
    assert m.torch_release("2.5.1+cu124").latest == "2.5.1"
    assert [r.version for r in m.for_torch("2.6")] == ["2.6.0", "2.6.1"]
    assert m.for_torch("2.15") == []


def test_abi_groups(m: Matrix) -> None:
    assert m.abi_group("2.3.0").releases == ("2.3.0", "2.4.0")
    assert m.abi_group("2.4.0") == m.abi_group("2.3.0")
    assert m.abi_group("2.5.0") != m.abi_group("2.4.0")
    assert "2.13.0" in m.abi_group("2.12.1").releases
    assert m.abi_group("2.11.0", "torch-tensorrt-rtx").releases == ("2.11.0",)


def test_rtx_only_from_2_11(m: Matrix) -> None:
    assert m.for_torch("2.10", "torch-tensorrt-rtx") == []
    assert [r.version for r in m.for_torch("2.11", "torch-tensorrt-rtx")] == ["2.11.0"]
    with pytest.raises(TrtShimError) as e:
        m.torch_tensorrt("2.10.0", "torch-tensorrt-rtx")
    assert "2.11.0" in e.value.hint


def test_rules_have_evidence() -> None:
    for rule in _read_json("rules.json")["rules"]:
        assert {"id", "condition", "action", "reason", "evidence"} <= set(rule)
        assert rule["action"]["kind"] in ("pin", "avoid", "require")


# --- unknown input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.torch_release("2.1"),
        lambda m: m.torch_release("3.0"),
        lambda m: m.torch_tensorrt("2.1.0"),
        lambda m: m.torch_tensorrt("2.5.0", "torch-tensorrt-foo"),
        lambda m: P.pins(torch="2.1", matrix=m),
        lambda m: P.pins(torch="2.15", matrix=m),
        lambda m: P.pins(torch="2.3.2", matrix=m),
        lambda m: P.pins(torch="2.5", torch_tensorrt="2.6.1", matrix=m),
        lambda m: P.pins(torch_tensorrt="9.9.9", matrix=m),
        lambda m: P.pins(torch="2.5", env={"python": "3.13"}, matrix=m),
        lambda m: P.pins(torch="2.2", env={"glibc": "2.31"}, matrix=m),
        lambda m: F.format(P.pins(torch="2.5", matrix=m), "toml"),
    ],
)
def test_unknown_input_raises_with_hint(m: Matrix, call) -> None:
    with pytest.raises(TrtShimError) as e:
        call(m)
    assert e.value.hint and e.value.hint != TrtShimError.default_hint


def test_torch_2_1_explains(m: Matrix) -> None:
    with pytest.raises(TrtShimError) as e:
        P.pins(torch="2.1.1", matrix=m)
    assert "no torch-tensorrt release" in e.value.reason and "2.2" in e.value.hint


# --- pins ---------------------------------------------------------------------------------------


def _requirement_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_pins_torch_2_5_constraints(m: Matrix) -> None:
    text = F.format(P.pins(torch="2.5", matrix=m), "constraints")
    assert _requirement_lines(text) == [
        "torch==2.5.1",
        "torch-tensorrt==2.5.0",
        "tensorrt-cu12==10.3.0",
        "tensorrt-cu12-bindings==10.3.0",
        "tensorrt-cu12-libs==10.3.0",
    ]


def test_pins_old_torch_numpy_and_tensorrt_companions(m: Matrix) -> None:
    ps = P.pins(torch="2.3", matrix=m)
    assert str(ps.get("numpy")) == "numpy<2"
    assert str(ps.get("torch")) == "torch==2.3.1"
    for name in ("tensorrt", "tensorrt-cu12", "tensorrt-cu12-libs", "tensorrt-cu12-bindings"):
        assert str(ps.get(name)) == f"{name}==10.0.1"
    assert str(P.pins(torch_tensorrt="2.4.0", matrix=m).get("tensorrt-cu12")) == "tensorrt-cu12==10.1.0"
    assert any("glibc >= 2.34" in n for n in P.pins(torch="2.2", matrix=m).notes)


def test_pins_prefers_2_6_1(m: Matrix) -> None:
    assert P.pins(torch="2.6", matrix=m).torch_tensorrt == "2.6.1"
    assert any("breakpoint" in n for n in P.pins(torch_tensorrt="2.6.0", matrix=m).notes)


def test_pins_torch_2_9_needs_cuda_13(m: Matrix) -> None:
    ps = P.pins(torch="2.9", matrix=m)
    assert ps.torch_index_url == "https://download.pytorch.org/whl/cu130"
    text = F.format(ps, "constraints")
    assert "CUDA 13" in text and "cu130" in text
    assert "--extra-index-url https://download.pytorch.org/whl/cu130" in F.format(ps, "requirements")
    assert P.pins(torch="2.8", matrix=m).torch_index_url is None


def test_pins_rtx(m: Matrix) -> None:
    ps = P.pins(torch="2.12", flavour="torch-tensorrt-rtx", matrix=m)
    assert [str(p) for p in ps.pins] == [
        "torch==2.12.1",
        "torch-tensorrt-rtx==2.12.1",
        "tensorrt-rtx==1.4.0.76",
    ]


@pytest.mark.parametrize("line", [f"2.{i}" for i in range(2, 15)])
def test_every_line_pins_one_tensorrt_version(m: Matrix, line: str) -> None:
    ps = P.pins(torch=line, matrix=m)
    trt = {p.specifier.lstrip("=").split(".post")[0] for p in ps.pins if p.name.startswith("tensorrt")}
    assert len(trt) == 1, ps.pins
    installed = {p.name: p.specifier.lstrip("=") for p in ps.pins if p.specifier.startswith("==")}
    if ps.torch_index_url:  # the CUDA build from download.pytorch.org carries a local tag
        installed["torch"] += "+" + ps.torch_index_url.rsplit("/", 1)[-1]
    assert not C.check(installed, matrix=m)


def test_formats_parse(m: Matrix) -> None:
    tomllib = pytest.importorskip("tomllib")
    ps = P.pins(torch="2.10", matrix=m)
    toml = tomllib.loads(F.format(ps, "uv"))
    assert "torch==2.10.0" in toml["tool"]["uv"]["constraint-dependencies"]
    assert toml["tool"]["uv"]["sources"]["torch"][0]["index"] == toml["tool"]["uv"]["index"][0]["name"]
    data = json.loads(F.format(ps, "json"))
    assert data["torch"] == "2.10.0" and data["pins"][0]["reason"]


def test_pyproject_formats_round_trip_through_check(m: Matrix, tmp_path: Path) -> None:
    """Each pyproject rendering, pasted into a project's pyproject.toml, parses and checks clean; an
    edited torch pin is then found by `pins --check pyproject.toml`."""
    tomllib = pytest.importorskip("tomllib")
    ps = P.pins(torch_tensorrt="2.9.0", matrix=m)
    group = F.group_name(ps)
    header = '[project]\nname = "downstream"\nversion = "1"\ndependencies = ["trtshim"]\n\n'
    for fmt, key in (("pyproject", None), ("uv", "constraint-dependencies"), ("uv-override", "override-dependencies")):
        text = header + F.format(ps, fmt)
        data = tomllib.loads(text)
        listed = data["project"]["optional-dependencies"][group] if key is None else data["tool"]["uv"][key]
        assert listed == [str(p) for p in ps.pins]
        assert data["tool"]["uv"]["sources"]["torch"][0]["index"] == "pytorch-cu130"  # 2.9.0 is CUDA 13
        path = tmp_path / fmt / "pyproject.toml"
        path.parent.mkdir()
        path.write_text(text)
        assert C.check(path, matrix=m) == [], fmt
        path.write_text(text.replace('"torch==2.9.1"', '"torch==2.8.0"'))
        assert [c.code for c in C.check(path, matrix=m)] == ["torch-version"], fmt
    overridden = tmp_path / "pyproject.toml"
    overridden.write_text(header.replace('["trtshim"]', '["torch==2.8.0"]') + F.format(ps, "uv-override"))
    assert C.check(overridden, matrix=m) == []  # an override replaces the project's own torch pin


def test_check_reads_a_uv_lock(m: Matrix, tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    packages = {"torch": "2.4.1", "torch-tensorrt": "2.4.0", "tensorrt-cu12": "10.7.0", "numpy": "1.26.4"}
    lock.write_text(
        "version = 1\n"
        + "".join(f'\n[[package]]\nname = "{n}"\nversion = "{v}"\nsource = {{ registry = "https://pypi.org/simple" }}\n' for n, v in packages.items())
    )
    req = C.read_requirements(lock)
    assert req.specs["torch"] == "==2.4.1" and req.notes == ("read 4 locked packages",)
    assert "tensorrt-version" in {c.code for c in C.check(lock, matrix=m)}


# --- check --------------------------------------------------------------------------------------


def test_check_issue_3351_mixed_tensorrt(m: Matrix) -> None:
    installed = {
        "torch": "2.4.1",
        "torch-tensorrt": "2.4.0+cu121",
        "tensorrt": "10.1.0",
        "tensorrt-cu12": "10.7.0",
        "tensorrt-cu12-bindings": "10.1.0",
        "tensorrt-cu12-libs": "10.1.0",
    }
    conflicts = C.check(installed, matrix=m)
    codes = {c.code for c in conflicts}
    assert {"mixed-tensorrt", "tensorrt-version"} <= codes
    wrong = next(c for c in conflicts if c.code == "tensorrt-version")
    assert "tensorrt-cu12" in wrong.problem and "tensorrt-cu12==10.1.0" in wrong.fix


def test_check_issue_2468_torch_2_1(m: Matrix, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# pinned by hand\ntorch==2.1.1\ntorch-tensorrt==2.2.0  # the next one\n-r other.txt\nnumpy\n"
    )
    conflicts = C.check(req, matrix=m)
    assert [c.code for c in conflicts] == ["torch-version"]
    c = conflicts[0]
    assert "requires torch>=2.2.0,<2.3.0" in c.problem and "2.1.1" in c.problem
    assert "torch==2.2.2" in c.fix and "no torch-tensorrt release" in c.fix
    assert any("other.txt" in n for n in C.read_requirements(req).notes)


def test_check_mixed_cuda_and_versions(m: Matrix) -> None:
    mixed = {"tensorrt-cu12": "10.9.0.34", "tensorrt-cu13": "10.13.3.9", "tensorrt-cu13-libs": "10.13.3.9"}
    assert "mixed-cuda" in {c.code for c in C.check(mixed, matrix=m)}
    libs = {
        "tensorrt-cu13": "11.0.0.114",
        "tensorrt-cu13-libs": "11.0.0.114",
        "tensorrt-cu13-bindings": "11.1.0.106",
    }
    assert "mixed-tensorrt" in {c.code for c in C.check(libs, matrix=m)}


def test_check_other_conflicts(m: Matrix) -> None:
    both = C.check({"torch": "2.12.1", "torch-tensorrt": "2.12.1", "torch-tensorrt-rtx": "2.12.1"}, matrix=m)
    assert "two-flavours" in {c.code for c in both}
    cuda = C.check({"torch": "2.9.1", "torch-tensorrt": "2.9.0"}, matrix=m)
    assert "cuda-mismatch" in {c.code for c in cuda}
    assert "cuda-mismatch" not in {
        c.code for c in C.check({"torch": "2.9.1+cu130", "torch-tensorrt": "2.9.0"}, matrix=m)
    }
    assert "numpy" in {c.code for c in C.check({"torch": "2.2.2", "numpy": "2.1.0"}, matrix=m)}
    assert "avoid" in {c.code for c in C.check({"torch": "2.6.0", "torch-tensorrt": "2.6.0"}, matrix=m)}
    # a release to be replaced gets that advice alone, not how to complete it (the H200 doctor run
    # showed "pin torch-tensorrt-rtx==2.12.1" next to "install tensorrt-rtx==1.4.0.76" for 2.11.0)
    rtx = C.check({"torch": "2.11.0", "torch-tensorrt-rtx": "2.11.0"}, matrix=m)
    assert [c.code for c in rtx] == ["avoid"] and "2.12.1" in rtx[0].fix
    assert C.check({"torch": "2.13.0+cpu"}, matrix=m) == []


# --- CLI ----------------------------------------------------------------------------------------


def _cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_pins_arguments(parser)
    return parser.parse_args(argv)


def test_cli_pins_and_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run_pins(_cli("--torch", "2.5")) == 0
    assert "torch-tensorrt==2.5.0" in capsys.readouterr().out
    req = tmp_path / "r.txt"
    req.write_text("torch==2.1.1\ntorch-tensorrt==2.2.0\n")
    assert run_pins(_cli("--check", str(req))) == 1
    out = capsys.readouterr().out
    assert "1 conflict:" in out and "fix:" in out
    assert run_pins(_cli("--check")) in (0, 1)


# --- README -------------------------------------------------------------------------------------


def test_readme_table_is_current(m: Matrix) -> None:
    block = extract_block(README.read_text(encoding="utf-8"))
    assert block is not None, "README.md lacks the matrix block"
    assert render_table(m) == block, "run: python -m trtshim.matrix readme"


def test_readme_drift_is_detected() -> None:
    data = copy.deepcopy(_read_json("data.json"))
    row = next(r for r in data["torch_tensorrt"] if r["version"] == "2.5.0")
    row["torch"] = ">=2.5.0,<2.7.0"
    changed = Matrix.from_dict(data, _read_json("rules.json"))
    block = extract_block(README.read_text(encoding="utf-8"))
    assert render_table(changed) != block


def test_import_is_lazy() -> None:
    code = (
        "import sys, trtshim.matrix as tm\n"
        "assert tm.SUPPORTED_FLOOR['torch'] == '2.2.0'\n"
        "assert 'torch' not in sys.modules and 'trtshim.matrix.model' not in sys.modules\n"
        "import trtshim.matrix.pins, trtshim.matrix.readme\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
