# -*- test-case-name: tests.test_kube_acceptance -*-
"""
Acceptance tests of the synthetic Kubernetes API, end to end: one simulated
cluster (the default template, holding the Rancher v2.14.4 import
manifest's objects) runs in this process with its main and steve tunnels
connected to the Go stand-in, and the stand-in drives the cluster's API the
way Rancher does, through the real remotedialer tunnel, TLS verified
against the CA the main tunnel announced:

 - the client-go suite (C{runKubeSuite}: discovery, informers in both
   modes, every write and patch kind, Rancher's impersonation sequence with
   protobuf bodies, CRDs, Tables), whose normalised transcript is diffed
   against the one a real kube-apiserver v1.35.4 produced
   (C{tests/fixtures/kube-reference/});
 - kubectl, built into the stand-in from C{k8s.io/kubectl}, applying the
   import manifest and then the manifest Rancher redeploys (strategic
   merge), with validation on;
 - bad requests, which must get a C{Status}, never a traceback or a
   dropped tunnel (protobuf garbage with the protobuf content type, which
   neither kubectl nor the stand-in's control API can send, goes to the
   same TLS + HTTP stack over a loopback connection instead).

Where scaleagent and the real server differ, the difference must be one
listed in C{tests/fixtures/kube-reference/known-differences.json}, and
every difference listed there must still occur: a regression shows up as a
new difference, a fix as a listed one that went away (then remove it from
the file).

trial has no per-class fixtures, and its reactor check forbids sharing
processes or connections between tests, so every test builds its own rig
(about a second); the client-go suite runs once per process and its result
(plain data) is shared by the two tests that read it.

No log event, failure message or stand-in log may hold the registration
token or the announced service-account token.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional, Union

import yaml
from twisted.internet.defer import Deferred
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from scaleagent.config import bundled_templates_dir
from scaleagent.identity import ClusterIdentity
from scaleagent.kube.cluster import KubeCluster
from scaleagent.kube.template import ClusterContext, ClusterTemplate
from scaleagent.rancher.manifest import AgentSettings, parse_import_manifest
from scaleagent.steve import SteveSite
from scaleagent.tunnel.heartbeat import Heartbeat
from scaleagent.tunnel.service import Tunnel, TunnelState
from scaleagent.tunnel.trust import RancherTrust
from tests.standin import LogWatch, StandinProcess, start_standin, wait_for

#: What the simulated cluster announces as its API server.
API_ADDRESS = "10.43.0.1:443"

FIXTURES = Path(__file__).resolve().parent / "fixtures"
IMPORT_MANIFEST = FIXTURES / "agent-manifests" / "import-v2.14.4.yaml"
REDEPLOYED_MANIFEST = FIXTURES / "agent-manifests" / "redeployed-v2.14.4.yaml"
REFERENCE_DIR = FIXTURES / "kube-reference"
KNOWN_DIFFERENCES = REFERENCE_DIR / "known-differences.json"

#: The credentials Secret the redeployed manifest switches the agent to.
REDEPLOYED_CREDENTIALS = "cattle-credentials-cb43af441f"

#: Limits of the steps after the stand-in is built. A cold `go build` of the
#: stand-in (client-go, kubectl) takes minutes and happens in the first
#: stand-in test of the process, hence the generous test timeout; once
#: built, the whole module runs in well under a minute.
SUITE_SECONDS = 90
KUBECTL_SECONDS = 60
WAIT_SECONDS = 30

PROTOBUF = "application/vnd.kubernetes.protobuf"
PROTOBUF_MAGIC = b"k8s\x00"
#: A protobuf envelope (runtime.Unknown) naming a v1 ConfigMap, whose raw
#: object is not protobuf.
PROTOBUF_GARBAGE = PROTOBUF_MAGIC + b"\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x03\xff\xff\xff"


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


# -- fixtures ---------------------------------------------------------------------

_template: Optional[ClusterTemplate] = None
_settings: Optional[AgentSettings] = None


def default_template() -> ClusterTemplate:
    """The bundled default template, parsed once per process."""
    global _template
    if _template is None:
        _template = ClusterTemplate.load(bundled_templates_dir() / "k3s-v1.28.yaml")
    return _template


def import_settings() -> AgentSettings:
    """The Rancher v2.14.4 import manifest, parsed once per process."""
    global _settings
    if _settings is None:
        _settings = parse_import_manifest(IMPORT_MANIFEST.read_text(encoding="utf-8"))
    return _settings


def known_differences() -> dict[str, Any]:
    with open(KNOWN_DIFFERENCES, encoding="utf-8") as f:
        return json.load(f)


def reference_transcript() -> dict[str, Any]:
    with open(REFERENCE_DIR / "kubesuite-transcript.json", encoding="utf-8") as f:
        return json.load(f)


@dataclass
class KubectlSection:
    """One command of C{kubectl-agent.txt}."""

    command: str
    exit_code: int
    output: list[str]
    requests: list[str]


def reference_kubectl() -> dict[str, KubectlSection]:
    """The sections of C{kubectl-agent.txt}, by title."""
    sections: dict[str, KubectlSection] = {}
    current: Optional[KubectlSection] = None
    in_requests = False
    text = (REFERENCE_DIR / "kubectl-agent.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        header = re.fullmatch(r"### (.+?): (.+) \(exit (\d+)\)", line)
        if header:
            current = KubectlSection(header.group(2), int(header.group(3)), [], [])
            sections[header.group(1)] = current
            in_requests = False
        elif line == "#### requests":
            in_requests = True
        elif current is not None and line:
            (current.requests if in_requests else current.output).append(line)
    return sections


def reference_status(check: str, step: str) -> dict[str, Any]:
    """The Status body the real apiserver answered at a step of the suite."""
    for entry in reference_transcript()[check]["transcript"]:
        if entry["step"] == step:
            return entry["value"]["body"]
    raise KeyError(f"{check}: no step {step!r} in the reference")


# -- normalising and diffing suite transcripts -------------------------------------


def _drop_managed_fields(value: Any) -> Any:
    """scaleagent keeps no managedFields (a documented approximation)."""
    if isinstance(value, dict):
        return {k: _drop_managed_fields(v) for k, v in value.items() if k != "managedFields"}
    if isinstance(value, list):
        return [_drop_managed_fields(v) for v in value]
    return value


def _without_timeout(query: str) -> str:
    """
    A query without C{timeout=}: client-go adds it from the REST config's
    timeout, which Rancher's config has (45 s) and the reference run had not.
    """
    return "&".join(p for p in query.split("&") if p and not p.startswith("timeout="))


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip()


def normalise_exchange(reference: Optional[dict], actual: dict) -> dict:
    """
    One recorded request of scaleagent's run, with what the reference README
    calls acceptable made equal to the reference: no C{timeout=} in the
    query, and a JSON answer where the real server answered protobuf.
    """
    actual = dict(actual)
    if actual.get("query"):
        actual["query"] = _without_timeout(actual["query"])
        if not actual["query"]:
            del actual["query"]
    if (
        reference is not None
        and _media_type(reference.get("responseType", "")) == PROTOBUF
        and _media_type(actual.get("responseType", "")) == "application/json"
    ):
        actual["responseType"] = reference["responseType"]
    return actual


def _normalise_reference_exchange(exchange: dict) -> dict:
    exchange = dict(exchange)
    if exchange.get("query"):
        exchange["query"] = _without_timeout(exchange["query"])
        if not exchange["query"]:
            del exchange["query"]
    return exchange


#: Checks that end when the informers' caches have synced: a LIST+WATCH
#: informer has synced once its LIST is processed, and whether its WATCH
#: has been answered by then is a race (the reference run happened to see
#: all twelve; through a tunnel fewer are). Their WATCH requests are compared
#: as a subset of the reference's.
WATCHES_AFTER_SYNC = frozenset({"informers/listwatch/sync"})


def _is_watch(exchange: dict) -> bool:
    return "watch=true" in exchange.get("query", "").split("&")


def suite_transcript(result: dict) -> dict[str, Any]:
    """A suite result in the reference's format (C{KubeSuiteResult.Transcript})."""
    out: dict[str, Any] = {}
    for check in result["checks"]:
        if check["status"] == "skip":
            continue
        entry: dict[str, Any] = {"status": check["status"]}
        if check.get("transcript"):
            entry["transcript"] = check["transcript"]
        if check.get("http"):
            entry["http"] = check["http"]
        out[check["name"]] = entry
    return out


