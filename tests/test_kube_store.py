"""
Tests for L{scaleagent.kube.store} and L{scaleagent.kube.errors}.

Expected messages are kube-apiserver's (apimachinery and apiserver v0.35).
"""

import base64
import gc
import json
import random
import tracemalloc
from datetime import datetime, timezone
from typing import Optional

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube import errors
from scaleagent.kube.errors import APIError, FieldError, go_quote
from scaleagent.kube.resources import ResourceType
from scaleagent.kube.selectors import parse_label_selector
from scaleagent.kube.store import (
    ADDED,
    BOOKMARK,
    DELETED,
    INITIAL_EVENTS_END_ANNOTATION,
    MODIFIED,
    ObjectStore,
    SeedSet,
    validate_list_options,
    validate_watch_options,
)

NAMESPACES = ResourceType(
    "", "v1", "namespaces", "Namespace", False, subresources=("status", "finalize")
)
SECRETS = ResourceType("", "v1", "secrets", "Secret", True)
CONFIGMAPS = ResourceType("", "v1", "configmaps", "ConfigMap", True)
SERVICE_ACCOUNTS = ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True)
PODS = ResourceType("", "v1", "pods", "Pod", True, subresources=("status",))
SERVICES = ResourceType("", "v1", "services", "Service", True, subresources=("status",))
DEPLOYMENTS = ResourceType(
    "apps", "v1", "deployments", "Deployment", True, subresources=("status", "scale")
)
# The same storage seen through another version.
DEPLOYMENTS_V1BETA2 = ResourceType(
    "apps", "v1beta2", "deployments", "Deployment", True, subresources=("status", "scale")
)
NODES = ResourceType("", "v1", "nodes", "Node", False, subresources=("status",))
CLUSTER_ROLES = ResourceType(
    "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False
)
WIDGETS = ResourceType(
    "example.com", "v1", "widgets", "Widget", True, subresources=("status",), custom=True
)

NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
STAMP = "2024-01-02T03:04:05Z"
INITIAL = 100
TOKEN_TYPE = "kubernetes.io/service-account-token"
CONFLICT = (
    "the object has been modified; please apply your changes to the latest version "
    "and try again"
)


def seed_object(
    resource_type: ResourceType,
    namespace: str,
    name: str,
    labels: Optional[dict] = None,
    **body: object,
) -> tuple:
    """
    A seed tuple whose object is already a full dict (rendered by the
    counting render as is).
    """
    metadata: dict = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(
        uid=f"seed-{namespace}-{name}",
        resourceVersion="7",
        creationTimestamp="2023-05-06T07:08:09Z",
    )
    if labels:
        metadata["labels"] = labels
    obj = {"kind": resource_type.kind, "apiVersion": resource_type.api_version}
    obj["metadata"] = metadata
    obj.update(body)
    return (resource_type, namespace, name, obj)


def namespace_seed(name: str) -> tuple:
    return seed_object(
        NAMESPACES,
        "",
        name,
        {"kubernetes.io/metadata.name": name},
        spec={"finalizers": ["kubernetes"]},
        status={"phase": "Active"},
    )


BASE_SEEDS = SeedSet(
    [
        namespace_seed("default"),
        namespace_seed("kube-system"),
        namespace_seed("kube-public"),
        namespace_seed("cattle-system"),
        seed_object(
            CONFIGMAPS, "kube-system", "kube-root-ca.crt", {"app": "ca"}, data={"ca.crt": "x"}
        ),
        seed_object(CONFIGMAPS, "default", "kube-root-ca.crt", {"app": "ca"}, data={"ca.crt": "x"}),
        seed_object(CLUSTER_ROLES, "", "cluster-admin", rules=[{"verbs": ["*"]}]),
    ]
)


class CountingRender:
    """A render function that records which seeds it rendered."""

    def __init__(self) -> None:
        self.rendered: list[str] = []

    def __call__(self, seed: dict) -> dict:
        self.rendered.append(seed["metadata"]["name"])
        return seed


class ScriptedRandom:
    """Picks generateName characters from a script, in order."""

    def __init__(self, script: str) -> None:
        self._script = iter(script)

    def choice(self, sequence: str) -> str:
        character = next(self._script)
        assert character in sequence
        return character


def make_store(seeds=BASE_SEEDS, **options) -> ObjectStore:
    counter = iter(range(1, 1_000_000))
    options.setdefault("render", CountingRender())
    options.setdefault("initial_resource_version", INITIAL)
    options.setdefault("now", lambda: NOW)
    options.setdefault("uid_factory", lambda: f"uid-{next(counter)}")
    options.setdefault("rng", random.Random(4))
    return ObjectStore(seeds, **options)


