# -*- test-case-name: tests.test_kube_resources -*-
"""
What the synthetic API serves: one L{ResourceType} per resource (its group,
version, kind, scope, verbs, subresources), looked up by URL parts or kind.

The built-in table reproduces what a Kubernetes v1.28 API server (k3s v1.28
runs the same one) reports in discovery with its default feature gates:
resource names, kinds, scope, verbs, short names, categories, singular names,
subresources and storage version hashes.  It is data, read by the router,
by L{scaleagent.kube.discovery} and by L{scaleagent.kube.table}.

A L{Registry} indexes resource types.  L{BUILTIN_REGISTRY} holds the
built-ins; a cluster that gains CustomResourceDefinitions (or an aggregated
API such as metrics-server) gets a small registry layered over the built-in
one, so the built-in data is never copied.  Registries are immutable and
interned: two clusters that add the same CRDs share one registry object, and
so share every discovery document cached on it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

FULL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
# Namespaces cannot be deleted as a collection: deleting one is a long
# asynchronous process driven by the namespace controller.
NAMESPACE_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
# The order the apiextensions server lists custom resources' verbs in (it
# does not sort them as the built-in handlers do).
CUSTOM_RESOURCE_VERBS: tuple[str, ...] = (
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
)
CREATE_ONLY: tuple[str, ...] = ("create",)
READ_ONLY: tuple[str, ...] = ("get", "list")
STATUS_VERBS: tuple[str, ...] = ("get", "patch", "update")
PROXY_VERBS: tuple[str, ...] = ("create", "delete", "get", "patch", "update")
CONNECT_VERBS: tuple[str, ...] = ("create", "get")

# The category kubectl's "get all" expands, and the one "get api-extensions"
# expands; real servers put exactly these resources in them.
ALL = ("all",)
API_EXTENSIONS = ("api-extensions",)


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """
    The opaque hash discovery reports for a resource's storage version.

    It lets clients notice storage migrations; the API server computes it
    as the first 8 bytes of the SHA-256 of C{group/version/kind}, base64.

    @param group: the storage group (C{""} for core).
    @param version: the storage version.
    @param kind: the storage kind.
    @return: e.g. C{"qFsyl6wFWjQ="} for C{/v1/ConfigMap}.
    """
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode("ascii")


@dataclass(frozen=True)
class Subresource:
    """
    One subresource of a resource, e.g. C{pods/log} or C{deployments/scale}.

    @ivar name: C{log}, C{status}, C{scale}, ...
    @ivar kind: the kind it accepts and returns; C{""} means the parent's
        kind (discovery shows the parent's kind).
    @ivar verbs: the verbs discovery lists for it.
    @ivar group: for subresources served with a kind from another group
        (C{pods/eviction} is C{policy/v1 Eviction}); C{None} otherwise.
    @ivar version: the version that goes with C{group}.
    """

    name: str
    kind: str = ""
    verbs: tuple[str, ...] = STATUS_VERBS
    group: str | None = None
    version: str | None = None


def _default_subresource(name: str) -> Subresource:
    # Used when a caller gives subresources by name only.
    if name == "scale":
        return SCALE
    return Subresource(name)


STATUS = Subresource("status")
SCALE = Subresource("scale", kind="Scale", group="autoscaling", version="v1")


@dataclass(frozen=True)
class PrinterColumn:
    """
    One C{additionalPrinterColumns} entry of a CustomResourceDefinition.

    @ivar name: column header.
    @ivar type: OpenAPI type: C{string}, C{integer}, C{number}, C{boolean}
        or C{date}.
    @ivar json_path: e.g. C{.status.phase}.
    @ivar format: optional OpenAPI format (C{name} marks the name column).
    @ivar description: shown by clients; defaults like the API server's.
    @ivar priority: 0 for columns shown by default, more for C{-o wide}.
    """

    name: str
    type: str
    json_path: str
    format: str = ""
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ResourceType:
    """
    One served resource, e.g. C{apps/v1 deployments}.

    @ivar group: API group, C{""} for the core group.
    @ivar version: the version served (one per resource).
    @ivar resource: plural, lower-case URL name (C{deployments}).
    @ivar kind: C{Deployment}.
    @ivar namespaced: whether objects live in a namespace.
    @ivar verbs: the verbs discovery lists.
    @ivar subresources: e.g. C{("status", "scale")}.
    @ivar short_names: e.g. C{("deploy",)}.
    @ivar categories: e.g. C{("all",)}.
    @ivar singular: lower-case singular name.
    @ivar list_kind: C{DeploymentList}.
    @ivar subresource_details: one L{Subresource} per name in
        C{subresources}, with its kind and verbs.  Either field may be
        given; the other is derived.
    @ivar persisted: C{False} for resources that are computed per request
        and never stored (reviews, bindings, component statuses, metrics);
        discovery reports no storage version hash for them.
    @ivar storage_version_hash: what discovery reports; derived from the
        resource's own group/version/kind unless given (C{events.k8s.io}
        events are stored as core events, for example).
    @ivar printer_columns: for custom resources, the CRD's printer columns
        (the API server's defaults when the CRD declares none).
    @ivar custom: C{True} for resources defined by a CustomResourceDefinition.
    """

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = FULL_VERBS
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    singular: str = field(default="")
    list_kind: str = field(default="")
    subresource_details: tuple[Subresource, ...] = ()
    persisted: bool = True
    storage_version_hash: str = ""
    printer_columns: tuple[PrinterColumn, ...] = ()
    custom: bool = False

    def __post_init__(self) -> None:
        if not self.singular:
            object.__setattr__(self, "singular", self.kind.lower())
        if not self.list_kind:
            object.__setattr__(self, "list_kind", self.kind + "List")
        if self.subresource_details and not self.subresources:
            object.__setattr__(
                self,
                "subresources",
                tuple(detail.name for detail in self.subresource_details),
            )
        elif self.subresources and not self.subresource_details:
            object.__setattr__(
                self,
                "subresource_details",
                tuple(_default_subresource(name) for name in self.subresources),
            )
        elif tuple(d.name for d in self.subresource_details) != self.subresources:
            raise ValueError(
                f"{self.resource}: subresources and subresource_details disagree"
            )
        if self.persisted and not self.storage_version_hash:
            object.__setattr__(
                self,
                "storage_version_hash",
                storage_version_hash(self.group, self.version, self.kind),
            )

    @property
    def api_version(self) -> str:
        """C{apps/v1}, or C{v1} for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> tuple[str, str]:
        """The storage key: objects are shared by every version of a resource."""
        return (self.group, self.resource)

    @property
    def group_version(self) -> tuple[str, str]:
        return (self.group, self.version)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def subresource(self, name: str) -> Subresource | None:
        """
        The named subresource, or C{None} if this resource has none by that
        name.
        """
        for detail in self.subresource_details:
            if detail.name == name:
                return detail
        return None

    def allows(self, verb: str, subresource: str = "") -> bool:
        """
        Whether discovery advertises C{verb} on this resource (or one of its
        subresources): what the router should answer 405 for otherwise.

        @param verb: a Kubernetes verb (C{get}, C{list}, C{create}, ...).
        @param subresource: C{""} for the resource itself.
        """
        if not subresource:
            return verb in self.verbs
        detail = self.subresource(subresource)
        return detail is not None and verb in detail.verbs


@dataclass(frozen=True)
class GroupVersionInfo:
    """
    How one group/version is registered with the API aggregator, which
    decides its place in discovery and the APIService object that
    represents it.

    @ivar group: C{""} for the core group.
    @ivar version: C{v1}, C{v1beta3}, ...
    @ivar group_priority: C{spec.groupPriorityMinimum}; groups are listed
        from the highest.
    @ivar version_priority: C{spec.versionPriority}; the highest version of
        a group is its preferred version.
    @ivar service: for aggregated APIs served by a pod, the
        (namespace, name, port) of the Service behind it; C{None} for APIs
        the API server serves itself ("Local").
    @ivar custom: C{True} for group/versions that exist because of a CRD.
    """

    group: str
    version: str
    group_priority: int
    version_priority: int
    service: tuple[str, str, int] | None = None
    custom: bool = False

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_service_name(self) -> str:
        """C{v1.apps}; C{v1.} for the core group."""
        return f"{self.version}.{self.group}"


_KUBE_VERSION = re.compile(r"^v([1-9][0-9]*)(?:(alpha|beta)([1-9][0-9]*))?$")
_STABILITY = {"alpha": 0, "beta": 1, None: 2}


def compare_versions(left: str, right: str) -> int:
    """
    Order API versions like the API server does: GA before beta before
    alpha, higher numbers first, and non-Kubernetes-style versions last in
    lexical order.

    @return: positive if C{left} sorts as the more preferred version,
        negative if C{right} does, 0 if they are equal.
    """
    if left == right:
        return 0
    left_match = _KUBE_VERSION.match(left)
    right_match = _KUBE_VERSION.match(right)
    if left_match is None and right_match is None:
        # Both unconventional: the lexically smaller one is preferred.
        return (left < right) - (left > right)
    if left_match is None:
        return -1
    if right_match is None:
        return 1
    left_major, left_stability, left_minor = left_match.groups()
    right_major, right_stability, right_minor = right_match.groups()
    if left_stability != right_stability:
        return _STABILITY[left_stability] - _STABILITY[right_stability]
    if left_major != right_major:
        return int(left_major) - int(right_major)
    return int(left_minor or 0) - int(right_minor or 0)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Versions from the most to the least preferred."""
    return sorted(versions, key=functools.cmp_to_key(compare_versions), reverse=True)


def _resource(
    group: str,
    version: str,
    resource: str,
    kind: str,
    namespaced: bool,
    verbs: tuple[str, ...] = FULL_VERBS,
    subresources: tuple[Subresource, ...] = (),
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    persisted: bool = True,
    storage: tuple[str, str, str] | None = None,
) -> ResourceType:
    # Keeps the table below readable; `storage` names the group/version/kind
    # objects are stored as when that differs from the served one.
    return ResourceType(
        group=group,
        version=version,
        resource=resource,
        kind=kind,
        namespaced=namespaced,
        verbs=verbs,
        subresource_details=subresources,
        short_names=short_names,
        categories=categories,
        persisted=persisted,
        storage_version_hash=storage_version_hash(*storage) if storage else "",
    )


def _core() -> list[ResourceType]:
    def core(*args: Any, **kwargs: Any) -> ResourceType:
        return _resource("", "v1", *args, **kwargs)

    return [
        core("bindings", "Binding", True, verbs=CREATE_ONLY, persisted=False),
        core(
            "componentstatuses",
            "ComponentStatus",
            False,
            verbs=READ_ONLY,
            short_names=("cs",),
            persisted=False,
        ),
        core("configmaps", "ConfigMap", True, short_names=("cm",)),
        core("endpoints", "Endpoints", True, short_names=("ep",)),
        core("events", "Event", True, short_names=("ev",)),
        core("limitranges", "LimitRange", True, short_names=("limits",)),
        core(
            "namespaces",
            "Namespace",
            False,
            verbs=NAMESPACE_VERBS,
            subresources=(Subresource("finalize", verbs=("update",)), STATUS),
            short_names=("ns",),
        ),
        core(
            "nodes",
            "Node",
            False,
            subresources=(
                Subresource("proxy", kind="NodeProxyOptions", verbs=PROXY_VERBS),
                STATUS,
            ),
            short_names=("no",),
        ),
        core(
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            True,
            subresources=(STATUS,),
            short_names=("pvc",),
        ),
        core(
            "persistentvolumes",
            "PersistentVolume",
            False,
            subresources=(STATUS,),
            short_names=("pv",),
        ),
        core(
            "pods",
            "Pod",
            True,
            subresources=(
                Subresource("attach", kind="PodAttachOptions", verbs=CONNECT_VERBS),
                Subresource("binding", kind="Binding", verbs=CREATE_ONLY),
                Subresource("ephemeralcontainers"),
                Subresource(
                    "eviction",
                    kind="Eviction",
                    verbs=CREATE_ONLY,
                    group="policy",
                    version="v1",
                ),
                Subresource("exec", kind="PodExecOptions", verbs=CONNECT_VERBS),
                Subresource("log", verbs=("get",)),
                Subresource(
                    "portforward", kind="PodPortForwardOptions", verbs=CONNECT_VERBS
                ),
                Subresource("proxy", kind="PodProxyOptions", verbs=PROXY_VERBS),
                STATUS,
            ),
            short_names=("po",),
            categories=ALL,
        ),
        core("podtemplates", "PodTemplate", True),
        core(
            "replicationcontrollers",
            "ReplicationController",
            True,
            subresources=(SCALE, STATUS),
            short_names=("rc",),
            categories=ALL,
        ),
        core(
            "resourcequotas",
            "ResourceQuota",
            True,
            subresources=(STATUS,),
            short_names=("quota",),
        ),
        core("secrets", "Secret", True),
        core(
            "serviceaccounts",
            "ServiceAccount",
            True,
            subresources=(
                Subresource(
                    "token",
                    kind="TokenRequest",
                    verbs=CREATE_ONLY,
                    group="authentication.k8s.io",
                    version="v1",
                ),
            ),
            short_names=("sa",),
        ),
        core(
            "services",
            "Service",
            True,
            subresources=(
                Subresource("proxy", kind="ServiceProxyOptions", verbs=PROXY_VERBS),
                STATUS,
            ),
            short_names=("svc",),
            categories=ALL,
        ),
    ]


def _grouped() -> list[ResourceType]:
    apps = functools.partial(_resource, "apps", "v1")
    rbac = functools.partial(_resource, "rbac.authorization.k8s.io", "v1")
    storage = functools.partial(_resource, "storage.k8s.io", "v1")
    # Reviews are answered per request and never stored.
    review = functools.partial(_resource, verbs=CREATE_ONLY, persisted=False)
    resources = [
        _resource(
            "apiregistration.k8s.io",
            "v1",
            "apiservices",
            "APIService",
            False,
            subresources=(STATUS,),
            categories=API_EXTENSIONS,
        ),
        apps("controllerrevisions", "ControllerRevision", True),
        apps(
            "daemonsets",
            "DaemonSet",
            True,
            subresources=(STATUS,),
            short_names=("ds",),
            categories=ALL,
        ),
        apps(
            "deployments",
            "Deployment",
            True,
            subresources=(SCALE, STATUS),
            short_names=("deploy",),
            categories=ALL,
        ),
        apps(
            "replicasets",
            "ReplicaSet",
            True,
            subresources=(SCALE, STATUS),
            short_names=("rs",),
            categories=ALL,
        ),
        apps(
            "statefulsets",
            "StatefulSet",
            True,
            subresources=(SCALE, STATUS),
            short_names=("sts",),
            categories=ALL,
        ),
        # events.k8s.io serves the same objects as core v1 events.
        _resource(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            True,
            short_names=("ev",),
            storage=("", "v1", "Event"),
        ),
        review("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False),
        review("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False),
        review(
            "authorization.k8s.io",
            "v1",
            "localsubjectaccessreviews",
            "LocalSubjectAccessReview",
            True,
        ),
        review(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            False,
        ),
        review(
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            False,
        ),
        review(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            False,
        ),
    ]
    # Both autoscaling versions serve the same HorizontalPodAutoscalers; v2
    # is the storage version.
    for version in ("v2", "v1"):
        resources.append(
            _resource(
                "autoscaling",
                version,
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                True,
                subresources=(STATUS,),
                short_names=("hpa",),
                categories=ALL,
                storage=("autoscaling", "v2", "HorizontalPodAutoscaler"),
            )
        )
    resources += [
        _resource(
            "batch",
            "v1",
            "cronjobs",
            "CronJob",
            True,
            subresources=(STATUS,),
            short_names=("cj",),
            categories=ALL,
        ),
        _resource(
            "batch", "v1", "jobs", "Job", True, subresources=(STATUS,), categories=ALL
        ),
        _resource(
            "certificates.k8s.io",
            "v1",
            "certificatesigningrequests",
            "CertificateSigningRequest",
            False,
            subresources=(Subresource("approval"), STATUS),
            short_names=("csr",),
        ),
        _resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
        _resource(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            True,
            subresources=(STATUS,),
            short_names=("ing",),
        ),
        _resource(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            True,
            short_names=("netpol",),
        ),
        _resource(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            True,
            subresources=(STATUS,),
            short_names=("pdb",),
        ),
        rbac("clusterrolebindings", "ClusterRoleBinding", False),
        rbac("clusterroles", "ClusterRole", False),
        rbac("rolebindings", "RoleBinding", True),
        rbac("roles", "Role", True),
        storage("csidrivers", "CSIDriver", False),
        storage("csinodes", "CSINode", False),
        storage("csistoragecapacities", "CSIStorageCapacity", True),
        storage("storageclasses", "StorageClass", False, short_names=("sc",)),
        storage(
            "volumeattachments", "VolumeAttachment", False, subresources=(STATUS,)
        ),
        _resource(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            False,
            categories=API_EXTENSIONS,
        ),
        _resource(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            False,
            categories=API_EXTENSIONS,
        ),
        _resource(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            subresources=(STATUS,),
            short_names=("crd", "crds"),
            categories=API_EXTENSIONS,
            # kube-apiserver still stores CRDs as v1beta1 (its storage
            # version hash is that of v1beta1, on 1.28 as on 1.35).
            storage=("apiextensions.k8s.io", "v1beta1", "CustomResourceDefinition"),
        ),
        _resource(
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "PriorityClass",
            False,
            short_names=("pc",),
        ),
        _resource("coordination.k8s.io", "v1", "leases", "Lease", True),
        _resource("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
        _resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ]
    # Kubernetes 1.28 serves API Priority and Fairness as v1beta3 (storage)
    # and the deprecated v1beta2.
    for version in ("v1beta3", "v1beta2"):
        flowcontrol = functools.partial(
            _resource, "flowcontrol.apiserver.k8s.io", version
        )
        resources += [
            flowcontrol(
                "flowschemas",
                "FlowSchema",
                False,
                subresources=(STATUS,),
                storage=("flowcontrol.apiserver.k8s.io", "v1beta3", "FlowSchema"),
            ),
            flowcontrol(
                "prioritylevelconfigurations",
                "PriorityLevelConfiguration",
                False,
                subresources=(STATUS,),
                storage=(
                    "flowcontrol.apiserver.k8s.io",
                    "v1beta3",
                    "PriorityLevelConfiguration",
                ),
            ),
        ]
    return resources


BUILTIN_RESOURCES: tuple[ResourceType, ...] = tuple(_core() + _grouped())
"""Every resource a Kubernetes v1.28 API server serves by default."""

# The aggregator's fixed priorities (kube-apiserver's apiVersionPriorities,
# as of 1.28).  apiregistration.k8s.io has no APIService of its own: the
# aggregator serves it and always lists it first.
BUILTIN_GROUP_VERSIONS: tuple[GroupVersionInfo, ...] = tuple(
    GroupVersionInfo(group, version, group_priority, version_priority)
    for group, version, group_priority, version_priority in (
        ("", "v1", 18000, 1),
        ("apps", "v1", 17800, 15),
        ("events.k8s.io", "v1", 17750, 15),
        ("authentication.k8s.io", "v1", 17700, 15),
        ("authorization.k8s.io", "v1", 17600, 15),
        ("autoscaling", "v2", 17500, 30),
        ("autoscaling", "v1", 17500, 15),
        ("batch", "v1", 17400, 15),
        ("certificates.k8s.io", "v1", 17300, 15),
        ("networking.k8s.io", "v1", 17200, 15),
        ("policy", "v1", 17100, 15),
        ("rbac.authorization.k8s.io", "v1", 17000, 15),
        ("storage.k8s.io", "v1", 16800, 15),
        ("admissionregistration.k8s.io", "v1", 16700, 15),
        ("apiextensions.k8s.io", "v1", 16700, 15),
        ("scheduling.k8s.io", "v1", 16600, 15),
        ("coordination.k8s.io", "v1", 16500, 15),
        ("node.k8s.io", "v1", 16300, 15),
        ("discovery.k8s.io", "v1", 16200, 15),
        ("flowcontrol.apiserver.k8s.io", "v1beta3", 16100, 18),
        ("flowcontrol.apiserver.k8s.io", "v1beta2", 16100, 15),
    )
)

APIREGISTRATION_GROUP = "apiregistration.k8s.io"
"""Served by the aggregator itself: first in discovery, no APIService."""
APIREGISTRATION_GROUP_PRIORITY = 20001

# CRD group/versions get these APIService priorities from the API server's
# crdregistration controller.
CRD_GROUP_PRIORITY = 1000
CRD_VERSION_PRIORITY = 100

# Aggregated APIs whose resources we know, so that a template's APIService
# for them can be served.  metrics-server is the one every k3s cluster has.
KNOWN_AGGREGATED_RESOURCES: Mapping[tuple[str, str], tuple[ResourceType, ...]] = {
    ("metrics.k8s.io", "v1beta1"): (
        ResourceType(
            "metrics.k8s.io",
            "v1beta1",
            "nodes",
            "NodeMetrics",
            False,
            verbs=READ_ONLY,
            singular="node",
            persisted=False,
        ),
        ResourceType(
            "metrics.k8s.io",
            "v1beta1",
            "pods",
            "PodMetrics",
            True,
            verbs=READ_ONLY,
            singular="pod",
            persisted=False,
        ),
    ),
}


class UnsupportedAPIService(ValueError):
    """
    An APIService names a remote API whose resources are unknown, so it
    cannot be served.
    """


class InvalidCustomResourceDefinition(ValueError):
    """A CRD object lacks what is needed to serve its resources."""


def _str(mapping: Mapping[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidCustomResourceDefinition(f"{where}.{key} must be a non-empty string")
    return value


def _crd_printer_columns(version: Mapping[str, Any]) -> tuple[PrinterColumn, ...]:
    columns = []
    for column in version.get("additionalPrinterColumns") or ():
        json_path = column.get("jsonPath", "")
        columns.append(
            PrinterColumn(
                name=column.get("name", ""),
                type=column.get("type", "string"),
                json_path=json_path,
                format=column.get("format", ""),
                description=column.get("description")
                or f"Custom resource definition column (in JSONPath format): {json_path}",
                priority=int(column.get("priority", 0)),
            )
        )
    if not columns:
        # The API server serves this column when a CRD declares none.
        columns.append(
            PrinterColumn(
                name="Age",
                type="date",
                json_path=".metadata.creationTimestamp",
                description=OBJECT_META_CREATION_TIMESTAMP_DESCRIPTION,
            )
        )
    return tuple(columns)


OBJECT_META_CREATION_TIMESTAMP_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this "
    "object was created. It is not guaranteed to be set in happens-before "
    "order across separate operations. Clients may not set this value. It is "
    "represented in RFC3339 form and is in UTC.\n\nPopulated by the system. "
    "Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#metadata"
)


def resource_types_for_crd(crd: Mapping[str, Any]) -> tuple[ResourceType, ...]:
    """
    The resource types an C{apiextensions.k8s.io/v1} CustomResourceDefinition
    serves: one per served version.

    @param crd: the CRD object.
    @raise InvalidCustomResourceDefinition: if required fields are missing.
    @return: resource types, the storage version first.
    """
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        raise InvalidCustomResourceDefinition("spec must be a mapping")
    group = _str(spec, "group", "spec")
    names = spec.get("names")
    if not isinstance(names, Mapping):
        raise InvalidCustomResourceDefinition("spec.names must be a mapping")
    plural = _str(names, "plural", "spec.names")
    kind = _str(names, "kind", "spec.names")
    scope = spec.get("scope", "Namespaced")
    if scope not in ("Namespaced", "Cluster"):
        raise InvalidCustomResourceDefinition(
            f"spec.scope must be Namespaced or Cluster, not {scope!r}"
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        raise InvalidCustomResourceDefinition("spec.versions must be a non-empty list")
    storage = [v for v in versions if isinstance(v, Mapping) and v.get("storage")]
    if len(storage) != 1:
        raise InvalidCustomResourceDefinition(
            "exactly one of spec.versions must have storage: true"
        )
    storage_version = _str(storage[0], "name", "spec.versions[]")
    result = []
    for version in versions:
        if not isinstance(version, Mapping) or not version.get("served", True):
            continue
        name = _str(version, "name", "spec.versions[]")
        declared = version.get("subresources") or {}
        subresources = []
        if "status" in declared:
            subresources.append(STATUS)
        if "scale" in declared:
            subresources.append(SCALE)
        result.append(
            ResourceType(
                group=group,
                version=name,
                resource=plural,
                kind=kind,
                namespaced=scope == "Namespaced",
                verbs=CUSTOM_RESOURCE_VERBS,
                subresource_details=tuple(subresources),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                singular=names.get("singular") or kind.lower(),
                list_kind=names.get("listKind") or kind + "List",
                storage_version_hash=storage_version_hash(group, storage_version, kind),
                printer_columns=_crd_printer_columns(version),
                custom=True,
            )
        )
    return tuple(result)


def _crd_name(crd: Mapping[str, Any]) -> str:
    metadata = crd.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        raise InvalidCustomResourceDefinition("metadata.name must be set")
    return metadata["name"]


# One CRD or APIService a layer adds: its name, resource types, and for an
# aggregated API the way it is registered.
_Extension = tuple[str, tuple[ResourceType, ...], "GroupVersionInfo | None"]


class Registry:
    """
    An immutable index of resource types: by URL parts, by kind, by the names
    kubectl accepts (plural, singular, short name, C{resource.group}).

    A registry is either the built-in base or a layer over it that adds the
    resources of CRDs and known aggregated APIs.  Layers are interned: equal
    layers over the same base are one object, so caches keyed on a registry
    (discovery documents) are shared by every cluster with the same APIs.

    Use L{BUILTIN_REGISTRY}, L{Registry.with_crd}, L{Registry.without_crd}
    and L{Registry.with_api_service}; the constructor is for the base.
    """

    _interned: "weakref.WeakValueDictionary[tuple, Registry]" = (
        weakref.WeakValueDictionary()
    )

    def __init__(
        self,
        resource_types: Iterable[ResourceType],
        group_versions: Iterable[GroupVersionInfo],
    ) -> None:
        self._base: Registry | None = None
        # name -> resource types, for CRDs and APIServices in this layer
        self._extensions: tuple[_Extension, ...] = ()
        self._own_types = tuple(resource_types)
        self._own_group_versions = tuple(group_versions)
        self._index()
        # Caches filled by other modules (discovery documents); they live and
        # die with the registry.
        self.cache: dict[Any, Any] = {}

    @classmethod
    def _layer(
        cls,
        base: "Registry",
        extensions: tuple[_Extension, ...],
    ) -> "Registry":
        if not extensions:
            return base
        key = (id(base), extensions)
        existing = cls._interned.get(key)
        if existing is not None:
            return existing
        types: list[ResourceType] = []
        group_versions: dict[tuple[str, str], GroupVersionInfo] = {}
        for _, extension_types, api_service in extensions:
            types.extend(extension_types)
            if api_service is not None:
                group_versions[(api_service.group, api_service.version)] = api_service
            for resource_type in extension_types:
                group_versions.setdefault(
                    resource_type.group_version,
                    GroupVersionInfo(
                        resource_type.group,
                        resource_type.version,
                        CRD_GROUP_PRIORITY,
                        CRD_VERSION_PRIORITY,
                        custom=True,
                    ),
                )
        layer = cls.__new__(cls)
        layer._base = base
        layer._extensions = extensions
        layer._own_types = tuple(types)
        layer._own_group_versions = tuple(group_versions.values())
        layer._index()
        layer.cache = {}
        # The key holds the base's id; keep the base alive as long as the
        # layer so the id cannot be reused.
        cls._interned[key] = layer
        return layer

    def _index(self) -> None:
        base = self._base
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = (
            dict(base._by_gvr) if base else {}
        )
        self._group_versions: dict[tuple[str, str], GroupVersionInfo] = (
            dict(base._group_versions) if base else {}
        )
        for resource_type in self._own_types:
            key = (resource_type.group, resource_type.version, resource_type.resource)
            if key in self._by_gvr:
                raise ValueError(f"duplicate resource {key}")
            self._by_gvr[key] = resource_type
        for info in self._own_group_versions:
            if (info.group, info.version) in self._group_versions:
                raise ValueError(f"group/version {info.group_version} is already served")
            self._group_versions[(info.group, info.version)] = info
        preferred = self._preferred_versions()
        self._preferred: dict[str, str] = preferred
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        self._by_name: dict[str, list[ResourceType]] = {}
        for resource_type in self._by_gvr.values():
            if preferred.get(resource_type.group) != resource_type.version:
                continue
            self._by_kind[(resource_type.group, resource_type.kind)] = resource_type
            names = {resource_type.resource, resource_type.singular}
            names.update(resource_type.short_names)
            for name in names:
                self._by_name.setdefault(name, []).append(resource_type)
        # Among groups that define the same name, kubectl prefers the one
        # listed first in discovery, the core group (/api) before all others.
        order = {"": -1}
        order.update((group, index) for index, group in enumerate(self.groups()))
        for candidates in self._by_name.values():
            candidates.sort(key=lambda rt: order.get(rt.group, len(order)))

    def _preferred_versions(self) -> dict[str, str]:
        by_group: dict[str, list[GroupVersionInfo]] = {}
        for info in self._group_versions.values():
            by_group.setdefault(info.group, []).append(info)
        preferred = {}
        for group, infos in by_group.items():
            preferred[group] = self._sorted_versions(infos)[0].version
        # The aggregator's own group is not an APIService but is served.
        preferred.setdefault(APIREGISTRATION_GROUP, "v1")
        return preferred

    @staticmethod
    def _sorted_versions(infos: Iterable[GroupVersionInfo]) -> list[GroupVersionInfo]:
        def compare(left: GroupVersionInfo, right: GroupVersionInfo) -> int:
            if left.version_priority != right.version_priority:
                return right.version_priority - left.version_priority
            return -compare_versions(left.version, right.version)

        return sorted(infos, key=functools.cmp_to_key(compare))

    # Lookups

    def lookup(self, group: str, version: str, resource: str) -> ResourceType | None:
        """
        The resource served at C{/apis/<group>/<version>/<resource>} (or
        C{/api/v1/<resource>}), or C{None}.
        """
        return self._by_gvr.get((group, version, resource))

    def by_kind(self, group: str, kind: str, version: str | None = None) -> ResourceType | None:
        """
        The resource type for objects of a kind, in the given version or in
        the group's preferred version.

        @param group: C{""} for core.
        @param kind: e.g. C{Deployment}.
        @param version: a specific version, or C{None} for the preferred one.
        """
        if version is None:
            return self._by_kind.get((group, kind))
        for resource_type in self._by_gvr.values():
            if (
                resource_type.group == group
                and resource_type.version == version
                and resource_type.kind == kind
            ):
                return resource_type
        return None

    def by_api_version(self, api_version: str, kind: str) -> ResourceType | None:
        """The resource type for an object's C{apiVersion} and C{kind}."""
        group, _, version = api_version.rpartition("/")
        return self.by_kind(group, kind, version)

    def resolve(self, name: str) -> list[ResourceType]:
        """
        What kubectl would understand by C{name}: a plural, singular or short
        name, optionally qualified by group (C{deployments.apps},
        C{deploy.apps}) or by version and group (C{deployments.v1.apps}).

        @return: matching resource types in the group's preferred version,
            the best match first; empty if none.
        """
        name = name.lower()
        direct = self._by_name.get(name)
        if direct:
            return list(direct)
        matches = []
        for candidate, resource_types in self._by_name.items():
            if not name.startswith(candidate + "."):
                continue
            rest = name[len(candidate) + 1 :]
            for resource_type in resource_types:
                if rest == resource_type.group:
                    matches.append(resource_type)
                    continue
                version, _, group = rest.partition(".")
                if group == resource_type.group:
                    specific = self.lookup(group, version, resource_type.resource)
                    if specific is not None:
                        matches.append(specific)
        return matches

    def by_short_name(self, short_name: str) -> ResourceType | None:
        """The resource with this short name (C{deploy}, C{po}), or C{None}."""
        for resource_type in self._by_name.get(short_name.lower(), ()):
            if short_name.lower() in resource_type.short_names:
                return resource_type
        return None

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._by_gvr.values())

    def __len__(self) -> int:
        return len(self._by_gvr)

    def __contains__(self, resource_type: object) -> bool:
        if not isinstance(resource_type, ResourceType):
            return False
        key = (resource_type.group, resource_type.version, resource_type.resource)
        return self._by_gvr.get(key) == resource_type

    # Groups and versions

    def group_version_info(self, group: str, version: str) -> GroupVersionInfo | None:
        """How a group/version is registered; C{None} if it is not served."""
        if group == APIREGISTRATION_GROUP and version == "v1":
            return GroupVersionInfo(group, version, APIREGISTRATION_GROUP_PRIORITY, 15)
        return self._group_versions.get((group, version))

    def group_versions(self) -> list[GroupVersionInfo]:
        """
        Every served group/version with an APIService, in the order the
        aggregator sorts APIServices: by group priority, then name.
        """
        return sorted(
            self._group_versions.values(),
            key=lambda info: (-info.group_priority, info.api_service_name),
        )

    def groups(self) -> list[str]:
        """
        Named groups in discovery order (as C{/apis} lists them), the
        aggregator's own group first; the core group is not included.
        """
        ordered = [APIREGISTRATION_GROUP]
        for info in self.group_versions():
            if info.group and info.group not in ordered:
                ordered.append(info.group)
        return ordered

    def versions(self, group: str) -> list[str]:
        """A group's versions, the preferred one first."""
        if group == APIREGISTRATION_GROUP:
            return ["v1"]
        infos = [info for info in self._group_versions.values() if info.group == group]
        return [info.version for info in self._sorted_versions(infos)]

    def preferred_version(self, group: str) -> str | None:
        return self._preferred.get(group)

    def resources(self, group: str, version: str) -> list[ResourceType]:
        """The resources of one group/version, sorted by name."""
        return sorted(
            (
                resource_type
                for (g, v, _), resource_type in self._by_gvr.items()
                if g == group and v == version
            ),
            key=lambda rt: rt.resource,
        )

    # Extension

    @property
    def base(self) -> "Registry":
        """The built-in registry this one extends (itself for a base)."""
        return self._base or self

    @property
    def extension_names(self) -> tuple[str, ...]:
        """Names of the CRDs and APIServices this registry adds to its base."""
        return tuple(name for name, _, _ in self._extensions)

    def _replace(
        self,
        name: str,
        types: tuple[ResourceType, ...] | None,
        api_service: GroupVersionInfo | None,
    ) -> "Registry":
        extensions = [entry for entry in self._extensions if entry[0] != name]
        if types is not None:
            extensions.append((name, types, api_service))
        extensions.sort(key=lambda entry: entry[0])
        return Registry._layer(self.base, tuple(extensions))

    def with_crd(self, crd: Mapping[str, Any]) -> "Registry":
        """
        This registry plus the resources of a CustomResourceDefinition,
        replacing an earlier CRD of the same name.

        @param crd: the CRD object (a mapping).
        @raise InvalidCustomResourceDefinition: if the CRD cannot be served.
        @raise ValueError: if it defines a resource that is already served.
        """
        name = _crd_name(crd)
        return self._replace(f"crd:{name}", resource_types_for_crd(crd), None)

    def without_crd(self, name: str) -> "Registry":
        """This registry without the CRD called C{name} (a no-op if absent)."""
        return self._replace(f"crd:{name}", None, None)

    def with_api_service(self, api_service: Mapping[str, Any]) -> "Registry":
        """
        This registry plus an aggregated API described by an APIService
        object that names a Service (such as C{v1beta1.metrics.k8s.io}).

        @raise UnsupportedAPIService: if the API's resources are unknown.
        """
        spec = api_service.get("spec") or {}
        group = spec.get("group", "")
        version = spec.get("version", "")
        service = spec.get("service")
        if not service:
            raise UnsupportedAPIService(
                "only APIServices backed by a Service add resources; local "
                "ones are derived from the registry"
            )
        types = KNOWN_AGGREGATED_RESOURCES.get((group, version))
        if types is None:
            raise UnsupportedAPIService(
                f"the resources of {version}.{group} are unknown, so it cannot be served"
            )
        info = GroupVersionInfo(
            group,
            version,
            int(spec.get("groupPriorityMinimum", 100)),
            int(spec.get("versionPriority", 100)),
            service=(
                service.get("namespace", ""),
                service.get("name", ""),
                int(service.get("port", 443)),
            ),
        )
        return self._replace(f"apiservice:{version}.{group}", types, info)

    def __repr__(self) -> str:
        return f"<Registry {len(self)} resources, extensions={list(self.extension_names)}>"


BUILTIN_REGISTRY = Registry(BUILTIN_RESOURCES, BUILTIN_GROUP_VERSIONS)
"""The built-in resources of a Kubernetes v1.28 API server."""