def _steps(transcript: list[dict]) -> dict[str, Any]:
    """A check's observations by step name (C{name#2} for a repeated step)."""
    steps: dict[str, Any] = {}
    for entry in transcript:
        key = entry["step"]
        n = 1
        while key in steps:
            n += 1
            key = f"{entry['step']}#{n}"
        steps[key] = entry.get("value")
    return steps


def _diff_values(reference: Any, actual: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(reference, dict) and isinstance(actual, dict):
        for key in sorted(set(reference) | set(actual)):
            sub = f"{path}.{key}"
            if key not in actual:
                yield sub, reference[key], "<absent>"
            elif key not in reference:
                yield sub, "<absent>", actual[key]
            else:
                yield from _diff_values(reference[key], actual[key], sub)
    elif isinstance(reference, list) and isinstance(actual, list):
        if len(reference) != len(actual):
            yield f"{path}.length", len(reference), len(actual)
        for index, (r, a) in enumerate(zip(reference, actual)):
            yield from _diff_values(r, a, f"{path}[{index}]")
    elif reference != actual:
        yield path, reference, actual


@dataclass(frozen=True)
class Difference:
    check: str
    path: str
    reference: Any
    actual: Any

    def __str__(self) -> str:
        def show(value: Any) -> str:
            text = json.dumps(value, sort_keys=True)
            return text if len(text) <= 300 else text[:300] + "…"

        return (
            f"{self.check} {self.path}: "
            f"reference {show(self.reference)}, scaleagent {show(self.actual)}"
        )


def transcript_differences(
    reference: dict[str, Any], actual: dict[str, Any]
) -> list[Difference]:
    """
    Every difference between two suite transcripts, after normalisation:
    paths are C{status}, C{transcript[<step>]…} and C{http[<i>]…}.
    """
    found: list[Difference] = []
    for check in sorted(set(reference) | set(actual)):
        if check not in actual:
            found.append(Difference(check, "", "ran", "did not run"))
            continue
        if check not in reference:
            found.append(Difference(check, "", "did not run", "ran"))
            continue
        ref, act = reference[check], actual[check]
        if ref["status"] != act["status"]:
            found.append(Difference(check, "status", ref["status"], act["status"]))
        ref_steps = _steps(_drop_managed_fields(ref.get("transcript", [])))
        act_steps = _steps(_drop_managed_fields(act.get("transcript", [])))
        for step in ref_steps:
            if step not in act_steps:
                found.append(Difference(check, f"transcript[{step}]", "recorded", "<absent>"))
        for step in act_steps:
            if step not in ref_steps:
                found.append(Difference(check, f"transcript[{step}]", "<absent>", "recorded"))
        common = [s for s in ref_steps if s in act_steps]
        if common != [s for s in act_steps if s in ref_steps]:
            found.append(Difference(check, "transcript(order)", list(ref_steps), list(act_steps)))
        for step in common:
            prefix = f"transcript[{step}]"
            for path, r, a in _diff_values(ref_steps[step], act_steps[step], prefix):
                found.append(Difference(check, path, r, a))
        ref_http = [_normalise_reference_exchange(e) for e in ref.get("http", [])]
        act_http = list(act.get("http", []))
        if check in WATCHES_AFTER_SYNC:
            # Compare the watches apart: scaleagent's must be some of the
            # reference's.
            ref_watches = {e["path"]: e for e in ref_http if _is_watch(e)}
            for exchange in (e for e in act_http if _is_watch(e)):
                reference_watch = ref_watches.get(exchange["path"])
                exchange = normalise_exchange(reference_watch, exchange)
                if exchange != reference_watch:
                    path = f"http(watch {exchange['path']})"
                    found.append(Difference(check, path, reference_watch, exchange))
            ref_http = [e for e in ref_http if not _is_watch(e)]
            act_http = [e for e in act_http if not _is_watch(e)]
        act_http = [
            normalise_exchange(ref_http[i] if i < len(ref_http) else None, exchange)
            for i, exchange in enumerate(act_http)
        ]
        for path, r, a in _diff_values(ref_http, act_http, "http"):
            found.append(Difference(check, path, r, a))
    return found


def _under(path: str, prefix: str) -> bool:
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] in ".[(")


