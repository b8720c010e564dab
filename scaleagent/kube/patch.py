# -*- test-case-name: tests.test_kube_patch -*-
"""
The patch formats of a Kubernetes PATCH, as pure functions on parsed JSON:
JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge
patch, each with the results and the errors a kube-apiserver gives.

The apiserver does not implement the RFCs itself; it uses
C{gopkg.in/evanphx/json-patch.v4} and apimachinery's C{strategicpatch}, and
clients (kubectl above all) depend on their exact behaviour, quirks
included.  The functions here follow those libraries rather than the RFC
text where the two differ, and say so where it matters:

  - merge patch drops C{null}s inside objects nested in new arrays;
  - JSON patch C{replace} of a missing object member adds it, negative
    array indices count from the end, an operation without C{value} uses
    C{null}, and every failure is the same 422 C{Invalid} whose message
    says nothing of the cause (the apiserver discards it);
  - strategic merge patch is a port of C{strategicpatch.mergeMap} and its
    helpers with the options the apiserver uses (C{MergeParallelList} and
    C{IgnoreUnmatchedNulls}), Go's stable sort included, since list order
    depends on it.

Every function copies its inputs; nothing given to it is modified.

What the caller does around them, as the apiserver's patch handler does:
refuse a content type with L{check_patch_type} (custom resources take no
strategic merge patch: 415); apply; then decode the result as the kind,
which for C{fieldValidation=Strict} means rejecting what
L{scaleagent.kube.schema.unknown_fields} reports (422 C{Invalid}, field
C{patch}, with L{scaleagent.kube.schema.strict_decoding_message}) and
otherwise dropping it (L{scaleagent.kube.schema.prune_unknown_fields}).
Server-side apply (C{application/apply-patch+yaml}) is accepted by the
apiserver but not implemented here.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Optional

from scaleagent.kube.errors import (
    APIError,
    StatusDetails,
    StatusReason,
    new_bad_request,
    new_request_entity_too_large,
    new_unknown,
    new_unsupported_media_type,
)
from scaleagent.kube.schema import FieldPatchMeta, PatchLookupError, PatchSchema

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

#: What the apiserver accepts for built-in resources, in its order.
BUILTIN_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

#: What it accepts for custom resources: no strategic merge patch, since
#: there are no Go struct tags to say how lists merge.
CUSTOM_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)

#: The apiserver's limit on the operations of one JSON patch.
MAX_JSON_PATCH_OPERATIONS = 10000

# What the apiserver says for every JSON patch that does not apply (it
# builds a generic 422 from the library's error and drops its text).
_GENERIC_INVALID = "the server rejected our request due to an error in our request"


def _generic_invalid() -> APIError:
    # NewGenericServerResponse(422, ...): a constant message and empty
    # (but present) details.
    return APIError(422, StatusReason.INVALID, _GENERIC_INVALID, StatusDetails())


def patch_types(custom: bool) -> tuple[str, ...]:
    """
    The PATCH content types the apiserver accepts for a resource.

    @param custom: whether it is a custom resource (served from a CRD).
    """
    return CUSTOM_PATCH_TYPES if custom else BUILTIN_PATCH_TYPES


def check_patch_type(content_type: str, custom: bool) -> str:
    """
    The patch type of a PATCH request's C{Content-Type}.

    @param custom: whether the resource is a custom resource.
    @raise APIError: 415, as the apiserver answers for a type it does not
        accept there (strategic merge patch of a custom resource included).
    """
    separator = content_type.find(";")
    media_type = content_type[:separator] if separator > 0 else content_type
    accepted = patch_types(custom)
    if media_type not in accepted:
        raise new_unsupported_media_type(accepted)
    return media_type


# ---------------------------------------------------------------------------
# Go's view of JSON values, for equality and error messages


def _same(left: Any, right: Any) -> bool:
    """
    Equality of decoded JSON values as Go's C{==} on C{interface{}} sees it:
    C{1}, C{1.0} and C{true} all differ.
    """
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    return left == right


def _hashable(value: Any) -> Any:
    """
    A key under which Go's C{map[interface{}]} would file C{value}.
    """
    if isinstance(value, (dict, list)):
        return (type(value), json.dumps(value, sort_keys=True))
    return (type(value), value)


_GO_TYPE_NAMES = {
    dict: "map[string]interface {}",
    list: "[]interface {}",
    str: "string",
    bool: "bool",
    int: "int64",
    float: "float64",
}


def _go_type(value: Any) -> str:
    if value is None:
        return "%!s(<nil>)"
    return _GO_TYPE_NAMES.get(type(value), type(value).__name__)


def _go_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    # strconv.FormatFloat(f, 'g', -1, 64): shortest digits, exponent form
    # when the exponent is below -4 or at least 6.
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + exponent
    magnitude = point - 1
    prefix = "-" if sign else ""
    if magnitude < -4 or magnitude >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if magnitude >= 0 else '-'}{abs(magnitude):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def go_format(value: Any) -> str:
    """
    C{value} as Go's C{%v} (and C{%+v}) prints a decoded JSON value:
    C{map[a:1 b:[x y]]}.  apimachinery's messages embed values this way,
    e.g. the bad value of the 422 a strict strategic merge patch gets.
    """
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_format(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(each) for each in value) + "]"
    return str(value)


# ---------------------------------------------------------------------------
# JSON merge patch


def apply_merge_patch(obj: Any, patch: Any) -> Any:
    """
    Apply a JSON merge patch (RFC 7386) the way the apiserver does.

    @param obj: the current object.
    @param patch: the parsed patch document.
    @return: the patched document.  A patch that is an array replaces the
        whole document (the apiserver then fails to decode it as an
        object); that is left to the caller to reject.
    @raise APIError: 400 C{Invalid JSON Patch} for a patch that is C{null}
        or a scalar.
    """
    if isinstance(patch, dict):
        patch = copy.deepcopy(patch)
        if isinstance(obj, dict):
            # Only the objects on the patch's paths are copied: the rest of
            # the (immutable) current object is shared with the result, so
            # that what did not change stays what the store holds.
            return _merged(obj, patch)
        return _prune_object_nulls(patch)
    if isinstance(patch, list):
        return _prune_array_nulls(copy.deepcopy(patch))
    raise new_bad_request("Invalid JSON Patch")


def _merged(current: dict, patch: dict) -> dict:
    """L{_merge_documents} on a copy of C{current}, copying only what changes."""
    document = dict(current)
    for key, value in patch.items():
        if value is None:
            document.pop(key, None)
            continue
        existing = document.get(key)
        if existing is None:
            _prune_nulls(value)
            document[key] = value
        elif isinstance(existing, dict) and isinstance(value, dict):
            document[key] = _merged(existing, value)
        else:
            document[key] = _merge_value(existing, value)
    return document


def _merge_documents(document: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            document.pop(key, None)
            continue
        current = document.get(key)
        if current is None:
            _prune_nulls(value)
            document[key] = value
        else:
            document[key] = _merge_value(current, value)


def _merge_value(current: Any, patch: Any) -> Any:
    if not isinstance(current, dict):
        _prune_nulls(patch)
        return patch
    if not isinstance(patch, dict):
        # The library replaces an object by a non-object without pruning
        # anything in it.
        return patch
    _merge_documents(current, patch)
    return current


def _prune_nulls(value: Any) -> None:
    if isinstance(value, dict):
        _prune_object_nulls(value)
    elif isinstance(value, list):
        _prune_array_nulls(value)


def _prune_object_nulls(document: dict) -> dict:
    for key in [key for key, value in document.items() if value is None]:
        del document[key]
    for value in document.values():
        _prune_nulls(value)
    return document


def _prune_array_nulls(array: list) -> list:
    # Null elements stay; only objects inside lose their null members.
    for value in array:
        if value is not None:
            _prune_nulls(value)
    return array


# ---------------------------------------------------------------------------
# JSON patch


class _OperationFailed(Exception):
    """
    One JSON patch operation did not apply; the text is the library's.
    """


_ATOI = re.compile(r"^[+-]?[0-9]+$")


def _invalid_index(index: int) -> _OperationFailed:
    return _OperationFailed(f"Unable to access invalid index: {index}: invalid index referenced")


def _array_index(key: str) -> int:
    if not _ATOI.match(key):
        raise _OperationFailed(f'strconv.Atoi: parsing "{key}": invalid syntax')
    return int(key)


def _decode_pointer_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


class _Container:
    """
    The object or array that holds the member a JSON pointer names, with
    the library's rules for reading and writing it.
    """

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, key: str) -> Any:
        value = self.value
        if isinstance(value, dict):
            return value.get(key)
        index = self._index(key, len(value))
        return value[index]

    def remove(self, key: str) -> Any:
        value = self.value
        if isinstance(value, dict):
            if key not in value:
                raise _OperationFailed(f"Unable to remove nonexistent key: {key}: missing value")
            return value.pop(key)
        index = _array_index(key)
        if index >= len(value):
            raise _invalid_index(index)
        return value.pop(self._normalise(index, len(value)))

    def set(self, key: str, item: Any) -> None:
        value = self.value
        if isinstance(value, dict):
            value[key] = item
        else:
            value[self._index(key, len(value))] = item

    def add(self, key: str, item: Any) -> None:
        value = self.value
        if isinstance(value, dict):
            value[key] = item
            return
        if key == "-":
            value.append(item)
            return
        try:
            index = _array_index(key)
        except _OperationFailed as failure:
            raise _OperationFailed(f"value was not a proper array index: '{key}': {failure}")
        size = len(value) + 1
        if index >= size:
            raise _invalid_index(index)
        value.insert(self._normalise(index, size), item)

    def _index(self, key: str, size: int) -> int:
        index = _array_index(key)
        if index >= size:
            raise _invalid_index(index)
        return self._normalise(index, size)

    @staticmethod
    def _normalise(index: int, size: int) -> int:
        # json-patch v4 accepts negative indices, counted from the end.
        if index < 0:
            if index < -size:
                raise _invalid_index(index)
            index += size
        return index


def _find(document: Any, path: str) -> Optional[tuple[_Container, str]]:
    """
    The container of the member C{path} names, and the member's key; what
    json-patch's C{findObject} finds, including its leniency about the part
    before the first C{/}.
    """
    tokens = path.split("/")
    if len(tokens) < 2:
        return None
    current = document
    for token in tokens[1:-1]:
        try:
            child = _Container(current).get(_decode_pointer_token(token))
        except _OperationFailed:
            return None
        if not isinstance(child, (dict, list)):
            return None
        current = child
    return _Container(current), _decode_pointer_token(tokens[-1])


def _operation_string(operation: Mapping[str, Any], field_name: str, operation_kind: str) -> str:
    value = operation.get(field_name)
    if value is None:
        raise _OperationFailed(
            f"{operation_kind} operation missing {field_name} field: missing value"
        )
    if not isinstance(value, str):
        raise _OperationFailed(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type string"
        )
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def apply_json_patch(obj: Any, operations: Any) -> Any:
    """
    Apply a JSON patch (RFC 6902) the way the apiserver does.

    @param obj: the current object.
    @param operations: the parsed patch document, a list of operations.
    @return: the patched document.
    @raise APIError: 400 for a patch that is not a list of objects, 413 for
        more than L{MAX_JSON_PATCH_OPERATIONS} operations, 422 C{Invalid}
        for an operation that does not apply (a failed C{test} included).
    """
    if operations is None:
        # json.Unmarshal of "null" into the patch leaves it empty.
        return copy.deepcopy(obj)
    if not isinstance(operations, list):
        raise new_bad_request(
            f"json: cannot unmarshal {_json_kind(operations)} into Go value of "
            "type jsonpatch.Patch"
        )
    for operation in operations:
        if operation is not None and not isinstance(operation, dict):
            raise new_bad_request(
                f"json: cannot unmarshal {_json_kind(operation)} into Go value of "
                "type jsonpatch.Operation"
            )
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise new_request_entity_too_large(
            f"The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(operations)}"
        )
    document = copy.deepcopy(obj)
    for operation in operations:
        try:
            document = _apply_operation(document, operation or {})
        except _OperationFailed as failure:
            # The library's text is not part of the answer (the apiserver
            # drops it); it stays on the exception for logs.
            raise _generic_invalid() from failure
    return document


def _apply_operation(document: Any, operation: Mapping[str, Any]) -> Any:
    kind = operation.get("op")
    if not isinstance(kind, str):
        kind = "unknown"
    handler = _OPERATIONS.get(kind)
    if handler is None:
        raise _OperationFailed(f"Unexpected kind: {kind}")
    return handler(document, operation)


def _located(
    document: Any, operation: Mapping[str, Any], kind: str, field_name: str = "path"
) -> tuple[_Container, str, str]:
    path = _operation_string(operation, field_name, kind)
    found = _find(document, path)
    if found is None:
        raise _OperationFailed(
            f"{kind} operation does not apply: doc is missing path: {path}: missing value"
        )
    container, key = found
    return container, key, path


def _add(document: Any, operation: Mapping[str, Any]) -> Any:
    container, key, _ = _located(document, operation, "add")
    container.add(key, copy.deepcopy(operation.get("value")))
    return document


def _remove(document: Any, operation: Mapping[str, Any]) -> Any:
    container, key, _ = _located(document, operation, "remove")
    container.remove(key)
    return document


def _replace(document: Any, operation: Mapping[str, Any]) -> Any:
    path = _operation_string(operation, "path", "replace")
    value = operation.get("value")
    if path == "":
        if not isinstance(value, (dict, list)):
            raise _OperationFailed("replace operation value must be object or array")
        return copy.deepcopy(value)
    container, key, _ = _located(document, operation, "replace")
    # An object member need not exist: the library reads it without
    # checking, so replace then behaves like add.
    container.get(key)
    container.set(key, copy.deepcopy(value))
    return document


def _move(document: Any, operation: Mapping[str, Any]) -> Any:
    source, source_key, _ = _located(document, operation, "move", "from")
    value = source.get(source_key)
    source.remove(source_key)
    target, target_key, _ = _located(document, operation, "move")
    target.add(target_key, value)
    return document


def _copy(document: Any, operation: Mapping[str, Any]) -> Any:
    source, source_key, _ = _located(document, operation, "copy", "from")
    value = copy.deepcopy(source.get(source_key))
    target, target_key, _ = _located(document, operation, "copy")
    target.add(target_key, value)
    return document


def _test(document: Any, operation: Mapping[str, Any]) -> Any:
    path = _operation_string(operation, "path", "test")
    expected = operation.get("value")
    if path == "":
        if _same(document, expected):
            return document
        raise _OperationFailed("testing value  failed: test failed")
    container, key, _ = _located(document, operation, "test")
    actual = container.get(key)
    # A missing member and a null member read the same, and both equal an
    # absent or null value.
    if actual is None:
        if expected is None:
            return document
    elif expected is not None and _same(actual, expected):
        return document
    raise _OperationFailed(f"testing value {path} failed: test failed")


_OPERATIONS: dict[str, Callable[[Any, Mapping[str, Any]], Any]] = {
    "add": _add,
    "remove": _remove,
    "replace": _replace,
    "move": _move,
    "copy": _copy,
    "test": _test,
}


# ---------------------------------------------------------------------------
# Strategic merge patch


_DIRECTIVE = "$patch"
_DELETE = "delete"
_REPLACE = "replace"
_MERGE = "merge"
_RETAIN_KEYS_STRATEGY = "retainKeys"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"


class _MergeFailed(Exception):
    """
    The strategic merge failed; C{code} is the status the apiserver gives.
    """

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# apimachinery's sentinel errors that the apiserver maps to 400 and 422.
def _bad_primitive_list() -> _MergeFailed:
    return _MergeFailed("invalid patch format of primitive list", 400)


def _bad_retain_keys() -> _MergeFailed:
    return _MergeFailed("invalid patch format of retainKeys", 400)


def _bad_set_element_order() -> _MergeFailed:
    return _MergeFailed("invalid patch format of setElementOrder list", 400)


def _no_list_of_lists() -> _MergeFailed:
    return _MergeFailed("lists of lists are not supported", 422)


def _bad_argument_type(expected: str, actual: Any) -> _MergeFailed:
    return _MergeFailed(f"expected a {expected}, but received a {_go_type(actual)}")


def _no_merge_key(item: Any, merge_key: str) -> _MergeFailed:
    return _MergeFailed(
        f"map: {go_format(item)} does not contain declared merge key: {merge_key}"
    )


def _bad_patch_type(directive: Any, item: Mapping[str, Any]) -> _MergeFailed:
    if isinstance(directive, str):
        shown = directive
    else:
        # Go's %s of a non-string.
        shown = f"%!s({_go_type(directive)}={go_format(directive)})"
    return _MergeFailed(f"unknown patch type: {shown} in map: {go_format(item)}")


def apply_strategic_merge_patch(
    obj: Mapping[str, Any], patch: Any, meta: PatchSchema
) -> dict[str, Any]:
    """
    Apply a strategic merge patch the way the apiserver does.

    @param obj: the current object.
    @param patch: the parsed patch document.
    @param meta: where the object's patch metadata comes from:
        C{definition.patch_schema()} of the object's built-in definition.
        Custom resources have none; the apiserver refuses the content type
        for them before getting here (see L{check_patch_type}).
    @return: the patched object.  Like the apiserver's, it may still hold
        what decoding into the typed object would drop (C{null}s and
        directives inside list elements that were added whole).
    @raise APIError: 400 for a malformed patch or directive, 422 for lists
        of lists, 500 (with apimachinery's message) for the rest, as the
        apiserver answers them.
    """
    if not isinstance(patch, dict):
        raise new_bad_request(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type "
            "map[string]interface {}"
        )
    try:
        return _merge_map(copy.deepcopy(dict(obj)), copy.deepcopy(patch), meta)
    except _MergeFailed as failure:
        if failure.code == 422:
            raise _generic_invalid() from failure
        if failure.code == 400:
            raise new_bad_request(failure.message) from failure
        # Not an apimachinery Status error: the apiserver answers 500 with
        # the error's text and no reason.
        raise new_unknown(500, failure.message) from failure
    except PatchLookupError as failure:
        raise new_unknown(500, str(failure)) from failure


def _retain_keys_strategy(strategies: Sequence[str]) -> str:
    """
    The strategy of a field other than C{retainKeys} (which only matters
    when the patch says C{$retainKeys}).
    """
    if not strategies:
        return ""
    if len(strategies) == 1:
        return "" if strategies[0] == _RETAIN_KEYS_STRATEGY else strategies[0]
    if len(strategies) == 2:
        if strategies[0] == _RETAIN_KEYS_STRATEGY:
            return strategies[1]
        if strategies[1] == _RETAIN_KEYS_STRATEGY:
            return strategies[0]
    raise _MergeFailed(f"unexpected patch strategy: [{' '.join(strategies)}]")


def _strategy(meta: FieldPatchMeta) -> str:
    return _retain_keys_strategy(meta.strategies)


def _extract_key(key: str, prefix: str) -> str:
    parts = key.split("/", 1)
    if len(parts) <= 1 or parts[0] != prefix:
        if prefix == _DELETE_FROM_PRIMITIVE_LIST:
            raise _bad_primitive_list()
        raise _bad_set_element_order()
    return parts[1]


def _merge_map(original: Optional[dict], patch: dict, schema: PatchSchema) -> dict:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == _REPLACE:
            del patch[_DIRECTIVE]
            return patch
        if directive == _DELETE:
            return {}
        raise _bad_patch_type(directive, patch)
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_set_element_orders(original, patch, schema)
    for key, value in list(patch.items()):
        delete_list = False
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            key = _extract_key(key, _DELETE_FROM_PRIMITIVE_LIST)
            delete_list = True
        if value is None:
            original.pop(key, None)
            continue
        if key not in original or type(original[key]) is not type(value):
            if not delete_list:
                _discard_nulls(value)
                cleaned, keep = _remove_directives(value)
                if keep:
                    original[key] = cleaned
                else:
                    original.pop(key, None)
            continue
        current = original[key]
        if isinstance(current, dict):
            child, meta = schema.lookup_struct(key)
            if _strategy(meta) != _REPLACE:
                original[key] = _merge_map(current, value, child)
            else:
                original[key] = value
        elif isinstance(current, list):
            child, meta = schema.lookup_slice(key)
            original[key] = _merge_slice_field(
                current, value, child, _strategy(meta), meta.merge_key, delete_list
            )
        else:
            cleaned, keep = _remove_directives(value)
            if keep:
                original[key] = cleaned
            else:
                original.pop(key, None)
    return original


def _merge_slice_field(
    original: list,
    patch: list,
    schema: PatchSchema,
    strategy: str,
    merge_key: str,
    delete_list: bool,
) -> list:
    # A $deleteFromPrimitiveList list is handled the same whatever the
    # field's strategy; a list without strategy merge is replaced.
    if strategy == _MERGE or delete_list:
        return _merge_slice(original, patch, schema, merge_key, delete_list)
    return patch


def _apply_retain_keys(original: dict, patch: dict) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise _bad_retain_keys()
    try:
        allowed = {_hashable(each) for each in retained}
    except TypeError:
        raise _MergeFailed("runtime error: hash of unhashable type")
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if _hashable(key) not in allowed:
            raise _bad_retain_keys()
    for key in [key for key in original if _hashable(key) not in allowed]:
        del original[key]


def _merge_set_element_orders(original: dict, patch: dict, schema: PatchSchema) -> None:
    """
    Merge every list that has a C{$setElementOrder} directive, and order it
    by the directive, then by the patch, then by the live list.
    """
    for key, order in list(patch.items()):
        if not key.startswith(_SET_ELEMENT_ORDER):
            continue
        del patch[key]
        if not isinstance(order, list):
            raise _bad_argument_type("[]interface {}", order)
        field_name = _extract_key(key, _SET_ELEMENT_ORDER)
        found_original = field_name in original
        found_patch = field_name in patch
        original_list: list = []
        patch_list: list = []
        if found_original:
            original_list = original[field_name]
            if not isinstance(original_list, list):
                raise _bad_argument_type("[]interface {}", original_list)
        if found_patch:
            patch_list = patch[field_name]
            if not isinstance(patch_list, list):
                raise _bad_argument_type("[]interface {}", patch_list)
        child, meta = schema.lookup_slice(field_name)
        strategy = _strategy(meta)
        merge_key = meta.merge_key
        _check_order(patch_list, order, merge_key)
        if found_original and not found_patch:
            merged = original_list
        elif not found_original and found_patch:
            merged, _ = _remove_directives(patch_list)
        elif found_original and found_patch:
            merged = _merge_slice_field(
                original_list, patch_list, child, strategy, merge_key, False
            )
        else:
            continue
        if not merge_key:
            patch_items, server_items = _partition_primitives(merged, order)
        else:
            patch_items, server_items = _partition_maps(merged, order, merge_key)
        is_map = _element_type(original_list, patch_list) is dict
        original[field_name] = _normalise_element_order(
            patch_items, server_items, order, original_list, merge_key, is_map
        )
        patch.pop(field_name, None)


def _check_order(patch_list: list, order: list, merge_key: str) -> None:
    """
    apimachinery's validatePatchWithSetOrderList: the patch's items must
    appear in the order list, in the same relative order.
    """
    if not order or not patch_list:
        return
    items = _split_deletions(patch_list)[0] if merge_key else patch_list
    patch_index = order_index = 0
    while patch_index < len(items) and order_index < len(order):
        item = items[patch_index]
        if isinstance(item, dict) and _DIRECTIVE in item:
            patch_index += 1
            continue
        if _merge_key_values_equal(item, order[order_index], merge_key):
            patch_index += 1
        order_index += 1
    if patch_index < len(items) and order_index >= len(order):
        raise _MergeFailed(
            f"The order in patch list:\n{go_format(patch_list)}\n doesn't match "
            f"{_SET_ELEMENT_ORDER} list:\n{go_format(order)}\n"
        )


def _merge_key_values_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _same(left, right)
    if not isinstance(left, dict):
        raise _bad_argument_type("map[string]interface {}", left)
    if not isinstance(right, dict):
        raise _bad_argument_type("map[string]interface {}", right)
    if merge_key not in left:
        raise _no_merge_key(left, merge_key)
    if merge_key not in right:
        raise _no_merge_key(right, merge_key)
    return _same(left[merge_key], right[merge_key])


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """
    C{value} without the elements and members that are patch directives,
    and whether C{value} itself is to be kept.
    """
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        for key in list(value):
            cleaned, keep = _remove_directives(value[key])
            if keep:
                value[key] = cleaned
            else:
                del value[key]
        return value, True
    if isinstance(value, list):
        kept = []
        for each in value:
            cleaned, keep = _remove_directives(each)
            if keep:
                kept.append(cleaned)
        return kept, True
    return value, True


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in [key for key, each in value.items() if each is None]:
            del value[key]
        for each in value.values():
            _discard_nulls(each)
    elif isinstance(value, list):
        for each in value:
            _discard_nulls(each)


def _element_type(*lists: list) -> type:
    """
    The one type of the elements of C{lists}, as apimachinery's
    sliceElementType requires it.
    """
    found: Optional[type] = None
    for each_list in lists:
        for item in each_list:
            if item is None:
                # Go dereferences the nil type here and panics; the
                # apiserver's recovery answers 500.
                raise _MergeFailed(
                    "runtime error: invalid memory address or nil pointer dereference"
                )
            if found is None:
                found = type(item)
                if found is list:
                    raise _no_list_of_lists()
            elif found is not type(item):
                raise _MergeFailed(
                    "list element types are not identical: "
                    + go_format([list(each) for each in lists])
                )
    if found is None:
        raise _MergeFailed("no elements in any of the given slices")
    return found


class _GoSlice:
    """
    A Go slice header over a backing array: the list object stands for the
    array and its length for the array's capacity.

    apimachinery deletes from and appends to slices that share their array
    with the caller's slice; a caller that reads its (longer) slice
    afterwards, as the C{$setElementOrder} handling does with the live list,
    sees the shifted and overwritten elements.  List order comes out of
    those reads, so they are reproduced.  Every write this makes lands below
    the caller's length only when the array has room, which it always has
    there, so the result does not depend on Go's capacity growth.
    """

    __slots__ = ("backing", "length")

    def __init__(self, backing: list, length: int) -> None:
        self.backing = backing
        self.length = length

    def items(self) -> list:
        return self.backing[: self.length]

    def delete(self, position: int) -> None:
        # append(s[:position], s[position+1:]...)
        end = self.length
        self.backing[position : end - 1] = self.backing[position + 1 : end]
        self.length -= 1

    def append(self, item: Any) -> None:
        if self.length < len(self.backing):
            self.backing[self.length] = item
        else:
            self.backing = self.backing[: self.length] + [item]
        self.length += 1


def _merge_slice(
    original: list, patch: list, schema: PatchSchema, merge_key: str, delete_list: bool
) -> list:
    if not original and not patch:
        return original
    is_map = _element_type(original, patch) is dict
    if not is_map:
        if delete_list:
            deleted = {_hashable(each) for each in patch}
            return [each for each in original if _hashable(each) not in deleted]
        server_order = original
        merged = _deduplicate_scalars(original + patch)
    else:
        if not merge_key:
            raise _MergeFailed(f"cannot merge lists without merge key for {schema.name}")
        live, patch = _merge_special_elements(_GoSlice(original, len(original)), patch, merge_key)
        merged = _merge_plain_elements(
            _GoSlice(live.backing, live.length), patch, merge_key, schema
        )
        server_order = live.items()
    if not merge_key:
        patch_items, server_items = _partition_primitives(merged, patch)
    else:
        patch_items, server_items = _partition_maps(merged, patch, merge_key)
    return _normalise_element_order(
        patch_items, server_items, patch, server_order, merge_key, is_map
    )


def _merge_special_elements(live: _GoSlice, patch: list, merge_key: str) -> tuple[_GoSlice, list]:
    """
    Apply the C{$patch} elements of a merging list: C{delete} removes the
    live elements with that key, C{replace} makes the patch the list.
    """
    plain = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == _DELETE:
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            value = item[merge_key]
            while True:
                position = _find_by_key(live.items(), merge_key, value)
                if position < 0:
                    break
                live.delete(position)
        elif directive == _REPLACE:
            replace = True
        elif directive == _MERGE:
            raise _MergeFailed("merging lists cannot yet be specified in the patch")
        else:
            raise _bad_patch_type(directive, item)
    if replace:
        return _GoSlice(plain, len(plain)), []
    return live, plain


def _find_by_key(items: list, key: str, value: Any) -> int:
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise _MergeFailed(f"value for key {position} is not a map")
        if key in item and _same(item[key], value):
            return position
    return -1


def _merge_plain_elements(
    merged: _GoSlice, patch: list, merge_key: str, schema: PatchSchema
) -> list:
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        position = _find_by_key(merged.items(), merge_key, item[merge_key])
        if position >= 0:
            merged.backing[position] = _merge_map(merged.backing[position], item, schema)
        else:
            # Appended as is, the way apimachinery does: nulls and
            # directives inside stay.
            merged.append(item)
    return merged.items()


def _deduplicate_scalars(values: list) -> list:
    # apimachinery's in-place deduplication, which moves the last element
    # into each duplicate's place; the order is normalised afterwards.
    values = list(values)
    last = len(values) - 1
    i = 0
    while i < last:
        j = i + 1
        while j <= last:
            if _same(values[i], values[j]):
                values[j] = values[last]
                values.pop()
                last -= 1
                j -= 1
            j += 1
        i += 1
    return values


def _partition_primitives(items: list, by: list) -> tuple[list, list]:
    present = {_hashable(each) for each in by}
    in_patch = [each for each in items if _hashable(each) in present]
    server_only = [each for each in items if _hashable(each) not in present]
    return in_patch, server_only


def _partition_maps(items: list, by: list, merge_key: str) -> tuple[list, list]:
    in_patch = []
    server_only = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_argument_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        if _find_by_key(by, merge_key, item[merge_key]) >= 0:
            in_patch.append(item)
        else:
            server_only.append(item)
    return in_patch, server_only


def _split_deletions(items: list) -> tuple[list, list]:
    kept = []
    deleted = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_argument_type("map[string]interface {}", item)
        if item.get(_DIRECTIVE) == _DELETE:
            deleted.append(item)
        else:
            kept.append(item)
    return kept, deleted


def _position(items: list, value: Any, merge_key: str, is_map: bool) -> int:
    """
    apimachinery's C{index}: where C{value} is in C{items}, by merge key for
    maps (a missing key reads as nil and matches another missing key).
    """
    if is_map:
        wanted = value.get(merge_key) if isinstance(value, dict) else None
        for position, item in enumerate(items):
            candidate = item.get(merge_key) if isinstance(item, dict) else None
            if _same(wanted, candidate):
                return position
        return -1
    for position, item in enumerate(items):
        if _same(value, item):
            return position
    return -1


def _normalise_element_order(
    patch_items: list,
    server_items: list,
    patch_order: list,
    server_order: list,
    merge_key: str,
    is_map: bool,
) -> list:
    patch_items = _sort_by(patch_items, patch_order, merge_key, is_map)
    server_items = _sort_by(server_items, server_order, merge_key, is_map)
    return _merge_sorted(server_items, patch_items, server_order, merge_key, is_map)


def _sort_by(items: list, order: list, merge_key: str, is_map: bool) -> list:
    deleted: list = []
    if is_map:
        for each_list in (items, order):
            for item in each_list:
                if not isinstance(item, dict):
                    raise _bad_argument_type("map[string]interface {}", item)
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
        items, deleted = _split_deletions(items)
    items = list(items)

    def less(i: int, j: int) -> bool:
        left = _position(order, items[i], merge_key, is_map)
        if left >= 0:
            right = _position(order, items[j], merge_key, is_map)
            if right >= 0:
                return left < right
        return True

    _go_stable_sort(items, less)
    return items + deleted


def _merge_sorted(
    left: list, right: list, server_order: list, merge_key: str, is_map: bool
) -> list:
    """
    Interleave server-only items (C{left}) into patch items (C{right}),
    keeping each list's order and using the live order where both are known.
    """
    merged = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            merged.append(right[j])
            j += 1
        elif j >= len(right):
            merged.append(left[i])
            i += 1
        else:
            left_position = _position(server_order, left[i], merge_key, is_map)
            right_position = _position(server_order, right[j], merge_key, is_map)
            if left_position >= 0 and right_position >= 0 and left_position < right_position:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
    return merged


def _go_stable_sort(items: list, less: Callable[[int, int], bool]) -> None:
    """
    Go's C{sort.SliceStable}, step for step: apimachinery sorts with a
    comparison that is not a strict order when items are missing from the
    order list, so only the same algorithm gives the same result.
    """

    def swap(i: int, j: int) -> None:
        items[i], items[j] = items[j], items[i]

    def insertion_sort(a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and less(j, j - 1):
                swap(j, j - 1)
                j -= 1

    def swap_range(a: int, b: int, n: int) -> None:
        for i in range(n):
            swap(a + i, b + i)

    def rotate(a: int, m: int, b: int) -> None:
        i = m - a
        j = b - m
        while i != j:
            if i > j:
                swap_range(m - i, m, j)
                i -= j
            else:
                swap_range(m - i, m + j - i, i)
                j -= i
        swap_range(m - i, m, i)

    def sym_merge(a: int, m: int, b: int) -> None:
        if m - a == 1:
            i, j = m, b
            while i < j:
                h = (i + j) >> 1
                if less(h, a):
                    i = h + 1
                else:
                    j = h
            for k in range(a, i - 1):
                swap(k, k + 1)
            return
        if b - m == 1:
            i, j = a, m
            while i < j:
                h = (i + j) >> 1
                if not less(m, h):
                    i = h + 1
                else:
                    j = h
            for k in range(m, i, -1):
                swap(k, k - 1)
            return
        mid = (a + b) >> 1
        n = mid + m
        if m > mid:
            start, r = n - b, mid
        else:
            start, r = a, m
        p = n - 1
        while start < r:
            c = (start + r) >> 1
            if not less(p - c, c):
                start = c + 1
            else:
                r = c
        end = n - start
        if start < m < end:
            rotate(start, m, end)
        if a < start < mid:
            sym_merge(a, start, mid)
        if mid < end < b:
            sym_merge(mid, end, b)

    n = len(items)
    block = 20
    a, b = 0, block
    while b <= n:
        insertion_sort(a, b)
        a = b
        b += block
    insertion_sort(a, n)
    while block < n:
        a, b = 0, 2 * block
        while b <= n:
            sym_merge(a, a + block, b)
            a = b
            b += 2 * block
        m = a + block
        if m < n:
            sym_merge(a, m, n)
        block *= 2
