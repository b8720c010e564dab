# -*- test-case-name: tests.test_kube_defaults -*-
"""
What kube-apiserver makes of an object it is given, before anything else
sees it: the Go round trip and API defaulting.

A real apiserver decodes every body into the Go struct of its kind, applies
the registered defaulting functions (C{SetObjectDefaults_*}, generated from
the C{SetDefaults_*} functions and C{+default} markers of
C{k8s.io/kubernetes/pkg/apis/*/v1}), converts it to the internal version
and back, and encodes what it stores and answers with C{encoding/json}. So
a client sees:

  - members in Go field order; zero values of C{omitempty} fields gone
    (C{env[].value: ""}, C{labels: {}}); non-pointer structs always there
    (C{resources: {}}, C{status: {}}); zero values of plain fields written
    out (C{"Port": 0}); pointer fields kept even when zero (C{replicas: 0});
    unknown members dropped; map keys sorted;
  - the custom forms re-encoded: quantities canonical (C{"1000m"} is
    C{"1"}, C{cpu: 1} is C{"1"}), times in UTC at second precision
    (C{MicroTime} at microseconds), durations as Go prints them;
  - defaults: Deployment C{replicas: 1} and its rolling update, pod template
    C{restartPolicy}, C{dnsPolicy}, C{securityContext: {}}, container
    C{imagePullPolicy}, Service C{type} and C{sessionAffinity}, Secret
    C{type: Opaque}, and so on;
  - what the internal version does not keep: a pod spec's
    C{serviceAccount} follows C{serviceAccountName}, a Secret's
    C{stringData} is merged into C{data}, C{podIP} follows C{podIPs}.

L{default_object} does all of that for one object of a built-in kind, in
one walk driven by the field tables of L{scaleagent.kube._protofields}
(generated from the same Go sources as the protobuf decoder): each message
knows its members' JSON names, order, C{omitempty}/C{omitzero}, pointer-ness
and nested message types. The defaulting is written out below per message
type, as the Go functions are, and runs in the order the generated code
runs it: a message's own defaulter, then its members' declarative
defaults, then its members, depth first. Kinds the tables do not know
(custom resources, CRDs, kinds of API versions the tables leave out) are
returned as they are.

The walk returns the very objects it was given wherever they already are
in that form, so what is unchanged stays shared (between an object and the
next version of it, between a Deployment's template and its ReplicaSet's),
and an update passes the stored version (L{default_object}'s C{stored}):
what the new body still shares with it is not walked again.

The store applies this to every create and update (the HTTP layer's bodies,
patches and the controllers' writes alike), once on decoding and once more
on the object it stores (as the apiserver decodes what it reads back from
etcd); never to template objects on read: they are written with their
defaults (only the key order and the deprecated C{serviceAccount} of pod
templates differ from what the apiserver would write), and reads must stay
cheap. The Service registry's allocation of cluster IPs and node ports
(L{allocate_service}) is here too.

Where this differs from Go, knowingly:
  - values of the wrong JSON type are kept as they are, where Go's decoder
    refuses the body (the HTTP layer's field validation reports unknown
    fields; type errors are rare from real clients);
  - pod-level resources (C{spec.resources}, beta in 1.34) get no defaults;
  - a v1 HorizontalPodAutoscaler's round trip through the annotations
    that carry its v2 fields is not modelled (only its defaults are);
  - CRDs (not in the tables) are not round-tripped.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import re
from datetime import datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Any, Callable, Mapping, Optional

from scaleagent.kube import _protofields
from scaleagent.kube.errors import APIError, FieldError, go_quote, new_internal_error, new_invalid
from scaleagent.kube.resources import ResourceType

__all__ = [
    "NODE_PORTS",
    "SERVICE_CIDR",
    "allocate_service",
    "canonical_quantity",
    "default_message",
    "default_object",
    "message_for",
    "normalise_object",
]

Defaulter = Callable[[dict], None]

# -- quantities ------------------------------------------------------------------

# resource.Quantity's suffixes: decimal SI (base 10), binary SI (base 2).
_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_DECIMAL_SUFFIX_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_SUFFIX_BY_EXPONENT = {exponent: suffix for suffix, exponent in _BINARY_SUFFIXES.items()}
_BINARY_SUFFIX_BY_EXPONENT[0] = ""
_DECIMAL_SI, _BINARY_SI, _DECIMAL_EXPONENT = "DecimalSI", "BinarySI", "DecimalExponent"
_QUANTITY_NUMBER = re.compile(r"([+-]?)(0*)([0-9]*)(?:\.([0-9]*))?(.*)", re.S)
_INT64_MAX = (1 << 63) - 1
# maxInt64Factors: the decimal digits an int64 always holds.
_MAX_INT64_FACTORS = 18


def _suffix(text: str) -> Optional[tuple[int, int, str]]:
    """C{quantitySuffixer.interpret}: (base, exponent, format), or None."""
    if text in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[text], _DECIMAL_SI
    if text in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[text], _BINARY_SI
    if len(text) > 1 and text[0] in "eE":
        try:
            exponent = int(text[1:], 10)
        except ValueError:
            return None
        if not re.fullmatch(r"[+-]?[0-9]+", text[1:]) or abs(exponent) > 2**31 - 1:
            return None
        return 10, exponent, _DECIMAL_EXPONENT
    return None


def _strip_factors(value: int, base: int) -> tuple[int, int]:
    """C{removeInt64Factors}: C{value} without its factors of C{base}, and how many."""
    negative = value < 0
    value = -value if negative else value
    times = 0
    while value >= base and value % base == 0:
        value //= base
        times += 1
    return (-value if negative else value), times


def _canonical(value: Decimal, format_: str) -> str:
    """C{Quantity.CanonicalizeBytes} of an exact value."""
    if value == 0:
        return "0"
    if format_ == _BINARY_SI:
        if -1024 < value < 1024 or value != value.to_integral_value():
            # Small or fractional binary values are written in decimal.
            format_ = _DECIMAL_SI
        else:
            number, times = _strip_factors(int(value), 1024)
            suffix = _BINARY_SUFFIX_BY_EXPONENT.get(times * 10)
            if suffix is None:
                # Beyond Ei: keep the remaining factors in the number.
                number *= 1024 ** (times - 6)
                suffix = "Ei"
            return f"{number}{suffix}"
    sign, digits, exponent = value.as_tuple()
    mantissa = int("".join(map(str, digits)))
    mantissa, times = _strip_factors(mantissa, 10)
    exponent += times
    remainder = exponent % 3
    if remainder:
        mantissa *= 10**remainder
        exponent -= remainder
    number = f"-{mantissa}" if sign else str(mantissa)
    if format_ == _DECIMAL_EXPONENT:
        return number if exponent == 0 else f"{number}e{exponent}"
    suffix = _DECIMAL_SUFFIX_BY_EXPONENT.get(exponent)
    if suffix is None:
        # Outside n..E: Go writes the number without a suffix (a known
        # quirk); no resource a client sends gets here.
        return f"{number}e{exponent}"
    return number + suffix


def _round_away(value: Decimal, places: int) -> Decimal:
    """Round to C{places} decimal places away from zero (C{inf.RoundUp})."""
    quantum = Decimal(1).scaleb(-places)
    rounding = ROUND_CEILING if value > 0 else ROUND_FLOOR
    with localcontext() as context:
        context.prec = max(28, len(value.as_tuple().digits) + places + 4)
        return value.quantize(quantum, rounding=rounding)


@functools.lru_cache(maxsize=4096)
def canonical_quantity(text: str, round_to_milli: bool = False) -> Optional[str]:
    """
    What a C{resource.Quantity} given as C{text} is written as after a Go
    round trip (C{ParseQuantity}, then C{MarshalJSON}): the text itself when
    the parser keeps it (already canonical and exactly representable), else
    the canonical form. With C{round_to_milli}, first rounded up to
    thousandths as C{SetDefaults_ResourceList} does.

    @return: the JSON string, or None if Go would refuse the text.
    """
    if text == "0":
        return text
    match = _QUANTITY_NUMBER.fullmatch(text)
    if match is None or not text:
        return None
    sign, _, num, denom, suffix_text = match.groups()
    interpreted = _suffix(suffix_text)
    if interpreted is None:
        return None
    base, exponent, format_ = interpreted
    # parseQuantityString: no digits at all is the number 0 ("Mi", "-").
    num = num or "0"
    denom = denom or ""
    if not match.group(3) and match.group(2) and denom == "" and not suffix_text:
        # Only zeros.
        return "0"
    negative = sign == "-"

    # The int64 fast path: the value as an integer at a decimal scale.
    reused: Optional[str] = None
    exact: Optional[Decimal] = None
    int_scale: Optional[int] = None
    if format_ == _BINARY_SI:
        precision = (
            15 - len(num) - int(exponent * 3 / 10) - 1 if exponent >= 0 and not denom else -1
        )
        scale = 0
    else:
        precision = _MAX_INT64_FACTORS - (len(num) + len(denom))
        scale = exponent
    if precision >= 0:
        scale -= len(denom)
        if scale >= -9:
            shifted = num + denom
            value = int(shifted)
            mantissa = 1 << exponent if format_ == _BINARY_SI else 1
            result = value * mantissa
            if result <= _INT64_MAX:
                if negative:
                    result = -result
                exact = Decimal(result).scaleb(scale)
                int_scale = scale
                if format_ == _BINARY_SI:
                    if exponent % 10 == 0 and value & 0x07 != 0:
                        reused = text
                elif scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0":
                    reused = text
    if exact is None:
        # The arbitrary-precision path: rounded up to nanos, binary capped.
        magnitude = Decimal(f"{num}.{denom}" if denom else num)
        magnitude = magnitude.scaleb(exponent) if base == 10 else magnitude * (2**exponent)
        if magnitude != 0:
            magnitude = _round_away(magnitude, 9)
        if format_ == _BINARY_SI and magnitude > _INT64_MAX:
            magnitude = Decimal(_INT64_MAX)
        if format_ == _BINARY_SI and 0 < magnitude < 1:
            format_ = _DECIMAL_SI
        exact = -magnitude if negative else magnitude
    if round_to_milli and (int_scale is None or int_scale < -3):
        # Quantity.RoundUp(Milli): a value already at milli scale or coarser
        # keeps its text.
        rounded = _round_away(exact, 3)
        return _canonical(rounded.normalize() if rounded else Decimal(0), format_)
    if reused is not None:
        return reused
    return _canonical(exact, format_)


# -- times and durations -----------------------------------------------------------

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(\.[0-9]+)?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def _parse_rfc3339(text: str, micro: bool) -> Optional[tuple[datetime, int]]:
    """
    C{time.Parse(time.RFC3339, ...)} (or C{RFC3339Micro}, which needs
    exactly six fractional digits): the instant in UTC and its
    microseconds, or None.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7)
    if micro and (fraction is None or len(fraction) != 7):
        return None
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        return None
    if match.group(9):
        offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        if int(match.group(10)) >= 24 or int(match.group(11)) >= 60:
            return None
        moment = moment - offset if match.group(9) == "+" else moment + offset
    micros = int((fraction[1:] + "000000")[:6]) if fraction else 0
    return moment, micros


