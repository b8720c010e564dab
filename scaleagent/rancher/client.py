# -*- test-case-name: tests.test_rancher_client -*-
"""
Rancher's management API, as far as importing a cluster needs it: create an
imported cluster the way the UI's "Import Existing → Generic" does (or the
v3 way on servers without provisioning v2), get its registration token and
import manifest, delete it again.

Every failure becomes a L{RancherError} that says what happened in words a
user can act on and how to retry; the bearer token never appears in one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional
from urllib.parse import quote, urlencode, urlsplit

import treq
from twisted.internet.defer import CancelledError, TimeoutError as DeferredTimeoutError
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    DNSLookupError,
    TimeoutError,
)
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import ResponseFailed

from scaleagent.config import REDACTED

#: Where the UI creates imported clusters.
FLEET_WORKSPACE = "fleet-default"

#: Marks clusters this tool created, so a half-finished create can be
#: adopted after a crash instead of colliding with its own leftovers.
OWNER_ANNOTATION = "scaleagent.io/owner"
CREATED_BY_LABEL = "scaleagent.io/simulated"


class RetryPolicy:
    """How a caller should react to a L{RancherError}."""

    #: The user must fix something (token, permissions, name): retry rarely.
    SLOW = "slow"
    #: Transient (network, 5xx, timeouts): retry with backoff.
    BACKOFF = "backoff"
    #: Retrying cannot help (e.g. a name taken by someone else).
    NEVER = "never"


class RancherError(Exception):
    """
    A call to Rancher failed.

    @ivar kind: C{unauthorized}, C{forbidden}, C{not-found}, C{conflict},
        C{server-error}, C{timeout}, C{network}, C{bad-response}.
    @ivar status: the HTTP status, if there was a response.
    @ivar retry: a L{RetryPolicy} value.
    """

    def __init__(self, kind: str, message: str, status: Optional[int] = None, retry: str = RetryPolicy.BACKOFF) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry = retry

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ClusterRef:
    """
    A cluster in Rancher.

    @ivar id: the management cluster id (C{c-xxxxx} or C{c-m-xxxxxxxx}).
    @ivar name: the display name / provisioning cluster name.
    @ivar api: C{"v1"} (provisioning.cattle.io) or C{"v3"} (norman).
    """

    id: str
    name: str
    api: str


@dataclass(frozen=True)
class RegistrationToken:
    cluster_id: str
    token: str
    manifest_url: str

    def __repr__(self) -> str:
        return f"RegistrationToken(cluster_id={self.cluster_id!r}, manifest_url=<redacted>)"


def manifest_url_secrets(manifest_url: str) -> tuple[str, ...]:
    """
    The parts of an import manifest URL that must not be shown: Rancher
    serves the manifest at C{/v3/import/<token>_<cluster id>.yaml}, so its
    file name is the registration token.

    @return: the file name, without C{.yaml}, and the token alone, longest
        first (empty if the URL has no file name).
    """
    try:
        path = urlsplit(manifest_url).path
    except ValueError:
        path = manifest_url
    name = path.rstrip("/").rpartition("/")[2]
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    token = stem.rpartition("_")[0] or stem
    return tuple(part for part in dict.fromkeys((name, stem, token)) if part)


def redact(text: str, secrets: Iterable[str]) -> str:
    """C{text} with every occurrence of each of C{secrets} replaced."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _summarise_body(body: bytes, secrets: Iterable[str] = ()) -> str:
    """
    Rancher's error message, from norman/steve JSON or plain text, with
    C{secrets} redacted (before it is cut short, which could leave part of
    one).
    """
    text = redact(body.decode("utf-8", errors="replace"), secrets).strip()
    try:
        document = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(document, dict):
        for key in ("message", "code", "reason"):
            if document.get(key):
                return str(document[key])[:200]
    return text[:200]