class Recorder:
    """A watch callback or observer that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __call__(self, event_type: str, obj: dict) -> None:
        self.events.append((event_type, obj))

    def summary(self) -> list[tuple[str, Optional[str], str]]:
        return [
            (event_type, obj["metadata"].get("name"), obj["metadata"]["resourceVersion"])
            for event_type, obj in self.events
        ]


def secret(
    name: str, namespace: Optional[str] = None, labels: Optional[dict] = None, **body
) -> dict:
    metadata: dict = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, **body}


def deployment(name: str, replicas: int = 1, **metadata) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, **metadata},
        "spec": {"replicas": replicas},
    }


def decode_continue(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


class ErrorTests(SynchronousTestCase):
    """
    L{scaleagent.kube.errors} builds apimachinery's Status objects.
    """

    def test_not_found(self) -> None:
        self.assertEqual(
            errors.new_not_found(("", "namespaces"), "x").to_status(),
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": 'namespaces "x" not found',
                "reason": "NotFound",
                "details": {"name": "x", "kind": "namespaces"},
                "code": 404,
            },
        )

    def test_already_exists_grouped(self) -> None:
        error = errors.new_already_exists(("apps", "deployments"), "x")
        self.assertEqual(error.message, 'deployments.apps "x" already exists')
        self.assertEqual(
            error.to_status()["details"], {"name": "x", "group": "apps", "kind": "deployments"}
        )
        self.assertEqual((error.code, error.reason), (409, "AlreadyExists"))

    def test_conflict(self) -> None:
        error = errors.new_conflict(("", "namespaces"), "default", CONFLICT)
        self.assertEqual(
            error.message,
            'Operation cannot be fulfilled on namespaces "default": the object has been '
            "modified; please apply your changes to the latest version and try again",
        )
        self.assertEqual((error.code, error.reason), (409, "Conflict"))

    def test_invalid(self) -> None:
        """
        Each field error becomes a cause; the message aggregates them.
        """
        error = errors.new_invalid(
            ("apps", "Deployment"),
            "web",
            [
                FieldError.invalid("metadata.name", "Web", "bad name"),
                FieldError.required("spec.replicas"),
            ],
        )
        self.assertEqual(
            error.to_status(),
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": 'Deployment.apps "web" is invalid: [metadata.name: Invalid value: '
                '"Web": bad name, spec.replicas: Required value]',
                "reason": "Invalid",
                "details": {
                    "name": "web",
                    "group": "apps",
                    "kind": "Deployment",
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "message": 'Invalid value: "Web": bad name',
                            "field": "metadata.name",
                        },
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value",
                            "field": "spec.replicas",
                        },
                    ],
                },
                "code": 422,
            },
        )

    def test_field_error_values(self) -> None:
        """
        Bad values print as Go prints them.
        """
        self.assertEqual(str(FieldError.invalid("a", 3, "x")), "a: Invalid value: 3: x")
        self.assertEqual(str(FieldError.invalid("a", True, "x")), "a: Invalid value: true: x")
        self.assertEqual(str(FieldError.invalid("a", ["x"], "y")), 'a: Invalid value: ["x"]: y')
        self.assertEqual(str(FieldError.forbidden("a", "no")), "a: Forbidden: no")
        self.assertEqual(
            str(FieldError.not_supported("a", "x", ["b", "c"])),
            'a: Unsupported value: "x": supported values: "b", "c"',
        )
        self.assertEqual(
            str(FieldError.too_long("a", 10)), "a: Too long: may not be more than 10 bytes"
        )

    def test_go_quote(self) -> None:
        self.assertEqual(go_quote('a"b\\c\n\x01é\u200b'), '"a\\"b\\\\c\\n\\x01é\\u200b"')

    def test_forbidden(self) -> None:
        self.assertEqual(
            errors.new_forbidden(
                ("", "namespaces"), "default", "this namespace may not be deleted"
            ).message,
            'namespaces "default" is forbidden: this namespace may not be deleted',
        )
        self.assertEqual(
            errors.new_forbidden(("", "pods"), "", "no").message, "pods is forbidden: no"
        )
        self.assertEqual(errors.new_forbidden(("", ""), "", "no").message, "forbidden: no")

    def test_method_not_supported(self) -> None:
        error = errors.new_method_not_supported(("apps", "deployments"), "watch")
        self.assertEqual(
            error.message, 'watch is not supported on resources of kind "deployments.apps"'
        )
        self.assertEqual(error.to_status()["details"], {"group": "apps", "kind": "deployments"})
        self.assertEqual(error.code, 405)

    def test_too_large_resource_version(self) -> None:
        """
        client-go recognises this 504 by its cause.
        """
        status = errors.new_too_large_resource_version(20, 10, 1).to_status()
        self.assertEqual(status["message"], "Timeout: Too large resource version: 20, current: 10")
        self.assertEqual((status["reason"], status["code"]), ("Timeout", 504))
        self.assertEqual(
            status["details"],
            {
                "causes": [
                    {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
                ],
                "retryAfterSeconds": 1,
            },
        )

    def test_expired_with_continue(self) -> None:
        status = errors.new_resource_expired("gone", continue_token="abc").to_status()
        self.assertEqual(status["metadata"], {"continue": "abc"})
        self.assertEqual((status["reason"], status["code"]), ("Expired", 410))
        self.assertNotIn("details", status)

    def test_internal_and_unknown(self) -> None:
        internal = errors.new_internal_error("boom").to_status()
        self.assertEqual(internal["message"], "Internal error occurred: boom")
        self.assertEqual(internal["details"], {"causes": [{"message": "boom"}]})
        unknown = errors.new_unknown(500, "strange").to_status()
        self.assertNotIn("reason", unknown)
        self.assertEqual(unknown["code"], 500)

    def test_media_types(self) -> None:
        self.assertEqual(
            errors.new_not_acceptable(["application/json", "application/yaml"]).message,
            "only the following media types are accepted: application/json, application/yaml",
        )
        self.assertEqual(errors.new_unsupported_media_type(["application/json"]).code, 415)

    def test_success_status(self) -> None:
        self.assertEqual(
            errors.success_status("x", "", "configmaps", "u-1"),
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": "x", "kind": "configmaps", "uid": "u-1"},
            },
        )


class CreateTests(SynchronousTestCase):
    """
    L{ObjectStore.create}.
    """

    def test_system_fields(self) -> None:
        """
        The store sets uid, creationTimestamp and the next resourceVersion,
        and keeps metadata in the apiserver's order.
        """
        store = make_store()
        created = store.create(SECRETS, "default", secret("s", labels={"a": "b"}, type="Opaque"))
        self.assertEqual(
            created,
            {
                "kind": "Secret",
                "apiVersion": "v1",
                "metadata": {
                    "name": "s",
                    "namespace": "default",
                    "uid": "uid-1",
                    "resourceVersion": str(INITIAL + 1),
                    "creationTimestamp": STAMP,
                    "labels": {"a": "b"},
                },
                "type": "Opaque",
            },
        )
        self.assertEqual(list(created), ["kind", "apiVersion", "metadata", "type"])
        self.assertIs(store.get(SECRETS, "default", "s"), created)
        self.assertEqual(store.resource_version, INITIAL + 1)

    def test_input_untouched(self) -> None:
        """
        The caller's dict is not changed.
        """
        store = make_store()
        body = secret("s", labels={"a": "b"})
        snapshot = json.dumps(body, sort_keys=True)
        store.create(SECRETS, "default", body)
        self.assertEqual(json.dumps(body, sort_keys=True), snapshot)

    def test_type_defaulted(self) -> None:
        """
        A body without apiVersion and kind gets them from the resource.
        """
        created = make_store().create(CONFIGMAPS, "default", {"metadata": {"name": "c"}})
        self.assertEqual((created["apiVersion"], created["kind"]), ("v1", "ConfigMap"))

    def test_wrong_api_version(self) -> None:
        body = deployment("d")
        body["apiVersion"] = "apps/v1beta1"
        error = self.assertRaises(APIError, make_store().create, DEPLOYMENTS, "default", body)
        self.assertEqual(
            (error.code, error.message),
            (
                400,
                "the API version in the data (apps/v1beta1) does not match the expected API "
                "version (apps/v1)",
            ),
        )

    def test_wrong_kind(self) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
        error = self.assertRaises(APIError, make_store().create, SECRETS, "default", body)
        self.assertEqual(error.code, 400)
        self.assertTrue(
            error.message.startswith('ConfigMap in version "v1" cannot be handled as a Secret: ')
        )

    def test_wrong_metadata_types(self) -> None:
        store = make_store()
        error = self.assertRaises(
            APIError, store.create, SECRETS, "default", secret("s", labels={"a": 1})
        )
        self.assertEqual(
            error.message,
            'Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal '
            "number into Go struct field ObjectMeta.metadata.labels of type string",
        )
        error = self.assertRaises(
            APIError,
            store.create,
            SECRETS,
            "default",
            {"metadata": {"name": "s", "finalizers": "a"}},
        )
        self.assertEqual(error.code, 400)

    def test_client_system_fields_dropped(self) -> None:
        """
        Client-set uid, creationTimestamp and deletionTimestamp are not kept.
        """
        body = secret("s")
        body["metadata"].update(
            uid="mine",
            creationTimestamp="2000-01-01T00:00:00Z",
            deletionTimestamp="2000-01-01T00:00:00Z",
            deletionGracePeriodSeconds=30, resourceVersion="",
        )
        created = make_store().create(SECRETS, "default", body)
        metadata = created["metadata"]
        self.assertEqual(metadata["uid"], "uid-1")
        self.assertEqual(metadata["creationTimestamp"], STAMP)
        self.assertNotIn("deletionTimestamp", metadata)
        self.assertNotIn("deletionGracePeriodSeconds", metadata)

    def test_resource_version_set(self) -> None:
        """
        A resourceVersion on a new object is refused as etcd3 storage
        refuses it: a 500 without a reason.
        """
        body = secret("s")
        body["metadata"]["resourceVersion"] = "5"
        error = self.assertRaises(APIError, make_store().create, SECRETS, "default", body)
        self.assertEqual(
            (error.code, error.reason, error.message),
            (500, "", "resourceVersion should not be set on objects to be created"),
        )
        body["metadata"]["resourceVersion"] = "0"
        self.assertEqual(
            make_store().create(SECRETS, "default", body)["metadata"]["resourceVersion"],
            str(INITIAL + 1),
        )

    def test_generate_name(self) -> None:
        """
        A name from generateName gets five characters of the apiserver's
        alphabet.
        """
        store = make_store(rng=ScriptedRandom("bcdfg"))
        created = store.create(SECRETS, "default", {"metadata": {"generateName": "token-"}})
        self.assertEqual(created["metadata"]["name"], "token-bcdfg")
        self.assertEqual(created["metadata"]["generateName"], "token-")

    def test_generate_name_random(self) -> None:
        created = make_store(rng=None).create(
            SECRETS, "default", {"metadata": {"generateName": "t-"}}
        )
        name = created["metadata"]["name"]
        self.assertEqual(len(name), 7)
        self.assertTrue(set(name[2:]) <= set("bcdfghjklmnpqrstvwxz2456789"))

    def test_generate_name_truncated(self) -> None:
        store = make_store(rng=ScriptedRandom("zzzzz"))
        created = store.create(SECRETS, "default", {"metadata": {"generateName": "a" * 70}})
        self.assertEqual(created["metadata"]["name"], "a" * 58 + "zzzzz")

    def test_generate_name_collision(self) -> None:
        """
        A generated name that is taken is drawn again.
        """
        store = make_store(rng=ScriptedRandom("bbbbb" + "bbbbb" + "ccccc"))
        store.create(SECRETS, "default", {"metadata": {"generateName": "t-"}})
        second = store.create(SECRETS, "default", {"metadata": {"generateName": "t-"}})
        self.assertEqual(second["metadata"]["name"], "t-ccccc")

    def test_generate_name_exhausted(self) -> None:
        """
        After eight collisions the apiserver gives up with a 409 that asks
        to retry.
        """
        store = make_store(rng=ScriptedRandom("b" * 5 * 9))
        store.create(SECRETS, "default", {"metadata": {"generateName": "t-"}})
        error = self.assertRaises(
            APIError, store.create, SECRETS, "default", {"metadata": {"generateName": "t-"}}
        )
        self.assertEqual(
            error.to_status(),
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": 'secrets "t-bbbbb" already exists, the server was not able to '
                "generate a unique name for the object",
                "reason": "AlreadyExists",
                "details": {"name": "t-bbbbb", "kind": "secrets", "retryAfterSeconds": 1},
                "code": 409,
            },
        )

    def test_name_required(self) -> None:
        error = self.assertRaises(
            APIError, make_store().create, SECRETS, "default", {"metadata": {}}
        )
        self.assertEqual(
            (error.code, error.message),
            (
                422,
                'Secret "" is invalid: metadata.name: Required value: name or generateName is '
                "required",
            ),
        )

    def test_name_rules(self) -> None:
        """
        Names follow each resource's rule: DNS labels for namespaces,
        DNS-1035 labels for services, path segments for RBAC, DNS subdomains
        otherwise.
        """
        store = make_store()
        error = self.assertRaises(
            APIError, store.create, NAMESPACES, "", {"metadata": {"name": "a.b"}}
        )
        self.assertEqual(
            error.message,
            'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain '
            "dots",
        )
        self.assertEqual(error.to_status()["details"]["causes"][0]["field"], "metadata.name")
        self.assertEqual(store.create(SECRETS, "default", secret("a.b"))["metadata"]["name"], "a.b")
        self.assertRaises(APIError, store.create, SECRETS, "default", secret("A"))
        error = self.assertRaises(
            APIError, store.create, SERVICES, "default", {"metadata": {"name": "1abc"}}
        )
        self.assertIn("a DNS-1035 label must consist of", error.message)
        store.create(CLUSTER_ROLES, "", {"metadata": {"name": "system:controller:x"}})
        error = self.assertRaises(
            APIError, store.create, CLUSTER_ROLES, "", {"metadata": {"name": "a/b"}}
        )
        self.assertEqual(
            error.message,
            'ClusterRole.rbac.authorization.k8s.io "a/b" is invalid: metadata.name: '
            "Invalid value: \"a/b\": may not contain '/'",
        )

    def test_labels_validated(self) -> None:
        error = self.assertRaises(
            APIError, make_store().create, SECRETS, "default", secret("s", labels={"a": "-x"})
        )
        self.assertEqual(error.code, 422)
        self.assertTrue(
            error.message.startswith(
                'Secret "s" is invalid: metadata.labels: Invalid value: "-x": a valid label'
            )
        )

    def test_namespace_mismatch(self) -> None:
        error = self.assertRaises(
            APIError, make_store().create, SECRETS, "default", secret("s", namespace="kube-system")
        )
        self.assertEqual(
            (error.code, error.message),
            (
                400,
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            ),
        )

    def test_namespace_from_request(self) -> None:
        created = make_store().create(SECRETS, "default", secret("s"))
        self.assertEqual(created["metadata"]["namespace"], "default")

    def test_cluster_scoped_namespace_cleared(self) -> None:
        created = make_store().create(
            CLUSTER_ROLES, "", {"metadata": {"name": "r", "namespace": "default"}}
        )
        self.assertNotIn("namespace", created["metadata"])

    def test_namespace_missing(self) -> None:
        error = self.assertRaises(APIError, make_store().create, SECRETS, "nope", secret("s"))
        self.assertEqual(
            error.to_status(), errors.new_not_found(("", "namespaces"), "nope").to_status()
        )

    def test_namespace_terminating(self) -> None:
        store = make_store()
        store.create(NAMESPACES, "", {"metadata": {"name": "doomed"}})
        store.delete(NAMESPACES, "", "doomed")
        error = self.assertRaises(
            APIError, store.create, SECRETS, "doomed", {"metadata": {"generateName": "t-"}}
        )
        self.assertEqual(
            error.to_status(),
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": 'secrets "t-" is forbidden: unable to create new content in namespace '
                "doomed because it is being terminated",
                "reason": "Forbidden",
                "details": {
                    "name": "t-",
                    "kind": "secrets",
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": "namespace doomed is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
                "code": 403,
            },
        )

    def test_already_exists(self) -> None:
        store = make_store()
        store.create(SECRETS, "default", secret("s"))
        error = self.assertRaises(APIError, store.create, SECRETS, "default", secret("s"))
        self.assertEqual((error.code, error.message), (409, 'secrets "s" already exists'))
        error = self.assertRaises(
            APIError,
            store.create,
            CONFIGMAPS,
            "default",
            {"metadata": {"name": "kube-root-ca.crt"}},
        )
        self.assertEqual(error.reason, "AlreadyExists")

    def test_already_exists_being_deleted(self) -> None:
        store = make_store()
        store.create(SECRETS, "default", secret("s", **{}))
        store.update(
            SECRETS, "default", "s", {"metadata": {"name": "s", "finalizers": ["example.com/hold"]}}
        )
        store.delete(SECRETS, "default", "s")
        error = self.assertRaises(APIError, store.create, SECRETS, "default", secret("s"))
        self.assertEqual(error.message, 'object is being deleted: secrets "s" already exists')

    def test_status_dropped(self) -> None:
        """
        Resources with a status subresource lose the client's status and
        get generation 1 for their spec.
        """
        store = make_store()
        body = deployment("d")
        body["status"] = {"replicas": 5}
        created = store.create(DEPLOYMENTS, "default", body)
        self.assertEqual(created["status"], {})
        self.assertEqual(created["metadata"]["generation"], 1)
        widget = store.create(
            WIDGETS, "default", {"metadata": {"name": "w"}, "spec": {}, "status": {"a": 1}}
        )
        self.assertNotIn("status", widget)

    def test_custom_resource_generation(self) -> None:
        """
        A custom resource starts at generation 1 even without a spec, and
        any change outside metadata and status counts.
        """
        store = make_store()
        created = store.create(WIDGETS, "default", {"metadata": {"name": "w"}, "size": 1})
        self.assertEqual(created["metadata"]["generation"], 1)
        updated = store.update(WIDGETS, "default", "w", {"metadata": {"name": "w"}, "size": 2})
        self.assertEqual(updated["metadata"]["generation"], 2)

    def test_status_kept_without_subresource(self) -> None:
        gadgets = ResourceType("example.com", "v1", "gadgets", "Gadget", True, custom=True)
        created = make_store().create(
            gadgets, "default", {"metadata": {"name": "c"}, "status": {"a": 1}}
        )
        self.assertEqual(created["status"], {"a": 1})

    def test_unknown_fields_of_built_in_kinds_dropped(self) -> None:
        """
        A built-in kind is decoded into its Go type: what the type does not
        have (a ConfigMap has no status) is gone.
        """
        created = make_store().create(
            CONFIGMAPS, "default", {"metadata": {"name": "c"}, "status": {"a": 1}}
        )
        self.assertNotIn("status", created)
        self.assertNotIn("generation", created["metadata"])

    def test_no_generation(self) -> None:
        """
        Services have a spec but no generation, as in kube-apiserver.
        """
        created = make_store().create(SERVICES, "default", {"metadata": {"name": "s"}, "spec": {}})
        self.assertNotIn("generation", created["metadata"])

    def test_client_generation_replaced(self) -> None:
        created = make_store().create(DEPLOYMENTS, "default", deployment("d", generation=7))
        self.assertEqual(created["metadata"]["generation"], 1)

    def test_namespace_defaults(self) -> None:
        """
        A namespace is Active, has the kubernetes finalizer and labels itself.
        """
        created = make_store().create(
            NAMESPACES,
            "",
            {
                "metadata": {"name": "n"},
                "spec": {"finalizers": ["x.io/f"]},
                "status": {"phase": "Terminating"},
            },
        )
        self.assertEqual(created["spec"], {"finalizers": ["x.io/f", "kubernetes"]})
        self.assertEqual(created["status"], {"phase": "Active"})
        self.assertEqual(created["metadata"]["labels"], {"kubernetes.io/metadata.name": "n"})
        self.assertNotIn("generation", created["metadata"])

    def test_dry_run(self) -> None:
        """
        A dry run answers with the object but stores nothing.
        """
        store = make_store()
        recorder = Recorder()
        store.watch(SECRETS, send_initial_events=False, callback=recorder)
        result = store.create(SECRETS, "default", secret("s"), dry_run=True)
        self.assertEqual(result["metadata"]["name"], "s")
        self.assertNotIn("resourceVersion", result["metadata"])
        self.assertRaises(APIError, store.get, SECRETS, "default", "s")
        self.assertEqual(
            (store.resource_version, store.generation, recorder.events), (INITIAL, 0, [])
        )


class UpdateTests(SynchronousTestCase):
    """
    L{ObjectStore.update}.
    """

    def setUp(self) -> None:
        self.store = make_store()
        self.created = self.store.create(DEPLOYMENTS, "default", deployment("d"))

    def test_conflict(self) -> None:
        """
        A stale resourceVersion is a conflict.
        """
        body = deployment("d", 2, resourceVersion="5")
        error = self.assertRaises(APIError, self.store.update, DEPLOYMENTS, "default", "d", body)
        self.assertEqual(
            error.to_status(),
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f'Operation cannot be fulfilled on deployments.apps "d": {CONFLICT}',
                "reason": "Conflict",
                "details": {"name": "d", "group": "apps", "kind": "deployments"},
                "code": 409,
            },
        )

    def test_current_version(self) -> None:
        version = self.created["metadata"]["resourceVersion"]
        updated = self.store.update(
            DEPLOYMENTS, "default", "d", deployment("d", 2, resourceVersion=version)
        )
        self.assertEqual(updated["metadata"]["resourceVersion"], str(INITIAL + 2))
        self.assertEqual(updated["spec"]["replicas"], 2)
        self.assertIs(self.store.get(DEPLOYMENTS, "default", "d"), updated)

    def test_unconditional(self) -> None:
        """
        Without a resourceVersion the update is unconditional.
        """
        updated = self.store.update(DEPLOYMENTS, "default", "d", deployment("d", 3))
        self.assertEqual(updated["spec"]["replicas"], 3)

    def test_not_found(self) -> None:
        error = self.assertRaises(
            APIError, self.store.update, DEPLOYMENTS, "default", "x", deployment("x")
        )
        self.assertEqual(error.message, 'deployments.apps "x" not found')

    def test_name_mismatch(self) -> None:
        error = self.assertRaises(
            APIError, self.store.update, DEPLOYMENTS, "default", "d", deployment("e")
        )
        self.assertEqual(
            (error.code, error.message),
            (400, "the name of the object (e) does not match the name on the URL (d)"),
        )

    def test_namespace_mismatch(self) -> None:
        error = self.assertRaises(
            APIError,
            self.store.update,
            DEPLOYMENTS,
            "default",
            "d",
            deployment("d", namespace="other"),
        )
        self.assertEqual(
            error.message,
            "the namespace of the object (other) does not match the namespace on the request "
            "(default)",
        )

    def test_keeps_identity(self) -> None:
        """
        uid and creationTimestamp stay; a different uid is refused.
        """
        updated = self.store.update(
            DEPLOYMENTS,
            "default",
            "d",
            deployment("d", 2, creationTimestamp="2000-01-01T00:00:00Z"),
        )
        self.assertEqual(updated["metadata"]["uid"], "uid-1")
        self.assertEqual(updated["metadata"]["creationTimestamp"], STAMP)
        error = self.assertRaises(
            APIError, self.store.update, DEPLOYMENTS, "default", "d", deployment("d", uid="other")
        )
        self.assertEqual(
            error.message,
            'Deployment.apps "d" is invalid: metadata.uid: Invalid value: "other": field is '
            "immutable",
        )

    def test_generation(self) -> None:
        """
        generation counts spec changes, not metadata changes.
        """
        updated = self.store.update(DEPLOYMENTS, "default", "d", deployment("d", 2))
        self.assertEqual(updated["metadata"]["generation"], 2)
        relabelled = self.store.update(
            DEPLOYMENTS, "default", "d", deployment("d", 2, labels={"a": "b"})
        )
        self.assertEqual(relabelled["metadata"]["generation"], 2)
        self.assertEqual(relabelled["metadata"]["labels"], {"a": "b"})

    def test_status_kept_on_main_resource(self) -> None:
        with_status = self.store.update(
            DEPLOYMENTS,
            "default",
            "d",
            {**deployment("d"), "status": {"replicas": 1}},
            subresource="status",
        )
        self.assertEqual(with_status["status"], {"replicas": 1})
        updated = self.store.update(
            DEPLOYMENTS, "default", "d", {**deployment("d", 4), "status": {"replicas": 9}}
        )
        self.assertEqual(updated["status"], {"replicas": 1})
        self.assertEqual(updated["spec"]["replicas"], 4)

    def test_status_subresource(self) -> None:
        """
        A status update changes the status and nothing else.
        """
        body = deployment("d", 9, labels={"x": "y"})
        body["status"] = {"readyReplicas": 1}
        updated = self.store.update(DEPLOYMENTS, "default", "d", body, subresource="status")
        self.assertEqual(updated["status"], {"readyReplicas": 1})
        self.assertEqual(updated["spec"], self.created["spec"])
        self.assertEqual(updated["spec"]["replicas"], 1)
        self.assertNotIn("labels", updated["metadata"])
        self.assertEqual(updated["metadata"]["generation"], 1)

    def test_status_subresource_takes_metadata(self) -> None:
        """
        Most built-in status updates take the request's metadata (a real
        server changes a node's labels through nodes/status) but keep the
        spec.
        """
        store = make_store()
        node = store.create(
            NODES, "", {"metadata": {"name": "n1", "labels": {"a": "1"}}, "spec": {"podCIDR": "x"}}
        )
        body = {
            **node,
            "metadata": {**node["metadata"], "labels": {"a": "2"}},
            "spec": {"unschedulable": True},
            "status": {"phase": "Running"},
        }
        updated = store.update(NODES, "", "n1", body, subresource="status")
        self.assertEqual(updated["metadata"]["labels"], {"a": "2"})
        self.assertEqual(updated["spec"], {"podCIDR": "x", "podCIDRs": ["x"]})
        self.assertEqual(updated["status"]["phase"], "Running")

    def test_custom_status_subresource(self) -> None:
        """
        A custom resource's status update changes only the status.
        """
        store = make_store()
        store.create(WIDGETS, "default", {"metadata": {"name": "w"}, "spec": {"size": 1}})
        body = {
            "metadata": {"name": "w", "labels": {"a": "b"}},
            "spec": {"size": 2},
            "status": {"ready": True},
        }
        updated = store.update(WIDGETS, "default", "w", body, subresource="status")
        self.assertEqual((updated["status"], updated["spec"]), ({"ready": True}, {"size": 1}))
        self.assertNotIn("labels", updated["metadata"])

    def test_status_conflict(self) -> None:
        body = {**deployment("d", resourceVersion="3"), "status": {}}
        error = self.assertRaises(
            APIError, self.store.update, DEPLOYMENTS, "default", "d", body, subresource="status"
        )
        self.assertEqual(error.reason, "Conflict")

    def test_unknown_subresource(self) -> None:
        error = self.assertRaises(
            APIError,
            self.store.update,
            DEPLOYMENTS,
            "default",
            "d",
            deployment("d"),
            subresource="scale",
        )
        self.assertEqual(
            error.to_status(),
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "the server could not find the requested resource",
                "reason": "NotFound",
                "details": {},
                "code": 404,
            },
        )

    def test_no_op(self) -> None:
        """
        An update that changes nothing commits nothing.
        """
        recorder = Recorder()
        self.store.watch(DEPLOYMENTS, send_initial_events=False, callback=recorder)
        generation = self.store.generation
        result = self.store.update(DEPLOYMENTS, "default", "d", deployment("d"))
        self.assertEqual(result, self.created)
        self.assertEqual(self.store.resource_version, INITIAL + 1)
        self.assertEqual(self.store.generation, generation)
        self.assertEqual(recorder.events, [])

    def test_seed_update(self) -> None:
        store = make_store()
        current = store.get(CONFIGMAPS, "default", "kube-root-ca.crt")
        body = {**current, "data": {"ca.crt": "y"}}
        updated = store.update(CONFIGMAPS, "default", "kube-root-ca.crt", body)
        self.assertEqual(updated["metadata"]["uid"], "seed-default-kube-root-ca.crt")
        self.assertEqual(updated["data"], {"ca.crt": "y"})
        self.assertEqual(updated["metadata"]["resourceVersion"], str(INITIAL + 1))

    def test_labels_validated(self) -> None:
        error = self.assertRaises(
            APIError,
            self.store.update,
            DEPLOYMENTS,
            "default",
            "d",
            deployment("d", labels={"a b": "c"}),
        )
        self.assertEqual(error.code, 422)

    def test_namespace_spec_and_status_kept(self) -> None:
        """
        A namespace PUT can change neither its spec finalizers nor its
        status; the finalize subresource changes the finalizers.
        """
        store = make_store()
        namespace = store.create(NAMESPACES, "", {"metadata": {"name": "n"}})
        body = {**namespace, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}
        self.assertEqual(store.update(NAMESPACES, "", "n", body), namespace)
        finalized = store.update(NAMESPACES, "", "n", body, subresource="finalize")
        # No finalizers left: the (omitempty) list is gone.
        self.assertEqual(finalized["spec"], {})
        self.assertEqual(finalized["status"], {"phase": "Active"})

    def test_namespace_label_defaulted(self) -> None:
        store = make_store()
        store.create(NAMESPACES, "", {"metadata": {"name": "n"}})
        updated = store.update(
            NAMESPACES, "", "n", {"metadata": {"name": "n", "labels": {"a": "b"}}}
        )
        self.assertEqual(
            updated["metadata"]["labels"], {"a": "b", "kubernetes.io/metadata.name": "n"}
        )

    def test_no_new_finalizers_while_deleting(self) -> None:
        store = make_store()
        store.create(SECRETS, "default", secret("s"))
        store.update(SECRETS, "default", "s", {"metadata": {"name": "s", "finalizers": ["a.io/x"]}})
        store.delete(SECRETS, "default", "s")
        error = self.assertRaises(
            APIError,
            store.update,
            SECRETS,
            "default",
            "s",
            {"metadata": {"name": "s", "finalizers": ["a.io/x", "b.io/y"]}},
        )
        self.assertEqual(
            error.message,
            'Secret "s" is invalid: metadata.finalizers: Forbidden: no new finalizers can be '
            'added if the object is being deleted, found new finalizers []string{"b.io/y"}',
        )

    def test_removing_last_finalizer_deletes(self) -> None:
        """
        Once an object is being deleted, an update that removes its last
        finalizer deletes it; the watch sees DELETED.
        """
        store = make_store()
        store.create(SECRETS, "default", secret("s"))
        store.update(SECRETS, "default", "s", {"metadata": {"name": "s", "finalizers": ["a.io/x"]}})
        marked = store.delete(SECRETS, "default", "s")
        recorder = Recorder()
        store.watch(SECRETS, send_initial_events=False, callback=recorder)
        body = {**marked, "metadata": {**marked["metadata"], "finalizers": []}}
        result = store.update(SECRETS, "default", "s", body)
        self.assertNotIn("finalizers", result["metadata"])
        self.assertRaises(APIError, store.get, SECRETS, "default", "s")
        self.assertEqual(recorder.summary(), [(DELETED, "s", str(store.resource_version))])
        # The watch sees the stored object going away, finalizer and all.
        self.assertEqual(recorder.events[0][1]["metadata"]["finalizers"], ["a.io/x"])


class DeleteTests(SynchronousTestCase):
    """
    L{ObjectStore.delete} and L{ObjectStore.delete_collection}.
    """

    def setUp(self) -> None:
        self.store = make_store()
        self.recorder = Recorder()

    def test_delete(self) -> None:
        """
        Without finalizers the object goes at once; most resources answer
        with a success Status.
        """
        self.store.create(SECRETS, "default", secret("s"))
        self.store.watch(SECRETS, send_initial_events=False, callback=self.recorder)
        result = self.store.delete(SECRETS, "default", "s")
        self.assertEqual(result, errors.success_status("s", "", "secrets", "uid-1"))
        self.assertRaises(APIError, self.store.get, SECRETS, "default", "s")
        self.assertEqual(self.recorder.summary(), [(DELETED, "s", str(INITIAL + 2))])

    def test_returns_object(self) -> None:
        """
        Service accounts (like pods and namespaces) answer with the object.
        """
        created = self.store.create(SERVICE_ACCOUNTS, "default", {"metadata": {"name": "sa"}})
        self.assertEqual(self.store.delete(SERVICE_ACCOUNTS, "default", "sa"), created)

    def test_not_found(self) -> None:
        error = self.assertRaises(APIError, self.store.delete, SECRETS, "default", "x")
        self.assertEqual(error.message, 'secrets "x" not found')

    def test_preconditions(self) -> None:
        self.store.create(SECRETS, "default", secret("s"))
        error = self.assertRaises(
            APIError, self.store.delete, SECRETS, "default", "s", preconditions={"uid": "other"}
        )
        self.assertEqual(
            error.message,
            'Operation cannot be fulfilled on Secret "s": the UID in the precondition (other) '
            "does not match the UID in record (uid-1). The object might have been deleted and "
            "then recreated",
        )
        error = self.assertRaises(
            APIError,
            self.store.delete,
            SECRETS,
            "default",
            "s",
            preconditions={"resourceVersion": "1"},
        )
        self.assertEqual(
            error.message,
            'Operation cannot be fulfilled on Secret "s": the ResourceVersion in the precondition '
            f"(1) does not match the ResourceVersion in record ({INITIAL + 1}). The object might "
            "have been modified",
        )
        self.store.delete(
            SECRETS,
            "default",
            "s",
            preconditions={"uid": "uid-1", "resourceVersion": str(INITIAL + 1)},
        )
        self.assertEqual(self.store.count(SECRETS), 0)

    def test_finalizers(self) -> None:
        """
        With finalizers, delete only marks the object, once.
        """
        self.store.create(
            DEPLOYMENTS,
            "default",
            {**deployment("d"), "metadata": {"name": "d", "finalizers": ["a.io/x"]}},
        )
        self.store.watch(DEPLOYMENTS, send_initial_events=False, callback=self.recorder)
        marked = self.store.delete(DEPLOYMENTS, "default", "d")
        metadata = marked["metadata"]
        self.assertEqual(
            (
                metadata["deletionTimestamp"],
                metadata["deletionGracePeriodSeconds"],
                metadata["generation"],
            ),
            (STAMP, 0, 2),
        )
        self.assertEqual(self.recorder.summary(), [(MODIFIED, "d", str(INITIAL + 2))])
        again = self.store.delete(DEPLOYMENTS, "default", "d")
        self.assertEqual(again, marked)
        self.assertEqual(self.store.resource_version, INITIAL + 2)
        self.assertEqual(len(self.recorder.events), 1)

    def test_dry_run(self) -> None:
        self.store.create(SECRETS, "default", secret("s"))
        self.store.delete(SECRETS, "default", "s", dry_run=True)
        self.assertEqual(self.store.get(SECRETS, "default", "s")["metadata"]["name"], "s")
        self.assertEqual(self.store.resource_version, INITIAL + 1)

    def test_immortal_namespaces(self) -> None:
        error = self.assertRaises(APIError, self.store.delete, NAMESPACES, "", "kube-system")
        self.assertEqual(
            (error.code, error.message),
            (403, 'namespaces "kube-system" is forbidden: this namespace may not be deleted'),
        )

    def test_namespace_termination(self) -> None:
        """
        A namespace's first delete makes it Terminating; it stays while its
        spec finalizers are there, and goes with the last finalizer.
        """
        store = self.store
        store.create(
            NAMESPACES,
            "",
            {"metadata": {"name": "n", "finalizers": ["controller.cattle.io/namespace-auth"]}},
        )
        store.watch(NAMESPACES, send_initial_events=False, callback=self.recorder)
        marked = store.delete(NAMESPACES, "", "n")
        self.assertEqual(marked["status"], {"phase": "Terminating"})
        self.assertEqual(marked["metadata"]["deletionTimestamp"], STAMP)
        self.assertNotIn("deletionGracePeriodSeconds", marked["metadata"])
        self.assertEqual(store.delete(NAMESPACES, "", "n"), marked)

        # The namespace controller, once the content is gone.
        finalized = store.update(
            NAMESPACES, "", "n", {**marked, "spec": {"finalizers": []}}, subresource="finalize"
        )
        self.assertEqual(finalized["spec"], {})
        # Rancher's namespace-auth handler removes its finalizer.
        body = {**finalized, "metadata": {**finalized["metadata"], "finalizers": []}}
        store.update(NAMESPACES, "", "n", body)
        self.assertRaises(APIError, store.get, NAMESPACES, "", "n")
        self.assertEqual(
            [event_type for event_type, _ in self.recorder.events], [MODIFIED, MODIFIED, DELETED]
        )

    def test_namespace_without_finalizers(self) -> None:
        """
        Once finalized, a namespace without metadata finalizers is deleted
        by the next delete, which answers with it.
        """
        store = self.store
        store.create(NAMESPACES, "", {"metadata": {"name": "n"}})
        marked = store.delete(NAMESPACES, "", "n")
        finalized = store.update(
            NAMESPACES, "", "n", {**marked, "spec": {"finalizers": []}}, subresource="finalize"
        )
        # With no finalizer of any kind left, finalizing deletes it.
        self.assertRaises(APIError, store.get, NAMESPACES, "", "n")
        self.assertEqual(finalized["metadata"]["name"], "n")

    def test_namespace_preconditions(self) -> None:
        self.store.create(NAMESPACES, "", {"metadata": {"name": "n"}})
        error = self.assertRaises(
            APIError, self.store.delete, NAMESPACES, "", "n", preconditions={"uid": "x"}
        )
        self.assertEqual(
            error.message,
            'Operation cannot be fulfilled on namespaces "n": Precondition failed: UID in '
            "precondition: x, UID in object meta: uid-1",
        )

    def test_seed_delete(self) -> None:
        self.store.delete(CONFIGMAPS, "default", "kube-root-ca.crt")
        self.assertRaises(APIError, self.store.get, CONFIGMAPS, "default", "kube-root-ca.crt")
        self.assertEqual(self.store.count(CONFIGMAPS), 1)

    def test_delete_collection(self) -> None:
        self.store.create(SECRETS, "default", secret("a", labels={"x": "1"}))
        self.store.create(SECRETS, "default", secret("b", labels={"x": "2"}))
        self.store.create(SECRETS, "kube-system", secret("c", labels={"x": "1"}))
        deleted = self.store.delete_collection(SECRETS, None, label_selector="x=1")
        self.assertEqual([obj["metadata"]["name"] for obj in deleted], ["a", "c"])
        self.assertEqual([obj["metadata"]["name"] for obj in self.store.list(SECRETS).items], ["b"])


class ListTests(SynchronousTestCase):
    """
    L{ObjectStore.list}.
    """

    def setUp(self) -> None:
        self.store = make_store()
        for namespace in ("a", "a-b"):
            self.store.create(NAMESPACES, "", {"metadata": {"name": namespace}})
        for namespace, name in (("a", "x"), ("a-b", "y"), ("a", "w"), ("default", "z")):
            self.store.create(SECRETS, namespace, secret(name, labels={"n": name}))

    def names(self, result) -> list:
        return [f"{obj['metadata']['namespace']}/{obj['metadata']['name']}" for obj in result.items]

    def test_key_order(self) -> None:
        """
        Items come in etcd key order: "a-b/" sorts before "a/".
        """
        result = self.store.list(SECRETS)
        self.assertEqual(self.names(result), ["a-b/y", "a/w", "a/x", "default/z"])
        self.assertEqual(result.resource_version, str(self.store.resource_version))
        self.assertEqual((result.continue_token, result.remaining_item_count), ("", None))

    def test_namespace(self) -> None:
        self.assertEqual(self.names(self.store.list(SECRETS, "a")), ["a/w", "a/x"])

    def test_selectors(self) -> None:
        self.assertEqual(
            self.names(self.store.list(SECRETS, label_selector="n in (w,z)")), ["a/w", "default/z"]
        )
        self.assertEqual(
            self.names(
                self.store.list(SECRETS, field_selector="metadata.namespace=a,metadata.name!=w")
            ),
            ["a/x"],
        )
        self.assertEqual(
            self.names(self.store.list(SECRETS, label_selector=parse_label_selector("n=y"))),
            ["a-b/y"],
        )

    def test_version_named_as_requested(self) -> None:
        self.store.create(DEPLOYMENTS, "default", deployment("d"))
        (item,) = self.store.list(DEPLOYMENTS_V1BETA2).items
        self.assertEqual(item["apiVersion"], "apps/v1beta2")
        self.assertEqual(self.store.get(DEPLOYMENTS, "default", "d")["apiVersion"], "apps/v1")

    def test_pages(self) -> None:
        """
        A limit gives pages, an opaque continue token like the apiserver's
        and the count of what remains.
        """
        first = self.store.list(SECRETS, limit=3)
        self.assertEqual(self.names(first), ["a-b/y", "a/w", "a/x"])
        self.assertEqual(first.remaining_item_count, 1)
        self.assertEqual(
            decode_continue(first.continue_token),
            {"v": "meta.k8s.io/v1", "rv": self.store.resource_version, "start": "a/x\x00"},
        )
        self.assertNotIn("=", first.continue_token)
        second = self.store.list(SECRETS, limit=3, continue_token=first.continue_token)
        self.assertEqual(self.names(second), ["default/z"])
        self.assertEqual((second.continue_token, second.remaining_item_count), ("", None))
        self.assertEqual(second.resource_version, first.resource_version)

    def test_pages_are_one_snapshot(self) -> None:
        """
        Later pages show the state the first page was read at.
        """
        first = self.store.list(SECRETS, limit=2)
        self.store.delete(SECRETS, "default", "z")
        self.store.create(SECRETS, "a", secret("zz"))
        self.store.update(SECRETS, "a", "x", secret("x", labels={"n": "changed"}))
        rest = self.store.list(SECRETS, continue_token=first.continue_token)
        self.assertEqual(self.names(rest), ["a/x", "default/z"])
        self.assertEqual(rest.items[0]["metadata"]["labels"], {"n": "x"})
        self.assertEqual(self.names(self.store.list(SECRETS)), ["a-b/y", "a/w", "a/x", "a/zz"])

    def test_expired_continue(self) -> None:
        """
        A token older than the history is refused with a token to go on
        from the latest state.
        """
        store = make_store(history_limit=2)
        for name in "abcd":
            store.create(SECRETS, "default", secret(name))
        first = store.list(SECRETS, limit=2)
        # Two changes still leave the snapshot reconstructible...
        store.create(SECRETS, "default", secret("e"))
        store.create(SECRETS, "default", secret("f"))
        self.assertEqual(len(store.list(SECRETS, continue_token=first.continue_token).items), 2)
        # ...a third pushes it out of the history.
        store.create(SECRETS, "default", secret("g"))
        error = self.assertRaises(
            APIError, store.list, SECRETS, continue_token=first.continue_token
        )
        self.assertEqual((error.code, error.reason), (410, "Expired"))
        self.assertTrue(error.message.startswith("The provided continue parameter is too old"))
        self.assertEqual(
            decode_continue(error.continue_token),
            {"v": "meta.k8s.io/v1", "rv": -1, "start": "default/b\x00"},
        )
        rest = store.list(SECRETS, continue_token=error.continue_token)
        self.assertEqual([obj["metadata"]["name"] for obj in rest.items], ["c", "d", "e", "f", "g"])
        self.assertEqual(rest.resource_version, str(store.resource_version))

    def test_limit_with_selector(self) -> None:
        """
        With a selector there is a continue token whenever keys follow, and
        no remaining count.
        """
        result = self.store.list(SECRETS, label_selector="n in (y,w)", limit=2)
        self.assertEqual(self.names(result), ["a-b/y", "a/w"])
        self.assertNotEqual(result.continue_token, "")
        self.assertIsNone(result.remaining_item_count)
        rest = self.store.list(
            SECRETS, label_selector="n in (y,w)", limit=2, continue_token=result.continue_token
        )
        self.assertEqual((rest.items, rest.continue_token), ([], ""))

    def test_field_selector_narrows_namespace(self) -> None:
        """
        A field selector on one namespace scopes the list like a namespaced
        path: the continue key is relative to it.
        """
        result = self.store.list(SECRETS, field_selector="metadata.namespace=a", limit=1)
        self.assertEqual(self.names(result), ["a/w"])
        self.assertEqual(decode_continue(result.continue_token)["start"], "w\x00")

    def test_single_name(self) -> None:
        result = self.store.list(
            SECRETS, field_selector="metadata.namespace=a,metadata.name=w", limit=1
        )
        self.assertEqual((self.names(result), result.continue_token), (["a/w"], ""))

    def test_any_version_ignores_limit(self) -> None:
        result = self.store.list(SECRETS, limit=1, resource_version="0")
        self.assertEqual((len(result.items), result.continue_token), (4, ""))

    def test_too_large(self) -> None:
        future = str(self.store.resource_version + 5)
        for match in (None, "NotOlderThan", "Exact"):
            error = self.assertRaises(
                APIError,
                self.store.list,
                SECRETS,
                resource_version=future,
                resource_version_match=match,
            )
            self.assertEqual(error.code, 504)
            self.assertEqual(
                error.message,
                f"Timeout: Too large resource version: {future}, current: "
                f"{self.store.resource_version}",
            )

    def test_exact(self) -> None:
        """
        An exact resourceVersion lists the state at that version, also as
        the legacy RV-with-limit form.
        """
        before = str(self.store.resource_version)
        self.store.delete(SECRETS, "a", "w")
        self.store.create(SECRETS, "a", secret("v"))
        exact = self.store.list(
            SECRETS, "a", resource_version=before, resource_version_match="Exact"
        )
        self.assertEqual((self.names(exact), exact.resource_version), (["a/w", "a/x"], before))
        legacy = self.store.list(SECRETS, "a", resource_version=before, limit=10)
        self.assertEqual(self.names(legacy), ["a/w", "a/x"])
        not_older = self.store.list(SECRETS, "a", resource_version=before)
        self.assertEqual(self.names(not_older), ["a/v", "a/x"])

    def test_exact_too_old(self) -> None:
        store = make_store(history_limit=1)
        store.create(SECRETS, "default", secret("a"))
        store.create(SECRETS, "default", secret("b"))
        error = self.assertRaises(
            APIError,
            store.list,
            SECRETS,
            resource_version=str(INITIAL),
            resource_version_match="Exact",
        )
        self.assertEqual(
            (error.code, error.reason, error.message),
            (410, "Expired", "The resourceVersion for the provided list is too old."),
        )

    def test_bad_continue(self) -> None:
        error = self.assertRaises(APIError, self.store.list, SECRETS, continue_token="!!")
        self.assertEqual(
            (error.code, error.message),
            (
                400,
                "invalid continue token: continue key is not valid: illegal base64 data at "
                "input byte 0",
            ),
        )
        token = base64.urlsafe_b64encode(
            b'{"v":"meta.k8s.io/v1","rv":5,"start":"../x"}'
        ).decode().rstrip("=")
        error = self.assertRaises(APIError, self.store.list, SECRETS, continue_token=token)
        self.assertEqual(error.message, "invalid continue token: continue key is not valid: ../x")
        token = base64.urlsafe_b64encode(
            b'{"v":"meta.k8s.io/v2","rv":5,"start":"x"}'
        ).decode().rstrip("=")
        error = self.assertRaises(APIError, self.store.list, SECRETS, continue_token=token)
        self.assertEqual(
            error.message,
            "invalid continue token: continue key is not valid: server does not recognize this "
            "encoded version meta.k8s.io/v2",
        )

    def test_continue_with_version(self) -> None:
        token = self.store.list(SECRETS, limit=1).continue_token
        error = self.assertRaises(
            APIError, self.store.list, SECRETS, continue_token=token, resource_version="5"
        )
        self.assertEqual(
            error.message, "specifying resource version is not allowed when using continue"
        )

    def test_list_options_validated(self) -> None:
        error = self.assertRaises(
            APIError, self.store.list, SECRETS, resource_version_match="Exact"
        )
        self.assertEqual(
            (error.code, error.message),
            (
                422,
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ),
        )
        error = self.assertRaises(
            APIError,
            self.store.list,
            SECRETS,
            resource_version="1",
            resource_version_match="Newest",
        )
        self.assertEqual(
            error.message,
            'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Unsupported value: '
            '"Newest": supported values: "Exact", "NotOlderThan", ""',
        )

    def test_send_initial_events_forbidden(self) -> None:
        error = self.assertRaises(APIError, validate_list_options, "", "NotOlderThan", None, True)
        self.assertEqual(
            error.message,
            'ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: '
            "resourceVersionMatch is forbidden unless resourceVersion is provided, "
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list]",
        )

    def test_bad_resource_version(self) -> None:
        error = self.assertRaises(APIError, self.store.list, SECRETS, resource_version="abc")
        self.assertEqual(
            (error.code, error.reason, error.message),
            (
                500,
                "",
                'resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": '
                "invalid syntax",
            ),
        )

    def test_cluster_scoped(self) -> None:
        result = self.store.list(NAMESPACES)
        self.assertEqual(
            [obj["metadata"]["name"] for obj in result.items],
            ["a", "a-b", "cattle-system", "default", "kube-public", "kube-system"],
        )


class WatchTests(SynchronousTestCase):
    """
    L{ObjectStore.watch}.
    """

    def setUp(self) -> None:
        self.store = make_store()
        self.recorder = Recorder()

    def test_initial_events(self) -> None:
        """
        A watch without resourceVersion starts with ADDED for each object;
        kube-apiserver 1.34+ ends them with the watch-list bookmark when
        bookmarks are allowed.
        """
        self.store.watch(CONFIGMAPS, allow_bookmarks=True, callback=self.recorder)
        self.assertEqual(
            self.recorder.summary(),
            [
                (ADDED, "kube-root-ca.crt", "7"),
                (ADDED, "kube-root-ca.crt", "7"),
                (BOOKMARK, None, str(INITIAL)),
            ],
        )
        self.assertEqual(
            [obj["metadata"].get("namespace") for _, obj in self.recorder.events[:2]],
            ["default", "kube-system"],
        )

    def test_initial_events_without_bookmarks(self) -> None:
        self.store.watch(CONFIGMAPS, resource_version="0", callback=self.recorder)
        self.assertEqual([event for event, _ in self.recorder.events], [ADDED, ADDED])

    def test_watch_list(self) -> None:
        """
        sendInitialEvents: matching objects, then the bookmark annotated as
        the end of the initial events, then changes.
        """
        self.store.watch(
            NAMESPACES,
            label_selector="kubernetes.io/metadata.name in (default,kube-system)",
            send_initial_events=True,
            allow_bookmarks=True,
            callback=self.recorder,
        )
        self.store.create(NAMESPACES, "", {"metadata": {"name": "new"}})
        self.store.create(NAMESPACES, "", {"metadata": {"name": "kube-system2", "labels": {}}})
        self.assertEqual(
            self.recorder.summary(),
            [(ADDED, "default", "7"), (ADDED, "kube-system", "7"), (BOOKMARK, None, str(INITIAL))],
        )
        self.assertEqual(
            self.recorder.events[-1][1],
            {
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {
                    "resourceVersion": str(INITIAL),
                    "annotations": {INITIAL_EVENTS_END_ANNOTATION: "true"},
                },
            },
        )

    def test_changes_only(self) -> None:
        self.store.watch(SECRETS, send_initial_events=False, callback=self.recorder)
        self.store.create(SECRETS, "default", secret("s"))
        self.assertEqual(self.recorder.summary(), [(ADDED, "s", str(INITIAL + 1))])

    def test_resume(self) -> None:
        """
        A watch from resourceVersion N replays every change after N, then
        goes on live.
        """
        self.store.create(SECRETS, "default", secret("a"))
        start = str(self.store.resource_version)
        self.store.create(SECRETS, "default", secret("b"))
        self.store.update(SECRETS, "default", "a", secret("a", labels={"x": "y"}))
        self.store.delete(SECRETS, "default", "b")
        self.store.watch(SECRETS, resource_version=start, callback=self.recorder)
        self.store.create(SECRETS, "default", secret("c"))
        self.assertEqual(
            self.recorder.summary(),
            [
                (ADDED, "b", str(INITIAL + 2)),
                (MODIFIED, "a", str(INITIAL + 3)),
                (DELETED, "b", str(INITIAL + 4)),
                (ADDED, "c", str(INITIAL + 5)),
            ],
        )

    def test_resume_at_start(self) -> None:
        """
        The resourceVersion of a fresh store's list is a valid start.
        """
        watch = self.store.watch(SECRETS, resource_version=str(INITIAL), callback=self.recorder)
        self.assertTrue(watch.active)
        self.assertEqual(self.recorder.events, [])

    def test_too_old(self) -> None:
        """
        Resuming from before what the history holds is a 410.
        """
        store = make_store(history_limit=2)
        for name in "abc":
            store.create(SECRETS, "default", secret(name))
        error = self.assertRaises(
            APIError, store.watch, SECRETS, resource_version=str(INITIAL), callback=self.recorder
        )
        self.assertEqual(
            (error.code, error.reason, error.message),
            (410, "Expired", f"too old resource version: {INITIAL} ({INITIAL + 1})"),
        )
        store.watch(SECRETS, resource_version=str(INITIAL + 1), callback=self.recorder)
        self.assertEqual([name for _, name, _ in self.recorder.summary()], ["b", "c"])

    def test_history_per_resource(self) -> None:
        """
        Changes to other resources do not push a resource's history out.
        """
        store = make_store(history_limit=1)
        store.create(SECRETS, "default", secret("a"))
        for name in "bcd":
            store.create(CONFIGMAPS, "default", {"metadata": {"name": name}})
        store.watch(SECRETS, resource_version=str(INITIAL), callback=self.recorder)
        self.assertEqual([name for _, name, _ in self.recorder.summary()], ["a"])

    def test_future_version(self) -> None:
        """
        A watch from a resourceVersion the store has not reached waits for
        it (the apiserver does not refuse it).
        """
        future = self.store.resource_version + 1
        self.store.watch(SECRETS, resource_version=str(future), callback=self.recorder)
        self.store.create(SECRETS, "default", secret("a"))
        self.store.create(SECRETS, "default", secret("b"))
        self.assertEqual([name for _, name, _ in self.recorder.summary()], ["b"])

    def test_watch_list_future_version(self) -> None:
        error = self.assertRaises(
            APIError,
            self.store.watch,
            SECRETS,
            resource_version=str(INITIAL + 3),
            send_initial_events=True,
            callback=self.recorder,
        )
        self.assertEqual((error.code, error.reason), (504, "Timeout"))

    def test_bad_resource_version(self) -> None:
        error = self.assertRaises(
            APIError, self.store.watch, SECRETS, resource_version="x1", callback=self.recorder
        )
        self.assertEqual(
            (error.code, error.message),
            (
                422,
                'secrets "" is invalid: resourceVersion: Invalid value: "x1": '
                'strconv.ParseUint: parsing "x1": invalid syntax',
            ),
        )

    def test_selector_transitions(self) -> None:
        """
        An object that stops matching is DELETED (its old content at the new
        version); one that starts matching is ADDED.
        """
        self.store.create(SECRETS, "default", secret("s", labels={"app": "web"}))
        self.store.watch(
            SECRETS, label_selector="app=web", send_initial_events=False, callback=self.recorder
        )
        self.store.update(SECRETS, "default", "s", secret("s", labels={"app": "db"}))
        self.store.update(SECRETS, "default", "s", secret("s", labels={"app": "web", "v": "2"}))
        self.store.update(SECRETS, "default", "s", secret("s", labels={"app": "web", "v": "3"}))
        self.assertEqual(
            self.recorder.summary(),
            [
                (DELETED, "s", str(INITIAL + 2)),
                (ADDED, "s", str(INITIAL + 3)),
                (MODIFIED, "s", str(INITIAL + 4)),
            ],
        )
        self.assertEqual(self.recorder.events[0][1]["metadata"]["labels"], {"app": "web"})

    def test_field_selector(self) -> None:
        """
        Rancher's cavalidator watch: one secret by namespace and name.
        """
        self.store.watch(
            SECRETS,
            field_selector="metadata.namespace=cattle-system,metadata.name=stv-aggregation",
            callback=self.recorder,
        )
        self.store.create(SECRETS, "default", secret("stv-aggregation"))
        self.store.create(SECRETS, "cattle-system", secret("stv-aggregation"))
        self.assertEqual(self.recorder.summary(), [(ADDED, "stv-aggregation", str(INITIAL + 2))])

    def test_namespace(self) -> None:
        self.store.watch(CONFIGMAPS, "kube-system", callback=self.recorder)
        self.store.create(CONFIGMAPS, "default", {"metadata": {"name": "c"}})
        self.assertEqual(
            [obj["metadata"]["namespace"] for _, obj in self.recorder.events], ["kube-system"]
        )

    def test_version_named_as_requested(self) -> None:
        self.store.watch(DEPLOYMENTS_V1BETA2, send_initial_events=False, callback=self.recorder)
        self.store.create(DEPLOYMENTS, "default", deployment("d"))
        self.assertEqual(self.recorder.events[0][1]["apiVersion"], "apps/v1beta2")

    def test_cancel(self) -> None:
        watch = self.store.watch(SECRETS, send_initial_events=False, callback=self.recorder)
        self.assertEqual(self.store.watch_count, 1)
        watch.cancel()
        watch.cancel()
        self.store.create(SECRETS, "default", secret("s"))
        self.assertEqual(
            (self.recorder.events, watch.active, self.store.watch_count), ([], False, 0)
        )

    def test_bookmark(self) -> None:
        watch = self.store.watch(
            SECRETS, send_initial_events=False, allow_bookmarks=True, callback=self.recorder
        )
        self.store.create(CONFIGMAPS, "default", {"metadata": {"name": "c"}})
        watch.bookmark()
        self.assertEqual(
            self.recorder.events,
            [
                (
                    BOOKMARK,
                    {
                        "kind": "Secret",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(INITIAL + 1)},
                    },
                )
            ],
        )
        watch.cancel()
        watch.bookmark()
        self.assertEqual(len(self.recorder.events), 1)

    def test_no_bookmarks(self) -> None:
        watch = self.store.watch(SECRETS, send_initial_events=False, callback=self.recorder)
        watch.bookmark()
        self.assertEqual(self.recorder.events, [])

    def test_failing_callback(self) -> None:
        """
        A callback that raises is logged and its watch cancelled; the write
        and other watches are unaffected.
        """

        def broken(event_type: str, obj: dict) -> None:
            raise ZeroDivisionError()

        broken_watch = self.store.watch(SECRETS, send_initial_events=False, callback=broken)
        self.store.watch(SECRETS, send_initial_events=False, callback=self.recorder)
        with capturedLogs() as events:
            self.store.create(SECRETS, "default", secret("s"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(len(events), 1)
        self.assertFalse(broken_watch.active)
        self.assertEqual(len(self.recorder.events), 1)
        self.assertEqual(self.store.get(SECRETS, "default", "s")["metadata"]["name"], "s")

    def test_watch_options(self) -> None:
        """
        The handler's checks of watch options: watch-list needs
        NotOlderThan, which needs watch-list.
        """
        validate_watch_options("NotOlderThan", True)
        validate_watch_options(None, None)
        error = self.assertRaises(APIError, validate_watch_options, None, True)
        self.assertEqual(
            (error.code, error.message),
            (
                422,
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ),
        )
        error = self.assertRaises(APIError, validate_watch_options, "Exact", True)
        self.assertEqual(len(error.details.causes), 2)
        error = self.assertRaises(APIError, validate_watch_options, "NotOlderThan", None)
        self.assertIn(
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            error.message,
        )

    def test_needs_callback(self) -> None:
        self.assertRaises(TypeError, self.store.watch, SECRETS)


class SeedTests(SynchronousTestCase):
    """
    Seeds are shared and rendered only when read.
    """

    def test_lazy_rendering(self) -> None:
        """
        Seeds are rendered on reads only, and a write replaces the seed.
        """
        render = CountingRender()
        store = make_store(render=render)
        self.assertEqual(store.count(), 7)
        self.assertEqual(render.rendered, [])
        store.get(CLUSTER_ROLES, "", "cluster-admin")
        self.assertEqual(render.rendered, ["cluster-admin"])
        del render.rendered[:]
        store.list(CONFIGMAPS)
        self.assertEqual(render.rendered, ["kube-root-ca.crt", "kube-root-ca.crt"])

        current = store.get(CLUSTER_ROLES, "", "cluster-admin")
        store.update(CLUSTER_ROLES, "", "cluster-admin", {**current, "rules": []})
        del render.rendered[:]
        self.assertEqual(store.get(CLUSTER_ROLES, "", "cluster-admin")["rules"], [])
        store.list(CLUSTER_ROLES)
        self.assertEqual(render.rendered, [])

    def test_deleted_seed_not_rendered(self) -> None:
        render = CountingRender()
        store = make_store(render=render)
        store.delete(CONFIGMAPS, "default", "kube-root-ca.crt")
        del render.rendered[:]
        self.assertEqual(len(store.list(CONFIGMAPS).items), 1)
        self.assertEqual(render.rendered, ["kube-root-ca.crt"])

    def test_shared(self) -> None:
        """
        Stores built on one seed set share it but not their writes.
        """
        first = make_store()
        second = make_store()
        first.delete(CLUSTER_ROLES, "", "cluster-admin")
        first.create(SECRETS, "default", secret("s"))
        self.assertEqual(second.count(CLUSTER_ROLES), 1)
        self.assertEqual(second.count(SECRETS), 0)
        self.assertIs(first._seeds, second._seeds)

    def test_equal_entries_shared(self) -> None:
        """
        Stores given equal entries share one index; unhashable seed objects
        get a private one.
        """
        entries = [(SECRETS, "default", "s", ("compact", 1))]
        first = ObjectStore(list(entries))
        second = ObjectStore(tuple(entries))
        self.assertIs(first._seeds, second._seeds)
        self.assertIsNot(
            first._seeds, ObjectStore([(SECRETS, "default", "t", ("compact", 1))])._seeds
        )
        dict_entries = [seed_object(SECRETS, "default", "s")]
        self.assertIsNot(ObjectStore(dict_entries)._seeds, ObjectStore(dict_entries)._seeds)

    def test_render(self) -> None:
        """
        Seed objects can be anything the render function understands.
        """
        seeds = [(SECRETS, "default", "s", ("compact", 1))]
        store = ObjectStore(
            seeds,
            render=lambda seed: {
                "kind": "Secret",
                "apiVersion": "v1",
                "metadata": {"name": "s", "namespace": "default", "resourceVersion": str(seed[1])},
            },
        )
        self.assertEqual(store.get(SECRETS, "default", "s")["metadata"]["resourceVersion"], "1")
        self.assertEqual(list(SeedSet(seeds)), seeds)

    def test_bad_seeds(self) -> None:
        self.assertRaises(ValueError, SeedSet, [(SECRETS, "", "s", {})])
        self.assertRaises(ValueError, SeedSet, [(NAMESPACES, "x", "s", {})])
        self.assertRaises(ValueError, SeedSet, [(SECRETS, "a", "s", {}), (SECRETS, "a", "s", {})])

    def test_count(self) -> None:
        store = make_store()
        store.create(SECRETS, "default", secret("s"))
        store.delete(CONFIGMAPS, "default", "kube-root-ca.crt")
        store.update(
            CLUSTER_ROLES, "", "cluster-admin", {"metadata": {"name": "cluster-admin"}, "rules": []}
        )
        self.assertEqual(
            (
                store.count(SECRETS),
                store.count(CONFIGMAPS),
                store.count(CLUSTER_ROLES),
                store.count(),
            ),
            (1, 1, 1, 7),
        )


class HookTests(SynchronousTestCase):
    """
    Admission and observers.
    """

    def test_admission_fills_response(self) -> None:
        """
        Admission sees the object with its system fields and can change what
        is stored and answered, as the token controller does.
        """
        store = make_store()
        seen = []

        def tokens(operation, resource_type, new, old):
            metadata = new["metadata"]
            seen.append((operation, resource_type.resource, metadata["name"], metadata["uid"], old))
            if resource_type is SECRETS and new.get("type") == TOKEN_TYPE:
                return {**new, "data": {"token": "dG9rZW4="}}
            return None

        store.add_admission(tokens)
        created = store.create(
            SECRETS, "default", {"metadata": {"generateName": "sa-token-"}, "type": TOKEN_TYPE}
        )
        self.assertEqual(created["data"], {"token": "dG9rZW4="})
        self.assertEqual(store.get(SECRETS, "default", created["metadata"]["name"]), created)
        self.assertEqual(seen, [("CREATE", "secrets", created["metadata"]["name"], "uid-1", None)])

        store.update(
            SECRETS,
            "default",
            created["metadata"]["name"],
            {**created, "type": TOKEN_TYPE},
        )
        self.assertEqual(seen[-1][0], "UPDATE")
        self.assertEqual(seen[-1][4], created)

    def test_admission_refuses(self) -> None:
        store = make_store()

        def refuse(operation, resource_type, new, old):
            raise errors.new_forbidden(resource_type.group_resource, new["metadata"]["name"], "no")

        store.add_admission(refuse)
        error = self.assertRaises(APIError, store.create, SECRETS, "default", secret("s"))
        self.assertEqual(error.code, 403)
        self.assertEqual((store.count(SECRETS), store.resource_version), (0, INITIAL))

    def test_observers(self) -> None:
        store = make_store()
        seen = []
        store.add_observer(lambda *arguments: seen.append(arguments))
        created = store.create(SECRETS, "default", secret("s"))
        updated = store.update(SECRETS, "default", "s", secret("s", labels={"a": "b"}))
        store.delete(SECRETS, "default", "s")
        self.assertEqual(
            [(event, rt) for event, rt, _, _ in seen],
            [(ADDED, SECRETS), (MODIFIED, SECRETS), (DELETED, SECRETS)],
        )
        self.assertEqual(seen[0][2:], (created, None))
        self.assertEqual(seen[1][2:], (updated, created))
        self.assertEqual(seen[2][2]["metadata"]["resourceVersion"], str(INITIAL + 3))
        self.assertEqual(seen[2][3], updated)

    def test_reentrant_writes(self) -> None:
        """
        An observer's writes are committed at once but notified after the
        change being notified, in order, and before the outer write returns.
        """
        store = make_store()
        watch_recorder = Recorder()
        store.watch(SECRETS, send_initial_events=False, callback=watch_recorder)
        store.watch(SERVICE_ACCOUNTS, send_initial_events=False, callback=watch_recorder)
        order = []

        def token_controller(event_type, resource_type, obj, old):
            order.append(("controller", event_type, obj["metadata"]["name"]))
            if resource_type is SERVICE_ACCOUNTS and event_type == ADDED:
                token = store.create(SECRETS, "default", secret(obj["metadata"]["name"] + "-token"))
                order.append(("created", token["metadata"]["name"]))
                # A write from within a write's cascade, one level deeper.
                store.update(
                    SECRETS,
                    "default",
                    token["metadata"]["name"],
                    secret(token["metadata"]["name"], labels={"ready": "true"}),
                )

        def auditor(event_type, resource_type, obj, old):
            order.append(("auditor", event_type, obj["metadata"]["name"]))

        store.add_observer(token_controller)
        store.add_observer(auditor)
        store.create(SERVICE_ACCOUNTS, "default", {"metadata": {"name": "sa"}})
        self.assertEqual(
            order,
            [
                ("controller", ADDED, "sa"),
                ("created", "sa-token"),
                ("auditor", ADDED, "sa"),
                ("controller", ADDED, "sa-token"),
                ("auditor", ADDED, "sa-token"),
                ("controller", MODIFIED, "sa-token"),
                ("auditor", MODIFIED, "sa-token"),
            ],
        )
        self.assertEqual(
            watch_recorder.summary(),
            [
                (ADDED, "sa", str(INITIAL + 1)),
                (ADDED, "sa-token", str(INITIAL + 2)),
                (MODIFIED, "sa-token", str(INITIAL + 3)),
            ],
        )

    def test_failing_observer(self) -> None:
        store = make_store()

        def broken(*arguments):
            raise ZeroDivisionError()

        seen = []
        store.add_observer(broken)
        store.add_observer(lambda *arguments: seen.append(arguments[0]))
        store.create(SECRETS, "default", secret("s"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(seen, [ADDED])


class PersistenceTests(SynchronousTestCase):
    """
    L{ObjectStore.export_changes} and L{ObjectStore.restore}.
    """

    def test_round_trip(self) -> None:
        store = make_store()
        store.create(SECRETS, "default", secret("kept", labels={"a": "b"}))
        store.create(SECRETS, "default", secret("gone"))
        store.delete(SECRETS, "default", "gone")
        store.delete(CONFIGMAPS, "default", "kube-root-ca.crt")
        store.update(
            CLUSTER_ROLES, "", "cluster-admin", {"metadata": {"name": "cluster-admin"}, "rules": []}
        )
        changes = json.loads(json.dumps(store.export_changes()))
        self.assertEqual(changes["resourceVersion"], INITIAL + 5)
        objects, deleted = changes["objects"], changes["deleted"]
        self.assertEqual(
            [(entry["resource"], entry["namespace"], entry["name"]) for entry in objects],
            [("secrets", "default", "kept"), ("clusterroles", "", "cluster-admin")],
        )
        self.assertEqual(
            [(entry["resource"], entry["namespace"], entry["name"]) for entry in deleted],
            [("configmaps", "default", "kube-root-ca.crt")],
        )

        restored = ObjectStore.restore(
            BASE_SEEDS, CountingRender(), changes, initial_resource_version=INITIAL
        )
        for resource_type in (SECRETS, CONFIGMAPS, CLUSTER_ROLES, NAMESPACES):
            self.assertEqual(restored.list(resource_type).items, store.list(resource_type).items)
        self.assertEqual((restored.resource_version, restored.generation), (INITIAL + 5, 0))
        created = restored.create(SECRETS, "default", secret("next"))
        self.assertEqual(created["metadata"]["resourceVersion"], str(INITIAL + 6))
        self.assertEqual(restored.generation, 1)

    def test_history_not_restored(self) -> None:
        """
        After a restore, watches resume only from the restored version on.
        """
        store = make_store()
        store.create(SECRETS, "default", secret("s"))
        restored = ObjectStore.restore(BASE_SEEDS, None, store.export_changes())
        error = self.assertRaises(
            APIError, restored.watch, SECRETS, resource_version=str(INITIAL), callback=Recorder()
        )
        self.assertEqual(error.code, 410)
        restored.watch(SECRETS, resource_version=str(INITIAL + 1), callback=Recorder())

    def test_bad_export(self) -> None:
        self.assertRaises(ValueError, ObjectStore.restore, BASE_SEEDS, None, {"version": 2})
        self.assertRaises(ValueError, ObjectStore.restore, BASE_SEEDS, None, {"version": 1})

    def test_generation(self) -> None:
        """
        The change counter grows with committed changes only.
        """
        store = make_store()
        store.create(SECRETS, "default", secret("s"))
        store.create(SECRETS, "default", secret("t"), dry_run=True)
        store.update(SECRETS, "default", "s", secret("s"))
        self.assertRaises(APIError, store.create, SECRETS, "default", secret("s"))
        store.delete(SECRETS, "default", "s")
        self.assertEqual(store.generation, 2)


def _measure(factory, count: int) -> float:
    """Average bytes allocated (and kept) per object C{factory} makes."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = [factory() for _ in range(count)]
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del kept
    return total / count