_CANONICAL_TIME = re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z")
_CANONICAL_MICRO_TIME = re.compile(
    r"[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
)


def _time(value: Any) -> Any:
    # metav1.Time: RFC 3339 in UTC, whole seconds.
    if not isinstance(value, str) or _CANONICAL_TIME.fullmatch(value):
        return value
    parsed = _parse_rfc3339(value, False)
    if parsed is None:
        return value
    moment = parsed[0]
    if not 1 <= moment.year <= 9999:
        return value
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(value: Any) -> Any:
    # metav1.MicroTime: RFC 3339 in UTC with exactly six fractional digits.
    if not isinstance(value, str) or _CANONICAL_MICRO_TIME.fullmatch(value):
        return value
    parsed = _parse_rfc3339(value, True)
    if parsed is None:
        return value
    moment, micros = parsed
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]+)")


def _duration(value: Any) -> Any:
    # metav1.Duration: time.ParseDuration, then Duration.String().
    from scaleagent.kube.protobuf import go_duration

    if not isinstance(value, str) or not value:
        return value
    text = value
    negative = text[0] == "-"
    if text[0] in "+-":
        text = text[1:]
    if text == "0":
        return "0s"
    total = 0
    position = 0
    if not text:
        return value
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None or (not match.group(1) and not match.group(2)):
            return value
        unit = _DURATION_UNITS.get(match.group(3))
        if unit is None:
            return value
        whole = int(match.group(1) or "0")
        fraction = match.group(2) or ""
        total += whole * unit
        if fraction:
            total += int(Decimal("0." + fraction) * unit)
        position = match.end()
    return go_duration(-total if negative else total)


def _quantity(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float):
        value = repr(value)
    if not isinstance(value, str):
        return value
    canonical = canonical_quantity(value.strip())
    return value if canonical is None else canonical


def _int_or_string(value: Any) -> Any:
    return value


def _raw(value: Any) -> Any:
    return value


def _group_version(value: Any) -> Any:
    return value


# The custom JSON forms: how a present value is re-encoded, and the JSON of
# the Go zero value (what an absent non-pointer field is written as).
_SPECIAL_FORMS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "time": (_time, None),
    "microtime": (_micro_time, None),
    "duration": (_duration, "0s"),
    "quantity": (_quantity, "0"),
    "intorstring": (_int_or_string, 0),
    "rawextension": (_raw, None),
    "fieldsv1": (_raw, None),
    "groupversion": (_group_version, ""),
    "unknown": (_raw, None),
}

# -- compiled message plans ----------------------------------------------------------

_OMIT = object()
_ZERO_STRUCT = object()

# Member kinds.
_SCALAR, _OBJECT, _ARRAY, _SPECIAL, _MAP = range(5)

_ZERO_SCALARS = {
    "bool": False,
    "double": 0,
    "float": 0,
    "int32": 0,
    "int64": 0,
    "uint32": 0,
    "uint64": 0,
    "sint32": 0,
    "sint64": 0,
    "fixed32": 0,
    "fixed64": 0,
    "sfixed32": 0,
    "sfixed64": 0,
    "string": "",
    # A nil []byte is null.
    "bytes": None,
}


class _Value:
    """How one value (a member's, or a list item's, or a map value's) is normalised."""

    __slots__ = ("kind", "message", "convert", "zero", "round_to_milli", "_plan")

    def __init__(self, type_name: str, round_to_milli: bool = False) -> None:
        self.message: Optional[str] = None
        self.convert: Optional[Callable[[Any], Any]] = None
        self.zero: Any = None
        self.round_to_milli = round_to_milli
        self._plan: Optional[_Plan] = None
        if type_name in _ZERO_SCALARS:
            self.kind = _SCALAR
            self.zero = _ZERO_SCALARS[type_name]
            return
        form = _protofields.MESSAGES[type_name][0]
        self.message = type_name
        if form == "object":
            self.kind = _OBJECT
        elif form == "array":
            self.kind = _ARRAY
        else:
            self.kind = _SPECIAL
            self.convert, self.zero = _SPECIAL_FORMS[form]
            self.message = form

    @property
    def plan(self) -> _Plan:
        plan = self._plan
        if plan is None:
            assert self.message is not None
            plan = self._plan = _plan(self.message)
        return plan


# How a present member is normalised (a member's "mode").
(
    _KEEP,
    _KEEP_UNLESS_EMPTY,
    _NESTED,
    _MAP_OF_SCALARS,
    _MAP_OF_VALUES,
    _LIST_OF_SCALARS,
    _LIST_OF_ARRAYS,
    _LIST_OF_VALUES,
    _ARRAY_VALUE,
    _SPECIAL_VALUE,
) = range(10)


