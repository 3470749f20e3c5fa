"""Every pickle inside an artifact is read statically before torch unpickles anything: ``load`` runs no
code from a file.

torch.export archives hold pickles (state dicts, constants, example inputs, custom objects; in nested
``torch.save`` zips on every torch 2.2-2.15), and torch's loaders unpickle them; a ``__reduce__``
payload there runs on load. Here each pickle's opcodes are walked with ``pickletools`` (nothing is
executed) and every global it would import must be one torch's own serialization uses: tensor and
storage rebuilders, dtypes, ``OrderedDict``, TorchScript's list builders, and custom classes
registered in this process (``__torch__.torch.classes.ns.Name``). Tensor subclasses (wrapper subclasses
such as torch's ``TwoTensor`` or torchao's quantized weights) and other globals pass only where this
process vouches for them: registered with ``torch.serialization.add_safe_globals``, or (tensor subclasses
only) defined in a module the caller allows (``allow_imports``); nothing is imported because a file names
it. Python 2 names (``__builtin__.set``, which protocol-2 pickles of Python objects hold) are read the
way the unpickler reads them. Anything else is refused with ``UnsafeArtifactError`` naming the member
and the global, before any member is unpickled. Nested zips
stored uncompressed (what ``torch.save`` writes) are read in place: only their pickles are read.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import os
import pickletools
import re
import sys
import zipfile
from collections.abc import Collection, Iterator
from typing import IO, Any

from trtshim.compat.artifact.trust.opened import OpenedArchive
from trtshim.errors import CorruptedArtifactError, UnsafeArtifactError

_STRING_OPS = {
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING",
}
_FORBIDDEN_OPS = {"EXT1", "EXT2", "EXT4"}  # callables from copyreg's extension registry

#: (module, name) pairs torch's own pickles use
ALLOWED = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("_codecs", "encode"),  # how protocol-2 pickles spell bytes (fake-tensor example inputs); makes bytes only
    ("torch", "Size"),
    ("torch", "device"),
    ("torch", "ScriptObject"),  # a custom object's state, restored by its registered C++ class
    ("torch", "Tensor"),
    ("torch._tensor", "_rebuild_from_type_v2"),  # a tensor with Python state: func and type are globals too
    ("torch._utils", "_rebuild_wrapper_subclass"),  # its class is a global of its own, checked as such
    ("torch.serialization", "_get_layout"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_nested_tensor"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"),
    ("torch.storage", "UntypedStorage"),
    ("torch.storage", "TypedStorage"),
    ("torch.nn.parameter", "Parameter"),
    ("torch.jit._pickle", "restore_type_tag"),
    ("torch.jit._pickle", "build_intlist"),
    ("torch.jit._pickle", "build_tensorlist"),
    ("torch.jit._pickle", "build_doublelist"),
    ("torch.jit._pickle", "build_boollist"),
    ("torch.jit._pickle", "build_tensor_from_id"),
}
_TORCH_NAMES = ("Storage",)  # torch.FloatStorage, torch.QInt8Storage, ...
_TORCH_VALUES = {  # dtypes, memory formats, quantization schemes torch pickles by name
    "float32", "float64", "float16", "bfloat16", "complex64", "complex128", "int8", "int16", "int32",
    "int64", "uint8", "uint16", "uint32", "uint64", "bool", "qint8", "quint8", "qint32", "quint4x2",
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "contiguous_format",
    "channels_last", "channels_last_3d", "preserve_format", "per_tensor_affine", "per_channel_affine",
    "per_tensor_symmetric", "per_channel_symmetric", "per_channel_affine_float_qparams", "strided",
    "sparse_coo", "sparse_csr",
}


def _custom_class_registered(module: str, name: str) -> bool:
    """``__torch__.torch.classes.ns`` / ``Name``: a TorchBind class; allowed when registered here."""
    ns = module[len("__torch__.torch.classes.") :]
    if not ns or "." in ns:
        return False
    import torch

    try:
        return getattr(getattr(torch.classes, ns), name) is not None
    except (AttributeError, RuntimeError):
        return False


def module_allowed(module: str, allowed: Collection[str]) -> bool:
    """``module`` is named in ``allowed``, or lies inside a package named there (``torchao`` allows
    ``torchao.dtypes``)."""
    return any(module == a or module.startswith(a + ".") for a in allowed)


def python3_name(module: str, name: str) -> tuple[str, str]:
    """The global the unpickler really imports: protocol < 3 pickles name Python 2 modules
    (``__builtin__``, ``copy_reg``), which it maps through ``_compat_pickle`` first."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _safe_globals() -> set[str]:
    """``module.name`` of every global registered with ``torch.serialization.add_safe_globals``."""
    import torch

    get = getattr(torch.serialization, "get_safe_globals", None)
    names: set[str] = set()
    for entry in get() if get is not None else ():
        if isinstance(entry, tuple):  # (obj, "module.name"): registered under another name
            names.add(str(entry[1]))
        else:
            names.add(f"{getattr(entry, '__module__', '')}.{getattr(entry, '__qualname__', '')}")
    return names


