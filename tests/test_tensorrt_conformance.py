"""trtshim.compat.backends.tensorrt_api against the real torch_tensorrt sources of every release.

Network tests read the release wheels (cached in ``~/.cache/trtshim/wheels``) and check that the calls
``translate`` / ``save_plan`` produce bind to the real signatures; the rest are offline unit tests.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
import time
from typing import Any

import pytest

from trtshim.compat.backends import tensorrt_api as api
from trtshim.errors import BackendUnavailableError, OptionError
from trtshim.testing import tensorrt_save as upstream_save
from ttrt_sources import (
    RELEASES,
    ReleaseSources,
    assigned_literal,
    cache_dir,
    cached_wheel,
    check_compile_call,
    check_save_call,
    download,
    first_call,
    parse_function,
)

KW = inspect.Parameter.KEYWORD_ONLY
OPS = {"torch.ops.aten.add.Tensor"}

# (id, precision, options); an option a release cannot honour must raise OptionError there instead.
OPTION_SETS: list[tuple[str, str, dict[str, Any]]] = [
    ("default", "fp32", {}),
    (
        "fp16-refit-trunc-block-ops",
        "fp16",
        {"refit": True, "truncate_double": True, "min_block_size": 3, "torch_executed_ops": OPS},
    ),
    ("bf16-norefit", "bf16", {"refit": False, "truncate_double": False}),
    (
        "engine-compat",
        "fp32",
        {"workspace_size": 1 << 30, "version_compatible": True, "hardware_compatible": True},
    ),
    ("engine-compat-off", "fp16", {"version_compatible": False, "hardware_compatible": False}),
    ("debug-pyruntime", "fp32", {"debug": True, "use_python_runtime": True}),
    ("nodebug-cppruntime", "fp32", {"debug": False, "use_python_runtime": False}),
]


def _unsupported(release: str, precision: str, options: dict[str, Any]) -> bool:
    row = api.compile_api(release)
    return (
        (precision == "bf16" and not row.bf16)
        or (options.get("hardware_compatible") is True and "hardware_compatible" not in row.pass_through)
        or (options.get("use_python_runtime") is True and not row.python_runtime_effective)
    )


# --- network: the real sources ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def sources() -> dict[str, ReleaseSources]:
    folder = cache_dir()
    missing = [v for v in RELEASES if cached_wheel(v, folder) is None]
    if missing:
        start = time.monotonic()
        failed = download(missing, folder)
        print(
            f"\ndownloaded {len(missing) - len(failed)} torch_tensorrt wheels in {time.monotonic() - start:.1f}s"
        )
        if failed:
            pytest.skip(f"cannot fetch torch_tensorrt wheels: {failed}")
    out = {}
    for version in RELEASES:
        wheel = cached_wheel(version, folder)
        assert wheel is not None
        out[version] = ReleaseSources.from_wheel(version, wheel)
    return out


network = pytest.mark.network
releases = pytest.mark.parametrize("release", RELEASES)


@network
@releases
@pytest.mark.parametrize(
    ("precision", "options"), [s[1:] for s in OPTION_SETS], ids=[s[0] for s in OPTION_SETS]
)
def test_compile_call_binds(
    sources: dict[str, ReleaseSources], release: str, precision: str, options: dict
) -> None:
    src = sources[release]
    if _unsupported(release, precision, options):
        with pytest.raises(OptionError):
            api.translate(release, precision=precision, options=options)
        return
    plan = api.translate(release, precision=precision, options=options)
    assert _binding_problems(src, release, plan) == []
    assert set(plan.kwargs) <= src.settings_fields | {"enabled_precisions"}  # 2.2 maps it to `precision`


@network
@releases
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_strongly_typed_call_binds(sources: dict[str, ReleaseSources], release: str, precision: str) -> None:
    """The call a TensorRT-RTX install gets: autocast where the release has it, else a refusal."""
    src, row = sources[release], api.compile_api(release)
    if not row.autocast or (precision == "bf16" and not row.bf16):
        assert "enable_autocast" not in src.compile.signature.parameters
        with pytest.raises(OptionError):
            api.translate(release, precision=precision, strongly_typed=True)
        return
    plan = api.translate(release, precision=precision, strongly_typed=True)
    assert plan.kwargs["enable_autocast"] is True and "enabled_precisions" not in plan.kwargs
    assert _binding_problems(src, release, plan) == []


def _binding_problems(src: ReleaseSources, release: str, plan: api.CallPlan) -> list[str]:
    """What would not bind if ``plan`` were called on ``release``'s ``dynamo.compile``."""
    row = api.compile_api(release)
    return check_compile_call(
        src.compile,
        plan.inputs_keyword,
        plan.kwargs,
        inputs_param=row.inputs_param,
        settings_fields=src.settings_fields,
    )


