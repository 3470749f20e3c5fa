"""Member digests: every artifact ``save`` writes carries the digest of each of its members, and ``load``
verifies them.

``save`` lets torch write the archive (the manifest among its extra files), then appends one member
beside the manifest, ``trtshim_members.json``: for every other member, the manifest included, the
digest of its stored bytes, their length and the zip method. The digest is BLAKE3 (the ``blake3``
package: several GB/s a core, so hashing costs a fraction of writing) where it is installed, else
SHA-256; the table names its algorithm, and tables of either kind verify. ``load`` checks the archive's member names
against that table (a missing or extra member is refused; a name twice is refused earlier), hashes every
member torch parses (program JSON, pickles, configs, the manifest) before anything is parsed, and hashes
the bulk members (raw tensor bytes, >= 1 MiB) while torch deserializes. The loaded program is handed out
only once every digest matched.

Bulk members that the loader reads for torch itself (``read_here``: ``compat/artifact/tensor_reads.py``,
torch 2.9+) are hashed by that reader from the bytes it hands over (``Verification.took``). The other
bulk hashing runs in a helper process (this module's ``serve``) where one can be started (torch's
storage reads hold the GIL, so a thread would wait for torch instead of running beside it); else, or
while the helper is busy with another load, in a thread. ``$TRTSHIM_HASH_WORKER=0`` turns the helper
off. Torch-free.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import mmap
import os
import subprocess
import sys
import threading
import zipfile
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from trtshim.compat.artifact.trust.opened import Member, OpenedArchive, members
from trtshim.errors import CorruptedArtifactError

TABLE_NAME = "trtshim_members.json"
ALGORITHMS = ("blake3", "sha256")  # what tables may name; new tables use the first one installed
BULK_BYTES = 1 << 20
MAX_TABLE_BYTES = 4 * 2**20
_CHUNK = 1 << 24
_PARSED_SUFFIXES = (".json", ".pkl", ".py")  # never bulk: torch parses them


def algorithm() -> str:
    """The digest new tables use: BLAKE3 where the ``blake3`` package imports, else SHA-256."""
    try:
        import blake3  # noqa: F401
    except ImportError:
        return "sha256"
    return "blake3"


_threads_pid: list[int] = []  # the process whose BLAKE3 (rayon) thread pool is in use


def _threads_usable() -> bool:
    """Whether BLAKE3 may hash on several threads here: not in a child forked after its parent used them
    (the child inherits the pool's state without its threads, and a multi-threaded update never returns)."""
    if not _threads_pid:
        _threads_pid.append(os.getpid())
    return _threads_pid[0] == os.getpid()


def hasher(name: str) -> Any:
    """A fresh hash object of the table algorithm ``name`` (``update``, ``hexdigest``)."""
    if name == "sha256":
        return hashlib.sha256()
    if name == "blake3":
        try:
            from blake3 import blake3
        except ImportError as exc:
            raise CorruptedArtifactError(
                "this archive's member table uses BLAKE3, and the blake3 package is not installed",
                "pip install blake3 (a dependency of trtshim; the install is incomplete)",
            ) from exc
        return blake3(max_threads=blake3.AUTO if _threads_usable() else 1)
    raise CorruptedArtifactError(f"unknown digest algorithm {name!r}", f"tables use one of {ALGORITHMS}")


def _hash_ranges(path: str, ranges: list[tuple[int, int]], name: str) -> list[str]:
    """The ``name`` digest of each (offset, length) range of the file, read through mmap (no copies)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return [hasher(name).hexdigest() for _ in ranges]
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                out = []
                for offset, length in ranges:
                    h = hasher(name)
                    for start in range(offset, offset + length, _CHUNK):
                        h.update(view[start : min(offset + length, start + _CHUNK)])
                    out.append(h.hexdigest())
                return out
            finally:
                view.release()


class StreamDigests:
    """The digest (``algorithm``) of each member's stored bytes, taken from the bytes as a writer emits a zip front to
    back (torch's writer does), so that the save need not read its file back to hash it.

    ``feed(position, data)`` for every write, before the bytes go to the file. A write that starts with a
    local header starts a member: its stored bytes begin after the header's name and extra field, and a
    running digest over them is noted after every write (torch writes each member's data, then its data
    descriptor, as writes of their own). ``result()`` maps (offset, end) to the digest of those bytes;
    ``seal`` takes a digest only where a member's offset and end in the written archive's directory match
    exactly, and reads back whatever else it needs, so the table is the same either way. A write out of
    order stops the tap. Hashing runs in the writer's thread (hashlib releases the GIL; a second thread
    would have to copy every buffer torch hands out, which costs more than it overlaps on few cores).
    """

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._expected = 0
        self._stopped = False
        self._digests: dict[tuple[int, int], str] = {}
        self._running: Any = None  # digest of the current member's stored bytes so far
        self._start = 0  # offset of the current member's stored bytes

    def feed(self, position: int, data: Any) -> None:
        if self._stopped:
            return
        if position != self._expected:  # a seek back: the stream is no longer front to back
            self._stopped = True
            self._digests.clear()
            return
        view = memoryview(data).cast("B")
        self._expected += len(view)
        # a local header starts a member, except as the first bytes of a member's data (a nested zip)
        if (
            view[:4] == b"PK\x03\x04"
            and len(view) >= 30
            and (self._running is None or position > self._start)
        ):
            names = int.from_bytes(view[26:28], "little") + int.from_bytes(view[28:30], "little")
            self._start, self._running = position + 30 + names, hasher(self.algorithm)
        if self._running is None or position + len(view) <= self._start:
            return
        self._running.update(view[max(0, self._start - position) :])
        self._digests[(self._start, position + len(view))] = self._running.hexdigest()

    def result(self) -> dict[tuple[int, int], str]:
        return dict(self._digests)


def seal(
    path: str,
    streamed: StreamDigests | None = None,
    name: str | None = None,
    appended: dict[str, bytes] | None = None,
) -> None:
    """Append the member table beside the manifest of the archive at ``path`` (a file being saved), in
    the algorithm ``name`` (default: ``algorithm()``); ``streamed``: the digests taken while it was
    written, used where they match a member and are of that algorithm. ``appended``: members to store
    (uncompressed) in the archive's top folder first, hashed from the bytes in hand."""
    name = name or (streamed.algorithm if streamed is not None else algorithm())
    with zipfile.ZipFile(path, "a") as zf:  # the directory read once; the table written through the same handle
        infos = zf.infolist()
        manifest = next(
            (i.filename for i in infos if i.filename.rsplit("/", 1)[-1] == "trtshim_manifest.json"), None
        )
        if manifest is None:
            raise CorruptedArtifactError(f"{path}: torch did not write the manifest into the archive")
        folder = manifest[: -len("trtshim_manifest.json")]
        root = folder.rstrip("/").rpartition("/")[0]  # the archive's top folder: torch reads extra/ as text
        own: dict[str, str] = {}  # appended members, hashed from their bytes
        for member, data in (appended or {}).items():
            full = f"{root}/{member}" if root else member
            zf.writestr(zipfile.ZipInfo(full, date_time=(1980, 1, 1, 0, 0, 0)), data)
            h = hasher(name)
            h.update(data)
            own[full] = h.hexdigest()
        if appended:
            infos = zf.infolist()
            assert zf.fp is not None
            zf.fp.flush()  # read back below through another handle
        found = members(path, infos)
        known = streamed.result() if streamed is not None and streamed.algorithm == name else {}
        known.update({(m.offset, m.offset + m.stored): own[m.name] for m in found if m.name in own})
        missing = [m for m in found if (m.offset, m.offset + m.stored) not in known]
        read_back = dict(
            zip([m.name for m in missing], _hash_ranges(path, [(m.offset, m.stored) for m in missing], name))
        )
        digests = [known.get((m.offset, m.offset + m.stored)) or read_back[m.name] for m in found]
        table = {"algorithm": name, "members": {m.name: m.record(d, name) for m, d in zip(found, digests)}}
        # compact: json's C encoder (indent= runs the pure-Python one, 3x slower on a large table)
        zf.writestr(folder + TABLE_NAME, json.dumps(table, separators=(",", ":"), sort_keys=True))


def read_table(path: str, zf: zipfile.ZipFile | OpenedArchive) -> tuple[dict[str, Any], bytes] | None:
    """(the member table, its bytes) of an open archive, validated; None where it has none."""
    names = zf.names if isinstance(zf, OpenedArchive) else zf.namelist()
    entry = next((n for n in names if n.rsplit("/", 1)[-1] == TABLE_NAME), None)
    if entry is None:
        return None
    try:
        if isinstance(zf, OpenedArchive):
            data = zf.read(entry, MAX_TABLE_BYTES)
        else:
            with zf.open(entry) as fh:
                data = fh.read(MAX_TABLE_BYTES + 1)
        table = json.loads(data.decode("utf-8")) if len(data) <= MAX_TABLE_BYTES else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RecursionError, NotImplementedError, zlib.error) as exc:
        raise CorruptedArtifactError(f"the member table inside {path} cannot be read: {exc}") from exc
    problem = _table_problem(table)
    if problem:
        raise CorruptedArtifactError(f"the member table inside {path} is malformed: {problem}")
    assert table is not None
    return table, data


