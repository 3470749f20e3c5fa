"""``save`` and ``load``: one standard torch.export archive with a trtshim manifest inside.

``save`` writes atomically (a temporary file in the target folder, fsync, rename): a crash leaves
either the old file or the new one, never half of one. ``load`` reads the manifest straight from the
zip, checks that this environment can load the artifact and that its ops are registered, and only
then deserializes, with ``torch.export.load`` itself.
"""

from __future__ import annotations

import base64
import datetime
import errno
import importlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from typing import Any

import torch

from trtshim._version import __version__
from trtshim.compat import integrity, logs, pickle_scan, pytree_types, signing
from trtshim.compat import program as prog
from trtshim.compat.custom_ops import is_registered, op_origin
from trtshim.compat.environment import Environment, detect
from trtshim.compat.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    read_manifest,
    read_member,
    verify_checksums,
)
from trtshim.compat.module import CompiledModule, ScriptedModule
from trtshim.compat.serial import serialized
from trtshim.compat.versions import release_line
from trtshim.errors import (
    ArtifactCompatibilityWarning,
    ArtifactError,
    ArtifactWriteError,
    BackendFallbackWarning,
    CorruptedArtifactError,
    IncompatibleArtifactError,
    MissingManifestError,
    MissingOpError,
    MissingTypeError,
    OptionError,
    ProvenanceWarning,
    SignatureError,
    TrtShimError,
    UnsafeArtifactError,
    first_line,
)
from trtshim.fixes import REGISTRY, select
from trtshim.fixes.registry import FixReport


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
        "integrity": {"algorithm": integrity.ALGORITHM, "table": integrity.TABLE_NAME},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_record(env),
        "backend": backend,
        "format": fmt,
    }


#: which code wrote the program, by backend (torch_tensorrt.save is never used: see compat.hybrid)
EXPORTERS = {
    "export": "torch.export.export",
    "program": "the caller's ExportedProgram, as given",
    "hybrid": "trtshim.compat.hybrid.export_hybrid",
    "tensorrt": "trtshim.compat.hybrid.export_hybrid",
}


def build_manifest(module: CompiledModule) -> dict[str, Any]:
    ep = module.program
    return {
        **manifest_header(module.environment, module.backend, "torch.export"),
        "export_schema": export_schema_version(),
        "exporter": EXPORTERS.get(module.backend, "torch.export"),
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
        "pytree_types": pytree_types.program_types(ep.call_spec.in_spec, ep.call_spec.out_spec),
        "fixes": module.fix_report.to_list(),
        "engine": engine_record(module),
    }


def engine_record(module: CompiledModule) -> dict[str, Any] | None:
    """For programs that call TensorRT engines: what a loader must match (SE-6)."""
    if not any(op.namespace == "tensorrt" for op in prog.custom_ops(module.program)):
        return None
    env = module.environment
    record: dict[str, Any] = {
        "torch_tensorrt": env.torch_tensorrt.raw if env.torch_tensorrt else None,
        "flavour": env.torch_tensorrt_flavour,
        "tensorrt": env.tensorrt_version,
        "abi": engine_abi(env),
        "version_compatible": module.engine_options.get("version_compatible", False),
        "hardware_compatible": module.engine_options.get("hardware_compatible", False),
    }
    return record


def engine_abi(env: Environment) -> str | None:
    """The engine ABI version of the installed torch_tensorrt, from the matrix data."""
    if env.torch_tensorrt is None:
        return None
    from trtshim.matrix.model import Matrix

    try:
        return (
            Matrix.load().abi_group(env.torch_tensorrt.raw.split("+")[0], env.torch_tensorrt.name).abi_version
        )
    except TrtShimError:
        return None


