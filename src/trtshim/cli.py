"""``trtshim`` command line: doctor, demo, fixes, inspect, verify, sign, keygen, pins, matrix, upgrade."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from trtshim._version import __version__
from trtshim.errors import OptionError, SignatureError, TrtShimError


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def cmd_doctor(args: argparse.Namespace) -> int:
    from trtshim.compat.environment import detect

    env = detect()
    report: dict[str, Any] = {"trtshim": __version__, "environment": env.to_dict()}
    if not args.json:
        print(f"trtshim {__version__}\n\n{env}\n")
        print("probing the runtime (imports torch) ...", flush=True)
    runtime = None
    if env.torch is not None:
        from trtshim.compat.runtime import probe_runtime

        runtime = probe_runtime()
        report["runtime"] = runtime.to_dict()
        can_run, why = runtime.tensorrt_can_run
        report["auto_backend"] = {"backend": "tensorrt" if can_run else "export", "reason": why}
    else:
        report["auto_backend"] = {"backend": None, "reason": "torch is not installed"}
    report["matrix"] = _matrix_verdict(env)
    if args.json:
        _print_json(report)
        return 1 if env.problems or report["matrix"]["conflicts"] else 0
    if runtime is not None:
        print(f"  CUDA build        {runtime.cuda_build or 'none (CPU build of torch)'}")
        dev = (
            f"{runtime.device_name} (compute capability {runtime.compute_capability})"
            if runtime.cuda_available
            else "none"
        )
        print(f"  CUDA device       {dev}")
        imports = {None: "not installed", True: "yes", False: f"no ({runtime.torch_tensorrt_error})"}
        print(f"  torch_tensorrt    imports: {imports[runtime.torch_tensorrt_imports]}")
    auto = report["auto_backend"]
    print(f"\nbackend='auto' -> {auto['backend']}: {auto['reason']}")
    print(f"matrix: {report['matrix']['summary']}")
    for c in report["matrix"]["conflicts"]:
        print(f"  - {c['problem']}\n    fix: {c['fix']}")
    print("problems: " + ("none" if not env.problems else ""))
    for p in env.problems:
        print(f"  - {p}")
    return 1 if env.problems or report["matrix"]["conflicts"] else 0


def _matrix_verdict(env: Any) -> dict[str, Any]:
    """What the version matrix says about the installed set (the same logic as ``trtshim pins --check``)."""
    from trtshim.compat.environment import installed_distributions
    from trtshim.matrix import check as matrix_check
    from trtshim.matrix import pins as matrix_pins

    conflicts = matrix_check.check(dict(installed_distributions()))
    if env.torch is None:
        summary = "torch is not installed"
    elif env.torch_tensorrt is None:
        try:
            pinset = matrix_pins.pins(torch=env.torch.line)
            ttrt = next((p for p in pinset.pins if p.name.startswith("torch-tensorrt")), None)
            summary = f"torch {env.torch.line} pairs with {ttrt}" if ttrt else "no torch_tensorrt pairing"
            summary += " (`trtshim pins` prints the full set)"
        except TrtShimError as exc:
            summary = exc.reason
    else:
        summary = f"{env.torch_tensorrt} with torch {env.torch.raw}: " + (
            "consistent" if not conflicts else "conflicts"
        )
    rows = [{"code": c.code, "problem": c.problem, "fix": c.fix} for c in conflicts]
    return {"summary": summary, "conflicts": rows}


def cmd_pins(args: argparse.Namespace) -> int:
    from trtshim.matrix.cli import run_pins

    return run_pins(args)


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Rewrite an artifact for the installed torch; ``--check`` says whether and how it loads, loading nothing."""
    from trtshim.compat.artifact import upgrading

    if args.check:
        plan = upgrading.plan_upgrade(args.old)
    elif args.new is None:
        raise OptionError("trtshim upgrade OLD NEW needs NEW, the file to write", "or pass --check")
    else:
        plan = upgrading.upgrade(args.old, args.new, allow_imports=args.allow_import)
    if args.json:
        _print_json(plan.to_dict())
        return 0
    saved = ".".join(map(str, plan.saved_schema)) if plan.saved_schema else "unknown"
    print(f"{plan.path}: saved by torch {plan.saved_torch or 'unknown'} (export schema {saved}); this torch reads "
          f"{plan.here_schema[0]}.{plan.here_schema[1]}")
    for step in plan.steps:
        print(f"  {step['id']}: {'; '.join(step['changes'])}")
    print(f"  -> {plan.verdict}" if args.check else f"  -> wrote {args.new}")
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    """The supported rows as a CI runner matrix (``--format github``) or as data (``--format json``)."""
    from trtshim.matrix import rows

    selected = rows.rows(args.rows, python=args.python)
    if args.format == "github":
        gpu = tuple(label.strip() for label in args.gpu_runner.split(",") if label.strip())
        print(json.dumps(rows.github_matrix(selected, cpu_runner=args.cpu_runner, gpu_runner=gpu, session=args.session)))
    else:
        _print_json([r.to_dict() for r in selected])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from trtshim import demo

    result = demo.run(
        device=args.device,
        backend=args.backend,
        keep=args.keep,
        say=(lambda s: None) if args.json else print,
    )
    if args.json:
        _print_json(result.to_dict())
    else:
        t = result.timings
        stages = "; ".join(f"{stage}: {', '.join(ids) or 'none'}" for stage, ids in result.fixes.items())
        print(
            f"\nbackend {result.backend}; fixes applied by stage: {stages}\n"
            f"timings: compile {t['compile_s']:.2f} s, save {t['save_s']:.2f} s, load {t['load_s']:.2f} s "
            f"(fresh process {t['fresh_process_s']:.2f} s)\n"
            + (f"artifact kept: {result.artifact}\n" if args.keep else "")
            + ("demo passed: outputs match eager" if result.ok else "demo FAILED: outputs differ from eager")
        )
    return 0 if result.ok else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    from trtshim.compat.artifact.manifest import format_manifest, read_manifest

    manifest, kind = read_manifest(args.file)
    if args.json:
        _print_json({"file": args.file, "archive": kind, "manifest": manifest})
    elif manifest is None:
        print(f"{args.file}: a {kind} archive without a trtshim manifest (no provenance recorded)")
    else:
        print(format_manifest(manifest, os.path.getsize(args.file)))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check an artifact's member digests (and its signature, with --key) without deserializing anything."""
    from trtshim.compat.artifact.manifest import read_manifest, verify_checksums
    from trtshim.compat.artifact.trust import integrity, signing
    from trtshim.compat.artifact.trust.opened import OpenedArchive

    with OpenedArchive(args.file) as archive:
        manifest, kind = read_manifest(archive)
        check = integrity.begin(archive, manifest)
        if check is None:
            if args.key:
                raise SignatureError(f"{args.file} has no member table, so no signature can cover it")
            verify_checksums(archive)
            print(f"{args.file}: {kind} archive without a member table (saved by an older trtshim or by torch): CRC-32s ok")
            return 0
        check.finish()
    if args.key:
        signing.verify(args.file, args.key, args.signature, table_bytes=check.table_bytes)
    signed = f"; signature by {args.key} ok" if args.key else ""
    label = integrity.LABELS[check.algorithm]
    print(f"{args.file}: {kind} archive, {check.members_checked} members, every {label} matches its table{signed}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from trtshim.compat.artifact.trust import signing

    print(signing.sign(args.file, args.key, args.signature))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from trtshim.compat.artifact.trust import signing

    private, public = signing.keygen(args.name)
    print(f"{private}  (private: keep it secret; `trtshim sign FILE --key {private}`)")
    print(f"{public}  (public: give it to those who load; `compat.load(FILE, public_key={public!r})`)")
    return 0


def cmd_fixes(args: argparse.Namespace) -> int:
    from trtshim.compat.environment import detect
    from trtshim.fixes import REGISTRY, select
    from trtshim.fixes.registry import STAGE_RUNS, STAGES

    env = detect()
    report = select(env, REGISTRY)
    by_stage = {
        stage: [d.fix.id for d in report.decisions if d.applied and stage in d.fix.stages] for stage in STAGES
    }
    if args.json:
        rows = []
        for d in report.decisions:
            row = d.to_dict()
            row.update(
                affected=d.fix.affected,
                fixed_in=d.fix.fixed_in,
                links=list(d.fix.links),
                how=d.fix.how,
                hooks=sorted(d.fix.hooks),
                lives_in=d.fix.lives_in or None,
            )
            rows.append(row)
        _print_json({"environment": env.to_dict(), "by_stage": by_stage, "fixes": rows})
        return 0
    torch_v = env.torch.raw if env.torch else "not installed"
    ttrt = env.torch_tensorrt.raw if env.torch_tensorrt else "not installed"
    print(f"fixes for torch {torch_v}, torch_tensorrt {ttrt}: {len(report.applied_ids)} of {len(REGISTRY)} apply")
    print("\napplied, by the stage they act at (a fix acts only when its stage runs):")
    for stage in STAGES:
        print(f"  {stage:<8} {', '.join(by_stage[stage]) or '-':<28} runs at: {STAGE_RUNS[stage]}")
    print()
    for d in report.decisions:
        mark = "applied" if d.applied else "skipped"
        print(f"{d.fix.id:<6} {mark:<8} [{d.fix.family}; {', '.join(d.fix.stages)}] {d.fix.title}")
        print(f"{'':<15} why: {d.reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trtshim", description="One stable compile/save/load API for PyTorch + Torch-TensorRT."
    )
    parser.add_argument("--version", action="version", version=f"trtshim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="the installed stack, its problems, and what backend='auto' picks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "demo",
        help="compile -> save -> load in a fresh process -> compare with eager",
        description="The seed scenario (weighted layers + a custom op) end to end. backend 'auto' is TensorRT "
        "where it can run and otherwise the torch-only 'export' backend (announced); nothing is left behind "
        "unless --keep names a folder.",
    )
    p.add_argument("--device", default="cpu", help="device for the model and inputs (default: cpu)")
    p.add_argument(
        "--backend", default="auto", choices=("auto", "export", "tensorrt"), help="default: auto (see above)"
    )
    p.add_argument("--keep", metavar="DIR", help="write the artifact into DIR (created if missing) and keep it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("pins", help="a working torch / torch_tensorrt / TensorRT set, or --check one")
    from trtshim.matrix.cli import add_pins_arguments

    add_pins_arguments(p)
    p.set_defaults(func=cmd_pins)

    p = sub.add_parser(
        "upgrade",
        help="rewrite an artifact of an older torch for the installed one (--check: say how it would load)",
    )
    p.add_argument("old")
    p.add_argument("new", nargs="?", help="the file to write (atomically; OLD is left as it is)")
    p.add_argument("--check", action="store_true", help="say whether and how OLD loads here; load nothing")
    p.add_argument("--allow-import", action="append", metavar="MODULE", help="a module that registers its ops")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_upgrade)

    p = sub.add_parser(
        "matrix",
        help="the supported version rows as a CI runner matrix (github) or JSON",
        description="One row per environment trtshim tests on (what trtshim.nox.matrix_session runs): "
        "`--format github` prints a strategy.matrix include list for GitHub Actions.",
    )
    p.add_argument("--rows", default="ci", choices=("ci", "torch", "trt", "all"), help="default: ci")
    p.add_argument("--python", default="3.11", metavar="X.Y", help="only rows with wheels for this CPython (default: 3.11)")
    p.add_argument("--format", default="json", choices=("github", "json"))
    p.add_argument("--cpu-runner", default="ubuntu-latest", help="runs-on of CPU rows (default: ubuntu-latest)")
    p.add_argument(
        "--gpu-runner",
        default="self-hosted,linux,x64,gpu",
        help="runs-on labels of GPU rows, comma-separated (default: self-hosted,linux,x64,gpu; empty: no GPU rows)",
    )
    p.add_argument(
        "--session",
        default="tests",
        help="the name of your trtshim.nox.matrix_session function: each row's job runs session(row) (default: tests)",
    )
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("fixes", help="every registered fix: applied or skipped here, and why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fixes)

    p = sub.add_parser("inspect", help="show an artifact's manifest without loading it")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("verify", help="check an artifact's member digests (and signature) without loading it")
    p.add_argument("file")
    p.add_argument("--key", metavar="PUBLIC.pem", help="also require FILE.sig by this Ed25519 public key")
    p.add_argument("--signature", metavar="SIG", help="the signature file (default: FILE.sig)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("sign", help="write a detached Ed25519 signature FILE.sig over an artifact")
    p.add_argument("file")
    p.add_argument("--key", metavar="PRIVATE.pem", required=True)
    p.add_argument("--signature", metavar="SIG", help="where to write it (default: FILE.sig)")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("keygen", help="write a new Ed25519 key pair NAME.key / NAME.pub for sign/verify")
    p.add_argument("name")
    p.set_defaults(func=cmd_keygen)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `trtshim inspect FILE --json | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit would raise again
        return 141  # what a shell reports for a process ended by SIGPIPE
    except TrtShimError as exc:
        print(f"error: {exc.reason}\n  hint: {exc.hint}", file=sys.stderr)
        return 2
