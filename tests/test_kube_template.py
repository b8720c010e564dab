"""
Tests for L{scaleagent.kube.template}: parsing cluster templates (and the
earlier tool's format), errors with line numbers, and rendering seeds.
"""

from __future__ import annotations

import copy
import json
import textwrap
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.config import DEFAULT_TEMPLATE_NAME, bundled_templates_dir
from scaleagent.kube.template import (
    DEFAULT_VERSION_INFO,
    ClusterContext,
    ClusterTemplate,
    Seed,
    TemplateError,
)

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
CREATED = datetime(2025, 1, 1, tzinfo=timezone.utc)

VERSION = """\
version:
  gitVersion: v1.28.15
"""


# One Namespace "n", three lines.
NAMESPACE_N = """\
- apiVersion: v1
  kind: Namespace
  metadata: {name: n}
"""


def with_objects(*manifests: str) -> str:
    """
    A template of VERSION and these manifests (each dedented): the first
    manifest line is line 4.
    """
    return VERSION + "objects:\n" + "".join(textwrap.dedent(block) for block in manifests)


def context(name: str = "alpha", seed: str | None = None) -> ClusterContext:
    return ClusterContext(name, seed or f"id-{name}", CREATED)


def by_key(seed: Seed) -> dict:
    return {(rt.resource, namespace, name): obj for rt, namespace, name, obj in seed.entries}


def expected_uid(uid_seed: str, identity: str) -> str:
    # What ClusterContext.uid documents: uuid5 of the seed, then of the
    # object's identity.
    cluster = uuid.uuid5(uuid.UUID("8f6a7c0e-2f1d-5b7a-9c3e-4d2b1a0f6e5c"), uid_seed)
    return str(uuid.uuid5(cluster, identity))


_DEFAULT: list[ClusterTemplate] = []


def default_template() -> ClusterTemplate:
    # Loaded once for the module: the schema check of ~290 objects is the
    # slow part.
    if not _DEFAULT:
        _DEFAULT.append(ClusterTemplate.load(bundled_templates_dir() / DEFAULT_TEMPLATE_NAME))
    return _DEFAULT[0]


# Labels and annotations from which Rancher's provider detection would name
# a provider (AKS, Harvester, minikube, RKE).
DETECTED_PREFIXES = (
    "kubernetes.azure.com/",
    "harvesterhci.io/",
    "minikube.k8s.io/",
    "rke.cattle.io/",
)


