"""
Tests for L{scaleagent.kube.controllers}: the built-in controllers of a
simulated cluster, run against a real L{ObjectStore} and a real
L{ClusterIdentity}.
"""

from __future__ import annotations

import base64
import functools
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.identity import ClusterIdentity
from scaleagent.kube.controllers import (
    NODE_STATUS_REPORT_INTERVAL,
    Controllers,
    bootstrap,
    controllers_for,
    install_controllers,
)
from scaleagent.kube.controllers._common import (
    CONFIG_MAPS,
    CONTROLLER_REVISIONS,
    CUSTOM_RESOURCE_DEFINITIONS,
    DAEMON_SETS,
    DEPLOYMENTS,
    JOBS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    REPLICA_SETS,
    SECRETS,
    SERVICE_ACCOUNTS,
    STATEFUL_SETS,
    go_json,
    short_hash,
)
from scaleagent.kube.errors import APIError
from scaleagent.kube.resources import BUILTIN_REGISTRY, Registry, ResourceType
from scaleagent.kube.store import ADDED, DELETED, MODIFIED, ObjectStore
from scaleagent.kube.template import ClusterContext, ClusterTemplate
from scaleagent.rancher.manifest import AgentSettings, parse_import_manifest

NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
STAMP = "2024-01-02T03:04:05Z"
ADDRESS = "10.43.0.1:443"
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "cluster_templates" / "k3s-v1.28.yaml"
IMPORT_MANIFEST_PATH = ROOT / "tests" / "fixtures" / "agent-manifests" / "import-v2.14.4.yaml"

CLUSTER_ROLES = BUILTIN_REGISTRY.lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
CLUSTER_ROLE_BINDINGS = BUILTIN_REGISTRY.lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings")

TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _decode(value: str) -> str:
    return base64.b64decode(value).decode("utf-8")


def full_object(resource_type: ResourceType, namespace: str, name: str, **body: object) -> dict:
    """A stored-looking object, for seeding a store."""
    metadata: dict = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(
        uid=f"seed-{resource_type.resource}-{namespace}-{name}",
        resourceVersion="5",
        creationTimestamp="2023-12-31T00:00:00Z",
    )
    extra_metadata = body.pop("metadata", None)
    if isinstance(extra_metadata, dict):
        metadata.update(extra_metadata)
    obj = {"apiVersion": resource_type.api_version, "kind": resource_type.kind, "metadata": metadata}
    obj.update(body)
    return obj


def seed(resource_type: ResourceType, namespace: str, name: str, **body: object) -> tuple:
    return (resource_type, namespace, name, full_object(resource_type, namespace, name, **body))


def namespace_seed(name: str) -> tuple:
    return seed(
        NAMESPACES,
        "",
        name,
        metadata={"labels": {"kubernetes.io/metadata.name": name}},
        spec={"finalizers": ["kubernetes"]},
        status={"phase": "Active"},
    )


def node_seed(
    name: str, address: str, cidr: str, labels: Optional[dict] = None, taints: Optional[list] = None
) -> tuple:
    spec: dict = {"podCIDR": cidr, "podCIDRs": [cidr]}
    if taints:
        spec["taints"] = taints
    conditions = [
        {
            "lastHeartbeatTime": "2024-01-02T03:00:00Z",
            "lastTransitionTime": "2023-12-31T00:00:00Z",
            "message": message,
            "reason": reason,
            "status": status,
            "type": type_,
        }
        for type_, status, reason, message in (
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        )
    ]
    return seed(
        NODES,
        "",
        name,
        metadata={"labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}},
        spec=spec,
        status={"addresses": [{"address": address, "type": "InternalIP"}], "conditions": conditions},
    )


def lease_seed(node: str) -> tuple:
    return seed(
        LEASES,
        "kube-node-lease",
        node,
        spec={"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": "2024-01-02T03:00:00.000000Z"},
    )


BASE_SEEDS = (
    namespace_seed("default"),
    namespace_seed("kube-system"),
    namespace_seed("kube-public"),
    namespace_seed("kube-node-lease"),
)
TWO_NODES = (
    node_seed("node-1", "10.0.0.11", "10.42.0.0/24", {"node-role.kubernetes.io/control-plane": "true"}),
    node_seed("node-2", "10.0.0.12", "10.42.1.0/24"),
)


class Cluster:
    """A store with controllers installed, a clock, and a recording watch."""

    def __init__(
        self,
        identity: ClusterIdentity,
        seeds: tuple = BASE_SEEDS + TWO_NODES,
        registry: Registry = BUILTIN_REGISTRY,
        store: Optional[ObjectStore] = None,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(NOW.timestamp())
        if store is None:
            store = ObjectStore(seeds, initial_resource_version=100, now=lambda: NOW)
        self.store = store
        self.controllers = install_controllers(self.store, registry, identity, self.clock)
        self.events: list[tuple[str, str, str, str]] = []
        self.objects: list[tuple[str, dict]] = []

    def watch(self, *resource_types: ResourceType) -> None:
        for resource_type in resource_types:
            self.store.watch(
                resource_type,
                resource_version=str(self.store.resource_version),
                callback=lambda event, obj, rt=resource_type: self._record(rt, event, obj),
            )

    def _record(self, resource_type: ResourceType, event: str, obj: dict) -> None:
        metadata = obj["metadata"]
        self.events.append((event, resource_type.resource, metadata.get("namespace", ""), metadata["name"]))
        self.objects.append((event, obj))

    def create(self, resource_type: ResourceType, obj: dict) -> dict:
        return self.store.create(resource_type, obj["metadata"].get("namespace", ""), obj)

    def get(self, resource_type: ResourceType, namespace: str, name: str) -> Optional[dict]:
        try:
            return self.store.get(resource_type, namespace, name)
        except APIError as error:
            if error.code == 404:
                return None
            raise

    def items(self, resource_type: ResourceType, namespace: Optional[str] = None) -> list:
        return self.store.list(resource_type, namespace).items

    def namespace(self, name: str, **metadata: object) -> dict:
        return self.create(
            NAMESPACES,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **metadata}},
        )

    def writes(self) -> int:
        return self.store.resource_version


def deployment(
    name: str, namespace: str = "default", replicas: Optional[int] = 2, image: str = "nginx:1.25"
) -> dict:
    spec: dict = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def condition_of(obj: dict, type_: str) -> Optional[dict]:
    for item in (obj.get("status") or {}).get("conditions") or ():
        if item["type"] == type_:
            return item
    return None


class IdentityTestCase(SynchronousTestCase):
    """One identity per test class: generating keys is the slow part."""

    @property
    def identity(self) -> ClusterIdentity:
        cls = type(self)
        identity = cls.__dict__.get("_identity")
        if identity is None:
            identity = ClusterIdentity.generate(ADDRESS, cls.__name__, NOW)
            cls._identity = identity  # type: ignore[attr-defined]
        return identity

    def cluster(
        self, seeds: tuple = BASE_SEEDS + TWO_NODES, registry: Registry = BUILTIN_REGISTRY
    ) -> Cluster:
        return Cluster(self.identity, seeds, registry)


class InstallTests(IdentityTestCase):
    def test_installed_once(self) -> None:
        """
        Installing twice on one store returns the first controllers rather
        than running every controller twice.
        """
        cluster = self.cluster()
        again = install_controllers(cluster.store, BUILTIN_REGISTRY, self.identity, cluster.clock)
        self.assertIs(again, cluster.controllers)
        self.assertIs(controllers_for(cluster.store), cluster.controllers)
        self.assertIsNone(controllers_for(ObjectStore()))

    def test_slots(self) -> None:
        """Per-cluster state is a handful of slots, no per-instance dict."""
        cluster = self.cluster()
        self.assertIsInstance(cluster.controllers, Controllers)
        self.assertFalse(hasattr(cluster.controllers, "__dict__"))


