"""Backported fixes for upstream torch / torch_tensorrt defects, selected per installed versions.

``REGISTRY`` lists every fix trtshim knows (one module per defect); ``select(env)`` says which this
environment needs and why, as a ``FixReport`` that compile / save / load hand down and whose hooks
their code calls at named points (``registry.POINTS``). Importing this package imports no torch.

Adding a fix: copy a module like ``se9_legacy_example_inputs.py`` (docstring: the defect, affected
versions, upstream links, ``fixed_in``, when to delete it; then its hook functions and ``FIX``), add it to
``REGISTRY`` below, and copy its test (``tests/test_fixes_serialization.py::test_se9...``): the defect
reproduced with ``report.without(ID)`` on an affected torch, gone with the fix, gated by
``@pytest.mark.requires(...)``. A new hook point goes into ``POINTS`` with the code that calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trtshim.fixes import (
    co2_retrace_engine,
    co4_plugin_scalars,
    co5_symint_engine_boundary,
    cp1_compile_mutates_program,
    lp1_engine_with_weights,
    lp2_program_not_callable,
    lp4_load_device,
    lp5_buffer_persistent_flag,
    lp6_integer_parameters,
    lp7_positional_wiring,
    lp8_lookup_by_signature,
    se3_range_constraints,
    se6_engine_abi,
    se7_unnamed_none_inputs,
    se9_legacy_example_inputs,
    se10_module_stack_commas,
    se11_loaded_derived_dims,
)
from trtshim.fixes.registry import FAMILIES, POINTS, STAGES, Decision, Fix, FixReport, select

if TYPE_CHECKING:
    from trtshim.compat.environment import Environment

REGISTRY: tuple[Fix, ...] = (
    lp1_engine_with_weights.FIX,
    lp2_program_not_callable.FIX,
    lp4_load_device.FIX,
    lp5_buffer_persistent_flag.FIX,
    lp6_integer_parameters.FIX,
    lp7_positional_wiring.FIX,
    lp8_lookup_by_signature.FIX,
    se3_range_constraints.FIX,
    se6_engine_abi.FIX,
    se7_unnamed_none_inputs.FIX,
    co2_retrace_engine.FIX,
    co4_plugin_scalars.FIX,
    co5_symint_engine_boundary.FIX,
    se9_legacy_example_inputs.FIX,
    se10_module_stack_commas.FIX,
    cp1_compile_mutates_program.FIX,
    se11_loaded_derived_dims.FIX,
)


def by_id(fix_id: str) -> Fix:
    for fix in REGISTRY:
        if fix.id == fix_id:
            return fix
    raise KeyError(fix_id)


def active(*stages: str, env: Environment | None = None) -> FixReport:
    """The fixes of ``stages`` (all when none) that ``env`` (default: the installed stack) needs."""
    from trtshim.compat.environment import detect

    return select(env if env is not None else detect(), REGISTRY, stages=stages or None)


__all__ = [
    "FAMILIES",
    "POINTS",
    "REGISTRY",
    "STAGES",
    "Decision",
    "Fix",
    "FixReport",
    "active",
    "by_id",
    "select",
]
