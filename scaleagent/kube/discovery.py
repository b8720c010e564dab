# -*- test-case-name: tests.test_kube_discovery -*-
"""
Build the discovery documents a Kubernetes API server answers, from a
L{Registry}: C{/api}, C{/apis}, C{/apis/<group>}, C{/api/v1},
C{/apis/<group>/<version>}, the aggregated discovery lists client-go asks
for first, and the APIService objects the aggregator keeps for every served
group/version.

Every builder is a pure function returning plain JSON-ready data with the
field order and omissions of the real server's encoding.  L{documents}
serialises them once per registry and caches the bytes on it, so every
cluster sharing a registry shares the bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from scaleagent.kube.resources import Registry, ResourceType

AGGREGATED_V2 = "v2"
AGGREGATED_V2BETA1 = "v2beta1"
AGGREGATED_VERSIONS = (AGGREGATED_V2, AGGREGATED_V2BETA1)

DEFAULT_SERVER_ADDRESS = "10.43.0.1:443"
"""
What C{serverAddressByClientCIDRs} reports by default.  A real server names
the address it advertises to clients; any routable address is accepted.
"""


def aggregated_content_type(version: str) -> str:
    """
    The C{Content-Type} of an aggregated discovery response.

    @param version: L{AGGREGATED_V2} or L{AGGREGATED_V2BETA1}.
    """
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def negotiate_aggregated(accept: str, served: Sequence[str] = AGGREGATED_VERSIONS) -> str | None:
    """
    Which aggregated discovery version, if any, to answer an C{Accept}
    header with.

    Clients list the media types they understand in order of preference
    (client-go: v2, then v2beta1, then plain JSON); the first aggregated one
    this server serves wins.  A C{None} result means: answer with the plain
    C{APIVersions}/C{APIGroupList} document.

    @param accept: the request's C{Accept} header.
    @param served: the aggregated versions to offer.  Kubernetes 1.28 only
        has C{v2beta1} (v2 appeared in 1.30); serving both lets newer
        clients use v2.
    @return: an element of C{served}, or C{None}.
    """
    for media_range in accept.split(","):
        parts = [part.strip() for part in media_range.split(";")]
        if parts[0].lower() not in ("application/json", "application/*", "*/*"):
            continue
        parameters = {}
        for parameter in parts[1:]:
            key, _, value = parameter.partition("=")
            parameters[key.strip().lower()] = value.strip()
        if (
            parameters.get("g") == "apidiscovery.k8s.io"
            and parameters.get("as") == "APIGroupDiscoveryList"
            and parameters.get("v") in served
        ):
            return parameters["v"]
    return None


# Legacy discovery


def api_versions(server_address: str = DEFAULT_SERVER_ADDRESS) -> dict[str, Any]:
    """
    C{GET /api}: the core group's versions.

    @param server_address: C{host:port} the server advertises.
    """
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _version_entry(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def _api_group(registry: Registry, group: str) -> dict[str, Any]:
    versions = registry.versions(group)
    return {
        "name": group,
        "versions": [_version_entry(group, version) for version in versions],
        "preferredVersion": _version_entry(group, versions[0]),
    }


def api_group_list(registry: Registry) -> dict[str, Any]:
    """C{GET /apis}: every named group, in the aggregator's order."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_api_group(registry, group) for group in registry.groups()],
    }


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    """C{GET /apis/<group>}, or C{None} if the group is not served."""
    if not group or group not in registry.groups():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(registry, group)}


def _api_resource(
    name: str,
    singular: str,
    namespaced: bool,
    kind: str,
    verbs: Iterable[str],
    group: str | None = None,
    version: str | None = None,
    short_names: Sequence[str] = (),
    categories: Sequence[str] = (),
    hash_: str = "",
) -> dict[str, Any]:
    # metav1.APIResource's JSON encoding: singularName and verbs are always
    # present, the rest only when set.
    entry: dict[str, Any] = {"name": name, "singularName": singular, "namespaced": namespaced}
    if group is not None:
        entry["group"] = group
    if version is not None:
        entry["version"] = version
    entry["kind"] = kind
    entry["verbs"] = list(verbs)
    if short_names:
        entry["shortNames"] = list(short_names)
    if categories:
        entry["categories"] = list(categories)
    if hash_:
        entry["storageVersionHash"] = hash_
    return entry


