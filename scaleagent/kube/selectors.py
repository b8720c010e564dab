# -*- test-case-name: tests.test_kube_selectors -*-
"""
Label and field selectors: parse them exactly as apimachinery does
(C{labels.Parse}, C{fields.ParseSelector}, C{metav1.LabelSelectorAsSelector})
and match objects against the compiled result.

Parsing mirrors the Go lexer and parser token by token, so that what a real
kube-apiserver accepts is accepted here, what it rejects is rejected with
the same message (as an L{APIError} BadRequest, which is how the apiserver
answers a bad C{labelSelector} or C{fieldSelector} query parameter), and the
canonical C{String()} form is the same.

Compiled selectors are immutable and shared: L{parse_label_selector} and
L{parse_field_selector} cache recent results, since thousands of simulated
clusters receive the same few selectors from Rancher.

Also here, because selector parsing needs them: apimachinery's label key
and value rules and the RFC 1123 name rules they build on.

Errors are L{scaleagent.kube.errors.APIError}s.
"""

from __future__ import annotations

import enum
import functools
import re
from typing import Iterable, Mapping, Optional

from scaleagent.kube.errors import (
    FieldError,
    aggregate_message,
    go_quote,
    new_bad_request,
)

__all__ = [
    "EVERYTHING",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "NOTHING",
    "Operator",
    "Requirement",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "field_selector_from_set",
    "field_value",
    "label_key_errors",
    "label_selector_from_object",
    "label_selector_from_set",
    "label_value_errors",
    "new_requirement",
    "parse_field_selector",
    "parse_label_selector",
]


# -- Name and label syntax (k8s.io/apimachinery/pkg/api/validate/content) --


def _regex_error(message: str, pattern: str, *examples: str) -> str:
    # Reproduces content.RegexError, including its double space before "or".
    if not examples:
        return f"{message} (regex used for validation is '{pattern}')"
    quoted = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {quoted}regex used for validation is '{pattern}')"


def _byte_length(text: str) -> int:
    # Go measures these limits with len(), in bytes of UTF-8.
    return len(text.encode("utf-8"))


_DNS1123_LABEL_FORMAT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FORMAT)
_DNS1123_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
    "or '-', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FORMAT = (
    _DNS1123_LABEL_FORMAT + "(\\." + _DNS1123_LABEL_FORMAT + ")*"
)
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FORMAT)
_DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character"
)
_LABEL_KEY_FORMAT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_NAME = re.compile(_LABEL_KEY_FORMAT)
_LABEL_KEY_MESSAGE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character"
)
_LABEL_VALUE_FORMAT = "(" + _LABEL_KEY_FORMAT + ")?"
_LABEL_VALUE = re.compile(_LABEL_VALUE_FORMAT)
_LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric "
    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character"
)


def dns1123_label_errors(value: str) -> list[str]:
    """C{IsDNS1123Label}: why C{value} is not a DNS label (empty if it is)."""
    errors = []
    if _byte_length(value) > 63:
        errors.append("must be no more than 63 bytes")
    if not _DNS1123_LABEL.fullmatch(value):
        if _DNS1123_SUBDOMAIN.fullmatch(value):
            errors.append("must not contain dots")
        else:
            errors.append(
                _regex_error(
                    _DNS1123_LABEL_MESSAGE, _DNS1123_LABEL_FORMAT, "my-name", "123-abc"
                )
            )
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    """C{IsDNS1123Subdomain}: why C{value} is not a DNS subdomain."""
    errors = []
    if _byte_length(value) > 253:
        errors.append("must be no more than 253 bytes")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errors.append(
            _regex_error(_DNS1123_SUBDOMAIN_MESSAGE, _DNS1123_SUBDOMAIN_FORMAT, "example.com")
        )
    return errors


