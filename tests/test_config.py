"""
Tests for L{scaleagent.config}.
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.config import (
    DEFAULT_TEMPLATE_NAME,
    Config,
    ConfigError,
    bundled_templates_dir,
    ensure_template,
    load_config,
)

TOKEN = "token-abcde:qwertyuiopasdfghjklzxcvbnm0123456789qwertyuiopasdfgh"
SECRET = TOKEN.partition(":")[2]


class _Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).absolute()
        self.directory.mkdir()

    def write(self, text: str, *, legacy: bool = False) -> Path:
        directory = self.directory / "config" if legacy else self.directory
        directory.mkdir(exist_ok=True)
        path = directory / "config"
        path.write_text(text)
        return path

    def load_error(self, text: str) -> str:
        path = self.write(text)
        error = self.assertRaises(ConfigError, load_config, self.directory)
        message = str(error)
        self.assertTrue(message.startswith(str(path)), message)
        return message[len(str(path)) :]


class FormatTests(_Base):
    def assert_parsed(self, config: Config) -> None:
        self.assertEqual(config.rancher_url, "https://rancher.example.com")
        self.assertEqual(config.bearer_token, TOKEN)
        self.assertEqual(config.listen_address, "tcp:9191:interface=127.0.0.1")
        self.assertEqual(config.log_level, "debug")
        self.assertTrue(config.insecure_skip_tls_verify)

    def test_yaml(self) -> None:
        self.write(
            "# scaleagent\n"
            "RancherURL: https://rancher.example.com/\n"
            f"BearerToken: {TOKEN}\n"
            "\n"
            "ListenPort: 9191   # old key\n"
            "LogLevel: debug\n"
            "InsecureSkipTLSVerify: true\n"
        )
        self.assert_parsed(load_config(self.directory))

    def test_json(self) -> None:
        self.write(
            '{"RancherURL": "https://rancher.example.com", '
            f'"BearerToken": "{TOKEN}", "ListenPort": 9191, '
            '"LogLevel": "DEBUG", "InsecureSkipTLSVerify": true}'
        )
        self.assert_parsed(load_config(self.directory))

    def test_key_colon_value_lines(self) -> None:
        """
        The Go tool's C{Key:Value} lines (not YAML: no space after the
        colon) are read line by line.
        """
        self.write(
            "RancherURL:https://rancher.example.com\n"
            f"BearerToken:{TOKEN}\n"
            "# comment\n"
            "ListenPort:9191\n"
            "LogLevel:debug\n"
            "InsecureSkipTLSVerify:yes\n"
        )
        self.assert_parsed(load_config(self.directory))

    def test_mixed_lines(self) -> None:
        self.write(
            "RancherURL: https://rancher.example.com\n"
            f"BearerToken:{TOKEN}\n"
            "ListenPort: 9191\n"
            'LogLevel: "debug"\n'
            "InsecureSkipTLSVerify:on\n"
        )
        self.assert_parsed(load_config(self.directory))

    def test_case_insensitive_keys(self) -> None:
        self.write(
            "rancherurl: https://rancher.example.com\n"
            f"BEARERTOKEN: {TOKEN}\n"
            "listenport: 9191\nloglevel: debug\ninsecureskiptlsverify: true\n"
        )
        self.assert_parsed(load_config(self.directory))

    def test_values_are_text(self) -> None:
        """
        YAML does not get to reinterpret values: a control token that looks
        like an octal number stays as written.
        """
        self.write("RancherURL: https://r.example\nControlToken: 0123\n")
        self.assertEqual(load_config(self.directory).control_token, "0123")

    def test_defaults(self) -> None:
        path = self.write("RancherURL: https://r.example:8443/rancher\n")
        config = load_config(self.directory)
        self.assertEqual(config.rancher_url, "https://r.example:8443/rancher")
        self.assertIsNone(config.bearer_token)
        self.assertIsNone(config.control_token)
        self.assertEqual(config.listen_address, "tcp:9090:interface=127.0.0.1")
        self.assertEqual(config.log_level, "info")
        self.assertEqual(config.twisted_log_level, LogLevel.info)
        self.assertFalse(config.insecure_skip_tls_verify)
        self.assertEqual(config.state_dir, self.directory)
        self.assertEqual(config.api_address, "10.43.0.1:443")
        self.assertEqual(config.connect_concurrency, 10)
        self.assertEqual(config.config_file, path)
        self.assertEqual(config.template_file, self.directory / "cluster.yaml")
        self.assertEqual(config.warnings, ())

    def test_all_keys(self) -> None:
        self.write(
            "RancherURL: https://r.example\n"
            "ListenAddress: tcp:8080:interface=0.0.0.0\n"
            "ControlToken: s3cret\n"
            "LogLevel: warning\n"
            "StateDir: state\n"
            "APIAddress: '[fd00::1]:6443'\n"
            "ConnectConcurrency: 50\n"
        )
        config = load_config(self.directory)
        self.assertEqual(config.listen_address, "tcp:8080:interface=0.0.0.0")
        self.assertEqual(config.control_token, "s3cret")
        self.assertEqual(config.log_level, "warn")
        self.assertEqual(config.state_dir, self.directory / "state")
        self.assertEqual(config.api_address, "[fd00::1]:6443")
        self.assertEqual(config.connect_concurrency, 50)

    def test_absolute_state_dir(self) -> None:
        elsewhere = Path(self.mktemp()).resolve()
        self.write(f"RancherURL: https://r.example\nStateDir: {elsewhere}\n")
        self.assertEqual(load_config(self.directory).state_dir, elsewhere)

    def test_empty_optional_value(self) -> None:
        self.write("RancherURL: https://r.example\nControlToken:\nLogLevel: ''\n")
        config = load_config(self.directory)
        self.assertIsNone(config.control_token)
        self.assertEqual(config.log_level, "info")

    def test_obsolete_keys_warn(self) -> None:
        self.write(
            "RancherURL: https://r.example\n"
            "MultiTenant: true\n"
            "pprofport: 6060\n"
            "ListenPort: 9090\n"
        )
        config = load_config(self.directory)
        self.assertEqual(len(config.warnings), 3)
        self.assertIn("line 2: MultiTenant: no longer used; ignored", config.warnings[0])
        self.assertIn("line 3: PprofPort: no longer used; ignored", config.warnings[1])
        self.assertIn("line 4: ListenPort is deprecated", config.warnings[2])
        self.assertIn("tcp:9090:interface=127.0.0.1", config.warnings[2])


class ErrorTests(_Base):
    def test_not_https(self) -> None:
        message = self.load_error("# header\nLogLevel: info\nRancherURL: htp://x\n")
        self.assertEqual(message, ' line 3: RancherURL: not an https URL: "htp://x"')

    def test_not_https_lines(self) -> None:
        message = self.load_error("LogLevel:info\nRancherURL:http://x\n")
        self.assertEqual(message, ' line 2: RancherURL: not an https URL: "http://x"')

    def test_missing_file(self) -> None:
        error = self.assertRaises(ConfigError, load_config, self.directory)
        self.assertEqual(
            str(error),
            f"{self.directory / 'config'}: no such file; create it with at least "
            "RancherURL and BearerToken",
        )

    def test_missing_rancher_url(self) -> None:
        self.assertEqual(
            self.load_error(f"BearerToken: {TOKEN}\n"),
            ": RancherURL: required key is missing",
        )
        self.assertEqual(
            self.load_error("RancherURL:\n"), " line 1: RancherURL: a value is required"
        )

    def test_unknown_key(self) -> None:
        message = self.load_error("RancherURL: https://r.example\nRancherUrl2: x\n")
        self.assertEqual(message, ' line 2: RancherUrl2: unknown key (did you mean "RancherURL"?)')
        message = self.load_error("RancherURL: https://r.example\nBaererToken: x\n")
        self.assertEqual(
            message, ' line 2: BaererToken: unknown key (did you mean "BearerToken"?)'
        )
        message = self.load_error("RancherURL: https://r.example\nZzz: x\n")
        self.assertTrue(message.startswith(" line 2: Zzz: unknown key (known keys: RancherURL, "))

    def test_bad_bearer_token_not_echoed(self) -> None:
        message = self.load_error(f"RancherURL: https://r.example\nBearerToken: {SECRET}\n")
        self.assertEqual(
            message, " line 2: BearerToken: not a Rancher API key (expected token-xxxxx:secret)"
        )
        self.assertNotIn(SECRET, message)

    def test_malformed_secret_line_not_echoed(self) -> None:
        """
        A BearerToken or ControlToken line without its colon is reported
        by line number, without quoting its value.
        """
        cases = {
            f"BearerToken {TOKEN}": "a BearerToken line (not shown: it may hold a secret)",
            f"bearertoken = {TOKEN}": "a BearerToken line (not shown: it may hold a secret)",
            "ControlToken=hunter2secret": "a ControlToken line (not shown: it may hold a secret)",
            f"Bearer {TOKEN}": "a line that looks like it holds an API key (not shown)",
        }
        for line, expected in cases.items():
            with self.subTest(line=line):
                message = self.load_error(f"RancherURL: https://r.example\n{line}\n")
                self.assertEqual(message, f' line 2: expected "Key: Value", got {expected}')
                for secret in (SECRET, SECRET[:8], "hunter2"):
                    self.assertNotIn(secret, message)

    def test_bad_values(self) -> None:
        cases = {
            "LogLevel: verbose": (
                ' line 2: LogLevel: not one of debug, info, warn, error: "verbose"'
            ),
            "InsecureSkipTLSVerify: maybe": (
                ' line 2: InsecureSkipTLSVerify: not a boolean (true or false): "maybe"'
            ),
            "ConnectConcurrency: 0": ' line 2: ConnectConcurrency: not a positive integer: "0"',
            "ListenPort: 99999": ' line 2: ListenPort: not a port number: "99999"',
            "APIAddress: 10.43.0.1": ' line 2: APIAddress: not host:port: "10.43.0.1"',
            "ControlToken: two words": (
                " line 2: ControlToken: must not contain whitespace or control characters"
            ),
        }
        for line, expected in cases.items():
            with self.subTest(line=line):
                message = self.load_error(f"RancherURL: https://r.example\n{line}\n")
                self.assertTrue(message.startswith(expected), message)

    def test_bad_listen_address(self) -> None:
        message = self.load_error("RancherURL: https://r.example\nListenAddress: bogus:1\n")
        self.assertTrue(
            message.startswith(
                ' line 2: ListenAddress: not a Twisted endpoint description: "bogus:1"'
            ),
            message,
        )

    def test_duplicates_and_conflicts(self) -> None:
        message = self.load_error("RancherURL: https://a.example\nrancherurl: https://b.example\n")
        self.assertEqual(message, " line 2: RancherURL: given twice (first on line 1)")
        message = self.load_error(
            "RancherURL: https://a.example\nListenAddress: tcp:1\nListenPort: 2\n"
        )
        self.assertEqual(message, " line 3: ListenPort: conflicts with ListenAddress on line 2")

    def test_not_a_single_value(self) -> None:
        message = self.load_error("RancherURL:\n  - https://a.example\n")
        self.assertEqual(message, " line 1: RancherURL: expected a single value")

    def test_bad_line(self) -> None:
        message = self.load_error("RancherURL:https://a.example\nthis is not a setting\n")
        self.assertEqual(message, ' line 2: expected "Key: Value", got "this is not a setting"')

    def test_bad_json(self) -> None:
        message = self.load_error(
            '{\n  "RancherURL": "https://a.example",\n  "LogLevel" "info"\n}\n'
        )
        self.assertTrue(message.startswith(" line 3: not valid YAML/JSON: "), message)

    def test_not_a_mapping(self) -> None:
        self.assertEqual(
            self.load_error("- RancherURL\n- https://a\n"),
            ": expected a mapping of keys to values",
        )

    def test_not_utf8(self) -> None:
        path = self.directory / "config"
        path.write_bytes(b"RancherURL: https://r.example\nLogLevel: \xff\n")
        error = self.assertRaises(ConfigError, load_config, self.directory)
        self.assertEqual(str(error), f"{path}: not UTF-8 text (byte 40)")

    def test_home_shown_as_tilde(self) -> None:
        """
        Messages show the default location as the operator knows it.
        """
        home = self.directory.resolve()
        previous = os.environ.get("HOME")
        os.environ["HOME"] = str(home)
        self.addCleanup(
            lambda: os.environ.__setitem__("HOME", previous)
            if previous is not None
            else os.environ.pop("HOME", None)
        )
        (home / ".scale-cluster-agent").mkdir()
        config_file = home / ".scale-cluster-agent" / "config"
        config_file.write_text("LogLevel: info\nRancherURL: htp://x\n")
        error = self.assertRaises(ConfigError, load_config)
        self.assertEqual(
            str(error),
            '~/.scale-cluster-agent/config line 2: RancherURL: not an https URL: "htp://x"',
        )


class LayoutTests(_Base):
    def test_legacy_directory_layout(self) -> None:
        """
        When C{<dir>/config} is a directory (the Go tool's layout), the
        configuration and template are the files inside it; state stays in
        the directory given.
        """
        path = self.write("RancherURL: https://r.example\n", legacy=True)
        config = load_config(self.directory)
        self.assertEqual(config.config_file, path)
        self.assertEqual(config.config_directory, self.directory / "config")
        self.assertEqual(config.template_file, self.directory / "config" / "cluster.yaml")
        self.assertEqual(config.state_dir, self.directory)

    def test_legacy_layout_errors_name_inner_file(self) -> None:
        path = self.write("RancherURL: ftp://x\n", legacy=True)
        error = self.assertRaises(ConfigError, load_config, self.directory)
        self.assertTrue(str(error).startswith(f"{path} line 1: RancherURL:"))

    def test_file_given(self) -> None:
        path = self.write("RancherURL: https://r.example\n")
        config = load_config(path)
        self.assertEqual(config.config_file, path)
        self.assertEqual(config.config_directory, self.directory)


class DescribeTests(_Base):
    def test_redacted(self) -> None:
        self.write(
            "RancherURL: https://admin:hunter2@r.example:8443\n"
            f"BearerToken: {TOKEN}\n"
            "ControlToken: control-secret\n"
        )
        config = load_config(self.directory)
        description = config.describe()
        for secret in [SECRET, "control-secret", "hunter2"]:
            self.assertNotIn(secret, description)
            self.assertNotIn(secret, repr(config))
        self.assertIn("BearerToken=token-abcde:<redacted>", description)
        self.assertIn("ControlToken=<redacted>", description)
        self.assertIn("RancherURL=https://<redacted>@r.example:8443", description)
        self.assertIn("ListenAddress=tcp:9090:interface=127.0.0.1", description)

    def test_unset_secrets(self) -> None:
        self.write("RancherURL: https://r.example\n")
        description = load_config(self.directory).describe()
        self.assertIn("BearerToken=(none)", description)
        self.assertIn("ControlToken=(none)", description)


class TemplateTests(_Base):
    def test_copies_default(self) -> None:
        bundled = Path(self.mktemp())
        bundled.mkdir()
        (bundled / DEFAULT_TEMPLATE_NAME).write_text("kind: ClusterTemplate\n")
        target = ensure_template(self.directory, bundled)
        self.assertEqual(target, self.directory / "cluster.yaml")
        self.assertEqual(target.read_text(), "kind: ClusterTemplate\n")

    def test_keeps_existing(self) -> None:
        (self.directory / "cluster.yaml").write_text("mine\n")
        target = ensure_template(self.directory, Path(self.mktemp()))
        self.assertEqual(target.read_text(), "mine\n")

    def test_missing_bundled_template(self) -> None:
        bundled = Path(self.mktemp())
        bundled.mkdir()
        error = self.assertRaises(ConfigError, ensure_template, self.directory, bundled)
        self.assertIn(str(bundled / DEFAULT_TEMPLATE_NAME), str(error))
        self.assertFalse((self.directory / "cluster.yaml").exists())

    def test_bundled_templates_dir(self) -> None:
        """
        In a source checkout the templates are the repository's
        C{cluster_templates/}.
        """
        found = bundled_templates_dir()
        self.assertTrue(found.is_dir())
        self.assertEqual(found.name, "cluster_templates")
