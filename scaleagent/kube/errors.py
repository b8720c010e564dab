# -*- test-case-name: tests.test_kube_store -*-
"""
Kubernetes API errors as values: L{APIError} carries what a
C{metav1.Status} failure carries, and the C{new_*} constructors build the
same codes, reasons, details and message texts as apimachinery's
C{k8s.io/apimachinery/pkg/api/errors} (and the few apiserver helpers that
build their own), so clients that match on reasons or messages cannot tell
them from a real kube-apiserver's.

Field-level validation problems are L{FieldError}s; they format exactly like
apimachinery's C{field.Error}, including Go's C{%q} quoting of bad values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

__all__ = [
    "APIError",
    "CauseType",
    "FieldError",
    "StatusCause",
    "StatusDetails",
    "StatusReason",
    "aggregate_message",
    "go_quote",
    "new_already_exists",
    "new_bad_request",
    "new_conflict",
    "new_forbidden",
    "new_generate_name_conflict",
    "new_gone",
    "new_internal_error",
    "new_invalid",
    "new_method_not_supported",
    "new_not_acceptable",
    "new_not_found",
    "new_request_entity_too_large",
    "new_resource_expired",
    "new_server_timeout",
    "new_service_unavailable",
    "new_timeout_error",
    "new_too_large_resource_version",
    "new_too_many_requests",
    "new_too_many_requests_error",
    "new_unauthorized",
    "new_unknown",
    "new_unsupported_media_type",
    "qualified_kind",
    "qualified_resource",
    "success_status",
]


class StatusReason:
    """
    The C{metav1.StatusReason} values (C{reason} of a Status).

    The empty string is C{StatusReasonUnknown}; it is left out of the JSON.
    """

    UNKNOWN = ""
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    NOT_FOUND = "NotFound"
    ALREADY_EXISTS = "AlreadyExists"
    CONFLICT = "Conflict"
    GONE = "Gone"
    INVALID = "Invalid"
    SERVER_TIMEOUT = "ServerTimeout"
    STORE_READ_ERROR = "StorageReadError"
    TIMEOUT = "Timeout"
    TOO_MANY_REQUESTS = "TooManyRequests"
    BAD_REQUEST = "BadRequest"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    NOT_ACCEPTABLE = "NotAcceptable"
    REQUEST_ENTITY_TOO_LARGE = "RequestEntityTooLarge"
    UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
    INTERNAL_ERROR = "InternalError"
    EXPIRED = "Expired"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"


class CauseType:
    """
    The C{metav1.CauseType} values: the C{reason} of a StatusCause, which for
    validation errors is the C{field.ErrorType}.
    """

    FIELD_VALUE_NOT_FOUND = "FieldValueNotFound"
    FIELD_VALUE_REQUIRED = "FieldValueRequired"
    FIELD_VALUE_DUPLICATE = "FieldValueDuplicate"
    FIELD_VALUE_INVALID = "FieldValueInvalid"
    FIELD_VALUE_NOT_SUPPORTED = "FieldValueNotSupported"
    FIELD_VALUE_FORBIDDEN = "FieldValueForbidden"
    FIELD_VALUE_TOO_LONG = "FieldValueTooLong"
    FIELD_VALUE_TOO_MANY = "FieldValueTooMany"
    FIELD_VALUE_TYPE_INVALID = "FieldValueTypeInvalid"
    INTERNAL_ERROR = "InternalError"
    UNEXPECTED_SERVER_RESPONSE = "UnexpectedServerResponse"
    FIELD_MANAGER_CONFLICT = "FieldManagerConflict"
    RESOURCE_VERSION_TOO_LARGE = "ResourceVersionTooLarge"
    NAMESPACE_TERMINATING = "NamespaceTerminating"


# How field.ErrorType.String() names each type in messages.
_ERROR_TYPE_TEXT = {
    CauseType.FIELD_VALUE_NOT_FOUND: "Not found",
    CauseType.FIELD_VALUE_REQUIRED: "Required value",
    CauseType.FIELD_VALUE_DUPLICATE: "Duplicate value",
    CauseType.FIELD_VALUE_INVALID: "Invalid value",
    CauseType.FIELD_VALUE_NOT_SUPPORTED: "Unsupported value",
    CauseType.FIELD_VALUE_FORBIDDEN: "Forbidden",
    CauseType.FIELD_VALUE_TOO_LONG: "Too long",
    CauseType.FIELD_VALUE_TOO_MANY: "Too many",
    CauseType.INTERNAL_ERROR: "Internal error",
    CauseType.FIELD_VALUE_TYPE_INVALID: "Invalid value",
}

# Types whose message never shows the bad value (field.Error.ErrorBody).
_VALUELESS_TYPES = frozenset(
    {
        CauseType.FIELD_VALUE_REQUIRED,
        CauseType.FIELD_VALUE_FORBIDDEN,
        CauseType.FIELD_VALUE_TOO_LONG,
        CauseType.INTERNAL_ERROR,
    }
)

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """
    Quote C{text} the way Go's C{strconv.Quote} (and C{%q}) does.

    Printable characters are kept, including non-ASCII ones; everything else
    becomes a Go escape sequence.
    """
    out = ['"']
    for character in text:
        escaped = _GO_ESCAPES.get(character)
        if escaped is not None:
            out.append(escaped)
        elif character.isprintable():
            out.append(character)
        else:
            point = ord(character)
            if point < 0x80:
                out.append(f"\\x{point:02x}")
            elif point < 0x10000:
                out.append(f"\\u{point:04x}")
            else:
                out.append(f"\\U{point:08x}")
    out.append('"')
    return "".join(out)


def _go_value(value: object) -> str:
    """
    Render a bad value as field.Error.ErrorBody does: strings quoted, simple
    scalars printed, anything else as JSON.
    """
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    # Go's encoding/json escapes these three for HTML safety.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass(frozen=True)
class FieldError:
    """
    One validation problem with one field, as apimachinery's C{field.Error}.

    @ivar type: a L{CauseType} C{FIELD_*} value.
    @ivar field: the field path, e.g. C{metadata.name}.
    @ivar bad_value: the offending value (shown only for some types).
    @ivar detail: the explanation.
    """

    type: str
    field: str
    bad_value: object = ""
    detail: str = ""

    def error_body(self) -> str:
        """
        The message without the field name, as C{ErrorBody()}: this is what a
        Status cause carries.
        """
        text = _ERROR_TYPE_TEXT.get(self.type, f"<unknown error {go_quote(self.type)}>")
        if self.type not in _VALUELESS_TYPES:
            text = f"{text}: {_go_value(self.bad_value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.error_body()}"

    @classmethod
    def invalid(cls, field: str, value: object, detail: str) -> FieldError:
        return cls(CauseType.FIELD_VALUE_INVALID, field, value, detail)

    @classmethod
    def required(cls, field: str, detail: str = "") -> FieldError:
        return cls(CauseType.FIELD_VALUE_REQUIRED, field, "", detail)

    @classmethod
    def forbidden(cls, field: str, detail: str) -> FieldError:
        return cls(CauseType.FIELD_VALUE_FORBIDDEN, field, "", detail)

    @classmethod
    def not_supported(
        cls, field: str, value: object, valid_values: Sequence[str]
    ) -> FieldError:
        detail = ""
        if valid_values:
            detail = "supported values: " + ", ".join(
                go_quote(str(valid)) for valid in valid_values
            )
        return cls(CauseType.FIELD_VALUE_NOT_SUPPORTED, field, value, detail)

    @classmethod
    def too_long(cls, field: str, max_length: int) -> FieldError:
        unit = "byte" if max_length == 1 else "bytes"
        return cls(
            CauseType.FIELD_VALUE_TOO_LONG,
            field,
            "<value omitted>",
            f"may not be more than {max_length} {unit}",
        )


def aggregate_message(messages: Iterable[object]) -> str:
    """
    Join error messages as apimachinery's C{utilerrors.Aggregate} does:
    duplicates dropped, one message alone, several in C{[a, b]}.
    """
    unique: list[str] = []
    for message in messages:
        text = str(message)
        if text not in unique:
            unique.append(text)
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


def qualified_resource(group: str, resource: str) -> str:
    """C{schema.GroupResource.String()}: C{deployments.apps}, C{namespaces}."""
    return f"{resource}.{group}" if group else resource


def qualified_kind(group: str, kind: str) -> str:
    """C{schema.GroupKind.String()}: C{Deployment.apps}, C{Namespace}."""
    return f"{kind}.{group}" if group else kind


@dataclass(frozen=True)
class StatusCause:
    """One C{metav1.StatusCause}; C{reason} is its JSON C{reason} (the type)."""

    reason: str = ""
    message: str = ""
    field: str = ""

    def to_dict(self) -> dict:
        out = {}
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        if self.field:
            out["field"] = self.field
        return out


@dataclass(frozen=True)
class StatusDetails:
    """
    C{metav1.StatusDetails}. Note that C{kind} holds the I{resource} for most
    errors, exactly as apimachinery fills it.
    """

    name: str = ""
    group: str = ""
    kind: str = ""
    uid: str = ""
    causes: tuple[StatusCause, ...] = ()
    retry_after_seconds: int = 0

    def to_dict(self) -> dict:
        # Key order and omission follow the Go struct's JSON encoding.
        out: dict = {}
        if self.name:
            out["name"] = self.name
        if self.group:
            out["group"] = self.group
        if self.kind:
            out["kind"] = self.kind
        if self.uid:
            out["uid"] = self.uid
        if self.causes:
            out["causes"] = [cause.to_dict() for cause in self.causes]
        if self.retry_after_seconds:
            out["retryAfterSeconds"] = self.retry_after_seconds
        return out


class APIError(Exception):
    """
    A failed API request, serialisable as the C{metav1.Status} a
    kube-apiserver would answer with.

    @ivar code: the HTTP status code.
    @ivar reason: a L{StatusReason} value (C{""} when unknown).
    @ivar message: the human-readable message.
    @ivar details: L{StatusDetails}, or L{None} when the Status has none
        (which is different from empty details: those serialise as C{{}}).
    @ivar continue_token: the C{metadata.continue} of the Status, set only by
        the 410 answer to an expired continue token.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Optional[StatusDetails] = None,
        continue_token: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.continue_token = continue_token

    def __repr__(self) -> str:
        return f"APIError({self.code}, {self.reason!r}, {self.message!r})"

    def to_status(self) -> dict:
        """
        The exact C{metav1.Status} JSON object, key order included.
        """
        status: dict = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {"continue": self.continue_token} if self.continue_token else {},
            "status": "Failure",
        }
        if self.message:
            status["message"] = self.message
        if self.reason:
            status["reason"] = self.reason
        if self.details is not None:
            status["details"] = self.details.to_dict()
        status["code"] = self.code
        return status


