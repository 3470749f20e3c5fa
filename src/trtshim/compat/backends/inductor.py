"""The AOTInductor backend: compiled code (a shared library per model) where TensorRT does not run.

trtshim exports the model (inference IR, every default explicit), compiles it with AOTInductor
(``torch._inductor.aot_compile`` with ``aot_inductor.package``) and keeps the program beside the compiled
files: the program gives the module its input contract and the manifest its facts, the compiled files
run the calls. ``save`` writes both into one PT2 archive, the format ``torch._inductor.aoti_load_package``
and C++ ``AOTIModelPackageLoader`` read, so a file written by ``compat.save`` loads in C++ as it is: on
torch >= 2.8 with ``package_pt2`` (torch's own layout holds the program); on torch 2.6 and 2.7, whose
packages hold no program (and on any torch for a program holding engine objects: ``holds_objects``), as
torch's ``package_aoti`` writes it plus the program as a nested archive (``trtshim_program.pt2``, which
torch's loaders pass over). torch <= 2.5 has no public package API
(only the private ``torch._inductor.package``): there the backend is ``BackendUnavailableError``.

A package holds native code: ``load`` treats it as code (``trust_code=True`` or a valid signature), after
checking every member's digest and name, before anything is extracted.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import weakref
import zipfile
from typing import Any

import torch

from trtshim.compat.environment import Environment
from trtshim.compat.gates import requires
from trtshim.errors import (
    BackendUnavailableError,
    CompileError,
    CorruptedArtifactError,
    OptionError,
    first_line,
)

FIRST_TORCH = "2.6"  # public aoti_compile_and_package / aoti_load_package
PT2_TORCH = "2.8"  # package_pt2: the program and the AOTInductor files in torch's own PT2 layout
PROGRAM_MEMBER = "trtshim_program.pt2"  # torch 2.6-2.7: the program beside the package, a nested archive
OPTIONS = ("inductor_configs",)
MODEL = "model"
AOTI_DIR = "data/aotinductor/"


def check_available(env: Environment) -> None:
    if not requires(f"torch>={FIRST_TORCH}", env=env):
        raise BackendUnavailableError(
            f"the inductor backend needs torch >= {FIRST_TORCH} (aoti_compile_and_package and aoti_load_package, "
            f"AOTInductor's package API); this is torch {env.torch.raw if env.torch else '?'}",
            "use backend='export' here, or torch._inductor.aoti_compile_and_package directly",
        )


#: torch_tensorrt packages its own engines with AOTInductor (``output_format="aot_inductor"``) from 2.8; its
#: fake ``tensorrt::Engine`` with ``__obj_unflatten__`` (what AOTInductor traces engines with) from 2.6
ENGINES_FROM = "2.8"
FAKE_ENGINE_FROM = "2.6"


def engines_packageable(env: Environment) -> tuple[bool, str]:
    """Whether this stack's torch_tensorrt lets AOTInductor package programs holding TensorRT engines."""
    if env.torch_tensorrt is None:
        return False, "torch_tensorrt is not installed (the engines' runtime and fake class come with it)"
    release = env.torch_tensorrt.raw
    if not requires(f"torch_tensorrt>={FAKE_ENGINE_FROM}", env=env):
        return False, (
            f"torch_tensorrt {release} registers no fake tensorrt::Engine class with __obj_unflatten__, so "
            f"AOTInductor cannot trace its engines (torch_tensorrt >= {ENGINES_FROM} packages them)"
        )
    if not requires(f"torch_tensorrt>={ENGINES_FROM}", env=env):
        return False, (
            f"torch_tensorrt {release} does not package its engines with AOTInductor itself "
            f"(output_format='aot_inductor' arrives in {ENGINES_FROM}), so neither does trtshim"
        )
    return True, f"torch_tensorrt {release} >= {ENGINES_FROM}"


def check_engines(program: Any, env: Environment) -> None:
    """Refuse to package a program holding TensorRT engines where this torch_tensorrt cannot."""
    from trtshim.compat.programs.program import custom_ops

    if not any(op.namespace == "tensorrt" for op in custom_ops(program)):
        return
    ok, why = engines_packageable(env)
    if not ok:
        raise BackendUnavailableError(
            f"cannot package TensorRT engines with AOTInductor: {why}",
            "save the module as it is (compat.save), or upgrade torch_tensorrt",
        )


