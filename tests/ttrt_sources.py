"""Read torch_tensorrt's Python API from release wheels (never importing it), and check calls against it.

Wheels are cached outside the repository (``$TRTSHIM_WHEEL_CACHE`` or ``~/.cache/trtshim/wheels``) and
downloaded with ``pip download --no-deps`` when missing. Signatures are rebuilt from the source with
``ast`` as ``inspect.Signature`` objects, so a planned call is checked with ``Signature.bind``.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RELEASES = (
    "2.2.0",
    "2.3.0",
    "2.4.0",
    "2.5.0",
    "2.6.0",
    "2.6.1",
    "2.7.0",
    "2.8.0",
    "2.9.0",
    "2.10.0",
    "2.11.0",
    "2.12.0",
    "2.12.1",
    "2.13.0",
    "2.14.0",
)
# every release has a cp311 Linux x86_64 wheel; 2.2.0 only as manylinux_2_34
_PLATFORMS = ("manylinux_2_34", "manylinux_2_31", "manylinux_2_28", "manylinux_2_27", "manylinux_2_17")
_FILES = {
    "compiler": "torch_tensorrt/dynamo/_compiler.py",
    "toplevel": "torch_tensorrt/_compile.py",
    "defaults": "torch_tensorrt/dynamo/_defaults.py",
    "settings": "torch_tensorrt/dynamo/_settings.py",
    "exporter": "torch_tensorrt/dynamo/_exporter.py",
    "interpreter": "torch_tensorrt/dynamo/conversion/_TRTInterpreter.py",
    "partition_common": "torch_tensorrt/dynamo/partitioning/common.py",
    "utils": "torch_tensorrt/dynamo/utils.py",
    "dynamo_init": "torch_tensorrt/dynamo/__init__.py",
    "debugger": "torch_tensorrt/dynamo/debug/_Debugger.py",
    "plugin_converter": "torch_tensorrt/dynamo/conversion/plugins/_generate_plugin_converter.py",
    "meta_ops": "torch_tensorrt/dynamo/runtime/meta_ops/register_meta_ops.py",
}
INPUT_NAMES = frozenset({"inputs", "arg_inputs"})


def cache_dir() -> Path:
    return Path(os.environ.get("TRTSHIM_WHEEL_CACHE") or Path.home() / ".cache" / "trtshim" / "wheels")


def cached_wheel(version: str, folder: Path) -> Path | None:
    found = sorted(folder.glob(f"torch_tensorrt-{version}-cp311-*.whl"))  # not torch_tensorrt_rtx-*
    return found[0] if found else None


def pip_command() -> list[str] | None:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    exe = shutil.which("pip3") or shutil.which("pip")
    return [exe] if exe else None


def download(versions: list[str], folder: Path, timeout: float = 600) -> dict[str, str]:
    """Fetch the missing cp311 x86_64 wheels in parallel; returns ``{version: error}`` for failures."""
    pip = pip_command()
    if pip is None:
        return dict.fromkeys(versions, "no pip found to download wheels")
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for tag in _PLATFORMS for arg in ("--platform", f"{tag}_x86_64")]

    def one(version: str) -> tuple[str, str | None]:
        cmd = [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.11"]
        cmd += ["--implementation", "cp", *platforms, "-d", str(folder), f"torch-tensorrt=={version}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as exc:
            return version, str(exc)
        if cached_wheel(version, folder) is None:
            return version, (done.stderr.strip().splitlines() or ["pip download failed"])[-1]
        return version, None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return {v: err for v, err in pool.map(one, versions) if err is not None}


@dataclass
class Function:
    """A function read from source: its rebuilt signature and its AST."""

    name: str
    signature: inspect.Signature
    node: ast.FunctionDef
    defaults: dict[str, Any]  # literal defaults (``ast.literal_eval``); others as their source text

    @property
    def var_kwargs(self) -> str | None:
        return next((p.name for p in self.signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    def names(self, *kinds: object) -> tuple[str, ...]:
        return tuple(p.name for p in self.signature.parameters.values() if p.kind in kinds)

    def kwargs_reads(self) -> set[str]:
        """Names the body reads out of ``**kwargs``: ``kwargs["x"]``, ``kwargs.get("x")``, ``"x" in kwargs``."""
        var = self.var_kwargs
        found: set[str] = set()
        if var is None:
            return found

        def is_var(node: ast.AST) -> bool:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # kwargs.keys()
                node = node.func.value
            return isinstance(node, ast.Name) and node.id == var

        for node in ast.walk(self.node):
            if (
                isinstance(node, ast.Subscript)
                and is_var(node.value)
                and isinstance(node.slice, ast.Constant)
            ):
                found.add(str(node.slice.value))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "pop")
                and is_var(node.func.value)
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value))
            elif (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Constant)
                and isinstance(node.ops[0], (ast.In, ast.NotIn))
                and is_var(node.comparators[0])
            ):
                found.add(str(node.left.value))
        return found


def _default(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def parse_function(source: str, name: str, cls: str | None = None) -> Function | None:
    """The module-level function ``name`` (or method of class ``cls``) in ``source``, or None."""
    body = ast.parse(source).body
    if cls is not None:
        body = next((n.body for n in body if isinstance(n, ast.ClassDef) and n.name == cls), [])
    for node in body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            break
    else:
        return None
    a = node.args
    params: list[inspect.Parameter] = []
    defaults: dict[str, Any] = {}
    positional: list[tuple[ast.arg, inspect._ParameterKind]] = [
        (arg, inspect.Parameter.POSITIONAL_ONLY) for arg in a.posonlyargs
    ]
    positional += [(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD) for arg in a.args]
    first_default = len(positional) - len(a.defaults)
    for i, (arg, kind) in enumerate(positional):
        default = inspect.Parameter.empty
        if i >= first_default:
            defaults[arg.arg] = default = _default(a.defaults[i - first_default])
        params.append(inspect.Parameter(arg.arg, kind, default=default))
    if a.vararg:
        params.append(inspect.Parameter(a.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    for arg, kw_default in zip(a.kwonlyargs, a.kw_defaults):
        default = inspect.Parameter.empty
        if kw_default is not None:
            defaults[arg.arg] = default = _default(kw_default)
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY, default=default))
    if a.kwarg:
        params.append(inspect.Parameter(a.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    return Function(name, inspect.Signature(params), node, defaults)


def class_fields(source: str, name: str) -> set[str]:
    """Annotated field names of class ``name`` (e.g. ``CompilationSettings``)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {
                s.target.id
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            }
    return set()