def label_key_errors(value: str) -> list[str]:
    """
    C{IsLabelKey} (alias C{IsQualifiedName}): an optional DNS subdomain
    prefix and C{/}, then a name of at most 63 characters.
    """
    errors = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend("prefix part " + message for message in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a valid label key "
            + _regex_error(_LABEL_KEY_MESSAGE, _LABEL_KEY_FORMAT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errors.append("name part must be non-empty")
    elif _byte_length(name) > 63:
        errors.append("name part must be no more than 63 bytes")
    if not _LABEL_KEY_NAME.fullmatch(name):
        errors.append(
            "name part "
            + _regex_error(_LABEL_KEY_MESSAGE, _LABEL_KEY_FORMAT, "MyName", "my.name", "123-abc")
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    """C{IsValidLabelValue}: empty, or at most 63 label characters."""
    errors = []
    if _byte_length(value) > 63:
        errors.append("must be no more than 63 bytes")
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(
            _regex_error(_LABEL_VALUE_MESSAGE, _LABEL_VALUE_FORMAT, "MyValue", "my_value", "12345")
        )
    return errors


_INT64 = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> Optional[int]:
    # strconv.ParseInt(text, 10, 64): Python's int() would also accept
    # whitespace and underscores.
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        return None
    return value


# -- Label selectors (k8s.io/apimachinery/pkg/labels) ----------------------


class Operator:
    """The C{selection.Operator} values a label requirement can use."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


# The order apimachinery lists them in its "expected:" messages.
_BINARY_OPERATORS = (
    Operator.IN,
    Operator.NOT_IN,
    Operator.EQUALS,
    Operator.DOUBLE_EQUALS,
    Operator.NOT_EQUALS,
    Operator.GREATER_THAN,
    Operator.LESS_THAN,
)
_ALL_OPERATORS = _BINARY_OPERATORS + (Operator.EXISTS, Operator.DOES_NOT_EXIST)


class Requirement:
    """
    One term of a label selector: C{key}, an L{Operator} value and the values
    it compares with (kept in the order given; the parser sorts them).
    """

    __slots__ = ("key", "operator", "values")

    def __init__(self, key: str, operator: str, values: tuple[str, ...] = ()) -> None:
        self.key = key
        self.operator = operator
        self.values = values

    def matches(self, labels: Mapping[str, str]) -> bool:
        """
        Whether C{labels} satisfy this requirement; a missing key satisfies
        only C{notin}, C{!=} and C{!}.
        """
        operator = self.operator
        if operator in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            value = labels.get(self.key)
            return value is not None and value in self.values
        if operator in (Operator.NOT_IN, Operator.NOT_EQUALS):
            value = labels.get(self.key)
            return value is None or value not in self.values
        if operator == Operator.EXISTS:
            return self.key in labels
        if operator == Operator.DOES_NOT_EXIST:
            return self.key not in labels
        if operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
            value = labels.get(self.key)
            if value is None or len(self.values) != 1:
                return False
            have = _parse_int64(value)
            want = _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if operator == Operator.GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        operator = self.operator
        if operator == Operator.EXISTS:
            return self.key
        if operator == Operator.DOES_NOT_EXIST:
            return "!" + self.key
        # String() sorts the values without touching the requirement.
        values = ",".join(sorted(self.values)) if len(self.values) != 1 else self.values[0]
        if operator in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {operator} ({values})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(operator, operator)
        return f"{self.key}{symbol}{values}"

    def __repr__(self) -> str:
        return f"Requirement({self.key!r}, {self.operator!r}, {self.values!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Requirement):
            return NotImplemented
        return (self.key, self.operator, self.values) == (other.key, other.operator, other.values)

    def __hash__(self) -> int:
        return hash((self.key, self.operator, self.values))


def _requirement_errors(
    key: str, operator: str, values: tuple[str, ...], path: Optional[str]
) -> list[FieldError]:
    """
    The checks of C{labels.NewRequirement}, with its field paths: C{path}
    is the parent path, L{None} for none.
    """

    def child(name: str) -> str:
        return f"{path}.{name}" if path else name

    errors = []
    key_problems = label_key_errors(key)
    if key_problems:
        errors.append(FieldError.invalid(child("key"), key, "; ".join(key_problems)))
    values_path = child("values")
    # A nil Go slice marshals as null in the error text.
    shown = list(values) if values else None
    if operator in (Operator.IN, Operator.NOT_IN):
        if not values:
            errors.append(
                FieldError.invalid(
                    values_path, shown, "for 'in', 'notin' operators, values set can't be empty"
                )
            )
    elif operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
        if len(values) != 1:
            errors.append(
                FieldError.invalid(
                    values_path, shown, "exact-match compatibility requires one single value"
                )
            )
    elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        if values:
            errors.append(
                FieldError.invalid(
                    values_path, shown, "values set must be empty for exists and does not exist"
                )
            )
    elif operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
        if len(values) != 1:
            errors.append(
                FieldError.invalid(
                    values_path,
                    shown,
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                )
            )
        for index, value in enumerate(values):
            if _parse_int64(value) is None:
                errors.append(
                    FieldError.invalid(
                        f"{values_path}[{index}]",
                        value,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                )
    else:
        errors.append(FieldError.not_supported(child("operator"), operator, _ALL_OPERATORS))
    for index, value in enumerate(values):
        value_problems = label_value_errors(value)
        if value_problems:
            errors.append(
                FieldError.invalid(
                    f"{values_path}[{index}][{key}]", value, "; ".join(value_problems)
                )
            )
    return errors


def new_requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """
    Build a validated L{Requirement}, as C{labels.NewRequirement}.

    @raise APIError: BadRequest naming every problem.
    """
    values = tuple(values)
    errors = _requirement_errors(key, operator, values, None)
    if errors:
        raise new_bad_request(aggregate_message(errors))
    return Requirement(key, operator, values)


class LabelSelector:
    """
    A compiled label selector: the AND of its requirements, sorted by key.
    """

    __slots__ = ("requirements",)

    def __init__(self, requirements: Iterable[Requirement] = ()) -> None:
        # Sorting by key makes String() canonical, as labels.Parse does.
        self.requirements = tuple(sorted(requirements, key=lambda requirement: requirement.key))

    def matches(self, labels: Optional[Mapping[str, str]]) -> bool:
        """Whether an object with these labels (or none) is selected."""
        if labels is None:
            labels = {}
        for requirement in self.requirements:
            if not requirement.matches(labels):
                return False
        return True

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything."""
        return not self.requirements

    def requires_exact_match(self, key: str) -> Optional[str]:
        """
        The single value C{key} must have to be selected, or L{None} when the
        selector does not pin it to one value.
        """
        for requirement in self.requirements:
            if requirement.key == key:
                if requirement.operator in (
                    Operator.EQUALS,
                    Operator.DOUBLE_EQUALS,
                    Operator.IN,
                ) and len(requirement.values) == 1:
                    return requirement.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)

    def __repr__(self) -> str:
        return f"<LabelSelector {str(self)!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector) or isinstance(other, _NothingSelector):
            return NotImplemented
        return self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)


class _NothingSelector(LabelSelector):
    """C{labels.Nothing()}: selects nothing and is not empty."""

    __slots__ = ()

    def matches(self, labels: Optional[Mapping[str, str]]) -> bool:
        return False

    @property
    def empty(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<LabelSelector nothing>"

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return id(self)


#: Selects everything (an empty selector).
EVERYTHING = LabelSelector()

#: Selects nothing: what a missing C{LabelSelector} object means.
NOTHING = _NothingSelector()


class _Token(enum.IntEnum):
    ERROR = 0
    END = 1
    CLOSED_PAR = 2
    COMMA = 3
    DOES_NOT_EXIST = 4
    DOUBLE_EQUALS = 5
    EQUALS = 6
    GREATER_THAN = 7
    IDENTIFIER = 8
    IN = 9
    LESS_THAN = 10
    NOT_EQUALS = 11
    NOT_IN = 12
    OPEN_PAR = 13


_LITERAL_TOKENS = {
    ")": _Token.CLOSED_PAR,
    ",": _Token.COMMA,
    "!": _Token.DOES_NOT_EXIST,
    "==": _Token.DOUBLE_EQUALS,
    "=": _Token.EQUALS,
    ">": _Token.GREATER_THAN,
    "in": _Token.IN,
    "<": _Token.LESS_THAN,
    "!=": _Token.NOT_EQUALS,
    "notin": _Token.NOT_IN,
    "(": _Token.OPEN_PAR,
}

# Exactly the Go lexer's sets: other Unicode whitespace is part of a word.
_WHITESPACE = frozenset(" \t\r\n")
_SPECIAL = frozenset("=!(),><")
_END = "\x00"


class _Lexer:
    """
    A port of apimachinery's label selector lexer. Like the Go one, it reads
    a NUL character as end of input without stopping the scan after it.
    """

    __slots__ = ("_text", "_position")

    def __init__(self, text: str) -> None:
        self._text = text
        self._position = 0

    def _read(self) -> str:
        if self._position < len(self._text):
            character = self._text[self._position]
            self._position += 1
            return character
        return _END

    def _unread(self) -> None:
        self._position -= 1

    def lex(self) -> tuple[_Token, str]:
        character = self._read()
        while character in _WHITESPACE:
            character = self._read()
        if character == _END:
            return _Token.END, ""
        self._unread()
        if character in _SPECIAL:
            return self._scan_special()
        return self._scan_word()

    def _scan_word(self) -> tuple[_Token, str]:
        buffer = []
        while True:
            character = self._read()
            if character == _END:
                break
            if character in _SPECIAL or character in _WHITESPACE:
                self._unread()
                break
            buffer.append(character)
        word = "".join(buffer)
        return _LITERAL_TOKENS.get(word, _Token.IDENTIFIER), word

    def _scan_special(self) -> tuple[_Token, str]:
        buffer = ""
        last: Optional[tuple[_Token, str]] = None
        while True:
            character = self._read()
            if character == _END:
                break
            if character not in _SPECIAL:
                self._unread()
                break
            buffer += character
            token = _LITERAL_TOKENS.get(buffer)
            if token is not None:
                last = (token, buffer)
            elif last is not None:
                self._unread()
                break
        if last is None:
            return _Token.ERROR, f"error expected: keyword found '{buffer}'"
        return last


class _SelectorSyntaxError(Exception):
    """A label selector the parser rejects; the message is apimachinery's."""


_KEY_AND_OPERATOR = 0
_VALUES = 1


class _Parser:
    """
    A port of apimachinery's recursive-descent label selector parser, with
    the same context rule: C{in} and C{notin} are words wherever a key or a
    value is expected.
    """

    __slots__ = ("_items", "_position")

    def __init__(self, text: str) -> None:
        lexer = _Lexer(text)
        self._items: list[tuple[_Token, str]] = []
        while True:
            item = lexer.lex()
            self._items.append(item)
            if item[0] == _Token.END:
                break
        self._position = 0

    def _lookahead(self, context: int) -> tuple[_Token, str]:
        token, literal = self._items[self._position]
        if context == _VALUES and token in (_Token.IN, _Token.NOT_IN):
            token = _Token.IDENTIFIER
        return token, literal

    def _consume(self, context: int) -> tuple[_Token, str]:
        item = self._lookahead(context)
        self._position += 1
        return item

    def parse(self) -> list[Requirement]:
        requirements = []
        while True:
            token, literal = self._lookahead(_VALUES)
            if token in (_Token.IDENTIFIER, _Token.DOES_NOT_EXIST):
                try:
                    requirements.append(self._parse_requirement())
                except _SelectorSyntaxError as error:
                    raise _SelectorSyntaxError(f"unable to parse requirement: {error}") from None
                token, literal = self._consume(_VALUES)
                if token == _Token.END:
                    return requirements
                if token == _Token.COMMA:
                    next_token, next_literal = self._lookahead(_VALUES)
                    if next_token not in (_Token.IDENTIFIER, _Token.DOES_NOT_EXIST):
                        raise _SelectorSyntaxError(
                            f"found '{next_literal}', expected: identifier after ','"
                        )
                else:
                    raise _SelectorSyntaxError(
                        f"found '{literal}', expected: ',' or 'end of string'"
                    )
            elif token == _Token.END:
                return requirements
            else:
                raise _SelectorSyntaxError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'"
                )

    def _parse_requirement(self) -> Requirement:
        key, operator = self._parse_key_and_infer_operator()
        if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
            return self._new_requirement(key, operator, ())
        operator = self._parse_operator()
        if operator in (Operator.IN, Operator.NOT_IN):
            values = self._parse_values()
        else:
            values = self._parse_exact_value()
        # apimachinery collects the values in a set and passes them sorted.
        return self._new_requirement(key, operator, tuple(sorted(values)))

    @staticmethod
    def _new_requirement(key: str, operator: str, values: tuple[str, ...]) -> Requirement:
        errors = _requirement_errors(key, operator, values, None)
        if errors:
            raise _SelectorSyntaxError(aggregate_message(errors))
        return Requirement(key, operator, values)

    def _parse_key_and_infer_operator(self) -> tuple[str, Optional[str]]:
        operator = None
        token, literal = self._consume(_VALUES)
        if token == _Token.DOES_NOT_EXIST:
            operator = Operator.DOES_NOT_EXIST
            token, literal = self._consume(_VALUES)
        if token != _Token.IDENTIFIER:
            raise _SelectorSyntaxError(f"found '{literal}', expected: identifier")
        problems = label_key_errors(literal)
        if problems:
            # The parser validates with a nil field path, which Go prints so.
            raise _SelectorSyntaxError(
                str(FieldError.invalid("<nil>", literal, "; ".join(problems)))
            )
        next_token, _ = self._lookahead(_VALUES)
        if next_token in (_Token.END, _Token.COMMA) and operator is None:
            operator = Operator.EXISTS
        return literal, operator

    def _parse_operator(self) -> str:
        token, literal = self._consume(_KEY_AND_OPERATOR)
        operator = {
            _Token.IN: Operator.IN,
            _Token.EQUALS: Operator.EQUALS,
            _Token.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
            _Token.GREATER_THAN: Operator.GREATER_THAN,
            _Token.LESS_THAN: Operator.LESS_THAN,
            _Token.NOT_IN: Operator.NOT_IN,
            _Token.NOT_EQUALS: Operator.NOT_EQUALS,
        }.get(token)
        if operator is None:
            raise _SelectorSyntaxError(
                f"found '{literal}', expected: {', '.join(_BINARY_OPERATORS)}"
            )
        return operator

    def _parse_values(self) -> set[str]:
        token, literal = self._consume(_VALUES)
        if token != _Token.OPEN_PAR:
            raise _SelectorSyntaxError(f"found '{literal}' expected: '('")
        token, literal = self._lookahead(_VALUES)
        if token in (_Token.IDENTIFIER, _Token.COMMA):
            values = self._parse_identifiers_list()
            token, _ = self._consume(_VALUES)
            if token != _Token.CLOSED_PAR:
                raise _SelectorSyntaxError(f"found '{literal}', expected: ')'")
            return values
        if token == _Token.CLOSED_PAR:
            self._consume(_VALUES)
            return {""}
        raise _SelectorSyntaxError(f"found '{literal}', expected: ',', ')' or identifier")

    def _parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            token, literal = self._consume(_VALUES)
            if token == _Token.IDENTIFIER:
                values.add(literal)
                next_token, next_literal = self._lookahead(_VALUES)
                if next_token == _Token.COMMA:
                    continue
                if next_token == _Token.CLOSED_PAR:
                    return values
                raise _SelectorSyntaxError(f"found '{next_literal}', expected: ',' or ')'")
            if token == _Token.COMMA:
                # Empty strings are values: "(,a)", "(a,)" and "(a,,b)".
                if not values:
                    values.add("")
                next_token, _ = self._lookahead(_VALUES)
                if next_token == _Token.CLOSED_PAR:
                    values.add("")
                    return values
                if next_token == _Token.COMMA:
                    values.add("")
                continue
            raise _SelectorSyntaxError(f"found '{literal}', expected: ',', or identifier")

    def _parse_exact_value(self) -> set[str]:
        token, _ = self._lookahead(_VALUES)
        if token in (_Token.END, _Token.COMMA):
            return {""}
        token, literal = self._consume(_VALUES)
        if token == _Token.IDENTIFIER:
            return {literal}
        raise _SelectorSyntaxError(f"found '{literal}', expected: identifier")


@functools.lru_cache(maxsize=512)
def parse_label_selector(text: str) -> LabelSelector:
    """
    Parse the C{labelSelector} syntax (C{labels.Parse}): comma-separated
    requirements, each C{key}, C{!key}, C{key=v}, C{key==v}, C{key!=v},
    C{key in (v,...)}, C{key notin (v,...)}, C{key>n} or C{key<n}.

    @return: a shared, immutable L{LabelSelector}.
    @raise APIError: BadRequest with apimachinery's message.
    """
    try:
        requirements = _Parser(text).parse()
    except _SelectorSyntaxError as error:
        raise new_bad_request(str(error)) from None
    return LabelSelector(requirements) if requirements else EVERYTHING


def label_selector_from_set(labels: Optional[Mapping[str, str]]) -> LabelSelector:
    """
    C{labels.SelectorFromSet}: every label must equal the given value (a
    Service's C{spec.selector}). Not validated; empty means everything.
    """
    if not labels:
        return EVERYTHING
    return LabelSelector(
        Requirement(key, Operator.EQUALS, (value,)) for key, value in labels.items()
    )


_JSON_TYPES = {int: "number", float: "number", list: "array", tuple: "array", type(None): "null"}


def _check_string_map(values: Mapping, field: str) -> None:
    # What decoding into metav1.LabelSelector refuses; without this a
    # malformed stored object would make matching raise TypeError.
    for key, value in values.items():
        if not isinstance(value, str) or not isinstance(key, (str, int)):
            json_type = "bool" if isinstance(value, bool) else _JSON_TYPES.get(type(value), "object")
            raise new_bad_request(
                f"json: cannot unmarshal {json_type} into Go struct field "
                f"LabelSelector.{field} of type string"
            )


_EXPRESSION_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def label_selector_from_object(selector: Optional[Mapping]) -> LabelSelector:
    """
    C{metav1.LabelSelectorAsSelector}: compile a C{LabelSelector} object
    (C{matchLabels} and C{matchExpressions}) as Deployments and friends carry.

    A missing object (L{None}) selects nothing; an empty one everything.

    @raise APIError: BadRequest when a requirement is invalid.
    """
    if selector is None:
        return NOTHING
    match_labels = selector.get("matchLabels") or {}
    match_expressions = selector.get("matchExpressions") or ()
    if not match_labels and not match_expressions:
        return EVERYTHING
    _check_string_map(match_labels, "matchLabels")
    for expression in match_expressions:
        _check_string_map({"key": expression.get("key", "")}, "matchExpressions.key")
        values = expression.get("values") or ()
        _check_string_map(dict(enumerate(values)), "matchExpressions.values")
    requirements = [
        new_requirement(key, Operator.EQUALS, (value,)) for key, value in match_labels.items()
    ]
    for expression in match_expressions:
        operator = _EXPRESSION_OPERATORS.get(expression.get("operator"))
        if operator is None:
            raise new_bad_request(
                f"{go_quote(str(expression.get('operator', '')))} is not a valid label "
                "selector operator"
            )
        requirements.append(
            new_requirement(expression.get("key", ""), operator, expression.get("values") or ())
        )
    return LabelSelector(requirements)


# -- Field selectors (k8s.io/apimachinery/pkg/fields) ----------------------


def field_value(obj: Mapping, path: str) -> str:
    """
    The value a field selector compares for C{path} (C{metadata.name},
    C{spec.nodeName}, C{involvedObject.kind}...), looked up generically by
    its dots: missing fields are C{""}, booleans C{true}/C{false}, numbers
    their decimal form.

    This approximates the per-kind field sets of the apiserver
    (C{GetAttrs}); it agrees with them for every field they define, and the
    caller decides which fields a kind supports.
    """
    value: object = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
        if value is None:
            return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return ""


class FieldRequirement:
    """One term of a field selector: C{field}, C{=} or C{!=}, C{value}."""

    __slots__ = ("field", "operator", "value")

    def __init__(self, field: str, operator: str, value: str) -> None:
        self.field = field
        self.operator = operator
        self.value = value

    def matches(self, obj: Mapping) -> bool:
        equal = field_value(obj, self.field) == self.value
        return equal if self.operator == Operator.EQUALS else not equal

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape_field_value(self.value)}"

    def __repr__(self) -> str:
        return f"FieldRequirement({self.field!r}, {self.operator!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldRequirement):
            return NotImplemented
        return (self.field, self.operator, self.value) == (other.field, other.operator, other.value)

    def __hash__(self) -> int:
        return hash((self.field, self.operator, self.value))