@network
@releases
def test_compile_table_matches_source(sources: dict[str, ReleaseSources], release: str) -> None:
    src, row = sources[release], api.compile_api(release)
    params = src.compile.signature.parameters
    positional = src.compile.names(inspect.Parameter.POSITIONAL_OR_KEYWORD)
    assert positional[1] == row.inputs_param
    assert ("arg_inputs" in src.compile.names(KW)) == (row.inputs_alias == "arg_inputs")
    assert row.pass_through == {name for name in api.PASS_THROUGH if name in params}
    refit_names = {"refit", "make_refittable", "immutable_weights"}
    assert refit_names & set(params) == {row.refit_param}
    assert {"truncate_double", "truncate_long_and_double"} & set(params) == {row.truncate_param}
    assert ("debug" in params) == row.debug_param
    if not row.debug_param:  # the replacement must exist
        debugger = src.function("debugger", "__init__", cls="Debugger")
        assert debugger is not None and "log_level" in debugger.signature.parameters
        assert "Debugger" in src.files["dynamo_init"]
    assert "use_python_runtime" in params
    assert ("use_python_runtime" in src.settings_fields) == row.python_runtime_effective
    assert ("output_format" in params) == (row.output_format is not None)
    if row.output_format is not None:
        assert f'"{row.output_format}"' in src.files["exporter"]
    if row.precision == "autocast":
        assert "enabled_precisions" not in params and "use_explicit_typing" not in params
        assert {"enable_autocast", "autocast_low_precision_type"} <= set(params)
    else:
        assert "enabled_precisions" in params
        # weak typing is the default (or the only mode) exactly where the table says no extra flag is needed
        typing_default = src.defaults.get("USE_EXPLICIT_TYPING", False)
        assert typing_default is (row.precision == "enabled_precisions+weak_typing")
    if row.precision == "autocast":  # strongly typed: bf16 is an accepted autocast_low_precision_type
        body = ast.get_source_segment(src.files["compiler"], src.compile.node) or ""
        assert row.bf16 == ("torch.bfloat16" in body)
    else:
        assert row.bf16 == ("BuilderFlag.BF16" in src.files["interpreter"])


@network
@releases
def test_profile_source_matches_source(sources: dict[str, ReleaseSources], release: str) -> None:
    """Where each release takes an engine's (min, opt, max) from: the placeholders' ShapeEnv (2.3+:
    ``var_to_range``, opt from the example hint ``var_to_val``; what ``profiles.apply`` sets) or the
    ``torch_tensorrt.Input`` objects passed as inputs (2.2: what ``_profile_inputs`` builds)."""
    src, row = sources[release], api.compile_api(release)
    code = src.files["partition_common"] + src.files.get("utils", "")
    reads_shape_env = "var_to_range" in code and "var_to_val" in code
    if row.profile_source == "shape_env":
        assert reads_shape_env
    else:
        assert row.profile_source == "inputs" and not reads_shape_env
        assert all(f'"{corner}_shape"' in src.files["partition_common"] for corner in ("min", "opt", "max"))


@network
@releases
@pytest.mark.parametrize("retrace", [False, True])
def test_save_call_binds(sources: dict[str, ReleaseSources], release: str, retrace: bool) -> None:
    row, save = upstream_save.save_api(release), sources[release].save
    if row is None:
        assert save is None
        with pytest.raises(BackendUnavailableError):
            upstream_save.save_plan(release, retrace=retrace, inputs=[object()])
        return
    assert save is not None
    kwargs = upstream_save.save_plan(release, retrace=retrace, inputs=[object()])
    assert check_save_call(save, kwargs, inputs_param=row.inputs_param) == []