def module_constants(source: str) -> dict[str, Any]:
    """``NAME = <literal>`` assignments at module level (non-literals as source text)."""
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = _default(node.value)
    return out


def assigned_literal(func: Function, variable: str) -> Any:
    """The literal first assigned to ``variable`` inside ``func`` (e.g. ``accepted_formats``)."""
    for node in ast.walk(func.node):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == variable for t in node.targets
        ):
            return _default(node.value)
    return None


def first_call(func: Function, candidates: tuple[str, ...]) -> str | None:
    """Which dotted callee of ``candidates`` appears first in ``func``'s code (docstring excluded)."""
    hits: list[tuple[int, int, str]] = []
    for node in ast.walk(func.node):
        if isinstance(node, ast.Attribute):
            dotted = ast.unparse(node)
            if dotted in candidates:
                hits.append((node.lineno, node.col_offset, dotted))
    return min(hits)[2] if hits else None


@dataclass
class ReleaseSources:
    """The API-relevant source files of one torch_tensorrt release."""

    version: str
    files: dict[str, str] = field(repr=False)

    @classmethod
    def from_wheel(cls, version: str, wheel: Path) -> ReleaseSources:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            files = {key: zf.read(path).decode() for key, path in _FILES.items() if path in names}
        return cls(version, files)

    def function(self, key: str, name: str, cls: str | None = None) -> Function | None:
        return parse_function(self.files[key], name, cls) if key in self.files else None

    @property
    def compile(self) -> Function:
        func = self.function("compiler", "compile")
        assert func is not None, f"{self.version}: no dynamo.compile"
        return func

    @property
    def save(self) -> Function | None:
        return self.function("toplevel", "save")

    @property
    def load(self) -> Function | None:
        return self.function("toplevel", "load")

    @property
    def settings_fields(self) -> set[str]:
        return class_fields(self.files["settings"], "CompilationSettings")

    @property
    def defaults(self) -> dict[str, Any]:
        return module_constants(self.files["defaults"])


# --- the binding checks ---------------------------------------------------------------------------

_EP, _INPUTS, _MODULE, _PATH = (object() for _ in range(4))


def _landed_in_var_kwargs(func: Function, name: str, settings_fields: Collection[str]) -> str:
    why = f"{name!r} is not a parameter of {func.name}(); it would land in **{func.var_kwargs}"
    if name in func.kwargs_reads():
        return f"{why} (the body reads it only as a deprecated alias)"
    if name in settings_fields:
        return f"{why} (a CompilationSettings field, but {func.name}() never forwards **kwargs: dropped)"
    return f"{why} and be silently dropped"


def _bind(func: Function, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, list[str]]:
    try:
        return func.signature.bind(*args, **kwargs), []
    except TypeError as exc:
        return None, [f"{func.name}{func.signature} does not bind: {exc}"]