class FieldSelector:
    """A compiled field selector: the AND of its requirements."""

    __slots__ = ("requirements",)

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self.requirements = tuple(requirements)

    def matches(self, obj: Mapping) -> bool:
        """Whether the object (a full API object dict) is selected."""
        for requirement in self.requirements:
            if not requirement.matches(obj):
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def fields(self) -> tuple[str, ...]:
        """The field paths used, for checking them against a kind's list."""
        return tuple(requirement.field for requirement in self.requirements)

    def requires_exact_match(self, field: str) -> Optional[str]:
        """The value C{field} must equal, or L{None} when not pinned."""
        for requirement in self.requirements:
            if requirement.field == field and requirement.operator == Operator.EQUALS:
                return requirement.value
        return None

    def check_supported(self, supported: Iterable[str]) -> None:
        """
        Reject fields the kind does not index, as C{ConvertFieldLabel} does.

        @raise APIError: BadRequest C{field label not supported: <field>}.
        """
        allowed = frozenset(supported)
        for requirement in self.requirements:
            if requirement.field not in allowed:
                raise new_bad_request(f"field label not supported: {requirement.field}")

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)

    def __repr__(self) -> str:
        return f"<FieldSelector {str(self)!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)


_EVERYTHING_FIELDS = FieldSelector()


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    # fields.UnescapeValue: only \\, \, and \= are escapes; a bare , or = in
    # a value is an error, reported as Go prints a rune (its number).
    if not any(character in value for character in "\\,="):
        return value
    out = []
    escaping = False
    for character in value:
        if escaping:
            if character not in "\\,=":
                raise _SelectorSyntaxError(
                    f"invalid field selector: invalid escape sequence: \\{character}"
                )
            out.append(character)
            escaping = False
        elif character == "\\":
            escaping = True
        elif character in ",=":
            raise _SelectorSyntaxError(
                f"invalid field selector: unescaped character in value: {ord(character)}"
            )
        else:
            out.append(character)
    if escaping:
        raise _SelectorSyntaxError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    # Split on commas that are not escaped; escapes stay in the terms.
    terms = []
    start = 0
    escaping = False
    for index, character in enumerate(text):
        if escaping:
            escaping = False
        elif character == "\\":
            escaping = True
        elif character == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


