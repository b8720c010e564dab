"""
Replay every request shape a real Rancher (2.11.16 and 2.14.4) sent to a
real downstream kube-apiserver, as recorded in
C{fixtures/replay/downstream-requests-*.tsv}, against a L{KubeCluster}
built from the default template, and check the answers a real cluster
gave.

The recording lists shapes, not requests: a verb, a path template, the
query keys, the Content-Type and Accept, impersonation headers, and the
status codes seen. Each shape is turned into concrete requests in the
recorded (first-seen) order, with names filled in and minimal bodies built
(protobuf where the recording says Rancher sent protobuf). A shape whose
recording shows several codes is replayed once per code, in the situation
that gave it: a GET of the agent Deployment before and after kubectl
created it, a namespace PUT with a fresh and with a stale resourceVersion,
a create of a new and of an existing object.

The downstream of the recording ran no agent inside: it had the import
manifest's RBAC objects, namespace, ServiceAccount and Service, but not its
Deployment (Rancher's kubectl created that), and a namespace C{local}.
"""

from __future__ import annotations

import base64
import csv
import json
import uuid
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlencode

import yaml
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube.errors import APIError
from scaleagent.kube.resources import BUILTIN_REGISTRY
from scaleagent.kube.store import INITIAL_EVENTS_END_ANNOTATION
from tests.test_kube_api import Answer, Client, Connection, add_account, encode_protobuf, new_cluster

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPLAY = FIXTURES / "replay"

PROTOBUF = "application/vnd.kubernetes.protobuf"
AGENT = "cattle-cluster-agent"
IMPERSONATION = "cattle-impersonation-system"


class Shape:
    """One row of a recording."""

    def __init__(self, row: dict[str, str]) -> None:
        self.actor = row["actor"]
        self.user_agent = row["user_agent"]
        self.verb = row["verb"]
        self.path = row["path_template"]
        self.query_keys = [] if row["query_keys"] == "-" else row["query_keys"].split("&")
        self.codes = [int(code) for code, _, _ in (item.partition(":") for item in row["resp_codes"].split(";"))]
        self.content_type = row["req_content_type"].split(":")[0]
        accept = row["accept"].split(";")[0]
        self.accept = accept.rsplit(":", 1)[0] if accept != "-" else None
        if self.accept and self.accept.startswith("application/json;g=apidiscovery"):
            # The recording truncates this header; client-go sends all three.
            self.accept = (
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            )
        self.impersonation = _impersonation_headers(row["impersonation_headers"])
        self.first_seen = float(row["first_seen_s"])

    @property
    def protobuf_body(self) -> bool:
        return self.content_type == PROTOBUF

    def __repr__(self) -> str:
        return f"<{self.verb} {self.path} {'&'.join(self.query_keys)} {self.codes}>"


def _impersonation_headers(text: str) -> dict[str, list[str]]:
    if text == "-":
        return {}
    headers: dict[str, list[str]] = {}
    for item in text.split(";"):
        entry = item.rsplit(":", 1)[0]
        name, _, value = entry.partition("=")
        if name == "Impersonate-Group":
            # The recorder joined repeated headers with commas.
            headers[name] = value.split(",")
        else:
            headers[name] = [value.replace("<id>", "token-abcde")]
    return headers


def load_shapes(version: str) -> list[Shape]:
    with open(REPLAY / f"downstream-requests-{version}.tsv", newline="") as source:
        rows = list(csv.DictReader(source, delimiter="\t"))
    shapes = [Shape(row) for row in rows]
    return sorted(shapes, key=lambda shape: shape.first_seen)


def _manifest(version: str) -> list[dict]:
    text = (FIXTURES / "rancher" / f"import-manifest-{version}.yaml").read_text()
    return [document for document in yaml.safe_load_all(text) if document]


