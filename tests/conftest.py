from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

pytest_plugins = ("trtshim.testing.pytest_plugin",)

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402


class SmallCNN(nn.Module):
    """conv + batchnorm + a non-persistent buffer + a tensor constant: every lifted kind a CNN has."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.register_buffer("scale", torch.full((1,), 0.5), persistent=False)
        self.offset = torch.tensor([0.25])  # a plain tensor attribute: lifted as a constant
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x))) * self.scale + self.offset
        return self.head(y.mean(dim=(2, 3)))


@pytest.fixture
def small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture
def example() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 16, 16)


@pytest.fixture
def compile_quiet():
    """compat.compile with the auto-fallback warning silenced (tests of the warning live elsewhere)."""
    from trtshim import compat

    def run(*args, **kwargs):
        kwargs.setdefault("backend", "export")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return compat.compile(*args, **kwargs)

    return run


def run_python(
    code: str, *, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (same environment), returning the finished process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def pytest_terminal_summary(terminalreporter: object) -> None:
    """The verdict counts of the generated-program run (tests/test_generated_programs.py), when it ran."""
    generated = sys.modules.get("test_generated_programs")
    verdicts = getattr(generated, "VERDICTS", None)
    if verdicts:
        line = ", ".join(f"{k}: {v}" for k, v in sorted(verdicts.items()))
        terminalreporter.write_line(f"generated programs on torch {torch.__version__}: {line}")  # type: ignore[attr-defined]
    payloads = getattr(sys.modules.get("test_pickle_payloads"), "COUNTS", None)
    if payloads and payloads.get("cases"):
        line = ", ".join(f"{k}: {v}" for k, v in payloads.items())
        terminalreporter.write_line(f"pickle payloads on torch {torch.__version__}: {line}")  # type: ignore[attr-defined]
