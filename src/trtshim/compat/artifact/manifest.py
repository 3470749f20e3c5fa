"""The JSON manifest stored inside every artifact, and reading it without deserializing anything.

Torch-free: ``trtshim inspect`` and the first steps of ``load`` use only ``zipfile`` and ``json``.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from typing import Any

from trtshim.compat.artifact.trust.manifest_schema import MAX_MANIFEST_BYTES, validate
from trtshim.compat.artifact.trust.opened import OpenedArchive
from trtshim.compat.call.summary import input_summary
from trtshim.errors import CorruptedArtifactError, NotAnArtifactError

MANIFEST_NAME = "trtshim_manifest.json"
MANIFEST_SCHEMA = 1
# Entries that mark a torch.export archive: the legacy zip (<= 2.7) and the PT2 archive (>= 2.8).
_EXPORT_MARKERS = ("serialized_exported_program.json", "models/model.json", "/models/", "archive_format")
_TORCHSCRIPT_MARKERS = ("constants.pkl", "/code/")


def read_member(source: str | os.PathLike[str] | OpenedArchive, name: str) -> bytes:
    """The bytes of the archive member whose file name is ``name`` (any folder prefix)."""
    if not isinstance(source, OpenedArchive):
        with OpenedArchive(source) as opened:
            return read_member(opened, name)
    entry = next((n for n in source.names if n.rsplit("/", 1)[-1] == name), None)
    if entry is None:
        raise CorruptedArtifactError(f"{source.path} has no member {name!r} although its manifest names it")
    return source.read(entry)


def verify_checksums(source: str | os.PathLike[str] | OpenedArchive) -> None:
    """Check every member's CRC-32: torch's own readers do not, and load damaged weights silently."""
    if not isinstance(source, OpenedArchive):
        with OpenedArchive(source) as opened:
            return verify_checksums(opened)
    try:
        bad = source.zip.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, NotImplementedError) as exc:
        raise CorruptedArtifactError(f"{source.path} cannot be read to the end: {exc}") from exc
    if bad is not None:
        raise CorruptedArtifactError(f"{source.path} is damaged: the checksum of its member {bad!r} does not match")
    return None


def archive_kind(names: list[str]) -> str:
    """``"aoti"`` (a PT2 archive holding AOTInductor code), ``"torch.export"``, ``"torchscript"`` or
    ``"unknown"`` from the entry names of a zip."""
    if any("data/aotinductor/" in n for n in names):
        return "aoti"
    if any(n.endswith(m) or m in n for n in names for m in _EXPORT_MARKERS):
        return "torch.export"
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    return "unknown"


def read_manifest(source: str | os.PathLike[str] | OpenedArchive) -> tuple[dict[str, Any] | None, str]:
    """(manifest or None, archive kind) read straight from the zip (a path, or an archive ``load``
    opened once); nothing is deserialized."""
    if not isinstance(source, OpenedArchive):
        with OpenedArchive(source) as opened:
            return read_manifest(opened)
    path, names = source.path, source.names
    kind = archive_kind(names)
    if kind == "unknown":
        raise NotAnArtifactError(f"{path} is a zip archive, but not a torch.export, AOTInductor or TorchScript one")
    entries = [n for n in names if n.rsplit("/", 1)[-1] == MANIFEST_NAME]
    if not entries:
        return None, kind
    if len(entries) > 1:
        raise CorruptedArtifactError(f"{path} holds {len(entries)} manifests", "the file was edited; re-save it")
    try:
        data = source.read(entries[0], MAX_MANIFEST_BYTES)  # at most the cap: declared sizes can lie (deflate bombs)
        if len(data) > MAX_MANIFEST_BYTES:
            raise CorruptedArtifactError(
                f"the manifest inside {path} is larger than {MAX_MANIFEST_BYTES // 2**20} MiB",
                "real manifests are a few kB: the file was edited",
            )
        manifest = json.loads(data.decode("utf-8"))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, RecursionError, NotImplementedError) as exc:
        what = "is nested too deeply" if isinstance(exc, RecursionError) else f"cannot be read: {exc}"
        raise CorruptedArtifactError(f"the manifest inside {path} {what}") from exc
    if not isinstance(manifest, dict) or "schema" not in manifest:
        raise CorruptedArtifactError(f"the manifest inside {path} is not a trtshim manifest")
    return validate(manifest, path), kind


def format_manifest(manifest: dict[str, Any], file_bytes: int | None = None) -> str:
    """A human summary of a manifest (``trtshim inspect``); ``file_bytes``: the artifact's size, to say what
    its stored source program costs."""
    env = manifest.get("environment", {})
    lines = [
        f"trtshim artifact (manifest schema {manifest.get('schema')}, written by trtshim {manifest.get('trtshim')})",
        f"  created        {manifest.get('created')}",
        f"  backend        {manifest.get('backend')}   format {manifest.get('format')}"
        + (f"   written by {manifest['exporter']}" if manifest.get("exporter") else ""),
        f"  torch          {env.get('torch')}   CUDA {env.get('cuda') or 'none (CPU build)'}"
        f"   export schema {manifest.get('export_schema')}",
        f"  torch_tensorrt {env.get('torch_tensorrt') or '-'}"
        + (f" [{env.get('torch_tensorrt_flavour')}]" if env.get("torch_tensorrt") else ""),
        f"  tensorrt       {env.get('tensorrt_version') or '-'}",
        f"  python         {env.get('python')} ({env.get('platform')})",
    ]
    for i, spec in enumerate(manifest.get("inputs", [])):
        lines.append(f"  input {i}        {spec.get('path') or spec.get('name')} {input_summary(spec)}")
    ops = manifest.get("custom_ops", [])
    lines.append(
        "  custom ops     "
        + (", ".join(f"{o['qualname']} ({o.get('module') or '?'})" for o in ops) or "none")
    )
    types = manifest.get("pytree_types") or []
    if types:
        lines.append("  pytree types   " + ", ".join(f"{t.get('type')} ({t.get('module')})" for t in types))
    applied = [f for f in manifest.get("fixes", []) if f.get("applied")]
    stages: dict[str, list[str]] = {}
    for f in applied:  # manifests before stages were recorded list ids only
        for stage in f.get("stages") or ["-"]:
            stages.setdefault(stage, []).append(f["id"])
    shown = "; ".join(f"{k}: {', '.join(v)}" if k != "-" else ", ".join(v) for k, v in stages.items())
    lines.append("  fixes applied  " + (shown or "none"))
    lines += _engine_lines(manifest.get("engine"))
    if manifest.get("ir"):
        lines.append(f"  program IR     {manifest['ir']}")
    lines += _source_lines(manifest.get("source"), file_bytes)
    if manifest.get("target_torch"):
        lines.append(f"  written for    torch {manifest['target_torch']} (save(..., target_torch=))")
    for entry in manifest.get("history") or []:
        if isinstance(entry, dict):
            steps = ", ".join(entry.get("migrations") or []) or "no migration"
            lines.append(f"  upgraded from  torch {entry.get('torch')} (export schema {entry.get('export_schema')}): {steps}")
    return "\n".join(lines)


def _source_lines(source: Any, file_bytes: int | None) -> list[str]:
    """The stored source program (``include_source``): its size, and the file's size against one without it."""
    if not isinstance(source, dict) or not isinstance(source.get("bytes"), int):
        return []
    raw = source["bytes"]
    stored = -(-raw // 3) * 4 if str(source.get("member", "")).endswith(".b64") else raw  # base64 in trtshim 0.1
    line = f"  source program {raw} bytes, stored as {'base64 text' if stored != raw else 'bytes'}"
    if file_bytes and file_bytes > stored:
        line += f"   file {file_bytes / (file_bytes - stored):.2f}x the size without it"
    return [line]


def _engine_lines(engine: Any) -> list[str]:
    """The TensorRT engines as the builder made them: flavour, TensorRT, ABI, options applied (and asked
    for, where they differ), device, each engine's input profiles."""
    if not isinstance(engine, dict):
        return []
    lines = [
        f"  engines        {engine.get('flavour')} {engine.get('torch_tensorrt')}   TensorRT {engine.get('tensorrt')}"
        f"   engine ABI {engine.get('abi')}"
    ]
    requested = engine.get("requested") or {}
    flags = []
    for name in ("version_compatible", "hardware_compatible", "refit"):
        if name in engine:
            asked = requested.get(name)
            note = f" (asked {'yes' if asked else 'no'})" if asked is not None and bool(asked) != bool(engine[name]) else ""
            flags.append(f"{name}={'yes' if engine[name] else 'no'}{note}")
    lines.append("  applied        " + ", ".join(flags))
    for d in engine.get("dims") or []:
        if isinstance(d, dict):
            lines.append(f"  Dim {d.get('dim')!r:<10} engines take [{d.get('min')}, {d.get('max')}], opt {d.get('opt')}; the call refuses the rest")
    device = engine.get("device")
    if isinstance(device, dict):
        lines.append(f"  built for      {device.get('name')} (compute capability {device.get('compute_capability')})")
    for i, built in enumerate(engine.get("engines") or []):
        if not isinstance(built, dict):
            continue
        shapes = "; ".join(
            f"{p.get('name')} min {tuple(p.get('min') or ())} opt {tuple(p.get('opt') or ())} max {tuple(p.get('max') or ())}"
            for p in built.get("profiles") or []
            if isinstance(p, dict)
        )
        lines.append(f"  engine {i}       {', '.join(built.get('flags') or []) or 'no flags'}; {shapes or 'static shapes'}")
    return lines