def _error_for_status(status: int, body: bytes, what: str, secrets: Iterable[str] = ()) -> RancherError:
    detail = _summarise_body(body, secrets)
    suffix = f": {detail}" if detail else ""
    if status == 401:
        return RancherError(
            "unauthorized",
            f"{what}: Rancher rejected the API token (401 Unauthorized){suffix}; "
            "check BearerToken in the config",
            status,
            RetryPolicy.SLOW,
        )
    if status == 403:
        return RancherError(
            "forbidden",
            f"{what}: the API token may not do this (403 Forbidden){suffix}",
            status,
            RetryPolicy.SLOW,
        )
    if status == 404:
        return RancherError("not-found", f"{what}: not found (404){suffix}", status, RetryPolicy.SLOW)
    if status == 409:
        return RancherError("conflict", f"{what}: conflict (409){suffix}", status, RetryPolicy.NEVER)
    if status >= 500:
        return RancherError(
            "server-error", f"{what}: Rancher answered {status}{suffix}", status, RetryPolicy.BACKOFF
        )
    return RancherError(
        "bad-response", f"{what}: Rancher answered {status}{suffix}", status, RetryPolicy.SLOW
    )


class RancherClient:
    """
    @param server_url: Rancher's URL, e.g. C{https://rancher.example.com}.
    @param bearer_token: an API key, C{token-xxxxx:secret}.
    @param http: a treq C{HTTPClient} (its agent carries the TLS trust).
    @param clock: for polling and timeouts.
    @param instance_id: identifies this scaleagent installation in the
        owner annotation of the clusters it creates.
    """

    _log = Logger()

    def __init__(
        self,
        server_url: str,
        bearer_token: str,
        http: treq.client.HTTPClient,
        clock: IReactorTime,
        instance_id: str,
        timeout: float = 30.0,
        poll_interval: float = 1.0,
        poll_attempts: int = 60,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self._authorization = f"Bearer {bearer_token}".encode("ascii")
        self._http = http
        self._clock = clock
        self.instance_id = instance_id
        self._timeout = timeout
        self._poll_interval = poll_interval
        self._poll_attempts = poll_attempts

    # -- plumbing --------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        body: Any = None,
        authenticated: bool = True,
        expect_json: bool = True,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        secrets: tuple[str, ...] = (),
    ) -> tuple[int, Any]:
        """
        @param secrets: parts of C{path} that are credentials (a manifest
            URL's token): kept out of every error message, whatever
            Twisted or Rancher put in theirs (a redirect error names the
            URL, an error page may echo it).
        """
        url = path if path.startswith(("https://", "http://")) else self.server_url + path
        headers = {b"Accept": [b"application/json"]}
        if authenticated:
            headers[b"Authorization"] = [self._authorization]
        kwargs: dict[str, Any] = {}
        if body is not None:
            headers[b"Content-Type"] = [b"application/json"]
            kwargs["data"] = json.dumps(body).encode("utf-8")
        try:
            response = await self._http.request(
                method, url, headers=headers, timeout=self._timeout, **kwargs
            )
            content = await treq.content(response)
        except ConnectingCancelledError:
            raise CancelledError() from None
        except (CancelledError, DeferredTimeoutError, TimeoutError):
            raise RancherError(
                "timeout", f"{what}: no answer from Rancher within {self._timeout:g}s"
            ) from None
        except (ConnectError, DNSLookupError) as e:
            raise RancherError("network", f"{what}: cannot reach Rancher: {redact(str(e), secrets)}") from None
        except ResponseFailed as e:
            reasons = redact("; ".join(str(reason.value) for reason in e.reasons), secrets)
            raise RancherError("network", f"{what}: connection to Rancher failed: {reasons}") from None
        except Exception as e:
            if not secrets:
                raise
            # Whatever else fails (a URL treq cannot use...) would be logged
            # with its message as an internal error: not with the token.
            detail = redact(str(e), secrets) or type(e).__name__
            raise RancherError("network", f"{what}: request failed: {detail}") from None
        if response.code not in ok:
            raise _error_for_status(response.code, content, what, secrets)
        if not expect_json:
            return response.code, content
        if not content:
            return response.code, None
        try:
            return response.code, json.loads(content)
        except ValueError:
            raise RancherError(
                "bad-response",
                f"{what}: Rancher's answer is not JSON (is RancherURL the Rancher server?)",
                response.code,
                RetryPolicy.SLOW,
            ) from None

    async def _sleep(self) -> None:
        await deferLater(self._clock, self._poll_interval)

    # -- clusters --------------------------------------------------------

    def _v1_path(self, name: str = "") -> str:
        path = "/v1/provisioning.cattle.io.clusters"
        return f"{path}/{FLEET_WORKSPACE}/{quote(name)}" if name else path

    async def create_imported_cluster(self, name: str) -> ClusterRef:
        """
        Create an imported ("generic") cluster as the UI does, falling back
        to the v3 API on servers without provisioning v2. If a cluster of
        that name exists and this installation created it (a create that
        was interrupted before its id was saved), it is adopted.

        @raise RancherError: C{conflict} if the name belongs to a cluster
            someone else created.
        """
        body = {
            "type": "provisioning.cattle.io.cluster",
            "metadata": {
                "namespace": FLEET_WORKSPACE,
                "name": name,
                "labels": {CREATED_BY_LABEL: "true"},
                "annotations": {OWNER_ANNOTATION: self.instance_id},
            },
            "spec": {},
        }
        try:
            await self._request("POST", self._v1_path(), f"creating cluster {name}", body)
        except RancherError as e:
            if e.kind == "not-found":
                return await self._create_v3(name)
            if e.kind != "conflict":
                raise
            existing = await self._get_v1(name)
            owner = (existing.get("metadata", {}).get("annotations") or {}).get(OWNER_ANNOTATION)
            if owner != self.instance_id:
                raise RancherError(
                    "conflict",
                    f"a cluster named {name} already exists in Rancher and was not created "
                    "by this scaleagent; choose another name",
                    409,
                    RetryPolicy.NEVER,
                ) from None
            self._log.info("adopting cluster {name}, created earlier by this scaleagent", name=name)
        return ClusterRef(await self._wait_for_management_id(name), name, "v1")

    async def _get_v1(self, name: str) -> dict:
        _, document = await self._request("GET", self._v1_path(name), f"reading cluster {name}")
        return document or {}

    async def _wait_for_management_id(self, name: str) -> str:
        for attempt in range(self._poll_attempts):
            try:
                document = await self._get_v1(name)
            except RancherError as e:
                # Steve answers reads from a cache that follows the create
                # a moment later: not found just after it is not an answer.
                if e.kind != "not-found" or attempt == self._poll_attempts - 1:
                    raise
                await self._sleep()
                continue
            cluster_id = (document.get("status") or {}).get("clusterName")
            if cluster_id:
                return str(cluster_id)
            await self._sleep()
        raise RancherError(
            "timeout",
            f"cluster {name} was created but Rancher did not assign it a management cluster id",
        )

    async def _create_v3(self, name: str) -> ClusterRef:
        body = {
            "type": "cluster",
            "name": name,
            "labels": {CREATED_BY_LABEL: "true"},
            "annotations": {OWNER_ANNOTATION: self.instance_id},
        }
        try:
            _, document = await self._request("POST", "/v3/clusters", f"creating cluster {name}", body)
        except RancherError as e:
            if e.status not in (409, 422):
                raise
            existing = await self.find_v3_cluster(name)
            owner = ((existing or {}).get("annotations") or {}).get(OWNER_ANNOTATION)
            if existing is None or owner != self.instance_id:
                raise RancherError(
                    "conflict",
                    f"a cluster named {name} already exists in Rancher and was not created "
                    "by this scaleagent; choose another name",
                    409,
                    RetryPolicy.NEVER,
                ) from None
            document = existing
        cluster_id = (document or {}).get("id")
        if not cluster_id:
            raise RancherError(
                "bad-response", f"creating cluster {name}: Rancher returned no cluster id"
            )
        return ClusterRef(str(cluster_id), name, "v3")

    async def find_v3_cluster(self, name: str) -> Optional[dict]:
        _, document = await self._request(
            "GET", "/v3/clusters?" + urlencode({"name": name}), f"looking up cluster {name}"
        )
        for cluster in (document or {}).get("data") or []:
            if cluster.get("name") == name:
                return cluster
        return None

    async def get_cluster(self, cluster_id: str) -> dict:
        """The v3 view of a management cluster (C{state}, C{conditions}...)."""
        _, document = await self._request(
            "GET", f"/v3/clusters/{quote(cluster_id)}", f"reading cluster {cluster_id}"
        )
        return document or {}

    async def cluster_states(self, page_size: int = 1000) -> dict[str, str]:
        """
        The state (C{active}, C{pending}, C{unavailable}...) of every
        cluster, by id, in as few requests as Rancher's pagination allows:
        one shared poll serves every simulated cluster.
        """
        states: dict[str, str] = {}
        path: Optional[str] = "/v3/clusters?" + urlencode({"limit": page_size})
        pages = 0
        while path and pages < 1000:
            pages += 1
            _, document = await self._request("GET", path, "listing clusters")
            for cluster in (document or {}).get("data") or []:
                if cluster.get("id"):
                    states[str(cluster["id"])] = str(cluster.get("state") or "")
            path = ((document or {}).get("pagination") or {}).get("next")
        return states

    async def delete_cluster(self, ref: ClusterRef) -> None:
        """Delete a cluster; one that is already gone is not an error."""
        if ref.api == "v1":
            path = self._v1_path(ref.name)
        else:
            path = f"/v3/clusters/{quote(ref.id)}"
        try:
            await self._request("DELETE", path, f"deleting cluster {ref.name}", expect_json=False)
        except RancherError as e:
            if e.kind != "not-found":
                raise

    # -- registration ------------------------------------------------------

    async def registration_token(self, cluster_id: str) -> RegistrationToken:
        """
        The cluster's registration token and import manifest URL. Rancher
        creates C{default-token} by itself and fills the URL asynchronously,
        so this polls, and creates a token if none appears.
        """
        created = False
        for attempt in range(self._poll_attempts):
            _, document = await self._request(
                "GET",
                "/v3/clusterregistrationtokens?" + urlencode({"clusterId": cluster_id}),
                f"reading registration tokens of {cluster_id}",
            )
            tokens = [t for t in (document or {}).get("data") or [] if t.get("clusterId") == cluster_id]
            for candidate in tokens:
                if candidate.get("token") and candidate.get("manifestUrl"):
                    return RegistrationToken(
                        cluster_id, str(candidate["token"]), str(candidate["manifestUrl"])
                    )
            if not tokens and not created and attempt >= 2:
                await self._request(
                    "POST",
                    "/v3/clusterregistrationtokens",
                    f"creating a registration token for {cluster_id}",
                    {"type": "clusterRegistrationToken", "clusterId": cluster_id},
                )
                created = True
            await self._sleep()
        raise RancherError(
            "timeout",
            f"Rancher did not provide a registration token with a manifest URL for "
            f"{cluster_id} (is the server-url setting set?)",
        )

    async def import_manifest(self, manifest_url: str) -> str:
        """The YAML at a token's C{manifestUrl} (unauthenticated, as for kubectl)."""
        _, content = await self._request(
            "GET",
            manifest_url,
            "downloading the import manifest",
            authenticated=False,
            expect_json=False,
            secrets=manifest_url_secrets(manifest_url),
        )
        return content.decode("utf-8", errors="replace")

    async def cacerts(self) -> str:
        """The C{cacerts} setting (unauthenticated), empty if unset."""
        _, document = await self._request(
            "GET", "/v3/settings/cacerts", "reading the cacerts setting", authenticated=False
        )
        return str((document or {}).get("value") or "")

    async def server_version(self) -> str:
        _, document = await self._request(
            "GET", "/v3/settings/server-version", "reading the server version"
        )
        return str((document or {}).get("value") or "")