def classify(
    differences: list[Difference], known: list[dict[str, Any]]
) -> tuple[list[Difference], list[dict[str, Any]]]:
    """
    The differences no known entry explains, and the known entries that
    explain none of them.
    """
    used: set[int] = set()
    unexplained = []
    for difference in differences:
        matched = False
        for index, entry in enumerate(known):
            if entry["check"] == difference.check and any(
                _under(difference.path, prefix) for prefix in entry["paths"]
            ):
                used.add(index)
                matched = True
        if not matched:
            unexplained.append(difference)
    unused = [entry for index, entry in enumerate(known) if index not in used]
    return unexplained, unused


# -- kubectl output -------------------------------------------------------------------

_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HASH = re.compile(r"\b[0-9a-fA-F]{32,}\b")


def normalise_strings(value: Any) -> Any:
    """uids and long hex strings as the reference has them."""
    if isinstance(value, str):
        return _HASH.sub("<hash>", _UID.sub("<uid>", value))
    if isinstance(value, dict):
        return {k: normalise_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_strings(v) for v in value]
    return value


class BadRequest(NamedTuple):
    """A request kubectl sends and the Status it must get."""

    what: str
    args: list[str]
    code: int
    reason: str
    #: The Status message: exactly, matching, or not checked (None).
    message: Union[str, "re.Pattern[str]", None]
    stdin: Optional[str] = None


def server_error(stderr: str) -> tuple[str, str]:
    """
    The reason and message of kubectl's "Error from server (Reason): message",
    which kubectl prints from the Status the server answered.
    """
    match = re.match(r"Error from server \((\w+)\): (.*)", stderr.strip(), re.S)
    assert match is not None, f"not a server error: {stderr!r}"
    return match.group(1), match.group(2)


def table_column(output: str, column: str) -> list[str]:
    """One column of kubectl's table output."""
    lines = [line for line in output.splitlines() if line.strip()]
    header = lines[0].split()
    index = header.index(column)
    return [line.split()[index] for line in lines[1:]]


def server_errors(kube: KubeCluster) -> dict[tuple[str, int], int]:
    """The cluster's answers with a 5xx status, by verb and status."""
    return {key: count for key, count in kube.stats.requests.items() if key[1] >= 500}


# -- a plain HTTPS client for the cluster's own TLS + HTTP stack ------------------------


@implementer(IPolicyForHTTPS)
class _ClusterTrust:
    """Verifies the cluster's serving certificate, for any netloc."""

    def __init__(self, ca_pem: bytes, hostname: str) -> None:
        self._options = optionsForClientTLS(hostname, trustRoot=Certificate.loadPEM(ca_pem))

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self._options


# -- the rig ----------------------------------------------------------------------------


@dataclass
class Rig:
    """One stand-in cluster, our simulated cluster, and its tunnels."""

    standin: StandinProcess
    cluster_id: str
    context: ClusterContext
    identity: ClusterIdentity
    kube: KubeCluster
    main: Tunnel
    steve: Tunnel

    def view(self) -> Deferred[dict[str, Any]]:
        """The stand-in's view of the cluster, without its tokens."""

        def redact(view: dict[str, Any]) -> dict[str, Any]:
            view = dict(view)
            view.pop("tokens", None)
            view.pop("params", None)
            return view

        return self.standin.cluster(self.cluster_id).addCallback(redact)

    async def kubectl(
        self, *args: str, stdin: Optional[str] = None, timeout: float = KUBECTL_SECONDS
    ) -> dict[str, Any]:
        """Run kubectl in the stand-in, through the main tunnel."""
        body: dict[str, Any] = {"args": list(args), "timeoutSeconds": timeout}
        if stdin is not None:
            body["stdin"] = stdin
        return await self.standin.control(
            "POST", f"/standin/clusters/{self.cluster_id}/kubectl", body
        )

    async def kubesuite(self, **options: Any) -> dict[str, Any]:
        """Run the client-go suite in the stand-in, through the main tunnel."""
        body = {"timeoutSeconds": SUITE_SECONDS, "syncTimeoutSeconds": 15, **options}
        return await self.standin.control(
            "POST", f"/standin/clusters/{self.cluster_id}/kubesuite", body
        )

    def template_names(self, resource: str) -> list[tuple[str, str]]:
        """(namespace, name) of the template's objects of a core resource."""
        seed = self.kube.template.seed_for(self.context)
        return [
            (namespace, name)
            for resource_type, namespace, name, _ in seed.entries
            if resource_type.group_resource == ("", resource)
        ]


