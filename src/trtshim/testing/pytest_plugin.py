"""pytest plugin: ``@pytest.mark.requires("torch>=2.6", ...)`` skips a test, with the reason, unless every
requirement holds in the installed stack (``trtshim.compat.gates.requires``, the gate trtshim's own
code and fixes use). Load it from a conftest: ``pytest_plugins = ("trtshim.testing.pytest_plugin",)``.
"""

from __future__ import annotations

import pytest

from trtshim.compat.gates import requires


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(*specs): skip unless the installed versions meet every spec, e.g. 'torch>=2.6'"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        gate = requires(*mark.args)
        if not gate:
            pytest.skip(f"requires {', '.join(mark.args)}: {gate.reason}")
