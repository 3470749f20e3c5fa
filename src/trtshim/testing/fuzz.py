"""Fuzzing ``compat.load`` with damaged and hostile files: every case must end in a typed refusal or in a
program whose outputs are the right ones.

Seeds: a plain export artifact (dynamic batch), a hybrid one (the engine stand-in between weighted
layers) and a TorchScript one (loaded with ``trust_code=True``, as a caller who vouches for it would).
Mutations: bit flips anywhere, truncation, a member's bytes changed with valid CRCs, a member deleted,
a member duplicated, manifest and program-JSON fields replaced or deleted, and ``__reduce__`` payloads
in pickles; edits of JSON and pickles are also *resealed* (the member table recomputed, as anyone can:
integrity is not authenticity), so the checks behind the digests are fuzzed too.

Verdicts per case: ``refused`` (a ``TrtShimError``), ``same`` (loaded; outputs equal the oracle),
``fails when called`` (a resealed file whose edited program loads, then fails when called with
torch's own exception, as torch's own module of that file does where torch can read it: the file
describes a broken program, and ``load`` does not type-check graphs),
``torch cannot read; as the seed`` / ``...; edited`` (a sealed file torch's own loader refuses and
trtshim reads, e.g. torch 2.2's comma bug SE-10; its outputs equal the seed's, or the edit changed the
program and nothing can say what its outputs should be),
``escape`` (any other exception), ``wrong`` (loaded; outputs differ), ``code ran`` (a payload ran),
``hang`` (over the time limit), ``crash`` (the process died). The oracle is the seed's own outputs for
files that are not resealed, and torch's own load of the same file for resealed ones (trtshim may
refuse more than torch, never load differently). Cases run in worker processes, so a crash is counted
and the run goes on.

``python -m trtshim.testing.fuzz --cases 2000`` prints the counts; ``--json FILE`` writes them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trtshim.compat.gates import requires
from trtshim.testing.rewrite import resealed

BAD = ("escape", "wrong", "code ran", "hang", "crash")
KINDS = ("export", "hybrid", "wide", "torchscript")
MUTATIONS = (
    "flip",
    "truncate",
    "member-bytes",
    "delete-member",
    "duplicate-member",
    "manifest",
    "manifest-resealed",
    "program-json",
    "program-json-resealed",
    "payload-resealed",
)


# --- seeds ---------------------------------------------------------------------------------------


def build_seeds(folder: Path) -> dict[str, dict[str, Any]]:
    """Save the seed artifacts into ``folder``; returns kind -> {path, input}."""
    import torch

    from trtshim import compat
    from trtshim.testing.engine_standin import make_hybrid, make_seed_model

    warnings.simplefilter("ignore")
    seeds: dict[str, dict[str, Any]] = {}
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Tanh()).eval()
    x = torch.randn(2, 3, 8, 8)
    batch = torch.export.Dim("batch", min=1, max=8)
    compiled = compat.compile(cnn, (x,), backend="export", dynamic_shapes={"input": {0: batch}})
    compat.save(compiled, folder / "export.pt2")
    seeds["export"] = {"path": str(folder / "export.pt2"), "input": x}
    if requires("torch>=2.3"):  # 2.2 keeps engine objects inline
        model, engine = make_seed_model()
        xs = torch.randn(1, 3, 8, 8)
        compat.save(make_hybrid(model, engine, (xs,)), folder / "hybrid.pt2", example_inputs=(xs,))
        seeds["hybrid"] = {"path": str(folder / "hybrid.pt2"), "input": xs}
    wide = torch.nn.Linear(768, 512).eval()  # a 1.5 MiB weight: a bulk member, read by trtshim's reader
    xw = torch.randn(2, 768)
    compat.save(compat.compile(wide, (xw,), backend="export"), folder / "wide.pt2")
    seeds["wide"] = {"path": str(folder / "wide.pt2"), "input": xw}
    compat.save(torch.jit.trace(cnn, (x,)), folder / "script.pt")
    seeds["torchscript"] = {"path": str(folder / "script.pt"), "input": x}
    torch.save({k: v["input"] for k, v in seeds.items()}, folder / "inputs.pt")
    return seeds


# --- mutations -----------------------------------------------------------------------------------


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i, zf.read(i)) for i in zf.infolist()]


def _zip(items: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        for info, member in items:
            zf.writestr(info, member)
    return buf.getvalue()


_VALUES: list[Any] = [None, 0, -1, 2**63, 1.5, float("inf"), "", "x" * 12, [], {}, True, [None], {"a": 1}]


def _mutate_json(obj: Any, rng: random.Random) -> Any:
    """Replace (or delete) one randomly chosen node of a JSON document."""
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append((node, k))
                walk(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                paths.append((node, i))
                walk(v)

    walk(obj)
    if not paths:
        return rng.choice(_VALUES)
    parent, key = rng.choice(paths)
    if isinstance(parent, dict) and rng.random() < 0.3:
        del parent[key]
    else:
        parent[key] = rng.choice(_VALUES)
    return obj


class Payload:
    """Pickled, runs ``touch marker`` when unpickled: proof that code from a file ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def pickle_paths(data: bytes, prefix: str = "") -> list[str]:
    """Paths (``outer!inner``) of the pickles inside a zip, nested torch.save zips included."""
    out = []
    for info, member in _members(data):
        if member[:4] == b"PK\x03\x04":
            with contextlib.suppress(zipfile.BadZipFile):
                out += pickle_paths(member, f"{prefix}{info.filename}!")
        elif info.filename.endswith(".pkl"):
            out.append(prefix + info.filename)
    return out


