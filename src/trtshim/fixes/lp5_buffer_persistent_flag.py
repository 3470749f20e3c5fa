"""LP-5: a lifted buffer spec without ``persistent`` fails: ``Failed to specify persistent flag on BUFFER.``

Upstream: torch >= 2.3 asserts it in ``InputSpec``; Torch-TensorRT's legacy ``lift()`` omitted it
until 2.14.0 (pytorch/TensorRT#4446). Fix: the hybrid exporter sets ``persistent`` from where the
buffer lives (``_non_persistent_buffers_set``). Delete when torch_tensorrt < 2.14 leaves the matrix.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix


def _probe() -> tuple[bool, str]:
    import dataclasses

    from torch.export.graph_signature import InputSpec

    if "persistent" in {f.name for f in dataclasses.fields(InputSpec)}:
        return True, "InputSpec has a persistent field (asserted for BUFFER)"
    return False, "InputSpec has no persistent field"


def persistent_field(kind: str) -> dict[str, bool | None]:
    """Hook ``hybrid.spec_fields``: every input spec states ``persistent`` (True / False for buffers)."""
    return {"persistent": {"BUFFER": True, "BUFFER_NP": False}.get(kind)}


FIX = Fix(
    id="LP-5",
    family="lifted-params",
    title="lifted buffers carry their persistent flag",
    affected={"torch": ">=2.3"},
    fixed_in={"torch_tensorrt": "2.14.0"},
    links=("https://github.com/pytorch/TensorRT/pull/4446",),
    stage="hybrid",
    how="transform",
    probe=_probe,
    hooks={"hybrid.spec_fields": persistent_field},
)
