"""
Tests for L{scaleagent.tap}: the twistd options and the service tree.
(The daemon as a process is tested in C{tests.test_e2e}.)
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import FilteringLogObserver, LogLevel
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from scaleagent import tap


def write_config(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config").write_text(text)
    return directory


class OptionsTests(SynchronousTestCase):
    def test_valid_config_and_template(self) -> None:
        directory = write_config(
            Path(self.mktemp()),
            "RancherURL: https://rancher.test\nBearerToken: token-abcde:secret\n",
        )
        options = tap.Options()
        options.parseOptions(["--config", str(directory), "--log-level", "debug", "--insecure"])
        self.assertEqual(options.config.rancher_url, "https://rancher.test")
        self.assertEqual(options.config.log_level, "debug")
        self.assertTrue(options.config.insecure_skip_tls_verify)
        # The bundled template was copied beside the config and parsed.
        self.assertTrue((directory / "cluster.yaml").is_file())
        self.assertTrue(options.template.version_info["gitVersion"].startswith("v1."))

    def test_config_error_names_file_line_and_key(self) -> None:
        directory = write_config(Path(self.mktemp()), "RancherURL: https://r.test\nBearerTokn: x:y\n")
        error = self.assertRaises(
            SystemExit, tap.Options().parseOptions, ["--config", str(directory)]
        )
        message = str(error.code)
        self.assertIn("line 2", message)
        self.assertIn("BearerTokn", message)
        self.assertIn("did you mean", message)

    def test_missing_config(self) -> None:
        error = self.assertRaises(
            SystemExit, tap.Options().parseOptions, ["--config", self.mktemp()]
        )
        self.assertIn("no such file", str(error.code))

    def test_bad_listen_option(self) -> None:
        directory = write_config(Path(self.mktemp()), "RancherURL: https://r.test\n")
        self.assertRaises(
            usage.UsageError,
            tap.Options().parseOptions,
            ["--config", str(directory), "--listen", "nonsense:1:2"],
        )

    def test_broken_template_stops_start_up(self) -> None:
        directory = write_config(Path(self.mktemp()), "RancherURL: https://r.test\n")
        (directory / "cluster.yaml").write_text("version:\n  gitVersion: v1.28.0\nobjects: [1\n")
        error = self.assertRaises(SystemExit, tap.Options().parseOptions, ["--config", str(directory)])
        self.assertIn("cluster.yaml", str(error.code))


class ServiceTests(SynchronousTestCase):
    def test_service_tree(self) -> None:
        directory = write_config(
            Path(self.mktemp()),
            "RancherURL: https://rancher.test\nBearerToken: token-abcde:secret\n"
            "ListenAddress: tcp:0:interface=127.0.0.1\n",
        )
        options = tap.Options()
        options.parseOptions(["--config", str(directory)])
        reactor = MemoryReactorClock()
        service = tap.build_service(options, reactor)
        names = sorted(type(child).__name__ for child in service)
        self.assertEqual(names, ["Fleet", "StreamServerEndpointService", "_LogLevel"])
        # The installation id is made once and kept.
        first = tap.instance_id(directory)
        self.assertEqual(tap.instance_id(directory), first)

    def test_log_level_applied_once_running(self) -> None:
        """
        The level filter wraps the runner's observers when the reactor
        runs (twistd and twist begin logging at different moments), and
        leaves a start-up buffer alone.
        """
        from twisted.logger import LimitedHistoryLogObserver, LogPublisher, Logger

        reactor = MemoryReactorClock()
        publisher = LogPublisher()
        seen: list = []
        buffer = LimitedHistoryLogObserver()
        publisher.addObserver(seen.append)
        publisher.addObserver(buffer)
        service = tap._LogLevel(LogLevel.warn, reactor, publisher)
        service.startService()
        log = Logger(observer=publisher)
        log.info("before the reactor runs")
        reactor.run()
        log.info("filtered out")
        log.warn("kept")
        self.assertEqual([e["log_format"] for e in seen], ["before the reactor runs", "kept"])
        self.assertIn(buffer, publisher._observers)
        self.assertTrue(any(isinstance(o, FilteringLogObserver) for o in publisher._observers))
