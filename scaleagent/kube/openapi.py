# -*- test-case-name: tests.test_kube_openapi -*-
"""
The OpenAPI documents a kube-apiserver publishes for the resources it
serves: C{/openapi/v3} (a root listing one document per group/version, each
addressed by the hash of its content) and C{/openapi/v2} (one Swagger 2.0
document), built as bytes from L{ResourceType}s and a L{SchemaIndex}.

What the documents hold
=======================

For every resource, the operations the apiserver's installer registers for
its verbs and subresources, with the apiserver's C{operationId}s
(C{patchAppsV1NamespacedDeployment}), C{x-kubernetes-action},
C{x-kubernetes-group-version-kind}, query parameters (C{fieldValidation},
C{fieldManager}, C{dryRun}, C{pretty}, list and delete options...), request
bodies (the four patch content types for built-in kinds, three for custom
resources) and responses; and under C{components.schemas} every definition
those operations reach, with the patch extensions kubectl's C{apply} reads.
Custom resources are described the way the apiextensions apiserver
describes them (no strategic merge patch, JSON and YAML only, no deprecated
watch paths).

Approximations, none of which a client reads: parameter descriptions are
our own wording; definitions have no C{default} values (see
L{scaleagent.kube.schema}); the Swagger 2.0 document repeats parameters
inline where the apiserver shares them under C{parameters}.

Serving them
============

Nothing here does I/O.  The HTTP layer should answer C{GET /openapi/v3}
with L{OpenAPIV3.root}, and C{GET /openapi/v3/<path>} with
L{OpenAPIV3.document}: C{Content-Type: application/json}, an C{ETag} of the
quoted hash (L{OpenAPIDocument.etag}); when the request's C{hash} query
parameter is set and equal, also C{Cache-Control: public, immutable} and a
one-year C{Expires}, and when it differs a 301 to
L{OpenAPIDocument.server_relative_url}.  The apiserver also offers the
documents as protobuf; scaleagent does not, so a request whose C{Accept}
admits only C{application/com.github.proto-openapi.spec.v3@v1.0+protobuf}
(or C{...v3.v1.0+protobuf}) is answered 406, as is an C{/openapi/v2}
request that accepts only
C{application/com.github.proto-openapi.spec.v2@v1.0+protobuf}.  kubectl
asks for that only when the v3 documents do not give it what it needs
(a PATCH operation of the kind with a C{fieldValidation} parameter), so
the v3 documents must be right.

Documents are built once per distinct set of resources and kept, as bytes,
in a bounded cache shared by every cluster of the process.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlencode

from scaleagent.kube.patch import BUILTIN_PATCH_TYPES, CUSTOM_PATCH_TYPES
from scaleagent.kube.resources import ResourceType
from scaleagent.kube.schema import (
    GROUP_VERSION_KIND_EXTENSION,
    PRESERVE_UNKNOWN_FIELDS_EXTENSION,
    V2_REFERENCE_PREFIX,
    V3_REFERENCE_PREFIX,
    SchemaIndex,
    custom_definition_name,
    openapi_v3_form,
)

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_WATCH = "application/json;stream=watch"
PROTOBUF_WATCH = "application/vnd.kubernetes.protobuf;stream=watch"

#: What clients ask for when they want the protobuf form we do not offer.
PROTOBUF_V2_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTOBUF_V3_CONTENT_TYPES = (
    "application/com.github.proto-openapi.spec.v3@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v3.v1.0+protobuf",
)

_BUILTIN_MEDIA = (JSON, YAML, PROTOBUF)
_BUILTIN_STREAM_MEDIA = (JSON_WATCH, PROTOBUF_WATCH)
_CUSTOM_MEDIA = (JSON, YAML)

_STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
_DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
_PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
_WATCH_EVENT = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"
_API_RESOURCE_LIST = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"
_API_GROUP = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup"
_API_GROUP_LIST = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList"
_API_VERSIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions"
_VERSION_INFO = "io.k8s.apimachinery.pkg.version.Info"

_SECURITY_SCHEMES = {
    "BearerToken": {
        "description": "Bearer Token authentication",
        "in": "header",
        "name": "authorization",
        "type": "apiKey",
    }
}

#: Resources whose DELETE answers with the deleted object rather than a
#: Status (their registries set ReturnDeletedObject).
DELETE_RETURNS_OBJECT = frozenset(
    {
        ("", "pods"),
        ("", "services"),
        ("", "serviceaccounts"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "podtemplates"),
        ("", "resourcequotas"),
        ("storage.k8s.io", "volumeattachments"),
    }
)

# Subresources served through "connect" (streams and proxies) rather than
# as objects, and the query parameters of their options kinds.
_CONNECT_PARAMETERS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "PodAttachOptions": (
        ("container", "string"),
        ("stderr", "boolean"),
        ("stdin", "boolean"),
        ("stdout", "boolean"),
        ("tty", "boolean"),
    ),
    "PodExecOptions": (
        ("command", "string"),
        ("container", "string"),
        ("stderr", "boolean"),
        ("stdin", "boolean"),
        ("stdout", "boolean"),
        ("tty", "boolean"),
    ),
    "PodPortForwardOptions": (("ports", "integer"),),
    "PodProxyOptions": (("path", "string"),),
    "NodeProxyOptions": (("path", "string"),),
    "ServiceProxyOptions": (("path", "string"),),
}
_PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

_LOG_PARAMETERS = (
    ("container", "string"),
    ("follow", "boolean"),
    ("insecureSkipTLSVerifyBackend", "boolean"),
    ("limitBytes", "integer"),
    ("previous", "boolean"),
    ("sinceSeconds", "integer"),
    ("tailLines", "integer"),
    ("timestamps", "boolean"),
)

# Query parameters: (name, type, description).  The descriptions are ours.
_QUERY_PARAMETERS: Mapping[str, tuple[str, str]] = {
    "allowWatchBookmarks": (
        "boolean",
        "Ask for BOOKMARK events in a watch; the server may send them.",
    ),
    "continue": ("string", "Continue a paged list from the token of the previous page."),
    "dryRun": ("string", "When present, validate without persisting. Valid value: All."),
    "fieldManager": ("string", "The name of the actor making the change."),
    "fieldSelector": ("string", "Restrict the objects by their fields."),
    "fieldValidation": (
        "string",
        "How to treat unknown and duplicate fields in the body: Ignore, Warn "
        "(the default) or Strict (reject the request).",
    ),
    "force": ("boolean", "Let an apply request take over fields owned by other managers."),
    "gracePeriodSeconds": ("integer", "Seconds to wait before deleting; zero deletes at once."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "boolean",
        "Delete an object that cannot be read from storage (unsafe).",
    ),
    "labelSelector": ("string", "Restrict the objects by their labels."),
    "limit": ("integer", "The most objects to return in one page."),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy."),
    "propagationPolicy": (
        "string",
        "How dependents are garbage collected: Orphan, Background or Foreground.",
    ),
    "resourceVersion": ("string", "Which resourceVersion the answer must be at least as new as."),
    "resourceVersionMatch": ("string", "How resourceVersion applies: Exact or NotOlderThan."),
    "sendInitialEvents": (
        "boolean",
        "Start a watch with ADDED events for the current objects, then a bookmark.",
    ),
    "timeoutSeconds": ("integer", "Seconds after which a list or watch call ends."),
    "watch": ("boolean", "Watch for changes instead of listing."),
}
_PRETTY = ("pretty", "string", "If 'true', the output is pretty printed.")

_LIST_OPTIONS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_CREATE_OPTIONS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_OPTIONS = ("dryRun", "fieldManager", "fieldValidation", "force")
_DELETE_OPTIONS_PARAMETERS = (
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
)


@dataclass(frozen=True)
class OpenAPIDocument:
    """
    One served document.

    @ivar path: where it is served below C{/openapi/v3/} (C{apis/apps/v1}),
        or C{""} for the v3 root and the v2 document.
    @ivar body: the JSON bytes.
    @ivar hash: the upper-case hex SHA-512 of C{body}, as the apiserver
        computes it for the C{hash} parameter and the ETag.
    """

    path: str
    body: bytes
    hash: str
    content_type: str = JSON

    @property
    def etag(self) -> str:
        """The C{ETag} header value: the hash, quoted."""
        return f'"{self.hash}"'

    @property
    def server_relative_url(self) -> str:
        """Where the v3 root points clients for this document."""
        return f"/openapi/v3/{self.path}?" + urlencode({"hash": self.hash})


@dataclass(frozen=True)
class OpenAPIV3:
    """
    Everything under C{/openapi/v3} for one set of resources.

    @ivar root: the discovery document of C{/openapi/v3}.
    @ivar documents: the per-path documents, by path below C{/openapi/v3/}.
    """

    root: OpenAPIDocument
    documents: Mapping[str, OpenAPIDocument]

    def document(self, path: str) -> Optional[OpenAPIDocument]:
        """
        The document served at C{/openapi/v3/<path>}, or L{None} (404).
        """
        return self.documents.get(path.strip("/"))


def _document(path: str, content: Any) -> OpenAPIDocument:
    # Compact and key-sorted, like Go's encoding of the apiserver's maps.
    body = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
    return OpenAPIDocument(path, body, hashlib.sha512(body).hexdigest().upper())


# ---------------------------------------------------------------------------
# Naming


def _valid_operation_id(text: str, capitalise_first: bool) -> str:
    """
    apiserver's ToValidOperationID: drop what is not a letter (or a digit
    after the first character), capitalising what follows it.
    """
    out = []
    capitalise = capitalise_first
    for position, character in enumerate(text):
        if character.isalpha() or character == "_" or (position and character.isdigit()):
            out.append(character.upper() if capitalise else character)
            capitalise = False
        else:
            capitalise = True
    return "".join(out)


def _group_version_prefix(group: str, version: str) -> tuple[str, str]:
    """
    The part of operation ids and the tag that name a group/version:
    C{("AppsV1", "apps_v1")}, C{("CoreV1", "core_v1")}.
    """
    trimmed = (group or "core").removesuffix(".k8s.io")
    return (
        _valid_operation_id(trimmed, True) + _valid_operation_id(version, True),
        _valid_operation_id(trimmed, False) + "_" + _valid_operation_id(version, False),
    )


def _title(word: str) -> str:
    return word[:1].upper() + word[1:].lower()


def _article(noun: str) -> str:
    # apiserver's GetArticleForNoun, with " " padding.
    if noun.endswith("s") and not noun.endswith("ss"):
        return " "
    return " an " if noun[:1].lower() in "aeiou" else " a "


def group_version_path(group: str, version: str) -> str:
    """
    Where a group/version's v3 document lives below C{/openapi/v3/}:
    C{api/v1}, C{apis/apps/v1}.
    """
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _api_prefix(group: str, version: str) -> str:
    return "/" + group_version_path(group, version)


# ---------------------------------------------------------------------------
# Routes: what the installer registers, independent of the OpenAPI version


_GroupVersionKind = tuple[str, str, str]
_SCALE = "io.k8s.api.autoscaling.v1.Scale"


@dataclass
class _Parameter:
    """
    One parameter of an operation.

    @ivar location: C{query} or C{path}.
    @ivar type: the OpenAPI type of its value.
    """

    name: str
    location: str
    type: str
    description: str
    required: bool = False


@dataclass
class _Route:
    """
    One operation as the apiserver registers it, before it is written as
    OpenAPI v3 or Swagger 2.0.

    @ivar action: C{x-kubernetes-action}; L{None} for discovery operations.
    @ivar kind: C{x-kubernetes-group-version-kind}, as (group, version, kind).
    @ivar responses: (status code, description, schema), where the schema
        is a definition name, C{"string"}, or L{None} for no body.
    @ivar produces: the response media types.
    @ivar consumes: the request media types.
    @ivar body: the definition of the request body, if there is one.
    """

    method: str
    path: str
    operation_id: str
    tag: str
    description: str
    responses: list[tuple[int, str, Optional[str]]]
    produces: tuple[str, ...]
    action: Optional[str] = None
    kind: Optional[_GroupVersionKind] = None
    parameters: list[_Parameter] = field(default_factory=list)
    consumes: tuple[str, ...] = ()
    body: Optional[str] = None
    body_required: bool = True
    unauthorized: bool = True


def _query(name: str) -> _Parameter:
    schema_type, description = _QUERY_PARAMETERS[name]
    return _Parameter(name, "query", schema_type, description)


def _pretty() -> _Parameter:
    name, schema_type, description = _PRETTY
    return _Parameter(name, "query", schema_type, description)


def _path_parameter(name: str, kind: str) -> _Parameter:
    description = {
        "name": f"name of the {kind}",
        "namespace": "object name and auth scope, such as for teams and projects",
        "path": "path to the resource",
    }[name]
    return _Parameter(name, "path", "string", description, required=True)


@dataclass(frozen=True)
class _Names:
    """What the routes of one resource need to know about its schemas."""

    kind: str
    list_kind: str
    definition: str
    list_definition: str


class _RouteBuilder:
    """
    The routes of one group/version's resources, following
    k8s.io/apiserver's installer (built-in resources) and apiextensions'
    OpenAPI builder (custom resources).
    """

    def __init__(self, group: str, version: str) -> None:
        self.group = group
        self.version = version
        self.prefix, self.tag = _group_version_prefix(group, version)
        self.routes: list[_Route] = []

    def _operation_id(self, verb: str, rest: str) -> str:
        return verb + self.prefix + _valid_operation_id(rest, True)

    def _route(self, method: str, path: str, verb: str, rest: str, **fields: Any) -> None:
        self.routes.append(
            _Route(
                method=method,
                path=path,
                operation_id=self._operation_id(verb, rest),
                tag=self.tag,
                **fields,
            )
        )

    def add_resource(self, resource: ResourceType, names: _Names, index: SchemaIndex) -> None:
        if _is_custom(resource, names, index):
            self._add_custom(resource, names)
        else:
            self._add_builtin(resource, names, index)

    def add_resource_list(self) -> None:
        """
        The group/version's discovery document, C{GET /apis/<g>/<v>/}.
        """
        self._route(
            "GET",
            _api_prefix(self.group, self.version) + "/",
            "get",
            "APIResources",
            description="get available resources",
            responses=[(200, "OK", _API_RESOURCE_LIST)],
            produces=_BUILTIN_MEDIA,
        )

    # -- operations shared by resources and subresources ---------------------

    def _read(self, path: str, rest: str, description: str, kind: _GroupVersionKind,
              definition: str, parameters: list[_Parameter], media: tuple[str, ...],
              consumes: tuple[str, ...] = ()) -> None:
        self._route(
            "GET", path, "read", rest,
            description=description,
            action="get",
            kind=kind,
            parameters=[_pretty(), *parameters],
            responses=[(200, "OK", definition)],
            produces=media,
            consumes=consumes,
        )

    def _create(self, path: str, rest: str, description: str, kind: _GroupVersionKind,
                definition: str, parameters: list[_Parameter], media: tuple[str, ...],
                consumes: tuple[str, ...]) -> None:
        self._route(
            "POST", path, "create", rest,
            description=description,
            action="post",
            kind=kind,
            parameters=[_pretty(), *parameters, *_queries(_CREATE_OPTIONS)],
            responses=[
                (200, "OK", definition),
                (201, "Created", definition),
                (202, "Accepted", definition),
            ],
            produces=media,
            consumes=consumes,
            body=definition,
        )

    def _replace(self, path: str, rest: str, description: str, kind: _GroupVersionKind,
                 definition: str, parameters: list[_Parameter], media: tuple[str, ...],
                 consumes: tuple[str, ...]) -> None:
        self._route(
            "PUT", path, "replace", rest,
            description=description,
            action="put",
            kind=kind,
            parameters=[_pretty(), *parameters, *_queries(_CREATE_OPTIONS)],
            responses=[(200, "OK", definition), (201, "Created", definition)],
            produces=media,
            consumes=consumes,
            body=definition,
        )

    def _patch(self, path: str, rest: str, description: str, kind: _GroupVersionKind,
               definition: str, parameters: list[_Parameter], media: tuple[str, ...],
               patch_types: Sequence[str]) -> None:
        self._route(
            "PATCH", path, "patch", rest,
            description=description,
            action="patch",
            kind=kind,
            parameters=[_pretty(), *parameters, *_queries(_PATCH_OPTIONS)],
            responses=[(200, "OK", definition), (201, "Created", definition)],
            produces=media,
            consumes=tuple(patch_types),
            body=_PATCH,
        )

    def _delete(self, path: str, rest: str, kind: _GroupVersionKind, returned: str,
                parameters: list[_Parameter], media: tuple[str, ...],
                consumes: tuple[str, ...]) -> None:
        self._route(
            "DELETE", path, "delete", rest,
            description=f"delete{_article(kind[2])}{kind[2]}",
            action="delete",
            kind=kind,
            parameters=[_pretty(), *parameters, *_queries(_DELETE_OPTIONS_PARAMETERS)],
            responses=[(200, "OK", returned), (202, "Accepted", returned)],
            produces=media,
            consumes=consumes,
            body=_DELETE_OPTIONS,
            body_required=False,
        )

    def _list(self, path: str, rest: str, description: str, kind: _GroupVersionKind,
              list_definition: str, parameters: list[_Parameter], media: tuple[str, ...],
              consumes: tuple[str, ...] = ()) -> None:
        self._route(
            "GET", path, "list", rest,
            description=description,
            action="list",
            kind=kind,
            parameters=[_pretty(), *parameters, *_queries(_LIST_OPTIONS)],
            responses=[(200, "OK", list_definition)],
            produces=media,
            consumes=consumes,
        )

    # -- built-in resources --------------------------------------------------

    def _add_builtin(self, resource: ResourceType, names: _Names, index: SchemaIndex) -> None:
        """
        What k8s.io/apiserver's installer registers, in its order.
        """
        verbs = set(resource.verbs)
        kind = names.kind
        gvk = (resource.group, resource.version, kind)
        base = _api_prefix(resource.group, resource.version)
        namespaced = "Namespaced" if resource.namespaced else ""
        scope = "/namespaces/{namespace}" if resource.namespaced else ""
        collection = f"{base}{scope}/{resource.resource}"
        item = collection + "/{name}"
        watch_collection = f"{base}/watch{scope}/{resource.resource}"
        scope_parameters = [_path_parameter("namespace", kind)] if resource.namespaced else []
        item_parameters = [_path_parameter("name", kind), *scope_parameters]
        media = _BUILTIN_MEDIA
        streams = _BUILTIN_MEDIA + _BUILTIN_STREAM_MEDIA
        watch_list_description = (
            f"watch individual changes to a list of {kind}. deprecated: use the "
            "'watch' parameter with a list operation instead."
        )
        list_description = (
            f"list or watch objects of kind {kind}"
            if "watch" in verbs
            else f"list objects of kind {kind}"
        )

        if "list" in verbs:
            self._list(collection, namespaced + kind, list_description, gvk,
                       names.list_definition, scope_parameters, streams)
        if "create" in verbs:
            self._create(collection, namespaced + kind, f"create{_article(kind)}{kind}", gvk,
                         names.definition, scope_parameters, media, ("*/*",))
        if "deletecollection" in verbs:
            self._route(
                "DELETE", collection, "delete", "collection" + namespaced + kind,
                description=f"delete collection of {kind}",
                action="deletecollection",
                kind=gvk,
                parameters=[
                    _pretty(),
                    *scope_parameters,
                    *_queries(_DELETE_OPTIONS_PARAMETERS),
                    # A collection delete lists what it deletes, but cannot
                    # watch.
                    *_queries(
                        name for name in _LIST_OPTIONS
                        if name not in ("watch", "allowWatchBookmarks")
                    ),
                ],
                responses=[(200, "OK", _STATUS)],
                produces=media,
                consumes=("*/*",),
                body=_DELETE_OPTIONS,
                body_required=False,
            )
        if "watch" in verbs:
            self._route(
                "GET", watch_collection, "watch", namespaced + kind + "List",
                description=watch_list_description,
                action="watchlist",
                kind=gvk,
                parameters=[_pretty(), *scope_parameters, *_queries(_LIST_OPTIONS)],
                responses=[(200, "OK", _WATCH_EVENT)],
                produces=streams,
            )
        if "get" in verbs:
            self._read(item, namespaced + kind, f"read the specified {kind}", gvk,
                       names.definition, item_parameters, media)
        if "update" in verbs:
            self._replace(item, namespaced + kind, f"replace the specified {kind}", gvk,
                          names.definition, item_parameters, media, ("*/*",))
        if "patch" in verbs:
            self._patch(item, namespaced + kind, f"partially update the specified {kind}", gvk,
                        names.definition, item_parameters, media, BUILTIN_PATCH_TYPES)
        if "delete" in verbs:
            returned = (
                names.definition
                if (resource.group, resource.resource) in DELETE_RETURNS_OBJECT
                else _STATUS
            )
            self._delete(item, namespaced + kind, gvk, returned, item_parameters, media,
                         ("*/*",))
        if "watch" in verbs:
            self._route(
                "GET", watch_collection + "/{name}", "watch", namespaced + kind,
                description=(
                    f"watch changes to an object of kind {kind}. deprecated: use the "
                    "'watch' parameter with a list operation instead, filtered to a "
                    "single item with the 'fieldSelector' parameter."
                ),
                action="watch",
                kind=gvk,
                parameters=[_pretty(), *item_parameters, *_queries(_LIST_OPTIONS)],
                responses=[(200, "OK", _WATCH_EVENT)],
                produces=streams,
            )
        for detail in getattr(resource, "subresource_details", ()) or ():
            self._add_builtin_subresource(resource, names, detail, item, item_parameters, index)
        if resource.namespaced and "list" in verbs:
            self._list(f"{base}/{resource.resource}", kind + "ForAllNamespaces",
                       list_description, gvk, names.list_definition, [], streams)
        if resource.namespaced and "watch" in verbs:
            self._route(
                "GET", f"{base}/watch/{resource.resource}", "watch",
                kind + "ListForAllNamespaces",
                description=watch_list_description,
                action="watchlist",
                kind=gvk,
                parameters=[_pretty(), *_queries(_LIST_OPTIONS)],
                responses=[(200, "OK", _WATCH_EVENT)],
                produces=streams,
            )

    def _add_builtin_subresource(self, resource: ResourceType, names: _Names, detail: Any,
                                 item: str, item_parameters: list[_Parameter],
                                 index: SchemaIndex) -> None:
        name = detail.name
        parent = names.kind
        namespaced = "Namespaced" if resource.namespaced else ""
        path = f"{item}/{name}"
        # The kind a subresource reads and writes: the parent's (status),
        # or its own, possibly from another group (scale, eviction).
        kind = detail.kind or parent
        group = resource.group if detail.group is None else detail.group
        version = resource.version if detail.version is None else detail.version
        gvk = (group, version, kind)
        verbs = set(detail.verbs)
        media = _BUILTIN_MEDIA
        # Operation ids name the parent's kind and the subresource.
        rest = namespaced + parent + _title(name)
        if kind in _CONNECT_PARAMETERS:
            self._add_connect(resource, detail, gvk, path, item_parameters)
            return
        if name == "log":
            self._route(
                "GET", path, "read", rest,
                description=f"read log of the specified {parent}",
                action="get",
                kind=gvk,
                parameters=[
                    _pretty(),
                    *item_parameters,
                    *[
                        _Parameter(option, "query", option_type, _LOG_DESCRIPTIONS[option])
                        for option, option_type in _LOG_PARAMETERS
                    ],
                ],
                responses=[(200, "OK", "string")],
                produces=("text/plain", *media),
            )
            return
        definition = index.name_for_kind(*gvk) or names.definition
        if "get" in verbs:
            self._read(path, rest, f"read {name} of the specified {parent}", gvk, definition,
                       item_parameters, media)
        if "create" in verbs:
            self._create(path, rest, f"create {name} of{_article(parent)}{parent}", gvk,
                         definition, item_parameters, media, ("*/*",))
        if "update" in verbs:
            self._replace(path, rest, f"replace {name} of the specified {parent}", gvk,
                          definition, item_parameters, media, ("*/*",))
        if "patch" in verbs:
            self._patch(path, rest, f"partially update {name} of the specified {parent}", gvk,
                        definition, item_parameters, media, BUILTIN_PATCH_TYPES)

    def _add_connect(self, resource: ResourceType, detail: Any, gvk: _GroupVersionKind,
                     path: str, item_parameters: list[_Parameter]) -> None:
        """
        Streams and proxies: one operation per HTTP method, answered with
        whatever the stream carries.
        """
        namespaced = "Namespaced" if resource.namespaced else ""
        parent = resource.kind
        verbs = set(detail.verbs)
        if "update" in verbs or "delete" in verbs:
            methods = _PROXY_METHODS
        else:
            methods = tuple(
                method for verb, method in (("get", "GET"), ("create", "POST")) if verb in verbs
            )
        options = [
            _Parameter(option, "query", option_type, _CONNECT_DESCRIPTIONS[option])
            for option, option_type in _CONNECT_PARAMETERS[gvk[2]]
        ]
        variants = [(path, "", item_parameters)]
        if detail.name == "proxy":
            # A second route carries the proxied path in the URL itself.
            variants.append(
                (path + "/{path}", "WithPath", [*item_parameters, _path_parameter("path", parent)])
            )
        for route_path, suffix, parameters in variants:
            for method in methods:
                self._route(
                    method, route_path, "connect",
                    _title(method) + namespaced + parent + _title(detail.name) + suffix,
                    description=f"connect {method} requests to {detail.name} of {parent}",
                    action="connect",
                    kind=gvk,
                    parameters=[*parameters, *options],
                    responses=[(200, "OK", "string")],
                    produces=("*/*",),
                    consumes=("*/*",),
                )

    # -- custom resources ----------------------------------------------------

    def _add_custom(self, resource: ResourceType, names: _Names) -> None:
        """
        What apiextensions' OpenAPI builder registers for a CRD version.
        """
        kind = names.kind
        gvk = (resource.group, resource.version, kind)
        base = _api_prefix(resource.group, resource.version)
        namespaced = "Namespaced" if resource.namespaced else ""
        scope = "/namespaces/{namespace}" if resource.namespaced else ""
        collection = f"{base}{scope}/{resource.resource}"
        item = collection + "/{name}"
        scope_parameters = [_path_parameter("namespace", kind)] if resource.namespaced else []
        item_parameters = [_path_parameter("name", kind), *scope_parameters]
        media = _CUSTOM_MEDIA
        list_description = f"list objects of kind {kind}"
        if resource.namespaced:
            self._list(f"{base}/{resource.resource}", kind + "ForAllNamespaces",
                       list_description, gvk, names.list_definition, [], media, media)
        self._list(collection, namespaced + kind, list_description, gvk,
                   names.list_definition, scope_parameters, media, media)
        self._create(collection, namespaced + kind, f"create{_article(kind)}{kind}", gvk,
                     names.definition, scope_parameters, media, media)
        self._route(
            "DELETE", collection, "delete", "collection" + namespaced + kind,
            description=f"delete collection of {kind}",
            action="deletecollection",
            kind=gvk,
            parameters=[_pretty(), *scope_parameters, *_queries(_LIST_OPTIONS)],
            responses=[(200, "OK", _STATUS)],
            produces=media,
            consumes=media,
        )
        self._read(item, namespaced + kind, f"read the specified {kind}", gvk,
                   names.definition, item_parameters, media, media)
        self._replace(item, namespaced + kind, f"replace the specified {kind}", gvk,
                      names.definition, item_parameters, media, media)
        self._delete(item, namespaced + kind, gvk, _STATUS, item_parameters, media, media)
        self._patch(item, namespaced + kind, f"partially update the specified {kind}", gvk,
                    names.definition, item_parameters, media, CUSTOM_PATCH_TYPES)
        present = {detail.name for detail in getattr(resource, "subresource_details", ())}
        for name in ("status", "scale"):
            if name not in present:
                continue
            # The builder gives scale the Scale schema but the custom kind.
            definition = names.definition if name == "status" else _SCALE
            path = f"{item}/{name}"
            rest = namespaced + kind + _title(name)
            self._read(path, rest, f"read {name} of the specified {kind}", gvk, definition,
                       item_parameters, media, media)
            self._replace(path, rest, f"replace {name} of the specified {kind}", gvk,
                          definition, item_parameters, media, media)
            self._patch(path, rest, f"partially update {name} of the specified {kind}", gvk,
                        definition, item_parameters, media, CUSTOM_PATCH_TYPES)


def _is_custom(resource: ResourceType, names: _Names, index: SchemaIndex) -> bool:
    return bool(getattr(resource, "custom", False)) or index.is_custom(names.definition)


def _queries(names: Iterable[str]) -> list[_Parameter]:
    return [_query(name) for name in names]


_LOG_DESCRIPTIONS = {
    "container": "The container to read logs of; the only one when there is one.",
    "follow": "Keep streaming the log.",
    "insecureSkipTLSVerifyBackend": "Do not verify the kubelet's serving certificate.",
    "limitBytes": "The most bytes to return.",
    "previous": "Read the log of the previous, terminated container.",
    "sinceSeconds": "Only lines newer than this many seconds.",
    "tailLines": "Only this many lines from the end.",
    "timestamps": "Prefix every line with its timestamp.",
}

_CONNECT_DESCRIPTIONS = {
    "command": "The command to run, one argument per parameter.",
    "container": "The container to connect to.",
    "path": "The path to pass to the proxied server.",
    "ports": "The ports to forward.",
    "stderr": "Redirect the standard error stream.",
    "stdin": "Redirect the standard input stream.",
    "stdout": "Redirect the standard output stream.",
    "tty": "Allocate a terminal.",
}


# ---------------------------------------------------------------------------
# Definitions of the resources


def _placeholder_name(group: str, version: str, kind: str) -> str:
    if group:
        return custom_definition_name(group, version, kind)
    return f"io.k8s.api.core.{version}.{kind}"


def _names_for(resource: ResourceType, index: SchemaIndex,
               extra: dict[str, dict[str, Any]]) -> _Names:
    """
    The definitions of a resource's kind and list kind; a placeholder (what
    the apiserver publishes for a CRD without schema) when the index has
    none, so that the resource still gets its operations.
    """
    group, version = resource.group, resource.version
    definition = index.name_for_kind(group, version, resource.kind)
    list_definition = index.name_for_kind(group, version, resource.list_kind)
    if definition is None:
        definition = _placeholder_name(group, version, resource.kind)
        extra[definition] = {
            "type": "object",
            GROUP_VERSION_KIND_EXTENSION: [
                {"group": group, "kind": resource.kind, "version": version}
            ],
        }
    if list_definition is None:
        list_definition = _placeholder_name(group, version, resource.list_kind)
        extra[list_definition] = {
            "description": f"{resource.list_kind} is a list of {resource.kind}",
            "properties": {
                "items": {"items": {"$ref": V2_REFERENCE_PREFIX + definition}, "type": "array"},
                "metadata": {
                    "$ref": V2_REFERENCE_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
                },
            },
            "required": ["items"],
            "type": "object",
            GROUP_VERSION_KIND_EXTENSION: [
                {"group": group, "kind": resource.list_kind, "version": version}
            ],
        }
    return _Names(resource.kind, resource.list_kind, definition, list_definition)


def _route_definitions(routes: Iterable[_Route]) -> set[str]:
    found = set()
    for route in routes:
        if route.body:
            found.add(route.body)
        for _, _, schema in route.responses:
            if schema and schema != "string":
                found.add(schema)
    return found


def _schemas(index: SchemaIndex, extra: Mapping[str, Mapping[str, Any]], roots: set[str],
             v3: bool) -> dict[str, Any]:
    """
    Every definition reachable from C{roots}, converted; C{extra} holds
    placeholders for kinds the index has no schema for.
    """
    names: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in names:
            continue
        if name in extra:
            names.add(name)
            pending.extend(_references_of(extra[name]))
        elif name in index:
            names.add(name)
            pending.extend(index.references(name))
    converted = {}
    for name in sorted(names):
        if name in extra:
            converted[name] = openapi_v3_form(extra[name]) if v3 else extra[name]
        elif v3:
            converted[name] = index.openapi_v3_schema(name)
        else:
            converted[name] = index.swagger_v2_schema(name)
    return converted


def _references_of(schema: Any) -> Iterable[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _references_of(value)
    elif isinstance(schema, list):
        for each in schema:
            yield from _references_of(each)


# ---------------------------------------------------------------------------
# OpenAPI v3


def _v3_reference(name: str) -> dict[str, Any]:
    if name == "string":
        return {"type": "string"}
    return {"$ref": V3_REFERENCE_PREFIX + name}


def _v3_parameter(parameter: _Parameter) -> dict[str, Any]:
    result: dict[str, Any] = {
        "description": parameter.description,
        "in": parameter.location,
        "name": parameter.name,
        "schema": {"type": parameter.type, "uniqueItems": True},
    }
    if parameter.required:
        result["required"] = True
    return result


def _v3_operation(route: _Route, common: set[tuple[str, str]]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "description": route.description,
        "operationId": route.operation_id,
        "responses": {},
        "tags": [route.tag],
    }
    parameters = [
        _v3_parameter(parameter)
        for parameter in sorted(route.parameters, key=lambda each: (each.name, each.location))
        if (parameter.name, parameter.location) not in common
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        body: dict[str, Any] = {
            "content": {
                media: {"schema": _v3_reference(route.body)} for media in route.consumes
            }
        }
        if route.body_required:
            body["required"] = True
        operation["requestBody"] = body
    for code, description, schema in route.responses:
        response: dict[str, Any] = {"description": description}
        if schema is not None:
            response["content"] = {
                media: {"schema": _v3_reference(schema)} for media in route.produces
            }
        operation["responses"][str(code)] = response
    if route.unauthorized:
        operation["responses"]["401"] = {"description": "Unauthorized"}
    if route.action is not None:
        operation["x-kubernetes-action"] = route.action
    if route.kind is not None:
        group, version, kind = route.kind
        operation["x-kubernetes-group-version-kind"] = {
            "group": group,
            "kind": kind,
            "version": version,
        }
    return operation


def _common_parameters(routes: Sequence[_Route]) -> list[_Parameter]:
    """
    The parameters every operation of a path has: kube-openapi moves them
    to the path.
    """
    counted: dict[tuple[str, str], tuple[int, _Parameter]] = {}
    for route in routes:
        for parameter in route.parameters:
            key = (parameter.name, parameter.location)
            count, _ = counted.get(key, (0, parameter))
            counted[key] = (count + 1, parameter)
    return [parameter for count, parameter in counted.values() if count == len(routes)]


def _paths(
    routes: Sequence[_Route],
    render_parameter: Callable[[_Parameter], dict[str, Any]],
    render_operation: Callable[[_Route, set[tuple[str, str]]], dict[str, Any]],
) -> dict[str, Any]:
    """
    The C{paths} object: parameters every method of a path shares are
    hoisted to the path, as kube-apiserver's builder does; v2 and v3 only
    differ in how a parameter and an operation are written.
    """
    grouped: dict[str, list[_Route]] = {}
    for route in routes:
        grouped.setdefault(route.path, []).append(route)
    paths = {}
    for path, path_routes in grouped.items():
        common = _common_parameters(path_routes)
        keys = {(parameter.name, parameter.location) for parameter in common}
        item: dict[str, Any] = {}
        if common:
            item["parameters"] = [
                render_parameter(parameter)
                for parameter in sorted(common, key=lambda each: (each.name, each.location))
            ]
        for route in path_routes:
            item[route.method.lower()] = render_operation(route, keys)
        paths[path] = item
    return paths


def _v3_document(path: str, routes: Sequence[_Route], schemas: Mapping[str, Any],
                 title: str = "Kubernetes", version: str = "unversioned") -> OpenAPIDocument:
    components: dict[str, Any] = {"securitySchemes": _SECURITY_SCHEMES}
    if schemas:
        components["schemas"] = schemas
    return _document(
        path,
        {
            "components": components,
            "info": {"title": title, "version": version},
            "openapi": "3.0.0",
            "paths": _paths(routes, _v3_parameter, _v3_operation),
        },
    )


def _group_version_routes(
    group: str,
    version: str,
    resources: Sequence[ResourceType],
    index: SchemaIndex,
) -> tuple[list[_Route], dict[str, dict[str, Any]], bool]:
    extra: dict[str, dict[str, Any]] = {}
    builder = _RouteBuilder(group, version)
    named = [
        (resource, _names_for(resource, index, extra))
        for resource in sorted(resources, key=lambda each: each.resource)
    ]
    all_custom = all(_is_custom(resource, names, index) for resource, names in named)
    if not all_custom:
        builder.add_resource_list()
    for resource, names in named:
        builder.add_resource(resource, names, index)
    return builder.routes, extra, all_custom


# Built documents, by what they are built from.  Bounded: a process serves
# few distinct resource sets, but CRD churn must not make it grow forever.
_CACHE_SIZE = 256
_cache: "OrderedDict[Any, Any]" = OrderedDict()


def _cached(key: Any, build: Any) -> Any:
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    value = build()
    _cache[key] = value
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return value


def _custom_digest(index: SchemaIndex, resources: Sequence[ResourceType]) -> str:
    """
    What, beyond the resources themselves, a document depends on: the
    schemas that CRDs contributed.
    """
    relevant = {}
    for resource in resources:
        for kind in (resource.kind, resource.list_kind):
            name = index.name_for_kind(resource.group, resource.version, kind)
            if name is not None and index.is_custom(name):
                relevant[name] = index.schema(name)
    if not relevant:
        return ""
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _group_version_document(group: str, version: str, resources: Sequence[ResourceType],
                            index: SchemaIndex) -> OpenAPIDocument:
    key = ("v3", index.minor, group, version, tuple(resources), _custom_digest(index, resources))

    def build() -> OpenAPIDocument:
        routes, extra, custom = _group_version_routes(group, version, resources, index)
        schemas = _schemas(index, extra, _route_definitions(routes), v3=True)
        if custom:
            return _v3_document(group_version_path(group, version), routes, schemas,
                                "Kubernetes CRD Swagger", "v0.1.0")
        return _v3_document(group_version_path(group, version), routes, schemas)

    return _cached(key, build)


def _discovery_documents(groups: Sequence[str], index: SchemaIndex) -> list[OpenAPIDocument]:
    """
    The small documents describing the discovery endpoints themselves.
    """
    key = ("v3-discovery", index.minor, tuple(groups))

    def build() -> list[OpenAPIDocument]:
        documents = []
        media = _BUILTIN_MEDIA

        def single(path: str, route_path: str, operation_id: str, tag: str, description: str,
                   definition: str, produces: tuple[str, ...] = media,
                   unauthorized: bool = True) -> None:
            if definition not in index:
                return
            route = _Route(
                method="GET",
                path=route_path,
                operation_id=operation_id,
                tag=tag,
                description=description,
                responses=[(200, "OK", definition)],
                produces=produces,
                unauthorized=unauthorized,
            )
            documents.append(
                _v3_document(path, [route], _schemas(index, {}, {definition}, v3=True))
            )

        single("api", "/api/", "getCoreAPIVersions", "core", "get available API versions",
               _API_VERSIONS)
        single("apis", "/apis/", "getAPIVersions", "apis", "get available API versions",
               _API_GROUP_LIST)
        for group in groups:
            prefix, _ = _group_version_prefix(group, "")
            tag = _valid_operation_id(group.removesuffix(".k8s.io"), False)
            single(f"apis/{group}", f"/apis/{group}/", f"get{prefix}APIGroup", tag,
                   "get information of a group", _API_GROUP, unauthorized=False)
        single("version", "/version/", "getCodeVersion", "version",
               "get the version of this server", _VERSION_INFO, (JSON,))
        return documents

    return _cached(key, build)


def _by_group_version(
    resources: Iterable[ResourceType],
) -> dict[tuple[str, str], list[ResourceType]]:
    grouped: dict[tuple[str, str], list[ResourceType]] = {}
    for resource in resources:
        grouped.setdefault((resource.group, resource.version), []).append(resource)
    return grouped


def openapi_v3(resources: Iterable[ResourceType], index: SchemaIndex) -> OpenAPIV3:
    """
    The C{/openapi/v3} documents for C{resources}.

    @param resources: every served resource, built-in and custom.
    @param index: the schemas, L{SchemaIndex.extended} with the CRDs'
        definitions (L{scaleagent.kube.schema.crd_schemas}) if there are
        custom resources.
    @return: the root and one document per group/version (plus the
        discovery endpoints' documents), built or taken from the cache.
    """
    resources = tuple(resources)
    key = ("v3-all", index.minor, resources, _custom_digest(index, resources))

    def build() -> OpenAPIV3:
        grouped = _by_group_version(resources)
        documents = [
            _group_version_document(group, version, tuple(members), index)
            for (group, version), members in sorted(grouped.items())
        ]
        groups = sorted({group for group, _ in grouped if group})
        documents += _discovery_documents(groups, index)
        by_path = {document.path: document for document in documents}
        root = _document(
            "",
            {
                "paths": {
                    path: {"serverRelativeURL": document.server_relative_url}
                    for path, document in sorted(by_path.items())
                }
            },
        )
        return OpenAPIV3(root, by_path)

    return _cached(key, build)


# ---------------------------------------------------------------------------
# Swagger 2.0


def _v2_parameter(parameter: _Parameter) -> dict[str, Any]:
    result: dict[str, Any] = {
        "description": parameter.description,
        "in": parameter.location,
        "name": parameter.name,
        "type": parameter.type,
        "uniqueItems": True,
    }
    if parameter.required:
        result["required"] = True
    return result


def _v2_schema(name: str) -> dict[str, Any]:
    if name == "string":
        return {"type": "string"}
    return {"$ref": V2_REFERENCE_PREFIX + name}


def _v2_operation(route: _Route, common: set[tuple[str, str]]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "description": route.description,
        "operationId": route.operation_id,
        "produces": list(route.produces),
        "responses": {},
        "schemes": ["https"],
        "tags": [route.tag],
    }
    if route.consumes:
        operation["consumes"] = list(route.consumes)
    parameters = [
        _v2_parameter(parameter)
        for parameter in sorted(route.parameters, key=lambda each: (each.name, each.location))
        if (parameter.name, parameter.location) not in common
    ]
    if route.body is not None:
        body = {"in": "body", "name": "body", "schema": _v2_schema(route.body)}
        if route.body_required:
            body["required"] = True
        parameters.insert(0, body)
    if parameters:
        operation["parameters"] = parameters
    for code, description, schema in route.responses:
        response: dict[str, Any] = {"description": description}
        if schema is not None:
            response["schema"] = _v2_schema(schema)
        operation["responses"][str(code)] = response
    if route.unauthorized:
        operation["responses"]["401"] = {"description": "Unauthorized"}
    if route.action is not None:
        operation["x-kubernetes-action"] = route.action
    if route.kind is not None:
        group, version, kind = route.kind
        operation["x-kubernetes-group-version-kind"] = {
            "group": group,
            "kind": kind,
            "version": version,
        }
    return operation


def _v2_custom_root(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    # A CRD whose schema keeps unknown fields is published in v2 as a bare
    # object: kubectl's v2 validation would otherwise reject those fields.
    if schema.get(PRESERVE_UNKNOWN_FIELDS_EXTENSION):
        return {
            "type": "object",
            GROUP_VERSION_KIND_EXTENSION: schema[GROUP_VERSION_KIND_EXTENSION],
        }
    return schema


def openapi_v2(resources: Iterable[ResourceType], index: SchemaIndex,
               kubernetes_version: str = "") -> OpenAPIDocument:
    """
    The C{/openapi/v2} document for C{resources}, as JSON.

    The apiserver also serves it as protobuf, which is what kubectl and
    client-go's discovery ask for; scaleagent does not, and the HTTP layer
    answers such requests 406.

    @param resources: every served resource, built-in and custom.
    @param index: the schemas, extended with the CRDs' definitions.
    @param kubernetes_version: the server's git version (C{v1.35.6}), which
        the document's C{info.version} carries.
    """
    resources = tuple(resources)
    key = ("v2", index.minor, kubernetes_version, resources, _custom_digest(index, resources))

    def build() -> OpenAPIDocument:
        routes: list[_Route] = []
        extra: dict[str, dict[str, Any]] = {}
        for (group, version), members in sorted(_by_group_version(resources).items()):
            group_routes, group_extra, _ = _group_version_routes(group, version, members, index)
            routes += group_routes
            extra.update(group_extra)
        definitions = _schemas(index, extra, _route_definitions(routes), v3=False)
        for name in list(definitions):
            if index.is_custom(name):
                definitions[name] = _v2_custom_root(definitions[name])
        paths = _paths(routes, _v2_parameter, _v2_operation)
        return _document(
            "",
            {
                "definitions": definitions,
                "info": {"title": "Kubernetes", "version": kubernetes_version or "unversioned"},
                "paths": paths,
                "security": [{"BearerToken": []}],
                "securityDefinitions": _SECURITY_SCHEMES,
                "swagger": "2.0",
            },
        )

    return _cached(key, build)
