"""Generated programs (hypothesis): small graphs with parameters, buffers, constants, a custom op,
non-tensor arguments, keyword and dict inputs, nested outputs and dynamic dims with and without
bounds. Each one is compiled, saved and loaded by trtshim and compared, call by call, against torch's
own ``torch.export.save`` / ``load`` round trip on probes a user would send: other values, other
batch sizes inside and outside the range, a changed non-tensor argument, keywords in another order,
disagreeing batch sizes, a wrong rank. The rule (``trtshim.testing.conformance``): identical outputs,
identical refusals, never a wrong result.

Budget: ``TRTSHIM_GENERATED_EXAMPLES`` programs (20 by default, derandomized so CI is repeatable;
``TRTSHIM_GENERATED_SEED`` picks another sequence)."""

from __future__ import annotations

import collections
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from trtshim import compat, errors  # noqa: E402
from trtshim.testing import conformance  # noqa: E402

EXAMPLES = int(os.environ.get("TRTSHIM_GENERATED_EXAMPLES", "20"))
SEED = os.environ.get("TRTSHIM_GENERATED_SEED")
BATCH = 3
VERDICTS: collections.Counter[str] = collections.Counter()
FAILURES: list[str] = []


@compat.custom_op("trtshim_gen::shifted", mutates_args=(), schema="(Tensor x, float amount) -> Tensor")
def shifted(x: torch.Tensor, amount: float) -> torch.Tensor:
    return x + amount


@shifted.register_fake
def _(x: torch.Tensor, amount: float) -> torch.Tensor:
    return torch.empty_like(x)


OPS = ("linear", "relu", "tanh", "param", "buffer", "np_buffer", "const", "custom", "scalar", "norm", "cat_slice")
OUTPUTS = ("tensor", "tuple", "dict", "nested")


@dataclass(frozen=True)
class Plan:
    features: int
    positional: int  # positional tensor inputs (1-2)
    dict_input: bool  # a dict {"p": t, "q": t} after them
    keyword_tensor: bool  # a keyword-only tensor ``extra``
    scalar: Any  # None | int | float | bool
    scalar_keyword: bool
    ops: tuple[str, ...]
    output: str
    dynamic: str  # "static" | "bounded" | "unbounded"

    @property
    def params(self) -> list[str]:
        names = [f"x{i}" for i in range(self.positional)] + (["d"] if self.dict_input else [])
        if self.scalar is not None and not self.scalar_keyword:
            names.append("k")
        return names

    @property
    def keywords(self) -> list[str]:
        out = ["extra"] if self.keyword_tensor else []
        return out + (["k"] if self.scalar is not None and self.scalar_keyword else [])


plans = st.builds(
    Plan,
    features=st.sampled_from([3, 4]),
    positional=st.integers(1, 2),
    dict_input=st.booleans(),
    keyword_tensor=st.booleans(),
    scalar=st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([0.5, -1.25]), st.booleans()),
    scalar_keyword=st.booleans(),
    ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=5).map(tuple),
    output=st.sampled_from(OUTPUTS),
    dynamic=st.sampled_from(["static", "bounded", "unbounded"]),
)


class Generated(nn.Module):
    def __init__(self, plan: Plan) -> None:
        super().__init__()
        f = plan.features
        self.plan = plan
        self.lin = nn.Linear(f, f)
        self.register_buffer("buf", torch.randn(f))
        self.register_buffer("np_buf", torch.randn(f), persistent=False)
        self.const = torch.randn(f)  # a plain tensor attribute: lifted as a constant

    def run(self, tensors: list[torch.Tensor], d: Any, k: Any, extra: Any) -> Any:
        h = tensors[0]
        for t in tensors[1:]:
            h = h * 0.5 + t
        if d is not None:
            h = h + d["p"] * d["q"]
        if extra is not None:
            h = h - extra
        for op in self.plan.ops:
            if op == "linear":
                h = self.lin(h)
            elif op == "relu":
                h = torch.relu(h)
            elif op == "tanh":
                h = torch.tanh(h)
            elif op == "param":
                h = h * self.lin.weight[0]
            elif op == "buffer":
                h = h + self.buf
            elif op == "np_buffer":
                h = h - self.np_buf
            elif op == "const":
                h = h * self.const
            elif op == "custom":
                h = torch.ops.trtshim_gen.shifted(h, 0.75)
            elif op == "scalar" and k is not None:
                h = h * k
            elif op == "norm":
                h = h / (h.abs().sum(-1, keepdim=True) + 1.0)
            elif op == "cat_slice":
                h = torch.cat([h, h.flip(-1)], -1)[..., 1 : 1 + self.plan.features]
        if k is not None and "scalar" not in self.plan.ops:
            h = h + k  # every non-tensor input reaches the result
        out = self.plan.output
        if out == "tuple":
            return h, h.mean(-1)
        if out == "dict":
            return {"out": h, "aux": h.amax(-1)}
        if out == "nested":
            return {"a": (h, [h * 2]), "b": h.sum(-1)}
        return h