class TokenControllerTests(IdentityTestCase):
    def account(self, cluster: Cluster, name: str = "robot", namespace: str = "default") -> dict:
        return cluster.create(
            SERVICE_ACCOUNTS,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": namespace},
            },
        )

    def token_secret(self, account: str, namespace: str = "default", **metadata: object) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "generateName": f"{account}-token-",
                "namespace": namespace,
                "annotations": {NAME_ANNOTATION: account},
                **metadata,
            },
            "type": TOKEN_TYPE,
        }

    def test_token_in_create_response(self) -> None:
        """
        A token Secret for an existing ServiceAccount comes back from its
        create already holding a token that authenticates as that account,
        the cluster CA and the namespace, and the account's uid annotation,
        as Rancher's impersonation setup needs within its 0.1 s poll.
        """
        cluster = self.cluster()
        account = self.account(cluster)
        created = cluster.create(SECRETS, self.token_secret("robot"))
        name = created["metadata"]["name"]
        self.assertTrue(name.startswith("robot-token-"))
        data = created["data"]
        self.assertEqual(self.identity.ca_pem.decode("ascii"), _decode(data["ca.crt"]))
        self.assertEqual("default", _decode(data["namespace"]))
        self.assertEqual(account["metadata"]["uid"], created["metadata"]["annotations"][UID_ANNOTATION])
        claims = self.identity.verify_token(_decode(data["token"]), NOW)
        self.assertIsNotNone(claims)
        assert claims is not None
        self.assertTrue(claims.legacy)
        self.assertEqual(("default", "robot"), (claims.namespace, claims.service_account_name))
        self.assertEqual(account["metadata"]["uid"], claims.service_account_uid)
        self.assertEqual(name, claims.secret_name)
        # The stored Secret is the one returned: no second write.
        self.assertEqual(created, cluster.get(SECRETS, "default", name))

    def test_cleared_token_filled_again(self) -> None:
        """An update that drops the token gets a new one, as the controller's next sync would."""
        cluster = self.cluster()
        self.account(cluster)
        created = cluster.create(SECRETS, self.token_secret("robot"))
        name = created["metadata"]["name"]
        cleared = dict(created)
        cleared["data"] = {"ca.crt": created["data"]["ca.crt"]}
        updated = cluster.store.update(SECRETS, "default", name, cleared)
        self.assertIsNotNone(self.identity.verify_token(_decode(updated["data"]["token"]), NOW))

    def test_secret_without_account_deleted(self) -> None:
        """
        A token Secret naming a ServiceAccount that does not exist gets no
        token and is deleted, as kube-controller-manager's token controller
        deletes it.
        """
        cluster = self.cluster()
        cluster.watch(SECRETS)
        created = cluster.create(SECRETS, self.token_secret("ghost"))
        name = created["metadata"]["name"]
        self.assertNotIn("data", created)
        self.assertIsNone(cluster.get(SECRETS, "default", name))
        self.assertEqual(
            [(ADDED, "secrets", "default", name), (DELETED, "secrets", "default", name)],
            cluster.events,
        )

    def test_secret_with_other_uid_deleted(self) -> None:
        """A token naming the account's name but another uid is not that account's."""
        cluster = self.cluster()
        self.account(cluster)
        annotations = {NAME_ANNOTATION: "robot", UID_ANNOTATION: "not-its-uid"}
        created = cluster.create(SECRETS, self.token_secret("robot", annotations=annotations))
        self.assertNotIn("data", created)
        self.assertIsNone(cluster.get(SECRETS, "default", created["metadata"]["name"]))

    def test_account_created_later(self) -> None:
        """
        A token Secret that is already stored when its account appears
        (from a template or a restored store) is filled then.
        """
        waiting = full_object(
            SECRETS,
            "default",
            "late-token",
            metadata={"annotations": {NAME_ANNOTATION: "late"}},
            type=TOKEN_TYPE,
        )
        cluster = self.cluster(BASE_SEEDS + ((SECRETS, "default", "late-token", waiting),))
        account = self.account(cluster, "late")
        secret = cluster.get(SECRETS, "default", "late-token")
        assert secret is not None
        claims = self.identity.verify_token(_decode(secret["data"]["token"]), NOW)
        assert claims is not None
        self.assertEqual(
            (account["metadata"]["uid"], "late-token"),
            (claims.service_account_uid, claims.secret_name),
        )

    def test_account_deleted_takes_tokens(self) -> None:
        """Deleting a ServiceAccount deletes its token Secrets."""
        cluster = self.cluster()
        self.account(cluster)
        secret = cluster.create(SECRETS, self.token_secret("robot"))
        other = cluster.create(
            SECRETS,
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain", "namespace": "default"}},
        )
        cluster.store.delete(SERVICE_ACCOUNTS, "default", "robot")
        self.assertIsNone(cluster.get(SECRETS, "default", secret["metadata"]["name"]))
        self.assertIsNotNone(cluster.get(SECRETS, "default", other["metadata"]["name"]))

    def test_deleted_secret_leaves_account_references(self) -> None:
        """A deleted token is removed from its account's C{secrets} list."""
        cluster = self.cluster()
        self.account(cluster)
        secret = cluster.create(SECRETS, self.token_secret("robot"))
        name = secret["metadata"]["name"]
        account = cluster.get(SERVICE_ACCOUNTS, "default", "robot")
        assert account is not None
        cluster.store.update(
            SERVICE_ACCOUNTS,
            "default",
            "robot",
            {**account, "secrets": [{"name": name}, {"name": "x"}]},
        )
        cluster.store.delete(SECRETS, "default", name)
        account = cluster.get(SERVICE_ACCOUNTS, "default", "robot")
        assert account is not None
        self.assertEqual([{"name": "x"}], account["secrets"])

    def test_cattle_account_uid(self) -> None:
        """
        C{cattle-system/cattle} is created with the uid its announced token
        names, so the token in the tunnel params authenticates.
        """
        cluster = self.cluster()
        cluster.namespace("cattle-system")
        created = self.account(cluster, "cattle", "cattle-system")
        announced = self.identity.ensure_cattle_account()
        self.assertEqual(announced.service_account_uid, created["metadata"]["uid"])
        other = self.account(cluster, "cattle", "default")
        self.assertNotEqual(announced.service_account_uid, other["metadata"]["uid"])


class NamespaceTests(IdentityTestCase):
    def test_new_namespace(self) -> None:
        """
        A new namespace gets C{kube-root-ca.crt} holding the cluster CA and a
        C{default} ServiceAccount, right after it is created.
        """
        cluster = self.cluster()
        cluster.watch(NAMESPACES, CONFIG_MAPS, SERVICE_ACCOUNTS)
        cluster.namespace("apps")
        self.assertEqual(
            [
                (ADDED, "namespaces", "", "apps"),
                (ADDED, "configmaps", "apps", "kube-root-ca.crt"),
                (ADDED, "serviceaccounts", "apps", "default"),
            ],
            cluster.events,
        )
        config_map = cluster.get(CONFIG_MAPS, "apps", "kube-root-ca.crt")
        assert config_map is not None
        self.assertEqual({"ca.crt": self.identity.ca_pem.decode("ascii")}, config_map["data"])
        self.assertIn("kubernetes.io/description", config_map["metadata"]["annotations"])

    def test_root_ca_put_back(self) -> None:
        """The publisher restores a deleted or altered C{kube-root-ca.crt}."""
        cluster = self.cluster()
        cluster.namespace("apps")
        cluster.store.delete(CONFIG_MAPS, "apps", "kube-root-ca.crt")
        restored = cluster.get(CONFIG_MAPS, "apps", "kube-root-ca.crt")
        assert restored is not None
        cluster.store.update(
            CONFIG_MAPS,
            "apps",
            "kube-root-ca.crt",
            {**restored, "data": {"ca.crt": "forged"}},
        )
        again = cluster.get(CONFIG_MAPS, "apps", "kube-root-ca.crt")
        assert again is not None
        self.assertEqual(self.identity.ca_pem.decode("ascii"), again["data"]["ca.crt"])

    def test_default_account_put_back(self) -> None:
        cluster = self.cluster()
        cluster.namespace("apps")
        cluster.store.delete(SERVICE_ACCOUNTS, "apps", "default")
        self.assertIsNotNone(cluster.get(SERVICE_ACCOUNTS, "apps", "default"))

    def test_termination_with_rancher_finalizer(self) -> None:
        """
        Deleting a namespace that Rancher's C{namespace-auth} finalizer
        holds: its content goes (an object with a finalizer of its own stays
        until that is removed, and the conditions say so), then the
        C{kubernetes} finalizer is removed, and the namespace goes once
        Rancher removes its finalizer.
        """
        cluster = self.cluster()
        cluster.namespace("apps")
        namespace = cluster.get(NAMESPACES, "", "apps")
        assert namespace is not None
        # Rancher's namespace-auth handler: a PUT adding its finalizer.
        namespace = cluster.store.update(
            NAMESPACES,
            "",
            "apps",
            {
                **namespace,
                "metadata": {
                    **namespace["metadata"],
                    "finalizers": ["controller.cattle.io/namespace-auth"],
                    "annotations": {"lifecycle.cattle.io/create.namespace-auth": "true"},
                },
            },
        )
        cluster.create(DEPLOYMENTS, deployment("web", "apps"))
        cluster.create(
            CONFIG_MAPS,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "held", "namespace": "apps", "finalizers": ["example.com/hold"]},
            },
        )
        self.assertEqual(2, len(cluster.items(PODS, "apps")))
        cluster.watch(NAMESPACES)

        cluster.store.delete(NAMESPACES, "", "apps")

        self.assertEqual([], cluster.items(PODS, "apps"))
        self.assertEqual([], cluster.items(DEPLOYMENTS, "apps"))
        self.assertEqual([], cluster.items(SERVICE_ACCOUNTS, "apps"))
        held = cluster.get(CONFIG_MAPS, "apps", "held")
        assert held is not None
        self.assertTrue(held["metadata"].get("deletionTimestamp"))
        terminating = cluster.get(NAMESPACES, "", "apps")
        assert terminating is not None
        self.assertEqual("Terminating", terminating["status"]["phase"])
        self.assertEqual(["kubernetes"], terminating["spec"]["finalizers"])
        remaining = condition_of(terminating, "NamespaceContentRemaining")
        self.assertEqual(
            {
                "type": "NamespaceContentRemaining",
                "status": "True",
                "lastTransitionTime": STAMP,
                "reason": "SomeResourcesRemain",
                "message": "Some resources are remaining: configmaps. has 1 resource instances",
            },
            remaining,
        )
        finalizers = condition_of(terminating, "NamespaceFinalizersRemaining")
        assert finalizers is not None
        self.assertEqual(
            "Some content in the namespace has finalizers remaining: "
            "example.com/hold in 1 resource instances",
            finalizers["message"],
        )
        self.assertEqual(
            [
                "NamespaceDeletionDiscoveryFailure",
                "NamespaceDeletionGroupVersionParsingFailure",
                "NamespaceDeletionContentFailure",
                "NamespaceContentRemaining",
                "NamespaceFinalizersRemaining",
            ],
            [item["type"] for item in terminating["status"]["conditions"]],
        )

        # The finalizer holding the ConfigMap goes: it goes, and so does
        # the namespace controller's finalizer.
        cluster.store.update(
            CONFIG_MAPS,
            "apps",
            "held",
            {**held, "metadata": {**held["metadata"], "finalizers": []}},
        )
        self.assertIsNone(cluster.get(CONFIG_MAPS, "apps", "held"))
        finalized = cluster.get(NAMESPACES, "", "apps")
        assert finalized is not None
        self.assertEqual([], finalized["spec"].get("finalizers", []))
        self.assertEqual(["controller.cattle.io/namespace-auth"], finalized["metadata"]["finalizers"])
        self.assertEqual(
            {"False"}, {item["status"] for item in finalized["status"]["conditions"]},
        )
        content = condition_of(finalized, "NamespaceContentRemaining")
        assert content is not None
        self.assertEqual(
            ("ContentRemoved", "All content successfully removed"),
            (content["reason"], content["message"]),
        )

        # Rancher's handler removes its finalizer on delete: the namespace goes.
        cluster.store.update(
            NAMESPACES, "", "apps", {**finalized, "metadata": {**finalized["metadata"], "finalizers": []}}
        )
        self.assertIsNone(cluster.get(NAMESPACES, "", "apps"))
        self.assertEqual(DELETED, cluster.events[-1][0])
        self.assertEqual({MODIFIED}, {event for event, *_ in cluster.events[:-1]})

    def test_empty_namespace_goes_at_once(self) -> None:
        """Without other finalizers an emptied namespace is deleted right away."""
        cluster = self.cluster()
        cluster.namespace("apps")
        cluster.store.delete(NAMESPACES, "", "apps")
        self.assertIsNone(cluster.get(NAMESPACES, "", "apps"))
        self.assertEqual([], cluster.items(CONFIG_MAPS, "apps"))