def _table_problem(table: Any) -> str | None:
    if not isinstance(table, dict):
        return "not an object (or larger than 4 MiB)"
    kind = table.get("algorithm")
    if kind not in ALGORITHMS:
        return f"algorithm {kind!r}, expected one of {ALGORITHMS}"
    entries = table.get("members")
    if not isinstance(entries, dict):
        return "members: expected an object"
    for name, rec in entries.items():
        if not (
            isinstance(rec, dict)
            and isinstance(rec.get(kind), str)
            and len(rec[kind]) == 64
            and all(type(rec.get(k)) is int for k in ("stored", "method"))
        ):
            return f"members[{name!r}]: expected {{{kind}, stored, method}}"
    return None


@dataclass
class Verification:
    """Digests being checked for one load: small members already checked, bulk ones in the background
    (the helper) or by the reader that hands them to torch (``read_here``, ``took``)."""

    path: str
    table_bytes: bytes | None = None
    members_checked: int = 0
    algorithm: str = "sha256"
    _thread: threading.Thread | None = None
    _result: list[Any] = field(default_factory=list)
    _bulk: list[tuple[Member, str]] = field(default_factory=list)
    _here: dict[str, tuple[Member, str]] = field(default_factory=dict)  # name -> (member, expected digest)
    _taken: dict[str, str | Future[str]] = field(default_factory=dict)  # digests the reader took (or takes)
    _stat: list[int] = field(default_factory=list)

    def read_here(self) -> set[str]:
        """The bulk members whose digests the loader's reader takes (``took``) instead of the helper."""
        return set(self._here)

    def took(self, name: str, digest: str | Future[str]) -> None:
        """The digest of the bytes of ``name`` that the reader handed to torch (or its future)."""
        self._taken[name] = digest

    def finish(self) -> None:
        """Wait for the bulk digests; ``CorruptedArtifactError`` naming the first member that differs.
        Members meant to be read here that torch did not read through the reader are hashed now."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            outcome = (
                self._result[0] if self._result else RuntimeError("the digest thread ended without a result")
            )
            if isinstance(outcome, BaseException):
                raise self._unverifiable(outcome) from outcome
            for (member, expected), digest in zip(self._bulk, outcome):
                if digest != expected:
                    raise _changed(self.path, member.name, self.algorithm)
        here, self._here = self._here, {}
        unread = [name for name in here if name not in self._taken]
        if unread:
            try:
                ranges = [(here[n][0].offset, here[n][0].stored) for n in unread]
                self._taken.update(zip(unread, _checked_digests(self.path, self._stat, ranges, self.algorithm)))
            except OSError as exc:
                raise self._unverifiable(exc) from exc
        for name, (_, expected) in here.items():
            taken = self._taken[name]
            if isinstance(taken, Future):
                try:
                    taken = taken.result()
                except OSError as exc:
                    raise self._unverifiable(exc) from exc
            if taken != expected:
                raise _changed(self.path, name, self.algorithm)

    def _unverifiable(self, cause: BaseException) -> CorruptedArtifactError:
        return CorruptedArtifactError(f"{self.path} cannot be verified: {cause}")

    def _start(self) -> None:
        ranges = [(m.offset, m.stored) for m, _ in self._bulk]
        stat = self._stat

        def run() -> None:
            try:
                self._result.append(_WORKER.digests(self.path, stat, ranges, self.algorithm))
            except BaseException as exc:  # handed to finish()
                self._result.append(exc)

        self._thread = threading.Thread(target=run, name="trtshim-verify", daemon=True)
        self._thread.start()


def _is_bulk(member: Member, archive: OpenedArchive) -> bool:
    """Tensor bytes (checked while torch loads): large stored members that torch does not parse as text;
    a nested ``torch.save`` zip counts (its pickles are read statically before torch unpickles them;
    torch 2.2 names its state-dict zip ``serialized_state_dict.json``)."""
    if member.stored < BULK_BYTES or member.method != zipfile.ZIP_STORED:
        return False
    if not member.name.endswith(_PARSED_SUFFIXES):
        return True
    return archive.head(member.name) == b"PK\x03\x04"


LABELS = {"blake3": "BLAKE3", "sha256": "SHA-256"}


def _changed(path: str, name: str, algorithm: str) -> CorruptedArtifactError:
    return CorruptedArtifactError(
        f"{path} was changed after it was saved: the {LABELS[algorithm]} of its member {name!r} does not match "
        "its table",
        "the file was damaged or edited; get it again from its source, or re-save it",
    )


def begin(
    source: str | OpenedArchive, manifest: dict[str, Any] | None, read_here: set[str] | None = None
) -> Verification | None:
    """Start verifying an archive (opened, or at a path) against its member table; None where it has
    none (older artifacts). Everything torch parses is checked before this returns, from the bytes the
    opened archive keeps (the pickle scan reads the same ones); call ``finish()`` before using the program.
    ``read_here``: bulk members the loader reads and hashes itself (``Verification.took``); the helper
    hashes the other bulk members meanwhile.
    """
    if not isinstance(source, OpenedArchive):
        with OpenedArchive(source) as opened:
            return begin(opened, manifest, read_here)
    archive, path = source, source.path
    found = read_table(path, archive)
    if found is None:
        if manifest is not None and manifest.get("integrity"):
            raise CorruptedArtifactError(
                f"{path} lacks the member table its manifest names ({TABLE_NAME})",
                "the file was edited after it was saved; get it again from its source",
            )
        return None
    table, data = found
    expected: dict[str, dict[str, Any]] = table["members"]
    names = [n for n in archive.names if n.rsplit("/", 1)[-1] != TABLE_NAME]
    extra, missing = sorted(set(names) - set(expected)), sorted(set(expected) - set(names))
    if extra or missing:
        what = (
            f"holds {extra[0]!r}, which its member table does not list"
            if extra
            else (f"lacks the member {missing[0]!r} that its member table lists")
        )
        raise CorruptedArtifactError(f"{path} {what}", "the file was edited after it was saved; get it again")
    kind = table["algorithm"]
    verification = Verification(
        path, table_bytes=data, members_checked=len(names), algorithm=kind, _stat=_stat_key(path)
    )
    places = archive.places()
    for name in names:
        member, rec = places[name], expected[name]
        if (member.stored, member.method) != (rec["stored"], rec["method"]):
            raise _changed(path, name, kind)
        if _is_bulk(member, archive):
            if read_here is not None and name in read_here:
                verification._here[name] = (member, rec[kind])
            else:
                verification._bulk.append((member, rec[kind]))
            continue
        h = hasher(kind)
        view = archive.stored(name)
        h.update(view)
        if isinstance(view, memoryview):
            view.release()
        if h.hexdigest() != rec[kind]:
            raise _changed(path, name, kind)
    if verification._bulk:
        verification._start()
    return verification


def _stat_key(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _checked_digests(path: str, stat: list[int], ranges: list[tuple[int, int]], name: str) -> list[str]:
    """``_hash_ranges`` of a file that must still be the one ``stat`` describes."""
    out = _hash_ranges(path, ranges, name)
    if _stat_key(path) != stat:
        raise OSError("the file changed while it was being loaded")
    return out


def serve() -> None:
    """The helper process's loop: one JSON request a line in, the digests (or an error) a line out."""
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply: dict[str, Any] = {
                "digests": _checked_digests(
                    request["path"],
                    request["stat"],
                    [tuple(r) for r in request["ranges"]],
                    request["algorithm"],
                )
            }
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


