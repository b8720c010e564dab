"""
Tests for L{scaleagent.kube.schema} and L{scaleagent.kube.openapi}.

The operation shapes expected here (ids, parameters, content types, kinds)
are those of a real kube-apiserver's documents for the same resources.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube import openapi
from scaleagent.kube.openapi import (
    DELETE_RETURNS_OBJECT,
    group_version_path,
    openapi_v2,
    openapi_v3,
)
from scaleagent.kube.resources import (
    BUILTIN_RESOURCES,
    ResourceType,
    resource_types_for_crd,
)
from scaleagent.kube.schema import (
    FieldPatchMeta,
    PatchLookupError,
    SchemaIndex,
    crd_schemas,
    custom_definition_name,
    prune_unknown_fields,
    shipped_minors,
    strict_decoding_message,
    unknown_fields,
)

MINOR = 35 if 35 in shipped_minors() else max(shipped_minors())
INDEX = SchemaIndex.load(MINOR)

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"

WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "listKind": "WidgetList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                    },
                },
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "example": {"ignored": True},
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "replicas": {"type": "integer"},
                                    "size": {"x-kubernetes-int-or-string": True},
                                    "free": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                    "template": {
                                        "type": "object",
                                        "x-kubernetes-embedded-resource": True,
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                    "maybe": {"type": "string", "nullable": True},
                                    "ports": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {"port": {"type": "integer"}},
                                        },
                                    },
                                },
                                "required": ["maybe", "replicas"],
                            },
                            "status": {
                                "type": "object",
                                "properties": {"replicas": {"type": "integer"}},
                            },
                        },
                    }
                },
            },
            {"name": "v1beta1", "served": False, "storage": False},
            {"name": "v1alpha1", "served": True, "storage": False},
        ],
    },
}

CUSTOM_INDEX = INDEX.extended(crd_schemas(WIDGETS, INDEX))
CUSTOM_RESOURCES = tuple(BUILTIN_RESOURCES) + resource_types_for_crd(WIDGETS)


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """
    Every (key, value) pair anywhere under C{node}.  Property names appear
    as keys too (JSONSchemaProps has properties named C{type} and
    C{$ref}); callers look at string values only.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def parameter_names(document: dict[str, Any], path: str, method: str) -> set[tuple[str, str]]:
    item = document["paths"][path]
    return {
        (parameter["name"], parameter["in"])
        for parameter in item.get("parameters", []) + item[method].get("parameters", [])
    }


