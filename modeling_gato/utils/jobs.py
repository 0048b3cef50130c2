"""What long jobs (`collect`, `evaluate`) need so that nothing is lost: a lock per output and a journal of results.

- `OutputLock(path, command)`: a lock file (`path`) holding the owner's pid, host, process start time and command.
  Created atomically (written aside, then hard-linked into place: a reader never sees a half-written lock). A second
  run is refused with a message naming the first; a lock whose process is gone on this host (a killed run) is
  stale and taken over.
- `Journal(path)`: a JSON-lines file of results appended one line per write, flushed and fsynced. The first line is
  the job's header (its configuration). A kill in the middle of a write leaves at most one torn last line: reading
  drops it (and truncates the file to the last whole line) so the resumed job appends after whole records only.
- `differences(recorded, current)`: the configuration keys that differ, for a one-line refusal.
- `write_json_atomic(path, data)` and `atomic_directory(output_dir)`: files and directories written aside and
  renamed into place, so a reader never sees half of one; `package_versions()`: the provenance every output records.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any

__all__ = ["Journal", "OutputLock", "OutputLockedError", "ResumeMismatchError", "differences"]


class OutputLockedError(RuntimeError):
    """Another live run holds the output's lock."""


class ResumeMismatchError(ValueError):
    """The output holds results of a different configuration."""


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux `/proc/<pid>/stat` field 22), else None: with the pid,
    it tells a live owner from a new process that reused a dead owner's pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return start is None or _process_start(pid) in (None, start)


class OutputLock:
    """`with OutputLock(path, command):` holds `path` for this process (see the module docstring)."""

    def __init__(self, path: str, command: str):
        self.path = os.path.abspath(path)
        self.command = command
        self.held = False

    def _owner(self) -> dict[str, Any] | None:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: treat as held by an unknown owner

    def _stale(self, owner: Mapping[str, Any]) -> bool:
        if not owner or owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
            return False
        return not _alive(owner["pid"], owner.get("start"))

    def acquire(self) -> OutputLock:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()),
              "command": self.command, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        aside = f"{self.path}.{os.getpid()}.tmp"
        with open(aside, "w") as f:
            json.dump(me, f)
        try:
            for _ in range(3):
                try:
                    os.link(aside, self.path)  # fails when a lock exists
                    self.held = True
                    return self
                except FileExistsError:
                    owner = self._owner()
                    if owner is None:
                        continue  # released meanwhile: try again
                    if not self._stale(owner):
                        who = (f"pid {owner.get('pid')} on {owner.get('host')} since {owner.get('since')}: "
                               f"{owner.get('command')}") if owner else "an unreadable lock"
                        raise OutputLockedError(f"{self.path} is held by {who}. Wait for that run, or delete the lock "
                                                "if that process is gone.") from None
                    # a killed run's lock: take it over (replace is atomic; re-read to make sure we won)
                    os.replace(aside, self.path)
                    if self._owner() == me:
                        self.held = True
                        return self
                    with open(aside, "w") as f:
                        json.dump(me, f)
            raise OutputLockedError(f"{self.path}: could not take the lock (another run keeps taking it).")
        finally:
            if os.path.exists(aside):
                os.remove(aside)

    def release(self) -> None:
        if self.held:
            owner = self._owner()
            if owner and owner.get("pid") == os.getpid():
                os.remove(self.path)
            self.held = False

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class Journal:
    """An append-only JSON-lines journal: line 1 the header, then one record per line (see the module docstring)."""

    def __init__(self, path: str):
        self.path = path

    def read(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """(header, records) of the whole lines on disk; a torn or unreadable last line is cut off the file."""
        if not os.path.isfile(self.path):
            return None, []
        with open(self.path, "rb") as f:
            data = f.read()
        lines, good, offset = [], 0, 0
        for raw in data.split(b"\n")[:-1]:  # the part after the last newline is a torn write
            offset += len(raw) + 1
            try:
                lines.append(json.loads(raw))
            except ValueError:
                break  # a torn line followed by nothing readable: stop here
            good = offset
        if good != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        if not lines:
            return None, []
        return lines[0], lines[1:]

    def start(self, header: Mapping[str, Any]) -> None:
        """A new journal holding only `header` (replacing any old one atomically)."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        aside = f"{self.path}.tmp"
        with open(aside, "w") as f:
            f.write(json.dumps(header) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(aside, self.path)

    def append(self, record: Mapping[str, Any]) -> None:
        line = (json.dumps(record) + "\n").encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """`key: recorded -> current` for every configuration key whose value differs."""
    keys = list(dict.fromkeys([*recorded, *current]))
    return [f"{key}: {recorded.get(key)!r} -> {current.get(key)!r}" for key in keys
            if _plain(recorded.get(key)) != _plain(current.get(key))]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))  # tuples and lists, int keys and str keys compare as JSON does


# ---------------------------------------------------------------------------- atomic writes and provenance
def write_json_atomic(path: str, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, then os.replace it: readers never see a half file."""
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def move_into_place(partial: str, target: str) -> None:
    """Rename the finished `partial` directory to `target`, replacing an existing `target` (moved aside first)."""
    if os.path.exists(target):
        old = f"{target}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
        os.replace(partial, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, target)


@contextlib.contextmanager
def atomic_directory(output_dir: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a directory beside `output_dir` to write into; renamed into place (os.replace) only on success."""
    target = os.path.abspath(output_dir).rstrip(os.sep)
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{output_dir} exists; pass --overwrite to replace it.")
    partial = f"{target}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(partial)
    try:
        yield partial
        move_into_place(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("gymnasium", "minigrid", "metaworld", "mujoco", "stable-baselines3", "torch", "transformers",
                 "datasets"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