def memory_report() -> dict:
    """
    What a store costs: empty, over a shared 100-object seed set, and with
    a private one. Run this module as a script to print it.
    """
    seeds = [namespace_seed(f"ns{index}") for index in range(10)] + [
        seed_object(CONFIGMAPS, f"ns{index % 10}", f"cm{index}") for index in range(90)
    ]
    shared = SeedSet(seeds)
    # Entries as a template gives them: a new list per cluster, of the same
    # hashable template objects.
    template_objects = [
        (resource_type, namespace, name, (name,)) for resource_type, namespace, name, _ in seeds
    ]
    keep_alive = ObjectStore(template_objects)
    report = {
        "empty": _measure(ObjectStore, 500),
        "shared 100 seeds": _measure(lambda: ObjectStore(shared), 500),
        "equal 100 entries": _measure(lambda: ObjectStore(list(template_objects)), 500),
        "private 100 seeds": _measure(lambda: ObjectStore(seeds), 100),
    }
    del keep_alive
    return report


class MemoryTests(SynchronousTestCase):
    """
    Stores stay small: thousands of them live in one process.
    """

    def test_footprint(self) -> None:
        report = memory_report()
        self.assertLess(report["empty"], 1024, report)
        self.assertLess(report["shared 100 seeds"], 1024, report)
        self.assertLess(report["equal 100 entries"], 1024, report)
        self.assertLess(report["private 100 seeds"], 24 * 1024, report)


