"""Differential conformance: trtshim against torch's own ``torch.export.save`` / ``load`` round trip.

The rule: for every input, a trtshim module (compiled or loaded) either returns what eager returns,
where torch's round-tripped ``.module()`` runs too, or refuses with ``InputMismatchError`` where torch
refuses: its module raises, its own input check (``_check_input_constraints_for_graph``) would, or
eager itself fails. Refusing where torch runs is allowed only where torch's answer is wrong; running
where torch's module raises only where torch's own input check accepts the call and trtshim's result
equals eager's (torch 2.2's module takes no keywords, torch <= 2.8 refuses dicts in another key order:
a torch-only failure). trtshim is stricter than some torch in two ways, counted apart: a non-tensor
input of equal value and another type (3.0 for 3) is refused on every torch, as torch 2.3-2.8's own
check does; on torch 2.2, which checks dim ranges only, ranks and values are checked all the same.
``compare`` returns a verdict instead of asserting, so that zoo and generated-program runs can count;
``compare_steps`` does the same for stateful programs called step by step (outputs, buffers and the
caller's own tensors after every call).
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

OK, SAME_REFUSAL, TRTSHIM_ONLY = "ok", "same refusal as torch", "trtshim-only failure"
TORCH_ONLY = "torch-only failure"  # torch's module refused a call its own input check accepts; trtshim ran it right
STRICTER = "stricter than this torch"  # refused what this torch runs: 3.0 for 3 (as torch 2.3-2.8 do), ranks on 2.2


@dataclass(frozen=True)
class Verdict:
    kind: str  # OK | SAME_REFUSAL | TRTSHIM_ONLY
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind == TRTSHIM_ONLY


class Reference:
    """torch's own round trip of a program: ``torch.export.load(torch.export.save(ep))`` (in memory)
    and its ``.module()``, built once. ``round_trip=False``: the program as it is, for a torch that
    cannot read its own archive of it."""

    def __init__(self, ep: torch.export.ExportedProgram, *, round_trip: bool = True) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if round_trip:
                buf = io.BytesIO()
                torch.export.save(ep, buf)
                buf.seek(0)
                ep = torch.export.load(buf)
            self.program = ep
            self.module = ep.module()


def save_and_load(compiled: Any, path: Any) -> tuple[Any | None, Reference, str | None]:
    """(trtshim's ``load(save(compiled))``, torch's reference, why torch's own round trip failed).

    Where torch cannot read its own archive of the program (torch 2.2 with non-tensor inputs), trtshim
    must refuse with one of its errors (the loaded module is then None) or load it correctly; the
    reference is then the program as it is.
    """
    from trtshim import compat
    from trtshim.errors import TrtShimError, first_line

    try:
        reference = Reference(compiled.program)
    except Exception as exc:
        why = f"{type(exc).__name__}: {first_line(exc)}"
        try:
            loaded = compat.load(compat.save(compiled, path))
        except TrtShimError:
            loaded = None
        return loaded, Reference(compiled.program, round_trip=False), why
    return compat.load(compat.save(compiled, path)), reference, None


def torch_check_refuses(ep: torch.export.ExportedProgram, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The reason torch's own input-constraint check refuses these inputs, or None when it passes
    (or when this torch has no such check)."""
    try:
        from torch._export.utils import _check_input_constraints_for_graph
    except ImportError:
        return None
    if not hasattr(pytree, "tree_flatten_with_path"):  # torch 2.2
        return None
    from trtshim.compat.call.contract import in_spec_order

    in_spec = ep.call_spec.in_spec
    # torch binds keywords by name and (2.9+) dict keys in any order; its check then sees them in order
    flat, spec = pytree.tree_flatten_with_path(in_spec_order((args, kwargs), in_spec) if in_spec else (args, kwargs))
    if in_spec is not None and spec != in_spec:
        return "the inputs are structured differently"
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder"]
    user = [n for n, s in zip(placeholders, ep.graph_signature.input_specs) if s.kind.name == "USER_INPUT"]
    try:
        _check_input_constraints_for_graph(user, flat, ep.range_constraints)
    except TypeError as exc:
        if "positional argument" in str(exc):
            return None  # another signature on this torch
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def has_input_check() -> bool:
    """torch >= 2.3 checks ranks, sizes and non-tensor values of a call; torch 2.2 only dim ranges."""
    import inspect

    try:
        from torch._export.utils import _check_input_constraints_for_graph
    except ImportError:
        return False
    return "flat_args_with_path" in inspect.signature(_check_input_constraints_for_graph).parameters


def _dict_order_only(ep: torch.export.ExportedProgram, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """The call differs from the exported structure only in the order of some dict's keys (torch >= 2.9
    accepts that; older torch refuses it)."""
    from trtshim.compat.call.contract import in_spec_order

    in_spec = ep.call_spec.in_spec
    raw = pytree.tree_flatten((args, kwargs))[1]
    return raw != in_spec and pytree.tree_flatten(in_spec_order((args, kwargs), in_spec))[1] == in_spec


def _equal_value_other_type(ep: torch.export.ExportedProgram, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Some non-tensor input equals its exported value but has another type (3.0 for 3, 1 for True)."""
    from trtshim.compat.call.contract import InputBinder
    from trtshim.compat.call.input_specs import input_specs_of

    specs = input_specs_of(ep)
    try:
        flat = InputBinder(ep.call_spec.in_spec, specs).flatten(args, kwargs)
    except Exception:
        return False
    return any(
        s.kind == "constant" and s.value is not None and type(x) is not type(s.value) and x == s.value
        for s, x in zip(specs, flat)
    )


def _run(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bool, Any]:
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return True, fn(*args, **kwargs)
    except Exception as exc:
        return False, exc


def _close(a: Any, b: Any, atol: float) -> bool:
    la, sa = pytree.tree_flatten(a)
    lb, sb = pytree.tree_flatten(b)
    if sa != sb or len(la) != len(lb):
        return False
    for x, y in zip(la, lb):
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
                return False
            if x.shape != y.shape or x.dtype != y.dtype:
                return False
            if not torch.allclose(x.float(), y.float(), atol=atol, rtol=1e-4, equal_nan=True):
                return False
        elif x != y:
            return False
    return True


def compare(
    model: Any,
    ours: Any,
    reference: Reference,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    *,
    atol: float = 1e-5,
    outcome: tuple[bool, Any] | None = None,
) -> Verdict:
    """One call of ``ours`` against eager ``model`` and torch's round-tripped ``reference`` program.

    ``outcome``: ``ours``' result obtained elsewhere (another process), as ``(True, flat leaves)`` or
    ``(False, the exception)``; eager's and torch's results are then compared as flat leaves too.
    """
    from trtshim.errors import InputMismatchError

    kwargs = dict(kwargs or {})
    eager_ok, expected = _run(model, args, kwargs)
    ref_ok, theirs = _run(reference.module, args, kwargs)
    our_ok, got = outcome if outcome is not None else _run(ours, args, kwargs)
    if outcome is not None:
        expected = pytree.tree_leaves(expected) if eager_ok else expected
        theirs = pytree.tree_leaves(theirs) if ref_ok else theirs
    if our_ok:
        if not ref_ok:
            refused = torch_check_refuses(reference.program, args, kwargs)
            agrees = refused is None or _dict_order_only(reference.program, args, kwargs)
            if agrees and eager_ok and _close(got, expected, atol):
                return Verdict(TORCH_ONLY, f"torch's module raised {type(theirs).__name__}: {theirs}")
            return Verdict(TRTSHIM_ONLY, f"torch refused ({type(theirs).__name__}: {theirs}), trtshim ran")
        if not _close(got, theirs, atol):
            return Verdict(TRTSHIM_ONLY, "trtshim's result differs from torch's round trip")
        if eager_ok and not _close(got, expected, atol):
            return Verdict(OK, "equal to torch's round trip, which differs from eager")
        return Verdict(OK)
    if not eager_ok or not ref_ok:
        return Verdict(SAME_REFUSAL, f"{type(got).__name__}: {got}")
    if not isinstance(got, InputMismatchError):
        return Verdict(TRTSHIM_ONLY, f"trtshim raised {type(got).__name__}: {got}, torch ran")
    check = torch_check_refuses(reference.program, args, kwargs)
    if check is not None:
        return Verdict(SAME_REFUSAL, f"torch's input check: {check}")
    if not _close(theirs, expected, atol):
        return Verdict(SAME_REFUSAL, "torch runs it but returns a wrong result; trtshim refuses")
    if _equal_value_other_type(reference.program, args, kwargs):
        return Verdict(STRICTER, got.reason)
    if not has_input_check():
        return Verdict(STRICTER, f"torch {torch.__version__} checks dim ranges only: {got.reason}")
    return Verdict(TRTSHIM_ONLY, f"trtshim refused ({got.reason}), torch ran it correctly")


def _state(module: Any) -> dict[str, torch.Tensor]:
    return {name: b.detach().clone() for name, b in module.named_buffers()}


def compare_steps(
    model: Any,
    ours: Any,
    reference: Reference,
    calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]],
    *,
    atol: float = 1e-5,
) -> Verdict:
    """A stateful program (KV-cache decode loops, buffer and input mutations) called step by step:
    eager ``model``, torch's round trip and ``ours`` each get their own copy of every call's inputs;
    after each call the outputs, every buffer the modules share by name and the caller's tensors
    (mutated in place by the program or not) must agree. ``model`` must hold the state the program
    was exported with."""
    modules = {"eager": model, "torch": reference.module, "trtshim": ours}
    for step, (args, kwargs) in enumerate(calls):
        results: dict[str, tuple[bool, Any, Any]] = {}
        for who, module in modules.items():
            mine = copy.deepcopy((args, kwargs))
            ok, out = _run(module, *mine)
            results[who] = (ok, out, mine)
        eager_ok, expected, eager_inputs = results["eager"]
        ref_ok, theirs, _ = results["torch"]
        our_ok, got, our_inputs = results["trtshim"]
        if not our_ok:
            if ref_ok:
                return Verdict(TRTSHIM_ONLY, f"step {step}: trtshim raised {type(got).__name__}: {got}, torch ran")
            return Verdict(SAME_REFUSAL, f"step {step}: {type(got).__name__}: {got}")
        if ref_ok and not _close(got, theirs, atol):
            return Verdict(TRTSHIM_ONLY, f"step {step}: trtshim's result differs from torch's round trip")
        if eager_ok and ref_ok and _close(theirs, expected, atol) and not _close(our_inputs, eager_inputs, atol):
            return Verdict(TRTSHIM_ONLY, f"step {step}: the caller's tensors differ from eager's after the call")
        ours_state, their_state = _state(ours), _state(reference.module)
        for name in sorted(set(ours_state) & set(their_state)):
            if not _close(ours_state[name], their_state[name], atol):
                return Verdict(TRTSHIM_ONLY, f"step {step}: buffer {name} differs from torch's round trip")
    return Verdict(OK)