class _Member:
    """One JSON member of an object message."""

    __slots__ = ("name", "value", "repeated", "map_value", "pointer", "omit", "omitzero", "absent", "mode")

    def __init__(self, name: str, type_name: str, flags: str, in_core: bool) -> None:
        self.name = name
        self.repeated = "r" in flags
        self.pointer = "p" in flags
        self.omit = "o" in flags or "z" in flags
        self.omitzero = "z" in flags
        self.map_value: Optional[_Value] = None
        if type_name.startswith("map<"):
            value_type = type_name[4:-1].split(",", 1)[1]
            # ResourceLists of core/v1 get SetDefaults_ResourceList.
            round_to_milli = in_core and value_type == "api/resource.Quantity"
            self.map_value = _Value(value_type, round_to_milli)
            self.value = self.map_value
        else:
            self.value = _Value(type_name)
        value = self.value
        if self.map_value is not None or self.repeated or self.pointer or value.kind == _ARRAY:
            # nil maps, slices and pointers.
            self.absent: Any = _OMIT if self.omit else None
        elif value.kind == _SCALAR:
            self.absent = _OMIT if self.omit else value.zero
        elif value.kind == _OBJECT:
            # A struct value is never omitted by omitempty.
            self.absent = _ZERO_STRUCT
        else:
            zero = value.zero
            self.absent = _OMIT if zero is None and self.omitzero else zero
        kind = value.kind
        if self.map_value is not None:
            self.mode = _MAP_OF_SCALARS if kind == _SCALAR else _MAP_OF_VALUES
        elif self.repeated:
            self.mode = {_SCALAR: _LIST_OF_SCALARS, _ARRAY: _LIST_OF_ARRAYS}.get(kind, _LIST_OF_VALUES)
        elif kind == _SCALAR:
            # Pointers are kept even when zero: that is how JSON tells "set
            # to false" from "unset".
            self.mode = _KEEP_UNLESS_EMPTY if self.omit and not self.pointer else _KEEP
        elif kind == _OBJECT:
            self.mode = _NESTED
        elif kind == _ARRAY:
            self.mode = _ARRAY_VALUE
        else:
            self.mode = _SPECIAL_VALUE


class _Plan:
    """
    An object message: its members in Go order (embedded ones spliced in).

    @ivar by_name: member name -> (position, mode, member).
    @ivar required: the positions of the members written even when absent
        (not omitted when empty).
    """

    __slots__ = ("name", "members", "by_name", "required", "defaulters", "_zero", "_zero_static")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: list[_Member] = []
        self.defaulters: list[Defaulter] = []
        self._collect(name)
        self.by_name = {
            member.name: (index, member.mode, member) for index, member in enumerate(self.members)
        }
        self.required = tuple(
            index for index, member in enumerate(self.members) if member.absent is not _OMIT
        )
        self._zero: Any = None
        self._zero_static: Optional[bool] = None

    def _collect(self, name: str) -> None:
        form, table = _protofields.MESSAGES[name]
        if form != "object":
            raise ValueError(f"{name} is not an object message")
        own = _DEFAULTERS.get(name)
        if own is not None:
            self.defaulters.append(own)
        declarative = _FIELD_DEFAULTS.get(name)
        if declarative is not None:
            self.defaulters.append(_member_defaults(*declarative))
        in_core = name.startswith("core/v1.")
        for _, json_name, type_name, flags in table:
            if "i" in flags:
                self._collect(type_name)
            else:
                self.members.append(_Member(json_name, type_name, flags, in_core))

    def zero(self) -> dict:
        """The JSON of the message's zero value, defaults applied."""
        if self._zero_static:
            return dict(self._zero)
        zero = _normalise_object(self, {}, True)
        if self._zero_static is None:
            self._zero_static = not self.defaulters and all(
                member.absent is not _ZERO_STRUCT or member.value.plan.zero_is_static()
                for member in self.members
            )
            if self._zero_static:
                self._zero = zero
        return zero

    def zero_is_static(self) -> bool:
        if self._zero_static is None:
            self.zero()
        return bool(self._zero_static)


_plans: dict[str, _Plan] = {}


def _plan(name: str) -> _Plan:
    plan = _plans.get(name)
    if plan is None:
        plan = _plans[name] = _Plan(name)
    return plan


def _normalise_value(spec: _Value, value: Any, defaults: bool) -> Any:
    kind = spec.kind
    if kind == _SCALAR:
        return value
    if kind == _OBJECT:
        if type(value) is dict:
            return _normalise_object(spec.plan, value, defaults)
        return value
    if kind == _SPECIAL:
        if spec.round_to_milli and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = value if isinstance(value, str) else (str(value) if isinstance(value, int) else repr(value))
            canonical = canonical_quantity(text.strip(), round_to_milli=defaults)
            return value if canonical is None else canonical
        assert spec.convert is not None
        return spec.convert(value)
    return value


def _normalise_item(spec: _Value, value: Any, defaults: bool) -> Any:
    """A list element or map value: null decodes as the element's zero value."""
    if value is None:
        if spec.kind == _OBJECT:
            return spec.plan.zero() if defaults else _normalise_object(spec.plan, {}, False)
        return spec.zero
    return _normalise_value(spec, value, defaults)


def _normalise_list(spec: _Value, value: list, defaults: bool, stored: Any) -> list:
    """
    The items normalised; the list itself when none changed (it stays
    shared). Items that are the C{stored} list's own are taken as they are.
    """
    if type(stored) is list:
        count = len(stored)
        items = [
            item
            if index < count and item is stored[index]
            else _normalise_item(spec, item, defaults)
            for index, item in enumerate(value)
        ]
    else:
        items = [_normalise_item(spec, item, defaults) for item in value]
    for item, original in zip(items, value):
        if item is not original:
            return items
    return value


def _normalise_map(spec: _Value, value: dict, defaults: bool, stored: Any) -> dict:
    # encoding/json writes map keys sorted.
    keys = sorted(value)
    if type(stored) is dict:
        result = {
            key: (value[key] if value[key] is stored.get(key) else _normalise_item(spec, value[key], defaults))
            for key in keys
        }
    else:
        result = {key: _normalise_item(spec, value[key], defaults) for key in keys}
    if keys == list(value) and all(result[key] is value[key] for key in keys):
        return value
    return result


def _scalar_map(spec: _Value, value: dict) -> dict:
    keys = sorted(value)
    if keys == list(value) and None not in value.values():
        return value
    zero = spec.zero
    return {key: (zero if value[key] is None else value[key]) for key in keys}