if __name__ == "__main__":
    for label, size in memory_report().items():
        print(f"{label}: {size:.0f} bytes per store")


class CreateStatusTests(SynchronousTestCase):
    """
    What each built-in strategy does with a status sent on create.
    """

    def test_node_keeps_its_status(self) -> None:
        """
        Kubelets register Nodes with their status; it is kept (as decoding
        gives it: allocatable defaults to the capacity).
        """
        store = make_store()
        status = {"conditions": [{"type": "Ready", "status": "True"}], "capacity": {"cpu": "4"}}
        created = store.create(
            NODES,
            "",
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": status},
        )
        (condition,) = created["status"]["conditions"]
        self.assertEqual((condition["type"], condition["status"]), ("Ready", "True"))
        # Go writes the condition's unset times as null.
        self.assertIsNone(condition["lastHeartbeatTime"])
        self.assertEqual(created["status"]["capacity"], {"cpu": "4"})
        self.assertEqual(created["status"]["allocatable"], {"cpu": "4"})

    def test_pod_starts_pending_with_qos_class(self) -> None:
        store = make_store()

        def pod(name: str, resources: dict) -> dict:
            return store.create(
                PODS,
                "default",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name},
                    "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]},
                    "status": {"phase": "Running"},
                },
            )

        self.assertEqual(pod("best", {})["status"], {"phase": "Pending", "qosClass": "BestEffort"})
        limits = {"cpu": "1", "memory": "1Gi"}
        self.assertEqual(pod("guaranteed", {"limits": limits})["status"]["qosClass"], "Guaranteed")
        self.assertEqual(
            pod("burstable", {"requests": {"cpu": "100m"}})["status"]["qosClass"], "Burstable"
        )

    def test_deployment_status_dropped(self) -> None:
        store = make_store()
        body = deployment("web")
        body["status"] = {"replicas": 3}
        # Reset to the zero status, which the real server answers as {}.
        self.assertEqual(store.create(DEPLOYMENTS, "default", body)["status"], {})


