"""
Tests for L{scaleagent.kube.discovery}: the discovery documents compared with
what a real API server answers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube import discovery
from scaleagent.kube.resources import BUILTIN_REGISTRY

from .test_kube_resources import widget_crd

FIXTURES = Path(__file__).parent / "fixtures" / "discovery"

# What client-go (kubectl 1.33, Rancher 2.14) sends first for /api and /apis.
CLIENT_GO_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)

METRICS_API_SERVICE = {
    "apiVersion": "apiregistration.k8s.io/v1",
    "kind": "APIService",
    "metadata": {"name": "v1beta1.metrics.k8s.io"},
    "spec": {
        "group": "metrics.k8s.io",
        "version": "v1beta1",
        "groupPriorityMinimum": 100,
        "versionPriority": 100,
        "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443},
    },
}


def fixture(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


class LegacyDiscoveryTests(SynchronousTestCase):
    """
    C{/api}, C{/apis}, C{/apis/<group>} and the resource lists.
    """

    def test_core_resources_match_real_server(self) -> None:
        """
        C{/api/v1} is what a real API server answers, byte for byte (but
        for the trailing newline of the server's encoder).
        """
        expected = (FIXTURES / "core-v1-resources.json").read_bytes().strip()
        document = discovery.documents(BUILTIN_REGISTRY).resources("", "v1")
        assert document is not None
        self.assertEqual(document.body, expected + b"\n")
        self.assertEqual(document.content_type, "application/json")

    def test_api_versions(self) -> None:
        self.assertEqual(
            discovery.api_versions("10.0.0.11:6443"),
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.11:6443"},
                ],
            },
        )

    def test_group_list(self) -> None:
        document = discovery.api_group_list(BUILTIN_REGISTRY)
        self.assertEqual((document["kind"], document["apiVersion"]), ("APIGroupList", "v1"))
        names = [group["name"] for group in document["groups"]]
        self.assertEqual(
            names[:6],
            [
                "apiregistration.k8s.io",
                "apps",
                "events.k8s.io",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "autoscaling",
            ],
        )
        autoscaling = document["groups"][5]
        self.assertEqual(
            autoscaling,
            {
                "name": "autoscaling",
                "versions": [
                    {"groupVersion": "autoscaling/v2", "version": "v2"},
                    {"groupVersion": "autoscaling/v1", "version": "v1"},
                ],
                "preferredVersion": {"groupVersion": "autoscaling/v2", "version": "v2"},
            },
        )

    def test_group(self) -> None:
        self.assertEqual(
            discovery.api_group(BUILTIN_REGISTRY, "apps"),
            {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            },
        )
        self.assertIsNone(discovery.api_group(BUILTIN_REGISTRY, "example.com"))
        self.assertIsNone(discovery.api_group(BUILTIN_REGISTRY, ""))

    def test_group_resources(self) -> None:
        document = discovery.api_resource_list(BUILTIN_REGISTRY, "apps", "v1")
        assert document is not None
        self.assertEqual(
            (document["kind"], document["apiVersion"], document["groupVersion"]),
            ("APIResourceList", "v1", "apps/v1"),
        )
        by_name = {entry["name"]: entry for entry in document["resources"]}
        self.assertEqual(
            by_name["deployments/scale"],
            {
                "name": "deployments/scale",
                "singularName": "",
                "namespaced": True,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            },
        )
        self.assertEqual(by_name["deployments"]["storageVersionHash"], "8aSe+NMegvE=")
        self.assertEqual([entry["name"] for entry in document["resources"]], sorted(by_name))
        self.assertIsNone(discovery.api_resource_list(BUILTIN_REGISTRY, "apps", "v1beta1"))

    def test_custom_resources(self) -> None:
        """
        Custom resources are listed as the apiextensions server lists them:
        verbs unsorted, the resource then its status and scale.
        """
        registry = BUILTIN_REGISTRY.with_crd(widget_crd())
        document = discovery.api_resource_list(registry, "example.com", "v1")
        assert document is not None
        self.assertEqual(
            document["resources"],
            [
                {
                    "name": "widgets",
                    "singularName": "widget",
                    "namespaced": True,
                    "kind": "Widget",
                    "verbs": [
                        "delete",
                        "deletecollection",
                        "get",
                        "list",
                        "patch",
                        "create",
                        "update",
                        "watch",
                    ],
                    "shortNames": ["wd"],
                    "categories": ["all"],
                    "storageVersionHash": "gIwvi5rymmg=",
                },
                {
                    "name": "widgets/status",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Widget",
                    "verbs": ["get", "patch", "update"],
                },
                {
                    "name": "widgets/scale",
                    "singularName": "",
                    "namespaced": True,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                },
            ],
        )
        # CRD groups (priority 1000) come after the built-ins.
        groups = registry.groups()
        self.assertEqual(groups[-1], "example.com")


class AggregatedDiscoveryTests(SynchronousTestCase):
    """
    The aggregated documents client-go asks for first.
    """

    def test_apps(self) -> None:
        document = discovery.aggregated_discovery(BUILTIN_REGISTRY, core=False)
        self.assertEqual(
            (document["kind"], document["apiVersion"], document["metadata"]),
            ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2", {}),
        )
        apps = [item for item in document["items"] if item["metadata"].get("name") == "apps"]
        self.assertEqual(apps, [fixture("aggregated-apps.json")])

    def test_order_matches_legacy(self) -> None:
        document = discovery.aggregated_discovery(BUILTIN_REGISTRY, core=False)
        names = [item["metadata"]["name"] for item in document["items"]]
        legacy = [group["name"] for group in discovery.api_group_list(BUILTIN_REGISTRY)["groups"]]
        self.assertEqual(names, legacy)
        autoscaling = document["items"][names.index("autoscaling")]
        self.assertEqual([version["version"] for version in autoscaling["versions"]], ["v2", "v1"])

    def test_core(self) -> None:
        document = discovery.aggregated_discovery(BUILTIN_REGISTRY, core=True)
        self.assertEqual(len(document["items"]), 1)
        core = document["items"][0]
        self.assertEqual(core["metadata"], {"creationTimestamp": None})
        version = core["versions"][0]
        self.assertEqual((version["version"], version["freshness"]), ("v1", "Current"))
        pods = [resource for resource in version["resources"] if resource["resource"] == "pods"][0]
        eviction = [sub for sub in pods["subresources"] if sub["subresource"] == "eviction"][0]
        self.assertEqual(
            eviction,
            {
                "subresource": "eviction",
                "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
                "verbs": ["create"],
            },
        )
        self.assertNotIn("storageVersionHash", pods)

    def test_v2beta1(self) -> None:
        """The beta document differs only in its apiVersion."""
        v2 = discovery.aggregated_discovery(BUILTIN_REGISTRY, core=False)
        beta = discovery.aggregated_discovery(BUILTIN_REGISTRY, core=False, version="v2beta1")
        self.assertEqual(beta["apiVersion"], "apidiscovery.k8s.io/v2beta1")
        self.assertEqual(dict(beta, apiVersion=v2["apiVersion"]), v2)
        self.assertRaises(
            ValueError,
            discovery.aggregated_discovery,
            BUILTIN_REGISTRY,
            core=False,
            version="v3",
        )

    def test_custom_resource(self) -> None:
        """
        The apiextensions server fills in responseKind's group and version.
        """
        registry = BUILTIN_REGISTRY.with_crd(widget_crd())
        document = discovery.aggregated_discovery(registry, core=False)
        item = document["items"][-1]
        self.assertEqual(item["metadata"]["name"], "example.com")
        widgets = item["versions"][0]["resources"][0]
        self.assertEqual(
            widgets["responseKind"],
            {"group": "example.com", "version": "v1", "kind": "Widget"},
        )
        self.assertEqual(
            [sub["subresource"] for sub in widgets["subresources"]],
            ["status", "scale"],
        )
        self.assertEqual(
            widgets["subresources"][0]["responseKind"],
            {"group": "example.com", "version": "v1", "kind": "Widget"},
        )

    def test_aggregated_api(self) -> None:
        registry = BUILTIN_REGISTRY.with_api_service(METRICS_API_SERVICE)
        document = discovery.aggregated_discovery(registry, core=False)
        metrics = document["items"][-1]
        self.assertEqual(metrics["metadata"]["name"], "metrics.k8s.io")
        self.assertEqual(
            [r["resource"] for r in metrics["versions"][0]["resources"]],
            ["nodes", "pods"],
        )

    def test_negotiation(self) -> None:
        self.assertEqual(discovery.negotiate_aggregated(CLIENT_GO_ACCEPT), "v2")
        self.assertEqual(
            discovery.negotiate_aggregated(CLIENT_GO_ACCEPT, served=("v2beta1",)),
            "v2beta1",
        )
        # kubectl 1.28 only knows the beta.
        self.assertEqual(
            discovery.negotiate_aggregated(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                "application/json"
            ),
            "v2beta1",
        )
        self.assertIsNone(discovery.negotiate_aggregated("application/json, */*"))
        self.assertIsNone(
            discovery.negotiate_aggregated("application/vnd.kubernetes.protobuf, application/json"),
        )


class APIServiceObjectTests(SynchronousTestCase):
    """
    The APIServices a real cluster lists.
    """

    def test_local(self) -> None:
        objects = discovery.api_service_objects(BUILTIN_REGISTRY, "2025-01-01T00:00:00Z")
        names = [obj["metadata"]["name"] for obj in objects]
        self.assertEqual(names, sorted(names))
        self.assertEqual(
            names[:4],
            ["v1.", "v1.admissionregistration.k8s.io", "v1.apiextensions.k8s.io", "v1.apps"],
        )
        self.assertIn("v2.autoscaling", names)
        self.assertIn("v1beta3.flowcontrol.apiserver.k8s.io", names)
        # The aggregator serves its own group; it has no APIService.
        self.assertNotIn("v1.apiregistration.k8s.io", names)
        core = objects[0]
        self.assertEqual(
            core,
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {
                    "name": "v1.",
                    "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"},
                },
                "spec": {"version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1},
                "status": {
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "True",
                            "lastTransitionTime": "2025-01-01T00:00:00Z",
                            "reason": "Local",
                            "message": "Local APIServices are always available",
                        }
                    ]
                },
            },
        )

    def test_custom_and_aggregated(self) -> None:
        registry = BUILTIN_REGISTRY.with_crd(widget_crd()).with_api_service(METRICS_API_SERVICE)
        objects = {
            obj["metadata"]["name"]: obj for obj in discovery.api_service_objects(registry, "t")
        }
        widget = objects["v1.example.com"]
        self.assertEqual(
            widget["metadata"]["labels"],
            {"kube-aggregator.kubernetes.io/automanaged": "true"},
        )
        self.assertEqual(
            widget["spec"],
            {
                "group": "example.com",
                "version": "v1",
                "groupPriorityMinimum": 1000,
                "versionPriority": 100,
            },
        )
        self.assertIn("v1beta1.example.com", objects)
        # The template holds the metrics-server APIService itself.
        self.assertNotIn("v1beta1.metrics.k8s.io", objects)


class CachedDocumentTests(SynchronousTestCase):
    """
    Serialised documents are built once per registry and shared.
    """

    def test_shared(self) -> None:
        documents = discovery.documents(BUILTIN_REGISTRY)
        self.assertIs(documents, discovery.documents(BUILTIN_REGISTRY))
        self.assertIs(documents.apis, documents.apis)
        self.assertIs(
            documents.aggregated(core=False, version="v2"),
            documents.aggregated(core=False, version="v2"),
        )
        self.assertIsNot(documents, discovery.documents(BUILTIN_REGISTRY, "10.0.0.11:6443"))

    def test_per_registry(self) -> None:
        first = discovery.documents(BUILTIN_REGISTRY.with_crd(widget_crd()))
        second = discovery.documents(BUILTIN_REGISTRY.with_crd(widget_crd()))
        self.assertIs(first, second)
        self.assertIsNot(first, discovery.documents(BUILTIN_REGISTRY))
        self.assertIn(b'"example.com"', first.apis.body)
        self.assertNotIn(b'"example.com"', discovery.documents(BUILTIN_REGISTRY).apis.body)

    def test_bytes(self) -> None:
        documents = discovery.documents(BUILTIN_REGISTRY, "10.0.0.11:6443")
        self.assertEqual(json.loads(documents.api.body), discovery.api_versions("10.0.0.11:6443"))
        self.assertEqual(
            json.loads(documents.apis.body),
            discovery.api_group_list(BUILTIN_REGISTRY),
        )
        apps = documents.group("apps")
        assert apps is not None
        self.assertEqual(json.loads(apps.body), discovery.api_group(BUILTIN_REGISTRY, "apps"))
        self.assertIsNone(documents.group("example.com"))
        self.assertIsNone(documents.resources("example.com", "v1"))

    def test_aggregated_headers(self) -> None:
        document = discovery.documents(BUILTIN_REGISTRY).aggregated(core=True, version="v2beta1")
        self.assertEqual(
            document.content_type,
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        )
        body = document.body.rstrip(b"\n")
        self.assertEqual(document.etag, '"' + hashlib.sha512(body).hexdigest().upper() + '"')
        self.assertEqual(
            json.loads(body),
            discovery.aggregated_discovery(BUILTIN_REGISTRY, core=True, version="v2beta1"),
        )