def check_engine(manifest: dict[str, Any], env: Environment) -> None:
    """Refuse an artifact whose TensorRT engines this stack cannot deserialize (SE-6)."""
    engine = manifest.get("engine")
    if not engine:
        return
    saved = f"torch_tensorrt {engine.get('torch_tensorrt')} ({engine.get('flavour')}, engine ABI {engine.get('abi')})"
    if env.torch_tensorrt is None:
        raise IncompatibleArtifactError(
            f"the artifact holds TensorRT engines built by {saved}; torch_tensorrt is not installed here",
            f"install {engine.get('flavour')}=={engine.get('torch_tensorrt')} (`trtshim pins --torch-tensorrt "
            f"{engine.get('torch_tensorrt')}`)",
        )
    here = engine_abi(env)
    if engine.get("flavour") != env.torch_tensorrt_flavour or (
        here and engine.get("abi") and here != engine["abi"]
    ):
        raise IncompatibleArtifactError(
            f"the artifact's engines come from {saved}; this stack is {env.torch_tensorrt} "
            f"({env.torch_tensorrt_flavour}, engine ABI {here}): the runtime cannot deserialize them",
            "load it on a torch_tensorrt of the same ABI group (README: Supported versions), or recompile",
        )
    if engine.get("tensorrt") != env.tensorrt_version and not engine.get("version_compatible"):
        warnings.warn(
            f"the artifact's engines were built with TensorRT {engine.get('tensorrt')}, this stack has "
            f"{env.tensorrt_version}, and they are not version-compatible: deserialization may fail",
            ArtifactCompatibilityWarning,
            stacklevel=3,
        )


def as_compiled(
    obj: Any, example_inputs: Any = None, example_kwargs: dict[str, Any] | None = None
) -> CompiledModule:
    """A ``CompiledModule`` for what ``save`` accepts: itself, an ExportedProgram, or a hybrid GraphModule."""
    from torch.export import ExportedProgram

    from trtshim.compat.hybrid import export_hybrid, repair_range_constraints

    if isinstance(obj, CompiledModule):
        return obj
    env = detect()
    if isinstance(obj, ExportedProgram):
        report = select(env, REGISTRY, stages=("call",))
        se3 = tuple(d for d in select(env, REGISTRY, stages=("save",)).decisions if d.fix.id == "SE-3")
        if any(d.applied for d in se3) and repair_range_constraints(obj):
            report = report + FixReport(se3)
        return CompiledModule(obj, backend="program", environment=env, fixes=report)
    if isinstance(obj, torch.fx.GraphModule):
        if example_inputs is None:
            raise TrtShimError(
                "saving an fx.GraphModule needs its example inputs",
                "pass save(gm, path, example_inputs=(x,)), the inputs it was compiled with",
            )
        args = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
        report = select(env, REGISTRY, stages=("save", "call"))
        program = export_hybrid(obj, args, example_kwargs)
        return CompiledModule(program, backend=_backend_of(program), environment=env, fixes=report)
    raise TrtShimError(
        f"save() takes a CompiledModule, an ExportedProgram or an fx.GraphModule, got {type(obj).__name__}",
        "compile the model first: trtshim.compat.compile(model, example_inputs)",
    )


def _backend_of(program: Any) -> str:
    namespaces = {op.namespace for op in prog.custom_ops(program)}
    return "tensorrt" if "tensorrt" in namespaces else "hybrid"


@serialized
def save(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    example_inputs: Any = None,
    example_kwargs: dict[str, Any] | None = None,
    include_source: bool | None = None,
) -> str:
    """Write a torch.export archive with a trtshim manifest to ``path``; returns the path.

    ``obj``: a ``CompiledModule``, an ``ExportedProgram``, or the ``fx.GraphModule`` that
    ``torch_tensorrt.compile`` returns (with ``example_inputs``), which goes through trtshim's
    hybrid exporter: a drop-in replacement for ``torch_tensorrt.save``.
    ``include_source`` (default: on for the tensorrt backend) also stores the program as it was before
    TensorRT compilation, so a stack with another engine ABI can ``load(..., on_mismatch="recompile")``.
    It stores the source archive again, base64-encoded: the file grows to about 2.3x (measured on a
    small CNN: 32.5 kB -> 74.7 kB; weights dominate larger models, so the factor stays near 1 + 1.33).
    """
    if isinstance(obj, torch.jit.ScriptModule):
        return _save_script(obj, os.fspath(path))
    module = as_compiled(obj, example_inputs, example_kwargs)
    path = os.fspath(path)
    program, _ = prog.with_integer_parameters_as_buffers(module.program)  # for torch 2.9's loader (LP-6)
    manifest = build_manifest(module)
    extra: dict[str, str] = {}
    if include_source if include_source is not None else module.backend == "tensorrt":
        source = (
            prog.with_integer_parameters_as_buffers(module.source_program)[0]
            if module.source_program is not None
            else program
        )
        buf = io.BytesIO()
        _torch_save(source, buf)
        extra[SOURCE_NAME] = base64.b64encode(buf.getvalue()).decode("ascii")
        manifest["source"] = {
            "member": SOURCE_NAME,
            "bytes": len(buf.getvalue()),
            "compile": module.compile_options,
        }
    extra[MANIFEST_NAME] = json.dumps(manifest, indent=1)
    return _write_atomically(path, lambda fh: _torch_save(program, fh, extra_files=extra))


