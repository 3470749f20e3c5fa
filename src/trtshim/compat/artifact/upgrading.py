"""``upgrade``: rewrite an artifact for the installed torch, once, instead of migrating it at every load.

The old file is checked as ``load`` checks it (member digests, pickles read statically, ops and pytree
types registered), its program (and stored source program) migrated across schema majors and read by
this torch's ``torch.export.load``, then written with ``torch.export.save`` to a new file, atomically.
The manifest keeps what it said (inputs, ops, engine record) with this environment's record, and adds
an entry to its ``history``: the original versions and each migration applied.
"""

from __future__ import annotations

import datetime
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trtshim._version import __version__
from trtshim.compat.artifact import legacy, migrations
from trtshim.compat.artifact.atomic import write_atomically
from trtshim.compat.artifact.checks import allowed_imports, check_ops, check_pytree_types
from trtshim.compat.artifact.manifest import MANIFEST_NAME, read_manifest, verify_checksums
from trtshim.compat.artifact.record import environment_record, export_schema_version
from trtshim.compat.artifact.trust import integrity, pickle_scan
from trtshim.compat.artifact.trust.opened import OpenedArchive
from trtshim.compat.environment import detect
from trtshim.compat.serial import serialized
from trtshim.errors import ArtifactError, IncompatibleArtifactError, UnsafeArtifactError
from trtshim.fixes import active


@dataclass
class UpgradePlan:
    """What ``upgrade`` would do (``--check``) or did."""

    path: str
    saved_torch: str | None
    saved_schema: tuple[int, int] | None
    here_schema: tuple[int, int]
    steps: list[dict[str, Any]] = field(default_factory=list)  # id, bridges, changes
    verdict: str = ""  # one line: whether and how it loads here

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "saved_torch": self.saved_torch,
            "saved_schema": list(self.saved_schema) if self.saved_schema else None,
            "here_schema": list(self.here_schema),
            "steps": self.steps,
            "verdict": self.verdict,
        }


def plan_upgrade(path: str | os.PathLike[str]) -> UpgradePlan:
    """Whether and how ``path`` loads on this torch, reading only its manifest and program record."""
    path = os.fspath(path)
    manifest, kind = read_manifest(path)
    if kind == "aoti":
        raise IncompatibleArtifactError(
            f"{path} holds AOTInductor code, which runs only on the torch that compiled it: it cannot be upgraded",
            "compile it again on the new torch (compat.compile(..., backend='inductor'))",
        )
    if kind != "torch.export":
        raise UnsafeArtifactError(
            f"{path} is a {kind} archive; only torch.export archives are upgraded", "re-export the model"
        )
    here_list = export_schema_version()
    here = (here_list[0], here_list[1])
    saved = legacy.schema_in(path)
    if saved is None and manifest and manifest.get("export_schema"):
        recorded = manifest["export_schema"]
        saved = (int(recorded[0]), int(recorded[1]))
    saved_torch = (manifest or {}).get("environment", {}).get("torch")
    result = UpgradePlan(path, saved_torch, saved, here)
    chain = _chain(saved, here)
    result.steps = [
        {"id": s.id, "from": list(s.source), "to": list(s.target), "changes": list(s.changes)} for s in chain
    ]
    if saved is None:
        result.verdict = "unknown schema: torch's own reader decides"
    elif chain:
        result.verdict = (
            f"loads here after {len(chain)} migration step(s); `trtshim upgrade` rewrites it once"
        )
    elif saved[0] == here[0]:
        newer = " (a newer minor: it may use fields this torch lacks)" if saved > here else ""
        result.verdict = f"loads here as it is{newer}"
    elif saved[0] > here[0]:
        result.verdict = f"saved by a newer torch ({saved_torch}): load it on torch {saved_torch} or newer"
    else:
        result.verdict = f"no migration bridges export schema {saved[0]}.x to {here[0]}.x"
    return result


def _chain(saved: tuple[int, int] | None, here: tuple[int, int]) -> list[migrations.Step]:
    return migrations.plan(saved, here) if saved and saved[0] < here[0] else []