class SchemaIndexTests(SynchronousTestCase):
    def test_loaded_once(self) -> None:
        """
        Every caller of a minor shares one index.
        """
        self.assertIs(SchemaIndex.load(MINOR), INDEX)
        self.assertEqual(INDEX.minor, MINOR)

    def test_nearest_minor(self) -> None:
        minors = shipped_minors()
        self.assertEqual(SchemaIndex.load(minors[0] - 5).minor, minors[0])
        self.assertEqual(SchemaIndex.load(minors[-1] + 5).minor, minors[-1])
        self.assertIs(SchemaIndex.load(minors[-1] + 5), SchemaIndex.load(minors[-1]))

    def test_lookup_by_kind(self) -> None:
        definition = INDEX.definition_for_kind("apps", "v1", "Deployment")
        self.assertEqual(definition.name, DEPLOYMENT)
        self.assertFalse(definition.custom)
        self.assertEqual(INDEX.name_for_kind("", "v1", "ConfigMap"), "io.k8s.api.core.v1.ConfigMap")
        self.assertIsNone(INDEX.definition_for_kind("apps", "v1", "Nothing"))
        self.assertIsNone(INDEX.definition("io.k8s.nothing"))

    def test_converter_artefacts_removed(self) -> None:
        """
        No nullable types and no apiVersion/kind enums: the apiserver
        publishes neither for built-in kinds.
        """
        for name in INDEX.names():
            schema = INDEX.schema(name)
            for key, value in walk(schema):
                if key == "type" and not isinstance(value, dict):
                    self.assertIsInstance(value, str, name)
            for property_name in ("apiVersion", "kind"):
                self.assertNotIn("enum", schema.get("properties", {}).get(property_name, {}), name)

    def test_int_or_string(self) -> None:
        name = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
        v3 = INDEX.openapi_v3_schema(name)
        self.assertEqual(v3["format"], "int-or-string")
        self.assertEqual(v3["oneOf"], [{"type": "integer"}, {"type": "string"}])
        v2 = INDEX.swagger_v2_schema(name)
        self.assertEqual((v2["type"], v2["format"]), ("string", "int-or-string"))
        self.assertNotIn("oneOf", v2)
        quantity = INDEX.swagger_v2_schema("io.k8s.apimachinery.pkg.api.resource.Quantity")
        self.assertEqual(quantity["type"], "string")

    def test_openapi_v3_references(self) -> None:
        """
        References point into components.schemas; a reference with a
        description is wrapped in allOf, as OpenAPI 3.0 ignores siblings of
        $ref.
        """
        deployment = INDEX.openapi_v3_schema(DEPLOYMENT)
        self.assertEqual(
            deployment["properties"]["metadata"]["allOf"],
            [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}],
        )
        self.assertIn("description", deployment["properties"]["metadata"])
        containers = INDEX.openapi_v3_schema("io.k8s.api.core.v1.PodSpec")["properties"]["containers"]
        self.assertEqual(containers["items"], {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"})
        self.assertEqual(containers["x-kubernetes-patch-merge-key"], "name")
        self.assertEqual(containers["x-kubernetes-patch-strategy"], "merge")
        self.assertEqual(
            deployment["x-kubernetes-group-version-kind"],
            [{"group": "apps", "kind": "Deployment", "version": "v1"}],
        )

    def test_swagger_v2_references(self) -> None:
        deployment = INDEX.swagger_v2_schema(DEPLOYMENT)
        self.assertEqual(
            deployment["properties"]["spec"]["$ref"], "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        )

    def test_closure(self) -> None:
        reachable = INDEX.closure([DEPLOYMENT])
        for name in (
            DEPLOYMENT,
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.api.core.v1.Container",
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        ):
            self.assertIn(name, reachable)
        self.assertNotIn("io.k8s.api.core.v1.Service", reachable)
        self.assertEqual(reachable, sorted(reachable))


class PatchSchemaTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.pod_spec, _ = (
            INDEX.definition_for_kind("apps", "v1", "Deployment")
            .patch_schema()
            .lookup_struct("spec")[0]
            .lookup_struct("template")[0]
            .lookup_struct("spec")
        )

    def test_merge_key(self) -> None:
        element, meta = self.pod_spec.lookup_slice("containers")
        self.assertEqual(meta, FieldPatchMeta(("merge",), "name"))
        self.assertEqual(element.definition_name, "io.k8s.api.core.v1.Container")
        self.assertEqual(element.name, "struct")
        _, meta = element.lookup_slice("ports")
        self.assertEqual(meta.merge_key, "containerPort")

    def test_retain_keys(self) -> None:
        _, meta = self.pod_spec.lookup_slice("volumes")
        self.assertEqual(meta, FieldPatchMeta(("merge", "retainKeys"), "name"))

    def test_primitive_merge_list(self) -> None:
        metadata, _ = INDEX.definition_for_kind("", "v1", "Namespace").patch_schema().lookup_struct("metadata")
        element, meta = metadata.lookup_slice("finalizers")
        self.assertEqual(meta, FieldPatchMeta(("merge",), ""))
        self.assertEqual(element.name, "string")

    def test_no_strategy(self) -> None:
        _, meta = self.pod_spec.lookup_slice("tolerations")
        self.assertEqual(meta, FieldPatchMeta())

    def test_case_insensitive_field(self) -> None:
        """
        Like encoding/json, the lookup falls back to a case-insensitive match.
        """
        _, meta = self.pod_spec.lookup_slice("Containers")
        self.assertEqual(meta.merge_key, "name")

    def test_unknown_field(self) -> None:
        error = self.assertRaises(PatchLookupError, self.pod_spec.lookup_struct, "bogus")
        self.assertEqual(
            str(error), 'unable to find api field in struct PodSpec for the json field "bogus"'
        )

    def test_map_has_no_fields(self) -> None:
        selector, _ = self.pod_spec.lookup_struct("nodeSelector")
        self.assertEqual(selector.name, "map")
        error = self.assertRaises(PatchLookupError, selector.lookup_struct, "disk")
        self.assertEqual(
            str(error), "merging an object in json but data type is not struct, instead is: map"
        )

    def test_field_path(self) -> None:
        deployment = INDEX.definition(DEPLOYMENT)
        self.assertEqual(
            deployment.field_patch_meta(("spec", "template", "spec", "containers", "env")),
            FieldPatchMeta(("merge",), "name"),
        )
        self.assertEqual(
            deployment.field_patch_meta(("spec", "strategy")), FieldPatchMeta(("retainKeys",), "")
        )
        self.assertEqual(deployment.field_patch_meta(("metadata", "name")), FieldPatchMeta())
        self.assertRaises(PatchLookupError, deployment.field_patch_meta, ("spec", "nope"))

    def test_slice_lookup_of_struct(self) -> None:
        error = self.assertRaises(PatchLookupError, self.pod_spec.lookup_slice, "affinity")
        self.assertEqual(str(error), "expected slice or array type, but got: struct")


class CustomResourceDefinitionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.definitions = crd_schemas(WIDGETS, INDEX)

    def test_served_versions(self) -> None:
        """
        A kind and a list kind per served version, named like the
        apiserver names them.
        """
        self.assertEqual(
            sorted(self.definitions),
            [
                "com.example.v1.Widget",
                "com.example.v1.WidgetList",
                "com.example.v1alpha1.Widget",
                "com.example.v1alpha1.WidgetList",
            ],
        )
        self.assertEqual(custom_definition_name("management.cattle.io", "v3", "Cluster"), "io.cattle.management.v3.Cluster")

    def test_kind(self) -> None:
        widget = self.definitions["com.example.v1.Widget"]
        self.assertEqual(
            widget["x-kubernetes-group-version-kind"],
            [{"group": "example.com", "kind": "Widget", "version": "v1"}],
        )
        self.assertEqual(
            widget["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        )
        self.assertEqual(widget["properties"]["apiVersion"]["type"], "string")
        self.assertNotIn("example", widget)
        self.assertEqual(
            widget["properties"]["spec"]["properties"]["size"]["anyOf"],
            [{"type": "integer"}, {"type": "string"}],
        )
        template = widget["properties"]["spec"]["properties"]["template"]
        self.assertEqual(sorted(template["properties"]), ["apiVersion", "kind", "metadata"])
        self.assertEqual(template["required"], ["kind", "apiVersion"])

    def test_version_without_schema(self) -> None:
        self.assertEqual(
            self.definitions["com.example.v1alpha1.Widget"],
            {
                "type": "object",
                "x-kubernetes-group-version-kind": [
                    {"group": "example.com", "kind": "Widget", "version": "v1alpha1"}
                ],
            },
        )

    def test_list_kind(self) -> None:
        listing = self.definitions["com.example.v1.WidgetList"]
        self.assertEqual(listing["required"], ["items"])
        self.assertEqual(listing["properties"]["items"]["items"], {"$ref": "#/definitions/com.example.v1.Widget"})
        self.assertEqual(
            listing["x-kubernetes-group-version-kind"],
            [{"group": "example.com", "kind": "WidgetList", "version": "v1"}],
        )

    def test_extended_index(self) -> None:
        """
        The extended index knows the custom kinds and shares everything
        built-in with the base index.
        """
        widget = CUSTOM_INDEX.definition_for_kind("example.com", "v1", "Widget")
        self.assertTrue(widget.custom)
        self.assertFalse(CUSTOM_INDEX.definition_for_kind("apps", "v1", "Deployment").custom)
        self.assertIs(CUSTOM_INDEX.schema(DEPLOYMENT), INDEX.schema(DEPLOYMENT))
        self.assertIs(CUSTOM_INDEX.openapi_v3_schema(DEPLOYMENT), INDEX.openapi_v3_schema(DEPLOYMENT))
        self.assertIsNone(INDEX.definition_for_kind("example.com", "v1", "Widget"))

    def test_swagger_v2_of_custom_schema(self) -> None:
        """
        Swagger 2.0 loses what kubectl's v2 parser cannot take: nullable
        types, the contents of preserved objects, junctors.
        """
        spec = CUSTOM_INDEX.swagger_v2_schema("com.example.v1.Widget")["properties"]["spec"]
        self.assertEqual(spec["properties"]["maybe"], {})
        self.assertEqual(spec["required"], ["replicas"])
        self.assertEqual(spec["properties"]["free"], {"x-kubernetes-preserve-unknown-fields": True})
        self.assertNotIn("anyOf", spec["properties"]["size"])
        v3 = CUSTOM_INDEX.openapi_v3_schema("com.example.v1.Widget")["properties"]["spec"]
        self.assertEqual(v3["properties"]["maybe"], {"nullable": True, "type": "string"})


class UnknownFieldTests(SynchronousTestCase):
    def deployment(self) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"a": "b"}, "bogus": 1},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "a", "image": "x"},
                            {"name": "b", "image": "y", "extra": True},
                        ],
                    }
                },
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "frobnicate": {"deep": {"deeper": 1}},
            },
        }

    def test_paths(self) -> None:
        definition = INDEX.definition(DEPLOYMENT)
        self.assertEqual(
            unknown_fields(definition, self.deployment()),
            ["metadata.bogus", "spec.template.spec.containers[1].extra", "spec.frobnicate"],
        )

    def test_message(self) -> None:
        self.assertEqual(
            strict_decoding_message(["spec.foo", 'a."b"']),
            'strict decoding error: unknown field "spec.foo", unknown field "a.\\"b\\""',
        )

    def test_prune(self) -> None:
        """
        Pruning removes exactly the unknown fields, from a copy.
        """
        definition = INDEX.definition(DEPLOYMENT)
        original = self.deployment()
        pruned = prune_unknown_fields(definition, original)
        self.assertEqual(unknown_fields(definition, pruned), [])
        self.assertEqual(pruned["metadata"], {"name": "d", "labels": {"a": "b"}})
        self.assertNotIn("frobnicate", pruned["spec"])
        self.assertEqual(pruned["spec"]["template"]["spec"]["containers"][1], {"name": "b", "image": "y"})
        self.assertEqual(original, self.deployment())

    def test_opaque_values(self) -> None:
        """
        RawExtension content and map values of any shape are not checked.
        """
        revision = INDEX.definition_for_kind("apps", "v1", "ControllerRevision")
        self.assertEqual(
            unknown_fields(revision, {"revision": 1, "data": {"anything": {"at": ["all"]}}}), []
        )
        config_map = INDEX.definition_for_kind("", "v1", "ConfigMap")
        self.assertEqual(unknown_fields(config_map, {"data": {"any.key/name": "v"}}), [])

    def test_struct_without_fields(self) -> None:
        """
        An empty struct (the CRD status subresource marker) has no fields to
        accept.
        """
        crd = INDEX.definition_for_kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
        obj = {"spec": {"versions": [{"name": "v1", "subresources": {"status": {"x": 1}}}]}}
        self.assertEqual(unknown_fields(crd, obj), ["spec.versions[0].subresources.status.x"])

    def test_custom_resource(self) -> None:
        widget = CUSTOM_INDEX.definition_for_kind("example.com", "v1", "Widget")
        obj = {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "nope": 1},
            "spec": {
                "replicas": 1,
                "size": "10%",
                "free": {"anything": {"goes": 1}},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {}},
                "ports": [{"port": 1}, {"port": 2, "protocol": "TCP"}],
                "unknown": True,
            },
            "status": {"replicas": 1, "ready": 1},
            "extra": {},
        }
        self.assertEqual(
            unknown_fields(widget, obj),
            [
                "metadata.nope",
                "spec.template.metadata.x",
                "spec.ports[1].protocol",
                "spec.unknown",
                "status.ready",
                "extra",
            ],
        )

    def test_wrong_types_are_not_unknown_fields(self) -> None:
        definition = INDEX.definition(DEPLOYMENT)
        self.assertEqual(unknown_fields(definition, {"spec": "text", "metadata": ["x"]}), [])


