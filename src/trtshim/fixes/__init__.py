"""Backported fixes for upstream torch / torch_tensorrt defects, selected per installed versions.

``REGISTRY`` lists every fix trtshim knows (one module per defect); ``select(env)`` says which this
environment needs and why. Importing this package imports no torch.
"""

from __future__ import annotations

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
)
from trtshim.fixes.registry import FAMILIES, STAGES, Decision, Fix, FixReport, select

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
)


def by_id(fix_id: str) -> Fix:
    for fix in REGISTRY:
        if fix.id == fix_id:
            return fix
    raise KeyError(fix_id)


__all__ = ["FAMILIES", "REGISTRY", "STAGES", "Decision", "Fix", "FixReport", "by_id", "select"]
