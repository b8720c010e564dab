# -*- test-case-name: tests.test_persistence -*-
"""
Durable state of every simulated cluster, one small file per cluster, so
that a C{kill -9} of the daemon loses nothing and ten thousand clusters do
not mean rewriting one big file on every change.

Layout under the state directory::

    clusters/<name>.json           the cluster's record: identity, Rancher
                                   ids and tokens, state (written at once)
    clusters/<name>.objects.json   what Rancher changed in its object store
                                   (written by a coalescing flush)

Every file is replaced atomically: written to a temporary file in the same
directory, flushed and fsynced, renamed over the old one, and the directory
fsynced, so a crash leaves either the old or the new content, never a mix.
Files are owner-only (C{0600}) because records hold private keys and
tokens; the directory is C{0700}.

Object-store changes are frequent (every Rancher write), so they are not
written when they happen: L{StateStore.mark_objects_dirty} remembers how to
export a cluster's objects, and one shared timer writes every dirty cluster
once per interval, however many changes it saw. A change is therefore
durable within one interval (plus the time to drain a large backlog).
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

#: Version of the envelope written around records and object exports.
FORMAT_VERSION = 1

#: Default interval of the object flush, in seconds.
DEFAULT_FLUSH_INTERVAL = 5.0

#: How long one timer tick may spend writing before it yields to the
#: reactor; the rest is written on the following turns. fsync can take
#: milliseconds per file, and ten thousand dirty clusters (every cluster
#: after a Rancher restart) must not stall every tunnel for seconds.
DEFAULT_FLUSH_BUDGET = 0.05

_RECORD_SUFFIX = ".json"
_OBJECTS_SUFFIX = ".objects.json"
_TEMPORARY_SUFFIX = ".tmp"

# DNS-1123 labels: no dots, so "<name>.objects.json" can never be the
# record file of another cluster, and nothing can climb out of the
# directory.
_CLUSTER_NAME = re.compile(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")

Record = dict[str, Any]
Exporter = Callable[[], dict[str, Any]]


class StateError(Exception):
    """
    A state file that cannot be read back.

    @ivar path: the file.
    @ivar reason: what is wrong with it.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def validate_cluster_name(name: str) -> str:
    """
    Check that C{name} is a DNS-1123 label (lower-case letters, digits and
    C{-}, at most 63 characters, alphanumeric at both ends).

    @return: C{name}.
    @raise ValueError: if it is not.
    """
    if not isinstance(name, str) or not _CLUSTER_NAME.match(name):
        raise ValueError(
            f"invalid cluster name {name!r}: must be a DNS-1123 label "
            "(lower-case letters, digits and '-', at most 63 characters, "
            "starting and ending with a letter or digit)"
        )
    return name


def fsync_directory(directory: Path) -> None:
    """
    Make a rename or unlink in C{directory} durable.
    """
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write(
    path: Path, data: bytes, mode: int = 0o600, sync_directory: bool = True
) -> None:
    """
    Replace C{path} with C{data} so that a crash at any point leaves either
    the old content or the new one.

    The temporary file lives in the same directory (a rename is only atomic
    within one file system) and is created with C{mode} from the start, so
    the data is never readable by others, not even briefly.

    @param sync_directory: fsync the directory after the rename; a caller
        replacing many files in one directory may pass C{False} and call
        L{fsync_directory} once at the end.
    @raise OSError: if anything fails; C{path} is then unchanged and the
        temporary file removed.
    """
    directory = path.parent
    unique = f"{os.getpid()}.{time.monotonic_ns()}"
    temporary = directory / f".{path.name}.{unique}{_TEMPORARY_SUFFIX}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    if sync_directory:
        fsync_directory(directory)


def _encode(document: dict[str, Any], indent: Optional[int]) -> bytes:
    separators = (",", ": ") if indent is not None else (",", ":")
    return (json.dumps(document, indent=indent, separators=separators) + "\n").encode("utf-8")