def _tensor_subclass(module: str, name: str, allowed_modules: Collection[str]) -> bool:
    """``module.name`` is a torch.Tensor subclass in a module the caller allows (imported if need be)."""
    if not module_allowed(module, allowed_modules):
        return False
    import torch

    try:
        mod = sys.modules.get(module) or importlib.import_module(module)
    except Exception:
        return False
    obj: Any = mod
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return isinstance(obj, type) and issubclass(obj, torch.Tensor)


def allowed(module: str, name: str, allowed_modules: Collection[str] = ()) -> bool:
    module, name = python3_name(module, name)
    if (module, name) in ALLOWED:
        return True
    if module == "torch" and (name.endswith(_TORCH_NAMES) or name in _TORCH_VALUES):
        return True
    if module.startswith("__torch__.torch.classes."):
        return _custom_class_registered(module, name)
    return f"{module}.{name}" in _safe_globals() or _tensor_subclass(module, name, allowed_modules)


def _globals(stream: IO[bytes]) -> Iterator[tuple[str, str]]:
    """The (module, name) of every global the pickle in ``stream`` would import, in order."""
    memo: dict[Any, Any] = {}
    strings: list[Any] = []
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name in _STRING_OPS:
            strings.append(arg)
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = strings[-1] if strings else None
        elif name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            strings.append(memo.get(arg))
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            yield module, attr
        elif name == "STACK_GLOBAL":
            pair = (str(strings[-2]), str(strings[-1])) if len(strings) >= 2 else ("?", "?")
            yield pair
        elif name in _FORBIDDEN_OPS:
            yield "copyreg extension", str(arg)


class _Slice(io.RawIOBase):
    """A read-only window ``[offset, offset + size)`` of a file: a stored nested zip, read in place."""

    def __init__(self, fh: IO[bytes], offset: int, size: int) -> None:
        self._fh, self._offset, self._size, self._pos = fh, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, min(self._size, base + pos))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        self._fh.seek(self._offset + self._pos)
        data = self._fh.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _data_offset(fh: IO[bytes], info: zipfile.ZipInfo) -> int:
    fh.seek(info.header_offset)
    header = fh.read(30)
    name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


def _check_pickle(stream: IO[bytes], where: str, allowed_modules: Collection[str]) -> None:
    """Every pickle in ``stream`` (torch's legacy files hold several in a row), up to the first bytes
    that are not one (the raw storages that follow them): each global must be allowed."""
    first = True
    while True:
        start = stream.tell()
        try:
            for module, name in _globals(stream):
                if not allowed(module, name, allowed_modules):
                    raise UnsafeArtifactError(
                        f"{where} is a pickle that imports {module}.{name}, which no torch artifact needs "
                        "and this process has not allowed: loading it would run code from the file",
                        _hint(module, name),
                    )
        except UnsafeArtifactError:
            raise
        except Exception as exc:
            if first and where.endswith(".pkl"):
                raise UnsafeArtifactError(f"{where} cannot be read as a pickle ({exc}), yet torch would unpickle it") from exc
            return
        first = False
        if stream.tell() == start or not stream.read(1):
            return
        stream.seek(-1, 1)