class DefaultTemplateTests(SynchronousTestCase):
    """
    The bundled k3s template is valid and models what Rancher must see.
    """

    def setUp(self) -> None:
        self.template = default_template()

    def test_version(self) -> None:
        info = self.template.version_info
        self.assertEqual(info, DEFAULT_VERSION_INFO)
        for marker in ("+k3s", "+rke2", "-eks-", "-gke."):
            self.assertNotIn(marker, info["gitVersion"])
        self.assertEqual(self.template.warnings, ())
        self.assertEqual(json.loads(self.template.version_json), dict(info))

    def test_contents(self) -> None:
        seed = self.template.seed_for(context())
        keys = by_key(seed)
        kinds = {}
        for rt, _, _, _ in seed.entries:
            kinds[rt.resource] = kinds.get(rt.resource, 0) + 1
        self.assertEqual(kinds["nodes"], 2)
        namespaces = (
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "demo",
            "monitoring",
        )
        for namespace in namespaces:
            self.assertIn(("namespaces", "", namespace), keys)
        for name in ("coredns", "local-path-provisioner", "metrics-server", "traefik"):
            self.assertIn(("deployments", "kube-system", name), keys)
        self.assertIn(("deployments", "demo", "nginx"), keys)
        self.assertIn(("deployments", "monitoring", "grafana"), keys)
        roles = (
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:node",
            "system:controller:job-controller",
        )
        for name in roles:
            self.assertIn(("clusterroles", "", name), keys)
        self.assertIn(("apiservices", "", "v1beta1.metrics.k8s.io"), keys)
        self.assertIn(("apiservices", "", "v1.apps"), keys)
        self.assertIn(("storageclasses", "", "local-path"), keys)
        self.assertIn(("priorityclasses", "", "system-node-critical"), keys)
        # Each cluster's own CA and tokens are added at run time.
        self.assertNotIn(("configmaps", "kube-system", "kube-root-ca.crt"), keys)
        self.assertNotIn(("namespaces", "", "cattle-system"), keys)
        self.assertEqual(self.template.registry.preferred_version("metrics.k8s.io"), "v1beta1")
        self.assertEqual(self.template.server_address, "10.0.0.11:6443")

    def test_nodes(self) -> None:
        seed = self.template.seed_for(context("scale-00042"))
        node = seed.render(by_key(seed)[("nodes", "", "scale-00042-server-1")])
        labels = node["metadata"]["labels"]
        for role in ("control-plane", "etcd", "master"):
            self.assertEqual(labels[f"node-role.kubernetes.io/{role}"], "true")
        self.assertEqual(labels["kubernetes.io/hostname"], "scale-00042-server-1")
        # Nothing that would make Rancher's provider detection pick a
        # provider: no AKS/Harvester/minikube labels, no RKE annotations.
        for key in list(labels) + list(node["metadata"]["annotations"]):
            self.assertFalse(key.startswith(DETECTED_PREFIXES), key)
        self.assertEqual(node["status"]["nodeInfo"]["osImage"], "Ubuntu 22.04.5 LTS")
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"][0]
        self.assertEqual(ready["status"], "True")

    def test_aggregated_roles(self) -> None:
        """admin, edit and view carry the rules aggregated into them."""
        seed = self.template.seed_for(context())
        keys = by_key(seed)
        view = seed.render(keys[("clusterroles", "", "view")])
        metrics = {
            "apiGroups": ["metrics.k8s.io"],
            "resources": ["pods", "nodes"],
            "verbs": ["get", "list", "watch"],
        }
        self.assertIn(metrics, view["rules"])
        admin = seed.render(keys[("clusterroles", "", "admin")])
        self.assertGreater(len(admin["rules"]), len(view["rules"]))

    def test_every_object_renders(self) -> None:
        seed = self.template.seed_for(context())
        uids = set()
        for rt, namespace, name, obj in seed.entries:
            rendered = seed.render(obj)
            self.assertEqual(rendered["metadata"]["name"], name)
            self.assertEqual(rendered["metadata"].get("namespace", ""), namespace)
            self.assertEqual((rendered["apiVersion"], rendered["kind"]), (rt.api_version, rt.kind))
            self.assertNotIn("{{", json.dumps(rendered))
            uids.add(rendered["metadata"]["uid"])
        self.assertEqual(len(uids), len(seed.entries))