class Replay:
    """
    Turns shapes into requests against one cluster and records what each
    answered.
    """

    def __init__(self, test: SynchronousTestCase, version: str) -> None:
        self.test = test
        self.version = version
        self.clock = Clock()
        self.cluster = new_cluster(self.clock, name=f"c-replay-{version.replace('.', '')}")
        self._prepare_downstream()
        self.client = Client(self.cluster, self.token)
        self.results: dict[int, set[int]] = {}
        self.counter = 0
        # Names Rancher created, by collection path.
        self.created: dict[str, list[str]] = {}
        self.deployment = json.loads((REPLAY / f"redeployed-agent-deployment-{version}.json").read_text())

    def _prepare_downstream(self) -> None:
        store = self.cluster.store
        for document in _manifest(self.version):
            if document["kind"] == "Deployment":
                continue
            resource_type = BUILTIN_REGISTRY.by_api_version(document["apiVersion"], document["kind"])
            namespace = document["metadata"].get("namespace", "") if resource_type.namespaced else ""
            try:
                store.create(resource_type, namespace, document)
            except APIError as error:
                if error.code != 409:
                    raise
        store.create(BUILTIN_REGISTRY.lookup("", "v1", "namespaces"), "", {"metadata": {"name": "local"}})
        if self.cluster.controllers is not None:
            # Rancher authenticates with the token the tunnel announced,
            # which the bootstrap gave to cattle-system/cattle.
            self.token = self.cluster.identity.tunnel_params().token
        else:
            self.token = add_account(self.cluster, "cattle-system", "cattle-replay")

    # -- requests ---------------------------------------------------------------

    def headers(self, shape: Shape) -> dict[str, Any]:
        headers: dict[str, Any] = {"User-Agent": shape.user_agent}
        headers.update(shape.impersonation)
        return headers

    def query(self, shape: Shape, **override: str) -> str:
        values: list[tuple[str, str]] = []
        for key in shape.query_keys:
            name, _, value = key.partition("=")
            if name.startswith("fieldSelector("):
                values.append(("fieldSelector", "metadata.name=stv-aggregation,metadata.namespace=cattle-system"))
            elif name.startswith("labelSelector("):
                values.append(("labelSelector", _label_selector(name[len("labelSelector(") : -1])))
            elif value == "N":
                values.append((name, str(self.cluster.store.resource_version)))
            elif value:
                values.append((name, value))
            elif name == "timeout":
                values.append((name, "45s"))
            elif name == "timeoutSeconds":
                values.append((name, "300"))
            elif name == "limit":
                values.append((name, "500"))
            elif name == "fieldValidation":
                values.append((name, "Strict"))
            elif name == "hash":
                pass
            else:
                values.append((name, value))
        values = [(name, override.get(name, value)) for name, value in values]
        return ("?" + urlencode(values)) if values else ""

    def send(self, shape: Shape, method: str, path: str, body: Any = None, query: Optional[str] = None, **options: Any) -> Answer:
        content_type = options.pop("content_type", None)
        if shape.protobuf_body and isinstance(body, dict):
            body = encode_protobuf(body)
            content_type = PROTOBUF
        elif isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        answer = self.client.request(
            method,
            path + (self.query(shape) if query is None else query),
            body,
            content_type=content_type,
            accept=shape.accept,
            headers=self.headers(shape),
        )
        self.results.setdefault(id(shape), set()).add(answer.code)
        return answer

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def credentials_name(self) -> str:
        """The new credentials Secret the redeployed agent names."""
        for container in self.deployment["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env") or ():
                if variable["name"] == "CATTLE_CREDENTIAL_NAME":
                    return variable["value"]
        return "cattle-credentials-new"


def _label_selector(keys: str) -> str:
    terms = []
    for key in keys.split(","):
        key = key.replace("{uuid}", str(uuid.UUID(int=7)))
        if key == "kubernetes.io/os":
            terms.append("kubernetes.io/os=windows")
        elif key == "management.cattle.io/project-scoped-secret":
            terms.append("management.cattle.io/project-scoped-secret=p-abcde")
        else:
            terms.append(key)
    return ",".join(terms)


def _collection(path: str) -> str:
    return path.rsplit("/", 1)[0] if path.endswith("{name}") else path


# -- what each shape does ------------------------------------------------------------


def _name_for(replay: Replay, shape: Shape) -> str:
    """The object a {name} path means, as Rancher or kubectl used it."""
    path = shape.path
    if "/deployments/" in path:
        return AGENT
    if "/daemonsets/" in path:
        return "cattle-node-agent"
    if path.startswith("/api/v1/namespaces/cattle-system/services/"):
        return AGENT
    if path.startswith("/api/v1/namespaces/cattle-system/serviceaccounts/"):
        return "cattle"
    if path.startswith("/api/v1/namespaces/cattle-system/secrets/"):
        return replay.credentials_name()
    if shape.actor.startswith("rancher-kubectl") and "/clusterroles/" in path:
        return "proxy-clusterrole-kubeapiserver"
    if shape.actor.startswith("rancher-kubectl") and "/clusterrolebindings/" in path:
        return "proxy-role-binding-kubernetes-master"
    created = replay.created.get(_collection(path))
    if created:
        return created[-1]
    return "never-created"