class StateStore:
    """
    The per-cluster state files under one directory.

    @ivar directory: the state directory (files live in its C{clusters/}).
    @ivar load_errors: after L{load_all}, the clusters whose record could
        not be read, mapped to a message naming the file and the problem.
    """

    _log = Logger()

    def __init__(
        self,
        directory: Union[str, Path],
        clock: IReactorTime,
        flush_budget: float = DEFAULT_FLUSH_BUDGET,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        @param directory: the state directory; created (C{0700}) if needed.
        @param clock: drives the flush timer.
        @param flush_budget: seconds one timer tick may spend writing.
        @param monotonic: measures that budget (tests substitute it).
        """
        self.directory = Path(directory)
        self._clusters = self.directory / "clusters"
        self._clock = clock
        self._flush_budget = flush_budget
        self._monotonic = monotonic
        self._dirty: dict[str, Exporter] = {}
        self._loop: Optional[LoopingCall] = None
        self._continuation: Optional[IDelayedCall] = None
        self.load_errors: dict[str, str] = {}
        self._prepare_directories()

    def _prepare_directories(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._clusters.mkdir(mode=0o700, exist_ok=True)
        # mkdir leaves an existing directory alone; this one holds keys.
        os.chmod(self._clusters, 0o700)

    def record_path(self, name: str) -> Path:
        return self._clusters / f"{validate_cluster_name(name)}{_RECORD_SUFFIX}"

    def objects_path(self, name: str) -> Path:
        return self._clusters / f"{validate_cluster_name(name)}{_OBJECTS_SUFFIX}"

    # Records

    def load_all(self) -> dict[str, Record]:
        """
        Read every cluster record.

        A record that cannot be read is logged, listed in L{load_errors} and
        left on disk untouched for the operator; the others load normally.
        Temporary files left by a crash mid-write are removed: the rename
        never happened, so the previous file is the valid one.

        @return: records by cluster name.
        """
        records: dict[str, Record] = {}
        self.load_errors = {}
        with os.scandir(self._clusters) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith(".") and entry.name.endswith(_TEMPORARY_SUFFIX):
                self._remove_leftover(path)
                continue
            if not entry.name.endswith(_RECORD_SUFFIX) or entry.name.endswith(_OBJECTS_SUFFIX):
                continue
            name = entry.name[: -len(_RECORD_SUFFIX)]
            try:
                validate_cluster_name(name)
            except ValueError as error:
                problem = StateError(path, str(error))
            else:
                try:
                    records[name] = self._read(path, name, "record")
                    continue
                except FileNotFoundError:
                    # Deleted since the directory was listed.
                    continue
                except StateError as error:
                    problem = error
            self.load_errors[name] = str(problem)
            self._log.error(
                "cannot load cluster {cluster}: {problem}", cluster=name, problem=str(problem)
            )
        return records

    def save_record(self, name: str, record: Record) -> None:
        """
        Write C{name}'s record now, atomically and durably.

        @raise OSError: if it cannot be written; the previous record stays.
        """
        document = {"format": FORMAT_VERSION, "name": name, "record": record}
        atomic_write(self.record_path(name), _encode(document, indent=1))

    def delete(self, name: str) -> None:
        """
        Forget C{name}: remove its files and any pending object flush.
        """
        self._dirty.pop(name, None)
        removed = False
        for path in (self.objects_path(name), self.record_path(name)):
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
        if removed:
            fsync_directory(self._clusters)

    # Objects

    def load_objects(self, name: str) -> Optional[dict[str, Any]]:
        """
        Read what L{mark_objects_dirty}'s exporter last produced for C{name}.

        @return: the export, or L{None} if nothing was ever written.
        @raise StateError: if the file exists but cannot be read.
        """
        path = self.objects_path(name)
        try:
            return self._read(path, name, "objects")
        except FileNotFoundError:
            return None

    def mark_objects_dirty(self, name: str, exporter: Exporter) -> None:
        """
        Note that C{name}'s objects changed. The next flush calls
        C{exporter} once, however many times this was called, and writes
        what it returns (a JSON-serialisable mapping).
        """
        validate_cluster_name(name)
        self._dirty[name] = exporter

    @property
    def dirty(self) -> frozenset[str]:
        """
        The clusters whose objects wait for the next flush.
        """
        return frozenset(self._dirty)

    def start(self, interval: float = DEFAULT_FLUSH_INTERVAL) -> None:
        """
        Flush dirty objects every C{interval} seconds on the store's clock.
        """
        if self._loop is not None:
            return
        self._loop = LoopingCall(self._flush_step)
        self._loop.clock = self._clock
        self._loop.start(interval, now=False).addErrback(
            lambda failure: self._log.failure("object flush timer stopped", failure)
        )

    def stop(self) -> None:
        """
        Stop the timer and write everything still dirty; call at shutdown.
        """
        if self._loop is not None:
            loop, self._loop = self._loop, None
            if loop.running:
                loop.stop()
        if self._continuation is not None and self._continuation.active():
            self._continuation.cancel()
        self._continuation = None
        self.flush()

    def _flush_step(self) -> None:
        """
        One timer tick: write for at most the budget, and if that left a
        backlog, come back on the next reactor turn instead of waiting a
        whole interval.
        """
        self._continuation = None
        _, out_of_time = self._write_dirty(deadline=self._monotonic() + self._flush_budget)
        if out_of_time and self._loop is not None:
            self._continuation = self._clock.callLater(0, self._flush_step)

    def flush(self) -> int:
        """
        Write every dirty cluster's objects now, without a time budget.
        A cluster whose export or write fails stays dirty and is logged.

        @return: how many files were written.
        """
        written, _ = self._write_dirty(deadline=None)
        return written

    def _write_dirty(self, deadline: Optional[float]) -> tuple[int, bool]:
        """
        Write dirty clusters, oldest mark first, until none is left or the
        deadline passes.

        @return: how many files were written, and whether the deadline
            stopped the work with clusters still dirty.
        """
        written = 0
        out_of_time = False
        failed: dict[str, Exporter] = {}
        try:
            while self._dirty:
                if deadline is not None and written and self._monotonic() >= deadline:
                    out_of_time = True
                    break
                name = next(iter(self._dirty))
                exporter = self._dirty.pop(name)
                try:
                    objects = exporter()
                    if not isinstance(objects, dict):
                        kind = type(objects).__name__
                        raise TypeError(f"the exporter returned {kind}, not dict")
                    document = {"format": FORMAT_VERSION, "name": name, "objects": objects}
                    data = _encode(document, indent=None)
                    atomic_write(self.objects_path(name), data, sync_directory=False)
                except Exception:
                    self._log.failure("cannot save the objects of cluster {cluster}", cluster=name)
                    # Retried on the next tick, not in this one: a full disk
                    # must not turn into a busy loop.
                    failed[name] = exporter
                    continue
                written += 1
        finally:
            for name, exporter in failed.items():
                self._dirty.setdefault(name, exporter)
            if written:
                # One directory fsync makes the whole batch of renames durable.
                try:
                    fsync_directory(self._clusters)
                except OSError as error:
                    self._log.error(
                        "cannot fsync {directory}: {error}",
                        directory=str(self._clusters),
                        error=error.strerror,
                    )
        return written, out_of_time

    # Files

    def _read(self, path: Path, name: str, field: str) -> Any:
        try:
            with open(path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            raise
        except OSError as error:
            raise StateError(path, f"cannot read: {error.strerror or error}") from None
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StateError(path, f"not valid JSON: {error}") from None
        if not isinstance(document, dict):
            raise StateError(path, "not a JSON object")
        if document.get("format") != FORMAT_VERSION:
            raise StateError(path, f"unsupported format {document.get('format')!r}")
        if document.get("name") != name:
            raise StateError(path, f"holds cluster {document.get('name')!r}, not {name!r}")
        if field not in document or not isinstance(document[field], dict):
            raise StateError(path, f"no {field} object")
        return document[field]

    def _remove_leftover(self, path: Path) -> None:
        try:
            path.unlink()
        except OSError as error:
            if error.errno != errno.ENOENT:
                self._log.warn(
                    "cannot remove leftover temporary file {path}: {error}",
                    path=str(path),
                    error=error.strerror,
                )
        else:
            self._log.info("removed leftover temporary file {path}", path=str(path))


__all__ = [
    "DEFAULT_FLUSH_INTERVAL",
    "StateError",
    "StateStore",
    "atomic_write",
    "fsync_directory",
    "validate_cluster_name",
]
