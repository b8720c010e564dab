# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugin's options and service: C{twistd -n scaleagent} reads the
configuration and cluster template, brings back every saved cluster and
serves the control API.

This is the only module that uses the global reactor.
"""

from __future__ import annotations

import resource
import uuid
from pathlib import Path
from typing import Any, NoReturn, Optional

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import serverFromString
from twisted.logger import (
    FilteringLogObserver,
    LogLevelFilterPredicate,
    Logger,
    globalLogPublisher,
)
from twisted.python import usage
from twisted.web.server import Site

from . import __version__
from .config import (
    ConfigError,
    Config,
    bundled_templates_dir,
    ensure_template,
    load_config,
)

_log = Logger()


def _stop(message: str) -> NoReturn:
    """
    End start-up with C{message} on stderr and exit status 1. (twistd would
    print a C{UsageError} on stdout, after the whole usage text.)
    """
    raise SystemExit(f"scaleagent: {message}")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Simulate many imported Kubernetes clusters for a Rancher server. Reads "
        "~/.scale-cluster-agent/config (RancherURL, BearerToken, ...) and the cluster "
        "template cluster.yaml beside it, and serves a control API "
        "(POST /clusters, GET /clusters, DELETE /clusters/<name>, /metrics)."
    )
    optParameters = [
        ["config", "c", None, "Configuration directory (default ~/.scale-cluster-agent)."],
        ["state-dir", None, None, "Where cluster state is kept (overrides StateDir)."],
        [
            "listen",
            "l",
            None,
            "Control API endpoint, e.g. tcp:9090:interface=127.0.0.1 (overrides ListenAddress).",
        ],
        ["log-level", None, None, "debug, info, warn or error (overrides LogLevel)."],
    ]
    optFlags = [
        ["insecure", "k", "Do not verify Rancher's TLS certificate (overrides InsecureSkipTLSVerify)."],
    ]

    config: Config
    template: Any

    def postOptions(self) -> None:
        # Everything that can be wrong with the input is found here, before
        # twistd daemonises, so the user sees it on the terminal.
        from .kube.template import ClusterTemplate, TemplateError

        try:
            config = load_config(self["config"])
        except ConfigError as e:
            _stop(str(e))
        changes: dict[str, Any] = {}
        if self["state-dir"]:
            changes["state_dir"] = Path(self["state-dir"]).expanduser().absolute()
        if self["listen"]:
            try:
                serverFromString(None, self["listen"])
            except (ValueError, TypeError, KeyError) as e:
                raise usage.UsageError(f"--listen: not a Twisted endpoint: {e}") from None
            changes["listen_address"] = self["listen"]
        if self["log-level"]:
            level = self["log-level"].lower()
            if level not in ("debug", "info", "warn", "error"):
                raise usage.UsageError("--log-level: one of debug, info, warn, error")
            changes["log_level"] = level
        if self["insecure"]:
            changes["insecure_skip_tls_verify"] = True
        if changes:
            from dataclasses import replace

            config = replace(config, **changes)
        try:
            ensure_template(config.config_directory, bundled_templates_dir())
            self.template = ClusterTemplate.load(config.template_file)
        except (ConfigError, TemplateError) as e:
            _stop(str(e))
        except OSError as e:
            _stop(f"cluster template: {e}")
        self.config = config


class _LogLevel(Service):
    """
    Applies the configured log level to the observers the runner set up.

    twistd begins logging before it starts services, C{twist} after, so the
    observers are wrapped once the reactor runs, when both have; the
    start-up buffer a runner replays must be left alone.
    """

    def __init__(self, level: Any, reactor: Any, publisher: Any = globalLogPublisher) -> None:
        self.level = level
        self._reactor = reactor
        self._publisher = publisher

    def startService(self) -> None:
        super().startService()
        self._reactor.callWhenRunning(self._apply)

    def _apply(self) -> None:
        from twisted.logger import LimitedHistoryLogObserver

        observers = getattr(self._publisher, "_observers", None)
        if observers is None:
            return
        predicate = LogLevelFilterPredicate(defaultLogLevel=self.level)
        for index, observer in enumerate(list(observers)):
            if not isinstance(observer, (FilteringLogObserver, LimitedHistoryLogObserver)):
                observers[index] = FilteringLogObserver(observer, [predicate])


def _raise_file_limit() -> None:
    """Thousands of clusters need thousands of sockets: use the hard limit."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1048576
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        _log.warn("could not raise the open-file limit: {error}", error=str(e))