@serialized
def upgrade(
    old: str | os.PathLike[str], new: str | os.PathLike[str], *, allow_imports: Sequence[str] | None = None
) -> UpgradePlan:
    """Rewrite ``old`` as ``new`` for the installed torch (see the module docstring); ``old`` is not changed."""
    from trtshim.compat.artifact.loading import _deserialize, source_archive
    from trtshim.compat.artifact.saving import SOURCE_NAME, _saved, _torch_save, read_source

    old, new = os.fspath(old), os.fspath(new)
    plan = plan_upgrade(old)
    if plan.saved_schema and plan.saved_schema[0] > plan.here_schema[0]:
        raise IncompatibleArtifactError(
            f"{old}: {plan.verdict}", "upgrade it on a torch at least as new as its own"
        )
    if plan.saved_schema and plan.saved_schema[0] < plan.here_schema[0] and not plan.steps:
        raise IncompatibleArtifactError(f"{old}: {plan.verdict}", "re-export the model on this torch")
    allowed = allowed_imports(allow_imports)
    with OpenedArchive(old) as archive:  # every check on one opening of the file
        manifest, _ = read_manifest(archive)
        check = integrity.begin(archive, manifest)
        if check is None:
            verify_checksums(archive)
        if manifest is not None:
            check_ops(manifest, allow_imports)
            check_pytree_types(manifest, allow_imports)
        pickle_scan.check_archive(archive, allowed_modules=allowed)
        source = (manifest or {}).get("source")
        data = read_source(archive, source) if source else None  # from the same opening
    fixes = active("load", "save")
    chain = _chain(plan.saved_schema, plan.here_schema)  # the plan read the program's record already
    program = _deserialize(old, legacy.repaired(old, fixes, chain))
    if check is not None:
        check.finish()
    program = _saved(_lift_inline_objects(program), fixes)
    updated = _updated_manifest(manifest, plan)
    extra: dict[str, str] = {}
    appended: dict[str, bytes] = {}
    if source and data is not None:
        pickle_scan.check_archive(data, f"the source program inside {old}", allowed)
        source_program = _saved(_deserialize(old, source_archive(data, fixes)), fixes)
        buf = io.BytesIO()
        _torch_save(source_program, buf)
        appended[SOURCE_NAME] = buf.getvalue()
        updated["source"] = {**source, "member": SOURCE_NAME, "bytes": len(buf.getvalue())}
    extra[MANIFEST_NAME] = json.dumps(updated, indent=1)
    if os.path.abspath(old) == os.path.abspath(new):
        raise ArtifactError(
            f"upgrade writes a new file; {new} is the old one", "name another file; then replace it"
        )
    write_atomically(new, lambda fh: _torch_save(program, fh, extra_files=extra), appended=appended)
    return plan


def _lift_inline_objects(program: Any) -> Any:
    """A torch 2.2 program keeps its opaque objects inline in calls (2.2 had no custom-object inputs);
    this torch cannot read back an inline object it wrote itself, so each becomes a lifted custom
    object (an ``obj_*`` placeholder before the user inputs, an ``InputSpec`` of kind ``CUSTOM_OBJ``, the
    object in ``constants``): the form every torch >= 2.3 writes. ``program`` is changed in place."""
    from torch import fx
    from torch.export import graph_signature as gs

    from trtshim.compat.programs.hybrid import _class_fqn
    from trtshim.compat.programs.program import is_script_object

    graph = program.graph_module.graph
    specs = list(program.graph_signature.input_specs)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    first_user = next((i for i, s in enumerate(specs) if s.kind == gs.InputKind.USER_INPUT), len(specs))
    # placeholders go before the first user input (or the first node that is none)
    anchor = (
        placeholders[first_user]
        if first_user < len(placeholders)
        else next(n for n in graph.nodes if n.op != "placeholder")
    )
    constants = program.constants
    names = {id(v): k for k, v in constants.items()}
    lifted: dict[int, fx.Node] = {}
    new_specs: list[Any] = []
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue

        def lift(a: Any) -> Any:
            if not is_script_object(a):
                return a
            if id(a) not in lifted:
                target = names.get(id(a)) or f"_lifted_obj_{len(lifted)}"
                with graph.inserting_before(anchor):
                    ph = graph.placeholder(f"obj_{target}".lower())
                class_fqn = _class_fqn(a)
                ph.meta["val"] = gs.CustomObjArgument(name=ph.name, class_fqn=class_fqn)
                constants[target] = a
                new_specs.append(
                    gs.InputSpec(
                        kind=gs.InputKind.CUSTOM_OBJ,
                        arg=gs.CustomObjArgument(name=ph.name, class_fqn=class_fqn),
                        target=target,
                    )
                )
                lifted[id(a)] = ph
            return lifted[id(a)]

        node.args = fx.node.map_aggregate(node.args, lift)
        node.kwargs = fx.node.map_aggregate(node.kwargs, lift)
    if lifted:
        specs[first_user:first_user] = new_specs
        program._graph_signature = gs.ExportGraphSignature(
            input_specs=specs, output_specs=list(program.graph_signature.output_specs)
        )
        program.graph_module.recompile()
    return program


def _updated_manifest(manifest: dict[str, Any] | None, plan: UpgradePlan) -> dict[str, Any]:
    """The old manifest with this environment's record, and one more entry in its history."""
    env = detect()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    old = dict(
        manifest
        or {"schema": 1, "backend": "program", "format": "torch.export", "inputs": [], "custom_ops": []}
    )
    entry = {
        "torch": plan.saved_torch,
        "export_schema": list(plan.saved_schema) if plan.saved_schema else None,
        "trtshim": old.get("trtshim"),
        "created": old.get("created"),
        "migrations": [s["id"] for s in plan.steps],
        "upgraded": now,
        "upgraded_by": f"trtshim {__version__}",
    }
    old.update(
        trtshim=__version__,
        created=now,
        environment=environment_record(env),
        export_schema=export_schema_version(),
        integrity={"algorithm": integrity.algorithm(), "table": integrity.TABLE_NAME},
        history=[*old.get("history", []), entry],
    )
    return old