def build(plan: Plan) -> nn.Module:
    """A module whose ``forward`` has exactly the plan's signature (torch.export binds by it)."""
    params = ", ".join(plan.params)
    kw = ", *, " + ", ".join(plan.keywords) if plan.keywords else ""
    tensors = ", ".join(f"x{i}" for i in range(plan.positional))
    body = (
        f"def forward(self, {params}{kw}):\n"
        f"    return self.run([{tensors}], {'d' if plan.dict_input else 'None'}, "
        f"{'k' if plan.scalar is not None else 'None'}, {'extra' if plan.keyword_tensor else 'None'})\n"
    )
    namespace: dict[str, Any] = {}
    exec(body, namespace)
    cls = type("GeneratedModel", (Generated,), {"forward": namespace["forward"]})
    torch.manual_seed(hash(plan) % 2**31)
    return cls(plan).eval()


def inputs(plan: Plan, batch: int | list[int] = BATCH, scalar: Any = "same", rank_plus: bool = False) -> tuple[tuple[Any, ...], dict[str, Any]]:
    sizes = iter(batch if isinstance(batch, list) else [batch] * 8)

    def t() -> torch.Tensor:
        x = torch.randn(next(sizes), plan.features)
        return x.unsqueeze(0) if rank_plus else x

    args: list[Any] = [t() for _ in range(plan.positional)]
    if plan.dict_input:
        args.append({"p": t(), "q": t()})
    kwargs: dict[str, Any] = {}
    if plan.keyword_tensor:
        kwargs["extra"] = t()
    if plan.scalar is not None:
        value = plan.scalar if scalar == "same" else scalar
        if plan.scalar_keyword:
            kwargs["k"] = value
        else:
            args.append(value)
    return tuple(args), kwargs


def dynamic_shapes(plan: Plan) -> Any:
    if plan.dynamic == "static":
        return None
    batch = torch.export.Dim("batch", max=8) if plan.dynamic == "bounded" else torch.export.Dim("batch")
    spec: dict[str, Any] = {f"x{i}": {0: batch} for i in range(plan.positional)}
    if plan.dict_input:
        spec["d"] = {"p": {0: batch}, "q": {0: batch}}
    if plan.keyword_tensor:
        spec["extra"] = {0: batch}
    if plan.scalar is not None:
        spec["k"] = None
    return spec


def changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    return value + 1


def probes(plan: Plan) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    out = [("same shapes", *inputs(plan))]
    for b in (1, 2, 5, 8, 9, 20):
        out.append((f"batch {b}", *inputs(plan, b)))
    out.append(("disagreeing batches", *inputs(plan, [4, 5, 5, 5, 5, 5, 5, 5])))
    out.append(("one more dim", *inputs(plan, rank_plus=True)))
    if plan.scalar is not None:
        out.append(("changed non-tensor input", *inputs(plan, scalar=changed(plan.scalar))))
        if not isinstance(plan.scalar, bool):
            out.append(("same value, other type", *inputs(plan, scalar=float(plan.scalar) if isinstance(plan.scalar, int) else plan.scalar)))
    args, kwargs = inputs(plan)
    if len(kwargs) > 1:
        out.append(("keywords in another order", args, dict(reversed(list(kwargs.items())))))
    if kwargs:
        out.append(("a keyword missing", args, dict(list(kwargs.items())[1:])))
    if plan.dict_input:
        reordered = tuple({"q": a["q"], "p": a["p"]} if isinstance(a, dict) else a for a in args)
        out.append(("dict keys in another order", reordered, kwargs))
    return out


def _budget(test: Any) -> Any:
    """The fixed budget: derandomized by default, or the sequence of ``TRTSHIM_GENERATED_SEED``."""
    test = settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # a failing plan is small already
    )(test)
    return hypothesis.seed(int(SEED))(test) if SEED is not None else test


@_budget
@given(plan=plans)
def test_generated_programs_conform_to_torch(plan: Plan, tmp_path_factory: pytest.TempPathFactory) -> None:
    model = build(plan)
    args, kwargs = inputs(plan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compiled = compat.compile(model, args, example_kwargs=kwargs, dynamic_shapes=dynamic_shapes(plan), backend="export")
        except errors.CompileError:
            with pytest.raises(Exception):  # noqa: B017 - torch must refuse it too
                torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes(plan))
            VERDICTS["programs torch cannot export either"] += 1
            hypothesis.reject()
        path = Path(tmp_path_factory.mktemp("gen")) / "p.pt2"
        loaded, reference, torch_cannot = conformance.save_and_load(compiled, path)
    VERDICTS["programs"] += 1
    if torch_cannot:
        VERDICTS["programs torch's own save/load cannot round-trip"] += 1
    for label, p_args, p_kwargs in probes(plan):
        for which, ours in (("compiled", compiled), ("loaded", loaded)):
            if ours is None:
                continue
            verdict = conformance.compare(model, ours, reference, p_args, p_kwargs)
            VERDICTS[verdict.kind] += 1
            assert not verdict.failed, f"{which}, {label}: {verdict.detail}\n{plan}"
