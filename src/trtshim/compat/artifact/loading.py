"""``load``: file checks first (member digests, signature, pickles read statically), then the manifest's
compatibility checks and the load fixes' hooks, then ``torch.export.load`` itself, its errors typed."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import torch

from trtshim.compat import logs
from trtshim.compat.artifact import legacy, migrations, tensor_reads
from trtshim.compat.artifact.checks import allowed_imports, check_compatible, check_ops, check_pytree_types
from trtshim.compat.artifact.manifest import read_manifest, verify_checksums
from trtshim.compat.artifact.record import export_schema_version
from trtshim.compat.artifact.saving import read_source
from trtshim.compat.artifact.trust import integrity, pickle_scan, signing
from trtshim.compat.artifact.trust.opened import OpenedArchive
from trtshim.compat.backends import inductor
from trtshim.compat.call.input_specs import dim_names_of_manifest, paths_of_manifest
from trtshim.compat.call.module import CompiledModule, PackagedModule, ScriptedModule
from trtshim.compat.environment import Environment, detect
from trtshim.compat.programs import program as prog
from trtshim.compat.programs import pytree_types
from trtshim.compat.serial import serialized
from trtshim.compat.versions import release_line
from trtshim.errors import (
    ArtifactCompatibilityWarning,
    ArtifactError,
    ArtifactUpgradeWarning,
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
    announce,
    first_line,
)
from trtshim.fixes import FixReport, active

ON_MISMATCH = ("error", "recompile")


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
    names is imported), and ``verify`` (default on) checks every member against the digest table
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
    with OpenedArchive(path) as archive:  # the zip directory read once; small members read once
        manifest, kind = read_manifest(archive)
        if kind == "torchscript" and not trust_code:
            raise UnsafeArtifactError(
                f"{path} is a TorchScript archive: it holds code, which runs when it is loaded and called",
                "load(path, trust_code=True) if you trust where it came from; torch.export archives hold no code",
            )
        if kind == "aoti":
            if not trust_code and public_key is None:
                raise UnsafeArtifactError(
                    f"{path} holds AOTInductor code (a native library), which runs when it is loaded",
                    "load(path, trust_code=True) if you trust where it came from, or pass public_key= to require "
                    "a signature by a key you trust",
                )
            inductor.check_members(path, archive.names)
        read_here = tensor_reads.tensor_members(archive) if kind == "torch.export" else set()
        check = integrity.begin(archive, manifest, read_here) if verify or public_key is not None else None
        if public_key is not None:
            if check is None:
                raise SignatureError(
                    f"{path} has no member table, so a signature cannot cover it", "re-save and re-sign it"
                )
            signing.verify(path, public_key, signature, table_bytes=check.table_bytes)
        if verify and check is None:
            verify_checksums(archive)
        try:
            return _load_checked(archive, manifest, kind, device, strict, allow_imports, on_mismatch, check)
        except TrtShimError:
            if check is not None:
                check.finish()  # a changed byte explains the failure better than the failure itself
            raise


def _load_checked(
    archive: OpenedArchive,
    manifest: dict[str, Any] | None,
    kind: str,
    device: str | torch.device | None,
    strict: bool,
    allow_imports: Sequence[str] | None,
    on_mismatch: str,
    check: integrity.Verification | None,
) -> CompiledModule | ScriptedModule:
    """``load`` past the file checks; every digest has matched before a module is returned."""
    path = archive.path
    finish = check.finish if check is not None else (lambda: None)
    env = detect()
    fixes = active("load", "call", env=env)
    if manifest is None:
        if strict:
            raise MissingManifestError(f"{path} has no trtshim manifest (strict=True)")
        announce(
            f"{path} has no trtshim manifest: no provenance checks were possible (versions, ops)",
            ProvenanceWarning,
        )
    chain = _migrations(archive, manifest, kind, strict)
    caveat = None
    if manifest is not None:
        if kind == "torch.export":
            caveat = check_compatible(manifest, env, migrating=bool(chain))
        try:
            for check_manifest in fixes.hooks("load.check"):  # SE-6: engines this stack can run
                check_manifest(manifest, env)
        except IncompatibleArtifactError as exc:
            if on_mismatch != "recompile" or not manifest.get("source"):
                raise
            finish()
            return _recompile(archive, manifest, env, device, exc, allowed_imports(allow_imports))
        check_ops(manifest, allow_imports)
        check_pytree_types(manifest, allow_imports)
    if kind == "torchscript":
        finish()
        return _load_script(path, manifest, env, device)
    if kind == "aoti":
        _check_same_torch(path, manifest)
    # before torch unpickles anything: no code from the file runs
    pickle_scan.check_archive(archive, allowed_modules=allowed_imports(allow_imports))
    nested = inductor.nested_program(archive.names) if kind == "aoti" else None
    if kind == "aoti":  # torch's readers of a package may load its library: every digest matches first
        finish()
    try:
        if nested is not None:  # torch 2.6-2.7 package: the program is a nested archive, its bytes checked
            program = _deserialize(path, io.BytesIO(archive.read(nested)))
        elif kind == "aoti":
            program = _deserialize(path, legacy.repaired(path, fixes, chain), package=True)
        else:  # raw tensors read (and hashed) by trtshim where this torch reads them one by one
            with tensor_reads.serving(archive, check):
                program = _deserialize(path, legacy.repaired(path, fixes, chain))
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
    backend = manifest.get("backend", "export") if manifest else "export"
    if kind == "aoti":  # every digest has matched (finish, above): only now may its code run
        _announce(path, manifest, caveat, chain)
        return _load_package(path, program, env, fixes, manifest, device)
    try:  # raw tensor bytes may still be being hashed: nothing here parses them
        module = CompiledModule(program, backend=backend, environment=env, fixes=fixes, manifest=manifest)
    except TrtShimError:
        raise
    except Exception as exc:  # a deserialized program missing what every exported program has
        raise ArtifactError(
            f"the program inside {path} is malformed: {type(exc).__name__}: {first_line(exc)}",
            "torch's own ep.module() fails on it too; the file was edited or written by a broken exporter",
        ) from exc
    finish()
    _announce(path, manifest, caveat, chain)
    if device is not None:
        module.to(device)
    return module


def _announce(
    path: str, manifest: dict[str, Any] | None, caveat: str | None, chain: list[migrations.Step]
) -> None:
    """What a successful load says: compatibility caveats, an in-memory migration."""
    if caveat:
        announce(caveat, ArtifactCompatibilityWarning)
    if chain:
        saved_torch = str((manifest or {}).get("environment", {}).get("torch") or "an older torch")
        announce(
            f"{path} was saved by torch {saved_torch} (export schema {chain[0].source[0]}.x): migrated in memory "
            f"for torch {torch.__version__} ({', '.join(s.id for s in chain)}); `trtshim upgrade` rewrites the "
            "file once",
            ArtifactUpgradeWarning,
        )


def _check_same_torch(path: str, manifest: dict[str, Any] | None) -> None:
    """AOTInductor code runs on the torch that compiled it (its ABI); refuse any other before loading it."""
    saved = str(((manifest or {}).get("environment") or {}).get("torch") or "")
    if not saved:
        raise IncompatibleArtifactError(
            f"{path} holds AOTInductor code but no trtshim manifest says which torch compiled it",
            "compile it again with compat.compile(..., backend='inductor')",
        )
    if saved.split("+")[0] != torch.__version__.split("+")[0]:
        raise IncompatibleArtifactError(
            f"{path} holds AOTInductor code compiled by torch {saved}; this is torch {torch.__version__}",
            f"load it on torch {saved.split('+')[0]}, or compile it again here",
        )


def _load_package(
    path: str,
    program: Any,
    env: Environment,
    fixes: FixReport,
    manifest: dict[str, Any] | None,
    device: str | torch.device | None,
) -> CompiledModule:
    built_for = str(((manifest or {}).get("aoti") or {}).get("device") or "cpu")
    if device is not None and torch.device(device) != torch.device(built_for):
        raise IncompatibleArtifactError(
            f"{path} holds AOTInductor code compiled for {built_for}; device={str(device)!r} was asked for",
            f"load it with device={built_for!r}, or compile it again on that device",
        )
    module = PackagedModule(
        program, inductor.load_runner(path), [], environment=env, fixes=fixes, manifest=manifest
    )
    module.aoti_files = inductor.extracted_files(path, module)
    return module


def _migrations(
    archive: OpenedArchive, manifest: dict[str, Any] | None, kind: str, strict: bool
) -> list[migrations.Step]:
    """The migration steps a torch.export archive of an older schema major needs here (none: same major,
    newer, or no step bridges the gap); ``strict=True`` refuses such an archive instead."""
    path = archive.path
    if kind != "torch.export":
        return []
    here = tuple(export_schema_version())
    recorded = (manifest or {}).get("export_schema")
    if recorded and recorded[0] >= here[0]:
        return []
    saved = legacy.schema_in(archive)  # the program's own record decides, not the manifest's
    if not saved or saved[0] >= here[0]:
        return []
    chain = migrations.plan((int(saved[0]), int(saved[1])), (here[0], here[1]))
    if chain and strict:
        saved_torch = (manifest or {}).get("environment", {}).get("torch") or "an older torch"
        raise IncompatibleArtifactError(
            f"saved by torch {saved_torch} (export schema {saved[0]}.x); torch {torch.__version__} reads "
            f"schema {here[0]}.x, and strict=True does not migrate",
            f"`trtshim upgrade {path} NEW` rewrites it for this torch, or load it with strict=False",
        )
    return chain


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


def _deserialize(path: str, source: Any = None, *, package: bool = False) -> Any:
    """``torch.export.load`` with its real error surfaced: torch >= 2.11 only logs the cause (SE-2); of an
    AOTInductor ``package``, the program alone (its library is loaded once, by the caller)."""
    well_formed = _WellFormedRecords()
    logging.getLogger(SERDE_LOGGER).addFilter(well_formed)
    try:
        with logs.captured("torch", "torch.export") as records:  # torch.export does not propagate
            try:
                where = path if source is None else source
                with prog.quiet_inline_object_codegen():  # torch 2.2 programs with engine objects
                    program = inductor.program_without_code(where) if package else None
                    return program if program is not None else torch.export.load(where)
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
    unregistered = re.search(
        r"Deserializing (\S+) in pytree (?:is|failed because the serialized type is) not registered", text
    )
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
    archive: OpenedArchive,
    manifest: dict[str, Any],
    env: Environment,
    device: Any,
    why: IncompatibleArtifactError,
    allowed_modules: set[str],
) -> CompiledModule:
    """Rebuild from the artifact's source program on this stack (announced: it is a fallback)."""
    from trtshim.compat import backends

    path, source = archive.path, manifest["source"]
    announce(f"recompiling {path} from its source program: {why.reason}", BackendFallbackWarning)
    data = read_source(archive, source)  # bytes the digests already checked
    pickle_scan.check_archive(data, f"the source program inside {path}", allowed_modules)
    program = _deserialize(path, source_archive(data, active("load", env=env)))
    name = backends.resolve("auto")
    how = dict(source.get("compile") or {})
    options = dict(how.get("options") or {})
    builds = None
    if name == "tensorrt":
        from trtshim.compat.backends import tensorrt as tensorrt_backend
        from trtshim.compat.backends.engine_builds import BuildLog

        builds = BuildLog()
        compiled = tensorrt_backend.compile_exported(
            program,
            env=env,
            precision=how.get("precision", "fp32"),
            torch_executed_ops=tuple(how.get("torch_executed_ops", ())),
            options=options,
            builds=builds,
            dim_names=dim_names_of_manifest(manifest),
        )
    else:
        compiled = program
    # the rebuilt module carries what the original did: names, source, how it was compiled
    module = CompiledModule(
        compiled,
        backend=name,
        environment=env,
        fixes=active("load", "call", env=env),
        dim_names=dim_names_of_manifest(manifest),
        input_paths=paths_of_manifest(manifest),
    )
    module.source_program = program
    module.compile_options = how
    if builds is not None:
        module.engine_options = tensorrt_backend.engine_record(options, builds)
    if device is not None:
        module.to(device)
    return module


def source_archive(data: io.BytesIO, fixes: FixReport) -> io.BytesIO:
    """An artifact's stored source program, migrated for this torch where it comes from an older schema major."""
    here = export_schema_version()
    chain = legacy.chain_for(data, (here[0], here[1]))
    prepared = legacy.repaired(data, fixes, chain)
    data.seek(0)
    return data if isinstance(prepared, str) else prepared


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
