"""What ``load`` checks before deserializing: the export schema, the ops and pytree types the program
needs (a module named inside a file is imported only when the caller allows it)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

import torch

from trtshim._version import __version__
from trtshim.compat.artifact.manifest import MANIFEST_SCHEMA
from trtshim.compat.artifact.record import export_schema_version
from trtshim.compat.artifact.trust import pickle_scan
from trtshim.compat.environment import Environment
from trtshim.compat.programs import pytree_types
from trtshim.compat.programs.custom_ops import is_registered
from trtshim.compat.versions import release_line
from trtshim.errors import (
    ArtifactError,
    IncompatibleArtifactError,
    MissingOpError,
    MissingTypeError,
)

ALLOW_IMPORTS_ENV = "TRTSHIM_ALLOW_IMPORTS"


def check_compatible(manifest: dict[str, Any], env: Environment, *, migrating: bool = False) -> str | None:
    """Refuse an artifact this environment cannot load; the caveat to announce once it has loaded (a
    newer minor schema), else None. Announced only after a successful load: where the load then fails,
    the refusal says it all, without a warning in front of it. ``migrating``: the archive's older schema
    major is migrated on load (``migrations``), so it is no refusal."""
    if int(manifest.get("schema", 0)) > MANIFEST_SCHEMA:
        raise IncompatibleArtifactError(
            f"written by trtshim {manifest.get('trtshim')} with manifest schema {manifest['schema']}; "
            f"this trtshim ({__version__}) reads up to {MANIFEST_SCHEMA}",
            "upgrade trtshim",
        )
    saved = manifest.get("export_schema") or [0, 0]
    here = export_schema_version()
    saved_torch = manifest.get("environment", {}).get("torch")
    if saved[0] != here[0] and not migrating:
        raise IncompatibleArtifactError(
            f"saved by torch {saved_torch} (export schema {saved[0]}.x); torch {torch.__version__} reads "
            f"schema {here[0]}.x only",
            f"load it on torch {release_line(saved_torch or '') or saved_torch}, or re-export the model here",
        )
    if tuple(saved) > tuple(here):
        return (
            f"artifact saved by a newer torch ({saved_torch}, export schema {saved[0]}.{saved[1]}) than this one "
            f"({torch.__version__}, {here[0]}.{here[1]})"
        )
    return None


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
    wanted = {str(op["module"]) for op in needed if op.get("module") and not is_registered(op["qualname"])}
    imported = _import_allowed(wanted, allow_imports, MissingOpError, "ops")
    # ops of unknown origin (older artifacts): their namespace is the usual package name (torchao::)
    guesses = {str(op["namespace"]) for op in needed if not op.get("module") and not is_registered(op["qualname"])}
    imported += _import_allowed(guesses, allow_imports, MissingOpError, "ops", missing_ok=True)
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
            else "import the library that defines them first, or pass load(..., allow_imports=[...]) naming it",
        )
    return imported


def _import_allowed(
    modules: set[str],
    allow_imports: Sequence[str] | None,
    error: type[ArtifactError],
    what: str,
    missing_ok: bool = False,
) -> list[str]:
    """Import those of ``modules`` the caller allows (the rest stay unimported); the ones imported.
    ``missing_ok``: a module that does not exist is passed over (a guessed name)."""
    imported: list[str] = []
    allowed = allowed_imports(allow_imports)
    for module in sorted(m for m in modules if pickle_scan.module_allowed(m, allowed)):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if missing_ok and exc.name == module:
                continue
            raise error(
                f"importing {module} (allowed by the caller) to register the artifact's {what} failed: {exc}",
                f"check that {module} is importable here",
            ) from exc
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
