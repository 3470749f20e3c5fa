"""The fix registry: each upstream defect declared as data plus the smallest code that routes around it.

A fix is selected for an environment when every package range it names matches the installed
release (``packaging`` specifiers against the *release* of each version, so NGC and nightly builds
count as the release line they belong to) and its optional feature probe confirms the mechanism is
really there. Nothing is applied at import time; ``select`` only decides, callers apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from trtshim.compat.environment import Environment

FAMILIES = ("lifted-params", "custom-ops", "serialization", "compile")
STAGES = ("export", "compile", "save", "load", "call")


@dataclass(frozen=True)
class Fix:
    """One upstream defect and how trtshim routes around it."""

    id: str  # e.g. "LP-1"
    family: str
    title: str
    affected: dict[str, str]  # package -> specifier, e.g. {"torch": ">=2.2,<2.4"}; all must match
    fixed_in: dict[str, str]  # package -> first release without the defect ("" = not fixed upstream)
    links: tuple[str, ...]
    stage: str  # where it applies: one of STAGES
    how: str  # "transform" (pure graph/program transform) or "patch" (scoped, restored on exit)
    probe: Callable[[], tuple[bool, str]] | None = field(default=None, compare=False)

    def matches(self, env: Environment) -> tuple[bool, str]:
        """Whether ``env`` is in the affected range, with the reason in words."""
        from packaging.specifiers import SpecifierSet

        reasons = []
        for package, spec in self.affected.items():
            installed = (
                env.torch
                if package == "torch"
                else env.torch_tensorrt
                if package == "torch_tensorrt"
                else None
            )
            if installed is None or installed.release is None:
                return False, f"{package} is not installed"
            if installed.release not in SpecifierSet(spec):
                return False, f"{package} {installed.raw} is outside {spec}"
            reasons.append(f"{package} {installed.raw} in {spec}")
        return True, "; ".join(reasons) or "applies everywhere"


@dataclass(frozen=True)
class Decision:
    fix: Fix
    applied: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.fix.id,
            "family": self.fix.family,
            "title": self.fix.title,
            "applied": self.applied,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FixReport:
    """What ``select`` decided for one compile / save / load: every fix considered, applied or not."""

    decisions: tuple[Decision, ...]

    @property
    def applied_ids(self) -> tuple[str, ...]:
        return tuple(d.fix.id for d in self.decisions if d.applied)

    @property
    def skipped_ids(self) -> tuple[str, ...]:
        return tuple(d.fix.id for d in self.decisions if not d.applied)

    def __add__(self, other: FixReport) -> FixReport:
        return FixReport(self.decisions + other.decisions)

    def to_list(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.decisions]


def select(env: Environment, fixes: tuple[Fix, ...], *, stages: tuple[str, ...] | None = None) -> FixReport:
    """Decide, for each fix (of ``stages`` if given), whether ``env`` needs it and why."""
    decisions = []
    for fix in fixes:
        if stages is not None and fix.stage not in stages:
            continue
        applies, reason = fix.matches(env)
        if applies and fix.probe is not None:
            applies, seen = fix.probe()
            reason = f"{reason}; probe: {seen}"
        decisions.append(Decision(fix, applies, reason))
    return FixReport(tuple(decisions))