@network
@releases
def test_save_load_tables_match_source(sources: dict[str, ReleaseSources], release: str) -> None:
    src, save_row, load_row = sources[release], upstream_save.save_api(release), upstream_save.load_api(release)
    save, load = src.save, src.load
    assert (save is None) == (save_row is None) and (load is None) == (load_row is None)
    if save is None or save_row is None or load is None or load_row is None:
        return
    assert save.names(inspect.Parameter.POSITIONAL_OR_KEYWORD) == save_row.positional
    assert save.names(KW) == save_row.keyword_only
    assert (save.var_kwargs is not None) == save_row.var_kwargs
    assert save.defaults["retrace"] is save_row.retrace_default
    assert save.defaults["output_format"] == "exported_program"
    assert assigned_literal(save, "accepted_formats") == save_row.output_formats
    body = ast.get_source_segment(src.files["toplevel"], save.node) or ""
    assert ("is not necessary during save" not in body) == save_row.inputs_required
    assert load.names(inspect.Parameter.POSITIONAL_OR_KEYWORD) == load_row.positional
    assert load.names(KW) == load_row.keyword_only
    assert (load.var_kwargs is not None) == load_row.var_kwargs
    assert first_call(load, ("torch.jit.load", "torch.export.load")) == load_row.first_try


@network
def test_patch_releases_share_their_line(sources: dict[str, ReleaseSources]) -> None:
    """2.6.1 and 2.12.1 have the same compile/save/load signatures as their .0 (so one row per line)."""
    for patch, base in (("2.6.1", "2.6.0"), ("2.12.1", "2.12.0")):
        for attr in ("compile", "save", "load"):
            assert getattr(sources[patch], attr).signature == getattr(sources[base], attr).signature


@network
def test_checker_catches_wrong_table_entries(sources: dict[str, ReleaseSources], monkeypatch) -> None:
    # 2.4 has no `arg_inputs`: inputs under that keyword must be reported
    monkeypatch.setitem(
        api.COMPILE, "2.4", dataclasses.replace(api.COMPILE["2.4"], inputs_keyword="arg_inputs")
    )
    plan = api.translate("2.4.0")
    problems = check_compile_call(
        sources["2.4.0"].compile, plan.inputs_keyword, plan.kwargs, inputs_param="inputs"
    )
    assert problems and any("arg_inputs" in p or "inputs" in p for p in problems)
    # 2.5 takes `make_refittable`; `refit` only reaches **kwargs as a deprecated alias
    monkeypatch.setitem(api.COMPILE, "2.5", dataclasses.replace(api.COMPILE["2.5"], refit_param="refit"))
    plan = api.translate("2.5.0", options={"refit": True})
    problems = check_compile_call(sources["2.5.0"].compile, None, plan.kwargs, inputs_param="inputs")
    assert len(problems) == 1 and "'refit'" in problems[0] and "deprecated alias" in problems[0]
    # 2.13 dropped enabled_precisions: an old-style fp16 plan would be silently ignored
    problems = check_compile_call(
        sources["2.13.0"].compile,
        None,
        {"enabled_precisions": {"f16"}},
        inputs_param="inputs",
        settings_fields=sources["2.13.0"].settings_fields,
    )
    assert len(problems) == 1 and "silently dropped" in problems[0]
    # save: the 2.4 table entry claiming `arg_inputs`
    monkeypatch.setitem(upstream_save.SAVE, "2.4", dataclasses.replace(upstream_save.SAVE["2.4"], inputs_param="arg_inputs"))
    kwargs = upstream_save.save_plan("2.4.0", retrace=False, inputs=[object()])
    save = sources["2.4.0"].save
    assert save is not None and check_save_call(save, kwargs, inputs_param="arg_inputs")


# --- offline: translate / save_plan ------------------------------------------------------------------


def test_module_imports_without_torch() -> None:
    code = "import sys, trtshim.compat.backends.tensorrt_api; assert 'torch' not in sys.modules, 'torch'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_release_line_has_rows() -> None:
    lines = {api.release_line(v) for v in RELEASES}
    assert lines == set(api.COMPILE) == set(upstream_save.SAVE) == set(upstream_save.LOAD)