def _api_resources(resource_type: ResourceType) -> list[dict[str, Any]]:
    entries = [
        _api_resource(
            resource_type.resource,
            resource_type.singular,
            resource_type.namespaced,
            resource_type.kind,
            resource_type.verbs,
            short_names=resource_type.short_names,
            categories=resource_type.categories,
            hash_=resource_type.storage_version_hash,
        )
    ]
    for subresource in resource_type.subresource_details:
        entries.append(
            _api_resource(
                f"{resource_type.resource}/{subresource.name}",
                "",
                resource_type.namespaced,
                subresource.kind or resource_type.kind,
                subresource.verbs,
                group=subresource.group,
                version=subresource.version,
            )
        )
    return entries


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """
    C{GET /api/v1} or C{GET /apis/<group>/<version>}: the resources of one
    group/version with their subresources (C{pods/status} entries), or
    C{None} if it is not served.
    """
    resource_types = registry.resources(group, version)
    if not resource_types:
        return None
    entries: list[dict[str, Any]] = []
    for resource_type in resource_types:
        entries.extend(_api_resources(resource_type))
    if not any(resource_type.custom for resource_type in resource_types):
        # The built-in handlers sort by name, so subresources follow their
        # parent; the apiextensions server lists each custom resource, its
        # status and its scale, in that order.
        entries.sort(key=lambda entry: entry["name"])
    document: dict[str, Any] = {"kind": "APIResourceList"}
    if group:
        # The core group's list is served without an apiVersion.
        document["apiVersion"] = "v1"
    document["groupVersion"] = f"{group}/{version}" if group else version
    document["resources"] = entries
    return document


# Aggregated discovery


def _group_version_kind(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _resource_discovery(resource_type: ResourceType) -> dict[str, Any]:
    # apidiscovery.APIResourceDiscovery.  For built-ins, responseKind carries
    # group and version only when they differ from the resource's own (the
    # API server copies them from metav1.APIResource, where they are usually
    # empty); the apiextensions server always fills them in for custom
    # resources.
    if resource_type.custom:
        own_group, own_version = resource_type.group, resource_type.version
    else:
        own_group = own_version = ""
    entry: dict[str, Any] = {
        "resource": resource_type.resource,
        "responseKind": _group_version_kind(own_group, own_version, resource_type.kind),
        "scope": "Namespaced" if resource_type.namespaced else "Cluster",
        "singularResource": resource_type.singular,
        "verbs": list(resource_type.verbs),
    }
    if resource_type.short_names:
        entry["shortNames"] = list(resource_type.short_names)
    if resource_type.categories:
        entry["categories"] = list(resource_type.categories)
    subresources = []
    details = resource_type.subresource_details
    if not resource_type.custom:
        details = tuple(sorted(details, key=lambda detail: detail.name))
    for subresource in details:
        subresources.append(
            {
                "subresource": subresource.name,
                "responseKind": _group_version_kind(
                    subresource.group if subresource.group is not None else own_group,
                    subresource.version if subresource.version is not None else own_version,
                    subresource.kind or resource_type.kind,
                ),
                "verbs": list(subresource.verbs),
            }
        )
    if subresources:
        entry["subresources"] = subresources
    return entry


def _group_discovery(registry: Registry, group: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if group:
        metadata["name"] = group
    # An empty metav1.Time still encodes, as null.
    metadata["creationTimestamp"] = None
    return {
        "metadata": metadata,
        "versions": [
            {
                "version": version,
                "resources": [
                    _resource_discovery(resource_type)
                    for resource_type in registry.resources(group, version)
                ],
                "freshness": "Current",
            }
            for version in (["v1"] if not group else registry.versions(group))
        ],
    }


def aggregated_discovery(
    registry: Registry, *, core: bool, version: str = AGGREGATED_V2
) -> dict[str, Any]:
    """
    The aggregated discovery list: every group with every version and
    resource in one document.

    @param core: C{True} for C{GET /api} (the core group only), C{False}
        for C{GET /apis} (every named group).
    @param version: L{AGGREGATED_V2} or L{AGGREGATED_V2BETA1}; the two
        differ only in C{apiVersion}.
    """
    if version not in AGGREGATED_VERSIONS:
        raise ValueError(f"unknown aggregated discovery version {version!r}")
    groups = [""] if core else registry.groups()
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": [_group_discovery(registry, group) for group in groups],
    }


# APIService objects


LOCAL_AVAILABLE_MESSAGE = "Local APIServices are always available"


def api_service_objects(registry: Registry, transition_time: str) -> list[dict[str, Any]]:
    """
    The APIService objects the aggregator creates for every group/version the
    API server itself serves (C{v1.}, C{v1.apps}, ... and one per CRD
    group/version), as a real cluster lists them.

    APIServices for aggregated APIs (metrics-server's
    C{v1beta1.metrics.k8s.io}) are ordinary objects of the cluster template
    and are not produced here.

    @param registry: what the server serves.
    @param transition_time: RFC 3339 time for the C{Available} condition
        (when the API server started).
    @return: APIService objects without uid, resourceVersion or
        creationTimestamp, sorted by name.
    """
    objects = []
    for info in registry.group_versions():
        if info.service is not None:
            continue
        spec: dict[str, Any] = {}
        if info.group:
            spec["group"] = info.group
        spec["version"] = info.version
        spec["groupPriorityMinimum"] = info.group_priority
        spec["versionPriority"] = info.version_priority
        objects.append(
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {
                    "name": info.api_service_name,
                    # Built-in group/versions are registered once at start-up,
                    # CRD ones are kept in sync continuously.
                    "labels": {
                        "kube-aggregator.kubernetes.io/automanaged": "true"
                        if info.custom
                        else "onstart"
                    },
                },
                "spec": spec,
                "status": {
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "True",
                            "lastTransitionTime": transition_time,
                            "reason": "Local",
                            "message": LOCAL_AVAILABLE_MESSAGE,
                        }
                    ]
                },
            }
        )
    objects.sort(key=lambda api_service: api_service["metadata"]["name"])
    return objects


