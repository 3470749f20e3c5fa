"""Migrations of a saved program across torch.export's schema majors: 2 (torch 2.2) | 5 (2.3-2.4) |
7 (2.5) | 8 (2.6+), after Lightning's ``upgrade_checkpoint``: a chain of small, versioned steps, one
module a step, each named after the torch releases it bridges and listing the schema fields it changes.

Only the serialized program (the archive's ``serialized_exported_program.json``) and the archive's
members change; weights are never touched. torch 2.6+ still reads the legacy zip layout of 2.2-2.7
archives, so a migrated archive is read by the installed torch's own ``torch.export.load``. Steps run
on an in-memory copy (``load``) or into a new file (``trtshim upgrade``); a file is never edited in place.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROGRAM = "serialized_exported_program.json"
VERSION = "version"


@dataclass
class Archive:
    """A legacy (zip) torch.export archive, opened for migration: its program JSON parsed, its members."""

    program: dict[str, Any]
    members: dict[str, bytes]  # every member but the program, in their order
    order: list[str]  # member names as they were, the program included

    @property
    def schema(self) -> tuple[int, int]:
        return schema_of(self.program)

    def set_schema(self, major: int, minor: int) -> None:
        self.program["schema_version"] = {"major": major, "minor": minor}
        self.members[VERSION] = f"{major}.{minor}".encode()

    def rename(self, old: str, new: str) -> None:
        if old in self.members:
            self.members[new] = self.members.pop(old)
            self.order[self.order.index(old)] = new

    def add(self, name: str, data: bytes) -> None:
        if name not in self.members:
            self.order.append(name)
        self.members[name] = data

    def write(self, fh: Any) -> None:
        """The archive, in its member order, into the binary file object ``fh``."""
        with zipfile.ZipFile(fh, "w") as zf:
            for name in self.order:
                data = json.dumps(self.program).encode() if name == PROGRAM else self.members[name]
                zf.writestr(name, data)

    def to_bytes(self) -> io.BytesIO:
        buf = io.BytesIO()
        self.write(buf)
        buf.seek(0)
        return buf


def schema_of(program: dict[str, Any]) -> tuple[int, int]:
    """A serialized program's schema version: an int in torch 2.2, ``{major, minor}`` later."""
    version = program.get("schema_version")
    if isinstance(version, dict):
        return int(version.get("major", 0)), int(version.get("minor", 0))
    return (int(version), 0) if isinstance(version, int) else (0, 0)


def open_archive(source: str | io.BytesIO) -> Archive | None:
    """The archive at ``source`` opened for migration, or None when it is no legacy zip archive."""
    with zipfile.ZipFile(source) as zf:
        names = zf.namelist()
        if PROGRAM not in names:
            return None
        program = json.loads(zf.read(PROGRAM))
        members = {n: zf.read(n) for n in names if n != PROGRAM}
    return Archive(program, members, list(names))


@dataclass(frozen=True)
class Step:
    """One migration: an archive of schema ``source`` becomes one of schema ``target``."""

    id: str  # e.g. "torch-2.4-to-2.5"
    source: tuple[int, int]  # the oldest schema it takes (major, minor)
    target: tuple[int, int]  # the schema it writes
    changes: tuple[str, ...]  # the schema fields it changes, in words
    apply: Callable[[Archive], None]


def steps() -> tuple[Step, ...]:
    from trtshim.compat.artifact.migrations import (
        torch_2_2_to_2_3,
        torch_2_3_to_2_4,
        torch_2_4_to_2_5,
        torch_2_5_to_2_6,
    )

    return (torch_2_2_to_2_3.STEP, torch_2_3_to_2_4.STEP, torch_2_4_to_2_5.STEP, torch_2_5_to_2_6.STEP)


def plan(saved: tuple[int, int], here: tuple[int, int]) -> list[Step]:
    """The steps that take a program of schema ``saved`` to the major ``here`` reads (empty: none needed
    or none possible; ``saved`` newer than ``here`` never migrates)."""
    if saved[0] >= here[0]:
        return []
    chain: list[Step] = []
    current = saved
    for step in steps():
        if step.target > here:  # what this torch could not read
            break
        if current < step.target:
            if current < step.source:
                return []  # a gap: no step takes this schema
            chain.append(step)
            current = step.target
    return chain if current[0] == here[0] else []


def migrate(archive: Archive, chain: list[Step]) -> list[str]:
    """Apply ``chain`` in order, in place; the ids of the steps applied."""
    for step in chain:
        step.apply(archive)
        archive.set_schema(*step.target)
    return [s.id for s in chain]


def walk(obj: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    """Call ``visit`` on every dict inside ``obj`` (a parsed program), parents first."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            visit(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
