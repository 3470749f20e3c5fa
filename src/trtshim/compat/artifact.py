"""``save`` and ``load``: one standard torch.export archive with a trtshim manifest inside.

``save`` writes atomically (a temporary file in the target folder, fsync, rename): a crash leaves
either the old file or the new one, never half of one. ``load`` reads the manifest straight from the
zip, checks that this environment can load the artifact and that its ops are registered, and only
then deserializes, with ``torch.export.load`` itself.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import warnings
from typing import Any

import torch

from trtshim._version import __version__
from trtshim.compat import program as prog
from trtshim.compat.custom_ops import is_registered, op_origin
from trtshim.compat.environment import Environment, detect
from trtshim.compat.manifest import MANIFEST_NAME, MANIFEST_SCHEMA, read_manifest, verify_checksums
from trtshim.compat.module import CompiledModule, input_specs_of
from trtshim.compat.versions import release_line
from trtshim.errors import (
    ArtifactCompatibilityWarning,
    ArtifactError,
    CorruptedArtifactError,
    IncompatibleArtifactError,
    MissingManifestError,
    MissingOpError,
    NotAnArtifactError,
    ProvenanceWarning,
    TrtShimError,
)
from trtshim.fixes import REGISTRY, select


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


def build_manifest(module: CompiledModule) -> dict[str, Any]:
    ep = module.program
    return {
        "schema": MANIFEST_SCHEMA,
        "trtshim": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_record(module.environment),
        "backend": module.backend,
        "format": "torch.export",
        "export_schema": export_schema_version(),
        "inputs": [s.to_dict() for s in input_specs_of(ep)],
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
        "fixes": module.fix_report.to_list(),
    }


def as_compiled(
    obj: Any, example_inputs: Any = None, example_kwargs: dict[str, Any] | None = None
) -> CompiledModule:
    """A ``CompiledModule`` for what ``save`` accepts: itself, an ExportedProgram, or a hybrid GraphModule."""
    from torch.export import ExportedProgram

    from trtshim.compat.hybrid import export_hybrid

    if isinstance(obj, CompiledModule):
        return obj
    env = detect()
    if isinstance(obj, ExportedProgram):
        return CompiledModule(
            obj, backend="program", environment=env, fixes=select(env, REGISTRY, stages=("call",))
        )
    if isinstance(obj, torch.fx.GraphModule):
        if example_inputs is None:
            raise TrtShimError(
                "saving an fx.GraphModule needs its example inputs",
                "pass save(gm, path, example_inputs=(x,)), the inputs it was compiled with",
            )
        args = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
        report = select(env, REGISTRY, stages=("save", "call"))
        program = export_hybrid(obj, args, example_kwargs, disable=report.skipped_ids)
        return CompiledModule(program, backend=_backend_of(program), environment=env, fixes=report)
    raise TrtShimError(
        f"save() takes a CompiledModule, an ExportedProgram or an fx.GraphModule, got {type(obj).__name__}",
        "compile the model first: trtshim.compat.compile(model, example_inputs)",
    )


def _backend_of(program: Any) -> str:
    namespaces = {op.namespace for op in prog.custom_ops(program)}
    return "tensorrt" if "tensorrt" in namespaces else "hybrid"


def save(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    example_inputs: Any = None,
    example_kwargs: dict[str, Any] | None = None,
) -> str:
    """Write a torch.export archive with a trtshim manifest to ``path``; returns the path.

    ``obj``: a ``CompiledModule``, an ``ExportedProgram``, or the ``fx.GraphModule`` that
    ``torch_tensorrt.compile`` returns (with ``example_inputs``), which goes through trtshim's
    hybrid exporter: a drop-in replacement for ``torch_tensorrt.save``.
    """
    module = as_compiled(obj, example_inputs, example_kwargs)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ArtifactError(f"the folder {folder} does not exist", "create it first")
    manifest = build_manifest(module)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.export.save(module.program, fh, extra_files={MANIFEST_NAME: json.dumps(manifest, indent=1)})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)
    return path


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_compatible(manifest: dict[str, Any], env: Environment) -> None:
    """Refuse (or warn about) an artifact this environment cannot load faithfully."""
    if int(manifest.get("schema", 0)) > MANIFEST_SCHEMA:
        raise IncompatibleArtifactError(
            f"written by trtshim {manifest.get('trtshim')} with manifest schema {manifest['schema']}; "
            f"this trtshim ({__version__}) reads up to {MANIFEST_SCHEMA}",
            "upgrade trtshim",
        )
    saved = manifest.get("export_schema") or [0, 0]
    here = export_schema_version()
    saved_torch = manifest.get("environment", {}).get("torch")
    if saved[0] != here[0]:
        raise IncompatibleArtifactError(
            f"saved by torch {saved_torch} (export schema {saved[0]}.x); torch {torch.__version__} reads "
            f"schema {here[0]}.x only",
            f"load it on torch {release_line(saved_torch or '') or saved_torch}, or re-export the model here",
        )
    if tuple(saved) > tuple(here):
        warnings.warn(
            f"artifact saved by a newer torch ({saved_torch}, export schema {saved[0]}.{saved[1]}) than this one "
            f"({torch.__version__}, {here[0]}.{here[1]})",
            ArtifactCompatibilityWarning,
            stacklevel=3,
        )


def check_ops(manifest: dict[str, Any]) -> None:
    """Every custom op the artifact calls must be registered before deserializing."""
    needed = manifest.get("custom_ops", [])
    if any(op["namespace"] == "tensorrt" for op in needed) and not is_registered("tensorrt::execute_engine"):
        try:
            import torch_tensorrt  # noqa: F401  (registers tensorrt:: ops)
        except Exception as exc:
            raise MissingOpError(
                "the artifact calls tensorrt:: ops, and torch_tensorrt cannot be imported here",
                "install the torch_tensorrt release named by `trtshim inspect FILE`",
            ) from exc
    missing = [op for op in needed if not is_registered(op["qualname"])]
    if missing:
        names = ", ".join(
            f"{op['qualname']} (defined in {op.get('module') or 'an unknown module'})" for op in missing
        )
        modules = sorted({op["module"] for op in missing if op.get("module")})
        raise MissingOpError(
            f"the artifact calls ops that are not registered: {names}",
            f"import {', '.join(modules)} before loading" if modules else "register the ops before loading",
        )


def load(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    strict: bool = False,
    verify: bool = True,
) -> CompiledModule:
    """Load an artifact written by ``save`` (or any torch.export archive) as a ``CompiledModule``.

    ``device``: where weights, buffers and lifted constants go. ``strict=True`` refuses archives
    without a trtshim manifest instead of warning. ``verify`` checks every member's CRC-32 first
    (one extra read of the file; torch itself would load damaged weights without a word).
    """
    path = os.fspath(path)
    manifest, kind = read_manifest(path)
    if verify:
        verify_checksums(path)
    if kind != "torch.export":
        raise NotAnArtifactError(
            f"{path} is a TorchScript archive, not a torch.export one", "load it with torch.jit.load"
        )
    env = detect()
    if manifest is None:
        if strict:
            raise MissingManifestError(f"{path} has no trtshim manifest (strict=True)")
        warnings.warn(
            f"{path} has no trtshim manifest: no provenance checks were possible (versions, ops)",
            ProvenanceWarning,
            stacklevel=2,
        )
    else:
        check_compatible(manifest, env)
        check_ops(manifest)
    program = _deserialize(path)
    backend = manifest.get("backend", "export") if manifest else "export"
    fixes = select(env, REGISTRY, stages=("load", "call"))
    module = CompiledModule(program, backend=backend, environment=env, fixes=fixes, manifest=manifest)
    if device is not None:
        module.to(device)
    return module


def _deserialize(path: str) -> Any:
    try:
        return torch.export.load(path)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        text = f"{type(exc).__name__}: {first}"
        if (
            "PytorchStreamReader" in text
            or "CRC" in text
            or isinstance(exc, EOFError)
            or "zip" in text.lower()
        ):
            raise CorruptedArtifactError(f"torch.export.load cannot read {path}: {text}") from exc
        if "schema version" in text.lower():
            raise IncompatibleArtifactError(f"torch.export.load refused {path}: {text}") from exc
        if "operator" in text.lower() or "custom op" in text.lower():
            raise MissingOpError(f"torch.export.load refused {path}: {text}") from exc
        raise ArtifactError(
            f"torch.export.load failed on {path}: {text}", "the chained exception is torch's own error"
        ) from exc
