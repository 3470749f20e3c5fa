"""The errors and warnings trtshim raises. Importing this module imports no torch.

Every error carries a one-line ``reason`` and a ``hint`` (what to do about it);
the original exception, where there is one, is chained as ``__cause__``.
"""

from __future__ import annotations


def first_line(text: object) -> str:
    """The first non-empty line of ``str(text)`` (an exception's message, a log record): reasons are one line."""
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


class TrtShimError(Exception):
    """Base class of every error trtshim raises on purpose."""

    default_hint = "see `trtshim doctor` for the state of this environment"

    def __init__(self, reason: str, hint: str | None = None) -> None:
        self.reason = first_line(reason) or type(self).__name__
        self.hint = hint if hint is not None else self.default_hint
        super().__init__(f"{self.reason}\n  hint: {self.hint}")


# --- artifacts (save / load) ------------------------------------------------------------------


class ArtifactError(TrtShimError):
    """Something is wrong with an artifact file."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """The path names no file."""

    default_hint = "check the path; `trtshim inspect FILE` reads an artifact without loading it"


class NotAnArtifactError(ArtifactError):
    """The file is not a torch.export, AOTInductor or TorchScript archive."""

    default_hint = "pass a file written by trtshim.compat.save or torch.export.save"


class CorruptedArtifactError(ArtifactError):
    """A byte, member, name or manifest field differs from what was saved (digests, zip structure, schema)."""

    default_hint = "the file is damaged (truncated copy or partial download?): save it again"


class ArtifactWriteError(ArtifactError):
    """``save`` could not write the file (a full disk); the file at the path, if any, is unchanged."""

    default_hint = "free space on that filesystem and save again; the previous file at the path is unchanged"


class SignatureError(ArtifactError):
    """A signature is missing, malformed, or not made by the key the caller trusts."""

    default_hint = "get the artifact and its .sig from their source again, and check the public key"


class MissingManifestError(ArtifactError):
    """``strict=True`` and the archive carries no trtshim manifest (a plain torch.export archive)."""

    default_hint = "re-save it with trtshim.compat.save, or load with strict=False to skip provenance checks"


class IncompatibleArtifactError(ArtifactError):
    """The artifact cannot run on this stack: another export schema, engine ABI, GPU, or the torch that compiled its code."""

    default_hint = "load it with the torch release line it was saved with (see `trtshim inspect FILE`)"


class MissingOpError(ArtifactError):
    """The program calls custom ops that are not registered here (their module is named in the manifest)."""

    default_hint = (
        "import the module that defines the op before loading, or pass load(..., allow_imports=[...])"
    )


class UnsafeArtifactError(ArtifactError):
    """The artifact would run code when loaded (a pickle importing something torch's own pickles never do)."""

    default_hint = "do not load files from untrusted sources"


class MissingTypeError(ArtifactError):
    """The program's inputs or outputs use a pytree node type that is not registered in this process."""

    default_hint = (
        "import the module that defines the type before loading, or pass load(..., allow_imports=[...])"
    )


# --- compile / call ---------------------------------------------------------------------------


class BackendError(TrtShimError):
    """A backend cannot be used or failed."""


class BackendUnavailableError(BackendError):
    """The asked-for backend cannot run here (no torch_tensorrt, no GPU it runs on, a torch without the feature)."""

    default_hint = "use backend='auto' or backend='export'; `trtshim doctor` says what is missing"


class CompileError(BackendError):
    """Export or the backend failed; the reason carries the backend's own cause (TensorRT's logged error too)."""

    default_hint = (
        "the chained exception is the backend's own error; `trtshim doctor` shows the versions in use"
    )


class OptionError(TrtShimError, TypeError):
    """An option the chosen backend does not accept."""

    default_hint = "see the backend's options in trtshim.compat.backends"


class InputMismatchError(TrtShimError, ValueError):
    """Inputs given to a compiled module do not match what it was compiled for."""

    default_hint = "pass inputs with the count, rank, dtype and device given at compile time"


class UnsupportedModelError(TrtShimError, TypeError):
    """``compile`` was given something that is not an ``nn.Module``."""

    default_hint = "compile an nn.Module (or a callable wrapped in one)"


# --- warnings ---------------------------------------------------------------------------------


class TrtShimWarning(UserWarning):
    """Base class of every warning trtshim emits."""


class BackendFallbackWarning(TrtShimWarning):
    """backend='auto' could not use TensorRT and fell back to the torch-only backend."""


class EngineCacheWarning(TrtShimWarning):
    """An engine cache entry failed its checks (corrupt, foreign, old format); it was removed and rebuilt."""


class DimBoundWarning(TrtShimWarning):
    """A dim without a max was bounded for the TensorRT engine (``unbounded_dim_max``); the module
    refuses sizes beyond the bound."""


class DroppedFlagWarning(TrtShimWarning):
    """The TensorRT builder built an engine without an option that was asked for (e.g. hardware
    compatibility on TensorRT-RTX); the manifest records what was applied."""


class ExportFallbackWarning(TrtShimWarning):
    """torch.export failed in trtshim's default mode (strict or not) and the program was exported in the
    other one; ``compile(..., strict=...)`` chooses outright."""


class DecompositionFallbackWarning(TrtShimWarning):
    """torch's ``run_decompositions`` failed on an exported program; trtshim kept the program as
    ``torch.export.export`` returned it (training IR), which torch's own round trip runs too."""


class ProvenanceWarning(TrtShimWarning):
    """An artifact has no trtshim manifest, so nothing about its origin could be checked."""


class ArtifactCompatibilityWarning(TrtShimWarning):
    """An artifact comes from a different (but loadable) stack; behaviour may differ."""


class ArtifactUpgradeWarning(ArtifactCompatibilityWarning):
    """An artifact of an older torch.export schema was migrated in memory to load here
    (``trtshim upgrade OLD NEW`` rewrites the file once; ``load(..., strict=True)`` refuses instead)."""


def announce(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the caller's code: the first frame outside trtshim (a fixed
    ``stacklevel`` would name trtshim's own wrappers, e.g. the tracing lock's)."""
    import sys
    import warnings

    frame, level = sys._getframe(1), 2  # stacklevel 2: announce's caller
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(("trtshim.", "contextlib")):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    warnings.warn(message, category, stacklevel=level)
