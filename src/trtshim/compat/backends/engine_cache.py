"""trtshim's own TensorRT engine cache, the same on every release and flavour: ``compile(..., cache=DIR)``.

Upstream's cache differs per release and has broken keys and blobs (pytorch/TensorRT#3148: the key
ignored input shapes; #3909, #4226: misses and failed loads; #4230: blobs of an older release raise
``KeyError 'requires_native_multidevice'``). Here an entry is a trtshim artifact of the compiled program
(``compat.save``: manifest, member table, atomic write), named by a key over everything that determines
the engines: the exported program's graph, signature, weights and ranges (after trtshim's profiles),
precision and options, the user's Dim and input names, torch / torch_tensorrt release and flavour /
TensorRT version / engine ABI / device compute capability, and the cache format. A hit loads the entry
(integrity-checked, its engine record read back from its manifest) and skips the build; a corrupt,
foreign or unreadable entry is removed, announced with ``EngineCacheWarning`` and rebuilt. The folder
is bounded by size, least recently used first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.export import ExportedProgram

from trtshim.compat.environment import Environment
from trtshim.compat.programs import program as prog
from trtshim.errors import EngineCacheWarning, OptionError, TrtShimError, announce, first_line

FORMAT = 1  # bump when what an entry holds changes: every older entry then misses
DEFAULT_MAX_BYTES = 8 << 30
SUFFIX = ".trtshim-engine.pt2"


def _tensor_digest(h: Any, name: str, value: Any) -> None:
    h.update(name.encode())
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"{type(t).__name__}{t.dtype}{tuple(t.shape)}".encode())
        try:
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        except (RuntimeError, TypeError):  # a subclass or a dtype numpy cannot view: its serialized form
            buf = io.BytesIO()
            torch.save(t, buf)
            h.update(buf.getvalue())
    else:
        h.update(repr(type(value)).encode())


def program_digest(ep: ExportedProgram) -> str:
    """The graph, signature, ranges and every lifted value of ``ep``."""
    h = hashlib.sha256()
    h.update(ep.graph_module.code.encode())
    h.update(str(ep.graph_signature).encode())
    h.update(repr(sorted((str(k), str(v)) for k, v in ep.range_constraints.items())).encode())
    for node in prog.user_input_placeholders(ep):
        val = node.meta.get("val")
        h.update(f"{node.name}:{getattr(val, 'dtype', None)}:{getattr(val, 'shape', val)}".encode())
    for name, value in sorted(ep.state_dict.items()):
        _tensor_digest(h, name, value)
    for name, value in sorted(prog.program_constants(ep).items()):
        _tensor_digest(h, name, value)
    return h.hexdigest()


@dataclass(frozen=True)
class EngineCache:
    folder: str
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def of(cls, cache: Any) -> EngineCache | None:
        if cache is None or isinstance(cache, EngineCache):
            return cache
        if not isinstance(cache, (str, os.PathLike)):
            raise OptionError(f"cache={cache!r} is not a folder", "pass a path: compile(..., cache='engines/')")
        folder = os.fspath(cache)
        os.makedirs(folder, exist_ok=True)
        return cls(folder)

    def key(self, program: ExportedProgram, env: Environment, device: Mapping[str, Any] | None, **parts: Any) -> str:
        from trtshim.fixes.se6_engine_abi import engine_abi

        record = {
            "format": FORMAT,
            "program": program_digest(program),
            "torch": torch.__version__,
            "torch_tensorrt": env.torch_tensorrt.raw if env.torch_tensorrt else None,
            "flavour": env.torch_tensorrt_flavour,
            "tensorrt": env.tensorrt_version,
            "abi": engine_abi(env),
            "compute_capability": (device or {}).get("compute_capability"),
            **{k: v for k, v in parts.items()},
        }
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()

    def path(self, key: str) -> str:
        return os.path.join(self.folder, key + SUFFIX)

    def get(self, key: str) -> Any | None:
        """The cached module (a ``CompiledModule``), or None: a miss, or an entry that failed its checks
        (removed, announced)."""
        from trtshim.compat.artifact import load

        path = self.path(key)
        if not os.path.exists(path):
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EngineCacheWarning)
                module = load(path, strict=True)
        except (TrtShimError, OSError) as exc:
            announce(f"engine cache entry {os.path.basename(path)} is unusable ({first_line(exc)}); rebuilding", EngineCacheWarning)
            _remove(path)
            return None
        _touch(path)
        return module

    def put(self, key: str, module: Any) -> str:
        from trtshim.compat.artifact import save

        path = save(module, self.path(key), include_source=False)
        _touch(path)
        self.prune()
        return path

    def prune(self) -> list[str]:
        """Remove least recently used entries until the folder holds at most ``max_bytes``."""
        entries = []
        for name in os.listdir(self.folder):
            if name.endswith(SUFFIX):
                full = os.path.join(self.folder, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:  # another process pruned it
                    continue
                entries.append((st.st_mtime_ns, st.st_size, full))
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, full in sorted(entries):
            if total <= self.max_bytes:
                break
            _remove(full)
            total -= size
            removed.append(full)
        return removed


def _touch(path: str) -> None:
    """Mark an entry the most recently used (least recently used goes first): later than now and than
    every other entry. A file system stamps times from a coarse clock (ticks of a few ms), and entries
    can carry another machine's clock, so "now" alone could tie with or precede an older use."""
    folder = os.path.dirname(path)
    newest = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(SUFFIX) and entry.path != path:
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, entry.stat().st_mtime_ns)
    stamp = max(time.time_ns(), newest + 1)
    os.utime(path, ns=(stamp, stamp))


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # another process removed it first
        os.unlink(path)


def cached(cache: EngineCache | None, key: Callable[[], str], build: Callable[[], Any]) -> tuple[Any, bool]:
    """(the module, whether it came from the cache): ``build()`` only on a miss, its module stored."""
    if cache is None:
        return build(), False
    k = key()
    hit = cache.get(k)
    if hit is not None:
        return hit, True
    module = build()
    cache.put(k, module)
    return module, False
