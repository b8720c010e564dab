# -*- test-case-name: tests.test_kube_protobuf -*-
"""
Decode Kubernetes protobuf request bodies into the JSON objects the client
would have sent had it used JSON.

client-go's typed clients send writes of built-in kinds as
C{application/vnd.kubernetes.protobuf}: the magic C{k8s\\x00}, then a
C{runtime.Unknown} whose C{typeMeta} names the kind and whose C{raw} is the
object's own message.  L{decode_object} turns that into exactly what
C{encoding/json} makes of the Go object an apiserver decodes from it: JSON
field names, unset fields omitted or C{null} as the Go struct tags say,
pointer fields present whenever they were set (even to C{false} or C{0}),
custom forms for C{metav1.Time}, C{MicroTime}, C{Duration},
C{resource.Quantity}, C{intstr.IntOrString}, C{runtime.RawExtension} and
C{metav1.FieldsV1}, and C{kind}/C{apiVersion} from the envelope.

The decoder is generic: it knows no Kubernetes type by hand, only the field
tables in L{scaleagent.kube._protofields}, which C{tools/gen_protofields.py}
generates from the C{.proto} files and Go sources of the pinned
C{k8s.io/api} and C{k8s.io/apimachinery}.  Message layouts are compiled into
plans on first use and shared by every simulated cluster.

Malformed bodies raise L{APIError} 400 with the apiserver's decode-error
wording.  Unknown fields are skipped, as Go's generated C{Unmarshal} does.

Where this differs from a real apiserver, knowingly:
  - quantities are checked against ParseQuantity's grammar but passed
    through as sent, not canonicalised (client-go always sends the
    canonical form);
  - a C{RawExtension} or C{FieldsV1} holding anything but JSON (CBOR) is
    rejected, where Go would keep it;
  - times outside the years 1-9999 are rejected;
  - decode errors name fields by their JSON names, where Go names the Go
    struct field.
"""

from __future__ import annotations

import base64
import codecs
import datetime
import json
import math
import re
import struct
from typing import Any, Optional

from scaleagent.kube import _protofields
from scaleagent.kube.errors import APIError, new_bad_request

__all__ = [
    "PROTOBUF_CONTENT_TYPE",
    "PROTOBUF_MAGIC",
    "decode_object",
    "go_duration",
    "is_decodable",
]

PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

#: Every Kubernetes protobuf body starts with these four bytes.
PROTOBUF_MAGIC = b"k8s\x00"

# Wire types.
_VARINT = 0
_FIXED64 = 1
_LENGTH = 2
_START_GROUP = 3
_END_GROUP = 4
_FIXED32 = 5

_UINT64_MASK = (1 << 64) - 1

# What Go's generated code and runtime return for these conditions; the
# apiserver shows these texts in its 400 answers.
_UNEXPECTED_EOF = "unexpected EOF"
_INTEGER_OVERFLOW = "proto: integer overflow"
_NEGATIVE_LENGTH = "proto: negative length found during unmarshaling"


class _DecodeError(Exception):
    """
    A malformed message; its text is the Go error the apiserver would report.
    """


# --- the wire format ----------------------------------------------------------


def _read_varint(data: bytes, position: int, end: int) -> tuple[int, int]:
    """
    Read a base-128 varint as Go's generated code does: at most ten bytes,
    bits above 64 discarded.

    @return: the unsigned value and the position after it.
    """
    result = 0
    shift = 0
    while True:
        if shift >= 64:
            raise _DecodeError(_INTEGER_OVERFLOW)
        if position >= end:
            raise _DecodeError(_UNEXPECTED_EOF)
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _UINT64_MASK, position
        shift += 7


def _read_length(data: bytes, position: int, end: int) -> tuple[int, int]:
    """
    Read the length prefix of a length-delimited field.

    @return: the start and end of the field's bytes.
    """
    length, position = _read_varint(data, position, end)
    # Go reads the length into an int: the top bit makes it negative.
    if length >= 1 << 63:
        raise _DecodeError(_NEGATIVE_LENGTH)
    stop = position + length
    if stop > end:
        raise _DecodeError(_UNEXPECTED_EOF)
    return position, stop