def replace_member(data: bytes, path: str, new: bytes) -> bytes:
    """``data`` with the member at ``path`` (``outer!inner`` for nested zips) replaced by ``new``."""
    outer, _, rest = path.partition("!")
    return _zip([(i, (replace_member(d, rest, new) if rest else new) if i.filename == outer else d) for i, d in _members(data)])


def mutate(data: bytes, mutation: str, rng: random.Random, marker: str) -> bytes:
    """One mutated copy of an artifact's bytes."""
    if mutation == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if mutation == "truncate":
        return data[: rng.randrange(len(data))]
    items = _members(data)
    pick = rng.randrange(len(items))
    if mutation == "member-bytes":
        info, member = items[pick]
        out = bytearray(member or b"\0")
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        items[pick] = (info, bytes(out))
        return _zip(list(items))
    if mutation == "delete-member":
        return _zip([x for i, x in enumerate(items) if i != pick])
    if mutation == "duplicate-member":
        info, member = items[pick]
        return _zip([*items, (info.filename, member[::-1] if rng.random() < 0.5 else member)])
    if mutation.startswith(("manifest", "program-json")):
        if mutation.startswith("manifest"):
            wanted: Callable[[str], bool] = lambda n: n.endswith("trtshim_manifest.json")  # noqa: E731
        else:
            wanted = lambda n: n.endswith(("serialized_exported_program.json", "models/model.json")) or (  # noqa: E731
                "/models/" in n and n.endswith(".json")
            ) or n.endswith("/code/__torch__.py")
        targets = [i for i, (info, _) in enumerate(items) if wanted(info.filename)]
        if not targets:
            return data
        pick = rng.choice(targets)
        info, member = items[pick]
        try:
            doc = _mutate_json(json.loads(member), rng)
            new = json.dumps(doc).encode()
        except ValueError:  # TorchScript code: change one character
            out = bytearray(member)
            out[rng.randrange(len(out))] = rng.choice(b"()[]:,.=_ax0\n")
            new = bytes(out)
        items[pick] = (info, new)
        out_bytes = _zip(list(items))
        return resealed(out_bytes) if mutation.endswith("resealed") else out_bytes
    if mutation == "payload-resealed":
        paths = pickle_paths(data)
        if not paths:
            return data
        payload = pickle.dumps(Payload(marker), protocol=rng.choice([2, 4]))
        return resealed(replace_member(data, rng.choice(paths), payload))
    raise ValueError(mutation)


# --- running a case ------------------------------------------------------------------------------