def _body_for_create(replay: Replay, shape: Shape, name: Optional[str]) -> dict:
    path = shape.path
    namespace = path.split("/namespaces/")[1].split("/")[0] if "/namespaces/" in path and not path.endswith("/namespaces") else ""
    if path.endswith("/clusterroles"):
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name or replay.name("cattle-impersonation-u")},
            "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}],
        }
    if path.endswith("/clusterrolebindings"):
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name or replay.name("globaladmin-u")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u-admin"}],
        }
    if path.endswith("/rolebindings"):
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name or replay.name("rb"), "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u-admin"}],
        }
    if path == "/api/v1/namespaces":
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name or IMPERSONATION}}
    if path.endswith("/serviceaccounts"):
        return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name or replay.name("cattle-impersonation-u")}}
    if path == f"/api/v1/namespaces/{IMPERSONATION}/secrets":
        account = (replay.created.get(f"/api/v1/namespaces/{IMPERSONATION}/serviceaccounts") or ["cattle-impersonation-u-0"])[-1]
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "generateName": f"{account}-token-",
                "namespace": IMPERSONATION,
                "annotations": {"kubernetes.io/service-account.name": account},
            },
            "type": "kubernetes.io/service-account-token",
        }
    if path == "/api/v1/namespaces/cattle-system/secrets":
        # kubectl's client-side apply of the redeployed agent's credentials.
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name or replay.credentials_name(), "namespace": "cattle-system"},
            "data": {"url": base64.b64encode(b"https://127.0.0.1:10443").decode(), "token": base64.b64encode(b"x" * 54).decode()},
        }
        secret["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(secret) + "\n"}
        return secret
    if path.endswith("/deployments"):
        annotation = replay.deployment["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        manifest = json.loads(annotation)
        manifest["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = annotation
        return manifest
    raise AssertionError(f"no body for {shape}")


def replay_shape(replay: Replay, shape: Shape, phase: str) -> None:
    """
    Send the requests of one shape. In the C{first} phase, what Rancher sent
    when it first sent it; in the C{later} phase, the situations that gave
    the shape's other recorded codes.
    """
    verb = shape.verb
    path = shape.path
    wanted = set(shape.codes)
    seen = replay.results.get(id(shape), set())
    missing_codes = wanted - seen
    if phase == "later" and not missing_codes:
        return

    if path == "/openapi/v3/{gv}":
        root = replay.client.get("/openapi/v3").json["paths"]
        for gv in ("api/v1", "apis/apps/v1", "apis/rbac.authorization.k8s.io/v1"):
            replay.send(shape, "GET", root[gv]["serverRelativeURL"], query="")
        return
    if verb == "watch":
        _replay_watch(replay, shape)
        return
    if verb in ("get", "list"):
        if "{name}" in path:
            target = path.replace("{name}", _name_for(replay, shape))
            if phase == "later" and 404 in missing_codes:
                target = path.replace("{name}", "not-there")
            replay.send(shape, "GET", target)
        else:
            replay.send(shape, "GET", path)
        return
    if verb == "create":
        body = _body_for_create(replay, shape, None)
        if phase == "later" and 409 in missing_codes:
            existing = replay.created.get(path) or []
            name = existing[-1] if existing else "cattle-system"
            body = _body_for_create(replay, shape, name)
        answer = replay.send(shape, "POST", path, body)
        if answer.code == 201:
            replay.created.setdefault(path, []).append(answer.json["metadata"]["name"])
        return
    if verb == "update":
        target = path.replace("{name}", _name_for(replay, shape))
        current = replay.client.get(target).json
        changed = json.loads(json.dumps(current))
        _change(changed, replay.counter)
        replay.counter += 1
        replay.send(shape, "PUT", target, changed)
        if 409 in wanted:
            # Rancher's retries: the same write again, now stale.
            replay.send(shape, "PUT", target, changed)
        return
    if verb == "delete":
        name = _name_for(replay, shape)
        if path.startswith("/apis/rbac.authorization.k8s.io/v1/"):
            # Rancher 2.14 cleans up bindings that were never there.
            name = "cattle-globalrole-binding-gone"
        target = path.replace("{name}", name)
        body = None
        if shape.protobuf_body:
            current = replay.client.get(target).json
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": current["metadata"]["uid"]}, "propagationPolicy": "Background"}
        answer = replay.send(shape, "DELETE", target, body)
        if answer.code == 200 and path.endswith("secrets/{name}"):
            # Rancher deletes a token Secret it could not use and makes another.
            replay.created[_collection(path)].remove(name)
        return
    if verb == "patch":
        target = path.replace("{name}", AGENT)
        patch = {
            "metadata": {"annotations": {"management.cattle.io/scale-available": "3"}},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "cluster-register", "env": [{"name": "CATTLE_SERVER_VERSION", "value": "v9.9.9"}]}
                        ]
                    }
                }
            },
        }
        replay.send(shape, "PATCH", target, json.dumps(patch).encode(), content_type="application/strategic-merge-patch+json")
        return
    raise AssertionError(f"cannot replay {shape}")