def _skip_field(data: bytes, position: int, end: int, wire_type: int) -> int:
    """
    Skip the value of a field this decoder does not know, including (long
    obsolete) groups, as the generated C{skipGenerated} does.

    @return: the position after the value.
    """
    depth = 0
    while True:
        if wire_type == _VARINT:
            _, position = _read_varint(data, position, end)
        elif wire_type == _FIXED64:
            position += 8
        elif wire_type == _LENGTH:
            _, position = _read_length(data, position, end)
        elif wire_type == _START_GROUP:
            depth += 1
        elif wire_type == _END_GROUP:
            if depth == 0:
                raise _DecodeError("proto: unexpected end of group")
            depth -= 1
        elif wire_type == _FIXED32:
            position += 4
        else:
            raise _DecodeError(f"proto: illegal wireType {wire_type}")
        if position > end:
            raise _DecodeError(_UNEXPECTED_EOF)
        if depth == 0:
            return position
        tag, position = _read_varint(data, position, end)
        wire_type = tag & 7


def _replace_per_byte(error: UnicodeDecodeError) -> tuple[str, int]:
    return "\ufffd" * (error.end - error.start), error.end


# Go keeps invalid UTF-8 in a string; encoding/json then writes one U+FFFD
# per invalid byte, where Python's "replace" writes one per invalid sequence.
_GO_REPLACE = "scaleagent.kube.protobuf.replace_per_byte"
codecs.register_error(_GO_REPLACE, _replace_per_byte)