# the helper imports this module from where this process found it (isolated mode ignores PYTHONPATH)
_SERVE = (
    f"import sys; sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(sys.modules['trtshim'].__file__ or '')))!r}); "
    "from trtshim.compat.artifact.trust.integrity import serve; serve()"
)


class _HashWorker:
    """One helper process per trtshim process, started on first use; one request at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._broken = False

    def digests(self, path: str, stat: list[int], ranges: list[tuple[int, int]], name: str) -> list[str]:
        if os.environ.get("TRTSHIM_HASH_WORKER", "1") == "0" or self._broken or not self._lock.acquire(False):
            return _checked_digests(path, stat, ranges, name)
        try:
            reply = self._ask(
                {"path": os.path.abspath(path), "stat": stat, "ranges": ranges, "algorithm": name}
            )
        finally:
            self._lock.release()
        if reply is None:
            return _checked_digests(path, stat, ranges, name)
        if "error" in reply:
            raise OSError(reply["error"])
        return list(reply["digests"])

    def _ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The helper's reply; None (and hashing here from now on) where the helper cannot be used."""
        try:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-c", _SERVE],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    bufsize=1,
                )
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
            if not line:
                raise OSError("the digest helper exited")
            reply: dict[str, Any] = json.loads(line)
            return reply
        except (OSError, ValueError):
            self._broken = True
            self.close()
            return None

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()


_WORKER = _HashWorker()
atexit.register(_WORKER.close)
