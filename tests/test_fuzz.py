"""A bounded fuzz run in every suite (``nox -s fuzz`` runs 2,000 cases a torch): every damaged or hostile
file ends in a typed refusal or in a program with the right outputs; none escapes, hangs, crashes,
runs code or loads with wrong outputs."""

from __future__ import annotations

import pytest

from trtshim.testing import fuzz


@pytest.mark.slow
def test_fuzzed_artifacts_are_refused_or_load_right() -> None:
    summary = fuzz.run(cases=150, seed=7, timeout=120)
    print(f"fuzz: {summary['verdicts']} by mutation {summary['mutations']}")
    assert summary["cases"] == 150
    assert {k: summary["verdicts"].get(k, 0) for k in fuzz.BAD} == dict.fromkeys(fuzz.BAD, 0), summary["bad"]
    assert summary["verdicts"].get("refused", 0) > 0 and summary["verdicts"].get("same", 0) > 0
