# -*- test-case-name: tests.test_config -*-
"""
Read and validate the daemon's configuration file into a L{Config}.

The file is C{~/.scale-cluster-agent/config} (the twistd option names
another directory), with the cluster template C{cluster.yaml} beside it.
The Go tool this daemon replaces kept both one level deeper, in
C{~/.scale-cluster-agent/config/config} and
C{~/.scale-cluster-agent/config/cluster.yaml}; when C{<directory>/config} is
a directory, those files are used.

The file is either a YAML (or JSON) mapping, or lines of C{Key: Value} or
C{Key:Value} with C{#} comments and blank lines. Keys match without regard
to case. Every problem is reported as a L{ConfigError} whose message names
the file, the line and the key, e.g.::

    ~/.scale-cluster-agent/config line 3: RancherURL: not an https URL: "htp://x"

Messages never contain the value of a secret.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import site
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import yaml
from twisted.internet.endpoints import serverFromString
from twisted.logger import LogLevel

from scaleagent.identity import split_host_port
from scaleagent.persistence import atomic_write
from scaleagent.yamlerrors import yaml_problem

#: Where everything lives unless the twistd option says otherwise.
DEFAULT_CONFIG_DIRECTORY = "~/.scale-cluster-agent"

CONFIG_FILE_NAME = "config"
TEMPLATE_FILE_NAME = "cluster.yaml"

#: The bundled template copied to C{cluster.yaml} when there is none.
DEFAULT_TEMPLATE_NAME = "k3s-v1.28.yaml"

DEFAULT_LISTEN_ADDRESS = "tcp:9090:interface=127.0.0.1"
DEFAULT_API_ADDRESS = "10.43.0.1:443"
DEFAULT_CONNECT_CONCURRENCY = 10
DEFAULT_LOG_LEVEL = "info"
DEFAULT_RANCHER_POLL_INTERVAL = 30.0

#: Keys of the Go tool that mean nothing here; accepted with a warning so
#: an old file keeps working.
OBSOLETE_KEYS: tuple[str, ...] = (
    "MultiTenant",
    "MainClusterName",
    "MainAPIPort",
    "ProxyBasePort",
    "Pprof",
    "PprofPort",
    "PprofEnable",
    "MemLogIntervalSec",
    "Audit",
    "ResourceOnlyInMainCluster",
)

_LOG_LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}
_LOG_LEVEL_ALIASES = {"warning": "warn"}

_BOOLEANS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}

# Rancher API keys are "<name>:<secret>" ("token-xxxxx:..." for norman
# tokens); newer token kinds use other names, so only the shape is checked.
_BEARER_TOKEN = re.compile(r"\A[^\s:]+:[^\s]+\Z")
_LINE = re.compile(r"\A([A-Za-z][A-Za-z0-9_.-]*)\s*:(.*)\Z")
_TRAILING_COMMENT = re.compile(r"\s+#.*\Z")

REDACTED = "<redacted>"


class ConfigError(Exception):
    """
    The configuration cannot be used; the message says where and why.
    """


class _InvalidValue(ValueError):
    """
    A value a key does not accept; the loader adds file, line and key.
    """


@dataclass(frozen=True, repr=False)
class Config:
    """
    The validated configuration.

    @ivar rancher_url: the Rancher server, C{https://host[:port][/path]},
        without a trailing slash.
    @ivar bearer_token: the Rancher API key (C{token-xxxxx:secret}), needed
        to create clusters; L{None} if not configured.
    @ivar listen_address: the control API's Twisted server endpoint.
    @ivar control_token: bearer token the control API requires, or L{None}.
    @ivar log_level: C{debug}, C{info}, C{warn} or C{error}.
    @ivar insecure_skip_tls_verify: do not verify Rancher's certificate.
    @ivar state_dir: where cluster state is kept.
    @ivar api_address: the API address simulated clusters announce.
    @ivar connect_concurrency: how many clusters connect at the same time.
    @ivar ca_certs: a PEM file of CA certificates trusted for Rancher's
        management API besides the system roots (a Rancher with a private
        CA); the tunnels verify Rancher as the agent does, from the
        manifest's CA checksum.
    @ivar rancher_poll_interval: seconds between reads of every cluster's
        state in Rancher (one shared list request); 0 turns it off.
    @ivar config_directory: the directory holding the configuration file
        (the legacy C{config/} subdirectory when that layout is used).
    @ivar config_file: the file read.
    @ivar template_file: the cluster template, C{cluster.yaml}.
    @ivar warnings: things worth logging at start-up (obsolete keys...).
    """

    rancher_url: str
    bearer_token: Optional[str] = None
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    control_token: Optional[str] = None
    log_level: str = DEFAULT_LOG_LEVEL
    insecure_skip_tls_verify: bool = False
    state_dir: Path = Path(".")
    api_address: str = DEFAULT_API_ADDRESS
    connect_concurrency: int = DEFAULT_CONNECT_CONCURRENCY
    ca_certs: Optional[Path] = None
    rancher_poll_interval: float = DEFAULT_RANCHER_POLL_INTERVAL
    config_directory: Path = Path(".")
    config_file: Path = Path(CONFIG_FILE_NAME)
    template_file: Path = Path(TEMPLATE_FILE_NAME)
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<Config {self.describe()}>"

    @property
    def twisted_log_level(self) -> LogLevel:
        return _LOG_LEVELS[self.log_level]

    def describe(self) -> str:
        """
        One line for the start-up log, with every secret redacted: the
        token part of the API key, the control token, and any password in
        the Rancher URL.
        """
        if self.bearer_token is None:
            bearer = "(none)"
        else:
            bearer = self.bearer_token.partition(":")[0] + ":" + REDACTED
        items = [
            ("RancherURL", _redact_url(self.rancher_url)),
            ("BearerToken", bearer),
            ("ListenAddress", self.listen_address),
            ("ControlToken", "(none)" if self.control_token is None else REDACTED),
            ("LogLevel", self.log_level),
            ("InsecureSkipTLSVerify", "true" if self.insecure_skip_tls_verify else "false"),
            ("StateDir", str(self.state_dir)),
            ("APIAddress", self.api_address),
            ("ConnectConcurrency", str(self.connect_concurrency)),
            ("CACerts", "(none)" if self.ca_certs is None else str(self.ca_certs)),
            ("RancherPollInterval", f"{self.rancher_poll_interval:g}"),
            ("ConfigFile", str(self.config_file)),
            ("Template", str(self.template_file)),
        ]
        return " ".join(f"{key}={_quote_if_needed(value)}" for key, value in items)


def _quote_if_needed(value: str) -> str:
    if not value or any(character.isspace() for character in value) or '"' in value:
        return json.dumps(value)
    return value


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


# Value parsers. Each takes the raw text and returns the typed value, or
# raises _InvalidValue with a message that may quote the value (the
# loader does not call them for secrets' messages that would leak).


def _quoted(value: str) -> str:
    return json.dumps(value)


def _parse_rancher_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise _InvalidValue(f"not an https URL: {_quoted(_redact_url(value))}")
    if parts.query or parts.fragment:
        raise _InvalidValue(f"must not have a query or fragment: {_quoted(_redact_url(value))}")
    try:
        parts.port
    except ValueError:
        raise _InvalidValue(f"bad port: {_quoted(_redact_url(value))}") from None
    return value.rstrip("/")


def _parse_bearer_token(value: str) -> str:
    if not _BEARER_TOKEN.match(value):
        # Never echo it: it is a credential, perhaps only mistyped.
        raise _InvalidValue("not a Rancher API key (expected token-xxxxx:secret)")
    return value


def _parse_ca_file(value: str) -> Path:
    path = Path(value).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise _InvalidValue(f"cannot read {_quoted(str(path))}: {error.strerror or error}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise _InvalidValue(f"{_quoted(str(path))} holds no PEM certificate")
    # Absolute, so that daemonising (which changes directory) keeps it.
    return path.absolute()


def _parse_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise _InvalidValue(f"not a number of seconds: {_quoted(value)}") from None
    if seconds < 0 or seconds != seconds:
        raise _InvalidValue(f"not a number of seconds: {_quoted(value)}")
    return seconds


def _parse_control_token(value: str) -> str:
    if any(character.isspace() or not character.isprintable() for character in value):
        raise _InvalidValue("must not contain whitespace or control characters")
    return value


def _parse_listen_address(value: str) -> str:
    try:
        # Building an endpoint object only parses and stores its arguments;
        # nothing listens, so no reactor is needed to validate it.
        serverFromString(None, value)
    except (ValueError, TypeError, KeyError, OSError) as error:
        raise _InvalidValue(
            f"not a Twisted endpoint description: {_quoted(value)} ({error})"
        ) from None
    return value


def _parse_listen_port(value: str) -> str:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise _InvalidValue(f"not a port number: {_quoted(value)}")
    return f"tcp:{int(value)}:interface=127.0.0.1"


def _parse_log_level(value: str) -> str:
    level = value.lower()
    level = _LOG_LEVEL_ALIASES.get(level, level)
    if level not in _LOG_LEVELS:
        raise _InvalidValue(f"not one of debug, info, warn, error: {_quoted(value)}")
    return level


def _parse_boolean(value: str) -> bool:
    try:
        return _BOOLEANS[value.lower()]
    except KeyError:
        raise _InvalidValue(f"not a boolean (true or false): {_quoted(value)}") from None


def _parse_path(value: str) -> Path:
    return Path(value).expanduser()


def _parse_api_address(value: str) -> str:
    try:
        split_host_port(value)
    except ValueError as error:
        raise _InvalidValue(f"not host:port: {_quoted(value)} ({error})") from None
    return value


def _parse_positive_integer(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise _InvalidValue(f"not a positive integer: {_quoted(value)}")
    return int(value)


@dataclass(frozen=True)
class _Key:
    name: str
    attribute: str
    parse: Callable[[str], object]
    secret: bool = False


_KEYS = {
    key.name.lower(): key
    for key in (
        _Key("RancherURL", "rancher_url", _parse_rancher_url),
        _Key("BearerToken", "bearer_token", _parse_bearer_token, secret=True),
        _Key("ListenAddress", "listen_address", _parse_listen_address),
        _Key("ListenPort", "listen_address", _parse_listen_port),
        _Key("ControlToken", "control_token", _parse_control_token, secret=True),
        _Key("LogLevel", "log_level", _parse_log_level),
        _Key("InsecureSkipTLSVerify", "insecure_skip_tls_verify", _parse_boolean),
        _Key("StateDir", "state_dir", _parse_path),
        _Key("APIAddress", "api_address", _parse_api_address),
        _Key("ConnectConcurrency", "connect_concurrency", _parse_positive_integer),
        _Key("CACerts", "ca_certs", _parse_ca_file),
        _Key("RancherPollInterval", "rancher_poll_interval", _parse_seconds),
    )
}
_OBSOLETE = {name.lower(): name for name in OBSOLETE_KEYS}


@dataclass(frozen=True)
class _Entry:
    """
    One C{key: value} of the file, before interpretation.
    """

    key: str
    value: Optional[str]
    line: int


def display_path(path: Path) -> str:
    """
    C{path} as a message shows it: the home directory as C{~}.
    """
    text = str(path)
    home = os.path.expanduser("~")
    if home not in ("", "~", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


def locate(directory: Union[str, Path, None] = None) -> tuple[Path, Path, Path]:
    """
    Find the configuration file and template for a configuration directory.

    @param directory: the directory (default L{DEFAULT_CONFIG_DIRECTORY});
        the path of a configuration file is accepted too.
    @return: the base directory, the directory holding the files (the
        legacy C{config/} subdirectory if that layout is in use), and the
        configuration file, all absolute so that a later change of working
        directory (daemonising) does not move them.
    """
    base = Path(directory if directory is not None else DEFAULT_CONFIG_DIRECTORY)
    base = base.expanduser().absolute()
    if base.is_file():
        return base.parent, base.parent, base
    candidate = base / CONFIG_FILE_NAME
    if candidate.is_dir():
        return base, candidate, candidate / CONFIG_FILE_NAME
    return base, base, candidate


def load_config(directory: Union[str, Path, None] = None) -> Config:
    """
    Read and validate the configuration.

    @param directory: the configuration directory (or file); default
        L{DEFAULT_CONFIG_DIRECTORY}.
    @raise ConfigError: naming the file, line and key of the first problem.
    """
    base, config_directory, config_file = locate(directory)
    shown = display_path(config_file)
    try:
        raw = config_file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: no such file; create it with at least RancherURL and BearerToken"
        ) from None
    except OSError as error:
        raise ConfigError(f"{shown}: cannot read: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{shown}: not UTF-8 text (byte {error.start})") from None

    entries = _parse_entries(text, shown)
    values: dict[str, object] = {}
    seen: dict[str, tuple[str, int]] = {}
    warnings: list[str] = []
    for entry in entries:
        lowered = entry.key.lower()
        where = f"{shown} line {entry.line}"
        if lowered in _OBSOLETE:
            warnings.append(f"{where}: {_OBSOLETE[lowered]}: no longer used; ignored")
            continue
        key = _KEYS.get(lowered)
        if key is None:
            raise ConfigError(f"{where}: {entry.key}: unknown key{_suggestion(entry.key)}")
        if key.attribute in seen:
            first_key, first_line = seen[key.attribute]
            if first_key == key.name:
                raise ConfigError(
                    f"{where}: {key.name}: given twice (first on line {first_line})"
                )
            raise ConfigError(
                f"{where}: {key.name}: conflicts with {first_key} on line {first_line}"
            )
        seen[key.attribute] = (key.name, entry.line)
        if entry.value is None:
            raise ConfigError(f"{where}: {key.name}: expected a single value")
        value = entry.value.strip()
        if not value:
            if key.attribute == "rancher_url":
                raise ConfigError(f"{where}: {key.name}: a value is required")
            # An empty value means "not set", as a YAML null does.
            continue
        try:
            values[key.attribute] = key.parse(value)
        except _InvalidValue as error:
            raise ConfigError(f"{where}: {key.name}: {error}") from None
        if key.name == "ListenPort":
            warnings.append(
                f"{where}: ListenPort is deprecated; serving the control API on "
                f"loopback only ({values['listen_address']}); use ListenAddress "
                "to choose an interface"
            )

    if "rancher_url" not in values:
        raise ConfigError(f"{shown}: RancherURL: required key is missing")
    state_dir = values.pop("state_dir", None)
    if state_dir is None:
        state_dir = base
    else:
        assert isinstance(state_dir, Path)
        # A relative StateDir is relative to the file that names it.
        state_dir = config_directory / state_dir
    return Config(
        **values,  # type: ignore[arg-type]
        state_dir=state_dir,
        config_directory=config_directory,
        config_file=config_file,
        template_file=config_directory / TEMPLATE_FILE_NAME,
        warnings=tuple(warnings),
    )


def _suggestion(key: str) -> str:
    current = [known.name for known in _KEYS.values()]
    names = {name.lower(): name for name in (*current, *OBSOLETE_KEYS)}
    matches = difflib.get_close_matches(key.lower(), list(names), n=1, cutoff=0.6)
    if matches:
        return f' (did you mean "{names[matches[0]]}"?)'
    return f" (known keys: {', '.join(current)})"


def _parse_entries(text: str, shown: str) -> list[_Entry]:
    """
    Turn the file into entries: as YAML if it is a YAML mapping, else as
    C{Key: Value} lines.
    """
    yaml_error: Optional[yaml.YAMLError] = None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        node, yaml_error = None, error
    else:
        if node is None:
            return []
        if isinstance(node, yaml.MappingNode):
            return _entries_from_yaml(node, shown)

    significant = (line.strip() for line in text.splitlines())
    first = next((line for line in significant if line and not line.startswith("#")), "")
    structured = node is not None and not isinstance(node, yaml.ScalarNode)
    if first.startswith(("{", "[")) or structured:
        # It was meant to be YAML or JSON: its own error helps most.
        if yaml_error is not None:
            problem, mark = yaml_problem(yaml_error)
            if mark is not None:
                raise ConfigError(f"{shown} line {mark.line + 1}: not valid YAML/JSON: {problem}")
            raise ConfigError(f"{shown}: not valid YAML/JSON: {problem}")
        raise ConfigError(f"{shown}: expected a mapping of keys to values")
    return _entries_from_lines(text, shown)


def _entries_from_yaml(node: yaml.MappingNode, shown: str) -> list[_Entry]:
    entries = []
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(f"{shown} line {line}: keys must be plain names")
        if isinstance(value_node, yaml.ScalarNode):
            # The scalar's text as written (without quotes), not YAML's
            # reading of it: a token like 0123 must stay a string.
            value: Optional[str] = value_node.value
        else:
            value = None
        entries.append(_Entry(str(key_node.value), value, line))
    return entries


def _entries_from_lines(text: str, shown: str) -> list[_Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(stripped)
        if match is None:
            raise ConfigError(
                f'{shown} line {number}: expected "Key: Value", got {_quote_line(stripped)}'
            )
        value = _TRAILING_COMMENT.sub("", match.group(2)).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        entries.append(_Entry(match.group(1), value, number))
    return entries


def _quote_line(line: str) -> str:
    """
    A line that is not C{Key: Value}, for a message: its start, unless it
    may hold a secret (a BearerToken or ControlToken line missing its
    colon, a pasted API key).
    """
    lowered = line.lower()
    for key in _KEYS.values():
        if key.secret and key.name.lower() in lowered:
            return f"a {key.name} line (not shown: it may hold a secret)"
    if any(_BEARER_TOKEN.match(word) and "://" not in word for word in line.split()):
        return "a line that looks like it holds an API key (not shown)"
    return json.dumps(line[:40])


def bundled_templates_dir() -> Path:
    """
    Where the bundled cluster templates are: C{cluster_templates/} at the
    top of a source checkout, else C{<prefix>/share/scaleagent/
    cluster_templates} of the installation (C{sys.prefix}, or the user
    base for C{pip install --user}).

    @raise ConfigError: listing the places searched, if none exists.
    """
    candidates = [
        Path(__file__).resolve().parent.parent / "cluster_templates",
        Path(sys.prefix) / "share" / "scaleagent" / "cluster_templates",
    ]
    user_base = getattr(site, "USER_BASE", None)
    if user_base:
        candidates.append(Path(user_base) / "share" / "scaleagent" / "cluster_templates")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        "cannot find the bundled cluster templates; looked in "
        + ", ".join(str(candidate) for candidate in candidates)
    )


def ensure_template(
    config_directory: Union[str, Path],
    bundled_dir: Union[str, Path],
    template_name: str = DEFAULT_TEMPLATE_NAME,
) -> Path:
    """
    Make sure C{cluster.yaml} exists in C{config_directory}, copying the
    bundled default template there if it does not. An existing file is
    never touched: it may be the operator's own template.

    @param config_directory: L{Config.config_directory}.
    @param bundled_dir: L{bundled_templates_dir}C{()}.
    @return: the path of C{cluster.yaml}.
    @raise ConfigError: if the bundled template cannot be read or the copy
        cannot be written.
    """
    target = Path(config_directory) / TEMPLATE_FILE_NAME
    if target.exists():
        return target
    source = Path(bundled_dir) / template_name
    try:
        content = source.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"{display_path(source)}: cannot read the bundled template: {error.strerror or error}"
        ) from None
    try:
        atomic_write(target, content, mode=0o644)
    except OSError as error:
        raise ConfigError(
            f"{display_path(target)}: cannot write: {error.strerror or error}"
        ) from None
    return target


__all__ = [
    "Config",
    "ConfigError",
    "DEFAULT_CONFIG_DIRECTORY",
    "DEFAULT_TEMPLATE_NAME",
    "OBSOLETE_KEYS",
    "bundled_templates_dir",
    "display_path",
    "ensure_template",
    "load_config",
    "locate",
]