def compile_files(program: Any, options: dict[str, Any]) -> list[str]:
    """AOTInductor's compiled files for ``program`` (paths in inductor's output folder)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OptionError(
            f"the inductor backend does not take option(s) {', '.join(unknown)}", f"its options are: {', '.join(OPTIONS)}"
        )
    configs = {**dict(options.get("inductor_configs") or {}), "aot_inductor.package": True}
    args, kwargs = program.example_inputs or ((), {})
    try:
        gm = program.module(check_guards=False) if requires("torch>=2.9") else program.module()
        files: Any = torch._inductor.aot_compile(gm, args, kwargs, options=configs)
    except Exception as exc:
        raise CompileError(f"AOTInductor failed: {type(exc).__name__}: {first_line(exc)}") from exc
    return [f for f in files if isinstance(f, str) and f]


def compiled(program: Any, options: dict[str, Any]) -> tuple[list[str], Any]:
    """(AOTInductor's compiled files for ``program``, the loaded model that runs them)."""
    files = compile_files(program, options)
    with tempfile.TemporaryDirectory(prefix="trtshim-aoti-") as folder:  # the runner loads from a package
        path = os.path.join(folder, "model.pt2")
        write_archive(path, program, files, {})
        return files, load_runner(path)


def write_archive(fh: Any, program: Any, files: list[str], extra_files: dict[str, str]) -> None:
    """The program and its compiled files in one PT2 archive (``package_pt2``; torch 2.6-2.7: torch's
    package with the program nested in it)."""
    aoti: Any = {MODEL: files}
    if requires(f"torch>={PT2_TORCH}") and not holds_objects(program):
        from torch.export.pt2_archive._package import package_pt2

        package_pt2(fh, exported_programs={MODEL: program}, aoti_files=aoti, extra_files=extra_files)
        return
    from torch._inductor.package import package_aoti

    package = io.BytesIO()
    package_aoti(package, aoti)
    program_bytes = io.BytesIO()
    torch.export.save(program, program_bytes)
    package.seek(0)
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(fh, "w") as out:
        infos = src.infolist()
        tops = {i.filename.split("/", 1)[0] for i in infos}
        # torch >= 2.8 keeps every record under one top folder ("archive/") and its reader insists on it
        top = f"{next(iter(tops))}/" if len(tops) == 1 and all("/" in i.filename for i in infos) else ""
        for info in infos:  # torch's members as torch wrote them, then ours
            out.writestr(info, src.read(info))
        stamp = (1980, 1, 1, 0, 0, 0)
        out.writestr(zipfile.ZipInfo(top + PROGRAM_MEMBER, date_time=stamp), program_bytes.getvalue())
        for name, text in extra_files.items():
            out.writestr(zipfile.ZipInfo(f"{top}extra/{name}", date_time=stamp), text)


def holds_objects(program: Any) -> bool:
    """Whether ``program`` holds TorchBind objects (engines): ``package_pt2`` writes them and AOTInductor's
    copies to the same member (``data/constants/custom_obj_0``) and fails ("Tried to serialize file twice":
    measured on torch 2.13-2.15; 2.8 does not), so such a program is nested as on torch 2.6-2.7."""
    return any(spec.kind.name == "CUSTOM_OBJ" for spec in program.graph_signature.input_specs)


def nested_program(names: list[str]) -> str | None:
    """The member holding the program of a package with the program nested (None: torch's own layout)."""
    return next((n for n in names if n.rsplit("/", 1)[-1] == PROGRAM_MEMBER), None)


def is_package(names: list[str]) -> bool:
    return any(f"/{AOTI_DIR}" in n or n.startswith(AOTI_DIR) for n in names)


def check_members(path: str, names: list[str]) -> None:
    """Refuse a package (at ``path``, its member ``names``) whose compiled members could land outside the
    folder they are extracted to."""
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise CorruptedArtifactError(
                f"{path} holds the member {name!r}, which would be extracted outside its folder",
                "the file was crafted or damaged; do not load it",
            )


def extracted_files(path: str, owner: Any) -> list[str]:
    """The compiled files of the package at ``path``, extracted into a folder that lives as long as
    ``owner`` (``save`` of a loaded module writes them again)."""
    folder = tempfile.mkdtemp(prefix="trtshim-aoti-")
    weakref.finalize(owner, shutil.rmtree, folder, True)
    out = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if f"/{AOTI_DIR}{MODEL}/" in name or name.startswith(f"{AOTI_DIR}{MODEL}/"):
                target = os.path.join(folder, os.path.basename(name))
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                out.append(target)
    return out


def program_without_code(source: Any) -> Any | None:
    """The exported program of the package ``source`` (a path or a file object) read without loading its
    compiled library: ``torch.export.load`` of a package also loads (and then drops) the library, which
    runs its code and holds its weights a second time. None where this torch lacks the reader it uses
    (``torch.export.pt2_archive._package``, torch >= 2.8: then ``torch.export.load``)."""
    try:
        from torch.export.pt2_archive._package import PT2ArchiveReader, _load_exported_programs
    except ImportError:
        return None
    with PT2ArchiveReader(source) as reader:
        programs = _load_exported_programs(reader, reader.get_file_names(), None)
    return programs.get("model")


def load_runner(path: str) -> Any:
    """The compiled model of the package at ``path`` (this runs its native code)."""
    try:
        return torch._inductor.aoti_load_package(path)
    except Exception as exc:
        raise CompileError(f"torch could not load the AOTInductor package {path}: {type(exc).__name__}: {first_line(exc)}") from exc
