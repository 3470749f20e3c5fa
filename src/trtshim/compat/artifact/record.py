"""What ``save`` records in the manifest: the saving environment, the program's inputs, ops, pytree
types and the fixes that ran. Reading it back is ``compat.manifest`` (torch-free)."""

from __future__ import annotations

import datetime
from typing import Any

import torch

from trtshim._version import __version__
from trtshim.compat.artifact.manifest import MANIFEST_SCHEMA
from trtshim.compat.artifact.trust import integrity
from trtshim.compat.call.module import CompiledModule
from trtshim.compat.environment import Environment
from trtshim.compat.programs import program as prog
from trtshim.compat.programs import pytree_types
from trtshim.compat.programs.custom_ops import op_origin
from trtshim.fixes import FixReport


def export_schema_version() -> list[int]:
    """The torch.export serde schema version of this torch, as ``[major, minor]``."""
    from torch._export.serde import schema

    v = schema.SCHEMA_VERSION
    return [int(x) for x in v] if isinstance(v, (tuple, list)) else [int(v), 0]


def environment_record(env: Environment) -> dict[str, Any]:
    record = env.to_dict()
    record["torch"] = torch.__version__  # carries the local tag (+cu130) that wheel metadata omits
    record["cuda"] = torch.version.cuda
    record["tensorrt_version"] = env.tensorrt_version
    return record


def manifest_header(env: Environment, backend: str, fmt: str) -> dict[str, Any]:
    """The fields every manifest starts with: schema, writer, time, saving environment, backend, format."""
    return {
        "schema": MANIFEST_SCHEMA,
        "trtshim": __version__,
        "integrity": {"algorithm": integrity.algorithm(), "table": integrity.TABLE_NAME},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_record(env),
        "backend": backend,
        "format": fmt,
    }


#: which code wrote the program, by backend (torch_tensorrt.save is never used: see compat.hybrid)
EXPORTERS = {
    "export": "torch.export.export",
    "program": "the caller's ExportedProgram, as given",
    "hybrid": "trtshim.compat.programs.hybrid.export_hybrid",
    "tensorrt": "trtshim.compat.programs.hybrid.export_hybrid",
    "inductor": "torch.export.export + torch._inductor.aot_compile",
}


def _specs(ep: Any) -> tuple[Any, Any]:
    spec = ep.call_spec  # torch builds a new NamedTuple class on every access
    return spec.in_spec, spec.out_spec


def build_manifest(module: CompiledModule, fixes: FixReport) -> dict[str, Any]:
    """The manifest of ``module``; ``fixes`` (the save stage's) add their fields and join the report."""
    ep = module.program
    ran = {d.fix.id for d in module.fix_report.decisions}
    manifest = {
        **manifest_header(module.environment, module.backend, "aoti" if module.backend == "inductor" else "torch.export"),
        "export_schema": export_schema_version(),
        "exporter": EXPORTERS.get(module.backend, "torch.export"),
        "ir": module.program_ir,
        "inputs": [s.to_dict() for s in module.input_specs],
        "custom_ops": [
            {
                "qualname": op.name().split(".")[0],
                "namespace": op.namespace,
                "name": op.name().split("::", 1)[1].split(".")[0],
                "overload": op._overloadname,
                "schema": str(op._schema),
                "module": op_origin(op.name().split(".")[0]),
            }
            for op in prog.custom_ops(ep)
        ],
        "pytree_types": pytree_types.program_types(*_specs(ep)),
        "fixes": (
            module.fix_report + FixReport(tuple(d for d in fixes.decisions if d.fix.id not in ran))
        ).to_list(),
        "engine": None,
    }
    for hook in fixes.hooks("save.manifest"):  # SE-6: the engine record
        hook(manifest, module)
    return manifest


def script_custom_ops(script: torch.jit.ScriptModule) -> list[dict[str, Any]]:
    """Non-aten ops a TorchScript module calls (its inlined graph), for the manifest."""
    seen: dict[str, dict[str, Any]] = {}
    graph = getattr(script, "inlined_graph", None) or script.graph
    for node in graph.nodes():
        ns, _, name = node.kind().partition("::")
        if ns not in ("aten", "prim", "prims", "") and name:
            qualname = f"{ns}::{name}"
            seen.setdefault(
                qualname,
                {
                    "qualname": qualname,
                    "namespace": ns,
                    "name": name,
                    "overload": "",
                    "schema": "",
                    "module": op_origin(qualname),
                },
            )
    return list(seen.values())