def success_status(name: str, group: str, resource: str, uid: str) -> dict:
    """
    The C{Status} a delete answers with when the object is gone and its
    resource does not return the deleted object (C{finalizeDelete}): no code,
    and C{details.kind} holds the resource.
    """
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": StatusDetails(name=name, group=group, kind=resource, uid=uid).to_dict(),
    }


def new_not_found(group_resource: tuple[str, str], name: str) -> APIError:
    group, resource = group_resource
    return APIError(
        404,
        StatusReason.NOT_FOUND,
        f"{qualified_resource(group, resource)} {go_quote(name)} not found",
        StatusDetails(name=name, group=group, kind=resource),
    )


def new_already_exists(group_resource: tuple[str, str], name: str) -> APIError:
    group, resource = group_resource
    return APIError(
        409,
        StatusReason.ALREADY_EXISTS,
        f"{qualified_resource(group, resource)} {go_quote(name)} already exists",
        StatusDetails(name=name, group=group, kind=resource),
    )


def new_generate_name_conflict(
    group_resource: tuple[str, str], name: str, retry_after_seconds: int
) -> APIError:
    group, resource = group_resource
    return APIError(
        409,
        StatusReason.ALREADY_EXISTS,
        f"{qualified_resource(group, resource)} {go_quote(name)} already exists, "
        "the server was not able to generate a unique name for the object",
        StatusDetails(
            name=name, group=group, kind=resource, retry_after_seconds=retry_after_seconds
        ),
    )


