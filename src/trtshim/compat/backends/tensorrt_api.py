"""Torch-TensorRT's compile surface, release line by release line, as data.

The tables say how to call ``torch_tensorrt.dynamo.compile(exported_program, inputs, **kwargs)`` on
each release 2.2–2.14; ``translate`` turns trtshim's stable option names into that release's call
(upstream's own save / load surface, which trtshim does not call, is in ``trtshim.testing.tensorrt_save``). Every fact here was read
from the release's own Python source (``dynamo/_compiler.py``, ``_compile.py``, ``dynamo/_defaults.py``,
``dynamo/_settings.py``); ``tests/test_tensorrt_conformance.py`` re-checks them against the wheels.

Importing this module imports neither torch nor torch_tensorrt. Torch dtypes in a plan are
``TorchDType`` markers; ``CallPlan.resolved_kwargs()`` turns them into ``torch.dtype`` objects.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from trtshim.compat import versions
from trtshim.errors import BackendUnavailableError, OptionError

__all__ = [
    "COMPILE",
    "OPTIONS",
    "PASS_THROUGH",
    "PRECISIONS",
    "CallPlan",
    "CompileAPI",
    "TorchDType",
    "compile_api",
    "release_line",
    "row_for",
    "translate",
]

#: trtshim's precision names -> the torch dtype each stands for (by name: no torch here); both backends read it
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

#: trtshim option names passed to ``dynamo.compile`` under the same name where the release has it.
PASS_THROUGH = (
    "min_block_size",
    "torch_executed_ops",
    "workspace_size",
    "version_compatible",
    "hardware_compatible",
)
_BOOL_OPTIONS = (
    "refit",
    "truncate_double",
    "debug",
    "use_python_runtime",
    "version_compatible",
    "hardware_compatible",
)
_INT_OPTIONS = {"min_block_size": 1, "workspace_size": 0}  # name -> smallest valid value
#: Every option ``translate`` accepts (stable across releases).
OPTIONS = ("refit", "truncate_double", "debug", "use_python_runtime", *PASS_THROUGH)

PrecisionMechanism = Literal["enabled_precisions", "enabled_precisions+weak_typing", "autocast"]


@dataclass(frozen=True)
class TorchDType:
    """A ``torch.<name>`` dtype, named without importing torch."""

    name: str

    def resolve(self) -> Any:
        import torch

        return getattr(torch, self.name)


@dataclass(frozen=True)
class CompileAPI:
    """How to call ``torch_tensorrt.dynamo.compile(exported_program, inputs, **kwargs)`` on one line."""

    #: ``precision`` mechanism. ``enabled_precisions``: the kernel-precision set (weak typing, the
    #: default up to 2.9). ``enabled_precisions+weak_typing``: the same, but ``use_explicit_typing``
    #: defaults to True and then asserts ``enabled_precisions == {f32}``, so it needs
    #: ``use_explicit_typing=False`` (2.10–2.12). ``autocast``: ``enabled_precisions`` is gone (TRT 11 is
    #: strongly typed); ``enable_autocast=True`` + ``autocast_low_precision_type`` lowers every op (2.13+).
    precision: PrecisionMechanism
    #: ``enable_autocast`` / ``autocast_low_precision_type`` exist (2.10+): the mechanism a strongly
    #: typed TensorRT (TensorRT-RTX) needs, since it overrides ``use_explicit_typing=False``
    autocast: bool
    bf16: bool  #: ``BuilderFlag.BF16`` is set for bf16 (2.3+; 2.2 raises on it)
    refit_param: str  #: ``refit`` (2.2–2.4), ``make_refittable`` (2.5), ``immutable_weights`` (2.6+)
    refit_inverted: bool  #: ``immutable_weights`` is ``not refit``
    truncate_param: str  #: ``truncate_long_and_double`` (2.2, also truncates int64) or ``truncate_double``
    debug_param: bool  #: a ``debug`` parameter exists (≤2.7); 2.8+ wraps the call in ``dynamo.Debugger``
    python_runtime_effective: bool  #: ``use_python_runtime`` selects the runtime (≤2.12); a no-op in 2.13+
    output_format: str | None  #: value needed to get a GraphModule back (2.2 returns an EP by default)
    pass_through: frozenset[str]  #: the ``PASS_THROUGH`` names that are parameters of ``dynamo.compile``
    #: second positional parameter. Positional use binds on every line (required in 2.2–2.4, ``=None`` after)
    #: where the engine profile of a dynamic dim comes from: ``shape_env`` (2.3+: the placeholders'
    #: ShapeEnv, ``var_to_range`` for min / max and the example hint ``var_to_val`` for opt, whatever the
    #: inputs say) or ``inputs`` (2.2: the min / opt / max shapes of ``torch_tensorrt.Input`` objects;
    #: plain tensors build a static engine)
    profile_source: str = "shape_env"
    inputs_param: str = "inputs"
    inputs_alias: str | None = None  #: keyword-only alias of the inputs (``arg_inputs``, 2.5+)
    inputs_keyword: str | None = None  #: keyword to pass inputs under; None = positionally (preferred)


_C22 = CompileAPI(
    precision="enabled_precisions",
    autocast=False,
    bf16=False,
    refit_param="refit",
    refit_inverted=False,
    truncate_param="truncate_long_and_double",
    debug_param=True,
    python_runtime_effective=True,
    output_format="graph_module",
    pass_through=frozenset(PASS_THROUGH) - {"hardware_compatible"},
    profile_source="inputs",
)
# 2.3: truncate_double + hardware_compatible added, output_format removed (always a GraphModule), BF16 flag.
_C23 = replace(
    _C22,
    bf16=True,
    truncate_param="truncate_double",
    output_format=None,
    pass_through=frozenset(PASS_THROUGH),
    profile_source="shape_env",
)
_C25 = replace(_C23, refit_param="make_refittable", inputs_alias="arg_inputs")  # old `refit` -> warning
# 2.6: immutable_weights (default True); `refit`/`make_refittable` now raise unless immutable_weights=False.
_C26 = replace(_C25, refit_param="immutable_weights", refit_inverted=True)
_C28 = replace(_C26, debug_param=False)  # `debug` left the signature; **kwargs debug=True only warns
# USE_EXPLICIT_TYPING default -> True; rule-based autocast added
_C210 = replace(_C28, precision="enabled_precisions+weak_typing", autocast=True)
_C213 = replace(_C210, precision="autocast", python_runtime_effective=False)  # runtimes merged

#: ``dynamo.compile`` by release line ("2.6") or exact release ("2.6.1", overrides the line; none needed).
COMPILE: dict[str, CompileAPI] = {
    "2.2": _C22,
    "2.3": _C23,
    "2.4": _C23,  # + timing_cache_path only
    "2.5": _C25,
    "2.6": _C26,  # 2.6.1: same compile
    "2.7": _C26,
    "2.8": _C28,
    "2.9": _C28,
    "2.10": _C210,
    "2.11": _C210,
    "2.12": _C210,  # 2.12.1: same compile
    "2.13": _C213,
    "2.14": _C213,
}


@dataclass
class CallPlan:
    """One ``dynamo.compile`` call: ``compile(ep, inputs, **kwargs)`` or ``compile(ep, **{kw: inputs}, ...)``."""

    inputs_keyword: str | None  #: None: pass the inputs as the second positional argument
    kwargs: dict[str, Any]
    notes: list[str] = field(default_factory=list)  #: why each translation was made
    cast_model_to: str | None = None  #: torch dtype name to cast the model to first (no line needs it today)
    debugger: bool = False  #: wrap the call in ``torch_tensorrt.dynamo.Debugger(log_level="debug")``

    def resolved_kwargs(self) -> dict[str, Any]:
        """``kwargs`` with ``TorchDType`` markers replaced by torch dtypes (imports torch)."""
        return {name: _resolve(value) for name, value in self.kwargs.items()}


def _resolve(value: Any) -> Any:
    if isinstance(value, TorchDType):
        return value.resolve()
    if isinstance(value, (set, frozenset)):
        return {_resolve(item) for item in value}
    return value


def release_line(release: str) -> str:
    """``"2.6.1+cu124"`` -> ``"2.6"`` (``versions.release_line``; a string that is no version is an error)."""
    line = versions.release_line(release)
    if line is None:
        raise OptionError(f"{release!r} is not a torch_tensorrt version", "pass e.g. '2.6.1'")
    return line


def row_for(table: Mapping[str, Any], release: str) -> Any:
    try:
        exact = Version(release).base_version
    except InvalidVersion:
        exact = release
    for key in (exact, release_line(release)):
        if key in table:
            return table[key]
    raise BackendUnavailableError(
        f"torch_tensorrt {release} is not in trtshim's translation table",
        f"supported release lines: {', '.join(k for k in COMPILE)}",
    )


def compile_api(release: str) -> CompileAPI:
    return row_for(COMPILE, release)


def _checked(options: Mapping[str, Any]) -> dict[str, Any]:
    hint = f"valid tensorrt options: {', '.join(OPTIONS)}"
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name not in OPTIONS:
            raise OptionError(f"unknown tensorrt option {name!r}", hint)
        if name in _BOOL_OPTIONS:
            if not isinstance(value, bool):
                raise OptionError(f"tensorrt option {name} must be True or False, not {value!r}", hint)
        elif name in _INT_OPTIONS:
            low = _INT_OPTIONS[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise OptionError(f"tensorrt option {name} must be an int >= {low}, not {value!r}", hint)
        else:  # torch_executed_ops
            if isinstance(value, str) or not isinstance(value, Collection):
                raise OptionError(
                    "tensorrt option torch_executed_ops must be a collection of op names",
                    "e.g. {'torch.ops.aten.add.Tensor'}",
                )
            if not all(isinstance(op, str) for op in value):
                raise OptionError(
                    "torch_executed_ops takes op names as str", "e.g. 'torch.ops.aten.add.Tensor'"
                )
            value = frozenset(value)
        out[name] = value
    return out


def _cannot(release: str, what: str, hint: str) -> OptionError:
    return OptionError(f"torch_tensorrt {release} cannot honour {what}", hint)


def translate(
    release: str,
    *,
    precision: str = "fp32",
    options: Mapping[str, Any] | None = None,
    strongly_typed: bool = False,
) -> CallPlan:
    """The ``dynamo.compile`` call that means ``precision`` and ``options`` on ``release``.

    ``strongly_typed``: the TensorRT underneath builds strongly typed networks only (TensorRT-RTX),
    so reduced precision has to be in the graph (autocast), not a builder flag.
    Raises ``OptionError`` for an unknown option or precision, and for one this release cannot honour.
    """
    api = compile_api(release)
    if strongly_typed and api.precision != "autocast" and precision != "fp32":
        if not api.autocast:
            raise _cannot(
                release,
                f"precision={precision!r} on a strongly typed TensorRT",
                "this release has no autocast; cast the model to the dtype before compiling",
            )
        api = replace(api, precision="autocast")
    opts = _checked(options or {})
    plan = CallPlan(inputs_keyword=api.inputs_keyword, kwargs={})
    kw, notes = plan.kwargs, plan.notes
    if api.inputs_keyword is None:
        notes.append(f"inputs passed positionally (binds to `{api.inputs_param}`)")

    # --- precision
    if precision not in PRECISIONS:
        raise OptionError(f"unknown precision {precision!r}", f"choose one of {', '.join(PRECISIONS)}")
    dtype = TorchDType(PRECISIONS[precision])
    if precision == "bf16" and not api.bf16:
        raise _cannot(release, "precision='bf16'", "TensorRT 8.6 (torch_tensorrt 2.2) has no BF16; use fp16")
    if api.precision == "autocast":
        if precision == "fp32":
            notes.append("fp32: strongly typed, precision follows the model's dtype; nothing to pass")
        else:
            kw["enable_autocast"] = True
            kw["autocast_low_precision_type"] = dtype
            why = (
                "TensorRT-RTX is strongly typed: it overrides use_explicit_typing=False and the "
                "engine stays FP32"
                if strongly_typed and compile_api(release).precision != "autocast"
                else "enabled_precisions is gone (TRT 11 strong typing)"
            )
            notes.append(
                f"{precision}: {why}; rule-based autocast lowers every op when no calibration data "
                "is given; outputs come back in the low dtype"
            )
    else:
        kw["enabled_precisions"] = frozenset({dtype})
        notes.append(f"{precision}: enabled_precisions={{torch.{dtype.name}}}")
        if api.precision == "enabled_precisions+weak_typing" and precision != "fp32":
            kw["use_explicit_typing"] = False
            notes.append("use_explicit_typing=False: its default True asserts enabled_precisions == {f32}")

    if api.output_format is not None:
        kw["output_format"] = api.output_format
        notes.append(f"output_format={api.output_format!r}: the default returns an ExportedProgram")

    # --- options
    if "refit" in opts:
        refit = opts["refit"]
        if api.refit_inverted:
            kw[api.refit_param] = not refit
            notes.append(
                f"refit={refit} -> {api.refit_param}={not refit} (the old names raise unless it is False)"
            )
        else:
            kw[api.refit_param] = refit
            notes.append(f"refit={refit} -> {api.refit_param}={refit}")
    if "truncate_double" in opts:
        kw[api.truncate_param] = opts["truncate_double"]
        if api.truncate_param != "truncate_double":
            notes.append(f"truncate_double -> {api.truncate_param} (also truncates int64 to int32)")
    if "debug" in opts:
        if api.debug_param:
            kw["debug"] = opts["debug"]
        elif opts["debug"]:
            plan.debugger = True
            notes.append("debug=True -> run inside torch_tensorrt.dynamo.Debugger(log_level='debug')")
        else:
            notes.append("debug=False: no `debug` parameter here; not wrapping in Debugger is the default")
    if "use_python_runtime" in opts:
        if api.python_runtime_effective:
            kw["use_python_runtime"] = opts["use_python_runtime"]
        elif opts["use_python_runtime"]:
            raise _cannot(
                release,
                "use_python_runtime=True",
                "2.13+ merged the runtimes (the flag is a deprecated no-op); drop the option",
            )
        else:
            notes.append("use_python_runtime=False not passed: 2.13+ picks the C++ runtime when available")
    for name in PASS_THROUGH:
        if name not in opts:
            continue
        if name in api.pass_through:
            kw[name] = opts[name]
        elif opts[name] is False:
            notes.append(f"{name}=False not passed: absent here, and off is what the release does")
        else:
            raise _cannot(
                release, f"{name}={opts[name]!r}", f"`{name}` is not a dynamo.compile parameter here"
            )
    return plan


