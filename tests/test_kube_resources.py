"""
Tests for L{scaleagent.kube.resources}: the built-in resource table and the
registry's lookups and CRD layering.
"""

from __future__ import annotations

import copy

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube.resources import (
    BUILTIN_REGISTRY,
    FULL_VERBS,
    InvalidCustomResourceDefinition,
    PrinterColumn,
    ResourceType,
    Subresource,
    UnsupportedAPIService,
    compare_versions,
    sort_versions,
    storage_version_hash,
)


# What the API server describes CRD columns with when the CRD does not.
COLUMN_DESCRIPTION = "Custom resource definition column (in JSONPath format): "


def widget_crd(
    name: str = "widgets.example.com",
    versions: list | None = None,
    scope: str = "Namespaced",
) -> dict:
    """A CustomResourceDefinition in the shape the API returns."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": name.partition(".")[2],
            "names": {
                "plural": name.partition(".")[0],
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
                "shortNames": ["wd"],
                "categories": ["all"],
            },
            "scope": scope,
            "versions": versions
            if versions is not None
            else [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas"}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Replicas",
                            "type": "integer",
                            "jsonPath": ".spec.replicas",
                            "priority": 1,
                        },
                    ],
                },
                {"name": "v1beta1", "served": True, "storage": False},
                {"name": "v1alpha1", "served": False, "storage": False},
            ],
        },
    }


def by_kind(group: str, kind: str, version: str | None = None) -> ResourceType:
    found = BUILTIN_REGISTRY.by_kind(group, kind, version)
    assert found is not None
    return found


class BuiltinResourceTests(SynchronousTestCase):
    """
    The built-in table reports what a Kubernetes 1.28 API server's discovery
    reports.
    """

    def test_pods(self) -> None:
        pods = BUILTIN_REGISTRY.lookup("", "v1", "pods")
        assert pods is not None
        self.assertEqual(
            (
                pods.kind,
                pods.namespaced,
                pods.verbs,
                pods.short_names,
                pods.categories,
                pods.singular,
            ),
            ("Pod", True, FULL_VERBS, ("po",), ("all",), "pod"),
        )
        self.assertEqual(
            pods.subresources,
            (
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "portforward",
                "proxy",
                "status",
            ),
        )
        eviction = pods.subresource("eviction")
        assert eviction is not None
        self.assertEqual(
            (eviction.group, eviction.version, eviction.kind, eviction.verbs),
            ("policy", "v1", "Eviction", ("create",)),
        )
        log = pods.subresource("log")
        assert log is not None
        self.assertEqual(log.verbs, ("get",))
        self.assertEqual(pods.storage_version_hash, "xPOwRZ+Yhw8=")

    def test_verb_exceptions(self) -> None:
        """
        Namespaces cannot be deleted as a collection; reviews and bindings are
        create-only and never stored; component statuses are read-only.
        """
        namespaces = BUILTIN_REGISTRY.lookup("", "v1", "namespaces")
        assert namespaces is not None
        self.assertNotIn("deletecollection", namespaces.verbs)
        for group, resource in (
            ("authentication.k8s.io", "tokenreviews"),
            ("authentication.k8s.io", "selfsubjectreviews"),
            ("authorization.k8s.io", "selfsubjectaccessreviews"),
            ("authorization.k8s.io", "subjectaccessreviews"),
            ("", "bindings"),
        ):
            resource_type = BUILTIN_REGISTRY.lookup(group, "v1", resource)
            assert resource_type is not None, resource
            self.assertEqual(resource_type.verbs, ("create",))
            self.assertFalse(resource_type.persisted)
            self.assertEqual(resource_type.storage_version_hash, "")
        statuses = BUILTIN_REGISTRY.lookup("", "v1", "componentstatuses")
        assert statuses is not None
        self.assertEqual(statuses.verbs, ("get", "list"))

    def test_allows(self) -> None:
        deployments = BUILTIN_REGISTRY.lookup("apps", "v1", "deployments")
        assert deployments is not None
        self.assertTrue(deployments.allows("patch"))
        self.assertTrue(deployments.allows("update", "scale"))
        self.assertFalse(deployments.allows("create", "scale"))
        self.assertFalse(deployments.allows("get", "log"))
        token = BUILTIN_REGISTRY.lookup("", "v1", "serviceaccounts")
        assert token is not None
        self.assertTrue(token.allows("create", "token"))

    def test_scale_subresource(self) -> None:
        deployments = BUILTIN_REGISTRY.lookup("apps", "v1", "deployments")
        assert deployments is not None
        scale = deployments.subresource("scale")
        assert scale is not None
        self.assertEqual((scale.group, scale.version, scale.kind), ("autoscaling", "v1", "Scale"))

    def test_storage_version_hashes(self) -> None:
        """
        The hash is the API server's; events.k8s.io events are stored as core
        events, and both autoscaling versions as autoscaling/v2.
        """
        self.assertEqual(storage_version_hash("", "v1", "ConfigMap"), "qFsyl6wFWjQ=")
        core = BUILTIN_REGISTRY.lookup("", "v1", "events")
        events = BUILTIN_REGISTRY.lookup("events.k8s.io", "v1", "events")
        assert core is not None and events is not None
        self.assertEqual(events.storage_version_hash, core.storage_version_hash)
        v1 = BUILTIN_REGISTRY.lookup("autoscaling", "v1", "horizontalpodautoscalers")
        v2 = BUILTIN_REGISTRY.lookup("autoscaling", "v2", "horizontalpodautoscalers")
        assert v1 is not None and v2 is not None
        self.assertEqual(v1.storage_version_hash, v2.storage_version_hash)
        self.assertEqual(v1.group_resource, v2.group_resource)

    def test_no_post_128_resources(self) -> None:
        """
        Resources that a default 1.28 server does not serve are absent.
        """
        for group, version, resource in (
            ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies"),
            ("flowcontrol.apiserver.k8s.io", "v1", "flowschemas"),
            ("networking.k8s.io", "v1", "servicecidrs"),
            ("resource.k8s.io", "v1", "resourceclaims"),
        ):
            self.assertIsNone(BUILTIN_REGISTRY.lookup(group, version, resource))
        self.assertIsNotNone(
            BUILTIN_REGISTRY.lookup("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas"),
        )


class ResourceTypeTests(SynchronousTestCase):
    """
    L{ResourceType} keeps its constructor API and derives what is not given.
    """

    def test_derived_fields(self) -> None:
        widget = ResourceType(
            "example.com",
            "v1",
            "widgets",
            "Widget",
            True,
            subresources=("status", "scale"),
        )
        self.assertEqual(
            (widget.singular, widget.list_kind, widget.api_version),
            ("widget", "WidgetList", "example.com/v1"),
        )
        self.assertEqual(
            [detail.name for detail in widget.subresource_details],
            ["status", "scale"],
        )
        scale = widget.subresource("scale")
        assert scale is not None
        self.assertEqual(scale.kind, "Scale")
        self.assertTrue(widget.has_status)
        self.assertEqual(
            widget.storage_version_hash,
            storage_version_hash("example.com", "v1", "Widget"),
        )

    def test_details_give_names(self) -> None:
        widget = ResourceType(
            "",
            "v1",
            "widgets",
            "Widget",
            True,
            subresource_details=(Subresource("log", verbs=("get",)),),
        )
        self.assertEqual(widget.subresources, ("log",))

    def test_disagreement(self) -> None:
        self.assertRaises(
            ValueError,
            ResourceType,
            "",
            "v1",
            "widgets",
            "Widget",
            True,
            subresources=("status",),
            subresource_details=(Subresource("scale"),),
        )


class LookupTests(SynchronousTestCase):
    """
    Lookups by kind and by the names kubectl accepts.
    """

    def test_by_kind_prefers_preferred_version(self) -> None:
        self.assertEqual(by_kind("autoscaling", "HorizontalPodAutoscaler").version, "v2")
        self.assertEqual(by_kind("flowcontrol.apiserver.k8s.io", "FlowSchema").version, "v1beta3")
        self.assertEqual(by_kind("autoscaling", "HorizontalPodAutoscaler", "v1").version, "v1")
        self.assertIsNone(BUILTIN_REGISTRY.by_kind("apps", "Pod"))

    def test_by_api_version(self) -> None:
        secrets = BUILTIN_REGISTRY.by_api_version("v1", "Secret")
        daemon_sets = BUILTIN_REGISTRY.by_api_version("apps/v1", "DaemonSet")
        assert secrets is not None and daemon_sets is not None
        self.assertEqual((secrets.resource, daemon_sets.resource), ("secrets", "daemonsets"))
        self.assertIsNone(BUILTIN_REGISTRY.by_api_version("apps/v1beta1", "Deployment"))

    def test_resolve(self) -> None:
        def names(text: str) -> list[tuple[str, str, str]]:
            return [(rt.group, rt.version, rt.resource) for rt in BUILTIN_REGISTRY.resolve(text)]

        self.assertEqual(names("deploy"), [("apps", "v1", "deployments")])
        self.assertEqual(names("Deployment"), [("apps", "v1", "deployments")])
        self.assertEqual(names("deployments.apps"), [("apps", "v1", "deployments")])
        self.assertEqual(
            names("hpa.v1.autoscaling"),
            [("autoscaling", "v1", "horizontalpodautoscalers")],
        )
        self.assertEqual(
            names("crds"),
            [("apiextensions.k8s.io", "v1", "customresourcedefinitions")],
        )
        # Core events come before events.k8s.io ones, as in discovery.
        self.assertEqual(names("ev"), [("", "v1", "events"), ("events.k8s.io", "v1", "events")])
        self.assertEqual(names("nonsense"), [])

    def test_by_short_name(self) -> None:
        policies = BUILTIN_REGISTRY.by_short_name("netpol")
        assert policies is not None
        self.assertEqual(policies.resource, "networkpolicies")
        self.assertIsNone(BUILTIN_REGISTRY.by_short_name("pod"))

    def test_membership(self) -> None:
        pods = BUILTIN_REGISTRY.lookup("", "v1", "pods")
        self.assertIn(pods, BUILTIN_REGISTRY)
        self.assertNotIn(ResourceType("", "v1", "pods", "Pod", False), BUILTIN_REGISTRY)
        self.assertEqual(len(BUILTIN_REGISTRY), len(list(BUILTIN_REGISTRY)))


class GroupOrderTests(SynchronousTestCase):
    """
    Groups and versions come in the aggregator's order.
    """

    def test_groups(self) -> None:
        groups = BUILTIN_REGISTRY.groups()
        self.assertEqual(
            groups[:4],
            ["apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io"],
        )
        # Equal priorities are ordered by APIService name.
        self.assertLess(
            groups.index("admissionregistration.k8s.io"),
            groups.index("apiextensions.k8s.io"),
        )
        self.assertEqual(groups[-1], "flowcontrol.apiserver.k8s.io")
        self.assertNotIn("", groups)

    def test_versions(self) -> None:
        self.assertEqual(BUILTIN_REGISTRY.versions("autoscaling"), ["v2", "v1"])
        self.assertEqual(
            BUILTIN_REGISTRY.versions("flowcontrol.apiserver.k8s.io"),
            ["v1beta3", "v1beta2"],
        )
        self.assertEqual(BUILTIN_REGISTRY.preferred_version("apiregistration.k8s.io"), "v1")

    def test_compare_versions(self) -> None:
        self.assertEqual(
            sort_versions(
                ["v1alpha1", "v2", "v1beta2", "foo", "v1", "v1beta1", "bar", "v11alpha2"],
            ),
            ["v2", "v1", "v1beta2", "v1beta1", "v11alpha2", "v1alpha1", "bar", "foo"],
        )
        self.assertEqual(compare_versions("v1", "v1"), 0)


class CustomResourceTests(SynchronousTestCase):
    """
    CRDs layer over the built-ins without copying them, and equal layers are
    one object.
    """

    def test_with_crd(self) -> None:
        registry = BUILTIN_REGISTRY.with_crd(widget_crd())
        widgets = registry.lookup("example.com", "v1", "widgets")
        assert widgets is not None
        self.assertTrue(widgets.custom)
        self.assertEqual(
            (widgets.kind, widgets.short_names, widgets.categories),
            ("Widget", ("wd",), ("all",)),
        )
        self.assertEqual(widgets.subresources, ("status", "scale"))
        self.assertEqual(
            widgets.verbs,
            ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"),
        )
        self.assertEqual(
            widgets.printer_columns,
            (
                PrinterColumn(
                    "Phase",
                    "string",
                    ".status.phase",
                    description=COLUMN_DESCRIPTION + ".status.phase",
                ),
                PrinterColumn(
                    "Replicas",
                    "integer",
                    ".spec.replicas",
                    description=COLUMN_DESCRIPTION + ".spec.replicas",
                    priority=1,
                ),
            ),
        )
        self.assertIsNotNone(registry.lookup("example.com", "v1beta1", "widgets"))
        self.assertIsNone(registry.lookup("example.com", "v1alpha1", "widgets"))
        # Both served versions share the storage version's hash.
        beta = registry.lookup("example.com", "v1beta1", "widgets")
        assert beta is not None
        self.assertEqual(beta.storage_version_hash, widgets.storage_version_hash)
        self.assertEqual(registry.resolve("wd"), [widgets])
        self.assertEqual(registry.by_kind("example.com", "Widget"), widgets)
        self.assertEqual(registry.versions("example.com"), ["v1", "v1beta1"])
        self.assertIn("example.com", registry.groups())
        self.assertIsNone(BUILTIN_REGISTRY.lookup("example.com", "v1", "widgets"))

    def test_built_ins_shared(self) -> None:
        registry = BUILTIN_REGISTRY.with_crd(widget_crd())
        self.assertIs(registry.lookup("", "v1", "pods"), BUILTIN_REGISTRY.lookup("", "v1", "pods"))
        self.assertIs(registry.base, BUILTIN_REGISTRY)

    def test_interned(self) -> None:
        first = BUILTIN_REGISTRY.with_crd(widget_crd())
        second = BUILTIN_REGISTRY.with_crd(copy.deepcopy(widget_crd()))
        self.assertIs(first, second)
        other = BUILTIN_REGISTRY.with_crd(widget_crd("gadgets.example.com"))
        self.assertIsNot(first, other)
        both = first.with_crd(widget_crd("gadgets.example.com"))
        self.assertIs(both, other.with_crd(widget_crd()))

    def test_default_printer_column(self) -> None:
        registry = BUILTIN_REGISTRY.with_crd(
            widget_crd(versions=[{"name": "v1", "served": True, "storage": True}], scope="Cluster")
        )
        widgets = registry.lookup("example.com", "v1", "widgets")
        assert widgets is not None
        self.assertFalse(widgets.namespaced)
        self.assertEqual(
            [(c.name, c.type, c.json_path) for c in widgets.printer_columns],
            [("Age", "date", ".metadata.creationTimestamp")],
        )

    def test_without_crd(self) -> None:
        registry = BUILTIN_REGISTRY.with_crd(widget_crd())
        self.assertIs(registry.without_crd("widgets.example.com"), BUILTIN_REGISTRY)
        self.assertIs(BUILTIN_REGISTRY.without_crd("absent.example.com"), BUILTIN_REGISTRY)

    def test_replace_crd(self) -> None:
        registry = BUILTIN_REGISTRY.with_crd(widget_crd())
        changed = widget_crd()
        changed["spec"]["names"]["shortNames"] = ["wdg"]
        replaced = registry.with_crd(changed)
        widgets = replaced.lookup("example.com", "v1", "widgets")
        assert widgets is not None
        self.assertEqual(widgets.short_names, ("wdg",))
        self.assertEqual(replaced.extension_names, ("crd:widgets.example.com",))

    def test_conflict(self) -> None:
        """A CRD cannot redefine a built-in resource."""
        crd = widget_crd("deployments.apps")
        self.assertRaises(ValueError, BUILTIN_REGISTRY.with_crd, crd)

    def test_invalid(self) -> None:
        crd = widget_crd()
        del crd["spec"]["names"]["kind"]
        self.assertRaises(InvalidCustomResourceDefinition, BUILTIN_REGISTRY.with_crd, crd)
        crd = widget_crd(versions=[{"name": "v1", "served": True, "storage": False}])
        self.assertRaises(InvalidCustomResourceDefinition, BUILTIN_REGISTRY.with_crd, crd)
        self.assertRaises(
            InvalidCustomResourceDefinition,
            BUILTIN_REGISTRY.with_crd,
            {"metadata": {"name": "x"}},
        )


class APIServiceTests(SynchronousTestCase):
    """
    Aggregated APIs with known resources can be added.
    """

    def metrics(self) -> dict:
        return {
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

    def test_metrics(self) -> None:
        registry = BUILTIN_REGISTRY.with_api_service(self.metrics())
        nodes = registry.lookup("metrics.k8s.io", "v1beta1", "nodes")
        assert nodes is not None
        self.assertEqual(
            (nodes.kind, nodes.verbs, nodes.persisted),
            ("NodeMetrics", ("get", "list"), False),
        )
        info = registry.group_version_info("metrics.k8s.io", "v1beta1")
        assert info is not None
        self.assertEqual(
            (info.service, info.group_priority),
            (("kube-system", "metrics-server", 443), 100),
        )
        self.assertEqual(registry.groups()[-1], "metrics.k8s.io")

    def test_unknown(self) -> None:
        api_service = self.metrics()
        api_service["spec"]["group"] = "custom.metrics.k8s.io"
        self.assertRaises(UnsupportedAPIService, BUILTIN_REGISTRY.with_api_service, api_service)
        local = self.metrics()
        del local["spec"]["service"]
        self.assertRaises(UnsupportedAPIService, BUILTIN_REGISTRY.with_api_service, local)
