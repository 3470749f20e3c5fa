"""``save``: one standard torch.export archive with a trtshim manifest inside, written atomically."""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

import torch

from trtshim.compat.artifact.atomic import write_atomically
from trtshim.compat.artifact.manifest import MANIFEST_NAME, read_member
from trtshim.compat.artifact.record import build_manifest, manifest_header, script_custom_ops
from trtshim.compat.artifact.trust.opened import OpenedArchive
from trtshim.compat.call.input_names import recorded_dim_names
from trtshim.compat.call.module import CompiledModule, PackagedModule
from trtshim.compat.environment import detect
from trtshim.compat.programs import program as prog
from trtshim.compat.serial import serialized
from trtshim.errors import ArtifactError, OptionError, TrtShimError, first_line
from trtshim.fixes import FixReport, active

SOURCE_NAME = "trtshim_source.pt2"  # the source program's archive, stored as it is (not among torch's extra files, which torch reads as text)


def read_source(archive: str | OpenedArchive, source: dict[str, Any]) -> io.BytesIO:
    """The source program archive that the manifest's ``source`` record names inside ``archive`` (a path,
    or the archive a load opened)."""
    data = read_member(archive, source["member"])
    return io.BytesIO(base64.b64decode(data) if source["member"].endswith(".b64") else data)


def as_compiled(
    obj: Any, example_inputs: Any, example_kwargs: dict[str, Any] | None, fixes: FixReport
) -> CompiledModule:
    """A ``CompiledModule`` for what ``save`` accepts: itself, an ExportedProgram (repaired in place by
    the ``save.repair`` hooks of ``fixes``: SE-3), or a hybrid GraphModule (through the hybrid exporter)."""
    from torch.export import ExportedProgram

    from trtshim.compat.programs.hybrid import export_hybrid

    if isinstance(obj, CompiledModule):
        return obj
    env = detect()
    if isinstance(obj, ExportedProgram):
        for repair in fixes.hooks("save.repair"):
            obj = repair(obj)
        return CompiledModule(
            obj,
            backend="program",
            environment=env,
            fixes=active("call", env=env),
            dim_names=recorded_dim_names(obj),
        )
    if isinstance(obj, torch.fx.GraphModule):
        if example_inputs is None:
            raise TrtShimError(
                "saving an fx.GraphModule needs its example inputs",
                "pass save(gm, path, example_inputs=(x,)), the inputs it was compiled with",
            )
        args = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
        report = active("hybrid", "call", env=env)
        program = export_hybrid(obj, args, example_kwargs, fixes=report)
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
    target_torch: str | None = None,
    durable: bool = False,
) -> str:
    """Write a torch.export archive with a trtshim manifest to ``path``; returns the path.

    ``obj``: a ``CompiledModule``, an ``ExportedProgram``, or the ``fx.GraphModule`` that
    ``torch_tensorrt.compile`` returns (with ``example_inputs``), which goes through trtshim's
    hybrid exporter: a drop-in replacement for ``torch_tensorrt.save``.
    ``include_source`` (default: on for the tensorrt backend) also stores the program as it was before
    TensorRT compilation, so a stack with another engine ABI can ``load(..., on_mismatch="recompile")``:
    its archive, as bytes, one member of the archive (the file grows by the source's size;
    ``trtshim inspect`` prints the factor).
    The write is atomic (a temporary file renamed over ``path``: a failed or killed save leaves the old
    file as it was); ``durable=True`` also fsyncs, so that the file survives a power loss.
    ``target_torch`` (``"2.6"``): write an archive that torch minor reads (older than this one), or refuse
    with the schema features the program uses and that torch lacks (``migrations.targets``).
    """
    if isinstance(obj, torch.jit.ScriptModule):
        return _save_script(obj, os.fspath(path))
    fixes = active("save")
    module = as_compiled(obj, example_inputs, example_kwargs, fixes)
    path = os.fspath(path)
    program = _saved(module.program, fixes)
    manifest = build_manifest(module, fixes)
    extra: dict[str, str] = {}
    appended: dict[str, bytes] = {}
    if include_source if include_source is not None else module.backend == "tensorrt":
        if isinstance(module, PackagedModule):
            raise OptionError(
                "include_source is for TensorRT engines; an AOTInductor archive holds its program already"
            )
        source = _saved(module.source_program, fixes) if module.source_program is not None else program
        buf = io.BytesIO()
        _torch_save(source, buf)
        appended[SOURCE_NAME] = buf.getvalue()
        manifest["source"] = {
            "member": SOURCE_NAME,
            "bytes": len(buf.getvalue()),
            "compile": module.compile_options,
        }
    if isinstance(module, PackagedModule):
        return _save_package(module, program, path, manifest, durable, target_torch)
    if target_torch is not None and target_torch != _line():
        return _save_for(program, path, manifest, appended, target_torch, durable)
    extra[MANIFEST_NAME] = json.dumps(manifest, indent=1)
    return write_atomically(
        path, lambda fh: _torch_save(program, fh, extra_files=extra), durable=durable, appended=appended
    )