def _normalise_object(plan: _Plan, raw: dict, defaults: bool, stored: Any = None) -> dict:
    """
    One object message. The result is C{raw} itself when that is already
    what Go would write (same members, values and order), so that objects
    written from objects read (and the template and manifest objects many
    clusters share) keep sharing what did not change.

    @param stored: the same message in an object this walk made before (a
        stored object being updated), or None: members C{raw} shares with
        it are in normal form already and are not walked again.
    """
    if type(stored) is not dict:
        stored = None
    original = raw
    if defaults and plan.defaulters:
        raw = dict(raw)
        for defaulter in plan.defaulters:
            defaulter(raw)
        # Defaulters copy what they look into; what they left as it was
        # stays the original (shared) value.
        for key, value in raw.items():
            before = original.get(key)
            if value is not before and before is not None and value == before:
                raw[key] = before
    same = len(raw) == len(original) and all(
        original.get(key) is value for key, value in raw.items()
    )
    # What the object holds, by member position; then the members written
    # even when absent; then everything in Go order.
    slots: dict[int, Any] = {}
    by_name = plan.by_name
    last = -1
    for name, value in raw.items():
        entry = by_name.get(name)
        if entry is None:
            # Go's decoder drops what the struct does not have.
            same = False
            continue
        index, mode, member = entry
        if index < last:
            same = False
        last = index
        if value is None:
            # null decodes as the zero value; a nil pointer, slice or map
            # of a field without omitempty is written as null again.
            if member.absent is None:
                slots[index] = None
            else:
                same = False
            continue
        if stored is not None:
            before = stored.get(name)
            if value is before:
                slots[index] = value
                continue
        else:
            before = None
        if mode == _KEEP_UNLESS_EMPTY:
            if value or type(value) is dict or type(value) is list:
                slots[index] = value
            else:
                same = False
            continue
        if mode == _KEEP:
            slots[index] = value
            continue
        if mode == _NESTED:
            result = (
                _normalise_object(member.value.plan, value, defaults, before)
                if type(value) is dict
                else value
            )
        elif mode == _LIST_OF_VALUES:
            if type(value) is not list:
                result = value
            elif value:
                result = _normalise_list(member.value, value, defaults, before)
            elif not member.omit:
                result = value
            else:
                same = False
                continue
        elif mode == _LIST_OF_SCALARS:
            if type(value) is not list:
                result = value
            elif value:
                if None in value:
                    # null decodes into an element as its zero value.
                    zero = member.value.zero
                    value = [zero if item is None else item for item in value]
                    same = False
                result = value
            elif not member.omit:
                result = value
            else:
                same = False
                continue
        elif mode == _MAP_OF_SCALARS:
            if type(value) is not dict:
                result = value
            elif value:
                result = _scalar_map(member.value, value)
            elif not member.omit:
                result = value
            else:
                same = False
                continue
        elif mode == _MAP_OF_VALUES:
            if type(value) is not dict:
                result = value
            elif value:
                result = _normalise_map(member.value, value, defaults, before)
            elif not member.omit:
                result = value
            else:
                same = False
                continue
        elif mode == _SPECIAL_VALUE:
            result = _normalise_value(member.value, value, defaults)
            if result is None and member.omitzero and not member.pointer:
                same = False
                continue
            if result == value and type(result) is type(value):
                result = value
        else:  # _LIST_OF_ARRAYS, _ARRAY_VALUE
            if type(value) is list and not value and member.omit:
                same = False
                continue
            result = value
        if result is not value:
            same = False
        slots[index] = result
    members = plan.members
    for index in plan.required:
        if index not in slots:
            same = False
            member = members[index]
            absent = member.absent
            if absent is _ZERO_STRUCT:
                slots[index] = member.value.plan.zero() if defaults else _zero_without_defaults(member)
            else:
                slots[index] = absent
    if same:
        return original
    return {members[index].name: slots[index] for index in sorted(slots)}


def _zero_without_defaults(member: _Member) -> dict:
    return _normalise_object(member.value.plan, {}, False)


# -- public entry points -----------------------------------------------------------


def message_for(resource_type: ResourceType) -> Optional[str]:
    """The Go type (table name) objects of this resource decode into, if known."""
    if resource_type.custom:
        return None
    return _protofields.KINDS.get((resource_type.group, resource_type.version, resource_type.kind))


def default_object(
    resource_type: ResourceType,
    obj: Mapping,
    subresource: Optional[str] = None,
    stored: Optional[Mapping] = None,
) -> dict:
    """
    C{obj} as kube-apiserver has it after decoding and defaulting it (and
    converting it to the internal version and back): see the module
    docstring. Objects of kinds the tables do not know come back as they
    are. C{obj} is not changed; the result shares no containers with it
    that it changed.

    @param subresource: C{"status"} for a status update, which keeps only
        the request's metadata and status: its C{spec} is passed through
        as it is rather than walked for nothing (a Service's is walked, its
        type decides a status default).
    @param stored: an object this function made before (the stored
        version of one being updated): what C{obj} shares with it is
        already as decoding gives it, and is taken as it is.
    """
    message = message_for(resource_type)
    if message is None:
        return dict(obj)
    plan = _plan(message)
    if (
        subresource == "status"
        and "spec" in obj
        and resource_type.kind != "Service"
        and (stored is None or obj["spec"] is not stored.get("spec"))
    ):
        # (A spec that is the stored object's own costs nothing to walk:
        # it is taken as it is.)
        spec = obj["spec"]
        result = _normalise_object(
            plan, {key: value for key, value in obj.items() if key != "spec"}, True, stored
        )
        result = dict(result)
        result["spec"] = spec
        return result
    return dict(_normalise_object(plan, dict(obj), True, stored))


def default_message(message: str, obj: Mapping) -> dict:
    """
    A value of one Go type (a table name such as C{core/v1.PodTemplateSpec})
    as decoding and defaulting give it.
    """
    return _normalise_object(_plan(message), dict(obj), True)


def normalise_object(
    resource_type: ResourceType, obj: Mapping, stored: Optional[Mapping] = None
) -> dict:
    """
    Only the Go round trip of C{obj}, no defaulting: what encoding a
    complete object (one an admission plugin changed) writes.

    @param stored: as for L{default_object}.
    """
    message = message_for(resource_type)
    if message is None:
        return dict(obj)
    return dict(_normalise_object(_plan(message), dict(obj), False, stored))


# -- defaulting helpers ----------------------------------------------------------------


def _empty(value: Any) -> bool:
    """A Go zero value as JSON shows it: absent, null, "", 0, false, [] or {}."""
    return value is None or value == "" or value is False or value == 0 or value == [] or value == {}


def _child(obj: dict, key: str) -> dict:
    """A copy of the object member C{key} (an empty one if absent), stored back."""
    value = obj.get(key)
    copy = dict(value) if isinstance(value, dict) else {}
    obj[key] = copy
    return copy


def _items(obj: dict, key: str) -> list:
    """A copy of the list member C{key} whose object items are copies, stored back."""
    value = obj.get(key)
    if not isinstance(value, list):
        return []
    copy = [dict(item) if isinstance(item, dict) else item for item in value]
    obj[key] = copy
    return copy


def _member_defaults(*defaults: tuple[str, Any, bool]) -> Defaulter:
    """
    Set each C{(member, value, pointer)} whose member is its Go zero value
    (C{nil} for pointers): a message's C{+default} markers, or a
    C{SetDefaults_*} function that does no more than that.
    """

    def apply(obj: dict) -> None:
        for name, value, pointer in defaults:
            current = obj.get(name)
            if current is None if pointer else _empty(current):
                # Each object gets its own {} (a webhook's selectors), so
                # that changing one in place changes no other.
                obj[name] = dict(value) if type(value) is dict else value

    return apply


# -- core/v1 -----------------------------------------------------------------------------

_PULL_ALWAYS, _PULL_IF_NOT_PRESENT = "Always", "IfNotPresent"


# The docker reference grammar (distribution/reference) that
# parsers.ParseImageName parses images with.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_REFERENCE = re.compile(
    rf"((?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::([\w][\w.-]{0,127}))?"
    r"(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


def _image_tag(image: str) -> str:
    """
    The tag C{parsers.ParseImageName} finds: the reference's tag, C{latest}
    when it has neither tag nor digest, none when it has only a digest or
    does not parse (C{ParseNormalizedNamed}: the repository must be lower
    case, a first component with a dot or colon or C{localhost} is a
    registry, the digest must be a known algorithm's).
    """
    name = image.partition("@")[0]
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name = name[:colon]
    first, slash, rest = name.partition("/")
    is_domain = bool(slash) and (
        any(character in first for character in ".:") or first == "localhost" or first.lower() != first
    )
    remote = rest if is_domain else name
    if remote.lower() != remote or re.fullmatch(r"[a-f0-9]{64}", image):
        return ""
    match = _REFERENCE.fullmatch(image)
    if match is None or len(match.group(1)) > 255:
        return ""
    tag, digest = match.group(2), match.group(3)
    if digest:
        algorithm, _, hex_digits = digest.partition(":")
        if _DIGEST_LENGTHS.get(algorithm) != len(hex_digits) or hex_digits.lower() != hex_digits:
            return ""
    if tag:
        return tag
    return "" if digest else "latest"


def _pull_policy(image: Any) -> str:
    return _PULL_ALWAYS if _image_tag(str(image or "")) == "latest" else _PULL_IF_NOT_PRESENT


