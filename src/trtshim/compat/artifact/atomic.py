"""Atomic writes: a temporary file beside the target, sealed with the member table, swapped into place.

Whatever stops a write (an error, a full disk, a kill of the process) leaves the old file as it was; a
kill leaves its temporary file, which the next write to the same folder removes. That is the default
promise. It does not cover a power loss or a kernel crash: the new file's bytes may still be in the page
cache when its name is. ``durable=True`` covers those too: the file is fsynced before the rename and its
folder after (it costs what the disk takes to write the file out: ``benchmarks/save_load.py`` prints it).

On Linux the new file replaces an existing one by ``renameat2(RENAME_EXCHANGE)``, and the old one is
then unlinked while held open, its descriptor closed (its blocks freed) in a background thread: a plain
rename over an existing file makes ext4 start writing the new file out inside the rename (its
``auto_da_alloc``), which costs a save about half of torch's own write time at 50 MB. Where the exchange
is not available, ``os.replace``; both are atomic.

Large writes (>= 1 MiB) are hashed in a second thread while they are written (``_GuardedWriter``).
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import sys
import tempfile
from typing import Any

from trtshim.compat.artifact import workers
from trtshim.compat.artifact.trust import integrity
from trtshim.errors import ArtifactError, ArtifactWriteError, first_line


def write_atomically(
    path: str, write: Any, *, durable: bool = False, appended: dict[str, bytes] | None = None
) -> str:
    """Write through ``write(fileobj)`` into a temporary file beside ``path``, add the ``appended``
    members in the archive's top folder, seal it with the member table, rename (with ``durable``: fsync first).
    Whatever stops it (an error, a full disk, a kill) leaves the old file as it was; a kill leaves its
    temporary file, which the next save to the same folder removes."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ArtifactError(f"the folder {folder} does not exist", "create it first")
    base = os.path.basename(path)
    remove_stale_temporaries(folder, base)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.{os.getpid()}.", suffix=".tmp", dir=folder)
    try:
        tap = integrity.StreamDigests(integrity.algorithm())  # the member digests, as the bytes are written
        with os.fdopen(fd, "wb") as fh:
            guarded = _GuardedWriter(fh, tap)
            write(guarded)
            if guarded.error is not None:
                raise guarded.error
        integrity.seal(tmp, tap, appended=appended)
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        elif _exchange(tmp, path):
            _discard(tmp)  # the old file, now under the temporary name
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            free = shutil.disk_usage(folder).free / 2**20
            raise ArtifactWriteError(
                f"no space left in {folder} while writing {base} ({free:.1f} MiB free): {first_line(exc)}"
            ) from exc
        raise
    if durable:
        _fsync_folder(folder)
    return path


#: writes at least this large are hashed in a second thread while they are written
_OVERLAP_BYTES = 1 << 20


def _hashing_thread() -> Any:
    """The thread that hashes large writes."""
    return workers.pool("digest")


def _discard(old: str) -> None:
    """Remove ``old`` (the replaced file, under its temporary name). Its name goes now; its blocks are freed
    when the last descriptor closes, which a background thread does: freeing takes ~1.5 ms per 8 MB, which
    torch pays inside its own save (it truncates the old file). A kill closes the descriptor too."""
    fd = os.open(old, os.O_RDONLY)
    try:
        os.unlink(old)
    except BaseException:
        os.close(fd)
        raise
    workers.pool("discard").submit(os.close, fd)


def settle() -> None:
    """Wait until the blocks of every replaced file are freed (benchmarks: nothing left running)."""
    workers.pool("discard").submit(lambda: None).result()


class _GuardedWriter(io.RawIOBase):
    """The file torch writes into: a failed write is remembered and reported after torch returns, never
    raised into torch's writer (whose C++ destructor then aborts the process: a full disk killed it)."""

    def __init__(self, fh: Any, tap: Any = None) -> None:
        super().__init__()
        self._fh = fh
        self._tap = tap  # integrity.StreamDigests: sees every write with its position
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = len(memoryview(data).cast("B"))
        if self.error is None:
            try:
                if self._tap is None:
                    self._fh.write(data)
                elif size >= _OVERLAP_BYTES:
                    # the digest and the write side by side (both release the GIL): the hash costs what the
                    # write does not already take; torch's buffer stays valid until this call returns
                    hashed = _hashing_thread().submit(self._tap.feed, self._fh.tell(), data)
                    try:
                        self._fh.write(data)
                    finally:
                        hashed.result()
                else:
                    self._tap.feed(self._fh.tell(), data)
                    self._fh.write(data)
            except OSError as exc:
                self.error = exc
        return size

    def tell(self) -> int:
        return int(self._fh.tell())

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._fh.seek(offset, whence))

    def flush(self) -> None:
        if self.error is None:
            try:
                self._fh.flush()
            except OSError as exc:
                self.error = exc


_TEMPORARY = re.compile(r"^\.(?P<base>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def remove_stale_temporaries(folder: str, base: str) -> list[str]:
    """Remove the temporary files of saves to ``folder/base`` whose process is gone (killed mid-save)."""
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if not match or match.group("base") != base or _alive(int(match.group("pid"))):
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be saving
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None  # libc's renameat2, looked up once; False where there is none


def _exchange(tmp: str, path: str) -> bool:
    """Swap ``tmp`` and an existing ``path`` in one step (Linux); False where that cannot be done (no
    file at ``path`` yet, a filesystem or libc without the call), and nothing was changed."""
    global _renameat2
    if not sys.platform.startswith("linux") or not os.path.isfile(path) or os.path.islink(path):
        return False  # only a regular file is swapped out (a folder would be moved, not refused)
    if _renameat2 is None:
        try:
            import ctypes

            _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    return bool(_renameat2(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE) == 0)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
