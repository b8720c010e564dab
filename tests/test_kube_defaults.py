# -*- test-case-name: tests.test_kube_defaults -*-
"""
Tests for L{scaleagent.kube.defaults}: the Go round trip and the API
defaulting of built-in kinds.

The expected objects below are what kube-apiserver v1.35.4's codec made of
the same input (k8s.io/kubernetes's legacyscheme: decode with defaulting
into the internal version, encode back), compared as JSON text so that the
member order counts too.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube.defaults import (
    NODE_PORTS,
    SERVICE_CIDR,
    allocate_service,
    canonical_quantity,
    default_object,
    message_for,
    normalise_object,
)
from scaleagent.kube.errors import APIError
from scaleagent.kube.resources import BUILTIN_REGISTRY, ResourceType


def _type(api_version: str, kind: str) -> ResourceType:
    resource_type = BUILTIN_REGISTRY.by_api_version(api_version, kind)
    assert resource_type is not None, (api_version, kind)
    return resource_type


def defaulted(obj: dict) -> dict:
    return default_object(_type(obj["apiVersion"], obj["kind"]), obj)


def text(obj: Any) -> str:
    """JSON with the members in the order they are in: order matters."""
    return json.dumps(obj)


#: Quantities as C{emptyDir.sizeLimit} (no rounding) and in a ResourceList
#: (rounded up to milli-units) come back from the Go codec.
QUANTITIES = {
    "1000m": ("1", "1"),
    "0.5": ("500m", "500m"),
    "1.5Gi": ("1536Mi", "1536Mi"),
    "1024Mi": ("1Gi", "1Gi"),
    "2048Ki": ("2Mi", "2Mi"),
    "1000": ("1k", "1k"),
    "1e3": ("1e3", "1e3"),
    "1e1": ("10", "10"),
    "+1": ("+1", "+1"),
    "012": ("012", "012"),
    "0.1": ("100m", "100m"),
    "100000000000000000000": ("100E", "100E"),
    "3Ti": ("3Ti", "3Ti"),
    "1.1": ("1100m", "1100m"),
    "5G": ("5G", "5G"),
    "0.000000001": ("1n", "1m"),
    "1024": ("1024", "1024"),
    "0.5Ki": ("512", "512"),
    "10Mi": ("10Mi", "10Mi"),
    "1k": ("1k", "1k"),
    "100u": ("100u", "1m"),
    "1500n": ("1500n", "1m"),
    "0": ("0", "0"),
}


class QuantityTests(SynchronousTestCase):
    def test_canonical(self) -> None:
        for given, (plain, rounded) in QUANTITIES.items():
            self.assertEqual(canonical_quantity(given), plain, given)
            self.assertEqual(canonical_quantity(given, round_to_milli=True), rounded, given)

    def test_refused(self) -> None:
        for given in ("", "x", "1Gb", "1.2.3", "1e"):
            self.assertIsNone(canonical_quantity(given), given)
        # Without digits the number is 0, as parseQuantityString reads it.
        for given in ("Mi", "-", "e3", "."):
            self.assertEqual(canonical_quantity(given), "0", given)

    def test_in_objects(self) -> None:
        """
        Quantities in a ResourceList are rounded to milli-units, others
        only canonicalised; a JSON number is written as a string.
        """
        pod = defaulted(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "q", "namespace": "d"},
                "spec": {
                    "containers": [
                        {"name": "a", "image": "a:1", "resources": {"limits": {"cpu": 2, "x": "100u"}}}
                    ],
                    "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "100u"}}],
                },
            }
        )
        self.assertEqual(pod["spec"]["containers"][0]["resources"]["limits"], {"cpu": "2", "x": "1m"})
        self.assertEqual(pod["spec"]["volumes"][0]["emptyDir"], {"sizeLimit": "100u"})


class DefaultingTests(SynchronousTestCase):
    """Objects of the kinds Rancher and kubectl write, as the real server stores them."""

    def test_deployment(self) -> None:
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "nginx",
                                "ports": [{"containerPort": 80}],
                                "env": [{"name": "EMPTY", "value": ""}],
                            }
                        ]
                    },
                },
            },
        }
        expected = {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "nginx",
                                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                "env": [{"name": "EMPTY"}],
                                "resources": {},
                                "terminationMessagePath": "/dev/termination-log",
                                "terminationMessagePolicy": "File",
                                "imagePullPolicy": "Always",
                            }
                        ],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst",
                        "securityContext": {},
                        "schedulerName": "default-scheduler",
                    },
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": {},
        }
        self.assertEqual(text(defaulted(deployment)), text(expected))

    def test_service(self) -> None:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }
        expected = {
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {
                "ports": [{"protocol": "TCP", "port": 80, "targetPort": 80}],
                "selector": {"app": "web"},
                "type": "ClusterIP",
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {"loadBalancer": {}},
        }
        self.assertEqual(text(defaulted(service)), text(expected))

    def test_pod(self) -> None:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {
                "containers": [
                    {
                        "name": "a",
                        "image": "busybox:1.36",
                        "livenessProbe": {"httpGet": {"port": 8080}},
                        "resources": {"limits": {"cpu": "500m"}},
                    }
                ],
                "volumes": [{"name": "s", "secret": {"secretName": "s"}}, {"name": "e"}],
            },
        }
        expected = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {
                "volumes": [
                    {"name": "s", "secret": {"secretName": "s", "defaultMode": 420}},
                    {"name": "e", "emptyDir": {}},
                ],
                "containers": [
                    {
                        "name": "a",
                        "image": "busybox:1.36",
                        "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "500m"}},
                        "livenessProbe": {
                            "httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"},
                            "timeoutSeconds": 1,
                            "periodSeconds": 10,
                            "successThreshold": 1,
                            "failureThreshold": 3,
                        },
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent",
                    }
                ],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "securityContext": {},
                "schedulerName": "default-scheduler",
                "enableServiceLinks": True,
            },
            "status": {},
        }
        self.assertEqual(text(defaulted(pod)), text(expected))

    def test_job(self) -> None:
        job = defaulted(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "j", "namespace": "d"},
                "spec": {
                    "template": {
                        "metadata": {"labels": {"x": "y"}},
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "a:1"}]},
                    }
                },
            }
        )
        self.assertEqual(job["metadata"]["labels"], {"x": "y"})
        self.assertEqual(
            text({key: value for key, value in job["spec"].items() if key != "template"}),
            text(
                {
                    "parallelism": 1,
                    "completions": 1,
                    "backoffLimit": 6,
                    "manualSelector": False,
                    "completionMode": "NonIndexed",
                    "suspend": False,
                    "podReplacementPolicy": "TerminatingOrFailed",
                }
            ),
        )

    def test_stateful_set(self) -> None:
        stateful_set = defaulted(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "db", "namespace": "d"},
                "spec": {
                    "serviceName": "db",
                    "selector": {"matchLabels": {"a": "b"}},
                    "template": {
                        "metadata": {"labels": {"a": "b"}},
                        "spec": {"containers": [{"name": "a", "image": "a:1"}]},
                    },
                    "volumeClaimTemplates": [
                        {
                            "metadata": {"name": "data"},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "1Gi"}},
                            },
                        }
                    ],
                },
            }
        )
        spec = stateful_set["spec"]
        self.assertEqual(
            text(spec["volumeClaimTemplates"]),
            text(
                [
                    {
                        "kind": "PersistentVolumeClaim",
                        "apiVersion": "v1",
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                            "volumeMode": "Filesystem",
                        },
                        "status": {"phase": "Pending"},
                    }
                ]
            ),
        )
        self.assertEqual(spec["updateStrategy"], {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        self.assertEqual(
            spec["persistentVolumeClaimRetentionPolicy"], {"whenDeleted": "Retain", "whenScaled": "Retain"}
        )
        self.assertEqual((spec["replicas"], spec["revisionHistoryLimit"]), (1, 10))
        self.assertEqual(stateful_set["status"], {"replicas": 0, "availableReplicas": 0})

    def test_image_pull_policy(self) -> None:
        """Always for C{:latest} or no tag; IfNotPresent otherwise, and for what does not parse."""
        cases = {
            "nginx": "Always",
            "nginx:latest": "Always",
            "nginx:Latest": "IfNotPresent",
            "nginx:1.25": "IfNotPresent",
            "localhost:5000/x": "Always",
            "registry.example.com/x:v1": "IfNotPresent",
            "x@sha256:" + "a" * 64: "IfNotPresent",
            "UPPER/x": "Always",
            "a/UPPER": "IfNotPresent",
            "": "IfNotPresent",
        }
        for image, policy in cases.items():
            pod = defaulted(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "d"},
                    "spec": {"containers": [{"name": "a", "image": image}]},
                }
            )
            self.assertEqual(pod["spec"]["containers"][0]["imagePullPolicy"], policy, image)

    def test_conversion_effects(self) -> None:
        """
        What the internal version does not keep: C{serviceAccount} follows
        C{serviceAccountName}, a Secret's C{stringData} goes into C{data},
        C{podIP} and C{podCIDR} follow their lists.
        """
        pod = defaulted(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": "d"},
                "spec": {"serviceAccount": "old", "containers": [{"name": "a", "image": "a:1"}]},
                "status": {"podIPs": [{"ip": "10.42.0.5"}]},
            }
        )
        self.assertEqual((pod["spec"]["serviceAccountName"], pod["spec"]["serviceAccount"]), ("old", "old"))
        self.assertEqual(pod["status"]["podIP"], "10.42.0.5")
        secret = defaulted(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": "d"},
                "stringData": {"a": "hello"},
                "data": {"b": "Yg=="},
            }
        )
        self.assertEqual(text(secret["data"]), text({"a": "aGVsbG8=", "b": "Yg=="}))
        self.assertEqual(secret["type"], "Opaque")
        self.assertNotIn("stringData", secret)
        node = defaulted(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "10.42.0.0/24"}}
        )
        self.assertEqual(node["spec"], {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]})

    def test_rbac_and_webhooks(self) -> None:
        binding = defaulted(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "r"},
                "subjects": [
                    {"kind": "User", "name": "u"},
                    {"kind": "ServiceAccount", "name": "s", "namespace": "d"},
                ],
            }
        )
        self.assertEqual(binding["roleRef"]["apiGroup"], "rbac.authorization.k8s.io")
        self.assertEqual(
            [subject.get("apiGroup") for subject in binding["subjects"]], ["rbac.authorization.k8s.io", None]
        )
        webhooks = defaulted(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "w"},
                "webhooks": [
                    {
                        "name": "w.example.com",
                        "clientConfig": {"service": {"name": "s", "namespace": "d"}},
                        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                    }
                ],
            }
        )
        (webhook,) = webhooks["webhooks"]
        self.assertEqual(webhook["clientConfig"]["service"]["port"], 443)
        self.assertEqual(webhook["rules"][0]["scope"], "*")
        self.assertEqual(
            [webhook[key] for key in ("failurePolicy", "matchPolicy", "namespaceSelector", "timeoutSeconds")],
            ["Fail", "Equivalent", {}, 10],
        )

    def test_others(self) -> None:
        """The defaults of the other kinds the template and Rancher use."""
        self.assertEqual(
            defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})["metadata"]["labels"],
            {"kubernetes.io/metadata.name": "n"},
        )
        claim = defaulted(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "c", "namespace": "d"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }
        )
        self.assertEqual((claim["spec"]["volumeMode"], claim["status"]), ("Filesystem", {"phase": "Pending"}))
        priority = defaulted(
            {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "p"}, "value": 1}
        )
        self.assertEqual(priority["preemptionPolicy"], "PreemptLowerPriority")
        storage = defaulted(
            {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "s"}, "provisioner": "p"}
        )
        self.assertEqual((storage["reclaimPolicy"], storage["volumeBindingMode"]), ("Delete", "Immediate"))
        daemon_set = defaulted(
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "ds", "namespace": "d"},
                "spec": {
                    "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}},
                },
            }
        )
        self.assertEqual(
            daemon_set["spec"]["updateStrategy"],
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        )
        cron_job = defaulted(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "c", "namespace": "d"},
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
            }
        )
        self.assertEqual(
            [cron_job["spec"][key] for key in ("concurrencyPolicy", "suspend", "successfulJobsHistoryLimit", "failedJobsHistoryLimit")],
            ["Allow", False, 3, 1],
        )
        lease = defaulted(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "l", "namespace": "d"},
                "spec": {"renewTime": "2024-01-01T01:00:00.123456+01:00"},
            }
        )
        self.assertEqual(lease["spec"], {"renewTime": "2024-01-01T00:00:00.123456Z"})


class RoundTripTests(SynchronousTestCase):
    """What encoding/json makes of the decoded Go struct."""

    def test_omitted_and_written_zero_values(self) -> None:
        """
        Zero values of C{omitempty} fields go; plain fields are written
        even when absent; pointers are kept when zero; null in a list is
        the element's zero value.
        """
        node = normalise_object(
            _type("v1", "Node"),
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n", "labels": {}, "finalizers": []},
                "spec": {"unschedulable": False, "podCIDRs": None},
                "status": {"nodeInfo": {"kubeletVersion": "v1"}, "volumesInUse": ["a", None]},
            },
        )
        self.assertEqual(node["metadata"], {"name": "n"})
        self.assertEqual(node["spec"], {})
        self.assertEqual(node["status"]["daemonEndpoints"], {"kubeletEndpoint": {"Port": 0}})
        self.assertEqual(node["status"]["nodeInfo"]["machineID"], "")
        self.assertEqual(node["status"]["volumesInUse"], ["a", ""])
        deployment = normalise_object(
            _type("apps/v1", "Deployment"),
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 0}},
        )
        self.assertEqual(deployment["spec"]["replicas"], 0)

    def test_order_and_unknown_members(self) -> None:
        """Members come in Go field order; maps sorted; unknown members dropped."""
        config_map = normalise_object(
            _type("v1", "ConfigMap"),
            {"data": {"b": "2", "a": "1"}, "metadata": {"name": "c"}, "kind": "ConfigMap", "apiVersion": "v1", "extra": 1},
        )
        self.assertEqual(
            text(config_map),
            text({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}),
        )

    def test_times(self) -> None:
        """Times are written in UTC, whole seconds; what does not parse is kept."""
        pod = normalise_object(
            _type("v1", "Pod"),
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "creationTimestamp": "2024-01-01T10:00:00.5+02:00"},
                "status": {"startTime": "yesterday"},
            },
        )
        self.assertEqual(pod["metadata"]["creationTimestamp"], "2024-01-01T08:00:00Z")
        self.assertEqual(pod["status"]["startTime"], "yesterday")

    def test_idempotent_and_shared(self) -> None:
        """
        An object already in normal form comes back as it is: what is
        unchanged stays shared.
        """
        first = defaulted(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d", "namespace": "n"},
                "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}},
            }
        )
        second = defaulted(first)
        self.assertEqual(text(second), text(first))
        self.assertIs(second["spec"], first["spec"])
        # A changed status: the spec the stored object has is not walked.
        third = default_object(
            _type("apps/v1", "Deployment"), {**first, "status": {"replicas": 1}}, stored=first
        )
        self.assertIs(third["spec"], first["spec"])
        self.assertEqual(third["status"], {"replicas": 1})

    def test_unknown_kinds_untouched(self) -> None:
        widgets = ResourceType("example.com", "v1", "widgets", "Widget", True, custom=True)
        self.assertIsNone(message_for(widgets))
        widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"x": ""}}
        self.assertEqual(default_object(widgets, widget), widget)


class ServiceAllocationTests(SynchronousTestCase):
    """The Service registry's cluster IP and node port allocation."""

    def service(self, name: str = "web", **spec: Any) -> dict:
        return defaulted(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "d"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec},
            }
        )

    def test_cluster_ip(self) -> None:
        """
        A ClusterIP Service gets an address of the dynamic band (above the
        first 256), always the same one unless taken, and its family fields.
        """
        allocated = allocate_service(self.service(), None, set(), set())
        spec = allocated["spec"]
        address = spec["clusterIP"]
        self.assertEqual(spec["clusterIPs"], [address])
        self.assertEqual((spec["ipFamilies"], spec["ipFamilyPolicy"]), (["IPv4"], "SingleStack"))
        self.assertIn(ipaddress.ip_address(address), SERVICE_CIDR)
        self.assertGreater(int(ipaddress.ip_address(address)), int(SERVICE_CIDR.network_address) + 256)
        again = allocate_service(self.service(), None, set(), set())
        self.assertEqual(again["spec"]["clusterIP"], address)
        taken = {int(ipaddress.ip_address(address))}
        other = allocate_service(self.service(), None, taken, set())
        self.assertNotEqual(other["spec"]["clusterIP"], address)

    def test_requested_cluster_ip(self) -> None:
        wanted = allocate_service(self.service(clusterIP="10.43.0.10"), None, set(), set())
        self.assertEqual(wanted["spec"]["clusterIPs"], ["10.43.0.10"])
        used = int(ipaddress.ip_address("10.43.0.10"))
        error = self.assertRaises(
            APIError, allocate_service, self.service(clusterIP="10.43.0.10"), None, {used}, set()
        )
        self.assertEqual(error.code, 422)
        self.assertIn("failed to allocate IP 10.43.0.10: provided IP is already allocated", error.message)
        error = self.assertRaises(APIError, allocate_service, self.service(clusterIP="10.44.0.1"), None, set(), set())
        self.assertIn("is not in the valid range. The range of valid IPs is 10.43.0.0/16", error.message)

    def test_headless_and_external_name(self) -> None:
        headless = allocate_service(self.service(clusterIP="None"), None, set(), set())["spec"]
        self.assertEqual(
            (headless["clusterIPs"], headless["ipFamilies"], headless["ipFamilyPolicy"]),
            (["None"], ["IPv4"], "SingleStack"),
        )
        selectorless = self.service(clusterIP="None")
        del selectorless["spec"]["selector"]
        spec = allocate_service(selectorless, None, set(), set())["spec"]
        self.assertEqual((spec["ipFamilies"], spec["ipFamilyPolicy"]), (["IPv4", "IPv6"], "RequireDualStack"))
        external = allocate_service(self.service(type="ExternalName", externalName="x.example.com"), None, set(), set())
        self.assertNotIn("clusterIP", external["spec"])
        self.assertNotIn("ipFamilies", external["spec"])

    def test_kept_on_update(self) -> None:
        """An update that leaves out what was allocated keeps it (patchAllocatedValues)."""
        created = allocate_service(self.service(type="NodePort"), None, set(), set())
        (port,) = created["spec"]["ports"]
        self.assertIn(port["nodePort"], NODE_PORTS)
        updated = allocate_service(self.service(type="NodePort"), created, set(), set())
        self.assertEqual(updated["spec"]["clusterIP"], created["spec"]["clusterIP"])
        self.assertEqual(updated["spec"]["ports"][0]["nodePort"], port["nodePort"])

    def test_node_port_conflict(self) -> None:
        error = self.assertRaises(
            APIError,
            allocate_service,
            self.service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
            None,
            set(),
            {30080},
        )
        self.assertIn("provided port is already allocated", error.message)

    def test_dry_run(self) -> None:
        """A dry run does not search: the range's own address."""
        spec = allocate_service(self.service(), None, set(), set(), dry_run=True)["spec"]
        self.assertEqual(spec["clusterIP"], "10.43.0.0")
