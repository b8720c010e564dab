# -*- test-case-name: tests.test_kube_api -*-
"""
The Kubernetes HTTP API of one simulated cluster, as a twisted.web resource:
the URL grammar, authentication and impersonation, content negotiation,
request bodies (JSON, YAML, protobuf), and every verb of every resource in
the cluster's registry, answered from its L{ObjectStore} with the status
codes, headers and bodies of a kube-apiserver.

Nothing here is written per path: a request is parsed into a target (group,
version, namespace, resource, name, subresource), looked up in the
cluster's L{Registry}, and handled by verb. The store provides the storage
semantics and the errors; this module provides what the apiserver's
handlers add around them (option validation, field validation, patching,
transformation into Tables, watch streaming through L{watchstream}).

A few resources have no stored objects and are computed per request, as
the apiserver (or an aggregated API) computes them: the review resources,
TokenRequests, C{componentstatuses}, C{metrics.k8s.io} (made-up usage, for
the metrics-server APIService templates carry), pod logs (fixed lines),
evictions and bindings. exec, attach, portforward and proxy answer what the
apiserver answers when the kubelet cannot be dialled.

Authorisation is allow-all: every authenticated user, and every
impersonated one, may do everything. kube-apiserver with RBAC would answer
403 to some requests that succeed here; Rancher's requests never get one.

Where the answer is an approximation, the code says so. The largest ones:
no managedFields are kept; server-side apply is approximated as
create-or-merge; responses are JSON (or YAML) even when protobuf is
preferred, and C{/openapi/v2} is not served as protobuf; custom resources
are validated against the common keywords of their schema (no CEL); Go's
JSON error messages are reproduced for the common syntax errors only.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence
from urllib.parse import parse_qs, unquote

import yaml
from twisted.logger import Logger
from twisted.web import server
from twisted.web.http import Request
from twisted.web.resource import Resource

from scaleagent.identity import API_AUDIENCES, BoundObject, Claims
from scaleagent.kube import discovery
from scaleagent.kube.errors import (
    APIError,
    FieldError,
    StatusDetails,
    StatusReason,
    go_quote,
    new_bad_request,
    new_conflict,
    new_internal_error,
    new_invalid,
    new_not_acceptable,
    new_not_found,
    new_request_entity_too_large,
    new_unsupported_media_type,
)
from scaleagent.kube.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    check_patch_type,
)
from scaleagent.kube.protobuf import PROTOBUF_CONTENT_TYPE, decode_object, summarize_data
from scaleagent.kube.resources import BUILTIN_REGISTRY, ResourceType
from scaleagent.kube.schema import (
    Definition,
    prune_unknown_fields,
    strict_decoding_message,
    unknown_fields,
)
from scaleagent.kube.selectors import (
    FieldSelector,
    field_selector_from_set,
    label_selector_from_object,
    parse_field_selector,
    parse_label_selector,
)
from scaleagent.kube.store import validate_list_options, validate_watch_options
from scaleagent.kube.table import (
    InvalidTableRequest,
    partial_object_metadata,
    to_table,
)
from scaleagent.kube.watchstream import WatchStream, encode_event

if TYPE_CHECKING:
    from scaleagent.kube.cluster import KubeCluster

__all__ = [
    "KubeAPI",
    "MAX_REQUEST_BODY_BYTES",
    "PUBLIC_PATHS",
    "UserInfo",
]

#: The apiserver's C{--max-request-body-bytes} default, 3 MiB.
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024

#: What answers without credentials (k3s's C{system:public-info-viewer}
#: paths). Wrong credentials are refused everywhere.
PUBLIC_PATHS = frozenset(
    {"/version", "/healthz", "/livez", "/readyz", "/.well-known/openid-configuration", "/openid/v1/jwks"}
)

JSON = "application/json"
YAML = "application/yaml"

#: What the apiserver lists in 406 and 415 answers.
SERVED_MEDIA_TYPES = (JSON, YAML, PROTOBUF_CONTENT_TYPE)

_ANONYMOUS = "system:anonymous"
_AUTHENTICATED = "system:authenticated"
_UNAUTHENTICATED = "system:unauthenticated"

_CACHE_CONTROL = b"no-cache, private"

# The apiserver's default watch timeout: minRequestTimeout (1800 s) times
# a random factor in [1, 2), when the client gives no timeoutSeconds.
_MIN_REQUEST_TIMEOUT = 1800.0

# TokenRequest limits (the serviceaccount token REST storage).
_TOKEN_MINIMUM_SECONDS = 600
_TOKEN_MAXIMUM_SECONDS = 1 << 32
_TOKEN_DEFAULT_SECONDS = 3600

_FIELD_VALIDATION_VALUES = ("", "Ignore", "Strict", "Warn")

_RANDOM = random.Random()

_REGISTRY = BUILTIN_REGISTRY
_SERVICE_ACCOUNTS = _REGISTRY.lookup("", "v1", "serviceaccounts")
_SECRETS = _REGISTRY.lookup("", "v1", "secrets")
_PODS = _REGISTRY.lookup("", "v1", "pods")
_NODES = _REGISTRY.lookup("", "v1", "nodes")
_BOUND_KINDS = {"Pod": _PODS, "Secret": _SECRETS, "Node": _NODES}

# Field selectors each kind supports besides metadata.name and
# metadata.namespace (the field label conversion functions registered for
# core/v1, apps/v1, batch/v1 and certificates/v1). The others accept only
# the two metadata fields, and say so differently.
_DEFAULT_FIELDS = ("metadata.name", "metadata.namespace")
_FIELD_LABELS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    ),
    ("", "events"): (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    ("", "secrets"): ("type",),
    ("", "namespaces"): ("status.phase",),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "replicationcontrollers"): ("status.replicas",),
    ("apps", "replicasets"): ("status.replicas",),
    ("batch", "jobs"): ("status.successful",),
    ("certificates.k8s.io", "certificatesigningrequests"): ("spec.signerName",),
}

# kube-apiserver's health checks, as k3s 1.28 lists them with ?verbose.
_LIVEZ_CHECKS = (
    "ping",
    "log",
    "etcd",
    "poststarthook/start-apiserver-admission-initializer",
    "poststarthook/generic-apiserver-start-informers",
    "poststarthook/priority-and-fairness-config-consumer",
    "poststarthook/priority-and-fairness-filter",
    "poststarthook/storage-object-count-tracker-hook",
    "poststarthook/start-apiextensions-informers",
    "poststarthook/start-apiextensions-controllers",
    "poststarthook/crd-informer-synced",
    "poststarthook/start-system-namespaces-controller",
    "poststarthook/bootstrap-controller",
    "poststarthook/rbac/bootstrap-roles",
    "poststarthook/scheduling/bootstrap-system-priority-classes",
    "poststarthook/priority-and-fairness-config-producer",
    "poststarthook/start-cluster-authentication-info-controller",
    "poststarthook/start-kube-apiserver-identity-lease-controller",
    "poststarthook/start-deprecated-kube-apiserver-identity-lease-garbage-collector",
    "poststarthook/start-kube-apiserver-identity-lease-garbage-collector",
    "poststarthook/start-legacy-token-tracking-controller",
    "poststarthook/aggregator-reload-proxy-client-cert",
    "poststarthook/start-kube-aggregator-informers",
    "poststarthook/apiservice-registration-controller",
    "poststarthook/apiservice-status-available-controller",
    "poststarthook/kube-apiserver-autoregistration",
    "autoregister-completion",
    "poststarthook/apiservice-openapi-controller",
    "poststarthook/apiservice-openapiv3-controller",
    "poststarthook/apiservice-discovery-controller",
)
_HEALTH_CHECKS = {
    "healthz": _LIVEZ_CHECKS,
    "livez": _LIVEZ_CHECKS,
    "readyz": _LIVEZ_CHECKS[:3] + ("informer-sync",) + _LIVEZ_CHECKS[3:] + ("shutdown",),
}

_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")

_FIND_KIND_TYPE = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)


# -- small helpers -----------------------------------------------------------


def _json_bytes(obj: Any, pretty: bool = False) -> bytes:
    if pretty:
        return json.dumps(obj, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def _now_text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_go_duration(text: str) -> float:
    """
    Seconds in a Go duration (C{time.ParseDuration}: C{30s}, C{1m30s},
    C{250ms}).

    @raise ValueError: with Go's message.
    """
    original = text
    quoted = go_quote(original)
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if not text:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    position = 0
    while position < len(text):
        match = _GO_DURATION_PART.match(text, position)
        number, unit = match.group(1), match.group(2)
        if not number or number == ".":
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _GO_DURATION_UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {quoted}")
        total += float(number) * _GO_DURATION_UNITS[unit]
        position = match.end()
    return sign * total


def _go_char(character: str) -> str:
    # encoding/json's quoteChar.
    if character == "'":
        return "'\\''"
    if character == '"':
        return "'\"'"
    quoted = go_quote(character)
    return "'" + quoted[1:-1] + "'"


def _go_json_error(text: str, error: json.JSONDecodeError) -> str:
    """
    Go's C{encoding/json} syntax error for what Python's parser refused,
    for the common cases (an approximation: Go words some positions
    differently).
    """
    position = error.pos
    if position >= len(text.rstrip()):
        return "unexpected end of JSON input"
    character = _go_char(text[position])
    message = error.msg
    if message.startswith("Extra data"):
        context = "after top-level value"
    elif message.startswith("Expecting property name"):
        context = "looking for beginning of object key string"
    elif message.startswith("Expecting ':'"):
        context = "after object key"
    elif message.startswith("Expecting ','"):
        context = "after object key:value pair"
    elif message.startswith("Invalid control character"):
        context = "in string literal"
    elif message.startswith("Invalid \\escape") or message.startswith("Invalid \\u"):
        context = "in string escape code"
    else:
        context = "looking for beginning of value"
    return f"invalid character {character} {context}"


def _go_json_value_type(value: Any) -> str:
    # How encoding/json's UnmarshalTypeError names a JSON value's type.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _unrecognized(kind: str, error: str, body: bytes) -> APIError:
    """
    C{transformDecodeError} for a body whose kind could not be read: the
    kind the request expects, the decoder's error, then a summary of the
    body.
    """
    return new_bad_request(
        f"the object provided is unrecognized (must be of type {kind}): {error} ({summarize_data(body)})"
    )


class _DuplicateFields(dict):
    """A JSON object that remembers the keys it saw twice."""

    __slots__ = ("duplicates",)


def _pairs_with_duplicates(pairs: list) -> dict:
    result = _DuplicateFields()
    duplicates = []
    for key, value in pairs:
        if key in result:
            duplicates.append(key)
        result[key] = value
    result.duplicates = duplicates
    return result


def _collect_duplicates(value: Any, out: list[str]) -> Any:
    """Turn the parse result back into plain dicts, gathering duplicates."""
    if isinstance(value, dict):
        duplicates = getattr(value, "duplicates", None)
        if duplicates:
            out.extend(duplicates)
        return {key: _collect_duplicates(item, out) for key, item in value.items()}
    if isinstance(value, list):
        return [_collect_duplicates(item, out) for item in value]
    return value


class _YAMLLoader(yaml.SafeLoader):
    """
    YAML as sigs.k8s.io/yaml reads it into JSON: timestamps stay strings.
    """


_YAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _media_type(value: Optional[bytes]) -> tuple[str, dict[str, str]]:
    """A C{Content-Type} header: the lower-case media type and parameters."""
    if not value:
        return "", {}
    text = value.decode("latin-1")
    parts = [part.strip() for part in text.split(";")]
    parameters = {}
    for parameter in parts[1:]:
        key, _, item = parameter.partition("=")
        parameters[key.strip().lower()] = item.strip().strip('"')
    return parts[0].lower(), parameters


class UserInfo:
    """
    Who a request acts as: the authenticated user, or the one it
    impersonates.

    @ivar username: e.g. C{system:serviceaccount:cattle-system:cattle}.
    @ivar uid: the user's uid (a ServiceAccount's), or C{""}.
    @ivar groups: including C{system:authenticated}.
    @ivar extra: extra attributes, each a tuple of values.
    @ivar authenticated_as: for an impersonated user, the user that
        authenticated; L{None} otherwise.
    """

    __slots__ = ("username", "uid", "groups", "extra", "authenticated_as")

    def __init__(
        self,
        username: str,
        uid: str = "",
        groups: Sequence[str] = (),
        extra: Optional[Mapping[str, Sequence[str]]] = None,
        authenticated_as: Optional[UserInfo] = None,
    ) -> None:
        self.username = username
        self.uid = uid
        self.groups = tuple(groups)
        self.extra = {key: tuple(values) for key, values in (extra or {}).items()}
        self.authenticated_as = authenticated_as

    def to_json(self) -> dict:
        """C{authentication.k8s.io/v1 UserInfo}."""
        out: dict[str, Any] = {"username": self.username}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {key: list(values) for key, values in self.extra.items()}
        return out

    def __repr__(self) -> str:
        return f"UserInfo({self.username!r}, groups={self.groups!r})"


_ANONYMOUS_USER = UserInfo(_ANONYMOUS, groups=(_UNAUTHENTICATED,))


class _Output:
    """
    The negotiated response form: plain (C{convert} L{None}), C{Table},
    C{PartialObjectMetadata} or C{PartialObjectMetadataList}, in JSON or
    YAML.
    """

    __slots__ = ("convert", "version", "yaml", "pretty")

    def __init__(self, convert: Optional[str] = None, version: str = "v1", yaml_output: bool = False) -> None:
        self.convert = convert
        self.version = version
        self.yaml = yaml_output
        self.pretty = False

    @property
    def api_version(self) -> str:
        return f"meta.k8s.io/{self.version}"


_PLAIN = _Output()
_CONVERSIONS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")


def _accept_clauses(accept: str) -> list[tuple[str, str, dict[str, str]]]:
    """The media ranges of an C{Accept} header, most preferred first."""
    clauses = []
    for index, item in enumerate(accept.split(",")):
        parts = [part.strip() for part in item.split(";")]
        if not parts[0]:
            continue
        kind, _, subtype = parts[0].lower().partition("/")
        parameters = {}
        quality = 1.0
        for parameter in parts[1:]:
            key, _, value = parameter.partition("=")
            key = key.strip()
            value = value.strip()
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
                continue
            parameters[key] = value
        if quality <= 0:
            continue
        clauses.append((quality, index, kind, subtype or "*", parameters))
    clauses.sort(key=lambda clause: (-clause[0], clause[1]))
    return [(kind, subtype, parameters) for _, _, kind, subtype, parameters in clauses]


def _negotiate(accept: Optional[bytes]) -> _Output:
    """
    What to answer a resource request with, as the apiserver's
    C{NegotiateOutputMediaType} decides; protobuf is never chosen (JSON is
    what every client of the apiserver also accepts).

    @raise APIError: 406 when nothing acceptable is served.
    """
    if not accept:
        return _PLAIN
    text = accept.decode("latin-1")
    for kind, subtype, parameters in _accept_clauses(text):
        if kind not in ("application", "*"):
            continue
        if subtype in ("json", "*"):
            yaml_output = False
        elif subtype == "yaml":
            yaml_output = True
        else:
            continue
        convert = parameters.get("as")
        if convert is None:
            if parameters.get("stream"):
                continue
            return _Output(None, "v1", yaml_output) if yaml_output else _PLAIN
        if convert not in _CONVERSIONS:
            continue
        if parameters.get("g") != "meta.k8s.io" or parameters.get("v") not in ("v1", "v1beta1"):
            continue
        return _Output(convert, parameters["v"], yaml_output)
    raise new_not_acceptable(SERVED_MEDIA_TYPES)


class _Target:
    """
    A parsed resource URL (C{RequestInfo}): C{/api/v1/namespaces/ns/pods/x/log}
    is group C{""}, version C{v1}, namespace C{ns}, resource C{pods}, name
    C{x}, subresource C{log}.
    """

    __slots__ = ("group", "version", "namespace", "resource", "name", "subresource", "rest", "watch_prefix")

    def __init__(
        self,
        group: str,
        version: str,
        namespace: Optional[str],
        resource: str,
        name: Optional[str],
        subresource: Optional[str],
        rest: tuple[str, ...],
        watch_prefix: bool,
    ) -> None:
        self.group = group
        self.version = version
        self.namespace = namespace
        self.resource = resource
        self.name = name
        self.subresource = subresource
        self.rest = rest
        self.watch_prefix = watch_prefix


def _parse_target(group: str, version: str, parts: list[str]) -> Optional[_Target]:
    """
    The resource part of a URL, after C{/api/v1} or C{/apis/<g>/<v>};
    L{None} when it cannot name a resource.
    """
    watch_prefix = False
    if parts and parts[0] == "watch":
        watch_prefix = True
        parts = parts[1:]
    if not parts or not parts[0]:
        return None
    namespace: Optional[str] = None
    if parts[0] == "namespaces" and len(parts) > 2 and parts[2] not in ("status", "finalize"):
        namespace = parts[1]
        parts = parts[2:]
        if not namespace:
            return None
    elif parts[0] == "namespaces" and len(parts) > 1:
        # /namespaces/<name>[/status|/finalize]: the namespace itself.
        namespace = None
    if any(not part for part in parts[:3]):
        return None
    resource = parts[0]
    name = parts[1] if len(parts) > 1 else None
    subresource = parts[2] if len(parts) > 2 else None
    rest = tuple(parts[3:])
    return _Target(group, version, namespace, resource, name, subresource, rest, watch_prefix)


_LONG_RUNNING_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy", "log"})


def _long_running(parts: Sequence[str], query: Mapping[str, list[str]]) -> bool:
    """
    Whether the apiserver treats the request as long-running (watches and
    connections to the kubelet), which exempts it from the request
    deadline and so from the C{timeout} parameter.
    """
    if "watch" in parts[:4] or _query_bool(query.get("watch")):
        return True
    return any(part in _LONG_RUNNING_SUBRESOURCES for part in parts[-2:])


def _query_bool(values: Optional[list[str]]) -> Optional[bool]:
    # The apiserver's bool query conversion: anything but 0/false is true.
    if not values:
        return None
    return not (values[0] == "0" or values[0].lower() == "false")


def _query_int(values: Optional[list[str]]) -> Optional[int]:
    if not values:
        return None
    text = values[0]
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise new_bad_request(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise new_bad_request(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def _query_string(query: Mapping[str, list[str]], key: str) -> str:
    values = query.get(key)
    return values[0] if values else ""


def _audit_id(request: Request) -> bytes:
    # The apiserver keeps the client's Audit-ID, or makes one up.
    given = request.getHeader(b"audit-id")
    if given and len(given) <= 128:
        return given
    return str(uuid.uuid4()).encode("ascii")


def _warning_header(text: str) -> bytes:
    # RFC 7234 warn-text: a quoted string; the apiserver escapes \ and ".
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'.encode("utf-8")


def _generic_not_found() -> APIError:
    return APIError(
        404, StatusReason.NOT_FOUND, "the server could not find the requested resource", StatusDetails()
    )


def _page_not_found() -> _Response:
    """
    What Go's C{http.NotFound} answers: kube-apiserver's handler chain ends
    in it for a path no API group or handler claims (an unknown group, a
    path outside the API).
    """
    return _Response(
        404,
        b"404 page not found\n",
        b"text/plain; charset=utf-8",
        headers=((b"x-content-type-options", b"nosniff"),),
    )


def _generic_method_not_allowed() -> APIError:
    return APIError(
        405,
        StatusReason.METHOD_NOT_ALLOWED,
        "the server does not allow this method on the requested resource",
        StatusDetails(),
    )


def _unauthorized() -> APIError:
    return APIError(401, StatusReason.UNAUTHORIZED, "Unauthorized")


# -- the resource --------------------------------------------------------------


class _Response:
    """A complete answer: code, body, content type, extra headers."""

    __slots__ = ("code", "body", "content_type", "headers")

    def __init__(
        self,
        code: int,
        body: bytes,
        content_type: Optional[bytes] = b"application/json",
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.code = code
        self.body = body
        self.content_type = content_type
        self.headers = headers


class _Context:
    """What one request carries through the handlers."""

    __slots__ = ("request", "query", "user", "output", "warnings", "verb", "target", "resource_type")

    def __init__(self, request: Request, query: dict[str, list[str]]) -> None:
        self.request = request
        self.query = query
        self.user: UserInfo = _ANONYMOUS_USER
        self.output: _Output = _PLAIN
        self.warnings: list[str] = []
        self.verb = ""
        self.target: Optional[_Target] = None
        self.resource_type: Optional[ResourceType] = None


class KubeAPI(Resource):
    """
    Everything one simulated cluster serves over HTTP: a leaf resource that
    parses the Kubernetes URL grammar itself.

    @param cluster: the cluster: its C{store}, current C{registry},
        C{identity}, C{clock}, C{version_json}, C{server_address},
        C{stats}, C{watch_hub}, C{schemas()} and C{openapi_v3()}/
        C{openapi_v2()}.
    """

    isLeaf = True

    _log = Logger()

    def __init__(self, cluster: KubeCluster) -> None:
        super().__init__()
        self._cluster = cluster

    # -- entry point ----------------------------------------------------------

    def render(self, request: Request) -> Any:
        request.responseHeaders.removeHeader(b"server")
        stats = self._cluster.stats
        context: Optional[_Context] = None
        try:
            raw_path, _, raw_query = request.uri.partition(b"?")
            query = parse_qs(raw_query.decode("latin-1"), keep_blank_values=True) if raw_query else {}
            context = _Context(request, query)
            result = self._route(context, raw_path)
        except APIError as error:
            result = self._error(error)
        except Exception:
            self._log.failure(
                "serving {method} {path} failed",
                method=request.method.decode("latin-1"),
                path=request.path.decode("latin-1", "replace"),
            )
            if request.startedWriting:
                # A stream already under way cannot turn into an error
                # answer: end it, as the apiserver ends a failed watch.
                if not request.finished and not getattr(request, "_disconnected", False):
                    request.finish()
                return server.NOT_DONE_YET
            result = self._error(new_internal_error("the server could not complete the request"))
        verb = request.method.decode("latin-1").lower()
        if context is not None and context.verb:
            verb = context.verb
        if result is server.NOT_DONE_YET:
            stats.count(verb, 200)
            return result
        stats.count(verb, result.code)
        stats.bytes_sent += len(result.body)
        return self._send(request, result, context.warnings if context is not None else ())

    def _send(self, request: Request, response: _Response, warnings: Iterable[str]) -> bytes:
        request.setResponseCode(response.code)
        headers = request.responseHeaders
        headers.setRawHeaders(b"audit-id", [_audit_id(request)])
        for name, value in response.headers:
            headers.addRawHeader(name, value)
        if not headers.hasHeader(b"cache-control"):
            headers.setRawHeaders(b"cache-control", [_CACHE_CONTROL])
        if response.content_type is not None:
            headers.setRawHeaders(b"content-type", [response.content_type])
        for warning in warnings:
            headers.addRawHeader(b"warning", _warning_header(warning))
        if response.code == 304:
            return b""
        return response.body

    def _error(self, error: APIError) -> _Response:
        headers = []
        if error.details is not None and error.details.retry_after_seconds:
            headers.append((b"retry-after", str(error.details.retry_after_seconds).encode("ascii")))
        return _Response(error.code, _json_bytes(error.to_status()), headers=headers)

    # -- routing --------------------------------------------------------------

    def _route(self, context: _Context, raw_path: bytes) -> Any:
        request = context.request
        path = unquote(raw_path.decode("latin-1"))
        method = request.method
        self._cluster.stats.bytes_received += int(request.getHeader(b"content-length") or 0)
        context.user = self._authenticate(request, path in PUBLIC_PATHS)
        parts = path.split("/")[1:]
        if parts and parts[-1] == "" and len(parts) > 1:
            parts = parts[:-1]
        head = parts[0] if parts else ""
        if not _long_running(parts, context.query):
            self._check_timeout(context)

        if head in ("api", "apis"):
            return self._route_api(context, head, parts[1:])
        context.verb = "get"
        if method not in (b"GET", b"HEAD"):
            if head in ("", "version", "healthz", "livez", "readyz", "openapi", ".well-known", "openid"):
                return self._error(_generic_method_not_allowed())
            return _page_not_found()
        if head == "":
            return self._root()
        if head == "version" and len(parts) == 1:
            return _Response(200, self._cluster.version_json)
        if head in _HEALTH_CHECKS:
            return self._health(context, head, parts[1:])
        if head == "openapi":
            return self._openapi(context, parts[1:])
        if path == "/.well-known/openid-configuration":
            return self._openid_configuration()
        if path == "/openid/v1/jwks":
            return self._jwks()
        return _page_not_found()

    def _route_api(self, context: _Context, head: str, parts: list[str]) -> Any:
        request = context.request
        registry = self._cluster.registry
        documents = discovery.documents(registry, self._cluster.server_address)
        if head == "api":
            if not parts:
                return self._discovery(context, documents.api, core=True)
            group, version, rest = "", parts[0], parts[1:]
            if not rest:
                return self._discovery(context, documents.resources("", version))
        else:
            if not parts:
                return self._discovery(context, documents.apis, core=False)
            if parts[0] and documents.group(parts[0]) is None:
                # No API group claims the path: it falls through
                # apiextensions' handler to the end of the chain.
                return _page_not_found()
            if len(parts) == 1:
                return self._discovery(context, documents.group(parts[0]))
            group, version, rest = parts[0], parts[1], parts[2:]
            if not group:
                raise _generic_not_found()
            if not rest:
                return self._discovery(context, documents.resources(group, version))
        target = _parse_target(group, version, rest)
        if target is None:
            raise _generic_not_found()
        resource_type = registry.lookup(group, version, target.resource)
        if resource_type is None:
            raise _generic_not_found()
        context.target = target
        context.resource_type = resource_type
        return self._resource(context, request.method.decode("latin-1").upper())

    # -- authentication ---------------------------------------------------------

    def _authenticate(self, request: Request, public: bool) -> UserInfo:
        header = request.getHeader(b"authorization")
        token = ""
        if header:
            parts = header.decode("latin-1").strip().split(" ", 2)
            if len(parts) >= 2 and parts[0].lower() == "bearer":
                token = parts[1]
        if not token:
            if public:
                return _ANONYMOUS_USER
            # k3s runs with anonymous authentication off.
            raise _unauthorized()
        user = self.authenticate_token(token)
        if user is None:
            raise _unauthorized()
        return self._impersonate(request, user)

    def authenticate_token(self, token: str) -> Optional[UserInfo]:
        """
        Authenticate a bearer token as kube-apiserver's service-account
        authenticator does: a valid signature of this cluster, and the
        ServiceAccount (same uid, not being deleted), the legacy token's
        Secret (holding this very token) or the bound object still there.

        @return: the user, or L{None}.
        """
        cluster = self._cluster
        now = datetime.fromtimestamp(cluster.clock.seconds(), timezone.utc)
        claims = cluster.identity.verify_token(token, now)
        if claims is None:
            return None
        store = cluster.store
        try:
            account = store.get(_SERVICE_ACCOUNTS, claims.namespace, claims.service_account_name)
        except APIError:
            return None
        account_metadata = account["metadata"]
        uid = account_metadata.get("uid", "")
        if account_metadata.get("deletionTimestamp"):
            return None
        if claims.service_account_uid and claims.service_account_uid != uid:
            return None
        if claims.legacy:
            if not self._legacy_secret_holds(claims, token):
                return None
        elif claims.bound_object is not None and not self._bound_object_exists(claims):
            return None
        return UserInfo(
            claims.username,
            uid,
            claims.groups + (_AUTHENTICATED,),
            claims.extra,
        )

    def _legacy_secret_holds(self, claims: Claims, token: str) -> bool:
        if not claims.secret_name:
            return False
        try:
            secret = self._cluster.store.get(_SECRETS, claims.namespace, claims.secret_name)
        except APIError:
            return False
        if secret["metadata"].get("deletionTimestamp"):
            return False
        encoded = (secret.get("data") or {}).get("token")
        if not isinstance(encoded, str):
            return False
        try:
            return base64.b64decode(encoded, validate=True) == token.encode("ascii")
        except (binascii.Error, ValueError):
            return False

    def _bound_object_exists(self, claims: Claims) -> bool:
        bound: BoundObject = claims.bound_object  # type: ignore[assignment]
        resource_type = _BOUND_KINDS.get(bound.kind)
        if resource_type is None:
            return False
        namespace = claims.namespace if resource_type.namespaced else ""
        try:
            obj = self._cluster.store.get(resource_type, namespace, bound.name)
        except APIError:
            return False
        metadata = obj["metadata"]
        return metadata.get("uid") == bound.uid and not metadata.get("deletionTimestamp")

    def _impersonate(self, request: Request, user: UserInfo) -> UserInfo:
        """
        The impersonation filter: C{Impersonate-User}, C{-Group} (each
        header one group), C{-Uid} and C{-Extra-<key>}. Authorisation is
        allow-all, so any authenticated user may impersonate anyone.
        """
        headers = request.requestHeaders
        users = headers.getRawHeaders(b"impersonate-user") or []
        groups = [value.decode("utf-8", "replace") for value in headers.getRawHeaders(b"impersonate-group") or []]
        uids = headers.getRawHeaders(b"impersonate-uid") or []
        extra: dict[str, list[str]] = {}
        for name, values in headers.getAllRawHeaders():
            lowered = name.lower()
            if lowered.startswith(b"impersonate-extra-"):
                key = unquote(lowered[len(b"impersonate-extra-"):].decode("latin-1"))
                extra.setdefault(key, []).extend(value.decode("utf-8", "replace") for value in values)
        username = users[0].decode("utf-8", "replace") if users and users[0] else ""
        if not username:
            if groups or extra or (uids and uids[0]):
                requested = [f"{{Group  {group}    }}" for group in groups]
                raise new_bad_request(f"requested [{' '.join(requested)}] without impersonating a user")
            return user
        if username.startswith("system:serviceaccount:") and username.count(":") == 3 and not groups:
            namespace = username.split(":")[2]
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        if username != _ANONYMOUS:
            if not any(group in (_AUTHENTICATED, _UNAUTHENTICATED) for group in groups):
                groups.append(_AUTHENTICATED)
        elif _UNAUTHENTICATED not in groups:
            groups.append(_UNAUTHENTICATED)
        uid = uids[0].decode("utf-8", "replace") if uids else ""
        impersonated = UserInfo(username, uid, groups, extra, authenticated_as=user)
        self._log.debug(
            "{user} is impersonating {impersonated}",
            user=user.username,
            impersonated=username,
        )
        return impersonated

    # -- non-resource paths ---------------------------------------------------------

    def _root(self) -> _Response:
        registry = self._cluster.registry
        paths = ["/.well-known/openid-configuration", "/api", "/api/v1", "/apis", "/apis/"]
        for group in registry.groups():
            paths.append(f"/apis/{group}")
            for version in registry.versions(group):
                paths.append(f"/apis/{group}/{version}")
        for kind in ("healthz", "livez", "readyz"):
            paths.append(f"/{kind}")
            paths.extend(f"/{kind}/{check}" for check in _HEALTH_CHECKS[kind])
        paths += ["/openapi/v2", "/openapi/v3", "/openapi/v3/", "/openid/v1/jwks", "/version"]
        return _Response(200, json.dumps({"paths": sorted(paths)}, indent=2).encode("utf-8"))

    def _health(self, context: _Context, kind: str, rest: list[str]) -> _Response:
        checks = _HEALTH_CHECKS[kind]
        plain = b"text/plain; charset=utf-8"
        headers = [(b"x-content-type-options", b"nosniff")]
        if rest:
            check = "/".join(rest)
            if check not in checks:
                raise _generic_not_found()
            return _Response(200, b"ok", plain, headers)
        if "verbose" in context.query:
            lines = [f"[+]{check} ok" for check in checks]
            lines.append(f"{kind} check passed")
            return _Response(200, ("\n".join(lines) + "\n").encode("ascii"), plain, headers)
        return _Response(200, b"ok", plain, headers)

    def _discovery(self, context: _Context, document: Any, core: Optional[bool] = None) -> _Response:
        if document is None:
            raise _generic_not_found()
        if context.request.method != b"GET":
            raise _generic_method_not_allowed()
        context.verb = "get"
        if core is not None:
            accept = (context.request.getHeader(b"accept") or b"").decode("latin-1")
            version = discovery.negotiate_aggregated(accept)
            if version is not None:
                documents = discovery.documents(self._cluster.registry, self._cluster.server_address)
                aggregated = documents.aggregated(core=core, version=version)
                headers = [(b"etag", aggregated.etag.encode("ascii")), (b"vary", b"Accept")]
                if (context.request.getHeader(b"if-none-match") or b"").decode("latin-1") == aggregated.etag:
                    return _Response(304, b"", None, headers)
                return _Response(200, aggregated.body, aggregated.content_type.encode("ascii"), headers)
        return _Response(200, document.body, document.content_type.encode("ascii"))

    def _openapi(self, context: _Context, rest: list[str]) -> _Response:
        accept = (context.request.getHeader(b"accept") or b"*/*").decode("latin-1") or "*/*"
        clauses = _accept_clauses(accept)
        json_accepted = any(
            kind in ("application", "*") and subtype in ("json", "*") for kind, subtype, _ in clauses
        )
        vary = [(b"vary", b"Accept")]
        if rest == ["v2"]:
            if not json_accepted:
                # Only the protobuf form was asked for, which is not served.
                return _Response(406, b"", None, vary)
            document = self._cluster.openapi_v2()
            return self._conditional(context, document.body, document.etag, vary)
        if rest and rest[0] == "v3":
            openapi = self._cluster.openapi_v3()
            if len(rest) == 1:
                return self._conditional(context, openapi.root.body, openapi.root.etag, [])
            document = openapi.document("/".join(rest[1:]))
            if document is None:
                raise _generic_not_found()
            if not json_accepted:
                return _Response(406, b"", None, vary)
            headers = [(b"etag", document.etag.encode("ascii"))] + vary
            requested = _query_string(context.query, "hash")
            if requested:
                if requested != document.hash:
                    location = document.server_relative_url.encode("utf-8")
                    return _Response(301, b"", None, headers + [(b"location", location)])
                headers.append((b"cache-control", b"public, immutable"))
                expires = datetime.fromtimestamp(self._cluster.clock.seconds() + 365 * 86400, timezone.utc)
                headers.append((b"expires", expires.strftime("%a, %d %b %Y %H:%M:%S UTC").encode("ascii")))
            if (context.request.getHeader(b"if-none-match") or b"").decode("latin-1") == document.etag:
                return _Response(304, b"", None, headers)
            return _Response(200, document.body, b"application/json", headers)
        raise _generic_not_found()

    def _conditional(
        self, context: _Context, body: bytes, etag: str, headers: list[tuple[bytes, bytes]]
    ) -> _Response:
        headers = [(b"etag", etag.encode("ascii"))] + headers
        if (context.request.getHeader(b"if-none-match") or b"").decode("latin-1") == etag:
            return _Response(304, b"", None, headers)
        return _Response(200, body, b"application/json", headers)

    def _openid_configuration(self) -> _Response:
        identity = self._cluster.identity
        document = {
            "issuer": "https://kubernetes.default.svc.cluster.local",
            "jwks_uri": f"https://{identity.address}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }
        return _Response(
            200,
            json.dumps(document, separators=(",", ":")).encode("utf-8"),
            headers=[(b"cache-control", b"public, max-age=3600")],
        )

    def _jwks(self) -> _Response:
        body = json.dumps(self._cluster.identity.json_web_key_set(), separators=(",", ":")).encode("utf-8")
        return _Response(
            200, body, b"application/jwk-set+json", headers=[(b"cache-control", b"public, max-age=3600")]
        )

    # -- resources: verbs ---------------------------------------------------------

    def _resource(self, context: _Context, method: str) -> Any:
        target = context.target
        resource_type = context.resource_type
        assert target is not None and resource_type is not None
        namespaced = resource_type.namespaced
        if target.namespace is not None and not namespaced:
            raise _generic_not_found()
        all_namespaces = namespaced and target.namespace is None
        if target.rest and target.subresource != "proxy":
            raise _generic_not_found()
        if target.subresource is not None:
            if target.watch_prefix:
                raise _generic_not_found()
            return self._subresource(context, method)
        watch_requested = target.watch_prefix or bool(_query_bool(context.query.get("watch")))
        if target.name is None:
            if all_namespaces:
                methods = {"GET": "list"}
            else:
                methods = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}
            if target.watch_prefix:
                methods = {"GET": "watch"}
        else:
            if all_namespaces:
                raise _generic_not_found()
            methods = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
            if target.watch_prefix:
                methods = {"GET": "watch"}
        if method == "GET" and watch_requested:
            verb = "watch"
        else:
            verb = methods.get(method, "")
        offered = [name for name, offered_verb in methods.items() if resource_type.allows(offered_verb)]
        if method == "GET" and watch_requested and resource_type.allows("watch"):
            offered.append("GET")
        if not offered:
            raise _generic_not_found()
        if method not in offered or not verb or not resource_type.allows(verb):
            raise _generic_method_not_allowed()
        context.verb = verb
        context.output = self._output(context)
        if resource_type.group == "metrics.k8s.io":
            return self._metrics(context)
        if resource_type.group_resource == ("", "componentstatuses"):
            return self._component_statuses(context)
        if verb == "get":
            return self._get(context)
        if verb == "list":
            return self._list(context)
        if verb == "watch":
            return self._watch(context)
        if verb == "create":
            if resource_type.group_resource == ("", "bindings"):
                return self._bind(context)
            if not resource_type.persisted:
                return self._review(context)
            return self._create(context)
        if verb == "update":
            return self._update(context, None)
        if verb == "patch":
            return self._patch(context, None)
        if verb == "delete":
            return self._delete(context)
        return self._delete_collection(context)

    def _output(self, context: _Context) -> _Output:
        output = _negotiate(context.request.getHeader(b"accept"))
        pretty_values = context.query.get("pretty")
        if pretty_values and pretty_values[0]:
            pretty = pretty_values[0].lower() in ("1", "t", "true")
        else:
            agent = (context.request.getHeader(b"user-agent") or b"").decode("latin-1")
            pretty = agent.startswith(("curl", "Wget", "Mozilla/5.0"))
        if pretty:
            output = _Output(output.convert, output.version, output.yaml)
            output.pretty = True
        return output

    def _respond(self, context: _Context, code: int, obj: dict, is_list: bool = False) -> _Response:
        """
        Answer with an object or list in the negotiated form
        (C{transformResponseObject}).
        """
        output = context.output
        if output.convert is not None and obj.get("kind") != "Status":
            obj = self._transform(context, obj, is_list)
        if output.yaml:
            body = yaml.safe_dump(obj, default_flow_style=False, allow_unicode=True).encode("utf-8")
            return _Response(code, body, b"application/yaml")
        return _Response(code, _json_bytes(obj, output.pretty))

    def _transform(self, context: _Context, obj: dict, is_list: bool) -> dict:
        output = context.output
        resource_type = context.resource_type
        assert resource_type is not None
        if output.convert == "Table":
            include = _query_string(context.query, "includeObject")
            if include not in ("", "None", "Metadata", "Object"):
                raise new_bad_request(
                    "Unable to convert to Table as requested: includeObject: Invalid value: "
                    f"{go_quote(include)}: must be 'Metadata', 'Object', 'None', or empty"
                )
            no_headers = bool(_query_bool(context.query.get("noHeaders")))
            if is_list:
                items = obj.get("items") or ()
                list_meta = obj.get("metadata")
            else:
                items = (obj,)
                list_meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            try:
                return to_table(
                    resource_type,
                    items,
                    list_meta,
                    include,
                    self._cluster.clock.seconds(),
                    no_headers=no_headers,
                    api_version=output.api_version,
                )
            except InvalidTableRequest as error:
                raise new_bad_request(str(error)) from None
        if output.convert == "PartialObjectMetadata":
            if is_list:
                raise new_not_acceptable_text(
                    "you requested PartialObjectMetadata, but the requested object is a list "
                    f"(*{resource_type.version}.{resource_type.list_kind})"
                )
            return partial_object_metadata(obj, output.api_version)
        if not is_list:
            raise new_not_acceptable_text(
                "you requested PartialObjectMetadataList, but the requested object is not a list "
                f"(*{resource_type.version}.{resource_type.kind})"
            )
        return {
            "kind": "PartialObjectMetadataList",
            "apiVersion": output.api_version,
            "metadata": obj.get("metadata") or {},
            "items": [partial_object_metadata(item, output.api_version) for item in obj.get("items") or ()],
        }

    # -- get, list, watch ---------------------------------------------------------

    def _store_namespace(self, context: _Context) -> str:
        target = context.target
        assert target is not None
        return target.namespace or ""

    def _get(self, context: _Context) -> _Response:
        target = context.target
        resource_type = context.resource_type
        assert target is not None and resource_type is not None and target.name is not None
        namespace = self._store_namespace(context)
        self._cluster.prepare_read(resource_type, namespace)
        obj = self._cluster.store.get(resource_type, namespace, target.name)
        return self._respond(context, 200, obj)

    def _check_timeout(self, context: _Context) -> None:
        # WithRequestDeadline validates ?timeout= on every request that is
        # not long-running.
        value = _query_string(context.query, "timeout")
        if value:
            try:
                parse_go_duration(value)
            except ValueError as error:
                raise new_bad_request(f"invalid timeout specified in the request URL - {error}") from None

    def _selectors(self, context: _Context) -> tuple[Any, FieldSelector]:
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None
        labels = parse_label_selector(_query_string(context.query, "labelSelector"))
        fields = parse_field_selector(_query_string(context.query, "fieldSelector"))
        if not fields.empty:
            extra = _FIELD_LABELS.get(resource_type.group_resource)
            if extra is not None:
                fields.check_supported(_DEFAULT_FIELDS + extra)
            else:
                for field in fields.fields:
                    if field not in _DEFAULT_FIELDS:
                        raise new_bad_request(
                            f"{go_quote(field)} is not a known field selector: only "
                            '"metadata.name", "metadata.namespace"'
                        )
        if target.name is not None:
            # A watch of one object is a watch with a name field selector.
            if not fields.empty:
                selected = fields.requires_exact_match("metadata.name")
                if selected != target.name:
                    raise new_bad_request("fieldSelector metadata.name doesn't match requested name")
            else:
                fields = field_selector_from_set({"metadata.name": target.name})
        return labels, fields

    def _list_options(self, context: _Context, watch: bool) -> dict:
        query = context.query
        options = {
            "resource_version": _query_string(query, "resourceVersion"),
            "resource_version_match": _query_string(query, "resourceVersionMatch"),
            "continue_token": _query_string(query, "continue"),
            "limit": _query_int(query.get("limit")),
            "timeout_seconds": _query_int(query.get("timeoutSeconds")),
            "send_initial_events": _query_bool(query.get("sendInitialEvents")),
            "allow_bookmarks": bool(_query_bool(query.get("allowWatchBookmarks"))),
        }
        # ValidateListOptions, before anything reads the store (which checks
        # a list's options again itself).
        if watch:
            validate_watch_options(
                options["resource_version_match"],
                options["send_initial_events"],
                options["continue_token"],
            )
        else:
            validate_list_options(
                options["resource_version"],
                options["resource_version_match"],
                options["continue_token"],
                options["send_initial_events"],
            )
        return options

    def _list(self, context: _Context) -> _Response:
        resource_type = context.resource_type
        assert resource_type is not None
        options = self._list_options(context, watch=False)
        labels, fields = self._selectors(context)
        namespace = context.target.namespace if context.target is not None else None
        self._cluster.prepare_read(resource_type, namespace)
        result = self._cluster.store.list(
            resource_type,
            namespace,
            labels,
            fields,
            limit=options["limit"],
            continue_token=options["continue_token"] or None,
            resource_version=options["resource_version"] or None,
            resource_version_match=options["resource_version_match"] or None,
        )
        metadata: dict[str, Any] = {"resourceVersion": result.resource_version}
        if result.continue_token:
            metadata["continue"] = result.continue_token
        if result.remaining_item_count is not None:
            metadata["remainingItemCount"] = result.remaining_item_count
        body = {
            "kind": resource_type.list_kind,
            "apiVersion": resource_type.api_version,
            "metadata": metadata,
            "items": result.items,
        }
        return self._respond(context, 200, body, is_list=True)

    def _watch(self, context: _Context) -> Any:
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None
        options = self._list_options(context, watch=True)
        labels, fields = self._selectors(context)
        output = context.output
        if output.yaml:
            # The YAML serializer has no stream framing.
            raise new_not_acceptable(SERVED_MEDIA_TYPES)
        timeout: Optional[float] = None
        if options["timeout_seconds"]:
            timeout = float(options["timeout_seconds"])
        else:
            timeout = _MIN_REQUEST_TIMEOUT * (1.0 + _RANDOM.random())
        encode = self._watch_encoder(context)
        store = self._cluster.store
        namespace = target.namespace
        self._cluster.prepare_read(resource_type, namespace)

        def start(callback: Callable[[str, dict], None]) -> Any:
            return store.watch(
                resource_type,
                namespace,
                labels,
                fields,
                resource_version=options["resource_version"] or None,
                send_initial_events=options["send_initial_events"],
                allow_bookmarks=options["allow_bookmarks"],
                callback=callback,
            )

        request = context.request
        request.responseHeaders.setRawHeaders(b"audit-id", [_audit_id(request)])
        request.responseHeaders.setRawHeaders(b"cache-control", [_CACHE_CONTROL])
        stream = WatchStream(request, self._cluster.watch_hub, self._cluster.stats, encode)
        stream.open(start, timeout, options["allow_bookmarks"])
        return server.NOT_DONE_YET

    def _watch_encoder(self, context: _Context) -> Callable[[str, dict], bytes]:
        output = context.output
        if output.convert is None:
            return encode_event
        resource_type = context.resource_type
        assert resource_type is not None
        if output.convert == "PartialObjectMetadataList":
            raise new_not_acceptable_text(
                "you requested PartialObjectMetadataList, but the requested object is not a list "
                f"(*{resource_type.version}.{resource_type.kind})"
            )
        include = _query_string(context.query, "includeObject")
        if output.convert == "Table" and include not in ("", "None", "Metadata", "Object"):
            raise new_bad_request(
                "Unable to convert to Table as requested: includeObject: Invalid value: "
                f"{go_quote(include)}: must be 'Metadata', 'Object', 'None', or empty"
            )
        state = {"headers": not _query_bool(context.query.get("noHeaders"))}
        clock = self._cluster.clock

        def encode(event_type: str, obj: dict) -> bytes:
            if event_type == "ERROR":
                return encode_event(event_type, obj)
            if output.convert == "PartialObjectMetadata":
                return encode_event(event_type, partial_object_metadata(obj, output.api_version))
            # Column definitions only in the first event, as the apiserver's
            # watchEmbeddedEncoder does; bookmarks carry only metadata.
            table = to_table(
                resource_type,
                (obj,),
                {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                "Metadata" if event_type == "BOOKMARK" else include,
                clock.seconds(),
                no_headers=not state["headers"],
                api_version=output.api_version,
            )
            state["headers"] = False
            return encode_event(event_type, table)

        return encode

    # -- request bodies -------------------------------------------------------------

    def _body(self, context: _Context) -> bytes:
        request = context.request
        if getattr(request, "body_too_large", False):
            raise new_request_entity_too_large(f"limit is {MAX_REQUEST_BODY_BYTES}")
        content = request.content
        if content is None:
            return b""
        content.seek(0)
        # Bodies normally arrive through APIRequest, which stops keeping
        # them past the limit; any other request is checked here.
        data = content.read(MAX_REQUEST_BODY_BYTES + 1)
        if len(data) > MAX_REQUEST_BODY_BYTES:
            raise new_request_entity_too_large(f"limit is {MAX_REQUEST_BODY_BYTES}")
        return data

    def _decode_body(
        self,
        context: _Context,
        kind: str,
        api_version: str,
        strictness: str = "",
        definition: Optional[Callable[[dict], Optional[Definition]]] = None,
    ) -> dict:
        """
        The request body as an object, from JSON, YAML or protobuf.

        @param kind: what the URL's resource holds (for messages and for
            protobuf envelopes without a kind).
        @param strictness: C{fieldValidation}: C{Strict} refuses unknown
            and duplicate fields, C{Warn} (the default) warns about them,
            C{Ignore} drops them silently.
        @param definition: finds the schema to check fields against.
        """
        media_type, _ = _media_type(context.request.getHeader(b"content-type"))
        if media_type and media_type not in (JSON, YAML, PROTOBUF_CONTENT_TYPE):
            raise new_unsupported_media_type(SERVED_MEDIA_TYPES)
        body = self._body(context)
        if media_type == PROTOBUF_CONTENT_TYPE:
            # Protobuf has no unknown or duplicate fields to report: the
            # decoder skips unknown ones, as Go's does.
            return decode_object(body, api_version, kind)
        duplicates: list[str] = []
        if media_type == YAML:
            try:
                value = yaml.load(body, Loader=_YAMLLoader)  # noqa: S506 - a SafeLoader subclass
            except yaml.YAMLError as error:
                raise _unrecognized(
                    kind,
                    "error converting YAML to JSON: yaml: "
                    f"{getattr(error, 'problem', None) or error}",
                    body,
                ) from None
        else:
            try:
                text = body.decode("utf-8")
                if strictness != "Ignore":
                    parsed = json.loads(text, object_pairs_hook=_pairs_with_duplicates)
                    value = _collect_duplicates(parsed, duplicates)
                else:
                    value = json.loads(text)
            except UnicodeDecodeError:
                raise _unrecognized(
                    kind,
                    "couldn't get version/kind; json parse error: invalid character looking "
                    "for beginning of value",
                    body,
                ) from None
            except json.JSONDecodeError as error:
                raise _unrecognized(
                    kind,
                    f"couldn't get version/kind; json parse error: {_go_json_error(text, error)}",
                    body,
                ) from None
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise _unrecognized(
                kind,
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{_go_json_value_type(value)} into Go value of type {_FIND_KIND_TYPE}",
                body,
            )
        problems = [f"duplicate field {go_quote(key)}" for key in duplicates]
        found: list[str] = []
        schema = definition(value) if definition is not None and strictness != "Ignore" else None
        if schema is not None:
            found = unknown_fields(schema, value)
            problems = [f"unknown field {go_quote(path)}" for path in found] + problems
        if problems:
            if strictness == "Strict":
                body_kind = value.get("kind") if isinstance(value.get("kind"), str) and value.get("kind") else kind
                version = str(value.get("apiVersion") or api_version).rpartition("/")[2]
                raise new_bad_request(
                    f"{body_kind} in version {go_quote(version)} cannot be handled as a {kind}: "
                    + "strict decoding error: "
                    + ", ".join(problems)
                )
            context.warnings.extend(problems)
        if found and schema is not None:
            # Decoding into the typed object drops what it does not know.
            value = prune_unknown_fields(schema, value)
        elif definition is not None and strictness == "Ignore":
            schema = definition(value)
            if schema is not None and unknown_fields(schema, value):
                value = prune_unknown_fields(schema, value)
        return value

    def _write_options(self, context: _Context, kind: str, patch_type: str = "") -> tuple[bool, str, str]:
        """
        C{CreateOptions}/C{UpdateOptions}/C{PatchOptions}: dryRun,
        fieldManager, fieldValidation, validated as the handlers do.

        @return: (dry run, field manager, field validation directive).
        """
        query = context.query
        dry_run = query.get("dryRun") or []
        manager = _query_string(query, "fieldManager")
        validation = _query_string(query, "fieldValidation")
        errors = []
        if patch_type == APPLY_PATCH and not manager:
            errors.append(FieldError.required("fieldManager", "is required for apply patch"))
        if patch_type and patch_type != APPLY_PATCH and query.get("force"):
            errors.append(FieldError.forbidden("force", "may not be specified for non-apply patch"))
        if len(manager) > 128:
            errors.append(FieldError.too_long("fieldManager", 128))
        for position, character in enumerate(manager):
            if not character.isprintable():
                errors.append(
                    FieldError.invalid(
                        "fieldManager", manager, f"invalid character U+{ord(character):04X} (at position {position})"
                    )
                )
        if any(value != "All" for value in dry_run):
            errors.append(FieldError.not_supported("dryRun", dry_run, ("All",)))
        if validation not in _FIELD_VALIDATION_VALUES:
            errors.append(FieldError.not_supported("fieldValidation", validation, _FIELD_VALIDATION_VALUES))
        if errors:
            raise new_invalid(("meta.k8s.io", kind), "", errors)
        return bool(dry_run), manager, validation or "Warn"

    def _definition_finder(self, resource_type: ResourceType) -> Callable[[dict], Optional[Definition]]:
        schemas = self._cluster.schemas()

        def find(obj: dict) -> Optional[Definition]:
            return schemas.definition_for_kind(resource_type.group, resource_type.version, resource_type.kind)

        return find

    # -- create, update, patch ---------------------------------------------------------

    def _create(self, context: _Context) -> _Response:
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None
        if resource_type.namespaced and target.namespace is None:
            raise _generic_method_not_allowed()
        dry_run, _, validation = self._write_options(context, "CreateOptions")
        obj = self._decode_body(
            context, resource_type.kind, resource_type.api_version, validation, self._definition_finder(resource_type)
        )
        namespace = target.namespace or ""
        if resource_type.group_resource == ("", "namespaces"):
            namespace = ""
        self._validate_content(context, obj)
        created = self._cluster.store.create(resource_type, namespace, obj, dry_run=dry_run)
        self._log_write(context, created)
        return self._respond(context, 201, created)

    def _update(self, context: _Context, subresource: Optional[str]) -> _Response:
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None and target.name is not None
        dry_run, _, validation = self._write_options(context, "UpdateOptions")
        obj = self._decode_body(
            context, resource_type.kind, resource_type.api_version, validation, self._definition_finder(resource_type)
        )
        self._validate_content(context, obj)
        updated = self._cluster.store.update(
            resource_type, self._store_namespace(context), target.name, obj, subresource=subresource, dry_run=dry_run
        )
        self._log_write(context, updated)
        return self._respond(context, 200, updated)

    def _patch_document(self, context: _Context, patch_type: str) -> Any:
        body = self._body(context)
        try:
            if patch_type == APPLY_PATCH:
                document = yaml.load(body, Loader=_YAMLLoader)  # noqa: S506 - a SafeLoader subclass
            else:
                document = json.loads(body.decode("utf-8")) if body.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
            if patch_type == APPLY_PATCH:
                raise new_bad_request(f"error decoding YAML: {error}") from None
            message = (
                _go_json_error(body.decode("utf-8", "replace"), error)
                if isinstance(error, json.JSONDecodeError)
                else str(error)
            )
            raise new_bad_request(message) from None
        return document

    def _patch(self, context: _Context, subresource: Optional[str]) -> _Response:
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None and target.name is not None
        content_type = (context.request.getHeader(b"content-type") or b"").decode("latin-1")
        media_type, _ = _media_type(context.request.getHeader(b"content-type"))
        if resource_type.custom:
            patch_type = check_patch_type(content_type, custom=True)
        elif media_type not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH):
            # go-restful refuses the content type before the patch handler
            # runs, with its own words.
            raise APIError(
                415, StatusReason.UNSUPPORTED_MEDIA_TYPE, "415: Unsupported Media Type", StatusDetails()
            )
        else:
            patch_type = media_type
        dry_run, _, validation = self._write_options(context, "PatchOptions", patch_type)
        document = self._patch_document(context, patch_type)
        store = self._cluster.store
        namespace = self._store_namespace(context)
        try:
            current = store.get(resource_type, namespace, target.name)
        except APIError as error:
            if error.code == 404 and patch_type == APPLY_PATCH and subresource is None:
                # Server-side apply, approximated: applying to a missing
                # object creates it from the applied configuration.
                return self._apply_create(context, document, dry_run, validation)
            raise
        patched = self._apply_patch(resource_type, current, document, patch_type)
        if subresource is None:
            patched = self._validate_patched(context, patched, validation)
        metadata = patched.get("metadata")
        if not isinstance(metadata, dict):
            raise new_bad_request("metadata must be an object")
        current_version = current["metadata"].get("resourceVersion", "")
        requested_version = metadata.get("resourceVersion")
        if patch_type != APPLY_PATCH and requested_version and requested_version != current_version:
            raise new_conflict(
                resource_type.group_resource,
                target.name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        patched = {**patched, "metadata": {**metadata, "resourceVersion": current_version}}
        self._validate_content(context, patched)
        updated = store.update(
            resource_type, namespace, target.name, patched, subresource=subresource, dry_run=dry_run
        )
        self._log_write(context, updated)
        return self._respond(context, 200, updated)

    def _apply_patch(self, resource_type: ResourceType, current: dict, document: Any, patch_type: str) -> dict:
        if patch_type == JSON_PATCH:
            patched = apply_json_patch(current, document)
        elif patch_type == MERGE_PATCH:
            patched = apply_merge_patch(current, document)
        elif patch_type == STRATEGIC_MERGE_PATCH:
            definition = self._cluster.schemas().definition_for_kind(
                resource_type.group, resource_type.version, resource_type.kind
            )
            if definition is None:
                raise APIError(
                    415,
                    StatusReason.UNSUPPORTED_MEDIA_TYPE,
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                )
            patched = apply_strategic_merge_patch(current, document, definition.patch_schema())
        else:
            # Server-side apply, approximated as a JSON merge of the applied
            # configuration: fields the applier owned and dropped are not
            # removed, and no field ownership is tracked or conflicted on.
            if not isinstance(document, dict):
                raise new_bad_request("error decoding YAML: the applied configuration is not an object")
            self._check_apply_identity(resource_type, current, document)
            patched = apply_merge_patch(current, document)
        if not isinstance(patched, dict):
            raise new_bad_request(
                f"json: cannot unmarshal array into Go value of type map[string]interface {{}}"
            )
        return patched

    @staticmethod
    def _check_apply_identity(resource_type: ResourceType, current: Mapping, document: Mapping) -> None:
        kind = document.get("kind")
        api_version = document.get("apiVersion")
        if kind != resource_type.kind or api_version != resource_type.api_version:
            raise new_bad_request(
                f"error decoding YAML: the applied configuration's apiVersion/kind "
                f"({api_version}, {kind}) does not match the object ({resource_type.api_version}, "
                f"{resource_type.kind})"
            )

    def _validate_content(self, context: _Context, obj: Mapping) -> None:
        """
        What the resource's strategy validates beyond metadata (which the
        store checks): config keys of ConfigMaps and Secrets, and a custom
        resource's schema.
        """
        resource_type = context.resource_type
        assert resource_type is not None
        errors = _config_key_errors(resource_type, obj)
        if resource_type.custom:
            definition = self._cluster.schemas().definition_for_kind(
                resource_type.group, resource_type.version, resource_type.kind
            )
            if definition is not None:
                errors += _custom_resource_errors(definition, obj)
        if errors:
            metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
            name = metadata.get("name") or (context.target.name if context.target is not None else "") or ""
            raise new_invalid((resource_type.group, resource_type.kind), name, errors)

    def _validate_patched(self, context: _Context, patched: dict, validation: str) -> dict:
        """Field validation of the patched object, as the patch handler does."""
        resource_type = context.resource_type
        assert resource_type is not None
        definition = self._cluster.schemas().definition_for_kind(
            resource_type.group, resource_type.version, resource_type.kind
        )
        if definition is None:
            return patched
        found = unknown_fields(definition, patched)
        if not found:
            return patched
        if validation == "Strict":
            raise new_bad_request(strict_decoding_message(found))
        if validation == "Warn":
            context.warnings.extend(f"unknown field {go_quote(path)}" for path in found)
        return prune_unknown_fields(definition, patched)

    def _apply_create(self, context: _Context, document: Any, dry_run: bool, validation: str) -> _Response:
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None and target.name is not None
        if not isinstance(document, dict):
            raise new_bad_request("error decoding YAML: the applied configuration is not an object")
        self._check_apply_identity(resource_type, {}, document)
        metadata = dict(document.get("metadata") or {})
        if metadata.get("name", target.name) != target.name:
            raise new_bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({target.name})"
            )
        metadata["name"] = target.name
        obj = self._validate_patched(context, {**document, "metadata": metadata}, validation)
        self._validate_content(context, obj)
        created = self._cluster.store.create(resource_type, self._store_namespace(context), obj, dry_run=dry_run)
        self._log_write(context, created)
        return self._respond(context, 201, created)

    # -- delete -------------------------------------------------------------------

    def _delete_options(self, context: _Context, group_version: str) -> dict:
        """C{DeleteOptions} from the body (JSON or protobuf) and the query."""
        body = self._body(context)
        options: dict = {}
        if body.strip():
            media_type, _ = _media_type(context.request.getHeader(b"content-type"))
            if media_type == PROTOBUF_CONTENT_TYPE:
                options = decode_object(body, group_version, "DeleteOptions")
            elif media_type in ("", JSON, YAML):
                try:
                    options = (
                        yaml.load(body, Loader=_YAMLLoader)  # noqa: S506 - a SafeLoader subclass
                        if media_type == YAML
                        else json.loads(body.decode("utf-8"))
                    )
                except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
                    message = (
                        _go_json_error(body.decode("utf-8", "replace"), error)
                        if isinstance(error, json.JSONDecodeError)
                        else str(error)
                    )
                    # The delete handler answers the decoder's error as it
                    # is (no transformDecodeError).
                    raise new_bad_request(
                        f"couldn't get version/kind; json parse error: {message}"
                    ) from None
                if options is None:
                    options = {}
                if not isinstance(options, dict):
                    raise new_bad_request(
                        "couldn't get version/kind; json parse error: json: cannot unmarshal "
                        f"{_go_json_value_type(options)} into Go value of type {_FIND_KIND_TYPE}"
                    )
                kind = options.get("kind")
                if kind and kind != "DeleteOptions":
                    raise new_bad_request(
                        f"{kind} in version {go_quote(str(options.get('apiVersion', '')).rpartition('/')[2])} "
                        "cannot be handled as a DeleteOptions: no kind "
                        f"{go_quote(kind)} is registered for version {go_quote(str(options.get('apiVersion', '')))}"
                    )
            else:
                raise new_unsupported_media_type(SERVED_MEDIA_TYPES)
        query = context.query
        grace = _query_int(query.get("gracePeriodSeconds"))
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        policy = _query_string(query, "propagationPolicy")
        if policy:
            options["propagationPolicy"] = policy
        orphan = _query_bool(query.get("orphanDependents"))
        if orphan is not None:
            options["orphanDependents"] = orphan
        if query.get("dryRun"):
            options["dryRun"] = query["dryRun"]
        errors = []
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is not None and policy is not None:
            errors.append(
                FieldError.invalid(
                    "propagationPolicy", policy, "orphanDependents and deletionPropagation cannot be both set"
                )
            )
        if policy is not None and policy not in ("Foreground", "Background", "Orphan"):
            errors.append(
                FieldError.not_supported("propagationPolicy", policy, ("Foreground", "Background", "Orphan", "nil"))
            )
        dry_run = options.get("dryRun") or []
        if any(value != "All" for value in dry_run):
            errors.append(FieldError.not_supported("dryRun", dry_run, ("All",)))
        if errors:
            raise new_invalid(("meta.k8s.io", "DeleteOptions"), "", errors)
        return options

    def _delete(self, context: _Context) -> _Response:
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None and target.name is not None
        options = self._delete_options(context, resource_type.api_version)
        preconditions = options.get("preconditions") or {}
        store = self._cluster.store
        namespace = self._store_namespace(context)
        result = self._cluster.delete(
            resource_type,
            namespace,
            target.name,
            preconditions={key: value for key, value in preconditions.items() if value is not None},
            grace_period=options.get("gracePeriodSeconds"),
            propagation=options.get("propagationPolicy"),
            dry_run=bool(options.get("dryRun")),
        )
        code = 200
        if options.get("orphanDependents") is False:
            # The apiserver's only 202: cascading deletion asked for the old
            # way, and the object is still there.
            try:
                store.get(resource_type, namespace, target.name)
                code = 202
            except APIError:
                pass
        self._log_write(context, result)
        # A Status (for resources that do not return the deleted object)
        # has no code, as the registry's finalizeDelete makes it.
        return self._respond(context, code, result)

    def _delete_collection(self, context: _Context) -> _Response:
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None
        options = self._delete_options(context, resource_type.api_version)
        labels, fields = self._selectors(context)
        store = self._cluster.store
        listed = store.list(resource_type, target.namespace, labels, fields)
        dry_run = bool(options.get("dryRun"))
        for item in listed.items:
            metadata = item["metadata"]
            try:
                self._cluster.delete(
                    resource_type,
                    metadata.get("namespace", ""),
                    metadata["name"],
                    grace_period=options.get("gracePeriodSeconds"),
                    propagation=options.get("propagationPolicy"),
                    dry_run=dry_run,
                )
            except APIError as error:
                # Gone meanwhile (a cascade of an earlier delete) is fine.
                if error.code != 404:
                    raise
        body = {
            "kind": resource_type.list_kind,
            "apiVersion": resource_type.api_version,
            "metadata": {"resourceVersion": listed.resource_version},
            "items": listed.items,
        }
        return self._respond(context, 200, body, is_list=True)

    # -- subresources ------------------------------------------------------------

    def _subresource(self, context: _Context, method: str) -> Any:
        target = context.target
        resource_type = context.resource_type
        assert target is not None and resource_type is not None
        name = target.subresource or ""
        detail = resource_type.subresource(name)
        if detail is None or target.name is None or (resource_type.namespaced and target.namespace is None):
            raise _generic_not_found()
        methods = {"get": "GET", "update": "PUT", "patch": "PATCH", "create": "POST", "delete": "DELETE"}
        offered = {methods[verb]: verb for verb in detail.verbs if verb in methods}
        if name in ("exec", "attach", "portforward", "proxy"):
            # Connect verbs: GET and POST (proxy: every method).
            offered = {"GET": "get", "POST": "create"}
            if name == "proxy":
                offered.update({"PUT": "update", "PATCH": "patch", "DELETE": "delete"})
        verb = offered.get(method)
        if verb is None:
            raise _generic_method_not_allowed()
        context.verb = verb
        if name in ("exec", "attach", "portforward", "proxy"):
            return self._connect(context, name)
        context.output = self._output(context)
        if name == "log":
            return self._pod_log(context)
        if name == "token":
            return self._token_request(context)
        if name == "scale":
            return self._scale(context, verb)
        if name in ("status", "finalize", "approval"):
            # approval changes only the status conditions of a CSR.
            store_subresource = "finalize" if name == "finalize" else "status"
            if verb == "get":
                return self._get(context)
            if verb == "update":
                return self._update(context, store_subresource)
            if verb == "patch":
                return self._patch(context, store_subresource)
        if verb == "get":
            return self._get(context)
        if name == "eviction" and verb == "create":
            return self._evict(context)
        if name == "binding" and verb == "create":
            return self._bind(context)
        # ephemeralcontainers and the like: not simulated.
        raise APIError(
            405,
            StatusReason.METHOD_NOT_ALLOWED,
            f"{verb} is not supported on resources of kind {go_quote(f'{resource_type.resource}/{name}')}",
            StatusDetails(group=resource_type.group, kind=f"{resource_type.resource}/{name}"),
        )

    def _evict(self, context: _Context) -> _Response:
        """
        C{pods/<name>/eviction}: the pod is deleted. (An approximation:
        PodDisruptionBudgets are not consulted.)
        """
        target = context.target
        assert target is not None and target.name is not None
        self._write_options(context, "CreateOptions")
        eviction = self._decode_body(context, "Eviction", "policy/v1")
        name = (eviction.get("metadata") or {}).get("name")
        if name and name != target.name:
            raise new_bad_request("name in URL does not match name in Eviction object")
        options = eviction.get("deleteOptions") or {}
        self._cluster.delete(
            _PODS,
            self._store_namespace(context),
            target.name,
            preconditions=options.get("preconditions") or None,
            grace_period=options.get("gracePeriodSeconds"),
            propagation=options.get("propagationPolicy"),
            dry_run=bool(options.get("dryRun") or context.query.get("dryRun")),
        )
        return _Response(201, _json_bytes(_success_status(201)))

    def _bind(self, context: _Context) -> _Response:
        """
        C{pods/<name>/binding}, or C{bindings} naming the pod: what the
        scheduler does, assign a node.
        """
        target = context.target
        assert target is not None
        dry_run, _, _ = self._write_options(context, "CreateOptions")
        binding = self._decode_body(context, "Binding", "v1")
        name = target.name or (binding.get("metadata") or {}).get("name") or ""
        node = (binding.get("target") or {}).get("name", "")
        annotations = (binding.get("metadata") or {}).get("annotations") or None
        self._cluster.store.bind_pod(
            _PODS, self._store_namespace(context), name, node, annotations, dry_run=dry_run
        )
        return _Response(201, _json_bytes(_success_status(201)))

    def _component_statuses(self, context: _Context) -> _Response:
        """
        C{componentstatuses}: the deprecated health of the control plane,
        all healthy (what a k3s server reports).
        """
        target = context.target
        assert target is not None
        statuses = [_component_status(name) for name in ("scheduler", "controller-manager", "etcd-0")]
        if target.name is not None:
            for status in statuses:
                if status["metadata"]["name"] == target.name:
                    return self._respond(context, 200, status)
            raise new_not_found(("", "componentstatuses"), target.name)
        body = {"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": statuses}
        return self._respond(context, 200, body, is_list=True)

    def _metrics(self, context: _Context) -> _Response:
        """
        C{metrics.k8s.io}, which metrics-server answers in a real cluster:
        usage made up from the Nodes and running Pods, the same on every
        read (there is nothing to measure).
        """
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None
        source = _NODES if resource_type.resource == "nodes" else _PODS
        now = _now_text(self._cluster.clock.seconds())
        store = self._cluster.store
        if target.name is not None:
            try:
                obj = store.get(source, self._store_namespace(context), target.name)
            except APIError as error:
                raise new_not_found(resource_type.group_resource, target.name) from error
            metrics = _usage_of(resource_type.kind, obj, now)
            if metrics is None:
                raise new_not_found(resource_type.group_resource, target.name)
            return self._respond(context, 200, metrics)
        labels, fields = self._selectors(context)
        listed = store.list(source, target.namespace, labels, fields)
        items = [usage for obj in listed.items if (usage := _usage_of(resource_type.kind, obj, now)) is not None]
        body = {
            "kind": resource_type.list_kind,
            "apiVersion": resource_type.api_version,
            "metadata": {},
            "items": items,
        }
        return self._respond(context, 200, body, is_list=True)

    def _scale(self, context: _Context, verb: str) -> _Response:
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None and target.name is not None
        store = self._cluster.store
        namespace = self._store_namespace(context)
        current = store.get(resource_type, namespace, target.name)
        if verb == "get":
            return self._respond(context, 200, _scale_of(current))
        dry_run, _, _ = self._write_options(context, "UpdateOptions" if verb == "update" else "PatchOptions")
        scale = _scale_of(current)
        if verb == "update":
            requested = self._decode_body(context, "Scale", "autoscaling/v1")
        else:
            media_type, _ = _media_type(context.request.getHeader(b"content-type"))
            if media_type not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH):
                raise APIError(
                    415, StatusReason.UNSUPPORTED_MEDIA_TYPE, "415: Unsupported Media Type", StatusDetails()
                )
            document = self._patch_document(context, media_type)
            if media_type == JSON_PATCH:
                requested = apply_json_patch(scale, document)
            else:
                requested = apply_merge_patch(scale, document)
        requested_version = (requested.get("metadata") or {}).get("resourceVersion")
        if requested_version and requested_version != current["metadata"].get("resourceVersion"):
            raise new_conflict(
                resource_type.group_resource,
                target.name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        replicas = (requested.get("spec") or {}).get("replicas", 0)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise new_invalid(
                ("autoscaling", "Scale"),
                target.name,
                [FieldError.invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
            )
        spec = {**(current.get("spec") or {}), "replicas": replicas}
        updated = store.update(
            resource_type, namespace, target.name, {**current, "spec": spec}, dry_run=dry_run
        )
        self._log_write(context, updated)
        return self._respond(context, 200, _scale_of(updated))

    def _pod_log(self, context: _Context) -> _Response:
        target = context.target
        assert target is not None and target.name is not None
        pod = self._cluster.store.get(_PODS, self._store_namespace(context), target.name)
        containers = [container.get("name", "") for container in (pod.get("spec") or {}).get("containers") or ()]
        container = _query_string(context.query, "container")
        if not container:
            if len(containers) != 1:
                raise new_bad_request(
                    f"a container name must be specified for pod {target.name}, choose one of: "
                    f"[{' '.join(containers)}]"
                )
            container = containers[0]
        elif container not in containers:
            raise new_bad_request(f"container {container} is not valid for pod {target.name}")
        tail = _query_int(context.query.get("tailLines"))
        timestamps = bool(_query_bool(context.query.get("timestamps")))
        started = (pod.get("status") or {}).get("startTime") or pod["metadata"].get("creationTimestamp", "")
        lines = _log_lines(target.name, container, started)
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        if timestamps:
            moment = (started or "1970-01-01T00:00:00Z").replace("Z", ".000000000Z")
            lines = [f"{moment} {line}" for line in lines]
        body = "".join(line + "\n" for line in lines).encode("utf-8")
        limit = _query_int(context.query.get("limitBytes"))
        if limit is not None and limit > 0:
            body = body[:limit]
        return _Response(200, body, b"text/plain")

    def _connect(self, context: _Context, name: str) -> _Response:
        """
        exec, attach, portforward and proxy reach the kubelet; there is
        none, so the answer is what the apiserver says when it cannot dial
        the node.
        """
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None and target.name is not None
        obj = self._cluster.store.get(resource_type, self._store_namespace(context), target.name)
        if resource_type.group_resource == ("", "pods"):
            node = (obj.get("spec") or {}).get("nodeName")
            if not node:
                raise new_bad_request(f"pod {target.name} does not have a host assigned")
            address = (obj.get("status") or {}).get("hostIP") or node
        elif resource_type.group_resource == ("", "nodes"):
            addresses = (obj.get("status") or {}).get("addresses") or ()
            address = next(
                (entry.get("address") for entry in addresses if entry.get("type") == "InternalIP"), target.name
            )
        else:
            raise APIError(
                503,
                StatusReason.SERVICE_UNAVAILABLE,
                f'no endpoints available for service "{target.name}"',
                StatusDetails(),
            )
        return self._error(
            APIError(
                500,
                StatusReason.UNKNOWN,
                f"error dialing backend: dial tcp {address}:10250: connect: connection refused",
            )
        )

    def _token_request(self, context: _Context) -> _Response:
        """C{POST serviceaccounts/<name>/token}: a bound token, signed here."""
        target = context.target
        assert target is not None and target.name is not None
        dry_run, _, _ = self._write_options(context, "CreateOptions")
        request = self._decode_body(context, "TokenRequest", "authentication.k8s.io/v1")
        kind = request.get("kind")
        if kind and kind != "TokenRequest":
            raise new_bad_request(
                f"{kind} in version \"v1\" cannot be handled as a TokenRequest: no kind {go_quote(kind)} is "
                'registered for version "authentication.k8s.io/v1"'
            )
        namespace = self._store_namespace(context)
        store = self._cluster.store
        account = store.get(_SERVICE_ACCOUNTS, namespace, target.name)
        spec = dict(request.get("spec") or {})
        audiences = list(spec.get("audiences") or API_AUDIENCES)
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            seconds = _TOKEN_DEFAULT_SECONDS
        errors = []
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise new_bad_request(
                "json: cannot unmarshal value into Go struct field "
                "TokenRequestSpec.spec.expirationSeconds of type int64"
            )
        if seconds < _TOKEN_MINIMUM_SECONDS:
            errors.append(
                FieldError.invalid("spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes")
            )
        if seconds > _TOKEN_MAXIMUM_SECONDS:
            errors.append(
                FieldError.invalid("spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds")
            )
        bound = spec.get("boundObjectRef")
        bound_object: Optional[BoundObject] = None
        if bound:
            bound_kind = bound.get("kind", "")
            if bound_kind not in _BOUND_KINDS:
                errors.append(
                    FieldError.not_supported("spec.boundObjectRef.kind", bound_kind, ("Pod", "Secret", "Node"))
                )
        if errors:
            raise new_invalid(("authentication.k8s.io", "TokenRequest"), target.name, errors)
        if bound:
            bound_type = _BOUND_KINDS[bound["kind"]]
            bound_name = bound.get("name", "")
            found = store.get(bound_type, namespace if bound_type.namespaced else "", bound_name)
            found_uid = found["metadata"].get("uid", "")
            requested_uid = bound.get("uid") or ""
            if requested_uid and requested_uid != found_uid:
                raise new_conflict(
                    bound_type.group_resource,
                    bound_name,
                    f"the UID in the bound object reference ({requested_uid}) does not match the UID in record. "
                    "The object might have been deleted and then recreated",
                )
            bound_object = BoundObject(bound["kind"], bound_name, found_uid)
            spec["boundObjectRef"] = {**bound, "uid": found_uid}
        now = datetime.fromtimestamp(self._cluster.clock.seconds(), timezone.utc)
        token, expires = self._cluster.identity.mint_bound_token(
            namespace,
            target.name,
            account["metadata"].get("uid", ""),
            audiences,
            seconds,
            bound_object,
            now=now,
        )
        spec["audiences"] = audiences
        spec["expirationSeconds"] = seconds
        response = {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": target.name, "namespace": namespace},
            "spec": spec,
            "status": {
                "token": "" if dry_run else token,
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }
        self._log.debug(
            "issued a token for {namespace}/{name} to {user}",
            namespace=namespace,
            name=target.name,
            user=context.user.username,
        )
        return self._respond(context, 201, response)

    # -- reviews ---------------------------------------------------------------------

    def _review(self, context: _Context) -> _Response:
        """
        The create-only review resources, answered for the caller;
        authorisation is allow-all, so every access review is allowed.
        """
        resource_type = context.resource_type
        target = context.target
        assert resource_type is not None and target is not None
        if resource_type.namespaced and target.namespace is None:
            raise _generic_method_not_allowed()
        self._write_options(context, "CreateOptions")
        review = self._decode_body(context, resource_type.kind, resource_type.api_version)
        kind = review.get("kind")
        if kind and kind != resource_type.kind:
            raise new_bad_request(
                f"{kind} in version {go_quote(resource_type.version)} cannot be handled as a "
                f"{resource_type.kind}: no kind {go_quote(kind)} is registered for version "
                f"{go_quote(resource_type.api_version)}"
            )
        spec = review.get("spec") or {}
        metadata = dict(review.get("metadata") or {})
        metadata.pop("resourceVersion", None)
        resource = resource_type.resource
        if resource == "tokenreviews":
            status = self._token_review_status(spec)
        elif resource == "selfsubjectreviews":
            status = {"userInfo": context.user.to_json()}
            spec = None
        elif resource == "selfsubjectrulesreviews":
            status = {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        else:
            # subjectaccessreviews, selfsubjectaccessreviews,
            # localsubjectaccessreviews.
            if resource == "localsubjectaccessreviews":
                attributes = spec.get("resourceAttributes") or {}
                if attributes.get("namespace", "") != target.namespace:
                    raise new_invalid(
                        (resource_type.group, resource_type.kind),
                        "",
                        [
                            FieldError.invalid(
                                "spec.resourceAttributes.namespace",
                                attributes.get("namespace", ""),
                                "must match metadata.namespace",
                            )
                        ],
                    )
            if resource == "selfsubjectaccessreviews":
                spec = dict(spec)
            status = {"allowed": True}
        response: dict[str, Any] = {
            "kind": resource_type.kind,
            "apiVersion": resource_type.api_version,
            "metadata": metadata,
        }
        if spec is not None:
            response["spec"] = spec
        response["status"] = status
        return self._respond(context, 201, response)

    def _token_review_status(self, spec: Mapping) -> dict:
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise new_invalid(
                ("authentication.k8s.io", "TokenReview"), "", [FieldError.required("spec.token")]
            )
        user = self.authenticate_token(token)
        if user is None:
            return {"user": {}}
        requested = list(spec.get("audiences") or ())
        status: dict[str, Any] = {"authenticated": True, "user": user.to_json()}
        claims = self._cluster.identity.verify_token(
            token, datetime.fromtimestamp(self._cluster.clock.seconds(), timezone.utc)
        )
        token_audiences = list(claims.audiences) if claims is not None and claims.audiences else list(API_AUDIENCES)
        if requested:
            matched = [audience for audience in requested if audience in token_audiences]
            if not matched:
                return {
                    "user": {},
                    "error": f"token audiences {json.dumps(token_audiences)} is invalid for the target "
                    f"audiences {json.dumps(requested)}",
                }
            status["audiences"] = matched
        else:
            matched = [audience for audience in API_AUDIENCES if audience in token_audiences]
            status["audiences"] = matched or list(API_AUDIENCES)
        return status

    # -- logging -------------------------------------------------------------------

    def _log_write(self, context: _Context, obj: Mapping) -> None:
        # Writes are rare and worth a trace; reads are counted, not logged.
        resource_type = context.resource_type
        if resource_type is None:
            return
        metadata = obj.get("metadata") or {}
        self._log.debug(
            "{verb} {resource} {namespace}/{name} by {user}",
            verb=context.verb,
            resource=resource_type.resource,
            namespace=metadata.get("namespace", ""),
            name=metadata.get("name", ""),
            user=context.user.username,
        )


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
    "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
# Which maps hold config keys, per kind (the ConfigMap and Secret strategies).
_CONFIG_KEY_FIELDS = {("", "configmaps"): ("data", "binaryData"), ("", "secrets"): ("data", "stringData")}
_JSON_TYPES = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}


def _config_key_errors(resource_type: ResourceType, obj: Mapping) -> list[FieldError]:
    """The config-key rule of ConfigMaps and Secrets (their strategies' Validate)."""
    errors = []
    for field in _CONFIG_KEY_FIELDS.get(resource_type.group_resource, ()):
        values = obj.get(field)
        if not isinstance(values, Mapping):
            continue
        for key in values:
            if len(key) > 253 or key in (".", "..") or key.startswith("..") or not _CONFIG_KEY.fullmatch(key):
                errors.append(FieldError.invalid(f"{field}[{key}]", key, _CONFIG_KEY_MESSAGE))
    return errors


def _json_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _schema_errors(definition: Definition, node: Mapping, value: Any, path: str, errors: list[FieldError]) -> None:
    """
    Validate a custom resource against its structural schema, for the
    rules CRDs use most (type, required, enum, bounds, lengths, pattern),
    with apiextensions' wording. (An approximation: CEL rules, formats and
    the combinators are not evaluated.)
    """
    if "$ref" in node:
        _, node = definition.index.resolve(node)
    if value is None:
        if not node.get("nullable") and node.get("type"):
            errors.append(FieldError(
                "FieldValueTypeInvalid", path, "null", f"{path} in body must be of type {node['type']}: \"null\""
            ))
        return
    expected = node.get("type")
    if expected in _JSON_TYPES:
        ok = isinstance(value, _JSON_TYPES[expected]) and not (
            expected in ("integer", "number") and isinstance(value, bool)
        )
        if expected == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            actual = _json_type_name(value)
            errors.append(FieldError(
                "FieldValueTypeInvalid", path, actual, f"{path} in body must be of type {expected}: {go_quote(actual)}"
            ))
            return
    if "enum" in node and value not in node["enum"]:
        errors.append(FieldError.not_supported(path, value, [str(item) for item in node["enum"]]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        minimum, maximum = node.get("minimum"), node.get("maximum")
        if minimum is not None and (value < minimum or (node.get("exclusiveMinimum") and value == minimum)):
            relation = "greater than" if node.get("exclusiveMinimum") else "greater than or equal to"
            errors.append(FieldError.invalid(path, value, f"{path} in body should be {relation} {minimum}"))
        if maximum is not None and (value > maximum or (node.get("exclusiveMaximum") and value == maximum)):
            relation = "less than" if node.get("exclusiveMaximum") else "less than or equal to"
            errors.append(FieldError.invalid(path, value, f"{path} in body should be {relation} {maximum}"))
    if isinstance(value, str):
        if node.get("maxLength") is not None and len(value) > node["maxLength"]:
            errors.append(FieldError.too_long(path, node["maxLength"]))
        if node.get("minLength") is not None and len(value) < node["minLength"]:
            errors.append(
                FieldError.invalid(path, value, f"{path} in body should be at least {node['minLength']} chars long")
            )
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            try:
                matched = re.search(pattern, value) is not None
            except re.error:
                matched = True
            if not matched:
                errors.append(FieldError.invalid(path, value, f"{path} in body should match '{pattern}'"))
    if isinstance(value, list):
        if node.get("maxItems") is not None and len(value) > node["maxItems"]:
            errors.append(
                FieldError("FieldValueTooMany", path, len(value), f"must have at most {node['maxItems']} items")
            )
        if node.get("minItems") is not None and len(value) < node["minItems"]:
            errors.append(
                FieldError.invalid(path, len(value), f"{path} in body should have at least {node['minItems']} items")
            )
        items = node.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                _schema_errors(definition, items, item, f"{path}[{index}]", errors)
    if isinstance(value, dict):
        properties = node.get("properties") or {}
        for required in node.get("required") or ():
            if required not in value:
                errors.append(FieldError.required(f"{path}.{required}" if path else required))
        additional = node.get("additionalProperties")
        for key, item in value.items():
            child = properties.get(key)
            if child is None and isinstance(additional, Mapping):
                child = additional
            if child is not None:
                _schema_errors(definition, child, item, f"{path}.{key}" if path else key, errors)


def _custom_resource_errors(definition: Definition, obj: Mapping) -> list[FieldError]:
    schema = definition.schema
    properties = schema.get("properties") or {}
    errors: list[FieldError] = []
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        child = properties.get(key)
        if child is not None:
            _schema_errors(definition, child, value, key, errors)
    for required in schema.get("required") or ():
        if required not in obj and required not in ("apiVersion", "kind", "metadata"):
            errors.append(FieldError.required(required))
    return errors


def _component_status(name: str) -> dict:
    message = '{"health":"true","reason":""}' if name.startswith("etcd") else "ok"
    return {
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "conditions": [{"type": "Healthy", "status": "True", "message": message}],
    }


def _success_status(code: int) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}


def _usage_of(kind: str, obj: Mapping, now: str) -> Optional[dict]:
    """
    A NodeMetrics or PodMetrics for one Node or Pod: a steady share of the
    node's capacity, or a small usage per container, derived from the name
    so that every read agrees.
    """
    metadata = obj.get("metadata") or {}
    seed = binascii.crc32(metadata.get("name", "").encode("utf-8"))
    out_metadata: dict[str, Any] = {"name": metadata.get("name", "")}
    if metadata.get("namespace"):
        out_metadata["namespace"] = metadata["namespace"]
    out_metadata["creationTimestamp"] = now
    if metadata.get("labels"):
        out_metadata["labels"] = metadata["labels"]
    metrics: dict[str, Any] = {"kind": kind, "apiVersion": "metrics.k8s.io/v1beta1", "metadata": out_metadata}
    metrics["timestamp"] = now
    metrics["window"] = "10.062s"
    if kind == "NodeMetrics":
        metrics["usage"] = {"cpu": f"{150 + seed % 400}m", "memory": f"{1200000 + seed % 900000}Ki"}
        return metrics
    if (obj.get("status") or {}).get("phase") != "Running":
        return None
    containers = []
    for index, container in enumerate((obj.get("spec") or {}).get("containers") or ()):
        containers.append(
            {
                "name": container.get("name", ""),
                "usage": {"cpu": f"{(seed >> index) % 20 + 1}m", "memory": f"{12000 + (seed >> index) % 60000}Ki"},
            }
        )
    metrics["containers"] = containers
    return metrics


def new_not_acceptable_text(message: str) -> APIError:
    """A 406 with the transformation's own message."""
    return APIError(406, StatusReason.NOT_ACCEPTABLE, message)


def _scale_of(obj: Mapping) -> dict:
    """The C{autoscaling/v1 Scale} of a Deployment, ReplicaSet or StatefulSet."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    scale_metadata = {
        key: metadata[key]
        for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        if key in metadata
    }
    scale_status: dict[str, Any] = {"replicas": status.get("replicas", 0)}
    selector = spec.get("selector")
    if selector:
        try:
            text = str(label_selector_from_object(selector))
        except APIError:
            text = ""
        if text:
            scale_status["selector"] = text
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_metadata,
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": scale_status,
    }


def _log_lines(pod: str, container: str, started: str) -> list[str]:
    """
    What a simulated container has logged: a few fixed lines, the same on
    every read (there is no container runtime to produce more).
    """
    return [
        f"{container} started at {started or 'an unknown time'}",
        f"pod {pod}: container {container} is running",
        "ready",
    ]


class APIRequest(server.Request):
    """
    A request whose body is kept in memory and bounded: past
    L{MAX_REQUEST_BODY_BYTES} the rest is discarded and the request is
    answered 413, as the apiserver's C{limitedReadBody} does.
    """

    body_too_large = False

    def gotLength(self, length: Optional[int]) -> None:
        from io import BytesIO

        # Never a temporary file on disk: bodies are small and bounded.
        self.content = BytesIO()
        if length is not None and length > MAX_REQUEST_BODY_BYTES:
            self.body_too_large = True

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        content = self.content
        if content.tell() + len(data) > MAX_REQUEST_BODY_BYTES:
            self.body_too_large = True
            content.seek(0)
            content.truncate()
            return
        content.write(data)


class APISite(server.Site):
    """
    The site of one cluster's API: keep-alive without an idle timer (the
    tunnel owns the stream's lifetime), bounded bodies, no access log.
    """

    requestFactory = APIRequest
    displayTracebacks = False

    def __init__(self, resource: Resource, clock: Any) -> None:
        super().__init__(resource, timeout=None, reactor=clock)

    def log(self, request: Request) -> None:
        # Thousands of clusters: requests are counted, not logged.
        pass
