"""
Tests for L{scaleagent.persistence}.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from scaleagent import persistence
from scaleagent.persistence import (
    StateError,
    StateStore,
    atomic_write,
    validate_cluster_name,
)


class _Exporter:
    """
    A cluster's object export that counts how often it is asked.
    """

    def __init__(self, objects: dict) -> None:
        self.objects = objects
        self.calls = 0

    def __call__(self) -> dict:
        self.calls += 1
        return dict(self.objects)


class _SteppingTime:
    """
    A monotonic clock that moves one second every time it is read, to make
    the flush budget run out deterministically.
    """

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class _TurnClock(Clock):
    """
    A L{Clock} whose C{advance} runs only the calls that were due when it
    was called, as one reactor turn does; C{Clock.advance} would also run
    the zero-delay calls those calls schedule.
    """

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        due = sorted(
            (call for call in self.calls if call.getTime() <= self.rightNow),
            key=lambda call: call.getTime(),
        )
        for call in due:
            if call in self.calls:
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


class _Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(self.mktemp())
        self.clock = Clock()
        self.store = StateStore(self.directory, self.clock)

    def files(self) -> list[str]:
        return sorted(os.listdir(self.directory / "clusters"))


class NameTests(SynchronousTestCase):
    def test_valid(self) -> None:
        for name in ["a", "cluster-1", "0", "a" * 63]:
            self.assertEqual(validate_cluster_name(name), name)

    def test_invalid(self) -> None:
        for name in ["", "A", "a.b", "../x", "a/b", "-a", "a-", "a" * 64, "a_b", "é"]:
            with self.subTest(name=name):
                self.assertRaises(ValueError, validate_cluster_name, name)

    def test_store_refuses_invalid_names(self) -> None:
        store = StateStore(self.mktemp(), Clock())
        self.assertRaises(ValueError, store.save_record, "../escape", {})
        self.assertRaises(ValueError, store.mark_objects_dirty, "Upper", dict)
        self.assertRaises(ValueError, store.load_objects, "a.objects")


class RecordTests(_Base):
    def test_round_trip(self) -> None:
        self.store.save_record("alpha", {"clusterID": "c-m-12345678", "token": "secret"})
        self.store.save_record("beta", {"clusterID": "c-m-87654321"})
        reloaded = StateStore(self.directory, Clock()).load_all()
        self.assertEqual(
            reloaded,
            {
                "alpha": {"clusterID": "c-m-12345678", "token": "secret"},
                "beta": {"clusterID": "c-m-87654321"},
            },
        )
        self.assertEqual(self.files(), ["alpha.json", "beta.json"])

    def test_replace(self) -> None:
        self.store.save_record("alpha", {"state": "creating"})
        self.store.save_record("alpha", {"state": "active"})
        self.assertEqual(self.store.load_all(), {"alpha": {"state": "active"}})
        self.assertEqual(self.files(), ["alpha.json"])

    def test_permissions(self) -> None:
        """
        Records hold keys and tokens: owner-only file and directory.
        """
        self.store.save_record("alpha", {"token": "secret"})
        self.store.mark_objects_dirty("alpha", _Exporter({}))
        self.store.flush()
        clusters = self.directory / "clusters"
        self.assertEqual(stat.S_IMODE(os.stat(clusters).st_mode), 0o700)
        for name in ["alpha.json", "alpha.objects.json"]:
            self.assertEqual(stat.S_IMODE(os.stat(clusters / name).st_mode), 0o600)

    def test_existing_directory_tightened(self) -> None:
        clusters = Path(self.mktemp()) / "clusters"
        clusters.mkdir(parents=True, mode=0o755)
        os.chmod(clusters, 0o755)
        StateStore(clusters.parent, Clock())
        self.assertEqual(stat.S_IMODE(os.stat(clusters).st_mode), 0o700)

    def test_crash_before_rename(self) -> None:
        """
        If the process dies after writing the temporary file but before the
        rename (here, the rename fails), the previous record is intact and
        no temporary file is left behind.
        """
        self.store.save_record("alpha", {"generation": 1})

        def crash(source, destination):
            raise OSError("simulated crash")

        self.patch(persistence.os, "replace", crash)
        self.assertRaises(OSError, self.store.save_record, "alpha", {"generation": 2})
        self.assertEqual(self.files(), ["alpha.json"])
        self.assertEqual(self.store.load_all(), {"alpha": {"generation": 1}})

    def test_leftover_temporary_file(self) -> None:
        """
        A C{kill -9} between write and rename leaves a temporary file; the
        next load ignores and removes it, and the record is the old one.
        """
        self.store.save_record("alpha", {"generation": 1})
        leftover = self.directory / "clusters" / ".alpha.json.123.456.tmp"
        leftover.write_text('{"format": 1, "name": "alpha", "record": {"generation": 2')
        with capturedLogs() as events:
            records = self.store.load_all()
        self.assertEqual(records, {"alpha": {"generation": 1}})
        self.assertEqual(self.files(), ["alpha.json"])
        self.assertIn(str(leftover), [event.get("path") for event in events])

    def test_corrupt_records(self) -> None:
        """
        A corrupt record is reported with its file name and leaves the other
        clusters loading; the file stays for the operator to inspect.
        """
        self.store.save_record("good", {"ok": True})
        clusters = self.directory / "clusters"
        (clusters / "truncated.json").write_text('{"format": 1, "name": "trunc')
        (clusters / "renamed.json").write_text(
            json.dumps({"format": 1, "name": "other", "record": {}})
        )
        (clusters / "future.json").write_text(json.dumps({"format": 7, "name": "future"}))
        (clusters / "list.json").write_text("[]")
        (clusters / "Bad_Name.json").write_text("{}")
        with capturedLogs() as events:
            records = self.store.load_all()
        self.assertEqual(records, {"good": {"ok": True}})
        self.assertEqual(
            sorted(self.store.load_errors),
            ["Bad_Name", "future", "list", "renamed", "truncated"],
        )
        for name, message in self.store.load_errors.items():
            self.assertIn(str(clusters / f"{name}.json"), message)
        self.assertIn("not valid JSON", self.store.load_errors["truncated"])
        self.assertIn("holds cluster 'other'", self.store.load_errors["renamed"])
        self.assertIn("unsupported format 7", self.store.load_errors["future"])
        errors = [event for event in events if event["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 5)
        self.assertTrue((clusters / "truncated.json").exists())

    def test_objects_files_are_not_records(self) -> None:
        self.store.mark_objects_dirty("alpha", _Exporter({"a": 1}))
        self.store.flush()
        self.assertEqual(self.store.load_all(), {})
        self.assertEqual(self.store.load_errors, {})

    def test_delete(self) -> None:
        self.store.save_record("alpha", {})
        self.store.save_record("beta", {})
        exporter = _Exporter({})
        self.store.mark_objects_dirty("alpha", exporter)
        self.store.flush()
        self.store.mark_objects_dirty("alpha", exporter)
        self.store.delete("alpha")
        self.assertEqual(self.files(), ["beta.json"])
        # A pending flush does not bring the cluster back.
        self.store.flush()
        self.assertEqual(self.files(), ["beta.json"])
        self.assertEqual(exporter.calls, 1)
        self.store.delete("never-existed")


class ObjectFlushTests(_Base):
    def test_coalescing(self) -> None:
        """
        However often a cluster is marked dirty within an interval, the
        timer exports and writes it once, with the latest exporter.
        """
        self.store.start(5)
        first, latest = _Exporter({"rv": 1}), _Exporter({"rv": 3})
        self.store.mark_objects_dirty("alpha", first)
        self.store.mark_objects_dirty("alpha", _Exporter({"rv": 2}))
        self.store.mark_objects_dirty("alpha", latest)
        self.clock.advance(4.9)
        self.assertIsNone(self.store.load_objects("alpha"))
        self.clock.advance(0.1)
        self.assertEqual((first.calls, latest.calls), (0, 1))
        self.assertEqual(self.store.load_objects("alpha"), {"rv": 3})
        self.assertEqual(self.store.dirty, frozenset())
        # Nothing dirty: the next ticks write nothing.
        self.clock.advance(15)
        self.assertEqual(latest.calls, 1)

    def test_many_clusters_one_timer(self) -> None:
        self.store.start(5)
        exporters = {f"cluster-{index}": _Exporter({"index": index}) for index in range(20)}
        for name, exporter in exporters.items():
            self.store.mark_objects_dirty(name, exporter)
        # One LoopingCall for all of them.
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(5)
        for index, (name, exporter) in enumerate(exporters.items()):
            self.assertEqual(exporter.calls, 1)
            self.assertEqual(self.store.load_objects(name), {"index": index})

    def test_budget(self) -> None:
        """
        A tick stops writing when its time budget is spent and finishes the
        backlog on the next reactor turns, not an interval later.
        """
        clock = _TurnClock()
        # Each read of the time moves it a second: with a budget of 1.5
        # seconds, a turn writes two files.
        store = StateStore(self.directory, clock, flush_budget=1.5, monotonic=_SteppingTime())
        store.start(5)
        for index in range(5):
            store.mark_objects_dirty(f"cluster-{index}", _Exporter({"index": index}))
        clock.advance(5)
        self.assertEqual(store.dirty, frozenset({"cluster-2", "cluster-3", "cluster-4"}))
        self.assertEqual(sorted(call.getTime() for call in clock.getDelayedCalls()), [5.0, 10.0])
        clock.advance(0)
        self.assertEqual(store.dirty, frozenset({"cluster-4"}))
        clock.advance(0)
        self.assertEqual(store.dirty, frozenset())
        # Only the interval timer is left.
        self.assertEqual([call.getTime() for call in clock.getDelayedCalls()], [10.0])

    def test_failed_export_retried_next_interval(self) -> None:
        """
        A cluster whose export fails is logged, stays dirty, and is retried
        at the next interval, not in a busy loop; the others are written.
        """

        def broken() -> dict:
            raise ZeroDivisionError("boom")

        self.store.start(5)
        self.store.mark_objects_dirty("broken", broken)
        self.store.mark_objects_dirty("fine", _Exporter({"ok": 1}))
        self.clock.advance(5)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.store.dirty, frozenset({"broken"}))
        self.assertEqual(self.store.load_objects("fine"), {"ok": 1})
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [10.0])
        repaired = _Exporter({"ok": 2})
        self.store.mark_objects_dirty("broken", repaired)
        self.clock.advance(5)
        self.assertEqual(self.store.load_objects("broken"), {"ok": 2})

    def test_exporter_must_return_mapping(self) -> None:
        self.store.mark_objects_dirty("alpha", lambda: ["not", "a", "mapping"])
        self.assertEqual(self.store.flush(), 0)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        self.assertIsNone(self.store.load_objects("alpha"))

    def test_failed_write_keeps_old_file(self) -> None:
        self.store.mark_objects_dirty("alpha", _Exporter({"rv": 1}))
        self.store.flush()

        def crash(source, destination):
            raise OSError("disk full")

        with self.patch_replace(crash):
            self.store.mark_objects_dirty("alpha", _Exporter({"rv": 2}))
            self.assertEqual(self.store.flush(), 0)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(self.store.load_objects("alpha"), {"rv": 1})
        self.assertEqual(self.files(), ["alpha.objects.json"])
        self.assertEqual(self.store.flush(), 1)
        self.assertEqual(self.store.load_objects("alpha"), {"rv": 2})

    def patch_replace(self, replacement):
        test = self

        class _Patch:
            def __enter__(self):
                self.restore = test.patch(persistence.os, "replace", replacement)

            def __exit__(self, *exc_info):
                self.restore.restore()

        return _Patch()

    def test_stop_flushes(self) -> None:
        self.store.start(5)
        exporter = _Exporter({"rv": 9})
        self.store.mark_objects_dirty("alpha", exporter)
        self.store.stop()
        self.assertEqual(self.store.load_objects("alpha"), {"rv": 9})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(60)
        self.assertEqual(exporter.calls, 1)

    def test_stop_cancels_continuation(self) -> None:
        clock = _TurnClock()
        store = StateStore(self.directory, clock, flush_budget=0.5, monotonic=_SteppingTime())
        store.start(5)
        for index in range(3):
            store.mark_objects_dirty(f"cluster-{index}", _Exporter({}))
        clock.advance(5)
        self.assertEqual(len(store.dirty), 2)
        self.assertEqual(len(clock.getDelayedCalls()), 2)
        store.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(store.dirty, frozenset())
        self.assertEqual(len(self.files()), 3)

    def test_load_objects_corrupt(self) -> None:
        path = self.directory / "clusters" / "alpha.objects.json"
        path.write_text("{not json")
        error = self.assertRaises(StateError, self.store.load_objects, "alpha")
        self.assertEqual(error.path, path)
        self.assertIn(str(path), str(error))


class AtomicWriteTests(SynchronousTestCase):
    def test_mode_and_content(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        target = directory / "file"
        atomic_write(target, b"one", mode=0o644)
        atomic_write(target, b"two" * 100000, mode=0o644)
        self.assertEqual(target.read_bytes(), b"two" * 100000)
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o644 & ~_umask())
        self.assertEqual(os.listdir(directory), ["file"])

    def test_failed_write_removes_temporary(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        target = directory / "file"
        atomic_write(target, b"old")

        def failing_fsync(descriptor):
            raise OSError("I/O error")

        self.patch(persistence.os, "fsync", failing_fsync)
        self.assertRaises(OSError, atomic_write, target, b"new")
        self.assertEqual(os.listdir(directory), ["file"])
        self.assertEqual(target.read_bytes(), b"old")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