# The client-go suite's result, run once per process (see the docstring),
# and the secrets of the rig it ran on.
_suite_result: Optional[dict[str, Any]] = None
_suite_secrets: list[str] = []


class KubeAcceptanceTests(TestCase):
    """
    The synthetic Kubernetes API as Rancher's client-go and kubectl see it
    through the stand-in's tunnel.
    """

    # A cold build of the stand-in happens in the first stand-in test of the
    # process; every step after it has its own, short limit.
    timeout = 600
    maxDiff = None

    def setUp(self) -> None:
        self.reactor = _reactor()
        self.secrets: list[str] = []
        self.standins: list[StandinProcess] = []
        # The check runs after everything (the tunnels' stop included) has
        # logged: see LogWatch.
        self.addCleanup(self.assert_clean_logs)
        self.logs = LogWatch(self)

    def assert_clean_logs(self) -> None:
        """No secret in any log; no failure (traceback) logged at all."""
        self.assertTrue(self.secrets)
        if self.standins:
            # (A test that reuses the suite's result built no rig.)
            self.assertTrue(self.logs.events)
        self.assertEqual(self.logs.secret_leaks(self.secrets, self.standins), [])
        self.assertEqual(self.logs.failures(), [], "failures (tracebacks) were logged")

    async def rig(self) -> Rig:
        """
        A stand-in with one cluster, our simulated cluster (default template,
        import manifest applied) and both its tunnels connected, trusting
        the stand-in's CA.
        """
        standin = await start_standin(self, "--ping-interval", "0")
        self.standins.append(standin)
        cluster = await standin.create_cluster()
        now = datetime.now(timezone.utc)
        identity = ClusterIdentity.generate(API_ADDRESS, cluster["id"], now)
        identity.ensure_cattle_account()
        params = identity.tunnel_params()
        self.secrets += [cluster["token"], params.token, params.header_value()]
        # A real cluster exists well before it is imported.
        context = ClusterContext(cluster["id"], f"seed-{cluster['id']}", now - timedelta(days=1))
        kube = KubeCluster.create(
            default_template(),
            context,
            identity,
            self.reactor,
            import_objects=import_settings().objects,
        )
        self.addCleanup(kube.close)
        heartbeat = Heartbeat(self.reactor)
        heartbeat.startService()
        self.addCleanup(heartbeat.stopService)
        common: dict[str, Any] = dict(
            reactor=self.reactor, heartbeat=heartbeat, trust=RancherTrust.with_ca(standin.cacerts)
        )
        main = Tunnel.main(
            standin.url,
            cluster["token"],
            params,
            kube.route,
            label=f"{cluster['id']}/main",
            **common,
        )
        steve = Tunnel.steve(
            standin.url,
            cluster["token"],
            SteveSite(self.reactor),
            label=f"{cluster['id']}/steve",
            **common,
        )
        for tunnel in (main, steve):
            tunnel.startService()
            self.addCleanup(tunnel.stopService)
        rig = Rig(standin, cluster["id"], context, identity, kube, main, steve)
        await wait_for(
            lambda: [(t.state, t.status.connect_count) for t in (main, steve)],
            until=lambda states: all(s == (TunnelState.CONNECTED, 1) for s in states),
            timeout=WAIT_SECONDS,
            what="both tunnels to connect",
        )
        await wait_for(
            rig.view,
            until=lambda v: all(v["tunnels"][k]["live"] == 1 for k in ("main", "steve")),
            timeout=WAIT_SECONDS,
            what="the stand-in to see both sessions",
        )
        # The steve tunnel answers Rancher's Connected check.
        ping = await standin.ping(cluster["id"])
        self.assertTrue(ping["checked"], ping)
        return rig

    async def suite_result(self) -> dict[str, Any]:
        """The full client-go suite's result (run once per process)."""
        global _suite_result
        if _suite_result is None:
            rig = await self.rig()
            _suite_secrets.extend(self.secrets)
            result = await rig.kubesuite(runId="accept1")
            # Everything the suite wrote went through our API; none of it
            # may have been answered with a server error.
            self.assertEqual(server_errors(rig.kube), {}, "5xx answers")
            _suite_result = result
        self.secrets += [s for s in _suite_secrets if s not in self.secrets]
        # The result ends up in failure messages.
        text = json.dumps(_suite_result)
        self.assertFalse(
            [s for s in self.secrets if s in text], "the suite's result holds a secret"
        )
        return _suite_result

    # -- 1. the client-go suite ---------------------------------------------------------

    async def test_client_go_suite_passes_through_the_tunnel(self) -> None:
        """
        Every C{rancher}-level check of the client-go suite passes through
        the tunnel; the C{strict} ones that fail are exactly the known
        differences; and the parts the issue names passed: informers in
        both modes seeing the suite's writes, every patch kind, the
        impersonation sequence with protobuf bodies, CRDs, Tables.
        """
        result = await self.suite_result()
        checks = {c["name"]: c for c in result["checks"]}
        reference = reference_transcript()

        def brief(names: Any) -> list[str]:
            return [
                f"{n}: {checks[n]['status']}: {checks[n].get('detail', '')}"[:500] for n in names
            ]

        # Every check of the reference run ran (none skipped).
        self.assertEqual(sorted(checks), sorted(reference), "the suite's checks")
        skipped = [n for n, c in checks.items() if c["status"] == "skip"]
        self.assertEqual((result["skipped"], skipped), (0, []), brief(skipped))

        def failed(level: str) -> list[str]:
            return sorted(
                n for n, c in checks.items() if c["level"] == level and c["status"] != "pass"
            )

        self.assertEqual(failed("rancher"), [], brief(failed("rancher")))
        known = known_differences()["strictFailures"]
        strict_failed = failed("strict")
        self.assertEqual(strict_failed, sorted(known), brief(strict_failed))
        self.assertEqual(result["failedByLevel"].get("strict", 0), len(known))
        self.assertEqual(result["failedByLevel"].get("rancher", 0), 0)

        required = [
            "discovery/legacy",
            "discovery/aggregated",
            "discovery/client",
            "discovery/openapi-v3",
            "informers/watchlist/sync",
            "informers/watchlist/events",
            "informers/listwatch/sync",
            "informers/listwatch/events",
            "crud/generate-name",
            "crud/update-conflict",
            "crud/patch",
            "crud/delete-finalizers",
            "impersonation/setup",
            "impersonation/request",
            "impersonation/token-request",
            "crd/establish",
            "crd/crud",
            "crd/watch",
            "crd/table",
            "table/nodes",
            "table/pods",
            "table/configmaps",
        ]
        not_passed = [n for n in required if checks[n]["status"] != "pass"]
        self.assertEqual(not_passed, [], brief(not_passed))

        # The informers: Rancher's twelve, the first in watch-list mode
        # (sendInitialEvents, ended by the initial-events-end bookmark), the
        # second with classic LIST+WATCH; each saw the suite's writes.
        for mode, first in (("watchlist", "watch-list"), ("listwatch", "list")):
            sync = _steps(checks[f"informers/{mode}/sync"]["transcript"])
            self.assertEqual(len(sync["first request per path"]), 12, sync)
            self.assertEqual(set(sync["first request per path"].values()), {first}, mode)
            events = _steps(checks[f"informers/{mode}/events"]["transcript"])
            events = events["events per informer"]
            self.assertEqual(len(events), 12, events)
            for informer, seen in events.items():
                self.assertEqual(seen, ["ADDED", "MODIFIED", "DELETED"], f"{mode} {informer}")

        def requests(check: str) -> list[tuple[str, str]]:
            return [(e["method"], e.get("requestType", "")) for e in checks[check]["http"]]

        # Patches of all three kinds (and JSON merge) were answered.
        patch_types = {t for m, t in requests("crud/patch") if m == "PATCH"}
        self.assertEqual(
            patch_types,
            {
                "application/merge-patch+json",
                "application/json-patch+json",
                "application/strategic-merge-patch+json",
            },
        )
        # Rancher's impersonation set-up writes with protobuf bodies (the
        # typed clientset): ClusterRole, ServiceAccount, token Secret,
        # ServiceAccount update, ClusterRoleBinding; the token is in the
        # Secret's create response (Rancher polls only 50 × 2 ms).
        writes = [(m, t) for m, t in requests("impersonation/setup") if m in ("POST", "PUT")]
        self.assertGreaterEqual(len(writes), 5, writes)
        self.assertEqual({t for _, t in writes}, {PROTOBUF}, writes)
        self.assertIn(
            "data.token filled in the create response", checks["impersonation/setup"]["detail"]
        )

    # -- 2. the transcript against the real apiserver's -----------------------------------

    async def test_transcript_differs_from_the_reference_only_as_known(self) -> None:
        """
        The suite's normalised transcript (answers and requests, per check)
        equals the one a real kube-apiserver v1.35.4 produced, except for
        the known differences; and every known difference still occurs.
        """
        result = await self.suite_result()
        differences = transcript_differences(reference_transcript(), suite_transcript(result))
        self.assertTrue(differences, "no difference at all: the known list must be empty then")
        unexplained, unused = classify(differences, known_differences()["transcript"])
        self.assertEqual(
            [str(d) for d in unexplained],
            [],
            "differences from the real apiserver that are not known",
        )
        self.assertEqual(
            [f"{e['check']} {e['paths']}" for e in unused],
            [],
            "known differences that no longer occur (remove them from known-differences.json)",
        )

    # -- 3. kubectl ---------------------------------------------------------------------

    async def test_kubectl_applies_the_agent_manifests(self) -> None:
        """
        kubectl (strict validation) applies the import manifest on a cluster
        that holds it already (nothing to create), then the manifest Rancher
        redeploys: as on a real apiserver, the new credentials Secret is
        created and the Deployment patched (strategic merge), with the same
        output and requests; the Deployment read back carries the new
        manifest. C{get} lists the template's nodes and pods.
        """
        rig = await self.rig()
        reference = reference_kubectl()
        known = known_differences()["kubectl"]

        # 1. The import manifest: every object exists already.
        first = reference["apply import manifest"]
        applied = await rig.kubectl(
            "apply", "-f", "-", "--validate=strict", stdin=IMPORT_MANIFEST.read_text()
        )
        self.assertEqual((applied["exitCode"], applied["stderr"]), (0, ""), applied["stdout"])
        expected = []
        for line in first.output:
            name, verb = line.rsplit(" ", 1)
            self.assertEqual(verb, "created", line)
            configured = name in known["importConfigured"]
            expected.append(f"{name} {'configured' if configured else 'unchanged'}")
        self.assertEqual(applied["stdout"].splitlines(), expected)
        writes = [r for r in applied["requests"] if not r.startswith("GET ")]
        self.assertEqual(len(writes), len(known["importConfigured"]), writes)
        self.assertTrue(all(w.startswith("PATCH ") for w in writes), writes)
        self.assertEqual([r for r in applied["requests"] if not r.endswith(" -> 200")], [])

        # 2. The redeployed manifest: what the real apiserver answered,
        # request for request (the Deployment by strategic merge patch).
        second = reference["apply redeployed manifest"]
        applied = await rig.kubectl(
            "apply", "-f", "-", "--validate=strict", stdin=REDEPLOYED_MANIFEST.read_text()
        )
        self.assertEqual(
            (applied["exitCode"], applied["stderr"]), (second.exit_code, ""), applied["stdout"]
        )
        self.assertEqual(applied["stdout"].splitlines(), second.output)
        self.assertIn("deployment.apps/cattle-cluster-agent configured", second.output)
        self.assertEqual(applied["requests"], second.requests)
        self.assertIn(
            "PATCH /apis/apps/v1/namespaces/cattle-system/deployments/cattle-cluster-agent"
            "?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
            " [application/strategic-merge-patch+json] -> 200",
            applied["requests"],
        )

        # 3. The Deployment carries the new manifest.
        read = await rig.kubectl(
            "get", "deployment", "cattle-cluster-agent", "-n", "cattle-system", "-o", "json"
        )
        self.assertEqual((read["exitCode"], read["stderr"]), (0, ""))
        deployment = json.loads(read["stdout"])
        manifest = next(
            doc
            for doc in yaml.safe_load_all(REDEPLOYED_MANIFEST.read_text())
            if doc and doc["kind"] == "Deployment"
        )
        pod_spec = deployment["spec"]["template"]["spec"]
        env = [(e["name"], e.get("value", "")) for e in pod_spec["containers"][0]["env"]]
        manifest_env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
        self.assertEqual(env, [(e["name"], e.get("value", "")) for e in manifest_env])
        self.assertIn("multi-cluster-management-agent=true", dict(env)["CATTLE_FEATURES"])
        self.assertEqual(dict(env)["CATTLE_CREDENTIAL_NAME"], REDEPLOYED_CREDENTIALS)
        self.assertEqual(
            [v["secret"]["secretName"] for v in pod_spec["volumes"]], [REDEPLOYED_CREDENTIALS]
        )
        annotations = deployment["metadata"]["annotations"]
        last_applied = json.loads(annotations["kubectl.kubernetes.io/last-applied-configuration"])
        self.assertEqual(last_applied["spec"], manifest["spec"])
        # Compared with what the real server stored: spec and annotations
        # differ only as known.
        real = json.loads("\n".join(reference["read back the deployment"].output))
        ours = normalise_strings(deployment)
        ours["metadata"]["annotations"].pop("deployment.kubernetes.io/revision", None)
        self.assertEqual(ours["metadata"]["generation"], real["metadata"]["generation"])
        differences = [
            Difference("deployment read back", path, r, a)
            for path, r, a in _diff_values(
                {"spec": real["spec"], "annotations": real["metadata"]["annotations"]},
                {"spec": ours["spec"], "annotations": ours["metadata"]["annotations"]},
                "",
            )
        ]
        differences = [
            Difference(d.check, d.path.lstrip("."), d.reference, d.actual) for d in differences
        ]
        unexplained, unused = classify(differences, known["readBack"])
        self.assertEqual(
            [str(d) for d in unexplained], [], "the Deployment differs from the real server's"
        )
        self.assertEqual([e["paths"] for e in unused], [], "known differences that no longer occur")

        # 4. The template's nodes and pods.
        nodes = await rig.kubectl("get", "nodes")
        self.assertEqual((nodes["exitCode"], nodes["stderr"]), (0, ""))
        template_nodes = sorted(name for _, name in rig.template_names("nodes"))
        self.assertTrue(template_nodes)
        self.assertEqual(sorted(table_column(nodes["stdout"], "NAME")), template_nodes)
        self.assertEqual(set(table_column(nodes["stdout"], "STATUS")), {"Ready"})

        pods = await rig.kubectl("get", "pods", "-A")
        self.assertEqual((pods["exitCode"], pods["stderr"]), (0, ""))
        listed = set(
            zip(table_column(pods["stdout"], "NAMESPACE"), table_column(pods["stdout"], "NAME"))
        )
        template_pods = set(rig.template_names("pods"))
        self.assertTrue(template_pods)
        self.assertEqual(template_pods - listed, set(), "template pods not listed")
        # Besides them, only the agent's own pods (its Deployment's).
        others = sorted(listed - template_pods)
        self.assertTrue(others, "the agent Deployment has no pod")
        strangers = [
            pod
            for pod in others
            if pod[0] != "cattle-system" or not pod[1].startswith("cattle-cluster-agent-")
        ]
        self.assertEqual(strangers, [])

    # -- 4. bad requests ----------------------------------------------------------------

    async def test_bad_requests_get_status_errors_and_keep_the_tunnel(self) -> None:
        """
        Malformed and protobuf-garbage bodies, unknown resources, wrong
        methods, out-of-range limits, invalid selectors and an oversized
        body, sent through the tunnel by kubectl and by the client-go
        suite's error checks, each get a C{Status} with the right code and
        reason (kubectl prints the Status's reason and message). Protobuf
        garbage sent with the protobuf content type, which neither kubectl
        nor the stand-in's control API can send, gets one too, on a direct
        connection to the same TLS + HTTP stack the tunnel's streams are
        served by. Afterwards the tunnel session is still the one live
        session, and requests through it succeed.
        """
        rig = await self.rig()
        before = await rig.view()
        live = [s["seq"] for s in before["tunnels"]["main"]["sessions"] if s["live"]]
        self.assertEqual(len(live), 1, before["tunnels"]["main"])

        # The suite's error checks (malformed JSON, bad selector, unknown
        # resource and group, PUT on a collection, unsupported media type,
        # bad tokens, ...): they pass, and every body they recorded is a
        # Status whose code is the HTTP status.
        errors = await rig.kubesuite(runId="accept2", only=["errors/"])
        checks = {c["name"]: c for c in errors["checks"] if c["status"] != "skip"}
        expected = [n for n in reference_transcript() if n.startswith("errors/")]
        self.assertEqual(sorted(checks), sorted(["setup/namespace", *expected]))
        self.assertEqual({n: c["detail"] for n, c in checks.items() if c["status"] != "pass"}, {})
        statuses = 0
        for name, check in checks.items():
            for entry in check.get("transcript", []):
                value = entry.get("value") or {}
                if isinstance(value.get("body"), dict):
                    body = value["body"]
                    self.assertEqual(
                        (body.get("kind"), body.get("code")),
                        ("Status", value["status"]),
                        f"{name}: {entry['step']}",
                    )
                    statuses += 1
        self.assertGreaterEqual(statuses, 10)

        # kubectl, through the tunnel.
        for case in self.bad_requests():
            answer = await rig.kubectl(*case.args, stdin=case.stdin)
            what = f"{case.what}: {answer['requests']} {answer['stderr']!r}"
            self.assertEqual(answer["exitCode"], 1, what)
            self.assertEqual(len(answer["requests"]), 1, what)
            self.assertTrue(answer["requests"][0].endswith(f" -> {case.code}"), what)
            reason, message = server_error(answer["stderr"])
            self.assertEqual(reason, case.reason, what)
            if isinstance(case.message, str):
                self.assertEqual(message.strip(), case.message, what)
            elif case.message is not None:
                self.assertRegex(message, case.message, what)

        # A huge limit in range is no error: everything, in one page.
        everything = await rig.kubectl("get", "--raw", "/api/v1/configmaps")
        huge = await rig.kubectl("get", "--raw", "/api/v1/configmaps?limit=9223372036854775807")
        self.assertEqual((everything["exitCode"], huge["exitCode"]), (0, 0), huge["stderr"])
        page, whole = json.loads(huge["stdout"]), json.loads(everything["stdout"])
        self.assertEqual(len(page["items"]), len(whole["items"]))
        self.assertNotIn("continue", page["metadata"])

        # Protobuf garbage with the protobuf content type.
        configmaps = "/api/v1/namespaces/default/configmaps"
        answers = await self.direct_requests(
            rig,
            [
                ("POST", configmaps, PROTOBUF, PROTOBUF_GARBAGE),
                ("POST", configmaps, PROTOBUF, PROTOBUF_MAGIC + b"\xff" * 10 + b"\x01"),
                ("POST", configmaps, PROTOBUF, b"\x0a\x0f not protobuf at all"),
                ("POST", configmaps, PROTOBUF, PROTOBUF_MAGIC),
                ("PUT", f"{configmaps}/kube-root-ca.crt", PROTOBUF, PROTOBUF_MAGIC + b"\n\x02\n"),
                ("POST", configmaps, "application/json", b"\x00\x01\x02"),
            ],
        )
        for (method, path, _, body), (code, content_type, status) in answers:
            what = f"{method} {path} {body[:16]!r}: {status}"
            self.assertEqual((code, content_type), (400, "application/json"), what)
            self.assertEqual(
                [status.get(k) for k in ("apiVersion", "kind", "status", "code", "reason")],
                ["v1", "Status", "Failure", 400, "BadRequest"],
                what,
            )

        # The tunnels: still the same sessions, nothing reconnected...
        after = await rig.view()
        for kind in ("main", "steve"):
            tunnel = after["tunnels"][kind]
            self.assertEqual(
                (tunnel["live"], tunnel["connects"]), (1, before["tunnels"][kind]["connects"]), kind
            )
        self.assertEqual(
            [s["seq"] for s in after["tunnels"]["main"]["sessions"] if s["live"]], live
        )
        self.assertEqual(
            [(t.state, t.status.connect_count) for t in (rig.main, rig.steve)],
            [(TunnelState.CONNECTED, 1)] * 2,
        )
        # ... and they still serve.
        again = await rig.kubectl("get", "--raw", "/api/v1/namespaces/kube-system")
        self.assertEqual(again["exitCode"], 0, again["stderr"])
        self.assertEqual(json.loads(again["stdout"])["metadata"]["name"], "kube-system")
        basic = await rig.kubesuite(runId="accept3", only=["basic/"])
        self.assertEqual((basic["passed"], basic["failed"]), (6, 0), basic["checks"])
        self.assertTrue((await rig.standin.ping(rig.cluster_id))["checked"])
        self.assertEqual(server_errors(rig.kube), {}, "5xx answers")

    def bad_requests(self) -> list[BadRequest]:
        """What kubectl sends in L{test_bad_requests_get_status_errors_and_keep_the_tunnel}."""
        configmaps = "/api/v1/namespaces/default/configmaps"
        big = os.path.abspath(self.mktemp())
        with open(big, "w", encoding="utf-8") as f:
            # Over the apiserver's 3 MiB request body limit.
            f.write('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":"')
            f.write("x" * (4 << 20))
            f.write('"}}')
        # The real apiserver's texts, where the suite's reference run has them.
        not_found = reference_status("errors/unknown-path", "GET unknown resource")["message"]
        method = reference_status("errors/method-not-allowed", "PUT on a collection")["message"]
        label = reference_status("errors/bad-request", "GET bad labelSelector")["message"]
        field = reference_status("crud/field-selectors", "unsupported field selector")["message"]
        unrecognized = "the object provided is unrecognized .*json parse error: "
        post = ["create", "--raw", configmaps, "-f", "-"]
        return [
            BadRequest(
                "unknown resource",
                ["get", "--raw", "/api/v1/ksnothings"],
                404,
                "NotFound",
                not_found,
            ),
            BadRequest(
                "unknown resource of a group",
                ["get", "--raw", "/apis/apps/v1/ksnothings"],
                404,
                "NotFound",
                not_found,
            ),
            BadRequest(
                "unknown object",
                ["get", "--raw", configmaps + "/ks-missing"],
                404,
                "NotFound",
                'configmaps "ks-missing" not found',
            ),
            BadRequest(
                "malformed JSON",
                post,
                400,
                "BadRequest",
                re.compile(unrecognized + "unexpected end of JSON input"),
                stdin='{"apiVersion":"v1","kind":"ConfigMap",',
            ),
            BadRequest(
                "protobuf garbage (sent as JSON)",
                post,
                400,
                "BadRequest",
                re.compile(unrecognized + "invalid character 'k' looking for beginning of value"),
                stdin=PROTOBUF_GARBAGE.decode("latin-1"),
            ),
            BadRequest(
                "PUT on a collection",
                ["replace", "--raw", configmaps, "-f", "-"],
                405,
                "MethodNotAllowed",
                method,
                stdin="{}",
            ),
            BadRequest(
                "POST to an object",
                ["create", "--raw", configmaps + "/ks-x", "-f", "-"],
                405,
                "MethodNotAllowed",
                method,
                stdin="{}",
            ),
            BadRequest(
                "limit out of range",
                ["get", "--raw", configmaps + "?limit=99999999999999999999"],
                400,
                "BadRequest",
                'strconv.ParseInt: parsing "99999999999999999999": value out of range',
            ),
            BadRequest(
                "limit not a number",
                ["get", "--raw", configmaps + "?limit=many"],
                400,
                "BadRequest",
                'strconv.ParseInt: parsing "many": invalid syntax',
            ),
            BadRequest(
                "invalid label selector",
                ["get", "--raw", configmaps + "?labelSelector=a%3D%3Db%3D%3Dc"],
                400,
                "BadRequest",
                label,
            ),
            BadRequest(
                "unsupported field selector",
                ["get", "--raw", "/api/v1/namespaces/default/secrets?fieldSelector=spec.bogus%3Dx"],
                400,
                "BadRequest",
                field,
            ),
            BadRequest(
                "invalid field selector",
                ["get", "--raw", configmaps + "?fieldSelector=metadata.name%3D%3D%3Dx"],
                400,
                "BadRequest",
                None,
            ),
            BadRequest(
                "body over 3 MiB",
                ["create", "--raw", configmaps, "-f", big],
                413,
                "RequestEntityTooLarge",
                "Request entity too large: limit is 3145728",
            ),
        ]

    async def direct_requests(
        self, rig: Rig, requests: list[tuple[str, str, str, bytes]]
    ) -> list[tuple[tuple[str, str, str, bytes], tuple[int, str, dict[str, Any]]]]:
        """
        Send requests over TLS to a loopback listener serving the cluster's
        route (the factory the main tunnel serves streams with), verifying
        the certificate against the cluster's CA and the announced address;
        return each request with its status, content type and JSON body.
        """
        factory = rig.kube.route("tcp", API_ADDRESS)
        self.assertIsNotNone(factory)
        port = self.reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        trust = _ClusterTrust(rig.identity.ca_pem, API_ADDRESS.rsplit(":", 1)[0])
        agent = Agent(self.reactor, contextFactory=trust, pool=pool)
        base = f"https://127.0.0.1:{port.getHost().port}"
        token = rig.identity.tunnel_params().token
        out = []
        for request in requests:
            method, path, content_type, body = request
            headers = Headers(
                {
                    "Authorization": [f"Bearer {token}"],
                    "Content-Type": [content_type],
                    "Accept": ["application/json"],
                }
            )
            response = await agent.request(
                method.encode(), (base + path).encode(), headers, FileBodyProducer(BytesIO(body))
            )
            data = await readBody(response)
            content = (response.headers.getRawHeaders("content-type") or [""])[0]
            try:
                decoded = json.loads(data)
            except ValueError:
                decoded = {"unparsed": data[:300].decode("utf-8", "replace")}
            out.append((request, (response.code, content, decoded)))
        return out