def _save_package(
    module: PackagedModule,
    program: Any,
    path: str,
    manifest: dict[str, Any],
    durable: bool,
    target: str | None,
) -> str:
    """An AOTInductor module: its program and compiled files in one PT2 archive (``backends.inductor``)."""
    from trtshim.compat.backends import inductor

    if target is not None and target != _line():
        raise OptionError(
            f"target_torch={target!r}: AOTInductor code runs only on the torch that compiled it ({torch.__version__})",
            "save the program for the older torch instead (backend='export')",
        )
    manifest["aoti"] = {
        "files": sorted(os.path.basename(f) for f in module.aoti_files),
        "device": str(module.device) if module.device is not None else "cpu",
    }
    files = {MANIFEST_NAME: json.dumps(manifest, indent=1)}
    return write_atomically(
        path, lambda fh: inductor.write_archive(fh, program, module.aoti_files, files), durable=durable
    )


def _line() -> str:
    return ".".join(torch.__version__.split(".")[:2])


def _save_for(
    program: Any, path: str, manifest: dict[str, Any], appended: dict[str, bytes], line: str, durable: bool
) -> str:
    """The program in the legacy zip layout, its JSON made readable by torch ``line``."""
    from torch._export.serde.serialize import serialize

    from trtshim.compat.artifact import migrations
    from trtshim.compat.artifact.migrations import targets

    here = tuple(int(x) for x in _line().split("."))
    if tuple(int(x) for x in line.split(".")) > here:
        raise OptionError(
            f"target_torch={line!r} is newer than this torch ({torch.__version__})", "save it as it is"
        )
    major, minor = targets.target_schema(line)
    try:
        artifact = serialize(program)
    except Exception as exc:
        raise ArtifactError(
            f"torch {torch.__version__} cannot serialize this program: {first_line(exc)}"
        ) from exc
    serialized = targets.downgraded(json.loads(artifact.exported_program), line)
    manifest = {**manifest, "export_schema": [major, minor], "target_torch": line}
    members = {
        "serialized_state_dict.pt": artifact.state_dict,
        "serialized_constants.pt": artifact.constants,
        "serialized_example_inputs.pt": artifact.example_inputs,
        "version": f"{major}.{minor}".encode(),
        f"extra_files/{MANIFEST_NAME}": json.dumps(manifest, indent=1).encode(),
    }

    archive = migrations.Archive(serialized, members, [migrations.PROGRAM, *members])
    return write_atomically(path, archive.write, durable=durable, appended=appended)


def _saved(program: Any, fixes: FixReport) -> Any:
    """The program handed to ``torch.export.save``: through the ``save.program`` hooks (LP-6)."""
    for hook in fixes.hooks("save.program"):
        program = hook(program)
    return program


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


def _save_script(script: torch.jit.ScriptModule, path: str) -> str:
    """TorchScript through ``torch.jit.save`` with the manifest in ``_extra_files`` (SE-5)."""
    env = detect()
    manifest = {
        **manifest_header(env, "torchscript", "torchscript"),
        "export_schema": None,
        "inputs": [],
        "custom_ops": script_custom_ops(script),
        "fixes": active("save", env=env).to_list(),
    }
    extra = {MANIFEST_NAME: json.dumps(manifest, indent=1)}
    return write_atomically(path, lambda fh: torch.jit.save(script, fh, _extra_files=extra))