def check_compile_call(
    func: Function,
    inputs_keyword: str | None,
    kwargs: Mapping[str, Any],
    *,
    inputs_param: str,
    settings_fields: Collection[str] = (),
) -> list[str]:
    """Problems with ``dynamo.compile(ep, inputs, **kwargs)`` (or inputs under ``inputs_keyword``).

    Every keyword must be a named parameter: **kwargs is never relied on, because ``dynamo.compile``
    only reads deprecated aliases from it and drops everything else.
    """
    problems: list[str] = []
    call_kwargs = dict(kwargs)
    if inputs_keyword is None:
        args: tuple[Any, ...] = (_EP, _INPUTS)
    else:
        if inputs_keyword in call_kwargs:
            problems.append(f"inputs keyword {inputs_keyword!r} is also among the options")
        args = (_EP,)
        call_kwargs[inputs_keyword] = _INPUTS
    bound, errors = _bind(func, args, call_kwargs)
    problems += errors
    if bound is None:
        return problems
    var = func.var_kwargs
    extra = bound.arguments.get(var, {}) if var else {}
    problems += [_landed_in_var_kwargs(func, name, settings_fields) for name in extra]
    where = next((name for name, value in bound.arguments.items() if value is _INPUTS), None)
    if where is None:
        where = next((name for name, value in extra.items() if value is _INPUTS), None)
    if where not in INPUT_NAMES:
        problems.append(f"the inputs bind to {where!r}, not to an inputs parameter ({sorted(INPUT_NAMES)})")
    elif inputs_keyword is None and where != inputs_param:
        problems.append(f"the inputs bind to {where!r}, the table says {inputs_param!r}")
    return problems


def check_save_call(func: Function, kwargs: Mapping[str, Any], *, inputs_param: str) -> list[str]:
    """Problems with ``torch_tensorrt.save(module, path, **kwargs)``."""
    bound, problems = _bind(func, (_MODULE, _PATH), kwargs)
    if bound is None:
        return problems
    var = func.var_kwargs
    problems += [
        _landed_in_var_kwargs(func, name, ()) for name in (bound.arguments.get(var, {}) if var else {})
    ]
    if "retrace" not in kwargs:
        problems.append("retrace is not passed explicitly (its default changed in 2.10)")
    if inputs_param not in func.names(inspect.Parameter.KEYWORD_ONLY):
        problems.append(f"save() has no keyword-only {inputs_param!r}")
    for name in set(kwargs) & INPUT_NAMES - {inputs_param}:
        problems.append(f"inputs passed as {name!r}, the table says {inputs_param!r}")
    formats = assigned_literal(func, "accepted_formats")
    if "output_format" in kwargs and formats is not None and kwargs["output_format"] not in formats:
        problems.append(f"output_format={kwargs['output_format']!r} is not in {sorted(formats)}")
    return problems


class _Attrs:
    """Stands for TensorRT objects the converter only passes along (a layer, an ITensor, ``trtp.op``)."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __getattr__(self, name: str) -> Any:
        return _Attrs()

    def __call__(self, *args: Any, **kwargs: Any) -> None:  # e.g. _LOGGER.debug(...)
        return None

    def get_output(self, index: int) -> str:
        return f"output{index}"


def plugin_converter(source: str, schema: Any, namespace: str, op_name: str) -> tuple[Any, list[dict]]:
    """A release's real ``custom_kernel_converter`` (from its source) for the op with ``schema``.

    Only TensorRT is replaced: the plugin records the attributes it is called with (returned list),
    tensors and layers are placeholders. The argument handling that CO-4 is about runs as released.
    """
    import numpy as np
    import torch

    module = ast.parse(source)
    outer = next(
        n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "_generate_plugin_converter"
    )
    inner = next(
        n for n in ast.walk(outer) if isinstance(n, ast.FunctionDef) and n.name == "custom_kernel_converter"
    )
    helpers = [
        n
        for n in module.body
        if isinstance(n, ast.FunctionDef) and not n.name.endswith("generate_plugin_converter")
    ]
    for fn in [inner, *helpers]:  # annotations name TensorRT types: drop them
        fn.returns = None
        for a in fn.args.args + fn.args.kwonlyargs:
            a.annotation = None
    calls: list[dict] = []
    tensor_names = [a.name for a in schema.arguments if "Tensor" in str(a.type)]
    attrs = {a.name: float for a in schema.arguments if "Tensor" not in str(a.type)}

    def plugin(*tensors: Any, **kwargs: Any) -> str:
        missing = [name for name in attrs if name not in kwargs]
        calls.append({"attrs": dict(kwargs), "missing": missing})
        return "plugin"

    plugin.input_tensor_names = tensor_names  # type: ignore[attr-defined]
    plugin.input_attrs = attrs  # type: ignore[attr-defined]
    trtp = _Attrs(op=_Attrs(**{namespace: _Attrs(**{op_name: plugin})}))
    namespace_vars = {
        "np": np, "torch": torch, "uuid": __import__("uuid"), "typing": __import__("typing"),
        "Any": Any, "trtp": trtp, "trt": _Attrs(), "namespace": namespace, "op_name": op_name,
        "torch_schema": schema, "use_aot_plugin": False, "_LOGGER": _Attrs(),
        "get_trt_tensor": lambda ctx, t, name: name,
    }  # fmt: skip
    code = ast.Module(body=[*helpers, inner], type_ignores=[])
    exec(compile(ast.fix_missing_locations(code), "<plugin converter>", "exec"), namespace_vars)
    return namespace_vars["custom_kernel_converter"], calls
