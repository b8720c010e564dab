"""
Tests for L{scaleagent.kube.table}: Table output compared with what a real
API server printed for the same objects.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube.resources import BUILTIN_REGISTRY, ResourceType
from scaleagent.kube.table import (
    InvalidTableRequest,
    JSONPathError,
    compile_json_path,
    format_label_selector,
    human_duration,
    parse_time,
    pod_status_cells,
    to_table,
)

from .test_kube_resources import widget_crd

REFERENCE = json.loads(
    (Path(__file__).parent / "fixtures" / "table" / "reference-v1.32.json").read_text(),
)
NOW = datetime(2025, 1, 2, 0, 0, 0, tzinfo=timezone.utc)


def resource(group: str, version: str, plural: str) -> ResourceType:
    found = BUILTIN_REGISTRY.lookup(group, version, plural)
    assert found is not None
    return found


def cells_of(rt: ResourceType, obj: dict) -> list:
    """The cells of one object's row."""
    return to_table(rt, [obj], None, now=NOW)["rows"][0]["cells"]


def pod(status: dict, **spec: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "default",
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec},
        "status": status,
    }


class ReferenceTests(SynchronousTestCase):
    """
    The cells match those a real API server produced for the same objects
    (recorded through Rancher's steve), and so do the column definitions.
    """

    def test_cells(self) -> None:
        checked = 0
        for case in REFERENCE["cases"]:
            resource_type = BUILTIN_REGISTRY.by_kind(case["group"], case["kind"])
            assert resource_type is not None
            table = to_table(resource_type, case["objects"], {}, now=parse_time(case["capturedAt"]))
            for row, expected in zip(table["rows"], case["cells"]):
                self.assertEqual(row["cells"], expected, case["kind"])
                checked += 1
        self.assertEqual(checked, 22)

    def test_pod_columns(self) -> None:
        table = to_table(resource("", "v1", "pods"), [], {}, now=NOW)
        self.assertEqual(table["columnDefinitions"], REFERENCE["columns"]["pod"])

    def test_node_columns(self) -> None:
        table = to_table(resource("", "v1", "nodes"), [], {}, now=NOW)
        self.assertEqual(table["columnDefinitions"], REFERENCE["columns"]["node"])