CRD_GROUP = "example.com"


def crd(
    plural: str = "widgets", kind: str = "Widget", versions: tuple = ("v1",), group: str = CRD_GROUP
) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"plural": plural, "kind": kind, "shortNames": [plural[:2]]},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": index == len(versions) - 1,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                    "subresources": {"status": {}},
                }
                for index, version in enumerate(versions)
            ],
        },
    }


class CustomResourceDefinitionTests(IdentityTestCase):
    def widget(self, name: str, namespace: str = "default", **metadata: object) -> dict:
        return {
            "apiVersion": f"{CRD_GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": namespace, **metadata},
            "spec": {"size": 1},
        }

    def test_established_and_served(self) -> None:
        """
        A created CRD is served as soon as the create returns, and its
        status (names accepted, established, stored versions) follows as a
        MODIFIED event.
        """
        cluster = self.cluster()
        registries: list[Registry] = []
        cluster.controllers.add_registry_listener(registries.append)
        cluster.watch(CUSTOM_RESOURCE_DEFINITIONS)
        created = cluster.create(CUSTOM_RESOURCE_DEFINITIONS, crd())
        self.assertEqual(
            {"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": ["v1"]},
            created["status"],
        )
        self.assertEqual("widget", created["spec"]["names"]["singular"])
        self.assertEqual("WidgetList", created["spec"]["names"]["listKind"])
        widgets = cluster.controllers.registry.lookup(CRD_GROUP, "v1", "widgets")
        assert widgets is not None
        self.assertEqual([cluster.controllers.registry], registries)
        self.assertEqual(
            [
                (ADDED, "customresourcedefinitions", "", "widgets.example.com"),
                (MODIFIED, "customresourcedefinitions", "", "widgets.example.com"),
            ],
            cluster.events,
        )
        stored = cluster.get(CUSTOM_RESOURCE_DEFINITIONS, "", "widgets.example.com")
        assert stored is not None
        self.assertEqual(
            {
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "lastTransitionTime": STAMP,
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "lastTransitionTime": STAMP,
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                    },
                ],
                "acceptedNames": {
                    "plural": "widgets",
                    "singular": "widget",
                    "shortNames": ["wi"],
                    "kind": "Widget",
                    "listKind": "WidgetList",
                },
                "storedVersions": ["v1"],
            },
            stored["status"],
        )
        made = cluster.store.create(widgets, "default", self.widget("one"))
        self.assertEqual(1, made["metadata"]["generation"])

    def test_new_version(self) -> None:
        """An update adding a storage version serves it and records it as stored."""
        cluster = self.cluster()
        created = cluster.create(CUSTOM_RESOURCE_DEFINITIONS, crd())
        current = cluster.get(CUSTOM_RESOURCE_DEFINITIONS, "", "widgets.example.com")
        assert current is not None
        cluster.store.update(
            CUSTOM_RESOURCE_DEFINITIONS,
            "",
            "widgets.example.com",
            {**crd(versions=("v1", "v2")), "metadata": current["metadata"]},
        )
        stored = cluster.get(CUSTOM_RESOURCE_DEFINITIONS, "", "widgets.example.com")
        assert stored is not None
        self.assertEqual(["v1", "v2"], stored["status"]["storedVersions"])
        self.assertIsNotNone(cluster.controllers.registry.lookup(CRD_GROUP, "v2", "widgets"))
        self.assertEqual(2, stored["metadata"]["generation"])
        self.assertNotEqual(created["metadata"]["resourceVersion"], stored["metadata"]["resourceVersion"])

    def test_kind_conflict(self) -> None:
        """A second CRD claiming a kind its group already has is not served."""
        cluster = self.cluster()
        cluster.create(CUSTOM_RESOURCE_DEFINITIONS, crd())
        cluster.create(CUSTOM_RESOURCE_DEFINITIONS, crd("gadgets", "Widget"))
        stored = cluster.get(CUSTOM_RESOURCE_DEFINITIONS, "", "gadgets.example.com")
        assert stored is not None
        accepted = condition_of(stored, "NamesAccepted")
        assert accepted is not None
        # Every name is checked and the last clash found is the one reported.
        self.assertEqual(
            ("False", "ListKindConflict", '"WidgetList" is already in use'),
            (accepted["status"], accepted["reason"], accepted["message"]),
        )
        established = condition_of(stored, "Established")
        assert established is not None
        self.assertEqual(("False", "NotAccepted"), (established["status"], established["reason"]))
        self.assertIsNone(cluster.controllers.registry.lookup(CRD_GROUP, "v1", "gadgets"))

    def test_delete(self) -> None:
        """
        Deleting a CRD (as the HTTP layer does, through the controllers)
        marks it Terminating, deletes its custom resources, then removes
        the CRD and stops serving its resource.
        """
        cluster = self.cluster()
        cluster.create(CUSTOM_RESOURCE_DEFINITIONS, crd())
        widgets = cluster.controllers.registry.lookup(CRD_GROUP, "v1", "widgets")
        assert widgets is not None
        cluster.store.create(widgets, "default", self.widget("one"))
        cluster.store.create(widgets, "kube-system", self.widget("two", "kube-system"))
        cluster.watch(CUSTOM_RESOURCE_DEFINITIONS, widgets)

        cluster.controllers.delete(CUSTOM_RESOURCE_DEFINITIONS, "", "widgets.example.com")

        self.assertIsNone(cluster.get(CUSTOM_RESOURCE_DEFINITIONS, "", "widgets.example.com"))
        self.assertEqual([], cluster.items(widgets))
        self.assertIsNone(cluster.controllers.registry.lookup(CRD_GROUP, "v1", "widgets"))
        self.assertEqual(DELETED, cluster.events[-1][0])
        terminating = [
            condition_of(obj, "Terminating")
            for event, obj in cluster.objects
            if obj["kind"] == "CustomResourceDefinition" and condition_of(obj, "Terminating")
        ]
        self.assertEqual("InstanceDeletionInProgress", terminating[0]["reason"])
        self.assertEqual(
            ("False", "InstanceDeletionCompleted"),
            (terminating[-1]["status"], terminating[-1]["reason"]),
        )
        widget_events = [event for event in cluster.events if event[1] == "widgets"]
        self.assertEqual(
            {(DELETED, "widgets", "default", "one"), (DELETED, "widgets", "kube-system", "two")},
            set(widget_events),
        )
        # The custom resources went before the CRD did.
        last_widget = max(index for index, event in enumerate(cluster.events) if event[1] == "widgets")
        self.assertLess(last_widget, len(cluster.events) - 1)

    def test_delete_waits_for_instance_finalizers(self) -> None:
        """A custom resource with a finalizer keeps its CRD until it goes."""
        cluster = self.cluster()
        cluster.create(CUSTOM_RESOURCE_DEFINITIONS, crd())
        widgets = cluster.controllers.registry.lookup(CRD_GROUP, "v1", "widgets")
        assert widgets is not None
        cluster.store.create(widgets, "default", self.widget("held", finalizers=["example.com/hold"]))
        cluster.controllers.delete(CUSTOM_RESOURCE_DEFINITIONS, "", "widgets.example.com")
        waiting = cluster.get(CUSTOM_RESOURCE_DEFINITIONS, "", "widgets.example.com")
        assert waiting is not None
        terminating = condition_of(waiting, "Terminating")
        assert terminating is not None
        self.assertEqual(("True", "InstanceDeletionCheck"), (terminating["status"], terminating["reason"]))
        self.assertIsNotNone(cluster.controllers.registry.lookup(CRD_GROUP, "v1", "widgets"))
        held = cluster.store.get(widgets, "default", "held")
        cluster.store.update(
            widgets,
            "default",
            "held",
            {**held, "metadata": {**held["metadata"], "finalizers": []}},
        )
        self.assertIsNone(cluster.get(CUSTOM_RESOURCE_DEFINITIONS, "", "widgets.example.com"))
        self.assertIsNone(cluster.controllers.registry.lookup(CRD_GROUP, "v1", "widgets"))

    def test_plain_store_delete(self) -> None:
        """A CRD deleted straight from the store still stops being served, with its objects."""
        cluster = self.cluster()
        cluster.create(CUSTOM_RESOURCE_DEFINITIONS, crd())
        widgets = cluster.controllers.registry.lookup(CRD_GROUP, "v1", "widgets")
        assert widgets is not None
        cluster.store.create(widgets, "default", self.widget("one"))
        cluster.store.delete(CUSTOM_RESOURCE_DEFINITIONS, "", "widgets.example.com")
        self.assertEqual([], cluster.items(widgets))
        self.assertIsNone(cluster.controllers.registry.lookup(CRD_GROUP, "v1", "widgets"))