def run_case(index: int, seed: int, seeds: dict[str, dict[str, Any]], expected: dict[str, Any], work: Path, timeout: float) -> dict[str, Any]:
    import torch

    from trtshim import compat
    from trtshim.errors import TrtShimError

    rng = random.Random(seed * 1_000_003 + index)
    kind = rng.choice([k for k in KINDS if k in seeds])
    mutation = rng.choice(MUTATIONS)
    marker = str(work / f"ran-{index}")
    original = Path(seeds[kind]["path"]).read_bytes()
    data = mutate(original, mutation, rng, marker)
    path = work / f"case-{index}{Path(seeds[kind]['path']).suffix}"
    path.write_bytes(data)
    x = seeds[kind]["input"]
    oracle = expected[kind]
    torch_error: tuple[str, type[BaseException]] | None = None  # (stage, type) of torch's own failure
    if mutation.endswith("resealed") and mutation != "payload-resealed":
        stage = "load"
        try:  # torch's own reading of this (sealed, so "as saved") file
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                torch_load = torch.jit.load if kind == "torchscript" else lambda p: torch.export.load(p).module()
                module = torch_load(path)
                stage = "call"
                oracle = module(x)
        except Exception as exc:
            oracle, torch_error = None, (stage, type(exc))  # torch refuses it: trtshim must refuse too
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        loaded = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = compat.load(path, trust_code=(kind == "torchscript"))
                loaded = True
                with torch.inference_mode():
                    got = module(x)
            if oracle is None:  # torch cannot read this sealed file (torch 2.2: SE-10), trtshim can
                seed_like = isinstance(got, torch.Tensor) and torch.equal(got, expected[kind])
                outcome["verdict"] = "torch cannot read; as the seed" if seed_like else "torch cannot read; edited"
                return
            same = isinstance(got, torch.Tensor) and torch.equal(got, oracle)
            outcome["verdict"] = "same" if same else "wrong"
        except TrtShimError as exc:
            outcome["verdict"], outcome["error"] = "refused", type(exc).__name__
        except BaseException as exc:
            outcome["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            # a sealed file whose edited program fails when called (as torch's own module of it does, where
            # torch can read it): the file describes a broken program; load does not type-check graphs
            as_torch = torch_error == ("call", type(exc))
            edited = mutation == "program-json-resealed" and (torch_error is None or torch_error[0] == "load")
            outcome["verdict"] = "fails when called" if loaded and (as_torch or edited) else "escape"

    thread = threading.Thread(target=attempt, daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join(timeout)
    verdict = outcome.get("verdict", "hang")
    if os.path.exists(marker):
        verdict = "code ran"
    with contextlib.suppress(OSError):
        path.unlink()
    return {
        "case": index,
        "kind": kind,
        "mutation": mutation,
        "verdict": verdict,
        "error": outcome.get("error"),
        "seconds": round(time.perf_counter() - started, 3),
    }


def worker(folder: Path, start: int, stop: int, seed: int, results: Path, timeout: float) -> None:
    import torch

    import trtshim.testing.engine_standin  # noqa: F401  (registers the stand-in engine op and class)
    from trtshim import compat
    from trtshim.compat.artifact import tensor_reads

    tensor_reads.MIN_BYTES = 1 << 20  # the wide seed's weight goes through trtshim's reader on any machine

    warnings.simplefilter("ignore")
    inputs = torch.load(folder / "inputs.pt")
    seeds = {k: {"path": str(folder / ("script.pt" if k == "torchscript" else f"{k}.pt2")), "input": v} for k, v in inputs.items()}
    expected = {}
    for kind, s in seeds.items():
        with torch.inference_mode():
            expected[kind] = compat.load(s["path"], trust_code=True)(s["input"])
    work = Path(tempfile.mkdtemp(prefix="fuzz-", dir=folder))
    with open(results, "a") as out:
        for index in range(start, stop):
            out.write(json.dumps({"case": index, "verdict": "crash"}) + "\n")  # overwritten unless it dies
            out.flush()
            record = run_case(index, seed, seeds, expected, work, timeout)
            out.write(json.dumps(record) + "\n")
            out.flush()
            if record["verdict"] == "hang":
                os._exit(3)  # a stuck thread cannot be stopped: the parent goes on in a new worker


def run(cases: int, seed: int = 0, timeout: float = 60.0, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the seeds, run ``cases`` cases in worker processes; the summary."""
    import torch

    with tempfile.TemporaryDirectory(prefix="trtshim-fuzz-") as tmp:
        folder = Path(tmp)
        build_seeds(folder)
        results = folder / "results.jsonl"
        next_case = 0
        started = time.perf_counter()
        while next_case < cases:
            subprocess.run(
                [sys.executable, "-m", "trtshim.testing.fuzz", "--worker", str(folder), str(next_case), str(cases), str(seed), str(results), str(timeout)],
                check=False,
                stderr=subprocess.DEVNULL,
            )
            records = _records(results)
            done = max(records) + 1 if records else next_case
            next_case = max(done, next_case + 1)  # a worker that died at its first case: that case crashed
        records = _records(results)
    verdicts = Counter(r["verdict"] for r in records.values())
    by_kind = Counter(r["kind"] for r in records.values() if "kind" in r)
    by_mutation = Counter(r["mutation"] for r in records.values() if "mutation" in r)
    refusals = Counter(r["error"] for r in records.values() if r["verdict"] == "refused")
    bad = [r for r in records.values() if r["verdict"] in BAD]
    summary = {
        "torch": torch.__version__,
        "cases": len(records),
        "seconds": round(time.perf_counter() - started, 1),
        "verdicts": dict(verdicts),
        "kinds": dict(by_kind),
        "mutations": dict(by_mutation),
        "refusals": dict(refusals),
        "bad": bad[:50],
    }
    say(
        f"fuzz on torch {torch.__version__}: {len(records)} cases in {summary['seconds']} s: "
        + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items(), key=lambda kv: (kv[0] in BAD, -kv[1])))
        + " (0 of each: "
        + ", ".join(k for k in BAD if not verdicts.get(k))
        + ")"
    )
    for r in bad[:20]:
        say(f"  {r}")
    return summary


def _records(results: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    if results.exists():
        for line in results.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                out[int(record["case"])] = record
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--worker":
        folder, start, stop, seed, results, timeout = args[1:7]
        worker(Path(folder), int(start), int(stop), int(seed), Path(results), float(timeout))
        return 0
    parser = argparse.ArgumentParser(prog="python -m trtshim.testing.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a case may take before it counts as a hang")
    parser.add_argument("--json", metavar="FILE")
    ns = parser.parse_args(args)
    summary = run(ns.cases, ns.seed, ns.timeout)
    if ns.json:
        Path(ns.json).write_text(json.dumps(summary, indent=1))
    if summary["cases"] != ns.cases:
        print(f"only {summary['cases']} of {ns.cases} cases ran: the workers failed (run one with --worker to see why)")
        return 1
    return 1 if any(summary["verdicts"].get(k) for k in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())