def _torch_save(program: Any, fh: Any, extra_files: dict[str, str] | None = None) -> None:
    """``torch.export.save``, its refusals as our error (torch 2.3 cannot serialize bool inputs)."""
    try:
        torch.export.save(program, fh, extra_files=extra_files)
    except OSError:
        raise  # the disk, not the program
    except Exception as exc:
        first = first_line(exc)
        raise ArtifactError(
            f"torch {torch.__version__}'s torch.export.save cannot write this program: {type(exc).__name__}: {first}",
            "a plain torch.export.save fails the same way; pass the value as a tensor, or save on another torch",
        ) from exc


def _write_atomically(path: str, write: Any) -> str:
    """Write through ``write(fileobj)`` into a temporary file beside ``path``, seal it with the member table,
    fsync, rename. Whatever stops it (an error, a full disk, a kill) leaves the old file as it was; a kill
    leaves its temporary file, which the next save to the same folder removes."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ArtifactError(f"the folder {folder} does not exist", "create it first")
    base = os.path.basename(path)
    remove_stale_temporaries(folder, base)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.{os.getpid()}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            guarded = _GuardedWriter(fh)
            write(guarded)
            if guarded.error is not None:
                raise guarded.error
        integrity.seal(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            free = shutil.disk_usage(folder).free / 2**20
            raise ArtifactWriteError(
                f"no space left in {folder} while writing {base} ({free:.1f} MiB free): {first_line(exc)}"
            ) from exc
        raise
    _fsync_folder(folder)
    return path


class _GuardedWriter(io.RawIOBase):
    """The file torch writes into: a failed write is remembered and reported after torch returns, never
    raised into torch's writer (whose C++ destructor then aborts the process: a full disk killed it)."""

    def __init__(self, fh: Any) -> None:
        super().__init__()
        self._fh = fh
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = len(memoryview(data).cast("B"))
        if self.error is None:
            try:
                self._fh.write(data)
            except OSError as exc:
                self.error = exc
        return size

    def tell(self) -> int:
        return int(self._fh.tell())

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._fh.seek(offset, whence))

    def flush(self) -> None:
        if self.error is None:
            try:
                self._fh.flush()
            except OSError as exc:
                self.error = exc