class DeploymentTests(IdentityTestCase):
    def test_rollout_events(self) -> None:
        """
        Creating a Deployment: the watcher sees it ADDED with an empty status,
        its ReplicaSet and pods ADDED (each pod then bound and started), the
        ReplicaSet's status, and the Deployment MODIFIED with the rolled-out
        status, as from a real cluster's controllers.
        """
        cluster = self.cluster()
        cluster.watch(DEPLOYMENTS, REPLICA_SETS, PODS)
        created = cluster.create(DEPLOYMENTS, deployment("web"))
        self.assertEqual(created["status"], {})
        rs = cluster.items(REPLICA_SETS, "default")[0]
        rs_name = rs["metadata"]["name"]
        pods = cluster.items(PODS, "default")
        self.assertEqual(2, len(pods))
        first, second = sorted(pods, key=lambda pod: pod["metadata"]["resourceVersion"])
        expected = [
            (ADDED, "deployments", "default", "web"),
            (ADDED, "replicasets", "default", rs_name),
        ]
        for pod in (first, second):
            name = pod["metadata"]["name"]
            expected += [
                (ADDED, "pods", "default", name),
                (MODIFIED, "pods", "default", name),
                (MODIFIED, "pods", "default", name),
            ]
        expected += [
            (MODIFIED, "replicasets", "default", rs_name),
            (MODIFIED, "deployments", "default", "web"),
            (MODIFIED, "deployments", "default", "web"),
        ]
        self.assertEqual(expected, cluster.events)

        web = cluster.get(DEPLOYMENTS, "default", "web")
        assert web is not None
        self.assertEqual("1", web["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        self.assertEqual(
            {
                "observedGeneration": 1,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "lastUpdateTime": STAMP,
                        "lastTransitionTime": STAMP,
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                    },
                    {
                        "type": "Progressing",
                        "status": "True",
                        "lastUpdateTime": STAMP,
                        "lastTransitionTime": STAMP,
                        "reason": "NewReplicaSetAvailable",
                        "message": f'ReplicaSet "{rs_name}" has successfully progressed.',
                    },
                ],
            },
            web["status"],
        )

    def test_replica_set(self) -> None:
        """
        The ReplicaSet is C{<name>-<pod-template-hash>}, labelled and
        selected by the hash, owned by the Deployment, annotated with the
        revision and replica counts, and reports its pods.
        """
        cluster = self.cluster()
        web = cluster.create(DEPLOYMENTS, deployment("web"))
        rs = cluster.items(REPLICA_SETS, "default")[0]
        hash_ = rs["metadata"]["labels"]["pod-template-hash"]
        self.assertEqual(f"web-{hash_}", rs["metadata"]["name"])
        self.assertEqual({"app": "web", "pod-template-hash": hash_}, rs["spec"]["selector"]["matchLabels"])
        self.assertEqual(
            {"app": "web", "pod-template-hash": hash_},
            rs["spec"]["template"]["metadata"]["labels"],
        )
        self.assertEqual(
            [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": web["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            rs["metadata"]["ownerReferences"],
        )
        self.assertEqual(
            {
                "deployment.kubernetes.io/desired-replicas": "2",
                "deployment.kubernetes.io/max-replicas": "3",
                "deployment.kubernetes.io/revision": "1",
            },
            rs["metadata"]["annotations"],
        )
        self.assertEqual(
            {
                "replicas": 2,
                "fullyLabeledReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "observedGeneration": 1,
            },
            rs["status"],
        )

    def test_pods(self) -> None:
        """
        The pods run on the cluster's Nodes with addresses from their pod
        CIDRs, ready, with container statuses, and with what admission adds
        to a real pod (service account token volume, default tolerations).
        """
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web"))
        pods = cluster.items(PODS, "default")
        self.assertEqual({"node-1", "node-2"}, {pod["spec"]["nodeName"] for pod in pods})
        for pod in pods:
            status = pod["status"]
            node = pod["spec"]["nodeName"]
            self.assertEqual("Running", status["phase"])
            self.assertEqual({"node-1": "10.0.0.11", "node-2": "10.0.0.12"}[node], status["hostIP"])
            # Started pods take addresses from the middle of the Node's range.
            self.assertEqual({"node-1": "10.42.0.128", "node-2": "10.42.1.128"}[node], status["podIP"])
            self.assertEqual([{"ip": status["podIP"]}], status["podIPs"])
            self.assertEqual(
                ["Initialized", "Ready", "ContainersReady", "PodScheduled"],
                [item["type"] for item in status["conditions"]],
            )
            self.assertEqual({"True"}, {item["status"] for item in status["conditions"]})
            (container,) = status["containerStatuses"]
            self.assertEqual(
                ("main", "docker.io/library/nginx:1.25", True, True),
                (container["name"], container["image"], container["ready"], container["started"]),
            )
            self.assertEqual({"running": {"startedAt": STAMP}}, container["state"])
            self.assertEqual("BestEffort", status["qosClass"])
            spec = pod["spec"]
            self.assertEqual("default", spec["serviceAccountName"])
            (mount,) = spec["containers"][0]["volumeMounts"]
            self.assertEqual("/var/run/secrets/kubernetes.io/serviceaccount", mount["mountPath"])
            self.assertEqual([mount["name"]], [volume["name"] for volume in spec["volumes"]])
            self.assertEqual(
                {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"},
                {item["key"] for item in spec["tolerations"]},
            )
            self.assertEqual((0, "PreemptLowerPriority"), (spec["priority"], spec["preemptionPolicy"]))

    def test_template_change(self) -> None:
        """
        A new pod template rolls out to a new ReplicaSet (revision 2); the
        old one is scaled to zero and its pods deleted.
        """
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web"))
        (old_rs,) = cluster.items(REPLICA_SETS, "default")
        old_pods = {pod["metadata"]["name"] for pod in cluster.items(PODS, "default")}
        current = cluster.get(DEPLOYMENTS, "default", "web")
        assert current is not None
        changed = deployment("web", image="nginx:1.27")
        changed["metadata"] = current["metadata"]
        cluster.watch(PODS)
        cluster.store.update(DEPLOYMENTS, "default", "web", changed)

        replica_sets = {rs["metadata"]["name"]: rs for rs in cluster.items(REPLICA_SETS, "default")}
        self.assertEqual(2, len(replica_sets))
        old = replica_sets.pop(old_rs["metadata"]["name"])
        (new,) = replica_sets.values()
        self.assertEqual(0, old["spec"]["replicas"])
        self.assertEqual({"replicas": 0, "observedGeneration": 2}, old["status"])
        self.assertEqual("2", new["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        pods = cluster.items(PODS, "default")
        self.assertEqual(2, len(pods))
        self.assertFalse(old_pods & {pod["metadata"]["name"] for pod in pods})
        self.assertEqual({"nginx:1.27"}, {pod["spec"]["containers"][0]["image"] for pod in pods})
        self.assertEqual(old_pods, {name for event, _, _, name in cluster.events if event == DELETED})
        web = cluster.get(DEPLOYMENTS, "default", "web")
        assert web is not None
        self.assertEqual("2", web["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        self.assertEqual(2, web["status"]["observedGeneration"])
        self.assertEqual(2, web["status"]["updatedReplicas"])
        progressing = condition_of(web, "Progressing")
        assert progressing is not None
        self.assertEqual(
            f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.',
            progressing["message"],
        )

    def test_rollback_reuses_replica_set(self) -> None:
        """Going back to an earlier template revives its ReplicaSet as the next revision."""
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web", replicas=1))
        (first,) = cluster.items(REPLICA_SETS, "default")
        for image in ("nginx:1.27", "nginx:1.25"):
            current = cluster.get(DEPLOYMENTS, "default", "web")
            assert current is not None
            changed = deployment("web", replicas=1, image=image)
            changed["metadata"] = current["metadata"]
            cluster.store.update(DEPLOYMENTS, "default", "web", changed)
        revived = cluster.get(REPLICA_SETS, "default", first["metadata"]["name"])
        assert revived is not None
        self.assertEqual(1, revived["spec"]["replicas"])
        annotations = revived["metadata"]["annotations"]
        self.assertEqual(
            ("3", "1"),
            (
                annotations["deployment.kubernetes.io/revision"],
                annotations["deployment.kubernetes.io/revision-history"],
            ),
        )
        self.assertEqual(2, len(cluster.items(REPLICA_SETS, "default")))

    def test_scale(self) -> None:
        """Changing replicas adds or removes pods; zero replicas is a rolled-out Deployment too."""
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web", replicas=None))
        self.assertEqual(1, len(cluster.items(PODS, "default")))
        for replicas in (3, 0):
            current = cluster.get(DEPLOYMENTS, "default", "web")
            assert current is not None
            cluster.store.update(
                DEPLOYMENTS, "default", "web", {**current, "spec": {**current["spec"], "replicas": replicas}}
            )
            self.assertEqual(replicas, len(cluster.items(PODS, "default")))
            (rs,) = cluster.items(REPLICA_SETS, "default")
            self.assertEqual(
                str(replicas),
                rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
            )
        web = cluster.get(DEPLOYMENTS, "default", "web")
        assert web is not None
        self.assertEqual(["Available", "Progressing"], [item["type"] for item in web["status"]["conditions"]])
        self.assertNotIn("replicas", web["status"])
        self.assertEqual(3, web["status"]["observedGeneration"])

    def test_deleted_pod_replaced(self) -> None:
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web"))
        victim = cluster.items(PODS, "default")[0]["metadata"]["name"]
        cluster.store.delete(PODS, "default", victim)
        pods = cluster.items(PODS, "default")
        self.assertEqual(2, len(pods))
        self.assertNotIn(victim, {pod["metadata"]["name"] for pod in pods})
        self.assertEqual({"Running"}, {pod["status"]["phase"] for pod in pods})

    def test_no_nodes(self) -> None:
        """
        Without Nodes the pods stay Pending and unschedulable and the
        Deployment unavailable; a Node that joins gets them running.
        """
        cluster = self.cluster(BASE_SEEDS)
        cluster.create(DEPLOYMENTS, deployment("web", replicas=1))
        (pod,) = cluster.items(PODS, "default")
        self.assertEqual("Pending", pod["status"]["phase"])
        scheduled = condition_of(pod, "PodScheduled")
        assert scheduled is not None
        self.assertEqual(("False", "Unschedulable"), (scheduled["status"], scheduled["reason"]))
        web = cluster.get(DEPLOYMENTS, "default", "web")
        assert web is not None
        available = condition_of(web, "Available")
        assert available is not None
        self.assertEqual(("False", "MinimumReplicasUnavailable"), (available["status"], available["reason"]))
        self.assertEqual(1, web["status"]["unavailableReplicas"])

        node = TWO_NODES[0][3]
        cluster.store.create(
            NODES,
            "",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "node-1", "labels": node["metadata"]["labels"]},
                "spec": node["spec"],
            },
        )
        (pod,) = cluster.items(PODS, "default")
        self.assertEqual(("node-1", "Running"), (pod["spec"]["nodeName"], pod["status"]["phase"]))
        web = cluster.get(DEPLOYMENTS, "default", "web")
        assert web is not None
        available = condition_of(web, "Available")
        assert available is not None
        self.assertEqual("True", available["status"])

    def test_scheduling_respects_selectors_and_taints(self) -> None:
        """Pods only land on Nodes whose labels they select and whose taints they tolerate."""
        tainted = node_seed(
            "node-3",
            "10.0.0.13",
            "10.42.2.0/24",
            taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}],
        )
        cluster = self.cluster(BASE_SEEDS + TWO_NODES + (tainted,))
        selected = deployment("picky", replicas=3)
        selected["spec"]["template"]["spec"]["nodeSelector"] = {
            "node-role.kubernetes.io/control-plane": "true"
        }
        cluster.create(DEPLOYMENTS, selected)
        self.assertEqual({"node-1"}, {pod["spec"]["nodeName"] for pod in cluster.items(PODS, "default")})
        tolerant = deployment("db", "kube-system", replicas=3)
        tolerant["spec"]["template"]["spec"]["tolerations"] = [
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
        ]
        tolerant["spec"]["template"]["spec"]["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-3"]}
                            ]
                        }
                    ]
                }
            }
        }
        cluster.create(DEPLOYMENTS, tolerant)
        self.assertEqual({"node-3"}, {pod["spec"]["nodeName"] for pod in cluster.items(PODS, "kube-system")})
        self.assertEqual(
            ["10.42.2.128", "10.42.2.129", "10.42.2.130"],
            sorted(pod["status"]["podIP"] for pod in cluster.items(PODS, "kube-system")),
        )

    def test_status_writes_not_repeated(self) -> None:
        """A settled Deployment stays settled: re-syncs write nothing."""
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web"))
        before = cluster.writes()
        web = cluster.get(DEPLOYMENTS, "default", "web")
        assert web is not None
        # A metadata-only change (Rancher adds annotations) makes one write.
        cluster.store.update(
            DEPLOYMENTS,
            "default",
            "web",
            {**web, "metadata": {**web["metadata"], "labels": {"x": "y"}}},
        )
        self.assertEqual(before + 1, cluster.writes())

    def test_template_workload_with_status_left_alone(self) -> None:
        """A template's Deployment that carries status is not rolled out again."""
        existing = seed(
            DEPLOYMENTS,
            "default",
            "legacy",
            metadata={"generation": 1},
            spec=deployment("legacy")["spec"],
            status={"observedGeneration": 1, "replicas": 2, "readyReplicas": 2},
        )
        cluster = self.cluster(BASE_SEEDS + TWO_NODES + (existing,))
        bootstrap(cluster.store, self.identity, ())
        self.assertEqual([], cluster.items(REPLICA_SETS, "default"))
        self.assertEqual(existing[3], cluster.get(DEPLOYMENTS, "default", "legacy"))


    def test_template_workload_without_status_rolled_out(self) -> None:
        """
        A hand-written template Deployment without status is brought to
        where the controllers would have it when the cluster is made.
        """
        written = seed(
            DEPLOYMENTS,
            "default",
            "plain",
            metadata={"generation": 1},
            spec=deployment("plain")["spec"],
        )
        cluster = self.cluster(BASE_SEEDS + TWO_NODES + (written,))
        bootstrap(cluster.store, self.identity, ())
        (rs,) = cluster.items(REPLICA_SETS, "default")
        self.assertTrue(rs["metadata"]["name"].startswith("plain-"))
        self.assertEqual(2, len(cluster.items(PODS, "default")))
        plain = cluster.get(DEPLOYMENTS, "default", "plain")
        assert plain is not None
        self.assertEqual(2, plain["status"]["availableReplicas"])