@pytest.mark.parametrize(
    "options", [{"refitt": True}, {"enabled_precisions": {"fp16"}}, {"make_refittable": True}]
)
def test_unknown_option_raises(options: dict[str, Any]) -> None:
    with pytest.raises(OptionError) as info:
        api.translate("2.8.0", options=options)
    assert "unknown tensorrt option" in info.value.reason and "min_block_size" in info.value.hint


@pytest.mark.parametrize(
    "options",
    [
        {"refit": 1},
        {"min_block_size": 0},
        {"min_block_size": True},
        {"workspace_size": -1},
        {"torch_executed_ops": "torch.ops.aten.add.Tensor"},
        {"torch_executed_ops": [1]},
    ],
)
def test_badly_typed_option_raises(options: dict[str, Any]) -> None:
    with pytest.raises(OptionError):
        api.translate("2.8.0", options=options)


def test_unknown_precision_raises() -> None:
    with pytest.raises(OptionError, match="unknown precision"):
        api.translate("2.8.0", precision="fp8")


@pytest.mark.parametrize("release", ["2.13.0", "2.14.0"])
@pytest.mark.parametrize(("precision", "dtype"), [("fp16", "float16"), ("bf16", "bfloat16")])
def test_low_precision_213_uses_autocast(release: str, precision: str, dtype: str) -> None:
    plan = api.translate(release, precision=precision)
    assert plan.kwargs == {"enable_autocast": True, "autocast_low_precision_type": api.TorchDType(dtype)}
    assert plan.cast_model_to is None


def test_fp32_213_passes_no_precision() -> None:
    plan = api.translate("2.13.0")
    assert plan.kwargs == {} and any("strongly typed" in n for n in plan.notes)


@pytest.mark.parametrize("release", ["2.10.0", "2.11.0", "2.12.1"])
def test_fp16_210_disables_explicit_typing(release: str) -> None:
    plan = api.translate(release, precision="fp16")
    assert plan.kwargs == {
        "enabled_precisions": frozenset({api.TorchDType("float16")}),
        "use_explicit_typing": False,
    }
    assert api.translate(release).kwargs == {"enabled_precisions": frozenset({api.TorchDType("float32")})}


@pytest.mark.parametrize("release", ["2.10.0", "2.11.0", "2.12.1"])
def test_strongly_typed_210_uses_autocast(release: str) -> None:
    """TensorRT-RTX overrides use_explicit_typing=False (the engine stays FP32): autocast instead."""
    plan = api.translate(release, precision="fp16", strongly_typed=True)
    assert plan.kwargs == {"enable_autocast": True, "autocast_low_precision_type": api.TorchDType("float16")}
    assert any("TensorRT-RTX is strongly typed" in n for n in plan.notes)
    fp32 = api.translate(release, strongly_typed=True)
    assert fp32.kwargs == {"enabled_precisions": frozenset({api.TorchDType("float32")})}


def test_strongly_typed_without_autocast_refuses() -> None:
    with pytest.raises(OptionError, match="strongly typed"):
        api.translate("2.9.0", precision="fp16", strongly_typed=True)


@pytest.mark.parametrize("release", ["2.3.0", "2.6.1", "2.9.0"])
def test_fp16_before_210_uses_enabled_precisions_only(release: str) -> None:
    assert api.translate(release, precision="fp16").kwargs == {
        "enabled_precisions": frozenset({api.TorchDType("float16")})
    }


def test_22_needs_graph_module_and_has_no_bf16() -> None:
    assert api.translate("2.2.0").kwargs["output_format"] == "graph_module"
    assert "output_format" not in api.translate("2.3.0").kwargs
    with pytest.raises(OptionError, match="bf16"):
        api.translate("2.2.0", precision="bf16")


@pytest.mark.parametrize(
    ("release", "refit", "expected"),
    [
        ("2.2.0", True, {"refit": True}),
        ("2.4.0", False, {"refit": False}),
        ("2.5.0", True, {"make_refittable": True}),
        ("2.6.0", True, {"immutable_weights": False}),
        ("2.6.1", False, {"immutable_weights": True}),
        ("2.14.0", True, {"immutable_weights": False}),
    ],
)
def test_refit_maps_per_release(release: str, refit: bool, expected: dict[str, bool]) -> None:
    kwargs = api.translate(release, options={"refit": refit}).kwargs
    assert {
        k: v for k, v in kwargs.items() if k in {"refit", "make_refittable", "immutable_weights"}
    } == expected


