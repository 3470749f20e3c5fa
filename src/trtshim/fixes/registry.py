"""The fix registry: each upstream defect declared as data, with the hooks that route around it.

A fix is selected for an environment when every package range it names holds (``compat.gates.requires``:
the *release* of each installed version, so NGC and nightly builds count as the release line they
belong to) and its optional feature probe confirms the mechanism is really there. ``select`` decides;
nothing is applied at import time. Its ``FixReport`` is the immutable set of fixes one compile / save /
load runs with: code calls ``report.hook(point, default)`` at a named point (``POINTS``) and never
tests a fix id. A test switches a fix off by leaving it out: ``report.without("LP-5")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trtshim.compat.environment import Environment

FAMILIES = ("lifted-params", "custom-ops", "serialization", "compile")
STAGES = ("export", "compile", "hybrid", "save", "load", "call")
#: when each stage runs: a fix acts only there
STAGE_RUNS = {
    "export": "every compile (torch.export)",
    "compile": "compile(backend='tensorrt'): torch_tensorrt.dynamo.compile",
    "hybrid": "a TensorRT graph becomes a program: compile(backend='tensorrt'), save(gm)",
    "save": "save",
    "load": "load",
    "call": "every call of a compiled or loaded module",
}

#: every hook point: where it is called and what the hook gets and returns. A point without an
#: applied hook runs the caller's default, which is what upstream does (the defect).
POINTS: dict[str, str] = {
    "compile.program": "backends.tensorrt, before dynamo.compile: (job: CompileJob) -> None; edits job.program",
    "hybrid.lifted_kind": "hybrid: (kind) -> the kind a lifted value is declared as (default: a user input)",
    "hybrid.opaque": "hybrid: (lift, fqn, obj) -> what an opaque object in the graph becomes (default: inline)",
    "hybrid.build_scope": "hybrid: () -> context manager around ExportedProgram(...) (default: none)",
    "hybrid.parameter": "hybrid: (tensor) -> nn.Parameter (default: requires_grad=True, as upstream)",
    "hybrid.spec_fields": "hybrid: (kind) -> extra InputSpec fields (default: none)",
    "hybrid.engine_input": "hybrid: (builder, node) -> what an engine call gets (default: the node)",
    "hybrid.engine_output": "hybrid: (builder, item, value) -> what the graph gets back (default: item)",
    "save.repair": "save of a caller's ExportedProgram: (program) -> program, repaired in place",
    "save.program": "save: (program) -> the program handed to torch.export.save",
    "save.manifest": "save: (manifest, module) -> None; adds fields",
    "load.check": "load, before deserializing: (manifest, env) -> None; raises to refuse",
    "load.program_json": "load: (program dict) -> None; edits a legacy archive's program in memory",
    "load.members": "load: (member names) -> {name: bytes} to add to a legacy archive in memory",
}


@dataclass(frozen=True)
class Fix:
    """One upstream defect and how trtshim routes around it.

    ``hooks`` maps points of ``POINTS`` to this fix's code (in its own module). A fix without hooks is
    a design rule of trtshim's own code (``lives_in`` says where); it cannot be switched off.
    """

    id: str  # e.g. "LP-1"
    family: str
    title: str
    affected: dict[str, str]  # distribution -> specifier, e.g. {"torch": ">=2.2,<2.4"}; all must hold
    fixed_in: dict[str, str]  # distribution -> first release without the defect ("" = not fixed upstream)
    links: tuple[str, ...]
    stage: str  # where the defect bites: one of STAGES
    how: str  # "transform" (pure graph/program transform), "patch" (scoped, restored on exit), "design"
    probe: Callable[[], tuple[bool, str]] | None = field(default=None, compare=False)
    hooks: Mapping[str, Callable[..., Any]] = field(default_factory=dict, compare=False)
    lives_in: str = ""  # design fixes: the code that is written this way

    def __post_init__(self) -> None:
        unknown = set(self.hooks) - set(POINTS)
        if unknown:
            raise ValueError(f"{self.id}: unknown hook point(s) {sorted(unknown)}")
        if not self.hooks and not self.lives_in:
            raise ValueError(f"{self.id}: a fix needs hooks or a lives_in")

    @property
    def stages(self) -> tuple[str, ...]:
        """Every stage this fix acts at: its own and its hooks'."""
        used = {self.stage} | {point.split(".")[0] for point in self.hooks}
        return tuple(s for s in STAGES if s in used)

    @property
    def requirements(self) -> tuple[str, ...]:
        """``affected`` as requirement strings (``"torch>=2.4,<2.5"``), for ``requires`` and test markers."""
        return tuple(f"{package}{spec}" for package, spec in self.affected.items())

    def matches(self, env: Environment) -> tuple[bool, str]:
        """Whether ``env`` is in the affected range, with the reason in words."""
        from trtshim.compat.gates import requires

        gate = requires(*self.requirements, env=env)
        return gate.ok, gate.reason


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
            "stages": list(self.fix.stages),
            "applied": self.applied,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FixReport:
    """The fixes one compile / save / load runs with: every fix considered, applied or not, and why.

    Immutable; handed down to the code that calls the hooks. ``left_out`` names fixes (or single hook
    points) a test took away with ``without``.
    """

    decisions: tuple[Decision, ...]
    left_out: frozenset[str] = frozenset()

    @property
    def applied_ids(self) -> tuple[str, ...]:
        return tuple(d.fix.id for d in self.decisions if d.applied)

    @property
    def skipped_ids(self) -> tuple[str, ...]:
        return tuple(d.fix.id for d in self.decisions if not d.applied)

    def hooks(self, point: str) -> list[Callable[..., Any]]:
        """The hooks of the applied fixes at ``point``, in registry order."""
        if point not in POINTS:
            raise KeyError(f"unknown hook point {point!r}")
        if point in self.left_out:
            return []
        return [d.fix.hooks[point] for d in self.decisions if d.applied and point in d.fix.hooks]

    def hook(self, point: str, default: Callable[..., Any]) -> Callable[..., Any]:
        """The one hook at ``point``, or ``default`` (the upstream behaviour) when no applied fix has it."""
        found = self.hooks(point)
        if len(found) > 1:
            raise RuntimeError(f"{len(found)} fixes hook {point!r}; use hooks() to chain them")
        return found[0] if found else default

    def without(self, *names: str) -> FixReport:
        """This set with fixes (ids) or single hook points (``"hybrid.opaque"``) left out: for tests."""
        ids = {n for n in names if n not in POINTS}
        unknown = ids - {d.fix.id for d in self.decisions}
        if unknown:
            raise KeyError(f"not in this set: {sorted(unknown)}")
        decisions = tuple(
            replace(d, applied=False, reason="left out") if d.fix.id in ids else d for d in self.decisions
        )
        return FixReport(decisions, self.left_out | frozenset(names))

    def __add__(self, other: FixReport) -> FixReport:
        return FixReport(self.decisions + other.decisions, self.left_out | other.left_out)

    def to_list(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.decisions]


def select(env: Environment, fixes: tuple[Fix, ...], *, stages: tuple[str, ...] | None = None) -> FixReport:
    """Decide, for each fix (of ``stages`` if given), whether ``env`` needs it and why."""
    decisions = []
    for fix in fixes:
        if stages is not None and not set(fix.stages) & set(stages):
            continue
        applies, reason = fix.matches(env)
        if applies and fix.probe is not None:
            applies, seen = fix.probe()
            reason = f"{reason}; probe: {seen}"
        decisions.append(Decision(fix, applies, reason))
    return FixReport(tuple(decisions))