def _container(obj: dict) -> None:
    # SetDefaults_Container.
    if _empty(obj.get("imagePullPolicy")):
        obj["imagePullPolicy"] = _pull_policy(obj.get("image"))
    if _empty(obj.get("terminationMessagePath")):
        obj["terminationMessagePath"] = "/dev/termination-log"
    if _empty(obj.get("terminationMessagePolicy")):
        obj["terminationMessagePolicy"] = "File"


def _pod_spec(obj: dict) -> None:
    # SetDefaults_PodSpec.
    if _empty(obj.get("dnsPolicy")):
        obj["dnsPolicy"] = "ClusterFirst"
    if _empty(obj.get("restartPolicy")):
        obj["restartPolicy"] = "Always"
    if obj.get("securityContext") is None:
        obj["securityContext"] = {}
    if obj.get("terminationGracePeriodSeconds") is None:
        obj["terminationGracePeriodSeconds"] = 30
    if _empty(obj.get("schedulerName")):
        obj["schedulerName"] = "default-scheduler"
    # The internal version has no serviceAccount: it is serviceAccountName,
    # which the old field fills in when empty.
    if _empty(obj.get("serviceAccountName")) and not _empty(obj.get("serviceAccount")):
        obj["serviceAccountName"] = obj["serviceAccount"]
    if _empty(obj.get("serviceAccountName")):
        obj.pop("serviceAccount", None)
    else:
        obj["serviceAccount"] = obj["serviceAccountName"]


def _pod(obj: dict) -> None:
    # SetDefaults_Pod, and the Pod conversion's grace period floor.
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    spec = dict(spec)
    obj["spec"] = spec
    for field in ("containers", "initContainers"):
        for container in _items(spec, field):
            if not isinstance(container, dict):
                continue
            resources = container.get("resources")
            limits = resources.get("limits") if isinstance(resources, dict) else None
            if not isinstance(limits, dict):
                continue
            resources = dict(resources)
            requests = dict(resources.get("requests") or {})
            for key, value in limits.items():
                requests.setdefault(key, value)
            resources["requests"] = requests
            container["resources"] = resources
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for field in ("containers", "initContainers"):
            for container in _items(spec, field):
                if not isinstance(container, dict):
                    continue
                for port in _items(container, "ports"):
                    if isinstance(port, dict) and _empty(port.get("hostPort")):
                        port["hostPort"] = port.get("containerPort", 0)
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and not isinstance(grace, bool) and grace < 0:
        spec["terminationGracePeriodSeconds"] = 1


def _pod_status(obj: dict) -> None:
    # The internal PodStatus keeps only podIPs; podIP is their first, and
    # wins over them when both are given and differ.
    pod_ip = obj.get("podIP")
    pod_ips = obj.get("podIPs")
    if pod_ip:
        if not pod_ips or not isinstance(pod_ips[0], dict) or pod_ips[0].get("ip") != pod_ip:
            obj["podIPs"] = [{"ip": pod_ip}]
    elif isinstance(pod_ips, list) and pod_ips and isinstance(pod_ips[0], dict):
        obj["podIP"] = pod_ips[0].get("ip")


def _node_spec(obj: dict) -> None:
    # The same for a Node's podCIDR and podCIDRs.
    cidr = obj.get("podCIDR")
    cidrs = obj.get("podCIDRs")
    if cidr:
        if not cidrs or cidrs[0] != cidr:
            obj["podCIDRs"] = [cidr]
    elif isinstance(cidrs, list) and cidrs:
        obj["podCIDR"] = cidrs[0]


def _volume(obj: dict) -> None:
    # SetDefaults_Volume: a volume without a source is an emptyDir; an image
    # volume pulls as a container image would (ImageVolume, on in 1.35).
    sources = _plan("core/v1.VolumeSource").by_name
    if all(obj.get(name) is None for name in sources):
        obj["emptyDir"] = {}
    image = obj.get("image")
    if isinstance(image, dict) and _empty(image.get("pullPolicy")):
        image = dict(image)
        image["pullPolicy"] = _pull_policy(image.get("reference"))
        obj["image"] = image


_default_mode = _member_defaults(("defaultMode", 0o644, True))
_host_path = _member_defaults(("type", "", True))
_token_projection = _member_defaults(("expirationSeconds", 3600, True))
_field_selector = _member_defaults(("apiVersion", "v1", False))
_probe = _member_defaults(
    ("timeoutSeconds", 1, False),
    ("periodSeconds", 10, False),
    ("successThreshold", 1, False),
    ("failureThreshold", 3, False),
)
_http_get = _member_defaults(("path", "/", False), ("scheme", "HTTP", False))


def _service(obj: dict) -> None:
    # SetDefaults_Service.
    spec = _child(obj, "spec")
    if _empty(spec.get("sessionAffinity")):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        client_ip = config.get("clientIP") if isinstance(config, dict) else None
        if not isinstance(client_ip, dict) or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    if _empty(spec.get("type")):
        spec["type"] = "ClusterIP"
    service_type = spec["type"]
    for port in _items(spec, "ports"):
        if not isinstance(port, dict):
            continue
        if _empty(port.get("protocol")):
            port["protocol"] = "TCP"
        target = port.get("targetPort")
        if target is None or target == 0 or target == "":
            port["targetPort"] = port.get("port", 0)
    accessible = service_type in ("LoadBalancer", "NodePort") or (
        service_type == "ClusterIP" and bool(spec.get("externalIPs"))
    )
    if accessible and _empty(spec.get("externalTrafficPolicy")):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and service_type in (
        "NodePort",
        "LoadBalancer",
        "ClusterIP",
    ):
        spec["internalTrafficPolicy"] = "Cluster"
    if service_type == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        status = obj.get("status")
        balancer = status.get("loadBalancer") if isinstance(status, dict) else None
        if isinstance(balancer, dict) and isinstance(balancer.get("ingress"), list):
            status = _child(obj, "status")
            balancer = _child(status, "loadBalancer")
            for ingress in _items(balancer, "ingress"):
                if isinstance(ingress, dict) and ingress.get("ip") and ingress.get("ipMode") is None:
                    ingress["ipMode"] = "VIP"


def _secret(obj: dict) -> None:
    # SetDefaults_Secret; the internal Secret has no stringData: it is
    # merged into data.
    if _empty(obj.get("type")):
        obj["type"] = "Opaque"
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = dict(obj.get("data") or {})
        for key, value in string_data.items():
            if value is None:
                value = ""
            if isinstance(value, str):
                data[key] = base64.b64encode(value.encode("utf-8")).decode("ascii")
        obj["data"] = data


def _namespace(obj: dict) -> None:
    # SetDefaults_Namespace: a namespace is labelled with its name.
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if name:
        metadata = dict(metadata)
        labels = dict(metadata.get("labels") or {})
        labels["kubernetes.io/metadata.name"] = name
        metadata["labels"] = labels
        obj["metadata"] = metadata


_namespace_status = _member_defaults(("phase", "Active", False))


def _node_status(obj: dict) -> None:
    if obj.get("allocatable") is None and obj.get("capacity") is not None:
        obj["allocatable"] = obj["capacity"]


def _persistent_volume(obj: dict) -> None:
    status = _child(obj, "status")
    if _empty(status.get("phase")):
        status["phase"] = "Pending"
    spec = _child(obj, "spec")
    if _empty(spec.get("persistentVolumeReclaimPolicy")):
        spec["persistentVolumeReclaimPolicy"] = "Retain"
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"


def _persistent_volume_claim(obj: dict) -> None:
    status = _child(obj, "status")
    if _empty(status.get("phase")):
        status["phase"] = "Pending"


_persistent_volume_claim_spec = _member_defaults(("volumeMode", "Filesystem", True))


def _limit_range_item(obj: dict) -> None:
    # SetDefaults_LimitRangeItem: container limits default to max, default
    # requests to the default limits, then to min.
    if obj.get("type") != "Container":
        return
    default = dict(obj.get("default") or {})
    request = dict(obj.get("defaultRequest") or {})
    for key, value in (obj.get("max") or {}).items():
        default.setdefault(key, value)
    for key, value in default.items():
        request.setdefault(key, value)
    for key, value in (obj.get("min") or {}).items():
        request.setdefault(key, value)
    obj["default"] = default
    obj["defaultRequest"] = request