class _QuietPool:
    """Built on first use so that importing this module stays cheap."""

    def __new__(cls, reactor: Any, persistent: bool) -> Any:
        from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

        class QuietFactory(_HTTP11ClientFactory):
            # One "Starting factory"/"Stopping factory" log pair per pooled
            # connection to Rancher says nothing a user can act on.
            noisy = False

        class QuietPool(HTTPConnectionPool):
            _factory = QuietFactory

        return QuietPool(reactor, persistent=persistent)


def instance_id(state_dir: Path) -> str:
    """
    This installation's id, kept in the state directory: it marks the
    clusters it creates in Rancher, so an interrupted create is adopted
    rather than duplicated after a restart.
    """
    from .persistence import atomic_write

    path = state_dir / "instance-id"
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = str(uuid.uuid4())
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (value + "\n").encode())
    return value


def build_service(options: Options, reactor: Any, endpoint_factory: Optional[Any] = None) -> MultiService:
    """
    Assemble the daemon from validated options.

    @param reactor: the reactor to run on.
    @param endpoint_factory: how tunnels connect (default: TCP/TLS).
    """
    import treq
    from twisted.web.client import Agent

    from .control import ControlAPI
    from .fleet import Fleet
    from .persistence import StateStore
    from .rancher.client import RancherClient
    from .tunnel.trust import RancherTrust

    config = options.config
    root = MultiService()
    _LogLevel(config.twisted_log_level, reactor).setServiceParent(root)

    if config.insecure_skip_tls_verify:
        trust = RancherTrust.insecure()
    elif config.ca_certs is not None:
        trust = RancherTrust.with_ca(config.ca_certs.read_text())
    else:
        trust = RancherTrust.system()
    pool = _QuietPool(reactor, persistent=True)
    pool.maxPersistentPerHost = max(2, config.connect_concurrency)
    http = treq.client.HTTPClient(Agent(reactor, contextFactory=trust.https_policy(), pool=pool))

    state = StateStore(config.state_dir, reactor)
    rancher = RancherClient(
        config.rancher_url,
        config.bearer_token or "",
        http,
        reactor,
        instance_id(config.state_dir),
    )
    fleet = Fleet(
        reactor,
        rancher,
        options.template,
        state,
        config.api_address,
        insecure=config.insecure_skip_tls_verify,
        connect_concurrency=config.connect_concurrency,
        endpoint_factory=endpoint_factory,
        rancher_poll_interval=config.rancher_poll_interval,
    )
    fleet.load()
    fleet.setServiceParent(root)

    site = Site(ControlAPI(fleet, config.control_token).resource())
    site.displayTracebacks = False
    control = StreamServerEndpointService(serverFromString(reactor, config.listen_address), site)
    # As twisted.application.strports does: a control port that cannot be
    # bound stops start-up with the error instead of a daemon nobody can
    # reach.
    control._raiseSynchronously = True
    control.setServiceParent(root)

    _log.info(
        "scaleagent {version}: {description}", version=__version__, description=config.describe()
    )
    for warning in config.warnings:
        _log.warn("{warning}", warning=warning)
    if not config.bearer_token:
        _log.warn("no BearerToken is configured: new clusters cannot be created in Rancher")
    return root


def makeService(options: Options) -> MultiService:
    from twisted.internet import reactor

    _raise_file_limit()
    return build_service(options, reactor)