def new_unauthorized(reason: str = "") -> APIError:
    return APIError(401, StatusReason.UNAUTHORIZED, reason or "not authorized")


def new_forbidden(
    group_resource: tuple[str, str],
    name: str,
    error: str,
    causes: Sequence[StatusCause] = (),
) -> APIError:
    """
    C{NewForbidden(qualifiedResource, name, err)}; C{causes} are what some
    callers (namespace lifecycle admission) append afterwards.
    """
    group, resource = group_resource
    if not group and not resource:
        message = f"forbidden: {error}"
    elif not name:
        message = f"{qualified_resource(group, resource)} is forbidden: {error}"
    else:
        message = f"{qualified_resource(group, resource)} {go_quote(name)} is forbidden: {error}"
    return APIError(
        403,
        StatusReason.FORBIDDEN,
        message,
        StatusDetails(name=name, group=group, kind=resource, causes=tuple(causes)),
    )


def new_conflict(group_resource: tuple[str, str], name: str, error: str) -> APIError:
    group, resource = group_resource
    return APIError(
        409,
        StatusReason.CONFLICT,
        f"Operation cannot be fulfilled on {qualified_resource(group, resource)} "
        f"{go_quote(name)}: {error}",
        StatusDetails(name=name, group=group, kind=resource),
    )


def new_gone(message: str) -> APIError:
    """The deprecated C{NewGone}; new code answers with L{new_resource_expired}."""
    return APIError(410, StatusReason.GONE, message)


def new_resource_expired(message: str, continue_token: str = "") -> APIError:
    return APIError(410, StatusReason.EXPIRED, message, continue_token=continue_token)