def _int32(value: int) -> int:
    # Go accumulates int32 fields in an int32: keep the low 32 bits, signed.
    return ((value & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def _int64(value: int) -> int:
    return ((value & _UINT64_MASK) ^ (1 << 63)) - (1 << 63)


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _finite(value: float) -> float:
    # encoding/json refuses NaN and infinities.
    if math.isnan(value) or math.isinf(value):
        raise _DecodeError(f"json: unsupported value: {value}")
    return value


_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")

#: scalar proto type -> (wire type, conversion of the raw varint/fixed value)
_SCALARS: dict[str, tuple[int, Any]] = {
    "bool": (_VARINT, bool),
    "int32": (_VARINT, _int32),
    "int64": (_VARINT, _int64),
    "uint32": (_VARINT, lambda value: value & 0xFFFFFFFF),
    "uint64": (_VARINT, int),
    "sint32": (_VARINT, lambda value: _int32(_zigzag(value & 0xFFFFFFFF))),
    "sint64": (_VARINT, _zigzag),
    "fixed32": (_FIXED32, int),
    "sfixed32": (_FIXED32, _int32),
    "float": (_FIXED32, lambda value: _finite(_FLOAT.unpack(value.to_bytes(4, "little"))[0])),
    "fixed64": (_FIXED64, int),
    "sfixed64": (_FIXED64, _int64),
    "double": (_FIXED64, lambda value: _finite(_DOUBLE.unpack(value.to_bytes(8, "little"))[0])),
}

_ZERO_SCALARS: dict[str, Any] = {name: 0 for name in _SCALARS}
_ZERO_SCALARS.update({"bool": False, "float": 0.0, "double": 0.0, "string": ""})


def _read_scalar(data: bytes, position: int, end: int, wire_type: int) -> tuple[int, int]:
    """
    Read the raw value of a varint or fixed-width field.
    """
    if wire_type == _VARINT:
        return _read_varint(data, position, end)
    width = 8 if wire_type == _FIXED64 else 4
    stop = position + width
    if stop > end:
        raise _DecodeError(_UNEXPECTED_EOF)
    return int.from_bytes(data[position:stop], "little"), stop


# --- plans --------------------------------------------------------------------

# Field kinds.
_SCALAR = 0
_STRING = 1
_BYTES = 2
_MESSAGE = 3
_MAP = 4

#: What an unset field contributes to its object when that is not a plain
#: value: nothing, or a fresh copy of its message's zero value.
_OMIT = object()
_ZERO = object()
_UNRESOLVED = object()


class _Field:
    """
    One field of a message plan: how to read it and how it shows in JSON.

    @ivar absent: the JSON of the field when the wire does not carry it:
        L{_OMIT}, L{_ZERO}, or a plain immutable value (C{None}, C{""},
        C{0}, C{False}).
    """

    __slots__ = (
        "index",
        "number",
        "name",
        "kind",
        "scalar",
        "convert",
        "wire_type",
        "message",
        "repeated",
        "pointer",
        "omitempty",
        "omitzero",
        "inline",
        "key",
        "value",
        "absent",
        "_plan",
    )

    def __init__(self, index: int, number: int, name: str, type_name: str, flags: str) -> None:
        self.index = index
        self.number = number
        self.name = name
        self.repeated = "r" in flags
        self.pointer = "p" in flags
        self.omitempty = "o" in flags
        self.omitzero = "z" in flags
        self.inline = "i" in flags
        self.scalar: Optional[str] = None
        self.convert: Any = None
        self.message: Optional[str] = None
        self.key: Optional[_Field] = None
        self.value: Optional[_Field] = None
        self._plan: Optional[_Plan] = None
        if type_name.startswith("map<"):
            key_type, value_type = type_name[4:-1].split(",")
            self.kind = _MAP
            self.wire_type = _LENGTH
            self.key = _Field(0, 1, "key", key_type, "")
            self.value = _Field(1, 2, "value", value_type, "")
        elif type_name == "string":
            self.kind = _STRING
            self.wire_type = _LENGTH
        elif type_name == "bytes":
            self.kind = _BYTES
            self.wire_type = _LENGTH
        elif type_name in _SCALARS:
            self.kind = _SCALAR
            self.scalar = type_name
            self.wire_type, self.convert = _SCALARS[type_name]
        else:
            self.kind = _MESSAGE
            self.message = type_name
            self.wire_type = _LENGTH
        omitted = self.omitempty or self.omitzero
        if self.kind == _MESSAGE and not self.repeated:
            # Depends on the message's form: worked out on first use, since
            # compiling every referenced plan up front would compile them all.
            self.absent = _UNRESOLVED
        elif self.pointer or self.repeated or self.kind in (_MAP, _BYTES):
            # nil pointers, slices and maps: null unless omitted.
            self.absent = _OMIT if omitted else None
        else:
            self.absent = _OMIT if omitted else _zero_json(self)

    @property
    def plan(self) -> _Plan:
        plan = self._plan
        if plan is None:
            plan = self._plan = _plan(self.message)
        return plan

    def resolve_absent(self) -> Any:
        """
        Work out L{absent} for a single message field.
        """
        plan = self.plan
        if self.pointer or plan.form == "array":
            absent = _OMIT if self.omitempty or self.omitzero else None
        elif plan.form == "object":
            # A struct value is never omitted by omitempty; the generator
            # allows omitzero only on Time and MicroTime.
            absent = _ZERO
        else:
            absent = plan.zero()
            if absent is None and self.omitzero:
                absent = _OMIT
        self.absent = absent
        return absent


class _Plan:
    """
    A message compiled from its table entry.

    @ivar form: C{"object"}, C{"array"} or a custom JSON form.
    @ivar fields: in Go declaration order.
    @ivar by_number: field number -> field, for the fields on the wire.
    """

    __slots__ = ("name", "form", "fields", "by_number", "_zero")

    def __init__(self, name: str, form: str, table: tuple) -> None:
        self.name = name
        self.form = form
        self.fields = [
            _Field(index, number, json_name, type_name, flags)
            for index, (number, json_name, type_name, flags) in enumerate(table)
        ]
        self.by_number = {field.number: field for field in self.fields if field.number}
        self._zero: Any = _UNRESOLVED

    def zero(self) -> Any:
        """
        The JSON of the message's Go zero value, cached: callers that put it
        into a result must copy it with L{_copy_json}.
        """
        zero = self._zero
        if zero is _UNRESOLVED:
            zero = self._zero = _render(self, b"", 0, 0)
        return zero


_plans: dict[str, _Plan] = {}


def _plan(name: str) -> _Plan:
    plan = _plans.get(name)
    if plan is None:
        form, table = _protofields.MESSAGES[name]
        plan = _plans[name] = _Plan(name, form, table)
    return plan


def _copy_json(value: Any) -> Any:
    if type(value) is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy_json(item) for item in value]
    return value


def _zero_json(field: _Field) -> Any:
    """
    The JSON of a non-pointer scalar, string or bytes value left unset.
    """
    if field.kind == _STRING or field.kind == _BYTES:
        return ""
    return _ZERO_SCALARS[field.scalar]


# --- reading messages ---------------------------------------------------------


def _read_message(plan: _Plan, data: bytes, start: int, end: int) -> list:
    """
    Read the fields of one message into a list indexed like C{plan.fields}.

    Scalars, strings and bytes hold their last value; repeated fields a list
    of JSON values; maps a dict of JSON values; single messages the list of
    their byte spans, because proto merges a message field that occurs more
    than once.
    """
    slots: list = [None] * len(plan.fields)
    by_number = plan.by_number
    position = start
    while position < end:
        # Tags and lengths are nearly always one byte: read those inline.
        tag = data[position]
        if tag < 0x80:
            position += 1
        else:
            tag, position = _read_varint(data, position, end)
        wire_type = tag & 7
        number = tag >> 3
        if wire_type == _END_GROUP:
            raise _DecodeError(f"proto: {_short(plan)}: wiretype end group for non-group")
        if number == 0 or number > 0x7FFFFFFF:
            raise _DecodeError(
                f"proto: {_short(plan)}: illegal tag {_int32(number)} (wire type {wire_type})"
            )
        field = by_number.get(number)
        if field is None:
            position = _skip_field(data, position, end, wire_type)
            continue
        kind = field.kind
        if wire_type == _LENGTH and kind != _SCALAR:
            if position >= end:
                raise _DecodeError(_UNEXPECTED_EOF)
            length = data[position]
            if length < 0x80:
                value_start = position + 1
                position = value_start + length
                if position > end:
                    raise _DecodeError(_UNEXPECTED_EOF)
            else:
                value_start, position = _read_length(data, position, end)
            if kind == _STRING:
                value: Any = data[value_start:position].decode("utf-8", _GO_REPLACE)
            elif kind == _MESSAGE:
                if field.repeated:
                    value = _render(field.plan, data, value_start, position)
                else:
                    spans = slots[field.index]
                    if spans is None:
                        slots[field.index] = [(value_start, position)]
                    else:
                        spans.append((value_start, position))
                    continue
            elif kind == _BYTES:
                value = data[value_start:position]
            else:
                entries = slots[field.index]
                if entries is None:
                    entries = slots[field.index] = {}
                key, entry = _read_map_entry(field, data, value_start, position)
                entries[key] = entry
                continue
        elif wire_type == field.wire_type:
            if wire_type == _VARINT:
                raw = data[position] if position < end else 0x80
                if raw < 0x80:
                    position += 1
                else:
                    raw, position = _read_varint(data, position, end)
            else:
                raw, position = _read_scalar(data, position, end, wire_type)
            value = field.convert(raw)
        elif field.repeated and kind == _SCALAR and wire_type == _LENGTH:
            # A packed repeated scalar: all its values in one run.
            value_start, position = _read_length(data, position, end)
            values = slots[field.index]
            if values is None:
                values = slots[field.index] = []
            convert = field.convert
            scalar_wire_type = field.wire_type
            while value_start < position:
                raw, value_start = _read_scalar(data, value_start, position, scalar_wire_type)
                values.append(convert(raw))
            continue
        else:
            raise _DecodeError(f"proto: wrong wireType = {wire_type} for field {field.name}")
        if field.repeated:
            values = slots[field.index]
            if values is None:
                slots[field.index] = [value]
            else:
                values.append(value)
        else:
            slots[field.index] = value
    return slots


def _short(plan: _Plan) -> str:
    return plan.name.rpartition(".")[2]


def _read_map_entry(field: _Field, data: bytes, start: int, end: int) -> tuple[str, Any]:
    """
    Read one C{map<k, v>} entry (a message with key 1 and value 2) into its
    JSON key and value; a missing key or value is its zero value, as in the
    generated code.
    """
    key_field = field.key
    value_field = field.value
    key: Any = None
    value: Any = None
    value_spans: list = []
    position = start
    while position < end:
        tag = data[position]
        if tag < 0x80:
            position += 1
        else:
            tag, position = _read_varint(data, position, end)
        wire_type = tag & 7
        number = tag >> 3
        if wire_type == _END_GROUP or number == 0 or number > 0x7FFFFFFF:
            raise _DecodeError(f"proto: illegal tag {_int32(number)} (wire type {wire_type})")
        if number == 1 or number == 2:
            target = key_field if number == 1 else value_field
            if wire_type != target.wire_type:
                raise _DecodeError(f"proto: wrong wireType = {wire_type} for field {field.name}")
            if target.kind == _SCALAR:
                raw, position = _read_scalar(data, position, end, wire_type)
                decoded: Any = target.convert(raw)
            else:
                length = data[position] if position < end else 0x80
                if length < 0x80:
                    value_start = position + 1
                    position = value_start + length
                    if position > end:
                        raise _DecodeError(_UNEXPECTED_EOF)
                else:
                    value_start, position = _read_length(data, position, end)
                if target.kind == _STRING:
                    decoded = data[value_start:position].decode("utf-8", _GO_REPLACE)
                elif target.kind == _BYTES:
                    decoded = data[value_start:position]
                else:
                    value_spans.append((value_start, position))
                    continue
            if number == 1:
                key = decoded
            else:
                value = decoded
        else:
            position = _skip_field(data, position, end, wire_type)
    if key is None:
        key = _zero_json(key_field)
    if not isinstance(key, str):
        # encoding/json writes integer map keys as strings.
        key = str(key).lower() if isinstance(key, bool) else str(key)
    if value_field.kind == _MESSAGE:
        plan = value_field.plan
        rendered = _render_spans(plan, data, value_spans)
        if plan.form == "array" and rendered is None:
            # The generated code allocates a wrapped slice before reading it,
            # so an entry without items is [] rather than null.
            rendered = []
        return key, rendered
    if value is None:
        return key, _zero_json(value_field)
    if value_field.kind == _BYTES:
        return key, _base64(value)
    return key, value


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


# --- rendering JSON -----------------------------------------------------------


def _render_spans(plan: _Plan, data: bytes, spans: list) -> Any:
    """
    Render a single (non-repeated) message field from the spans of all its
    occurrences: proto merges them, which for Go's generated code is the
    same as reading their concatenation.
    """
    if len(spans) == 1:
        start, end = spans[0]
        return _render(plan, data, start, end)
    joined = b"".join(data[start:end] for start, end in spans)
    return _render(plan, joined, 0, len(joined))


def _render(plan: _Plan, data: bytes, start: int, end: int) -> Any:
    """
    The JSON value of one message.
    """
    form = plan.form
    slots = _read_message(plan, data, start, end)
    if form == "object":
        out: dict = {}
        _render_object(plan, slots, data, out)
        return out
    if form == "array":
        return slots[0] or []
    return _SPECIAL_FORMS[form](slots, start == end)


def _render_object(plan: _Plan, slots: list, data: bytes, out: dict) -> None:
    """
    Write the JSON members of an object message into C{out}, in Go field
    order, following encoding/json's rules for unset and empty values.
    """
    for field in plan.fields:
        value = slots[field.index]
        if value is None:
            absent = field.absent
            if absent is _UNRESOLVED:
                absent = field.resolve_absent()
            if absent is _OMIT:
                continue
            if absent is _ZERO:
                zero = field.plan.zero()
                if field.inline:
                    # An embedded struct: its members are promoted into ours.
                    if zero:
                        out.update(_copy_json(zero))
                    continue
                absent = _copy_json(zero) if zero else {}
            out[field.name] = absent
            continue
        kind = field.kind
        if kind == _MESSAGE and not field.repeated:
            inner = field.plan
            if field.inline:
                if len(value) == 1:
                    start, end = value[0]
                    _render_object(inner, _read_message(inner, data, start, end), data, out)
                else:
                    joined = b"".join(data[start:end] for start, end in value)
                    inner_slots = _read_message(inner, joined, 0, len(joined))
                    _render_object(inner, inner_slots, joined, out)
                continue
            rendered = _render_spans(inner, data, value)
            if rendered is None:
                # Only the zero Time and MicroTime render as null; omitzero
                # omits them unless they are behind a pointer.
                if field.omitzero and not field.pointer:
                    continue
            elif not rendered and field.omitempty and inner.form == "array":
                continue
            out[field.name] = rendered
        elif field.repeated:
            if not value:
                # A packed field without values leaves the slice nil.
                if not (field.omitempty or field.omitzero):
                    out[field.name] = None
                continue
            if kind == _BYTES:
                value = [_base64(item) for item in value]
            out[field.name] = value
        elif kind == _BYTES:
            if field.omitempty and not value:
                continue
            out[field.name] = _base64(value)
        else:
            # Scalars, strings and maps.  Pointers are kept even when zero:
            # that is how JSON tells "set to false" from "unset".
            if not value and (field.omitempty or field.omitzero) and not field.pointer:
                continue
            out[field.name] = value


# --- custom JSON forms --------------------------------------------------------

#: time.Time's zero value, in Unix seconds: IsZero() is true for it alone.
_ZERO_TIME_SECONDS = -62135596800
_EPOCH = datetime.datetime(1970, 1, 1)


def _format_time(seconds: int, microseconds: Optional[int]) -> str:
    """
    Format an instant in UTC as Go's RFC 3339 layouts do, with six
    fractional digits when C{microseconds} is given (C{MicroTime}).
    """
    try:
        moment = _EPOCH + datetime.timedelta(seconds=seconds)
    except OverflowError:
        # Go would print years beyond 9999; no real client sends them.
        raise _DecodeError(f"time out of range: {seconds}") from None
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if microseconds is not None:
        text += f".{microseconds:06d}"
    return text + "Z"


def _time_fields(slots: list) -> tuple[int, int]:
    seconds = slots[0] if slots[0] is not None else 0
    nanos = slots[1] if slots[1] is not None else 0
    return seconds, nanos


def _render_time(slots: list, empty: bool) -> Optional[str]:
    # metav1.Time: an empty message is the zero time (JSON null); otherwise
    # only the seconds count, as in Time.Unmarshal.
    if empty:
        return None
    seconds, _ = _time_fields(slots)
    if seconds == _ZERO_TIME_SECONDS:
        return None
    return _format_time(seconds, None)


def _render_micro_time(slots: list, empty: bool) -> Optional[str]:
    # metav1.MicroTime: nanos truncated (towards zero) to microseconds, then
    # normalised into the seconds as time.Unix does.
    if empty:
        return None
    seconds, nanos = _time_fields(slots)
    truncated = int(nanos / 1000) * 1000
    seconds, nanos = divmod(seconds * 1_000_000_000 + truncated, 1_000_000_000)
    if seconds == _ZERO_TIME_SECONDS and nanos == 0:
        return None
    return _format_time(seconds, nanos // 1000)


def _duration_fraction(value: int, precision: int) -> tuple[int, str]:
    whole, fraction = divmod(value, 10**precision)
    digits = f"{fraction:0{precision}d}".rstrip("0")
    return whole, "." + digits if digits else ""


def go_duration(nanoseconds: int) -> str:
    """
    Format a duration as Go's C{time.Duration.String}, which is how
    C{metav1.Duration} appears in JSON: C{"1h2m3.5s"}, C{"1.5ms"}, C{"0s"}.
    """
    if nanoseconds == 0:
        return "0s"
    magnitude = abs(nanoseconds)
    if magnitude < 1_000_000_000:
        if magnitude < 1_000:
            text = f"{magnitude}ns"
        elif magnitude < 1_000_000:
            whole, fraction = _duration_fraction(magnitude, 3)
            text = f"{whole}{fraction}\u00b5s"
        else:
            whole, fraction = _duration_fraction(magnitude, 6)
            text = f"{whole}{fraction}ms"
    else:
        seconds, fraction = _duration_fraction(magnitude, 9)
        text = f"{seconds % 60}{fraction}s"
        minutes = seconds // 60
        if minutes:
            text = f"{minutes % 60}m{text}"
            hours = minutes // 60
            if hours:
                text = f"{hours}h{text}"
    return "-" + text if nanoseconds < 0 else text


def _render_duration(slots: list, empty: bool) -> str:
    return go_duration(slots[0] or 0)


# resource.ParseQuantity's grammar: a signed decimal (digits optional on
# either side of the point), then an SI or binary suffix or a decimal
# exponent.
_QUANTITY = re.compile(
    r"[+-]?[0-9]*(?:\.[0-9]*)?(?:Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_QUANTITY_SHAPE = re.compile(r"[+-]?[0-9]*(?:\.[0-9]*)?[eEinumkKMGTP]*[+-]?[0-9]*")
_QUANTITY_FORMAT_WRONG = (
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


def _render_quantity(slots: list, empty: bool) -> str:
    text = slots[0]
    if text is None:
        # The zero Quantity.
        return "0"
    # Quantity.Unmarshal parses the string and fails on bad syntax.  The
    # string is passed through, not canonicalised: client-go writes
    # Quantity.String(), which already is the canonical form encoding/json
    # would write (a non-Go client sending "1000m" would see "1" from a real
    # apiserver, and "1000m" from us).
    if not text:
        raise _DecodeError(_QUANTITY_FORMAT_WRONG)
    if _QUANTITY.fullmatch(text) is None:
        if _QUANTITY_SHAPE.fullmatch(text) is not None:
            raise _DecodeError("unable to parse quantity's suffix")
        raise _DecodeError(_QUANTITY_FORMAT_WRONG)
    return text


def _render_int_or_string(slots: list, empty: bool) -> Any:
    kind = slots[0] or 0
    if kind == 0:
        return slots[1] or 0
    if kind == 1:
        return slots[2] if slots[2] is not None else ""
    raise _DecodeError("impossible IntOrString.Type")


# The first bytes by which RawExtension and FieldsV1 recognise JSON.
_JSON_RAW_PREFIXES = frozenset(b"\t\r\n {[nft\"-0123456789")
_JSON_FIELDS_PREFIXES = frozenset(b"n{\t\r\n ")


def _raw_json(raw: Optional[bytes], prefixes: frozenset, what: str) -> Any:
    if raw is None:
        return None
    if not raw or raw[0] not in prefixes:
        # CBOR (which Kubernetes may store here in future) or garbage: Go
        # would fail to marshal this to JSON, so the object has no JSON form.
        raise _DecodeError(f"{what}: raw content is not JSON")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise _DecodeError(f"{what}: invalid JSON: {error}") from None


def _render_raw_extension(slots: list, empty: bool) -> Any:
    return _raw_json(slots[0], _JSON_RAW_PREFIXES, "runtime.RawExtension")


def _render_fields_v1(slots: list, empty: bool) -> Any:
    return _raw_json(slots[0], _JSON_FIELDS_PREFIXES, "metav1.FieldsV1")


def _render_group_version(slots: list, empty: bool) -> str:
    group = slots[0] or ""
    version = slots[1] or ""
    return f"{group}/{version}" if group else version


def _render_unknown(slots: list, empty: bool) -> Any:
    raise _DecodeError("runtime.Unknown cannot be nested in an object")


_SPECIAL_FORMS = {
    "time": _render_time,
    "microtime": _render_micro_time,
    "duration": _render_duration,
    "quantity": _render_quantity,
    "intorstring": _render_int_or_string,
    "rawextension": _render_raw_extension,
    "fieldsv1": _render_fields_v1,
    "groupversion": _render_group_version,
    "unknown": _render_unknown,
}


# --- the envelope -------------------------------------------------------------


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _message_for(group: str, version: str, kind: str) -> Optional[str]:
    message = _protofields.KINDS.get((group, version, kind))
    if message is None:
        message = _protofields.UNVERSIONED_KINDS.get(kind)
    return message


def is_decodable(api_version: str, kind: str) -> bool:
    """
    Whether L{decode_object} knows the message for this kind.
    """
    group, version = _split_api_version(api_version)
    return _message_for(group, version, kind) is not None


def summarize_data(body: bytes) -> str:
    """
    How the apiserver quotes an undecodable body in its errors
    (C{summarizeData(body, 30)}): JSON as text, anything else as hex.
    """
    if not body:
        return "<empty>"
    if body[:1] == b"{":
        text = body[:30].decode("utf-8", "replace")
        return text + " ..." if len(body) > 30 else text
    return body[:30].hex() + (" ..." if len(body) > 30 else "")


def _go_type_meta(api_version: str, kind: str) -> str:
    return f'runtime.TypeMeta{{APIVersion:"{api_version}", Kind:"{kind}"}}'


#: runtime.Unknown's fields, by number, with their Go names.
_ENVELOPE_FIELDS = {1: "TypeMeta", 2: "Raw", 3: "ContentEncoding", 4: "ContentType"}


def _read_envelope(body: bytes) -> tuple[str, str, bytes]:
    """
    Read the C{runtime.Unknown} after the magic.

    @return: its apiVersion, kind and raw message.
    """
    data = body
    end = len(data)
    position = len(PROTOBUF_MAGIC)
    api_version = kind = ""
    raw = b""
    while position < end:
        tag, position = _read_varint(data, position, end)
        wire_type = tag & 7
        number = _int32(tag >> 3)
        if wire_type == _END_GROUP:
            raise _DecodeError("proto: Unknown: wiretype end group for non-group")
        if number <= 0:
            raise _DecodeError(f"proto: Unknown: illegal tag {number} (wire type {wire_type})")
        if number not in _ENVELOPE_FIELDS:
            position = _skip_field(data, position, end, wire_type)
            continue
        if wire_type != _LENGTH:
            raise _DecodeError(
                f"proto: wrong wireType = {wire_type} for field {_ENVELOPE_FIELDS[number]}"
            )
        start, position = _read_length(data, position, end)
        if number == 1:
            # TypeMeta: apiVersion = 1, kind = 2.
            meta = _read_message(_plan("runtime.TypeMeta"), data, start, position)
            api_version = meta[0] if meta[0] is not None else api_version
            kind = meta[1] if meta[1] is not None else kind
        elif number == 2:
            raw = data[start:position]
        # contentEncoding and contentType are ignored, as by the apiserver's
        # protobuf serializer.
    return api_version, kind, raw


def decode_object(
    body: bytes,
    default_api_version: Optional[str] = None,
    default_kind: Optional[str] = None,
) -> dict:
    """
    Decode a Kubernetes protobuf request body into its JSON object.

    @param body: the whole request body, magic included.
    @param default_api_version: the group version of the request URL; it
        fills in an envelope without one, as the apiserver's defaulting does.
    @param default_kind: the kind the URL's resource holds; fills in an
        envelope without a kind, and names the target in error messages.
    @return: the object, starting with C{kind} and C{apiVersion}, exactly as
        C{encoding/json} writes the decoded Go object.
    @raise APIError: 400 BadRequest when the body is not a well-formed
        protobuf object of a known kind.
    """
    body = bytes(body)
    if not body:
        raise _bad_request("", "", default_kind, body, "empty data")
    if not body.startswith(PROTOBUF_MAGIC):
        raise _bad_request(
            "",
            "",
            default_kind,
            body,
            "provided data does not appear to be a protobuf message, "
            "expected prefix [107 56 115 0]",
        )
    if len(body) == len(PROTOBUF_MAGIC):
        raise _bad_request("", "", default_kind, body, "empty body")
    try:
        api_version, kind, raw = _read_envelope(body)
    except _DecodeError as error:
        raise _bad_request("", "", default_kind, body, str(error)) from None
    group, version = _split_api_version(api_version)
    # copyKindDefaults: the kind, and the group version as a whole.
    if not kind and default_kind:
        kind = default_kind
    if not version and default_api_version:
        group, version = _split_api_version(default_api_version)
        api_version = default_api_version
    if not kind:
        raise _bad_request(
            "",
            version,
            default_kind,
            body,
            f"Object 'Kind' is missing in '{_go_type_meta(api_version, kind)}'",
        )
    if not version:
        raise _bad_request(
            kind,
            version,
            default_kind,
            body,
            f"Object 'apiVersion' is missing in '{_go_type_meta(api_version, kind)}'",
        )
    message = _message_for(group, version, kind)
    if message is None:
        raise _bad_request(
            kind,
            version,
            default_kind,
            body,
            f'no kind "{kind}" is registered for version "{api_version}" in scheme '
            '"pkg/api/legacyscheme/scheme.go:30"',
        )
    plan = _plan(message)
    try:
        rendered = _render(plan, raw, 0, len(raw))
    except _DecodeError as error:
        raise _bad_request(kind, version, default_kind, body, str(error)) from None
    out = {"kind": kind, "apiVersion": api_version}
    out.update(rendered)
    return out


def _bad_request(
    kind: str, version: str, target_kind: Optional[str], body: bytes, reason: str
) -> APIError:
    """
    Word a decode failure as the apiserver's C{transformDecodeError} does:
    with the kind the body names if it names one, else with the kind the
    request expects and a summary of the body after the error.
    """
    if kind:
        return new_bad_request(
            f'{kind} in version "{version}" cannot be handled as a '
            f"{target_kind or kind}: {reason}"
        )
    return new_bad_request(
        f"the object provided is unrecognized (must be of type {target_kind or ''}): "
        f"{reason} ({summarize_data(body)})"
    )