def test_truncate_and_debug_per_release() -> None:
    assert (
        api.translate("2.2.0", options={"truncate_double": True}).kwargs["truncate_long_and_double"] is True
    )
    assert api.translate("2.3.0", options={"truncate_double": True}).kwargs["truncate_double"] is True
    old = api.translate("2.7.0", options={"debug": True})
    assert old.kwargs["debug"] is True and not old.debugger
    new = api.translate("2.8.0", options={"debug": True})
    assert "debug" not in new.kwargs and new.debugger


def test_options_a_release_cannot_honour_raise() -> None:
    with pytest.raises(OptionError, match="use_python_runtime"):
        api.translate("2.13.0", options={"use_python_runtime": True})
    with pytest.raises(OptionError, match="hardware_compatible"):
        api.translate("2.2.0", options={"hardware_compatible": True})
    off = api.translate("2.2.0", options={"hardware_compatible": False})
    assert "hardware_compatible" not in off.kwargs and any("hardware_compatible" in n for n in off.notes)
    assert api.translate("2.12.0", options={"use_python_runtime": True}).kwargs["use_python_runtime"] is True


def test_pass_through_options() -> None:
    options = {
        "min_block_size": 2,
        "torch_executed_ops": list(OPS),
        "workspace_size": 8,
        "version_compatible": True,
    }
    kwargs = api.translate("2.9.0", options=options).kwargs
    assert kwargs["torch_executed_ops"] == frozenset(OPS)
    assert (kwargs["min_block_size"], kwargs["workspace_size"], kwargs["version_compatible"]) == (2, 8, True)


def test_release_matching() -> None:
    assert api.compile_api("2.6.1") is api.compile_api("2.6.0")
    assert api.compile_api("2.12.1+cu130") is api.compile_api("2.12.0")
    assert api.release_line("2.14.0rc1") == "2.14"
    with pytest.raises(BackendUnavailableError):
        api.translate("2.15.0")
    with pytest.raises(BackendUnavailableError):
        api.translate("2.1.0")
    with pytest.raises(OptionError):
        api.translate("not-a-version")


def test_every_plan_has_notes_and_positional_inputs() -> None:
    for release in RELEASES:
        plan = api.translate(release, precision="fp16", options={"refit": True})
        assert plan.inputs_keyword is None and plan.notes


def test_resolved_kwargs_gives_torch_dtypes() -> None:
    torch = pytest.importorskip("torch")
    assert api.translate("2.9.0", precision="fp16").resolved_kwargs()["enabled_precisions"] == {torch.float16}
    resolved = api.translate("2.13.0", precision="bf16").resolved_kwargs()
    assert resolved["autocast_low_precision_type"] is torch.bfloat16


@pytest.mark.parametrize(
    ("release", "name", "retrace"),
    [("2.4.0", "inputs", False), ("2.5.0", "arg_inputs", False), ("2.14.0", "arg_inputs", True)],
)
def test_save_plan(release: str, name: str, retrace: bool) -> None:
    kwargs = upstream_save.save_plan(release, retrace=retrace, inputs=(1, 2))
    assert kwargs == {"output_format": "exported_program", "retrace": retrace, name: [1, 2]}


def test_save_plan_refusals() -> None:
    with pytest.raises(BackendUnavailableError):
        upstream_save.save_plan("2.2.0", retrace=False, inputs=[1])
    with pytest.raises(OptionError, match="example inputs"):
        upstream_save.save_plan("2.5.0", retrace=False, inputs=None)
    with pytest.raises(OptionError, match="example inputs"):
        upstream_save.save_plan("2.10.0", retrace=True, inputs=None)
    assert upstream_save.save_plan("2.6.0", retrace=False, inputs=None) == {
        "output_format": "exported_program",
        "retrace": False,
    }
    with pytest.raises(OptionError, match="aot_inductor"):
        upstream_save.save_plan("2.7.0", retrace=False, inputs=[1], output_format="aot_inductor")
    assert upstream_save.save_plan("2.8.0", retrace=False, inputs=[1], output_format="aot_inductor")["retrace"] is False