def new_invalid(
    group_kind: tuple[str, str], name: str, errors: Sequence[FieldError]
) -> APIError:
    """
    C{NewInvalid(qualifiedKind, name, errs)}: 422 with one cause per field
    error and the aggregated errors in the message.
    """
    group, kind = group_kind
    causes = tuple(
        StatusCause(reason=error.type, message=error.error_body(), field=error.field)
        for error in errors
    )
    message = f"{qualified_kind(group, kind)} {go_quote(name)} is invalid"
    if errors:
        message = f"{message}: {aggregate_message(errors)}"
    return APIError(
        422,
        StatusReason.INVALID,
        message,
        StatusDetails(name=name, group=group, kind=kind, causes=causes),
    )


def new_bad_request(reason: str) -> APIError:
    return APIError(400, StatusReason.BAD_REQUEST, reason)


def new_too_many_requests(message: str, retry_after_seconds: int) -> APIError:
    return APIError(
        429,
        StatusReason.TOO_MANY_REQUESTS,
        message,
        StatusDetails(retry_after_seconds=retry_after_seconds),
    )


def new_too_many_requests_error(message: str) -> APIError:
    return APIError(429, StatusReason.TOO_MANY_REQUESTS, f"Too many requests: {message}")


def new_service_unavailable(reason: str) -> APIError:
    return APIError(503, StatusReason.SERVICE_UNAVAILABLE, reason)


def new_method_not_supported(group_resource: tuple[str, str], action: str) -> APIError:
    group, resource = group_resource
    return APIError(
        405,
        StatusReason.METHOD_NOT_ALLOWED,
        f"{action} is not supported on resources of kind "
        f"{go_quote(qualified_resource(group, resource))}",
        StatusDetails(group=group, kind=resource),
    )


def new_server_timeout(
    group_resource: tuple[str, str], operation: str, retry_after_seconds: int
) -> APIError:
    group, resource = group_resource
    return APIError(
        500,
        StatusReason.SERVER_TIMEOUT,
        f"The {operation} operation against {qualified_resource(group, resource)} "
        "could not be completed at this time, please try again.",
        StatusDetails(
            name=operation,
            group=group,
            kind=resource,
            retry_after_seconds=retry_after_seconds,
        ),
    )


def new_internal_error(error: str) -> APIError:
    return APIError(
        500,
        StatusReason.INTERNAL_ERROR,
        f"Internal error occurred: {error}",
        StatusDetails(causes=(StatusCause(message=error),)),
    )


def new_timeout_error(
    message: str,
    retry_after_seconds: int,
    causes: Sequence[StatusCause] = (),
) -> APIError:
    return APIError(
        504,
        StatusReason.TIMEOUT,
        f"Timeout: {message}",
        StatusDetails(causes=tuple(causes), retry_after_seconds=retry_after_seconds),
    )


def new_too_large_resource_version(
    minimum_resource_version: int, current_resource_version: int, retry_after_seconds: int
) -> APIError:
    """
    apiserver's C{storage.NewTooLargeResourceVersionError}: a 504 Timeout that
    client-go recognises by its C{ResourceVersionTooLarge} cause.
    """
    return new_timeout_error(
        f"Too large resource version: {minimum_resource_version}, "
        f"current: {current_resource_version}",
        retry_after_seconds,
        (
            StatusCause(
                reason=CauseType.RESOURCE_VERSION_TOO_LARGE,
                message="Too large resource version",
            ),
        ),
    )


def new_request_entity_too_large(message: str) -> APIError:
    return APIError(
        413,
        StatusReason.REQUEST_ENTITY_TOO_LARGE,
        f"Request entity too large: {message}",
    )


def new_not_acceptable(accepted: Sequence[str]) -> APIError:
    """apiserver's C{negotiation.NewNotAcceptableError}."""
    return APIError(
        406,
        StatusReason.NOT_ACCEPTABLE,
        "only the following media types are accepted: " + ", ".join(accepted),
    )


def new_unsupported_media_type(accepted: Sequence[str]) -> APIError:
    """apiserver's C{negotiation.NewUnsupportedMediaTypeError}."""
    return APIError(
        415,
        StatusReason.UNSUPPORTED_MEDIA_TYPE,
        "the body of the request was in an unknown format - accepted media types "
        "include: " + ", ".join(accepted),
    )


def new_unknown(code: int, message: str) -> APIError:
    """
    What C{ErrorToAPIStatus} makes of an error that is not a Status: the
    code, the message, and no reason. Real servers answer some malformed
    requests this way (e.g. an unparsable C{resourceVersion} on a list).
    """
    return APIError(code, StatusReason.UNKNOWN, message)