class OtherWorkloadTests(IdentityTestCase):
    def test_daemon_set(self) -> None:
        """
        A DaemonSet runs one pod on each Node its pods fit (not on a Node
        with a taint it does not tolerate), records a ControllerRevision and
        reports it.
        """
        tainted = node_seed(
            "node-3",
            "10.0.0.13",
            "10.42.2.0/24",
            taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}],
        )
        cluster = self.cluster(BASE_SEEDS + TWO_NODES + (tainted,))
        daemon = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "busybox"}]},
                },
            },
        }
        created = cluster.create(DAEMON_SETS, daemon)
        self.assertEqual("1", created["metadata"]["annotations"]["deprecated.daemonset.template.generation"])
        pods = cluster.items(PODS, "kube-system")
        self.assertEqual(["node-1", "node-2"], sorted(pod["spec"]["nodeName"] for pod in pods))
        (revision,) = cluster.items(CONTROLLER_REVISIONS, "kube-system")
        hash_ = revision["metadata"]["labels"]["controller-revision-hash"]
        self.assertEqual(f"agent-{hash_}", revision["metadata"]["name"])
        for pod in pods:
            self.assertEqual(hash_, pod["metadata"]["labels"]["controller-revision-hash"])
            self.assertEqual("1", pod["metadata"]["labels"]["pod-template-generation"])
            terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"
            ]
            self.assertEqual(
                [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": [pod["spec"]["nodeName"]]}
                        ]
                    }
                ],
                terms,
            )
        status = cluster.get(DAEMON_SETS, "kube-system", "agent")["status"]  # type: ignore[index]
        self.assertEqual(
            {
                "currentNumberScheduled": 2,
                "numberMisscheduled": 0,
                "desiredNumberScheduled": 2,
                "numberReady": 2,
                "observedGeneration": 1,
                "updatedNumberScheduled": 2,
                "numberAvailable": 2,
            },
            status,
        )

    def test_stateful_set(self) -> None:
        """A StatefulSet's pods are its ordinals; scaling down removes the highest."""
        cluster = self.cluster()
        stateful = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "postgres:16"}]},
                },
            },
        }
        cluster.create(STATEFUL_SETS, stateful)
        pods = {pod["metadata"]["name"]: pod for pod in cluster.items(PODS, "default")}
        self.assertEqual(["db-0", "db-1", "db-2"], sorted(pods))
        self.assertEqual(
            ("db-1", "db", "1"),
            (
                pods["db-1"]["spec"]["hostname"],
                pods["db-1"]["spec"]["subdomain"],
                pods["db-1"]["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
            ),
        )
        current = cluster.get(STATEFUL_SETS, "default", "db")
        assert current is not None
        revision = current["status"]["currentRevision"]
        self.assertEqual(revision, pods["db-0"]["metadata"]["labels"]["controller-revision-hash"])
        self.assertEqual(
            {
                "observedGeneration": 1,
                "replicas": 3,
                "readyReplicas": 3,
                "currentReplicas": 3,
                "updatedReplicas": 3,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0,
                "availableReplicas": 3,
            },
            current["status"],
        )
        cluster.store.update(
            STATEFUL_SETS,
            "default",
            "db",
            {**current, "spec": {**current["spec"], "replicas": 1}},
        )
        self.assertEqual(["db-0"], [pod["metadata"]["name"] for pod in cluster.items(PODS, "default")])

    def test_job(self) -> None:
        """
        A Job gets its generated selector, its pods run to completion (the
        tracking finalizer removed once counted), and it reports Complete.
        """
        cluster = self.cluster()
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once", "namespace": "default"},
            "spec": {
                "completions": 2,
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "busybox"}]}
                },
            },
        }
        created = cluster.create(JOBS, job)
        uid = created["metadata"]["uid"]
        self.assertEqual(
            {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
            created["spec"]["selector"],
        )
        pods = cluster.items(PODS, "default")
        self.assertEqual(2, len(pods))
        for pod in pods:
            self.assertEqual("Succeeded", pod["status"]["phase"])
            self.assertNotIn("finalizers", pod["metadata"])
            self.assertEqual("once", pod["metadata"]["labels"]["job-name"])
            (container,) = pod["status"]["containerStatuses"]
            self.assertEqual(0, container["state"]["terminated"]["exitCode"])
        status = cluster.get(JOBS, "default", "once")["status"]  # type: ignore[index]
        self.assertEqual(
            {
                "conditions": [
                    {
                        "type": "Complete",
                        "status": "True",
                        "lastProbeTime": STAMP,
                        "lastTransitionTime": STAMP,
                    }
                ],
                "startTime": STAMP,
                "completionTime": STAMP,
                "succeeded": 2,
                "uncountedTerminatedPods": {},
                "ready": 0,
            },
            status,
        )


class GarbageCollectorTests(IdentityTestCase):
    def config_map(
        self, cluster: Cluster, name: str, owners: tuple = (), finalizers: tuple = (), block: bool = False
    ) -> dict:
        metadata: dict = {"name": name, "namespace": "default"}
        if owners:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    **({"blockOwnerDeletion": True} if block else {}),
                }
                for owner in owners
            ]
        if finalizers:
            metadata["finalizers"] = list(finalizers)
        return cluster.create(CONFIG_MAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})

    def test_impersonation_chain(self) -> None:
        """
        Rancher deletes an impersonation ClusterRole; the ServiceAccount
        owned by it goes, and with it the token Secret owned by the account.
        """
        cluster = self.cluster()
        cluster.namespace("cattle-impersonation-system")
        role = cluster.create(
            CLUSTER_ROLES,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "cattle-impersonation-u-abc"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["users"],
                        "verbs": ["impersonate"],
                        "resourceNames": ["u-abc"],
                    }
                ],
            },
        )
        account = cluster.create(
            SERVICE_ACCOUNTS,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": "cattle-impersonation-u-abc",
                    "namespace": "cattle-impersonation-system",
                    "ownerReferences": [
                        {
                            "apiVersion": "rbac.authorization.k8s.io/v1",
                            "kind": "ClusterRole",
                            "name": role["metadata"]["name"],
                            "uid": role["metadata"]["uid"],
                        }
                    ],
                },
            },
        )
        secret = cluster.create(
            SECRETS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "generateName": "cattle-impersonation-u-abc-token-",
                    "namespace": "cattle-impersonation-system",
                    "annotations": {NAME_ANNOTATION: "cattle-impersonation-u-abc"},
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "ServiceAccount",
                            "name": account["metadata"]["name"],
                            "uid": account["metadata"]["uid"],
                        }
                    ],
                },
                "type": TOKEN_TYPE,
            },
        )
        self.assertIn("token", secret["data"])
        cluster.store.delete(CLUSTER_ROLES, "", "cattle-impersonation-u-abc")
        self.assertIsNone(
            cluster.get(SERVICE_ACCOUNTS, "cattle-impersonation-system", "cattle-impersonation-u-abc")
        )
        self.assertIsNone(cluster.get(SECRETS, "cattle-impersonation-system", secret["metadata"]["name"]))

    def test_background(self) -> None:
        """Deleting a Deployment deletes its ReplicaSet and their pods."""
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web"))
        cluster.store.delete(DEPLOYMENTS, "default", "web")
        self.assertEqual([], cluster.items(REPLICA_SETS, "default"))
        self.assertEqual([], cluster.items(PODS, "default"))

    def test_foreground(self) -> None:
        """
        With foreground propagation the owner stays (with the
        C{foregroundDeletion} finalizer) until the dependents that block it
        are gone; dependents that do not block are deleted without waiting.
        """
        cluster = self.cluster()
        owner = self.config_map(cluster, "owner")
        self.config_map(cluster, "blocking", (owner,), ("example.com/hold",), block=True)
        self.config_map(cluster, "loose", (owner,))
        marked = cluster.controllers.delete(CONFIG_MAPS, "default", "owner", propagation="Foreground")
        self.assertIn("foregroundDeletion", marked["metadata"]["finalizers"])
        self.assertIsNone(cluster.get(CONFIG_MAPS, "default", "loose"))
        waiting = cluster.get(CONFIG_MAPS, "default", "owner")
        assert waiting is not None
        self.assertEqual(["foregroundDeletion"], waiting["metadata"]["finalizers"])
        held = cluster.get(CONFIG_MAPS, "default", "blocking")
        assert held is not None
        self.assertTrue(held["metadata"]["deletionTimestamp"])
        cluster.store.update(
            CONFIG_MAPS,
            "default",
            "blocking",
            {**held, "metadata": {**held["metadata"], "finalizers": []}},
        )
        self.assertIsNone(cluster.get(CONFIG_MAPS, "default", "blocking"))
        self.assertIsNone(cluster.get(CONFIG_MAPS, "default", "owner"))

    def test_foreground_deployment(self) -> None:
        """Foreground deletion of a Deployment goes through its ReplicaSet, also in the foreground."""
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web"))
        cluster.watch(DEPLOYMENTS, REPLICA_SETS)
        cluster.controllers.delete(DEPLOYMENTS, "default", "web", propagation="Foreground")
        self.assertEqual([], cluster.items(DEPLOYMENTS, "default"))
        self.assertEqual([], cluster.items(REPLICA_SETS, "default"))
        self.assertEqual([], cluster.items(PODS, "default"))
        marked_rs = [
            obj
            for event, obj in cluster.objects
            if obj["kind"] == "ReplicaSet" and obj["metadata"].get("deletionTimestamp")
        ]
        self.assertTrue(marked_rs)
        self.assertEqual(["foregroundDeletion"], marked_rs[0]["metadata"]["finalizers"])
        self.assertEqual(("deployments", "web"), (cluster.events[-1][1], cluster.events[-1][3]))
        self.assertEqual(DELETED, cluster.events[-1][0])

    def test_orphan(self) -> None:
        """Orphan propagation leaves the dependents, without the owner reference."""
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web"))
        cluster.controllers.delete(DEPLOYMENTS, "default", "web", propagation="Orphan")
        self.assertIsNone(cluster.get(DEPLOYMENTS, "default", "web"))
        (rs,) = cluster.items(REPLICA_SETS, "default")
        self.assertNotIn("ownerReferences", rs["metadata"])
        self.assertEqual(2, len(cluster.items(PODS, "default")))

    def test_dangling_owner(self) -> None:
        """An object created with an owner that does not exist is collected."""
        cluster = self.cluster()
        ghost = {"metadata": {"name": "ghost", "uid": "no-such-uid"}}
        created = self.config_map(cluster, "orphaned", (ghost,))
        self.assertIsNone(cluster.get(CONFIG_MAPS, "default", created["metadata"]["name"]))

    def test_unknown_owner_kind_kept(self) -> None:
        """An owner of a kind nothing serves cannot be checked, so the object stays."""
        cluster = self.cluster()
        cluster.create(
            CONFIG_MAPS,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "kept",
                    "namespace": "default",
                    "ownerReferences": [
                        {"apiVersion": "k3s.cattle.io/v1", "kind": "Addon", "name": "x", "uid": "u"}
                    ],
                },
            },
        )
        self.assertIsNotNone(cluster.get(CONFIG_MAPS, "default", "kept"))

    def test_other_owner_remains(self) -> None:
        """An object with another owner left keeps living, without the dangling reference."""
        cluster = self.cluster()
        first = self.config_map(cluster, "first")
        second = self.config_map(cluster, "second")
        self.config_map(cluster, "shared", (first, second))
        cluster.store.delete(CONFIG_MAPS, "default", "first")
        kept = cluster.get(CONFIG_MAPS, "default", "shared")
        assert kept is not None
        self.assertEqual(
            [second["metadata"]["uid"]],
            [ref["uid"] for ref in kept["metadata"]["ownerReferences"]],
        )

    def test_preconditions(self) -> None:
        """Preconditions are checked against the object before anything is written."""
        cluster = self.cluster()
        self.config_map(cluster, "owner")
        before = cluster.writes()
        error = self.assertRaises(
            APIError,
            cluster.controllers.delete,
            CONFIG_MAPS,
            "default",
            "owner",
            {"uid": "other"},
            None,
            "Foreground",
        )
        self.assertEqual(409, error.code)
        self.assertEqual(before, cluster.writes())