def test_checker_offline_on_a_synthetic_signature() -> None:
    source = (
        "def compile(exported_program, inputs, *, make_refittable=False, **kwargs):\n"
        "    if 'refit' in kwargs:\n        make_refittable = kwargs['refit']\n"
    )
    func = parse_function(source, "compile")
    assert func is not None
    assert check_compile_call(func, None, {"make_refittable": True}, inputs_param="inputs") == []
    (problem,) = check_compile_call(func, None, {"refit": True}, inputs_param="inputs")
    assert "deprecated alias" in problem
    (problem,) = check_compile_call(
        func, None, {"debug": True}, inputs_param="inputs", settings_fields={"debug"}
    )
    assert "never forwards" in problem
    assert check_compile_call(func, "arg_inputs", {}, inputs_param="inputs")  # required `inputs` missing
    kwonly = parse_function("def compile(ep, *, inputs): ...", "compile")
    assert (
        kwonly is not None
        and "does not bind" in check_compile_call(kwonly, None, {}, inputs_param="inputs")[0]
    )


# --- CO-4 against each release's own plugin converter ----------------------------------------------

PLUGIN_RELEASES = [r for r in RELEASES if tuple(int(p) for p in r.split(".")[:2]) >= (2, 6)]


def _plugin_receives(source: str, node: Any) -> dict[str, Any]:
    """What the release's converter hands the plugin for ``node`` (TensorRT replaced, its logic not)."""
    from ttrt_sources import _Attrs, plugin_converter

    namespace, name = node.target._schema.name.split("::")
    converter, calls = plugin_converter(source, node.target._schema, namespace, name)
    ctx = _Attrs(net=_Attrs(add_plugin=lambda *a, **k: _Attrs(num_outputs=1, name="")))
    converter(ctx, node.target, node.args, node.kwargs, node.name)
    return {k: float(v) for k, v in calls[-1]["attrs"].items()}


@network
@pytest.mark.parametrize("release", PLUGIN_RELEASES)
def test_co4_against_the_release_plugin_converter(sources: dict[str, ReleaseSources], release: str) -> None:
    """Fix off: calls as torch.export leaves them lose a scalar on every release. Fix on: each call either
    reaches the plugin intact, or CO-4 keeps its op in PyTorch, and then the converter really would lose it."""
    from co4_ops import EXPECTED, exported_calls, op_calls
    from trtshim.fixes.co4_plugin_scalars import rewrite_call

    source = sources[release].files["plugin_converter"]
    program, _ = exported_calls()
    lost = [_plugin_receives(source, n) != want for n, want in zip(op_calls(program), EXPECTED)]
    assert any(lost), f"{release}: no call lost a scalar; CO-4's range is wrong"
    for node, want in zip(op_calls(program), EXPECTED):
        before = _plugin_receives(source, node)
        reason = rewrite_call(node, release)
        if reason is not None:
            assert before != want, f"{release}: CO-4 keeps {node.name} in torch ({reason}) needlessly"
        else:
            assert _plugin_receives(source, node) == want


@network
@releases
def test_engines_package_with_aotinductor_exactly_where_the_source_allows(
    sources: dict[str, ReleaseSources], release: str
) -> None:
    """``compat.package`` packages TensorRT engines only where the release registers a fake
    ``tensorrt::Engine`` that unflattens (what AOTInductor traces engines with) and itself saves
    ``output_format="aot_inductor"``; elsewhere it refuses, naming the release."""
    import re

    from trtshim.compat import detect
    from trtshim.compat.backends import inductor
    from trtshim.compat.environment import Environment
    from trtshim.compat.versions import PackageVersion

    meta = sources[release].files.get("meta_ops", "")
    fake = re.search(r'register_fake_class\(\s*"tensorrt::Engine"\s*\)', meta) is not None
    unflattens = fake and "__obj_unflatten__" in meta
    save = upstream_save.save_api(release)
    saves_aoti = save is not None and "aot_inductor" in save.output_formats
    env = detect()
    ok, why = inductor.engines_packageable(
        Environment(env.python, env.platform, env.torch, PackageVersion("torch-tensorrt", release), env.tensorrt)
    )
    assert ok == saves_aoti and (unflattens or not ok), (release, ok, unflattens, saves_aoti)
    if not ok:  # the reason says which half is missing, as the source shows it
        missing = "does not package its engines" if unflattens else "registers no fake tensorrt::Engine"
        assert f"torch_tensorrt {release} {missing}" in why