def _replication_controller(obj: dict) -> None:
    # SetDefaults_ReplicationController: selector and labels from the
    # template's labels.
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    labels = (template.get("metadata") or {}).get("labels") if isinstance(template, dict) else None
    if labels is None:
        return
    spec = _child(obj, "spec")
    if not spec.get("selector"):
        spec["selector"] = labels
    if not (obj.get("metadata") or {}).get("labels"):
        _child(obj, "metadata")["labels"] = labels


# -- apps/v1 ---------------------------------------------------------------------------


def _deployment(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _child(spec, "strategy")
    if _empty(strategy.get("type")):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = "25%"
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600


def _daemon_set(obj: dict) -> None:
    spec = _child(obj, "spec")
    strategy = _child(spec, "updateStrategy")
    if _empty(strategy.get("type")):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10


def _stateful_set(obj: dict) -> None:
    spec = _child(obj, "spec")
    if _empty(spec.get("podManagementPolicy")):
        spec["podManagementPolicy"] = "OrderedReady"
    strategy = _child(spec, "updateStrategy")
    if _empty(strategy.get("type")):
        strategy["type"] = "RollingUpdate"
        if strategy.get("rollingUpdate") is None:
            strategy["rollingUpdate"] = {}
    if strategy["type"] == "RollingUpdate" and isinstance(strategy.get("rollingUpdate"), dict):
        rolling = _child(strategy, "rollingUpdate")
        if rolling.get("partition") is None:
            rolling["partition"] = 0
        # maxUnavailable is defaulted only with MaxUnavailableStatefulSet,
        # off in 1.35.
    policy = _child(spec, "persistentVolumeClaimRetentionPolicy")
    for name in ("whenDeleted", "whenScaled"):
        if _empty(policy.get(name)):
            policy[name] = "Retain"
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    # The conversion back from the internal version names the templates'
    # kind (as the reflective conversion before 1.17 did).
    templates = _items(spec, "volumeClaimTemplates")
    for index, template in enumerate(templates):
        if template is None:
            template = templates[index] = {}
        if isinstance(template, dict):
            template["apiVersion"] = "v1"
            template["kind"] = "PersistentVolumeClaim"


def _replica_set(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1


# -- batch/v1 --------------------------------------------------------------------------


def _job(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    template = spec.get("template")
    labels = (template.get("metadata") or {}).get("labels") if isinstance(template, dict) else None
    if labels is not None and not (obj.get("metadata") or {}).get("labels"):
        _child(obj, "metadata")["labels"] = labels
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = (
            "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed"
        )
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False


def _cron_job(obj: dict) -> None:
    spec = _child(obj, "spec")
    if _empty(spec.get("concurrencyPolicy")):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1


_pod_failure_pattern = _member_defaults(("status", "True", False))


# -- other groups ------------------------------------------------------------------------


def _network_policy(obj: dict) -> None:
    spec = _child(obj, "spec")
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


_network_policy_port = _member_defaults(("protocol", "TCP", True))


def _ingress_class(obj: dict) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("parameters"), dict):
        spec = _child(obj, "spec")
        parameters = _child(spec, "parameters")
        if parameters.get("scope") is None:
            parameters["scope"] = "Cluster"


_priority_class = _member_defaults(("preemptionPolicy", "PreemptLowerPriority", True))
_storage_class = _member_defaults(
    ("reclaimPolicy", "Delete", True), ("volumeBindingMode", "Immediate", True)
)


def _csi_driver(obj: dict) -> None:
    spec = _child(obj, "spec")
    for name, value in (
        ("attachRequired", True),
        ("podInfoOnMount", False),
        ("storageCapacity", False),
        ("fsGroupPolicy", "ReadWriteOnceWithFSType"),
    ):
        if spec.get(name) is None:
            spec[name] = value
    if not spec.get("volumeLifecycleModes"):
        spec["volumeLifecycleModes"] = ["Persistent"]
    for name in ("requiresRepublish", "seLinuxMount"):
        # seLinuxMount: SELinuxMountReadWriteOncePod is on.
        if spec.get(name) is None:
            spec[name] = False


def _role_binding(obj: dict) -> None:
    role_ref = _child(obj, "roleRef")
    if _empty(role_ref.get("apiGroup")):
        role_ref["apiGroup"] = "rbac.authorization.k8s.io"


def _subject(obj: dict) -> None:
    if _empty(obj.get("apiGroup")) and obj.get("kind") in ("User", "Group"):
        obj["apiGroup"] = "rbac.authorization.k8s.io"


_WEBHOOK_DEFAULTS = (
    ("failurePolicy", "Fail", True),
    ("matchPolicy", "Equivalent", True),
    ("namespaceSelector", {}, True),
    ("objectSelector", {}, True),
    ("timeoutSeconds", 10, True),
)
_validating_webhook = _member_defaults(*_WEBHOOK_DEFAULTS)
_mutating_webhook = _member_defaults(*_WEBHOOK_DEFAULTS, ("reinvocationPolicy", "Never", True))
_webhook_rule = _member_defaults(("scope", "*", True))
_webhook_service = _member_defaults(("port", 443, True))
_policy_spec = _member_defaults(("failurePolicy", "Fail", True))
_match_resources = _member_defaults(
    ("matchPolicy", "Equivalent", True),
    ("namespaceSelector", {}, True),
    ("objectSelector", {}, True),
)


def _hpa_v1(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    # The conversion through the internal version gives a v1 autoscaler
    # without a CPU target the default one (80%).
    if spec.get("targetCPUUtilizationPercentage") is None:
        spec["targetCPUUtilizationPercentage"] = 80


def _scaling_rules(rules: Any, defaults: dict) -> dict:
    # copyHPAScalingRules: what the rules set, over the defaults.
    result = dict(defaults)
    if isinstance(rules, dict):
        for name in ("selectPolicy", "stabilizationWindowSeconds", "policies", "tolerance"):
            if rules.get(name) is not None:
                result[name] = rules[name]
    return result


_SCALE_UP_RULES = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
_SCALE_DOWN_RULES = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def _hpa_v2(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
            }
        ]
    if isinstance(spec.get("behavior"), dict):
        behavior = _child(spec, "behavior")
        behavior["scaleUp"] = _scaling_rules(behavior.get("scaleUp"), _SCALE_UP_RULES)
        behavior["scaleDown"] = _scaling_rules(behavior.get("scaleDown"), _SCALE_DOWN_RULES)


_endpoint_slice_port = _member_defaults(("name", "", True), ("protocol", "TCP", True))


# The SetDefaults_* functions (and conversion round-trip effects) by the
# message they default, as the zz_generated.defaults.go of each group
# applies them. Types no generated walk reaches are left out.
_DEFAULTERS: dict[str, Defaulter] = {
    "core/v1.Pod": _pod,
    "core/v1.PodSpec": _pod_spec,
    "core/v1.PodStatus": _pod_status,
    "core/v1.Container": _container,
    "core/v1.EphemeralContainer": _container,
    "core/v1.Volume": _volume,
    "core/v1.HostPathVolumeSource": _host_path,
    "core/v1.SecretVolumeSource": _default_mode,
    "core/v1.ConfigMapVolumeSource": _default_mode,
    "core/v1.DownwardAPIVolumeSource": _default_mode,
    "core/v1.ProjectedVolumeSource": _default_mode,
    "core/v1.ServiceAccountTokenProjection": _token_projection,
    "core/v1.ObjectFieldSelector": _field_selector,
    "core/v1.Probe": _probe,
    "core/v1.HTTPGetAction": _http_get,
    "core/v1.Service": _service,
    "core/v1.Secret": _secret,
    "core/v1.Namespace": _namespace,
    "core/v1.NamespaceStatus": _namespace_status,
    "core/v1.NodeSpec": _node_spec,
    "core/v1.NodeStatus": _node_status,
    "core/v1.PersistentVolume": _persistent_volume,
    "core/v1.PersistentVolumeClaim": _persistent_volume_claim,
    "core/v1.PersistentVolumeClaimSpec": _persistent_volume_claim_spec,
    "core/v1.LimitRangeItem": _limit_range_item,
    "core/v1.ReplicationController": _replication_controller,
    "apps/v1.Deployment": _deployment,
    "apps/v1.DaemonSet": _daemon_set,
    "apps/v1.StatefulSet": _stateful_set,
    "apps/v1.ReplicaSet": _replica_set,
    "batch/v1.Job": _job,
    "batch/v1.CronJob": _cron_job,
    "batch/v1.PodFailurePolicyOnPodConditionsPattern": _pod_failure_pattern,
    "networking/v1.NetworkPolicy": _network_policy,
    "networking/v1.NetworkPolicyPort": _network_policy_port,
    "networking/v1.IngressClass": _ingress_class,
    "scheduling/v1.PriorityClass": _priority_class,
    "storage/v1.StorageClass": _storage_class,
    "storage/v1.CSIDriver": _csi_driver,
    "rbac/v1.ClusterRoleBinding": _role_binding,
    "rbac/v1.RoleBinding": _role_binding,
    "rbac/v1.Subject": _subject,
    "admissionregistration/v1.ValidatingWebhook": _validating_webhook,
    "admissionregistration/v1.MutatingWebhook": _mutating_webhook,
    "admissionregistration/v1.Rule": _webhook_rule,
    "admissionregistration/v1.ServiceReference": _webhook_service,
    "admissionregistration/v1.ValidatingAdmissionPolicySpec": _policy_spec,
    "admissionregistration/v1.MatchResources": _match_resources,
    "discovery/v1.EndpointPort": _endpoint_slice_port,
    "autoscaling/v1.HorizontalPodAutoscaler": _hpa_v1,
    "autoscaling/v2.HorizontalPodAutoscaler": _hpa_v2,
}

# The +default markers of k8s.io/api's types: (member, value, pointer).
_FIELD_DEFAULTS: dict[str, tuple[tuple[str, Any, bool], ...]] = {
    "core/v1.RBDVolumeSource": (
        ("pool", "rbd", False),
        ("user", "admin", False),
        ("keyring", "/etc/ceph/keyring", False),
    ),
    "core/v1.RBDPersistentVolumeSource": (
        ("pool", "rbd", False),
        ("user", "admin", False),
        ("keyring", "/etc/ceph/keyring", False),
    ),
    "core/v1.ISCSIVolumeSource": (("iscsiInterface", "default", False),),
    "core/v1.ISCSIPersistentVolumeSource": (("iscsiInterface", "default", False),),
    "core/v1.AzureDiskVolumeSource": (
        ("cachingMode", "ReadWrite", True),
        ("fsType", "ext4", True),
        ("readOnly", False, True),
        ("kind", "Shared", True),
    ),
    "core/v1.ScaleIOVolumeSource": (
        ("storageMode", "ThinProvisioned", False),
        ("fsType", "xfs", False),
    ),
    "core/v1.ScaleIOPersistentVolumeSource": (
        ("storageMode", "ThinProvisioned", False),
        ("fsType", "xfs", False),
    ),
    "core/v1.ContainerPort": (("protocol", "TCP", False),),
    "core/v1.ServicePort": (("protocol", "TCP", False),),
    "core/v1.EndpointPort": (("protocol", "TCP", False),),
    "core/v1.FileKeySelector": (("optional", False, True),),
    "core/v1.GRPCAction": (("service", "", True),),
    "core/v1.ReplicationControllerSpec": (("replicas", 1, True),),
    "resource/v1.DeviceToleration": (("operator", "Equal", False),),
}


# -- Service IPs and node ports ------------------------------------------------------

#: k3s's service CIDR and node port range (single-stack IPv4).
SERVICE_CIDR = ipaddress.ip_network("10.43.0.0/16")
NODE_PORTS = range(30000, 32768)

_SERVICES_KIND = ("", "Service")


def _range_offset(size: int, low: int, high: int, step: int) -> int:
    """C{calculateRangeOffset}: the size of the static (lower) band."""
    if size <= low:
        return 0
    return min(max(low, size // step), high)


def _spread(seed: str, size: int) -> int:
    # Where a deterministic search starts: the apiserver picks at random;
    # here the same service always gets the same address, unless taken.
    return int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:8], "big") % size


def _allocate_next(candidates: tuple[range, range], used: set, seed: str) -> Optional[int]:
    """
    The first free value from a point of the dynamic (upper) band, then
    the static one, as the allocators search.
    """
    for band in candidates:
        if not band:
            continue
        start = _spread(seed, len(band))
        for step in range(len(band)):
            value = band[(start + step) % len(band)]
            if value not in used:
                return value
    return None


def _ip_bands() -> tuple[range, range]:
    first = int(SERVICE_CIDR.network_address) + 1
    last = int(SERVICE_CIDR.broadcast_address) - 1
    offset = _range_offset(last - first + 1, 16, 256, 16)
    return range(first + offset, last + 1), range(first, first + offset)


def _port_bands() -> tuple[range, range]:
    offset = _range_offset(len(NODE_PORTS), 16, 128, 32)
    return (
        range(NODE_PORTS.start + offset, NODE_PORTS.stop),
        range(NODE_PORTS.start, NODE_PORTS.start + offset),
    )


def _service_invalid(name: str, path: str, value: Any, message: str) -> APIError:
    return new_invalid(_SERVICES_KIND, name, [FieldError.invalid(path, value, message)])


def _needs_cluster_ip(spec: Mapping) -> bool:
    return spec.get("type") != "ExternalName"


def _needs_node_ports(spec: Mapping) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def _needs_health_check_port(spec: Mapping) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def allocate_service(
    service: Mapping,
    old: Optional[Mapping],
    used_ips: set,
    used_ports: set,
    dry_run: bool = False,
) -> dict:
    """
    What the Service registry does before it validates and stores a
    Service (C{beginCreate}/C{beginUpdate}): keep the values allocated
    before that the new object leaves out (C{patchAllocatedValues}), keep
    C{clusterIP} and C{clusterIPs} in step, set the IP family fields for a
    single-stack IPv4 cluster, allocate a cluster IP from L{SERVICE_CIDR}
    and node ports from L{NODE_PORTS}.

    @param service: the Service after defaulting and admission.
    @param old: the stored Service for an update.
    @param used_ips: the cluster IPs (as ints) other Services hold.
    @param used_ports: the node ports other Services hold.
    @return: the Service to validate and store.
    @raise APIError: Invalid, for what the allocators refuse.
    """
    service = dict(service)
    spec = dict(service.get("spec") or {})
    service["spec"] = spec
    old_spec: Mapping = (old or {}).get("spec") or {}
    name = (service.get("metadata") or {}).get("name", "")
    namespace = (service.get("metadata") or {}).get("namespace", "")
    if old is not None:
        _patch_allocated_values(spec, old_spec)
    _normalize_cluster_ips(spec, old_spec if old is not None else None)
    if spec.get("type") != "ExternalName":
        _init_ip_families(name, spec, old_spec if old is not None else None)
        _allocate_cluster_ip(name, namespace, spec, used_ips, dry_run)
    if _needs_node_ports(spec):
        _allocate_node_ports(name, namespace, spec, used_ports)
    if _needs_health_check_port(spec) and not spec.get("healthCheckNodePort"):
        port = _allocate_next(_port_bands(), used_ports, f"{namespace}/{name}/health")
        if port is None:
            raise new_internal_error("failed to allocate a HealthCheck NodePort 0: range is full")
        spec["healthCheckNodePort"] = port
    return service


def _patch_allocated_values(spec: dict, old_spec: Mapping) -> None:
    # patchAllocatedValues: what was allocated and the client left out.
    if _needs_cluster_ip(old_spec) and _needs_cluster_ip(spec):
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = old_spec["clusterIPs"]
    if _needs_node_ports(old_spec) and _needs_node_ports(spec):
        old_ports = [port for port in old_spec.get("ports") or () if isinstance(port, Mapping)]
        ports = [dict(port) if isinstance(port, Mapping) else port for port in spec.get("ports") or ()]
        used = {port.get("nodePort") for port in old_ports if port.get("nodePort")} & {
            port.get("nodePort") for port in ports if isinstance(port, dict) and port.get("nodePort")
        }
        by_name = {port.get("name", ""): port.get("nodePort") for port in old_ports}
        for port in ports:
            if isinstance(port, dict) and not port.get("nodePort"):
                previous = by_name.get(port.get("name", ""))
                if previous and previous not in used:
                    port["nodePort"] = previous
        spec["ports"] = ports
    if _needs_health_check_port(old_spec) and _needs_health_check_port(spec):
        if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def _normalize_cluster_ips(spec: dict, old_spec: Optional[Mapping]) -> None:
    # normalizeClusterIPs: the singular and plural fields in step.
    cluster_ip = spec.get("clusterIP") or ""
    cluster_ips = spec.get("clusterIPs") or []
    if old_spec is None:
        if cluster_ip and not cluster_ips:
            spec["clusterIPs"] = [cluster_ip]
        return
    old_ip = old_spec.get("clusterIP") or ""
    old_ips = old_spec.get("clusterIPs") or []
    if old_ips and not cluster_ips and old_ip == cluster_ip:
        spec["clusterIPs"] = cluster_ips = list(old_ips)
    if old_ip != cluster_ip:
        same = list(old_ips) == list(cluster_ips)
        if old_ip and not cluster_ip:
            if same:
                spec.pop("clusterIPs", None)
        elif same:
            spec["clusterIPs"] = [cluster_ip]


def _init_ip_families(name: str, spec: dict, old_spec: Optional[Mapping]) -> None:
    """C{initIPFamilyFields} for a cluster with only the IPv4 family."""
    headless = spec.get("clusterIP") == "None" and not spec.get("selector")
    if spec.get("ipFamilyPolicy") is None:
        if old_spec is not None and old_spec.get("ipFamilyPolicy") is not None:
            spec["ipFamilyPolicy"] = old_spec["ipFamilyPolicy"]
        elif headless:
            spec["ipFamilyPolicy"] = "RequireDualStack"
        else:
            spec["ipFamilyPolicy"] = "SingleStack"
    policy = spec["ipFamilyPolicy"]
    cluster_ips = list(spec.get("clusterIPs") or [])
    families = list(spec.get("ipFamilies") or [])
    errors = []
    if policy == "SingleStack":
        if old_spec is not None:
            if list(old_spec.get("clusterIPs") or []) == cluster_ips and len(cluster_ips) > 1:
                cluster_ips = cluster_ips[:1]
            if list(old_spec.get("ipFamilies") or []) == families and len(families) > 1:
                families = families[:1]
        if len(cluster_ips) == 2:
            errors.append(
                FieldError.invalid(
                    "spec.ipFamilyPolicy",
                    policy,
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs "
                    "are specified",
                )
            )
        if len(families) == 2:
            errors.append(
                FieldError.invalid(
                    "spec.ipFamilyPolicy",
                    policy,
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families "
                    "are specified",
                )
            )
    for index, address in enumerate(cluster_ips):
        if address == "None":
            break
        family = _family_of(address)
        if index >= len(families):
            if family != "IPv4":
                errors.append(
                    FieldError.invalid(
                        f"spec.clusterIPs[{index}]",
                        cluster_ips,
                        f"{family} is not configured on this cluster",
                    )
                )
            else:
                families.append(family)
    if errors:
        raise new_invalid(_SERVICES_KIND, name, errors)
    if headless:
        if not families:
            families = ["IPv4"]
        if len(families) < 2 and policy != "SingleStack":
            families.append("IPv6" if families[0] == "IPv4" else "IPv4")
    else:
        if policy == "RequireDualStack":
            errors.append(
                FieldError.invalid(
                    "spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services"
                )
            )
        errors.extend(
            FieldError.invalid(f"spec.ipFamilies[{index}]", family, "not configured on this cluster")
            for index, family in enumerate(families)
            if family != "IPv4"
        )
        if errors:
            raise new_invalid(_SERVICES_KIND, name, errors)
        if not families:
            families = ["IPv4"]
    spec["ipFamilies"] = families
    if cluster_ips or "clusterIPs" in spec:
        spec["clusterIPs"] = cluster_ips


def _family_of(address: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    except ValueError:
        return "IPv4"


def _allocate_cluster_ip(name: str, namespace: str, spec: dict, used: set, dry_run: bool) -> None:
    """C{allocClusterIPs}: headless Services get none."""
    cluster_ips = list(spec.get("clusterIPs") or [])
    if cluster_ips and cluster_ips[0] == "None":
        return
    if cluster_ips:
        address = cluster_ips[0]
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise new_internal_error(f"failed to parse service IP {go_quote(address)}") from None
        value = int(parsed)
        first, last = int(SERVICE_CIDR.network_address) + 1, int(SERVICE_CIDR.broadcast_address) - 1
        if parsed.version != 4 or not first <= value <= last:
            problem = (
                f"the provided IP ({address}) is not in the valid range. The range of valid IPs "
                f"is {SERVICE_CIDR}"
            )
        elif value in used:
            problem = "provided IP is already allocated"
        else:
            problem = ""
        if problem:
            raise _service_invalid(
                name, "spec.clusterIPs", cluster_ips, f"failed to allocate IP {address}: {problem}"
            )
        return
    if dry_run:
        # A dry run does not search: it answers the range's own address.
        address = str(SERVICE_CIDR.network_address)
    else:
        value = _allocate_next(_ip_bands(), used, f"{namespace}/{name}")
        if value is None:
            raise new_internal_error("failed to allocate a serviceIP: range is full")
        address = str(ipaddress.ip_address(value))
    spec["clusterIPs"] = [address]
    spec["clusterIP"] = address


def _allocate_node_ports(name: str, namespace: str, spec: dict, used: set) -> None:
    """C{initNodePorts}: one node port per service port number."""
    allocate = spec.get("type") == "NodePort" or (
        spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False
    )
    ports = [dict(port) if isinstance(port, Mapping) else port for port in spec.get("ports") or ()]
    by_port: dict[Any, int] = {}
    taken = set(used)
    for index, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        requested = port.get("nodePort") or 0
        if not requested and not allocate:
            continue
        assigned = by_port.get(port.get("port"))
        if assigned is None:
            # A port number given a node port elsewhere in the list shares it.
            wanted = requested or next(
                (
                    other.get("nodePort")
                    for other in ports[index:]
                    if isinstance(other, dict) and other.get("port") == port.get("port") and other.get("nodePort")
                ),
                0,
            )
            if wanted:
                _claim_node_port(name, index, wanted, taken)
                port["nodePort"] = wanted
            else:
                number = _allocate_next(_port_bands(), taken, f"{namespace}/{name}/{index}")
                if number is None:
                    raise new_internal_error("failed to allocate a nodePort: range is full")
                port["nodePort"] = number
            taken.add(port["nodePort"])
            by_port[port.get("port")] = port["nodePort"]
        elif requested != assigned:
            if not requested:
                port["nodePort"] = assigned
            else:
                _claim_node_port(name, index, requested, taken)
                taken.add(requested)
    spec["ports"] = ports


def _claim_node_port(name: str, index: int, port: Any, taken: set) -> None:
    if not isinstance(port, int) or port not in NODE_PORTS:
        problem = (
            "provided port is not in the valid range. The range of valid ports is "
            f"{NODE_PORTS.start}-{NODE_PORTS.stop - 1}"
        )
    elif port in taken:
        problem = "provided port is already allocated"
    else:
        return
    raise _service_invalid(name, f"spec.ports[{index}].nodePort", port, problem)