class NodeTests(IdentityTestCase):
    def seeds(self) -> tuple:
        return BASE_SEEDS + TWO_NODES + (lease_seed("node-1"), lease_seed("node-2"))

    def test_heartbeat_cost(self) -> None:
        """
        A heartbeat call writes nothing until a report is due; then one
        status write per Node and one renewal per Lease; then nothing again
        for five minutes.
        """
        cluster = self.cluster(self.seeds())
        controllers = cluster.controllers
        start = NOW.timestamp()
        # The Nodes' last heartbeat was at 03:00:00, so the next is due at 03:05:00.
        due = datetime(2024, 1, 2, 3, 5, 0, tzinfo=timezone.utc).timestamp()
        self.assertEqual(0, controllers.heartbeat(start))
        self.assertEqual(0, controllers.heartbeat(due - 1))
        before = cluster.writes()
        self.assertEqual(4, controllers.heartbeat(due))
        self.assertEqual(before + 4, cluster.writes())
        for node in cluster.items(NODES):
            self.assertEqual(
                {"2024-01-02T03:05:00Z"},
                {item["lastHeartbeatTime"] for item in node["status"]["conditions"]},
            )
            self.assertEqual(
                {"2023-12-31T00:00:00Z"},
                {item["lastTransitionTime"] for item in node["status"]["conditions"]},
            )
        for lease in cluster.items(LEASES, "kube-node-lease"):
            self.assertEqual("2024-01-02T03:05:00.000000Z", lease["spec"]["renewTime"])
        self.assertEqual(0, controllers.heartbeat(due + 1))
        self.assertEqual(0, controllers.heartbeat(due + NODE_STATUS_REPORT_INTERVAL - 1))
        self.assertEqual(4, controllers.heartbeat(due + NODE_STATUS_REPORT_INTERVAL))

    def test_heartbeat_spread(self) -> None:
        """
        Clusters whose Nodes' last heartbeat is long past report within the
        next interval, at a point that depends on the cluster, not all at once.
        """
        cluster = self.cluster(self.seeds())
        late = NOW.timestamp() + 86400
        first_due = None
        for step in range(int(NODE_STATUS_REPORT_INTERVAL) + 1):
            if cluster.controllers.heartbeat(late + step):
                first_due = step
                break
        self.assertIsNotNone(first_due)

    def test_lease_renewed_on_read(self) -> None:
        """
        A read that can return node Leases renews the stale ones first, at
        most once per renewal interval; reads of anything else cost nothing.
        """
        cluster = self.cluster(self.seeds())
        controllers = cluster.controllers
        before = cluster.writes()
        controllers.prepare_read(CONFIG_MAPS, "kube-node-lease")
        controllers.prepare_read(LEASES, "kube-system")
        self.assertEqual(before, cluster.writes())
        controllers.prepare_read(LEASES, "kube-node-lease")
        self.assertEqual(before + 2, cluster.writes())
        for lease in cluster.items(LEASES, "kube-node-lease"):
            self.assertEqual("2024-01-02T03:04:05.000000Z", lease["spec"]["renewTime"])
        cluster.clock.advance(5)
        controllers.prepare_read(LEASES, None)
        self.assertEqual(before + 2, cluster.writes())
        cluster.clock.advance(5)
        controllers.prepare_read(LEASES, "")
        self.assertEqual(before + 4, cluster.writes())

    def test_deleted_node(self) -> None:
        """A deleted Node's pods are deleted and its Lease collected; the pods come back elsewhere."""
        cluster = self.cluster(self.seeds())
        node = cluster.get(NODES, "", "node-1")
        assert node is not None
        lease = cluster.get(LEASES, "kube-node-lease", "node-1")
        assert lease is not None
        cluster.store.update(
            LEASES,
            "kube-node-lease",
            "node-1",
            {
                **lease,
                "metadata": {
                    **lease["metadata"],
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": node["metadata"]["uid"]}
                    ],
                },
            },
        )
        cluster.create(DEPLOYMENTS, deployment("web"))
        cluster.store.delete(NODES, "", "node-1")
        self.assertIsNone(cluster.get(LEASES, "kube-node-lease", "node-1"))
        pods = cluster.items(PODS, "default")
        self.assertEqual(2, len(pods))
        self.assertEqual({"node-2"}, {pod["spec"]["nodeName"] for pod in pods})

    def node(self, name: str, ready: Optional[str]) -> dict:
        status: dict = {}
        if ready is not None:
            status["conditions"] = [{"type": "Ready", "status": ready}]
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": status}

    def test_created_node_tainted_until_ready(self) -> None:
        """
        TaintNodesByCondition: a created Node is tainted not-ready
        (NoSchedule) in the create response, whatever its conditions; the
        node lifecycle controller then takes the taint off a Ready one, and
        pods schedule on it.
        """
        cluster = self.cluster(BASE_SEEDS)
        cluster.watch(NODES)
        created = cluster.create(NODES, self.node("node-9", "True"))
        self.assertEqual(
            [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}], created["spec"]["taints"]
        )
        stored = cluster.get(NODES, "", "node-9")
        assert stored is not None
        self.assertNotIn("taints", stored["spec"])
        self.assertEqual([("ADDED", "node-9"), ("MODIFIED", "node-9")], [(e[0], e[3]) for e in cluster.events])
        cluster.create(DEPLOYMENTS, deployment("web", replicas=1))
        (pod,) = cluster.items(PODS, "default")
        self.assertEqual("node-9", pod["spec"]["nodeName"])

    def test_node_taints_follow_conditions(self) -> None:
        """
        A Node that is not Ready keeps the taint (or gets the unreachable
        one when its readiness is unknown); a cordoned Node gets the
        unschedulable taint; other taints are left alone.
        """
        cluster = self.cluster(BASE_SEEDS)
        own = {"key": "example.com/mine", "effect": "NoSchedule"}
        node = self.node("node-8", "False")
        node["spec"] = {"taints": [own]}
        cluster.create(NODES, node)
        stored = cluster.get(NODES, "", "node-8")
        assert stored is not None
        self.assertEqual(
            [own, {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}], stored["spec"]["taints"]
        )
        unknown = {**stored, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
        cluster.store.update(NODES, "", "node-8", unknown, subresource="status")
        stored = cluster.get(NODES, "", "node-8")
        assert stored is not None
        self.assertEqual(
            [own, {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}], stored["spec"]["taints"]
        )
        ready = {**stored, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        cluster.store.update(NODES, "", "node-8", ready, subresource="status")
        stored = cluster.get(NODES, "", "node-8")
        assert stored is not None
        cluster.store.update(NODES, "", "node-8", {**stored, "spec": {**stored["spec"], "unschedulable": True}})
        stored = cluster.get(NODES, "", "node-8")
        assert stored is not None
        self.assertEqual(
            [own, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}], stored["spec"]["taints"]
        )


class SchedulerTests(IdentityTestCase):
    def test_binding_keeps_generation(self) -> None:
        """
        The scheduler binds through pods/binding, which neither bumps the
        pod's generation nor goes through the pod strategy; the pod is
        marked scheduled.
        """
        cluster = self.cluster()
        cluster.watch(PODS)
        cluster.create(DEPLOYMENTS, deployment("web", replicas=1))
        (pod,) = cluster.items(PODS, "default")
        self.assertEqual(1, pod["metadata"]["generation"])
        self.assertIn(pod["spec"]["nodeName"], ("node-1", "node-2"))
        bound = [obj for event, obj in cluster.objects if event == "MODIFIED"][0]
        self.assertEqual(1, bound["metadata"]["generation"])
        scheduled = condition_of(bound, "PodScheduled")
        assert scheduled is not None
        self.assertEqual(("True", None), (scheduled["status"], scheduled["lastProbeTime"]))

    def test_binding_conflicts(self) -> None:
        cluster = self.cluster()
        cluster.create(DEPLOYMENTS, deployment("web", replicas=1))
        (pod,) = cluster.items(PODS, "default")
        error = self.assertRaises(
            APIError, cluster.store.bind_pod, PODS, "default", pod["metadata"]["name"], "node-2"
        )
        self.assertEqual(409, error.code)
        self.assertIn('on pods/binding "', error.message)
        self.assertIn("is already assigned to node", error.message)


@functools.cache
def default_template() -> ClusterTemplate:
    """The default template, loaded once (it is immutable and shared)."""
    return ClusterTemplate.load(TEMPLATE_PATH, validate_schema=False)


@functools.cache
def import_manifest() -> AgentSettings:
    """The import manifest Rancher v2.14.4 serves, parsed once."""
    return parse_import_manifest(IMPORT_MANIFEST_PATH.read_text(encoding="utf-8"))


class BootstrapTests(IdentityTestCase):
    @property
    def manifest(self) -> AgentSettings:
        return import_manifest()

    def template_cluster(self) -> Cluster:
        """A cluster made from the default template."""
        seed_set = default_template().seed_for(ClusterContext("sim-1", "sim-1-id", NOW))
        store = ObjectStore(
            seed_set.entries, seed_set.render, seed_set.initial_resource_version, now=lambda: NOW
        )
        return Cluster(self.identity, registry=seed_set.registry, store=store)

    def test_needs_controllers(self) -> None:
        self.assertRaises(RuntimeError, bootstrap, ObjectStore(), self.identity, ())

    def test_cattle_account(self) -> None:
        """
        The announced token is the one stored in the cattle token Secret,
        and it authenticates as C{cattle-system/cattle}, whose uid it names.
        """
        cluster = self.template_cluster()
        bootstrap(cluster.store, self.identity, self.manifest.objects)
        account = self.identity.ensure_cattle_account()
        secret = cluster.get(SECRETS, "cattle-system", account.secret_name)
        assert secret is not None
        token = _decode(secret["data"]["token"])
        self.assertEqual(self.identity.tunnel_params().token, token)
        self.assertEqual(TOKEN_TYPE, secret["type"])
        self.assertEqual(self.identity.ca_pem.decode("ascii"), _decode(secret["data"]["ca.crt"]))
        self.assertEqual(
            {NAME_ANNOTATION: "cattle", UID_ANNOTATION: account.service_account_uid},
            secret["metadata"]["annotations"],
        )
        claims = self.identity.verify_token(token, NOW)
        assert claims is not None
        service_account = cluster.get(SERVICE_ACCOUNTS, "cattle-system", "cattle")
        assert service_account is not None
        self.assertEqual(service_account["metadata"]["uid"], claims.service_account_uid)
        self.assertEqual(account.secret_name, claims.secret_name)
        # The manifest created the account, so kubectl recorded it.
        self.assertEqual(
            '{"apiVersion":"v1","kind":"ServiceAccount",'
            '"metadata":{"annotations":{},"name":"cattle","namespace":"cattle-system"}}\n',
            service_account["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        )

    def test_namespaces(self) -> None:
        """Every namespace, the template's included, has the CA and a default account."""
        cluster = self.template_cluster()
        bootstrap(cluster.store, self.identity, self.manifest.objects)
        names = sorted(item["metadata"]["name"] for item in cluster.items(NAMESPACES))
        self.assertEqual(
            [
                "cattle-system",
                "default",
                "demo",
                "kube-node-lease",
                "kube-public",
                "kube-system",
                "monitoring",
            ],
            names,
        )
        for name in names:
            config_map = cluster.get(CONFIG_MAPS, name, "kube-root-ca.crt")
            assert config_map is not None
            self.assertEqual(self.identity.ca_pem.decode("ascii"), config_map["data"]["ca.crt"])
            self.assertIsNotNone(cluster.get(SERVICE_ACCOUNTS, name, "default"))
        namespace = cluster.get(NAMESPACES, "", "cattle-system")
        assert namespace is not None
        self.assertEqual(
            '{"apiVersion":"v1","kind":"Namespace","metadata":{"annotations":{},"name":"cattle-system"}}\n',
            namespace["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        )

    def test_import_objects(self) -> None:
        """
        Every manifest object exists as kubectl apply created it, and the
        agent Deployment is rolled out with its pod, keeping its image.
        """
        cluster = self.template_cluster()
        bootstrap(cluster.store, self.identity, self.manifest.objects)
        registry = cluster.controllers.registry
        for manifest in self.manifest.objects:
            resource_type = registry.by_api_version(manifest["apiVersion"], manifest["kind"])
            assert resource_type is not None
            namespace = manifest["metadata"].get("namespace", "") if resource_type.namespaced else ""
            stored = cluster.get(resource_type, namespace, manifest["metadata"]["name"])
            assert stored is not None
            recorded = json.loads(
                stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            )
            self.assertEqual(manifest["kind"], recorded["kind"])
        agent = cluster.get(DEPLOYMENTS, "cattle-system", "cattle-cluster-agent")
        assert agent is not None
        (container,) = agent["spec"]["template"]["spec"]["containers"]
        self.assertEqual(
            ("cluster-register", self.manifest.agent_image),
            (container["name"], container["image"]),
        )
        self.assertEqual(1, agent["status"]["availableReplicas"])
        available = condition_of(agent, "Available")
        assert available is not None
        self.assertEqual("True", available["status"])
        (pod,) = cluster.items(PODS, "cattle-system")
        self.assertEqual("Running", pod["status"]["phase"])
        self.assertEqual("cattle", pod["spec"]["serviceAccountName"])
        self.assertTrue(pod["spec"]["nodeName"].startswith("sim-1-server-"))
        # The cluster-scoped binding the manifest gives a namespace is stored without one.
        binding = cluster.get(CLUSTER_ROLE_BINDINGS, "", "cattle-admin-binding")
        assert binding is not None
        self.assertNotIn("namespace", binding["metadata"])

    def test_agent_redeploy(self) -> None:
        """
        Rancher's later C{kubectl apply} of the agent (new credentials,
        C{CATTLE_FEATURES}) rolls the Deployment to a new ReplicaSet whose
        pod runs the same C{cluster-register} image; the old pod goes.
        """
        cluster = self.template_cluster()
        bootstrap(cluster.store, self.identity, self.manifest.objects)
        (old_pod,) = cluster.items(PODS, "cattle-system")
        redeployed = parse_import_manifest(
            (ROOT / "tests" / "fixtures" / "agent-manifests" / "redeployed-v2.14.4.yaml").read_text(
                encoding="utf-8"
            )
        )
        (agent_manifest,) = [item for item in redeployed.objects if item["kind"] == "Deployment"]
        current = cluster.get(DEPLOYMENTS, "cattle-system", "cattle-cluster-agent")
        assert current is not None
        # What the strategic-merge patch kubectl sends produces here: the
        # manifest's spec over the stored one.
        cluster.store.update(
            DEPLOYMENTS, "cattle-system", "cattle-cluster-agent", {**current, "spec": agent_manifest["spec"]}
        )
        (pod,) = cluster.items(PODS, "cattle-system")
        self.assertNotEqual(old_pod["metadata"]["name"], pod["metadata"]["name"])
        (container,) = pod["spec"]["containers"]
        self.assertEqual(
            ("cluster-register", redeployed.agent_image),
            (container["name"], container["image"]),
        )
        self.assertIn("CATTLE_FEATURES", {item["name"] for item in container["env"]})
        self.assertEqual("Running", pod["status"]["phase"])
        agent = cluster.get(DEPLOYMENTS, "cattle-system", "cattle-cluster-agent")
        assert agent is not None
        self.assertEqual(redeployed.agent_image, agent["spec"]["template"]["spec"]["containers"][0]["image"])
        self.assertEqual("2", agent["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        self.assertEqual(
            (2, 1, 1),
            (
                agent["status"]["observedGeneration"],
                agent["status"]["updatedReplicas"],
                agent["status"]["availableReplicas"],
            ),
        )
        self.assertEqual(
            [0, 1],
            sorted(rs["spec"]["replicas"] for rs in cluster.items(REPLICA_SETS, "cattle-system")),
        )

    def test_last_applied_matches_kubectl(self) -> None:
        """
        The recorded configuration is what kubectl writes: sorted keys, no
        spaces, the defaulted namespace, an empty annotations map, Go's HTML
        escapes and a final newline.
        """
        cluster = self.template_cluster()
        manifest = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "escapes", "labels": {"b": "2", "a": "1"}},
            "data": {"html": "<b>&</b>", "text": "caf\u00e9"},
        }
        bootstrap(cluster.store, self.identity, (manifest,))
        stored = cluster.get(CONFIG_MAPS, "default", "escapes")
        assert stored is not None
        self.assertEqual(
            '{"apiVersion":"v1","data":{"html":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e","text":"caf\u00e9"},'
            '"kind":"ConfigMap","metadata":{"annotations":{},"labels":{"a":"1","b":"2"},"name":"escapes",'
            '"namespace":"default"}}\n',
            stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        )

    def test_idempotent(self) -> None:
        """A second bootstrap writes nothing."""
        cluster = self.template_cluster()
        bootstrap(cluster.store, self.identity, self.manifest.objects)
        before = cluster.writes()
        exported = cluster.store.export_changes()
        bootstrap(cluster.store, self.identity, self.manifest.objects)
        self.assertEqual(before, cluster.writes())
        self.assertEqual(exported, cluster.store.export_changes())

    def test_template_left_alone(self) -> None:
        """
        The template's workloads carry status and keep it: no new
        ReplicaSets or pods appear in the template's namespaces.
        """
        cluster = self.template_cluster()
        before = {
            (item["metadata"]["namespace"], item["metadata"]["name"])
            for resource_type in (REPLICA_SETS, PODS)
            for item in cluster.items(resource_type)
        }
        bootstrap(cluster.store, self.identity, self.manifest.objects)
        after = {
            (item["metadata"]["namespace"], item["metadata"]["name"])
            for resource_type in (REPLICA_SETS, PODS)
            for item in cluster.items(resource_type)
        }
        self.assertEqual({"cattle-system"}, {namespace for namespace, _ in after - before})
        self.assertEqual(set(), before - after)

    def test_template_daemon_set_follows_new_node(self) -> None:
        """
        A Node joining gets a pod of the template's DaemonSet; the pods the
        template has keep running (its ControllerRevision is recognised as
        current although its hash was computed by a real controller).
        """
        cluster = self.template_cluster()
        bootstrap(cluster.store, self.identity, self.manifest.objects)
        name = "svclb-traefik-2c84b6cf"
        before = {
            pod["metadata"]["name"]
            for pod in cluster.items(PODS, "kube-system")
            if pod["metadata"]["name"].startswith(name)
        }
        self.assertEqual(2, len(before))
        cluster.store.create(
            NODES,
            "",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "sim-1-agent-1", "labels": {"kubernetes.io/os": "linux"}},
                "spec": {"podCIDR": "10.42.5.0/24"},
            },
        )
        after = {
            pod["metadata"]["name"]: pod
            for pod in cluster.items(PODS, "kube-system")
            if pod["metadata"]["name"].startswith(name)
        }
        self.assertTrue(before < set(after))
        (new,) = set(after) - before
        self.assertEqual("sim-1-agent-1", after[new]["spec"]["nodeName"])
        self.assertEqual("6cd8b8b5b9", after[new]["metadata"]["labels"]["controller-revision-hash"])
        self.assertEqual(1, len(cluster.items(CONTROLLER_REVISIONS, "kube-system")))
        daemon = cluster.get(DAEMON_SETS, "kube-system", name)
        assert daemon is not None
        status = daemon["status"]
        self.assertEqual((3, 3), (status["desiredNumberScheduled"], status["numberReady"]))

    def test_template_deployment_touched(self) -> None:
        """
        A template Deployment whose metadata a client changes keeps its
        ReplicaSet and pods: the template's ReplicaSet is recognised as the
        current one.
        """
        cluster = self.template_cluster()
        bootstrap(cluster.store, self.identity, self.manifest.objects)
        pods = {pod["metadata"]["name"] for pod in cluster.items(PODS, "kube-system")}
        replica_sets = {rs["metadata"]["name"] for rs in cluster.items(REPLICA_SETS, "kube-system")}
        for name in ("coredns", "local-path-provisioner", "metrics-server", "traefik"):
            current = cluster.get(DEPLOYMENTS, "kube-system", name)
            assert current is not None
            labels = {**current["metadata"].get("labels", {}), "touched": "yes"}
            touched = {**current, "metadata": {**current["metadata"], "labels": labels}}
            cluster.store.update(DEPLOYMENTS, "kube-system", name, touched)
            updated = cluster.get(DEPLOYMENTS, "kube-system", name)
            assert updated is not None
            available = condition_of(updated, "Available")
            assert available is not None
            self.assertEqual("True", available["status"])
        self.assertEqual(pods, {pod["metadata"]["name"] for pod in cluster.items(PODS, "kube-system")})
        self.assertEqual(
            replica_sets, {rs["metadata"]["name"] for rs in cluster.items(REPLICA_SETS, "kube-system")}
        )

    def test_node_leases(self) -> None:
        """Nodes without a Lease get one, as their kubelet would create it."""
        cluster = self.cluster(BASE_SEEDS + TWO_NODES + (lease_seed("node-1"),))
        bootstrap(cluster.store, self.identity, ())
        lease = cluster.get(LEASES, "kube-node-lease", "node-2")
        assert lease is not None
        self.assertEqual(
            {
                "holderIdentity": "node-2",
                "leaseDurationSeconds": 40,
                "renewTime": "2024-01-02T03:04:05.000000Z",
            },
            lease["spec"],
        )
        self.assertEqual("Node", lease["metadata"]["ownerReferences"][0]["kind"])

    def test_template_cattle_account_replaced(self) -> None:
        """A cattle ServiceAccount with another uid is replaced by the announced one."""
        stale = seed(SERVICE_ACCOUNTS, "cattle-system", "cattle")
        cluster = self.cluster(BASE_SEEDS + (namespace_seed("cattle-system"), stale))
        bootstrap(cluster.store, self.identity, ())
        account = cluster.get(SERVICE_ACCOUNTS, "cattle-system", "cattle")
        assert account is not None
        self.assertEqual(
            self.identity.ensure_cattle_account().service_account_uid,
            account["metadata"]["uid"],
        )

    def test_no_warnings(self) -> None:
        """Bootstrapping the default template makes no controller complain."""
        cluster = self.template_cluster()
        with capturedLogs() as events:
            bootstrap(cluster.store, self.identity, self.manifest.objects)
        self.assertEqual([], [event for event in events if event["log_level"] >= LogLevel.warn])


class HelperTests(SynchronousTestCase):
    def test_go_json(self) -> None:
        self.assertEqual(
            '{"a":[1,true,null],"b":"\\u003c\\u2028"}',
            go_json({"b": "<\u2028", "a": [1, True, None]}),
        )

    def test_short_hash(self) -> None:
        """Stable, in the pod-template-hash alphabet, and different for different input."""
        value = short_hash({"spec": {"containers": []}})
        self.assertEqual(value, short_hash({"spec": {"containers": []}}))
        self.assertNotEqual(value, short_hash({"spec": {"containers": [{}]}}))
        self.assertTrue(set(value) <= set("bcdfghjklmnpqrstvwxz2456789"))
        self.assertLessEqual(len(value), 10)