# Serialised, cached documents


def _encode(document: Any) -> bytes:
    # Compact like the API server's encoder, and with a trailing newline as
    # its JSON serializer writes.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True)
class Document:
    """
    A serialised discovery document.

    @ivar body: the JSON bytes.
    @ivar content_type: the C{Content-Type} to send.
    @ivar etag: for aggregated documents, the quoted C{ETag} the API server
        sends (and compares with C{If-None-Match}); C{None} otherwise.
    """

    body: bytes
    content_type: str = "application/json"
    etag: str | None = None


class DiscoveryDocuments:
    """
    The serialised discovery documents of one registry, built on first use.

    Obtain it with L{documents}; it is cached on the registry, so clusters
    that share a registry share these bytes.
    """

    def __init__(self, registry: Registry, server_address: str) -> None:
        self._registry = registry
        self._server_address = server_address
        self._cache: dict[Any, Document | None] = {}

    def _cached(self, key: Any, build: Any) -> Any:
        try:
            return self._cache[key]
        except KeyError:
            document = self._cache[key] = build()
            return document

    @property
    def api(self) -> Document:
        """C{/api} (legacy)."""
        return self._cached("api", lambda: Document(_encode(api_versions(self._server_address))))

    @property
    def apis(self) -> Document:
        """C{/apis} (legacy)."""
        return self._cached("apis", lambda: Document(_encode(api_group_list(self._registry))))

    def group(self, group: str) -> Document | None:
        """C{/apis/<group>}, or C{None} (answer 404)."""

        def build() -> Document | None:
            document = api_group(self._registry, group)
            return None if document is None else Document(_encode(document))

        return self._cached(("group", group), build)

    def resources(self, group: str, version: str) -> Document | None:
        """C{/api/v1} or C{/apis/<group>/<version>}, or C{None} (404)."""

        def build() -> Document | None:
            document = api_resource_list(self._registry, group, version)
            return None if document is None else Document(_encode(document))

        return self._cached(("resources", group, version), build)

    def aggregated(self, *, core: bool, version: str) -> Document:
        """The aggregated C{/api} or C{/apis} document in C{version}."""

        def build() -> Document:
            body = _encode(aggregated_discovery(self._registry, core=core, version=version))
            # The API server's ETag: SHA-512 of the JSON, upper-case hex.
            etag = '"' + hashlib.sha512(body.rstrip(b"\n")).hexdigest().upper() + '"'
            return Document(body, aggregated_content_type(version), etag)

        return self._cached(("aggregated", core, version), build)


def documents(
    registry: Registry,
    server_address: str = DEFAULT_SERVER_ADDRESS,
) -> DiscoveryDocuments:
    """
    The cached discovery documents for C{registry}.

    @param registry: a (shared, interned) registry.
    @param server_address: for C{serverAddressByClientCIDRs}.
    """
    key = ("discovery", server_address)
    try:
        return registry.cache[key]
    except KeyError:
        cached = registry.cache[key] = DiscoveryDocuments(registry, server_address)
        return cached


__all__ = [
    "AGGREGATED_V2",
    "AGGREGATED_V2BETA1",
    "AGGREGATED_VERSIONS",
    "DEFAULT_SERVER_ADDRESS",
    "DiscoveryDocuments",
    "Document",
    "aggregated_content_type",
    "aggregated_discovery",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_service_objects",
    "api_versions",
    "documents",
    "negotiate_aggregated",
]