class OpenAPIV3Tests(SynchronousTestCase):
    def setUp(self) -> None:
        self.v3 = openapi_v3(CUSTOM_RESOURCES, CUSTOM_INDEX)

    def document(self, path: str) -> dict[str, Any]:
        found = self.v3.document(path)
        self.assertIsNotNone(found, path)
        return json.loads(found.body)

    def test_root(self) -> None:
        """
        The root lists every document with a URL carrying the hash of its
        bytes, as kube-openapi computes it.
        """
        root = json.loads(self.v3.root.body)
        self.assertEqual(set(root), {"paths"})
        for expected in ("api/v1", "apis/apps/v1", "apis/example.com/v1", "apis/apps", "api", "apis"):
            self.assertIn(expected, root["paths"])
        for path, entry in root["paths"].items():
            document = self.v3.document(path)
            digest = hashlib.sha512(document.body).hexdigest().upper()
            self.assertEqual(entry["serverRelativeURL"], f"/openapi/v3/{path}?hash={digest}")
            self.assertEqual(document.hash, digest)
            self.assertEqual(document.etag, f'"{digest}"')
        self.assertIs(self.v3.document("/apis/apps/v1/"), self.v3.document("apis/apps/v1"))
        self.assertIsNone(self.v3.document("apis/nothing/v1"))
        self.assertEqual(group_version_path("", "v1"), "api/v1")

    def test_deployment_operations(self) -> None:
        """
        The operations of deployments, with the apiserver's ids.
        """
        document = self.document("apis/apps/v1")
        self.assertEqual(document["openapi"], "3.0.0")
        found = {
            (path, method): operation["operationId"]
            for path, method, operation in operations(document)
            if "deployments" in path
        }
        base = "/apis/apps/v1"
        item = base + "/namespaces/{namespace}/deployments/{name}"
        self.assertEqual(
            found,
            {
                (base + "/deployments", "get"): "listAppsV1DeploymentForAllNamespaces",
                (base + "/namespaces/{namespace}/deployments", "get"): "listAppsV1NamespacedDeployment",
                (base + "/namespaces/{namespace}/deployments", "post"): "createAppsV1NamespacedDeployment",
                (base + "/namespaces/{namespace}/deployments", "delete"): "deleteAppsV1CollectionNamespacedDeployment",
                (item, "get"): "readAppsV1NamespacedDeployment",
                (item, "put"): "replaceAppsV1NamespacedDeployment",
                (item, "patch"): "patchAppsV1NamespacedDeployment",
                (item, "delete"): "deleteAppsV1NamespacedDeployment",
                (item + "/scale", "get"): "readAppsV1NamespacedDeploymentScale",
                (item + "/scale", "put"): "replaceAppsV1NamespacedDeploymentScale",
                (item + "/scale", "patch"): "patchAppsV1NamespacedDeploymentScale",
                (item + "/status", "get"): "readAppsV1NamespacedDeploymentStatus",
                (item + "/status", "put"): "replaceAppsV1NamespacedDeploymentStatus",
                (item + "/status", "patch"): "patchAppsV1NamespacedDeploymentStatus",
                (base + "/watch/deployments", "get"): "watchAppsV1DeploymentListForAllNamespaces",
                (base + "/watch/namespaces/{namespace}/deployments", "get"): "watchAppsV1NamespacedDeploymentList",
                (base + "/watch/namespaces/{namespace}/deployments/{name}", "get"): "watchAppsV1NamespacedDeployment",
            },
        )

    def test_deployment_patch(self) -> None:
        """
        What kubectl apply looks for: the PATCH operation with the kind, the
        fieldValidation query parameter and strategic merge patch.
        """
        document = self.document("apis/apps/v1")
        path = "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        patch = document["paths"][path]["patch"]
        self.assertEqual(
            patch["x-kubernetes-group-version-kind"],
            {"group": "apps", "kind": "Deployment", "version": "v1"},
        )
        self.assertEqual(patch["x-kubernetes-action"], "patch")
        self.assertEqual(patch["tags"], ["apps_v1"])
        self.assertEqual(
            parameter_names(document, path, "patch"),
            {
                ("name", "path"),
                ("namespace", "path"),
                ("pretty", "query"),
                ("dryRun", "query"),
                ("fieldManager", "query"),
                ("fieldValidation", "query"),
                ("force", "query"),
            },
        )
        self.assertEqual(
            sorted(patch["requestBody"]["content"]),
            [
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ],
        )
        self.assertTrue(patch["requestBody"]["required"])
        self.assertEqual(
            patch["responses"]["200"]["content"]["application/json"]["schema"],
            {"$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"},
        )
        self.assertEqual(patch["responses"]["401"], {"description": "Unauthorized"})
        scale = document["paths"][path + "/scale"]["patch"]
        self.assertEqual(
            scale["x-kubernetes-group-version-kind"],
            {"group": "autoscaling", "kind": "Scale", "version": "v1"},
        )

    def test_list_parameters(self) -> None:
        document = self.document("apis/apps/v1")
        path = "/apis/apps/v1/namespaces/{namespace}/deployments"
        self.assertEqual(
            {name for name, _ in parameter_names(document, path, "get")},
            {
                "namespace", "pretty", "allowWatchBookmarks", "continue", "fieldSelector",
                "labelSelector", "limit", "resourceVersion", "resourceVersionMatch",
                "sendInitialEvents", "timeoutSeconds", "watch",
            },
        )
        listing = document["paths"][path]["get"]
        self.assertIn("application/json;stream=watch", listing["responses"]["200"]["content"])
        # Parameters every operation of a path shares are the path's.
        self.assertEqual(
            [parameter["name"] for parameter in document["paths"][path]["parameters"]],
            ["namespace", "pretty"],
        )

    def test_references_resolve(self) -> None:
        """
        Every document holds every schema it refers to, and no other.
        """
        for path in self.v3.documents:
            document = self.document(path)
            schemas = document["components"].get("schemas", {})
            referenced = {
                value.removeprefix("#/components/schemas/")
                for key, value in walk(document)
                if key == "$ref" and isinstance(value, str)
            }
            self.assertEqual(referenced, set(schemas), path)

    def test_patch_metadata_published(self) -> None:
        schemas = self.document("apis/apps/v1")["components"]["schemas"]
        pod_spec = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]
        self.assertEqual(pod_spec["volumes"]["x-kubernetes-patch-strategy"], "merge,retainKeys")
        env = schemas["io.k8s.api.core.v1.Container"]["properties"]["env"]
        self.assertEqual(env["x-kubernetes-patch-merge-key"], "name")

    def test_core_subresources(self) -> None:
        document = self.document("api/v1")
        pod = "/api/v1/namespaces/{namespace}/pods/{name}"
        by_id = {
            operation["operationId"]: (path, method, operation)
            for path, method, operation in operations(document)
        }
        path, method, execute = by_id["connectCoreV1PostNamespacedPodExec"]
        self.assertEqual((path, method, execute["x-kubernetes-action"]), (pod + "/exec", "post", "connect"))
        self.assertEqual(execute["x-kubernetes-group-version-kind"]["kind"], "PodExecOptions")
        self.assertIn(("command", "query"), parameter_names(document, path, method))
        self.assertIn("connectCoreV1OptionsNamespacedPodProxyWithPath", by_id)
        _, _, log = by_id["readCoreV1NamespacedPodLog"]
        self.assertEqual(log["responses"]["200"]["content"]["text/plain"]["schema"], {"type": "string"})
        _, _, eviction = by_id["createCoreV1NamespacedPodEviction"]
        self.assertEqual(
            eviction["x-kubernetes-group-version-kind"],
            {"group": "policy", "kind": "Eviction", "version": "v1"},
        )
        _, _, token = by_id["createCoreV1NamespacedServiceAccountToken"]
        self.assertEqual(
            token["requestBody"]["content"]["*/*"]["schema"],
            {"$ref": "#/components/schemas/io.k8s.api.authentication.v1.TokenRequest"},
        )
        self.assertEqual(set(document["paths"]["/api/v1/namespaces/{name}/finalize"]) - {"parameters"}, {"put"})
        # Deleting a pod answers with the pod, deleting a secret with a Status.
        self.assertIn(("", "pods"), DELETE_RETURNS_OBJECT)
        deleted = by_id["deleteCoreV1NamespacedPod"][2]["responses"]["200"]["content"]["application/json"]
        self.assertEqual(deleted["schema"], {"$ref": "#/components/schemas/io.k8s.api.core.v1.Pod"})
        deleted = by_id["deleteCoreV1NamespacedSecret"][2]["responses"]["200"]["content"]["application/json"]
        self.assertEqual(
            deleted["schema"], {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status"}
        )
        self.assertNotIn("deleteCoreV1CollectionNamespace", by_id)

    def test_custom_resource_document(self) -> None:
        """
        A CRD's group/version looks like the apiextensions apiserver's: no
        strategic merge patch, JSON and YAML only, no watch paths.
        """
        document = self.document("apis/example.com/v1")
        self.assertEqual(document["info"], {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"})
        by_id = {operation["operationId"]: operation for _, _, operation in operations(document)}
        self.assertIn("listExampleComV1WidgetForAllNamespaces", by_id)
        self.assertIn("patchExampleComV1NamespacedWidgetScale", by_id)
        patch = by_id["patchExampleComV1NamespacedWidget"]
        self.assertEqual(
            sorted(patch["requestBody"]["content"]),
            ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"],
        )
        self.assertIn("fieldValidation", {parameter["name"] for parameter in patch["parameters"]})
        self.assertEqual(sorted(patch["responses"]["200"]["content"]), ["application/json", "application/yaml"])
        self.assertFalse([path for path in document["paths"] if "/watch/" in path])
        self.assertIn("com.example.v1.Widget", document["components"]["schemas"])
        self.assertNotIn("/apis/example.com/v1/", document["paths"])

    def test_discovery_documents(self) -> None:
        group = self.document("apis/apps")
        self.assertEqual(group["paths"]["/apis/apps/"]["get"]["operationId"], "getAppsAPIGroup")
        core = self.document("api")
        self.assertEqual(core["paths"]["/api/"]["get"]["operationId"], "getCoreAPIVersions")
        resources = self.document("apis/rbac.authorization.k8s.io/v1")
        self.assertEqual(
            resources["paths"]["/apis/rbac.authorization.k8s.io/v1/"]["get"]["operationId"],
            "getRbacAuthorizationV1APIResources",
        )

    def test_shared(self) -> None:
        """
        Equal inputs give the very same documents, so clusters share them.
        """
        again = openapi_v3(list(CUSTOM_RESOURCES), CUSTOM_INDEX.extended({}))
        self.assertIs(again, self.v3)
        builtin = openapi_v3(BUILTIN_RESOURCES, INDEX)
        self.assertIs(builtin.document("apis/apps/v1"), self.v3.document("apis/apps/v1"))

    def test_stable_hash(self) -> None:
        """
        Rebuilding gives the same bytes, so the hashes clients cache stay
        valid across restarts.
        """
        openapi._cache.clear()
        rebuilt = openapi_v3(CUSTOM_RESOURCES, CUSTOM_INDEX)
        self.assertIsNot(rebuilt, self.v3)
        self.assertEqual(rebuilt.root.body, self.v3.root.body)

    def test_resource_without_schema(self) -> None:
        """
        A resource the schemas do not know still gets its operations, with
        a placeholder schema that accepts any object.
        """
        gadget = ResourceType("example.org", "v1", "gadgets", "Gadget", False, custom=True)
        document = json.loads(openapi_v3([gadget], INDEX).document("apis/example.org/v1").body)
        schemas = document["components"]["schemas"]
        self.assertEqual(schemas["org.example.v1.Gadget"]["type"], "object")
        self.assertEqual(
            schemas["org.example.v1.GadgetList"]["properties"]["items"]["items"],
            {"$ref": "#/components/schemas/org.example.v1.Gadget"},
        )


class OpenAPIV2Tests(SynchronousTestCase):
    def setUp(self) -> None:
        self.document = json.loads(openapi_v2(CUSTOM_RESOURCES, CUSTOM_INDEX, "v1.35.6").body)

    def test_shape(self) -> None:
        self.assertEqual(self.document["swagger"], "2.0")
        self.assertEqual(self.document["info"], {"title": "Kubernetes", "version": "v1.35.6"})
        self.assertEqual(self.document["security"], [{"BearerToken": []}])
        referenced = {
            value.removeprefix("#/definitions/")
            for key, value in walk(self.document["paths"])
            if key == "$ref" and isinstance(value, str)
        }
        self.assertLessEqual(referenced, set(self.document["definitions"]))
        for key, value in walk(self.document["definitions"]):
            if key == "$ref" and isinstance(value, str):
                self.assertIn(value.removeprefix("#/definitions/"), self.document["definitions"])

    def test_patch_consumes(self) -> None:
        """
        kubectl's v2 code picks the patch type from consumes.
        """
        patch = self.document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
        self.assertIn("application/strategic-merge-patch+json", patch["consumes"])
        body = [parameter for parameter in patch["parameters"] if parameter["in"] == "body"]
        self.assertEqual(
            body,
            [
                {
                    "in": "body",
                    "name": "body",
                    "required": True,
                    "schema": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"},
                }
            ],
        )
        custom = self.document["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
        self.assertNotIn("application/strategic-merge-patch+json", custom["consumes"])

    def test_int_or_string(self) -> None:
        definition = self.document["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
        self.assertEqual(definition["type"], "string")