def _change(obj: dict, counter: int) -> None:
    """What Rancher's updates change: finalizers, annotations, rules."""
    metadata = obj["metadata"]
    annotations = metadata.setdefault("annotations", {})
    annotations["lifecycle.cattle.io/create.namespace-auth"] = "true"
    annotations["field.cattle.io/projectId"] = f"c-replay:p-{counter}"
    if obj["kind"] == "Namespace":
        metadata["finalizers"] = ["controller.cattle.io/namespace-auth"]
    elif obj["kind"] == "ClusterRole":
        obj["rules"] = [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"], "resourceNames": [f"ns-{counter}"]}]
    elif obj["kind"] == "ServiceAccount":
        annotations["rancher.io/service-account.secret-ref"] = f"{IMPERSONATION}/secret-{counter}"


def _replay_watch(replay: Replay, shape: Shape) -> None:
    path = shape.path
    query = replay.query(shape)
    connection = Connection(replay.cluster, replay.token)
    headers = {"Accept": shape.accept, "User-Agent": shape.user_agent}
    connection.send("GET", path + query, headers=headers)
    code, response_headers, body, complete = connection.read()
    replay.results.setdefault(id(shape), set()).add(code)
    replay.test.assertEqual(code, 200, f"{shape}: {body[:300]!r}")
    replay.test.assertEqual(response_headers["content-type"], "application/json")
    replay.test.assertFalse(complete, f"{shape}: the watch ended at once")
    if "sendInitialEvents=true" in shape.query_keys:
        events = [json.loads(line) for line in body.splitlines()]
        bookmarks = [event for event in events if event["type"] == "BOOKMARK"]
        replay.test.assertEqual(len(bookmarks), 1, f"{shape}: no initial-events-end bookmark")
        replay.test.assertEqual(
            bookmarks[0]["object"]["metadata"]["annotations"], {INITIAL_EVENTS_END_ANNOTATION: "true"}
        )
        replay.test.assertEqual(events[-1]["type"], "BOOKMARK")
    connection.close()


class ReplayTests(SynchronousTestCase):
    def replay(self, version: str) -> Replay:
        replay = Replay(self, version)
        shapes = load_shapes(version)
        self.assertGreater(len(shapes), 80)
        for shape in shapes:
            replay_shape(replay, shape, "first")
        for shape in shapes:
            replay_shape(replay, shape, "later")
        failures = []
        for shape in shapes:
            got = replay.results.get(id(shape), set())
            if not got:
                failures.append(f"{shape}: never sent")
            elif got != set(shape.codes):
                failures.append(f"{shape}: answered {sorted(got)}")
        self.assertEqual(failures, [])
        self.assertEqual(replay.cluster.store.watch_count, 0)
        return replay

    def test_rancher_2_11(self) -> None:
        replay = self.replay("v2.11.16")
        self.check_agent_deployment(replay)

    def test_rancher_2_14(self) -> None:
        replay = self.replay("v2.14.4")
        self.check_agent_deployment(replay)

    def check_agent_deployment(self, replay: Replay) -> None:
        """kubectl's create and strategic-merge patch left the agent as applied."""
        deployment = replay.client.get(f"/apis/apps/v1/namespaces/cattle-system/deployments/{AGENT}").json
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        self.assertEqual(container["name"], "cluster-register")
        env = {variable["name"]: variable.get("value") for variable in container["env"]}
        self.assertEqual(env["CATTLE_SERVER_VERSION"], "v9.9.9")
        self.assertIn("multi-cluster-management-agent=true", env["CATTLE_FEATURES"])
        self.assertEqual(deployment["metadata"]["annotations"]["management.cattle.io/scale-available"], "3")
        self.assertEqual(deployment["metadata"]["generation"], 2)

    def test_first_agent_get_is_not_found(self) -> None:
        """The very first request shape of both recordings, and its answer."""
        for version in ("v2.11.16", "v2.14.4"):
            replay = Replay(self, version)
            shape = next(shape for shape in load_shapes(version) if shape.path.endswith("/deployments/{name}"))
            replay_shape(replay, shape, "first")
            self.assertEqual(replay.results[id(shape)], {404})

    def test_stale_namespace_put(self) -> None:
        replay = Replay(self, "v2.11.16")
        shape = next(
            shape for shape in load_shapes("v2.11.16") if shape.verb == "update" and shape.path == "/api/v1/namespaces/default"
        )
        replay_shape(replay, shape, "first")
        self.assertEqual(replay.results[id(shape)], {200, 409})
        namespace = replay.client.get("/api/v1/namespaces/default").json
        self.assertEqual(namespace["metadata"]["finalizers"], ["controller.cattle.io/namespace-auth"])
