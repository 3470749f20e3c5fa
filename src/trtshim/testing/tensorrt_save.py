"""Torch-TensorRT's own ``torch_tensorrt.save`` / ``torch_tensorrt.load``, release line by release line, as data.

trtshim never calls them (its ``save`` / ``load`` go through ``torch.export`` and the hybrid exporter);
the conformance tests check these rows against every release's source and the live package, and
``benchmarks/tensorrt_path.py`` uses ``save_plan`` to time upstream's path against trtshim's.
Every fact was read from the release's ``_compile.py``. Imports neither torch nor torch_tensorrt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from trtshim.compat.backends.tensorrt_api import row_for
from trtshim.errors import BackendUnavailableError, OptionError


@dataclass(frozen=True)
class SaveAPI:
    """``torch_tensorrt.save(module, file_path, *, ...)`` on one line (absent in 2.2)."""

    keyword_only: tuple[str, ...]  #: every parameter after ``file_path`` is keyword-only
    var_kwargs: bool  #: has ``**kwargs`` (2.8+)
    inputs_param: str  #: ``inputs`` (2.3–2.4) or ``arg_inputs`` (2.5+; ``inputs`` is an alias)
    retrace_default: bool  #: False up to 2.9, True from 2.10
    output_formats: frozenset[str]  #: accepted ``output_format`` values
    #: a TRT GraphModule needs example inputs even with ``retrace=False`` (2.3–2.5 re-run shape analysis)
    inputs_required: bool
    positional: tuple[str, ...] = ("module", "file_path")

_KW23 = ("output_format", "inputs", "retrace")

_KW25 = ("output_format", "inputs", "arg_inputs", "kwarg_inputs", "retrace")

_KW28 = (*_KW25, "pickle_protocol")

_KW211 = (
    "extra_files",
    *_KW25[:-1],
    "retrace",
    "use_legacy_exporter",
    "pickle_protocol",
    "dynamic_shapes",
)

_FMT = frozenset({"exported_program", "torchscript"})

_S23 = SaveAPI(_KW23, False, "inputs", False, _FMT, inputs_required=True)

_S25 = SaveAPI(_KW25, False, "arg_inputs", False, _FMT, inputs_required=True)

_S26 = replace(_S25, inputs_required=False)

_S28 = replace(_S26, keyword_only=_KW28, var_kwargs=True, output_formats=_FMT | {"aot_inductor"})

_S210 = replace(_S28, retrace_default=True)

_S211 = replace(_S210, keyword_only=_KW211)

_S212 = replace(_S211, output_formats=_S211.output_formats | {"executorch"})

SAVE: dict[str, SaveAPI | None] = {
    "2.2": None,
    "2.3": _S23,
    "2.4": _S23,
    "2.5": _S25,
    "2.6": _S26,
    "2.7": _S26,
    "2.8": _S28,
    "2.9": _S28,
    "2.10": _S210,
    "2.11": _S211,
    "2.12": _S212,
    "2.13": _S212,
    "2.14": _S212,
}

@dataclass(frozen=True)
class LoadAPI:
    """``torch_tensorrt.load(file_path, ...)`` on one line (absent in 2.2)."""

    positional: tuple[str, ...]
    keyword_only: tuple[str, ...]
    var_kwargs: bool
    first_try: Literal["torch.jit.load", "torch.export.load"]

_L23 = LoadAPI(("file_path",), (), False, "torch.jit.load")

_L211 = LoadAPI(("file_path", "extra_files"), (), True, "torch.export.load")

LOAD: dict[str, LoadAPI | None] = {
    "2.2": None,
    **{f"2.{minor}": _L23 for minor in range(3, 11)},
    "2.11": _L211,
    "2.12": _L211,
    "2.13": _L211,
    "2.14": replace(_L211, keyword_only=("format",)),
}

def save_api(release: str) -> SaveAPI | None:
    return row_for(SAVE, release)

def load_api(release: str) -> LoadAPI | None:
    return row_for(LOAD, release)

def save_plan(
    release: str,
    *,
    retrace: bool,
    inputs: Sequence[Any] | None,
    output_format: str = "exported_program",
) -> dict[str, Any]:
    """Keyword arguments for ``torch_tensorrt.save(module, file_path, **kwargs)`` on ``release``.

    ``retrace`` is always explicit (its default flipped to True in 2.10) and tensor ``inputs`` go under
    the name the release reads.
    """
    api = save_api(release)
    if api is None:
        raise BackendUnavailableError(
            f"torch_tensorrt {release} has no torch_tensorrt.save",
            "on 2.2 compile with output_format='exported_program' and use torch.export.save",
        )
    if output_format not in api.output_formats:
        raise OptionError(
            f"torch_tensorrt {release} save cannot write output_format={output_format!r}",
            f"choose one of {', '.join(sorted(api.output_formats))}",
        )
    if inputs is None and (retrace or api.inputs_required):
        raise OptionError(
            f"torch_tensorrt {release} save needs example inputs here (retrace={retrace})",
            "pass the example tensors the module was compiled with",
        )
    kwargs: dict[str, Any] = {"output_format": output_format, "retrace": retrace}
    if inputs is not None:
        kwargs[api.inputs_param] = list(inputs)
    return kwargs