class TableShapeTests(SynchronousTestCase):
    """
    The Table document and the includeObject choices.
    """

    def setUp(self) -> None:
        self.nodes = resource("", "v1", "nodes")
        self.node = copy.deepcopy(REFERENCE["cases"][0]["objects"][0])

    def test_metadata_rows(self) -> None:
        table = to_table(
            self.nodes,
            [self.node],
            {"resourceVersion": "42", "continue": ""},
            now=NOW,
        )
        self.assertEqual(
            (table["kind"], table["apiVersion"], table["metadata"]),
            ("Table", "meta.k8s.io/v1", {"resourceVersion": "42"}),
        )
        self.assertEqual(
            table["rows"][0]["object"],
            {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": self.node["metadata"],
            },
        )
        self.assertNotIn("conditions", table["rows"][0])

    def test_include_object(self) -> None:
        whole = to_table(self.nodes, [self.node], None, "Object", now=NOW)
        self.assertIs(whole["rows"][0]["object"], self.node)
        none = to_table(self.nodes, [self.node], None, "None", now=NOW)
        self.assertIsNone(none["rows"][0]["object"])
        default = to_table(self.nodes, [self.node], None, "", now=NOW)
        self.assertEqual(default["rows"][0]["object"]["kind"], "PartialObjectMetadata")
        self.assertRaises(
            InvalidTableRequest,
            to_table,
            self.nodes,
            [self.node],
            None,
            "Everything",
            NOW,
        )

    def test_v1beta1(self) -> None:
        table = to_table(self.nodes, [self.node], None, now=NOW, api_version="meta.k8s.io/v1beta1")
        self.assertEqual(table["apiVersion"], "meta.k8s.io/v1beta1")
        self.assertEqual(table["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1beta1")
        self.assertRaises(
            InvalidTableRequest,
            to_table,
            self.nodes,
            [],
            None,
            now=NOW,
            api_version="v1",
        )

    def test_no_headers(self) -> None:
        table = to_table(self.nodes, [self.node], None, now=NOW, no_headers=True)
        self.assertIsNone(table["columnDefinitions"])
        self.assertEqual(len(table["rows"][0]["cells"]), 10)

    def test_now_as_seconds(self) -> None:
        seconds = to_table(
            self.nodes,
            [self.node],
            None,
            now=parse_time("2026-11-30T05:23:19Z").timestamp(),
        )
        self.assertEqual(seconds["rows"][0]["cells"][3], "22m")

    def test_json(self) -> None:
        table = to_table(self.nodes, [self.node], {"resourceVersion": "1"}, now=NOW)
        self.assertEqual(json.loads(json.dumps(table)), table)

    def test_nothing_mutated(self) -> None:
        before = copy.deepcopy(self.node)
        to_table(self.nodes, [self.node], None, "Object", now=NOW)
        self.assertEqual(self.node, before)


class PrinterTests(SynchronousTestCase):
    """
    Cells of the printers for the common types.
    """

    def test_human_duration(self) -> None:
        cases = [
            (0, "0s"),
            (-1, "0s"),
            (-2, "<invalid>"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 12 * 60, "5h12m"),
            (47 * 3600, "47h"),
            (51 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400 + 20 * 86400, "3y20d"),
            (9 * 365 * 86400, "9y"),
        ]
        self.assertEqual(
            [human_duration(timedelta(seconds=s)) for s, _ in cases],
            [text for _, text in cases],
        )

    def test_pod_states(self) -> None:
        now = datetime(2025, 1, 1, 1, 0, 0, tzinfo=timezone.utc)
        crashing = pod(
            {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 5,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {
                            "terminated": {"exitCode": 1, "finishedAt": "2025-01-01T00:58:00Z"},
                        },
                    }
                ],
            }
        )
        self.assertEqual(pod_status_cells(crashing, now), ("0/1", "CrashLoopBackOff", "5 (2m ago)"))
        completed = pod(
            {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    }
                ],
            }
        )
        self.assertEqual(pod_status_cells(completed, now), ("0/1", "Completed", "0"))
        initializing = pod(
            {
                "phase": "Pending",
                "initContainerStatuses": [{"name": "init", "state": {"running": {}}}],
            },
            initContainers=[{"name": "init", "image": "busybox"}],
        )
        self.assertEqual(pod_status_cells(initializing, now)[1], "Init:0/1")
        terminating = pod({"phase": "Running"})
        terminating["metadata"]["deletionTimestamp"] = "2025-01-01T00:59:00Z"
        self.assertEqual(pod_status_cells(terminating, now)[1], "Terminating")

    def test_pod_row_conditions(self) -> None:
        succeeded = pod({"phase": "Succeeded"})
        table = to_table(resource("", "v1", "pods"), [succeeded], None, now=NOW)
        self.assertEqual(
            table["rows"][0]["conditions"],
            [
                {
                    "type": "Completed",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": "The pod has completed successfully.",
                }
            ],
        )

    def test_service_load_balancer(self) -> None:
        service = {
            "metadata": {"name": "lb", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": "10.43.0.5",
                "clusterIPs": ["10.43.0.5"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
                "selector": {"b": "2", "a": "1"},
            },
            "status": {"loadBalancer": {}},
        }
        cells = cells_of(resource("", "v1", "services"), service)
        self.assertEqual(
            cells,
            ["lb", "LoadBalancer", "10.43.0.5", "<pending>", "80:30080/TCP", "24h", "a=1,b=2"],
        )

    def test_job(self) -> None:
        job = {
            "metadata": {"name": "j", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {
                "completions": 1,
                "selector": {"matchLabels": {"job-name": "j"}},
                "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
            },
            "status": {
                "succeeded": 1,
                "startTime": "2025-01-01T00:00:05Z",
                "completionTime": "2025-01-01T00:00:35Z",
            },
        }
        table = to_table(resource("batch", "v1", "jobs"), [job], None, now=NOW)
        self.assertEqual(
            [c["name"] for c in table["columnDefinitions"]],
            ["Name", "Completions", "Duration", "Age", "Containers", "Images", "Selector"],
        )
        self.assertEqual(
            table["rows"][0]["cells"],
            ["j", "1/1", "30s", "24h", "c", "i", "job-name=j"],
        )

    def test_event(self) -> None:
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "p.1", "creationTimestamp": "2025-01-01T23:00:00Z"},
            "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled",
            "message": "Pulled image  ",
            "type": "Normal",
            "firstTimestamp": "2025-01-01T23:00:00Z",
            "lastTimestamp": "2025-01-01T23:50:00Z",
            "count": 3,
            "source": {"component": "kubelet", "host": "node-1"},
        }
        table = to_table(resource("", "v1", "events"), [event], None, now=NOW)
        self.assertEqual(
            table["rows"][0]["cells"],
            [
                "10m",
                "Normal",
                "Pulled",
                "pod/p",
                "spec.containers{app}",
                "kubelet, node-1",
                "Pulled image",
                "60m",
                3,
                "p.1",
            ],
        )
        new_api = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "p.2"},
            "regarding": {"kind": "Pod", "name": "p"},
            "note": "Scheduled",
            "reason": "Scheduled",
            "type": "Normal",
            "eventTime": "2025-01-01T23:59:00.000000Z",
            "reportingController": "default-scheduler",
        }
        cells = cells_of(resource("events.k8s.io", "v1", "events"), new_api)
        self.assertEqual(
            cells,
            [
                "60s",
                "Normal",
                "Scheduled",
                "pod/p",
                "",
                "default-scheduler",
                "Scheduled",
                "60s",
                1,
                "p.2",
            ],
        )

    def test_default_table(self) -> None:
        """Resources without a printer get Name and Created At."""
        role = {"metadata": {"name": "admin", "creationTimestamp": "2025-01-01T00:00:00Z"}}
        table = to_table(
            resource("rbac.authorization.k8s.io", "v1", "clusterroles"),
            [role, {"metadata": {"name": "x"}}],
            None,
            now=NOW,
        )
        self.assertEqual(
            [(c["name"], c["type"]) for c in table["columnDefinitions"]],
            [("Name", "string"), ("Created At", "date")],
        )
        self.assertEqual(
            [row["cells"] for row in table["rows"]],
            [["admin", "2025-01-01T00:00:00Z"], ["x", "0001-01-01T00:00:00Z"]],
        )

    def test_storage_class_default(self) -> None:
        storage_class = {
            "metadata": {
                "name": "local-path",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
        cells = cells_of(resource("storage.k8s.io", "v1", "storageclasses"), storage_class)
        self.assertEqual(
            cells,
            [
                "local-path (default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                False,
                "<unknown>",
            ],
        )

    def test_api_service(self) -> None:
        api_service = {
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
            "status": {
                "conditions": [
                    {"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck"}
                ]
            },
        }
        cells = cells_of(resource("apiregistration.k8s.io", "v1", "apiservices"), api_service)
        self.assertEqual(cells[1:3], ["kube-system/metrics-server", "False (FailedDiscoveryCheck)"])

    def test_label_selector(self) -> None:
        selector = {
            "matchLabels": {"tier": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "zone", "operator": "DoesNotExist"},
            ],
        }
        self.assertEqual(format_label_selector(selector), "env in (dev,prod),tier=web,!zone")
        self.assertEqual(format_label_selector({}), "<none>")


class CustomResourceTableTests(SynchronousTestCase):
    """
    Custom resources get their CRD's printer columns.
    """

    def test_columns(self) -> None:
        crd = widget_crd()
        crd["spec"]["versions"][0]["additionalPrinterColumns"] += [
            {
                "name": "Ready",
                "type": "string",
                "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            },
            {
                "name": "Started",
                "type": "date",
                "jsonPath": ".status.startTime",
                "description": "When it started",
            },
            {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
            {"name": "Labels", "type": "string", "jsonPath": ".metadata.labels"},
        ]
        widgets = BUILTIN_REGISTRY.with_crd(crd).lookup("example.com", "v1", "widgets")
        widget = {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "labels": {"b": "2", "a": "1"}},
            "spec": {"replicas": 3.0, "paused": "yes"},
            "status": {
                "phase": "Running",
                "startTime": "2025-01-01T23:00:00Z",
                "conditions": [
                    {"type": "Synced", "status": "False"},
                    {"type": "Ready", "status": "True"},
                ],
            },
        }
        table = to_table(widgets, [widget, {"metadata": {"name": "empty"}}], None, now=NOW)
        self.assertEqual(
            [
                (c["name"], c["type"], c["priority"], c["description"])
                for c in table["columnDefinitions"]
            ][4],
            ("Started", "date", 0, "When it started"),
        )
        self.assertEqual(
            table["rows"][0]["cells"],
            ["w", "Running", 3, "True", "60m", None, "map[a:1 b:2]"],
        )
        self.assertEqual(table["rows"][1]["cells"], ["empty", None, None, None, None, None, None])

    def test_default_age_column(self) -> None:
        crd = widget_crd(versions=[{"name": "v1", "served": True, "storage": True}])
        widgets = BUILTIN_REGISTRY.with_crd(crd).lookup("example.com", "v1", "widgets")
        table = to_table(
            widgets,
            [{"metadata": {"name": "w", "creationTimestamp": "2025-01-01T12:00:00Z"}}],
            None,
            now=NOW,
        )
        self.assertEqual([c["name"] for c in table["columnDefinitions"]], ["Name", "Age"])
        self.assertEqual(table["rows"][0]["cells"], ["w", "12h"])

    def test_json_path(self) -> None:
        document = {"a": {"b.c": [1, {"d": "x"}], "e": [{"k": "v1", "n": 1}, {"k": "v2", "n": 2}]}}
        self.assertEqual(compile_json_path(r"{.a.b\.c[1].d}")(document), ["x"])
        self.assertEqual(compile_json_path(".a['b.c'][-2]")(document), [1])
        self.assertEqual(compile_json_path(".a.e[*].n")(document), [1, 2])
        self.assertEqual(compile_json_path(".a.e[?(@.k!='v1')].n")(document), [2])
        self.assertEqual(compile_json_path(".a.e[?(@.missing)].n")(document), [])
        self.assertEqual(compile_json_path(".missing.path")(document), [])
        self.assertRaises(JSONPathError, compile_json_path, ".a..b[?(@.x > 1)]")