class SmallTemplateTests(SynchronousTestCase):
    """
    Rendering a seed: placeholders, deterministic uids, shared objects.
    """

    def setUp(self) -> None:
        self.template = ClusterTemplate.load(FIXTURES / "small.yaml")

    def test_placeholders(self) -> None:
        seed = self.template.seed_for(context("alpha"))
        keys = by_key(seed)
        node = seed.render(keys[("nodes", "", "alpha-node-1")])
        self.assertEqual(node["metadata"]["labels"]["kubernetes.io/hostname"], "alpha-node-1")
        ready = node["status"]["conditions"][0]
        self.assertEqual(
            (ready["lastHeartbeatTime"], ready["lastTransitionTime"]),
            ("2025-01-01T00:05:00Z", "2025-01-01T00:00:30Z"),
        )
        settings = seed.render(keys[("configmaps", "alpha-apps", "settings")])
        self.assertEqual(settings["data"], {"cluster": "alpha", "created": "2025-01-01T00:00:00Z"})
        lease = seed.render(keys[("leases", "kube-system", "alpha-node-1")])
        # Leases carry MicroTime.
        self.assertEqual(lease["spec"]["renewTime"], "2025-01-01T01:00:00.000000Z")

    def test_metadata(self) -> None:
        seed = self.template.seed_for(context("alpha"))
        keys = by_key(seed)
        pod = seed.render(keys[("pods", "kube-system", "web-5d9c8b7f6-x2x9q")])
        metadata = pod["metadata"]
        self.assertEqual(
            list(metadata)[:5],
            ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"],
        )
        self.assertEqual(list(pod)[:3], ["apiVersion", "kind", "metadata"])
        self.assertEqual(metadata["creationTimestamp"], "2025-01-01T00:00:20Z")
        deployment = seed.render(keys[("deployments", "kube-system", "web")])
        self.assertEqual(deployment["metadata"]["creationTimestamp"], "2025-01-01T00:00:00Z")
        self.assertEqual(deployment["metadata"]["generation"], 1)

    def test_deterministic_uids(self) -> None:
        first = self.template.seed_for(context("alpha"))
        again = self.template.seed_for(context("alpha"))
        other = self.template.seed_for(context("beta"))
        key = ("deployments", "kube-system", "web")
        uid = first.render(by_key(first)[key])["metadata"]["uid"]
        self.assertEqual(uid, again.render(by_key(again)[key])["metadata"]["uid"])
        self.assertNotEqual(uid, other.render(by_key(other)[key])["metadata"]["uid"])
        self.assertEqual(uid, expected_uid("id-alpha", "apps/Deployment/kube-system/web"))
        # Same name, different seed: different uid.
        renamed = self.template.seed_for(context("alpha", seed="id-other"))
        self.assertNotEqual(uid, renamed.render(by_key(renamed)[key])["metadata"]["uid"])

    def test_references(self) -> None:
        """
        Owner references, references with {{ uid }} and {{ uid Kind ns/name }}
        all carry the referenced object's uid.
        """
        seed = self.template.seed_for(context("alpha"))
        keys = by_key(seed)

        def uid(key: tuple[str, str, str]) -> str:
            return seed.render(keys[key])["metadata"]["uid"]

        replica_set = seed.render(keys[("replicasets", "kube-system", "web-5d9c8b7f6")])
        owner = replica_set["metadata"]["ownerReferences"][0]
        self.assertEqual(
            list(owner),
            ["apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion"],
        )
        self.assertEqual(owner["uid"], uid(("deployments", "kube-system", "web")))
        pod = seed.render(keys[("pods", "kube-system", "web-5d9c8b7f6-x2x9q")])
        self.assertEqual(
            pod["metadata"]["ownerReferences"][0]["uid"],
            replica_set["metadata"]["uid"],
        )
        lease = seed.render(keys[("leases", "kube-system", "alpha-node-1")])
        self.assertEqual(
            lease["metadata"]["ownerReferences"][0]["uid"],
            uid(("nodes", "", "alpha-node-1")),
        )
        endpoints = seed.render(keys[("endpoints", "kube-system", "web")])
        self.assertEqual(
            endpoints["subsets"][0]["addresses"][0]["targetRef"]["uid"],
            pod["metadata"]["uid"],
        )
        job = seed.render(keys[("jobs", "kube-system", "setup")])
        self.assertEqual(job["metadata"]["labels"]["controller-uid"], job["metadata"]["uid"])
        self.assertEqual(
            job["spec"]["template"]["metadata"]["labels"]["controller-uid"],
            job["metadata"]["uid"],
        )

    def test_resource_versions(self) -> None:
        seed = self.template.seed_for(context())
        versions = [
            int(seed.render(obj)["metadata"]["resourceVersion"]) for _, _, _, obj in seed.entries
        ]
        self.assertEqual(versions, list(range(1, len(versions) + 1)))
        self.assertEqual(seed.initial_resource_version, len(versions))

    def test_generated_api_services(self) -> None:
        seed = self.template.seed_for(context())
        keys = by_key(seed)
        api_service = seed.render(keys[("apiservices", "", "v1.example.com")])
        self.assertEqual(api_service["spec"]["groupPriorityMinimum"], 1000)
        self.assertEqual(
            api_service["status"]["conditions"][0]["lastTransitionTime"],
            "2025-01-01T00:00:00Z",
        )
        widget = seed.render(keys[("widgets", "kube-system", "gizmo")])
        self.assertEqual(widget["spec"], {"size": 3})
        self.assertIsNotNone(seed.registry.lookup("example.com", "v1", "widgets"))

    def test_shared(self) -> None:
        """
        Seed objects are the template's own; only keys with placeholders are
        per-cluster.
        """
        first = self.template.seed_for(context("alpha"))
        second = self.template.seed_for(context("beta"))
        self.assertEqual(len(first.entries), len(second.entries))
        per_cluster = 0
        for mine, theirs in zip(first.entries, second.entries):
            self.assertIs(mine[3], theirs[3])
            if mine is theirs:
                continue
            per_cluster += 1
            self.assertNotEqual(mine[1:3], theirs[1:3])
        # The apps namespace, its ConfigMap, the node and its lease.
        self.assertEqual(per_cluster, 4)
        # Nested values without placeholders are shared between renders.
        key = ("deployments", "kube-system", "web")
        self.assertIs(
            first.render(by_key(first)[key])["spec"],
            second.render(by_key(second)[key])["spec"],
        )

    def test_nothing_mutated(self) -> None:
        """
        Rendering never changes the template, and changing a rendered
        object's own (top-level and metadata) mappings does not either.
        """
        seed = self.template.seed_for(context("alpha"))
        before = [json.dumps(seed.render(obj), sort_keys=True) for _, _, _, obj in seed.entries]
        for _, _, _, obj in seed.entries:
            rendered = seed.render(obj)
            rendered["metadata"]["labels"] = {"changed": "yes"}
            rendered["metadata"]["name"] = "changed"
            rendered["spec"] = {"changed": True}
            rendered["extra"] = 1
        other = self.template.seed_for(context("beta"))
        for _, _, _, obj in other.entries:
            other.render(obj)
        after = [json.dumps(seed.render(obj), sort_keys=True) for _, _, _, obj in seed.entries]
        self.assertEqual(after, before)

    def test_context(self) -> None:
        naive = ClusterContext("n", "n", datetime(2025, 1, 1))
        self.assertEqual(naive.created_at.tzinfo, timezone.utc)
        offset = ClusterContext(
            "o",
            "o",
            datetime(2025, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
        )
        self.assertEqual(offset.timestamp(), "2025-01-01T00:00:00Z")
        self.assertEqual(offset.timestamp(-90), "2024-12-31T23:58:30Z")


class LegacyFormatTests(SynchronousTestCase):
    """
    The earlier Go tool's summaries are converted to full objects.
    """

    def setUp(self) -> None:
        self.template = ClusterTemplate.load(FIXTURES / "legacy-cluster.yaml")
        self.seed = self.template.seed_for(context("gamma"))
        self.keys = by_key(self.seed)

    def render(self, key: tuple[str, str, str]) -> dict:
        return self.seed.render(self.keys[key])

    def test_version_from_nodes(self) -> None:
        """The nodes' version, without +k3s1, becomes /version's."""
        self.assertTrue(self.template.legacy)
        info = self.template.version_info
        self.assertEqual((info["gitVersion"], info["major"], info["minor"]), ("v1.28.5", "1", "28"))

    def test_nodes(self) -> None:
        node = self.render(("nodes", "", "gamma-node1"))
        labels = node["metadata"]["labels"]
        self.assertEqual(labels["node-role.kubernetes.io/etcd"], "true")
        self.assertEqual(node["status"]["capacity"]["memory"], "8Gi")
        self.assertEqual(node["status"]["allocatable"]["cpu"], "3800m")
        self.assertEqual(node["status"]["nodeInfo"]["kubeletVersion"], "v1.28.5+k3s1")
        self.assertEqual(
            node["status"]["addresses"][0],
            {"address": "10.244.244.1", "type": "InternalIP"},
        )
        self.assertEqual(len(node["status"]["addresses"]), 2)
        other = self.render(("nodes", "", "gamma-node2"))
        ready = [c for c in other["status"]["conditions"] if c["type"] == "Ready"][0]
        self.assertEqual(ready["status"], "False")

    def test_pods(self) -> None:
        from scaleagent.kube.table import pod_status_cells

        coredns = self.render(("pods", "kube-system", "coredns-6799fbcd5-lgj8v"))
        self.assertEqual(coredns["spec"]["nodeName"], "gamma-node1")
        self.assertEqual(coredns["status"]["hostIP"], "10.244.244.1")
        self.assertEqual(pod_status_cells(coredns, CREATED), ("1/1", "Running", "3"))
        grafana = self.render(("pods", "monitoring", "grafana-6b8c5d4f3e-def34"))
        self.assertEqual(pod_status_cells(grafana, CREATED), ("0/1", "CrashLoopBackOff", "7"))

    def test_services(self) -> None:
        traefik = self.render(("services", "kube-system", "traefik"))
        self.assertEqual(
            [(p["port"], p.get("nodePort"), p["protocol"]) for p in traefik["spec"]["ports"]],
            [(80, 32522, "TCP"), (443, 32443, "TCP")],
        )
        self.assertEqual(
            traefik["status"]["loadBalancer"]["ingress"],
            [{"ip": "10.244.244.1"}, {"ip": "10.244.244.3"}],
        )

    def test_data_and_skipped(self) -> None:
        secret = self.render(("secrets", "monitoring", "grafana-admin"))
        self.assertEqual(secret["data"], {"admin-user": "", "admin-password": ""})
        config = self.render(("configmaps", "kube-system", "traefik-config"))
        self.assertEqual(sorted(config["data"]), ["key-1", "key-2"])
        self.assertNotIn(("configmaps", "default", "kube-root-ca.crt"), self.keys)
        self.assertNotIn(("secrets", "default", "default-token-abc12"), self.keys)
        self.assertEqual(len(self.template.warnings), 2)

    def test_namespaces_and_deployments(self) -> None:
        self.assertIn(("namespaces", "", "monitoring"), self.keys)
        self.assertIn(("serviceaccounts", "monitoring", "default"), self.keys)
        deployment = self.render(("deployments", "monitoring", "grafana"))
        self.assertEqual(
            (deployment["spec"]["replicas"], deployment["status"]["readyReplicas"]),
            (1, 1),
        )


class ErrorTests(SynchronousTestCase):
    """
    Unusable templates raise L{TemplateError} naming file, line and key.
    """

    def error(self, text: str, validate_schema: bool = True) -> TemplateError:
        return self.assertRaises(
            TemplateError,
            ClusterTemplate.from_yaml,
            text,
            "cluster.yaml",
            validate_schema=validate_schema,
        )

    def test_format(self) -> None:
        error = TemplateError("must be a string", "cluster.yaml", 7, "version.minor")
        self.assertEqual(str(error), "cluster.yaml:7: version.minor: must be a string")
        self.assertEqual(str(TemplateError("empty", "x.yaml")), "x.yaml: empty")

    def test_missing_file(self) -> None:
        error = self.assertRaises(TemplateError, ClusterTemplate.load, FIXTURES / "absent.yaml")
        self.assertIn("cannot read the template", error.message)

    def test_invalid_yaml(self) -> None:
        error = self.error(VERSION + "objects:\n  bad: key: value\n")
        self.assertEqual(error.line, 4)
        self.assertIn("not valid YAML", error.message)

    def test_not_a_mapping(self) -> None:
        self.assertEqual(self.error("- a\n- b\n").line, 1)
        self.assertIn("empty", self.error("").message)

    def test_duplicate_key(self) -> None:
        error = self.error(VERSION + "objects: []\nobjects: []\n")
        self.assertEqual(error.line, 4)
        self.assertIn("duplicate key 'objects'", error.message)

    def test_unknown_key(self) -> None:
        error = self.error(VERSION + "object: []\n")
        self.assertEqual((error.line, error.key), (3, "object"))

    def test_version(self) -> None:
        self.assertEqual(self.error("objects: []\n").line, 1)
        error = self.error("version:\n  gitVersion: 1.28\n")
        self.assertEqual((error.line, error.key), (2, "version.gitVersion"))
        error = self.error("version:\n  gitVersion: v1.21.3\n")
        self.assertIn("at least 22", error.message)
        error = self.error("version:\n  gitVersion: v1.28.3\n  minor: \"27\"\n")
        self.assertEqual((error.line, error.key), (3, "version.minor"))
        error = self.error("version:\n  gitVersion: v1.28.3\n  minor: 28\n")
        self.assertIn("must be a string", error.message)
        error = self.error("version:\n  gitVersion: v1.28.3\n  colour: blue\n")
        self.assertEqual(error.key, "version.colour")

    def test_provider_marker_warns(self) -> None:
        template = ClusterTemplate.from_yaml(
            "version:\n  gitVersion: v1.28.15+k3s1\n",
            "cluster.yaml",
        )
        self.assertEqual(len(template.warnings), 1)
        self.assertIn("k3s", template.warnings[0])
        self.assertIn("cluster.yaml:2", template.warnings[0])

    def test_unknown_kind(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: v1
                  kind: Widget
                  metadata: {name: w}
                """
            )
        )
        self.assertEqual((error.line, error.key), (5, "objects[0].kind"))

    def test_not_storable(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: authentication.k8s.io/v1
                  kind: TokenReview
                  metadata: {name: r}
                """
            )
        )
        self.assertIn("not stored", error.message)

    def test_missing_name(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: v1
                  kind: Namespace
                  metadata:
                    labels: {}
                """
            )
        )
        self.assertEqual((error.line, error.key), (6, "objects[0].metadata.name"))

    def test_cluster_scoped_with_namespace(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: v1
                  kind: Node
                  metadata:
                    name: n
                    namespace: default
                """
            )
        )
        self.assertEqual((error.line, error.key), (8, "objects[0].metadata.namespace"))

    def test_label_must_be_string(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: v1
                  kind: Namespace
                  metadata:
                    name: n
                    labels:
                      enabled: yes
                """
            )
        )
        self.assertEqual((error.line, error.key), (9, "objects[0].metadata.labels.enabled"))
        self.assertIn("bool", error.message)

    def test_duplicate_object(self) -> None:
        namespace = NAMESPACE_N
        error = self.error(with_objects(namespace, namespace))
        self.assertEqual(error.line, 7)
        self.assertIn("first on line 4", error.message)

    def test_undefined_namespace(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: v1
                  kind: ConfigMap
                  metadata: {name: c, namespace: ghost}
                """
            )
        )
        self.assertEqual(error.line, 4)
        self.assertIn("'ghost'", error.message)

    def test_unknown_placeholder(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: v1
                  kind: Namespace
                  metadata:
                    name: "{{ cluster_id }}"
                """
            )
        )
        self.assertEqual((error.line, error.key), (7, "objects[0].metadata.name"))
        self.assertIn("{{ cluster_id }}", error.message)

    def test_bad_duration(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: v1
                  kind: Namespace
                  metadata:
                    name: n
                    creationTimestamp: "{{ created + 5 minutes }}"
                """
            )
        )
        self.assertEqual(error.line, 8)
        self.assertIn("bad duration", error.message)

    def test_bad_uid_placeholder(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: v1
                  kind: Namespace
                  metadata:
                    name: n
                    labels: {u: "{{ uid }}"}
                """
            )
        )
        self.assertIn("reference", error.message)
        error = self.error(
            with_objects(
                """\
                - apiVersion: v1
                  kind: Namespace
                  metadata:
                    name: n
                    labels: {u: "{{ uid Pod p }}"}
                """
            )
        )
        self.assertIn("namespaced", error.message)

    def test_schema(self) -> None:
        """Built-in objects are checked against the version's schema."""
        text = with_objects(
            NAMESPACE_N,
            """\
            - apiVersion: v1
              kind: ConfigMap
              metadata: {name: c, namespace: n}
              data:
                ok: fine
              dataa: {}
            """
        )
        error = self.error(text)
        self.assertEqual((error.line, error.key), (12, "objects[1].dataa"))
        self.assertIn("dataa", error.message)
        # Without the schema check the same template loads.
        ClusterTemplate.from_yaml(text, "cluster.yaml", validate_schema=False)
        nested = with_objects(
            NAMESPACE_N,
            """\
            - apiVersion: v1
              kind: Service
              metadata: {name: s, namespace: n}
              spec:
                ports:
                - port: web
            """
        )
        error = self.error(nested)
        self.assertEqual((error.line, error.key), (12, "objects[1].spec.ports[0].port"))

    def test_invalid_crd(self) -> None:
        error = self.error(
            with_objects(
                """\
                - apiVersion: apiextensions.k8s.io/v1
                  kind: CustomResourceDefinition
                  metadata: {name: x.example.com}
                  spec: {group: example.com}
                """
            ),
            validate_schema=False,
        )
        self.assertEqual((error.line, error.key), (4, "objects[0]"))

    def test_mixed_formats(self) -> None:
        error = self.error(VERSION + "objects: []\nnodes: []\n")
        self.assertEqual((error.line, error.key), (4, "nodes"))

    def test_legacy_errors(self) -> None:
        error = self.error("nodes:\n- name: n\n  colour: red\n")
        self.assertEqual((error.line, error.key), (3, "nodes[0].colour"))
        error = self.error("pods:\n- name: p\n  ready: yes\n")
        self.assertEqual(error.key, "pods[0].ready")
        error = self.error("services:\n- name: s\n  ports: eighty\n")
        self.assertEqual((error.line, error.key), (3, "services[0].ports"))

    def test_generated_fields_warn(self) -> None:
        template = ClusterTemplate.from_yaml(
            with_objects(
                """\
                - apiVersion: v1
                  kind: Namespace
                  metadata:
                    name: n
                    uid: 1234
                    resourceVersion: "9"
                """
            ),
            "cluster.yaml",
        )
        self.assertEqual(len(template.warnings), 2)
        seed = template.seed_for(context())
        namespace = seed.render(by_key(seed)[("namespaces", "", "n")])
        self.assertNotEqual(namespace["metadata"]["uid"], 1234)

    def test_unquoted_timestamp(self) -> None:
        """YAML reads unquoted timestamps as dates; they become RFC 3339."""
        template = ClusterTemplate.from_yaml(
            with_objects(
                NAMESPACE_N,
                """\
                - apiVersion: coordination.k8s.io/v1
                  kind: Lease
                  metadata: {name: l, namespace: n}
                  spec: {holderIdentity: x, acquireTime: 2024-05-01T10:00:00Z}
                """
            ),
            "cluster.yaml",
            validate_schema=False,
        )
        seed = template.seed_for(context())
        lease = seed.render(by_key(seed)[("leases", "n", "l")])
        self.assertEqual(lease["spec"]["acquireTime"], "2024-05-01T10:00:00Z")

    def test_copied_objects_unaffected(self) -> None:
        """A template built from a document does not keep the document."""
        text = (FIXTURES / "small.yaml").read_text()
        template = ClusterTemplate.from_yaml(text, "small.yaml")
        seed = template.seed_for(context())
        first = copy.deepcopy([seed.render(obj) for *_, obj in seed.entries])
        self.assertEqual([seed.render(obj) for *_, obj in seed.entries], first)