# "==" before "=" so that "a==b" does not leave "=b" as the value.
_FIELD_OPERATORS = (("!=", Operator.NOT_EQUALS), ("==", Operator.EQUALS), ("=", Operator.EQUALS))


def _split_term(term: str) -> Optional[tuple[str, str, str]]:
    for index in range(len(term)):
        for symbol, operator in _FIELD_OPERATORS:
            if term.startswith(symbol, index):
                return term[:index], operator, term[index + len(symbol):]
    return None


@functools.lru_cache(maxsize=512)
def parse_field_selector(text: str) -> FieldSelector:
    """
    Parse the C{fieldSelector} syntax (C{fields.ParseSelector}):
    comma-separated C{field=value}, C{field==value} or C{field!=value}, with
    C{\\}, C{,} and C{=} in values escaped by a backslash. Terms are kept in
    sorted order, as apimachinery keeps them; no whitespace is trimmed.

    @return: a shared, immutable L{FieldSelector}.
    @raise APIError: BadRequest with apimachinery's message.
    """
    if not text:
        return _EVERYTHING_FIELDS
    requirements = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise new_bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, operator, raw_value = split
        try:
            value = _unescape_field_value(raw_value)
        except _SelectorSyntaxError as error:
            raise new_bad_request(str(error)) from None
        if not field and not value:
            # Transform() turns a term with neither field nor value into
            # "everything", which the AND then drops.
            continue
        requirements.append(FieldRequirement(field, operator, value))
    return FieldSelector(requirements) if requirements else _EVERYTHING_FIELDS


def field_selector_from_set(fields: Optional[Mapping[str, str]]) -> FieldSelector:
    """C{fields.SelectorFromSet}: every field must equal the given value."""
    if not fields:
        return _EVERYTHING_FIELDS
    return FieldSelector(
        FieldRequirement(field, Operator.EQUALS, value) for field, value in fields.items()
    )