def _hint(module: str, name: str) -> str:
    if module.split(".")[0] in ("builtins", "os", "posix", "nt", "subprocess", "sys", "importlib", "runpy"):
        return "do not load files from untrusted sources"
    return (
        f"if {module}.{name} is a tensor subclass you trust, pass load(..., allow_imports=[{module!r}]) or "
        f"register it first: torch.serialization.add_safe_globals([{name}])"
    )


_RAW_NAME = re.compile(r"(^|/)(\d+|weight_\d+|constant_\d+|tensor_\d+)$|/tensor_data/")
_RAW_STORAGE = re.compile(r"(^|/)data/\d+$|(^|/)weights/|/tensor_data/")


def _scan_zip(
    zf: zipfile.ZipFile,
    fh: IO[bytes] | None,
    where: str,
    depth: int,
    allowed_modules: Collection[str],
    opened: OpenedArchive | None = None,
) -> None:
    """Every pickle in ``zf`` and in the zips nested in it; ``opened``: the archive ``zf`` is the top of,
    whose kept bytes and member places are used instead of reading the members again."""
    for info in zf.infolist():
        if info.is_dir():
            continue
        label = f"{where}{info.filename}"
        if opened is not None:
            head = opened.head(info.filename)
        else:
            with zf.open(info) as member:
                head = member.read(4)
        if head[:4] == b"PK\x03\x04" and depth < 2:
            if info.compress_type == zipfile.ZIP_STORED and fh is not None:
                offset = opened.places()[info.filename].offset if opened is not None else _data_offset(fh, info)
                inner_fh: IO[bytes] = io.BufferedReader(_Slice(fh, offset, info.file_size))
            else:
                inner_fh = io.BytesIO(zf.read(info))
            try:
                inner = zipfile.ZipFile(inner_fh)
            except (zipfile.BadZipFile, ValueError, NotImplementedError, EOFError, OSError) as exc:
                if _RAW_NAME.search(info.filename):
                    continue  # raw tensor bytes that happen to start like a zip: torch never opens them as one
                # torch's own zip reader may still open it: its pickles must not go unread
                raise CorruptedArtifactError(
                    f"{label} is a nested archive that cannot be read statically ({exc}), so its pickles "
                    "cannot be checked"
                ) from exc
            with inner:
                _scan_zip(inner, inner_fh, f"{label}!", depth + 1, allowed_modules)
        elif (head[:1] == b"\x80" and not _RAW_STORAGE.search(info.filename)) or info.filename.endswith(".pkl"):
            if opened is not None:
                _check_pickle(io.BytesIO(opened.read(info.filename)), label, allowed_modules)
            else:
                with zf.open(info) as member:
                    _check_pickle(member, label, allowed_modules)


def check_archive(
    path: str | os.PathLike[str] | IO[bytes] | OpenedArchive, label: str | None = None, allowed_modules: Collection[str] = ()
) -> None:
    """Refuse an archive (a path, a seekable binary file, or one ``load`` opened) if any pickle inside it, nested zips
    included, imports something torch's own serialization does not and this process has not allowed
    (``allowed_modules``: where tensor subclasses may come from): ``UnsafeArtifactError`` names the
    member and the global."""
    if isinstance(path, OpenedArchive):
        _scan_zip(path.zip, path.file, f"{label or path.path}:", 0, allowed_modules, opened=path)
        return
    if isinstance(path, (str, os.PathLike)):
        with open(path, "rb") as fh:
            check_archive(fh, label or os.fspath(path), allowed_modules)
        return
    with zipfile.ZipFile(path) as zf:
        _scan_zip(zf, path, f"{label or 'archive'}:", 0, allowed_modules)
