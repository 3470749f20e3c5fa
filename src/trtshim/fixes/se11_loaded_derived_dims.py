"""SE-11: a loaded program with a derived dim (``2 * b``) cannot be decomposed: ``AssertionError:
expected sympy.Symbol``.

Upstream: torch's deserializer puts every entry of ``range_constraints`` into the program's ShapeEnv
``var_to_range``, derived expressions included; ``run_decompositions`` (which
``torch_tensorrt.dynamo.compile`` runs first) then asks each key whether it is an unbacked symbol
(``torch.export._trace._replace_unbacked_bindings``) and the expression fails that check. Measured:
torch 2.4-2.6 decompose the loaded program, 2.7, 2.8, 2.13, 2.14 and 2.15 fail; a fresh (not loaded)
program decomposes everywhere. It bites every TensorRT rebuild of a stored source
(``load(..., on_mismatch="recompile")``) and every TensorRT compile of a loaded program with a derived
dim. (The export backend needs no fix: where torch cannot decompose a program it keeps it undecomposed,
announced with ``DecompositionFallbackWarning``.)
Fix: before ``dynamo.compile``, drop the expression keys from the ShapeEnv's ranges (the range of
``2 * b`` is what the ShapeEnv derives from ``b``'s; the program's ``range_constraints`` keep them).
Not fixed upstream as of torch 2.15.0. Delete when torch < 2.16 leaves the matrix, if 2.16 loads it.
"""

from __future__ import annotations

from typing import Any

from trtshim.fixes.registry import Fix


def expression_ranges(program: Any) -> list[Any]:
    """The keys of the program's ShapeEnv ranges that are expressions, not symbols (what SE-11 drops)."""
    shape_env = _shape_env(program)
    if shape_env is None:
        return []
    return [key for key in shape_env.var_to_range if not getattr(key, "is_Symbol", True)]


def drop_expression_ranges(job: Any) -> None:
    """Hook ``compile.program``: the ShapeEnv of the program ``dynamo.compile`` gets ranges only symbols."""
    shape_env = _shape_env(job.program)
    for key in expression_ranges(job.program):
        del shape_env.var_to_range[key]


def _shape_env(program: Any) -> Any:
    from trtshim.compat.programs.program import fake_mode

    return getattr(fake_mode([n for n in program.graph.nodes if n.op == "placeholder"]), "shape_env", None)


FIX = Fix(
    id="SE-11",
    family="serialization",
    title="a loaded program with a derived dim compiles (its ShapeEnv holds the expression's range)",
    affected={"torch": ">=2.7"},
    fixed_in={},
    links=(
        "https://github.com/pytorch/pytorch/blob/v2.15.0/torch/export/_trace.py",
        "https://github.com/pytorch/pytorch/blob/v2.15.0/torch/_export/serde/serialize.py",
    ),
    stage="compile",
    how="transform",
    hooks={"compile.program": drop_expression_ranges},
)