class HistoryAgeTests(SynchronousTestCase):
    """
    The watch history keeps a time window, not every event: old versions of
    often-updated objects are not pinned forever.
    """

    def test_old_events_dropped_beyond_the_newest_few(self) -> None:
        clock = [NOW]
        store = ObjectStore(
            BASE_SEEDS,
            None,
            INITIAL,
            now=lambda: clock[0],
            history_limit=1000,
            history_age=300,
            history_keep=2,
        )
        from datetime import timedelta

        first = store.create(CONFIGMAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
        for value in range(5):
            clock[0] = clock[0] + timedelta(seconds=100)
            store.update(
                CONFIGMAPS,
                "default",
                "a",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"v": str(value)}},
            )
        # Resuming from the first write is no longer possible...
        error = self.assertRaises(
            APIError,
            store.watch,
            CONFIGMAPS,
            "default",
            None,
            None,
            first["metadata"]["resourceVersion"],
            False,
            False,
            lambda *event: None,
        )
        self.assertEqual(error.code, 410)
        # ...but from the write 150 seconds ago it is.
        recent = str(int(first["metadata"]["resourceVersion"]) + 3)
        events: list = []
        store.watch(CONFIGMAPS, "default", None, None, recent, False, False, lambda *e: events.append(e))
        self.assertEqual(len(events), 2)

    def test_compact_history_for_quiet_resources(self) -> None:
        clock = [NOW]
        store = ObjectStore(
            BASE_SEEDS, None, INITIAL, now=lambda: clock[0], history_age=60, history_keep=0
        )
        created = store.create(CONFIGMAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
        from datetime import timedelta

        clock[0] = clock[0] + timedelta(seconds=120)
        store.compact_history()
        self.assertRaises(
            APIError,
            store.watch,
            CONFIGMAPS,
            "default",
            None,
            None,
            str(int(created["metadata"]["resourceVersion"]) - 1),
            False,
            False,
            lambda *event: None,
        )


class DecodingTests(SynchronousTestCase):
    """
    Every write is decoded as kube-apiserver decodes it (the Go round trip
    and API defaulting, L{scaleagent.kube.defaults}) before anything else
    looks at it; template objects are read as they are.
    """

    def test_defaults_on_create_and_update(self) -> None:
        """
        Defaults appear on create and again on an update that leaves them
        out, which is no change of the spec (the generation stays).
        """
        store = make_store()
        created = store.create(DEPLOYMENTS, "default", deployment("d", 3))
        spec = created["spec"]
        self.assertEqual(
            (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"], spec["strategy"]["type"]),
            (10, 600, "RollingUpdate"),
        )
        self.assertEqual(created["status"], {})
        updated = store.update(
            DEPLOYMENTS, "default", "d", {**deployment("d", 3), "metadata": {"name": "d", "labels": {"a": "b"}}}
        )
        self.assertEqual(updated["spec"], spec)
        self.assertEqual(updated["metadata"]["generation"], 1)
        dropped = store.update(DEPLOYMENTS, "default", "d", {**updated, "spec": {"template": spec["template"]}})
        self.assertEqual(dropped["spec"]["replicas"], 1)
        self.assertEqual(dropped["metadata"]["generation"], 2)

    def test_template_objects_compare_decoded(self) -> None:
        """
        A template object written without what defaulting adds is not
        changed by an update that only adds those defaults: the generation
        stays, and an update that changes nothing else commits nothing.
        """
        seeded = seed_object(
            DEPLOYMENTS,
            "default",
            "t",
            spec={"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}},
            status={},
        )
        seeded[3]["metadata"]["generation"] = 4
        store = make_store(SeedSet([namespace_seed("default"), seeded]))
        current = store.get(DEPLOYMENTS, "default", "t")
        version = store.resource_version
        self.assertEqual(store.update(DEPLOYMENTS, "default", "t", current), current)
        self.assertEqual(store.resource_version, version)
        relabelled = store.update(
            DEPLOYMENTS,
            "default",
            "t",
            {**current, "metadata": {**current["metadata"], "labels": {"x": "y"}}},
        )
        self.assertEqual(relabelled["metadata"]["generation"], 4)
        self.assertEqual(relabelled["spec"]["revisionHistoryLimit"], 10)

    def test_service_allocation(self) -> None:
        """
        Services get cluster IPs from the service CIDR that no other
        Service holds (the template's included), kept with the object and
        on updates that leave them out.
        """
        taken = seed_object(
            SERVICES,
            "default",
            "kubernetes",
            spec={"clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.1"], "ports": [{"port": 443}]},
        )
        store = make_store(SeedSet([namespace_seed("default"), taken]))

        def service(name: str, **spec: object) -> dict:
            return {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"ports": [{"port": 80}], **spec},
            }

        first = store.create(SERVICES, "default", service("a"))
        second = store.create(SERVICES, "default", service("b"))
        addresses = {first["spec"]["clusterIP"], second["spec"]["clusterIP"], "10.43.0.1"}
        self.assertEqual(len(addresses), 3)
        self.assertEqual(first["spec"]["ipFamilies"], ["IPv4"])
        updated = store.update(SERVICES, "default", "a", {**service("a"), "metadata": {"name": "a", "labels": {"x": "y"}}})
        self.assertEqual(updated["spec"]["clusterIPs"], first["spec"]["clusterIPs"])
        error = self.assertRaises(
            APIError, store.create, SERVICES, "default", service("c", clusterIP="10.43.0.1")
        )
        self.assertEqual(error.code, 422)
        self.assertEqual(
            error.message,
            'Service "c" is invalid: spec.clusterIPs: Invalid value: ["10.43.0.1"]: '
            "failed to allocate IP 10.43.0.1: provided IP is already allocated",
        )
        dry = store.create(SERVICES, "default", service("d"), dry_run=True)
        self.assertEqual(dry["spec"]["clusterIP"], "10.43.0.0")

    def test_stored_object_decoded_again(self) -> None:
        """
        What the strategy made of the object is decoded (with defaulting)
        on its way back from storage: a PVC's reset status is Pending, a
        Service's has its (non-pointer) load balancer.
        """
        claims = ResourceType(
            "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, subresources=("status",)
        )
        store = make_store()
        claim = store.create(
            claims,
            "default",
            {
                "metadata": {"name": "c"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                "status": {"phase": "Bound"},
            },
        )
        self.assertEqual(claim["status"], {"phase": "Pending"})
        service = store.create(SERVICES, "default", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
        self.assertEqual(service["status"], {"loadBalancer": {}})

    def test_update_lists_metadata_problems_twice(self) -> None:
        """
        C{rest.BeforeUpdate} validates metadata in C{validateCommonFields}
        and again in the strategy's C{ValidateUpdate}: each problem of the
        update is a cause twice, and once in the message.
        """
        store = make_store()
        store.create(
            CONFIGMAPS, "default", {"metadata": {"name": "f", "finalizers": ["a.io/x"]}}
        )
        marked = store.delete(CONFIGMAPS, "default", "f")
        body = {**marked, "metadata": {**marked["metadata"], "finalizers": ["a.io/x", "a.io/y"]}}
        error = self.assertRaises(APIError, store.update, CONFIGMAPS, "default", "f", body)
        text = (
            "Forbidden: no new finalizers can be added if the object is being deleted, "
            'found new finalizers []string{"a.io/y"}'
        )
        self.assertEqual(
            [(cause.field, cause.message) for cause in error.details.causes],
            [("metadata.finalizers", text)] * 2,
        )
        self.assertEqual(error.message, f'ConfigMap "f" is invalid: metadata.finalizers: {text}')