_TEMPORARY = re.compile(r"^\.(?P<base>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def remove_stale_temporaries(folder: str, base: str) -> list[str]:
    """Remove the temporary files of saves to ``folder/base`` whose process is gone (killed mid-save)."""
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if not match or match.group("base") != base or _alive(int(match.group("pid"))):
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be saving
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


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


def _save_script(script: torch.jit.ScriptModule, path: str) -> str:
    """TorchScript through ``torch.jit.save`` with the manifest in ``_extra_files`` (SE-5)."""
    env = detect()
    manifest = {
        **manifest_header(env, "torchscript", "torchscript"),
        "export_schema": None,
        "inputs": [],
        "custom_ops": script_custom_ops(script),
        "fixes": select(env, REGISTRY, stages=("save",)).to_list(),
    }
    extra = {MANIFEST_NAME: json.dumps(manifest, indent=1)}
    return _write_atomically(path, lambda fh: torch.jit.save(script, fh, _extra_files=extra))


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


ALLOW_IMPORTS_ENV = "TRTSHIM_ALLOW_IMPORTS"
SOURCE_NAME = "trtshim_source.b64"
ON_MISMATCH = ("error", "recompile")


def allowed_imports(allow_imports: Sequence[str] | None) -> set[str]:
    """Modules the caller allows ``load`` to import: the argument plus ``$TRTSHIM_ALLOW_IMPORTS`` (comma-separated)."""
    allowed = set(allow_imports or ())
    allowed |= {m.strip() for m in os.environ.get(ALLOW_IMPORTS_ENV, "").split(",") if m.strip()}
    return allowed


def check_ops(manifest: dict[str, Any], allow_imports: Sequence[str] | None = None) -> list[str]:
    """Every custom op the artifact calls must be registered before deserializing.

    A missing op's defining module is imported only when the caller allows that module: importing a
    module named inside a file is code execution. Returns the modules imported.
    """
    needed = manifest.get("custom_ops", [])
    if any(op["namespace"] == "tensorrt" for op in needed) and not is_registered("tensorrt::execute_engine"):
        try:
            import torch_tensorrt  # noqa: F401  (registers tensorrt:: ops)
        except Exception as exc:
            raise MissingOpError(
                "the artifact calls tensorrt:: ops, and torch_tensorrt cannot be imported here",
                "install the torch_tensorrt release named by `trtshim inspect FILE`",
            ) from exc
    wanted = {str(op.get("module")) for op in needed if not is_registered(op["qualname"])}
    imported = _import_allowed(wanted, allow_imports, MissingOpError, "ops")
    missing = [op for op in needed if not is_registered(op["qualname"])]
    if missing:
        names = ", ".join(
            f"{op['qualname']} (defined in {op.get('module') or 'an unknown module'})" for op in missing
        )
        modules = sorted({op["module"] for op in missing if op.get("module")})
        raise MissingOpError(
            f"the artifact calls ops that are not registered: {names}",
            f"import {', '.join(modules)} first, or pass load(..., allow_imports={modules!r})"
            if modules
            else "register the ops before loading",
        )
    return imported


def _import_allowed(
    modules: set[str], allow_imports: Sequence[str] | None, error: type[ArtifactError], what: str
) -> list[str]:
    """Import those of ``modules`` the caller allows (the rest stay unimported); the ones imported."""
    imported: list[str] = []
    for module in sorted(modules & allowed_imports(allow_imports)):
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise error(
                f"importing {module} (allowed by the caller) to register the artifact's {what} failed: {exc}",
                f"check that {module} is importable here",
            ) from exc
        imported.append(module)
    return imported


def check_pytree_types(manifest: dict[str, Any], allow_imports: Sequence[str] | None = None) -> list[str]:
    """Every pytree node type of the program's inputs/outputs must be registered before deserializing
    (torch stores them by name); a missing one's module is imported only when the caller allows it."""
    needed = manifest.get("pytree_types") or []
    wanted = {str(t["module"]) for t in needed if not pytree_types.is_registered(t)}
    imported = _import_allowed(wanted, allow_imports, MissingTypeError, "pytree types")
    missing = [t for t in needed if not pytree_types.is_registered(t)]
    if missing:
        modules = sorted({str(t["module"]) for t in missing})
        raise MissingTypeError(
            f"the artifact's inputs/outputs use pytree types that are not registered here: "
            f"{', '.join(str(t['type']) for t in missing)}",
            f"import {', '.join(modules)} first, or pass load(..., allow_imports={modules!r})",
        )
    return imported


@serialized
def load(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    strict: bool = False,
    verify: bool = True,
    allow_imports: Sequence[str] | None = None,
    on_mismatch: str = "error",
    trust_code: bool = False,
    public_key: Any = None,
    signature: str | os.PathLike[str] | None = None,
) -> CompiledModule | ScriptedModule:
    """Load an artifact written by ``save`` (or any torch.export archive) as a ``CompiledModule``.

    A file is untrusted input: no code from it runs (every pickle is read statically first, nothing it
    names is imported), and ``verify`` (default on) checks every member against the SHA-256 table
    ``save`` wrote (the CRC-32s, for archives without one): a changed byte, a missing or extra member is
    ``CorruptedArtifactError``, and no program is handed out before every digest matched.
    ``device``: where weights, buffers and lifted constants go. ``strict=True`` refuses archives
    without a trtshim manifest instead of warning. ``public_key`` (an Ed25519 key, PEM bytes or a PEM
    file): also require the detached signature ``path + '.sig'`` (or ``signature``) by that key.
    ``allow_imports``: modules that may be imported to register the artifact's missing custom ops or
    pytree types (also ``$TRTSHIM_ALLOW_IMPORTS``); nothing named inside a file is imported otherwise.
    ``trust_code=True``: the caller vouches for the file, which lets a TorchScript archive (it holds
    code) load through ``torch.jit.load`` as a ``ScriptedModule``; without it those are refused.
    ``on_mismatch="recompile"``: when the artifact's engines cannot run on this stack (another engine
    ABI, no torch_tensorrt) and it carries its source program, rebuild from that instead of failing.
    """
    if on_mismatch not in ON_MISMATCH:
        raise OptionError(f"on_mismatch={on_mismatch!r} is not one of {ON_MISMATCH}")
    path = os.fspath(path)
    manifest, kind = read_manifest(path)
    if kind == "torchscript" and not trust_code:
        raise UnsafeArtifactError(
            f"{path} is a TorchScript archive: it holds code, which runs when it is loaded and called",
            "load(path, trust_code=True) if you trust where it came from; torch.export archives hold no code",
        )
    check = integrity.begin(path, manifest) if verify or public_key is not None else None
    if public_key is not None:
        if check is None:
            raise SignatureError(
                f"{path} has no member table, so a signature cannot cover it", "re-save and re-sign it"
            )
        signing.verify(path, public_key, signature, table_bytes=check.table_bytes)
    if verify and check is None:
        verify_checksums(path)
    try:
        return _load_checked(path, manifest, kind, device, strict, allow_imports, on_mismatch, check)
    except TrtShimError:
        if check is not None:
            check.finish()  # a changed byte explains the failure better than the failure itself
        raise


def _load_checked(
    path: str,
    manifest: dict[str, Any] | None,
    kind: str,
    device: str | torch.device | None,
    strict: bool,
    allow_imports: Sequence[str] | None,
    on_mismatch: str,
    check: integrity.Verification | None,
) -> CompiledModule | ScriptedModule:
    """``load`` past the file checks; every digest has matched before a module is returned."""
    finish = check.finish if check is not None else (lambda: None)
    env = detect()
    if manifest is None:
        if strict:
            raise MissingManifestError(f"{path} has no trtshim manifest (strict=True)")
        warnings.warn(
            f"{path} has no trtshim manifest: no provenance checks were possible (versions, ops)",
            ProvenanceWarning,
            stacklevel=3,
        )
    else:
        if kind == "torch.export":
            check_compatible(manifest, env)
        try:
            check_engine(manifest, env)
        except IncompatibleArtifactError as exc:
            if on_mismatch != "recompile" or not manifest.get("source"):
                raise
            finish()
            return _recompile(path, manifest, env, device, exc)
        check_ops(manifest, allow_imports)
        check_pytree_types(manifest, allow_imports)
    if kind == "torchscript":
        finish()
        return _load_script(path, manifest, env, device)
    pickle_scan.check_archive(path)  # before torch unpickles anything: no code from the file runs
    fixes = select(env, REGISTRY, stages=("load", "call"))
    try:
        program = _deserialize(path, _repaired_legacy_archive(path, fixes.applied_ids))
    except (CorruptedArtifactError, ArtifactError) as exc:
        saved = tuple((manifest or {}).get("export_schema") or ())
        saved_torch = str((manifest or {}).get("environment", {}).get("torch") or "")
        if saved and saved > tuple(export_schema_version()) and not isinstance(exc, MissingOpError):
            raise IncompatibleArtifactError(
                f"saved by a newer torch ({saved_torch}), whose archive torch {torch.__version__} cannot read: "
                f"{exc.reason}",
                f"load it on torch {release_line(saved_torch)} or newer",
            ) from exc
        raise
    finish()
    backend = manifest.get("backend", "export") if manifest else "export"
    try:
        module = CompiledModule(program, backend=backend, environment=env, fixes=fixes, manifest=manifest)
    except TrtShimError:
        raise
    except Exception as exc:  # a deserialized program missing what every exported program has
        raise ArtifactError(
            f"the program inside {path} is malformed: {type(exc).__name__}: {first_line(exc)}",
            "torch's own ep.module() fails on it too; the file was edited or written by a broken exporter",
        ) from exc
    if device is not None:
        module.to(device)
    return module


class _WellFormedRecords(logging.Filter):
    """torch 2.10-2.13 log 'Loaded object of type %s after initial failure: %s' with one argument while
    loading 2.8/2.9 archives that hold ScriptObject constants; where logging errors are fatal (pytest),
    that record alone fails the load. This filter turns such a record into plain text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.getMessage()
        except (TypeError, ValueError):
            record.msg, record.args = f"{record.msg} {record.args!r}", ()
        return True


SERDE_LOGGER = "torch._export.serde.serialize"


LEGACY_EXAMPLE_INPUTS = "serialized_example_inputs.pt"
LEGACY_PROGRAM = "serialized_exported_program.json"


def _repaired_legacy_archive(path: str, fix_ids: tuple[str, ...]) -> str | io.BytesIO:
    """A torch <= 2.7 legacy archive repaired in memory for the loader of this torch, or ``path`` itself.

    SE-9: add the example-inputs member torch 2.4 asserts on. SE-10: drop ``nn_module_stack`` node
    metadata, which torch 2.3 cannot parse back when a module path contains a comma. SE-7: name the
    ``None`` user inputs torch <= 2.3 left unnamed.
    """
    wanted = [f for f in fix_ids if f in ("SE-7", "SE-9", "SE-10")]
    if not wanted:
        return path
    with zipfile.ZipFile(path) as src:
        names = src.namelist()
        if LEGACY_PROGRAM not in names:
            return path
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                if item.filename == LEGACY_PROGRAM and ("SE-10" in wanted or "SE-7" in wanted):
                    try:
                        data = _repair_program_json(data, wanted)
                    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
                        raise CorruptedArtifactError(
                            f"the program inside {path} is malformed: {type(exc).__name__}: {first_line(exc)}",
                            "torch's own loader fails on it too; get the file again from its source",
                        ) from exc
                dst.writestr(item, data)
            if "SE-9" in wanted and LEGACY_EXAMPLE_INPUTS not in names:
                dst.writestr(LEGACY_EXAMPLE_INPUTS, b"")
    buf.seek(0)
    return buf


def _repair_program_json(data: bytes, fix_ids: list[str]) -> bytes:
    from trtshim.fixes.se7_unnamed_none_inputs import name_none_inputs

    program = json.loads(data)
    if "SE-7" in fix_ids:
        name_none_inputs(program)
    if "SE-10" in fix_ids:
        _strip_module_stacks(program)
    return json.dumps(program).encode()


def _strip_module_stacks(program: Any) -> None:

    def visit(obj: Any) -> None:
        if isinstance(obj, dict):
            meta = obj.get("metadata")
            if isinstance(meta, dict):
                meta.pop("nn_module_stack", None)
            for value in obj.values():
                visit(value)
        elif isinstance(obj, list):
            for value in obj:
                visit(value)

    visit(program)


def _deserialize(path: str, source: Any = None) -> Any:
    """``torch.export.load`` with its real error surfaced: torch >= 2.11 only logs the cause (SE-2)."""
    well_formed = _WellFormedRecords()
    logging.getLogger(SERDE_LOGGER).addFilter(well_formed)
    try:
        with logs.captured("torch", "torch.export") as records:  # torch.export does not propagate
            try:
                with prog.quiet_inline_object_codegen():  # torch 2.2 programs with engine objects
                    return torch.export.load(path if source is None else source)
            except Exception as exc:
                raise _load_error(path, exc, records.last()) from exc
    finally:
        logging.getLogger(SERDE_LOGGER).removeFilter(well_formed)


def _load_error(path: str, exc: Exception, logged: str | None) -> TrtShimError:
    """Our error for a failed ``torch.export.load``, carrying the real cause."""
    first = first_line(exc)
    if logged and ("check the warnings" in first or isinstance(exc, KeyError)):
        first = f"{first} -- logged cause: {logged}"
    elif isinstance(exc, KeyError) and "'version'" in first:  # torch 2.8 swallows the PT2 reader's error
        first = f"{first} -- cause: {_pt2_cause(path)}"
    text = f"{type(exc).__name__}: {first}"
    if "PytorchStreamReader" in text or "CRC" in text or isinstance(exc, EOFError) or "zip" in text.lower():
        return CorruptedArtifactError(f"torch.export.load cannot read {path}: {text}")
    if "can require gradients" in text:  # torch 2.9 re-wraps saved parameters as nn.Parameter
        return IncompatibleArtifactError(
            f"torch {torch.__version__} cannot load {path}: it holds integer parameters, which this "
            "torch's loader turns into nn.Parameter (LP-6)",
            "re-save it with this trtshim (integer parameters are stored as buffers), or load on another torch",
        )
    if "schema version" in text.lower():
        return IncompatibleArtifactError(f"torch.export.load refused {path}: {text}")
    # torch <= 2.14: "... in pytree is not registered"; 2.15: "... failed because the serialized type is not registered"
    unregistered = re.search(r"Deserializing (\S+) in pytree (?:is|failed because the serialized type is) not registered", text)
    if unregistered:
        module = pytree_types.module_of_serialized_name(unregistered.group(1))
        return MissingTypeError(
            f"{path} uses the pytree type {unregistered.group(1)}, which is not registered here",
            f"import {module} first, or pass load(..., allow_imports=[{module!r}])",
        )
    if "operator" in text.lower() or "custom op" in text.lower():
        return MissingOpError(f"torch.export.load refused {path}: {text}")
    return ArtifactError(
        f"torch.export.load failed on {path}: {text}", "the chained exception is torch's own error"
    )


def _recompile(
    path: str, manifest: dict[str, Any], env: Environment, device: Any, why: IncompatibleArtifactError
) -> CompiledModule:
    """Rebuild from the artifact's source program on this stack (announced: it is a fallback)."""
    from trtshim.compat import backends

    source = manifest["source"]
    warnings.warn(
        f"recompiling {path} from its source program: {why.reason}", BackendFallbackWarning, stacklevel=3
    )
    data = io.BytesIO(base64.b64decode(read_member(path, source["member"])))
    pickle_scan.check_archive(data, f"the source program inside {path}")
    data.seek(0)
    program = torch.export.load(data)
    name = backends.resolve("auto")
    how = dict(source.get("compile") or {})
    if name == "tensorrt":
        from trtshim.compat.backends import tensorrt as tensorrt_backend

        program = tensorrt_backend.compile_exported(
            program,
            env=env,
            precision=how.get("precision", "fp32"),
            torch_executed_ops=tuple(how.get("torch_executed_ops", ())),
            options=dict(how.get("options") or {}),
        )
    module = CompiledModule(
        program, backend=name, environment=env, fixes=select(env, REGISTRY, stages=("load", "call"))
    )
    if device is not None:
        module.to(device)
    return module


def _pt2_cause(path: str) -> str:
    """The error torch 2.8's PT2 reader raised before ``torch.export.load`` fell back and hid it."""
    try:
        from torch.export.pt2_archive._package import load_pt2

        load_pt2(path)
    except Exception as exc:
        return f"{type(exc).__name__}: {first_line(exc)}"
    return "unknown"


def _load_script(
    path: str, manifest: dict[str, Any] | None, env: Environment, device: str | torch.device | None
) -> ScriptedModule:
    try:
        script = torch.jit.load(path, map_location=device)
    except Exception as exc:
        first = first_line(exc)
        if "Unknown type name" in first or "Unknown builtin op" in first:
            raise MissingOpError(f"torch.jit.load refused {path}: {first}") from exc
        raise ArtifactError(f"torch.jit.load failed on {path}: {type(exc).__name__}: {first}") from exc
    return ScriptedModule(script, environment=env, manifest=manifest)
