"""
Tests for L{scaleagent.kube.selectors}.

The expected canonical strings and error messages in the tables below were
produced by apimachinery v0.35.6 itself (C{labels.Parse},
C{fields.ParseSelector}, C{metav1.LabelSelectorAsSelector}) for the same
inputs.
"""

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube.errors import APIError
from scaleagent.kube.selectors import (
    EVERYTHING,
    NOTHING,
    FieldSelector,
    LabelSelector,
    Operator,
    Requirement,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    field_selector_from_set,
    field_value,
    label_key_errors,
    label_selector_from_object,
    label_selector_from_set,
    label_value_errors,
    new_requirement,
    parse_field_selector,
    parse_label_selector,
)

# The long tails of apimachinery's validation messages.
_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character "
    "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
    "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_OPERATORS = "in, notin, =, ==, !=, gt, lt"
_REQUIREMENT = "unable to parse requirement: "

# (input, canonical String() or None, error message or None)
LABEL_CASES = [
    ("", "", None),
    (" ", "", None),
    ("x=a", "x=a", None),
    ("x==a", "x==a", None),
    ("x!=a", "x!=a", None),
    ("x = a", "x=a", None),
    ("x", "x", None),
    ("!x", "!x", None),
    (" !x ", "!x", None),
    ("x in (a,b)", "x in (a,b)", None),
    ("x in(a)", "x in (a)", None),
    ("x\tin\t(a)", "x in (a)", None),
    ("x notin (a)", "x notin (a)", None),
    ("x in ()", "x in ()", None),
    ("x in (,a)", "x in (,a)", None),
    ("x in (a,)", "x in (,a)", None),
    ("x in (a,,b)", "x in (,a,b)", None),
    ("x in (b,a,a)", "x in (a,b)", None),
    ("x=", "x=", None),
    ("x!=", "x!=", None),
    ("x=,y=b", "x=,y=b", None),
    ("x>1,x<5", "x>1,x<5", None),
    ("x in (in, notin)", "x in (in,notin)", None),
    ("in in (in)", "in in (in)", None),
    ("notin", "notin", None),
    ("x in (a) , y", "x in (a),y", None),
    ("b,a,!c", "a,b,!c", None),
    ("x in (a),y notin (b,c),!z,w", "w,x in (a),y notin (b,c),!z", None),
    ("a=b,a=c", "a=b,a=c", None),
    ("example.com/x=y", "example.com/x=y", None),
    # A NUL ends the word it is in, as in the Go lexer, but not the input.
    ("x=a\x00,y", "x=a,y", None),
    ("a\x00b", None, _REQUIREMENT + f"found 'b', expected: {_OPERATORS}"),
    ("a=b c", None, "found 'c', expected: ',' or 'end of string'"),
    ("a b", None, _REQUIREMENT + f"found 'b', expected: {_OPERATORS}"),
    ("x!", None, _REQUIREMENT + f"found '!', expected: {_OPERATORS}"),
    ("x in a", None, _REQUIREMENT + "found 'a' expected: '('"),
    ("x in (a", None, _REQUIREMENT + "found '', expected: ',' or ')'"),
    ("x in (a b)", None, _REQUIREMENT + "found 'b', expected: ',' or ')'"),
    ("x=a,", None, "found '', expected: identifier after ','"),
    ("x in (a),", None, "found '', expected: identifier after ','"),
    (",x=a", None, "found ',', expected: !, identifier, or 'end of string'"),
    ("x=a,,y=b", None, "found ',', expected: identifier after ','"),
    ("!", None, _REQUIREMENT + "found '', expected: identifier"),
    ("!x=a", None, "found '=', expected: ',' or 'end of string'"),
    ("x=>1", None, _REQUIREMENT + "found '>', expected: identifier"),
    ("x=!a", None, _REQUIREMENT + "found '!', expected: identifier"),
    ("x=(a)", None, _REQUIREMENT + "found '(', expected: identifier"),
    ("(x)", None, "found '(', expected: !, identifier, or 'end of string'"),
    ("x=a)", None, "found ')', expected: ',' or 'end of string'"),
    ("a==b==c", None, "found '==', expected: ',' or 'end of string'"),
    (
        "x>a",
        None,
        _REQUIREMENT + "values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, "
        "the value must be an integer",
    ),
    ("x>-1", None, _REQUIREMENT + f'values[0][x]: Invalid value: "-1": {_VALUE_RULE}'),
    ("x=a_", None, _REQUIREMENT + f'values[0][x]: Invalid value: "a_": {_VALUE_RULE}'),
    ("x=é", None, _REQUIREMENT + f'values[0][x]: Invalid value: "é": {_VALUE_RULE}'),
    (
        "x=" + "a" * 64,
        None,
        _REQUIREMENT + f'values[0][x]: Invalid value: "{"a" * 64}": must be no more than 63 bytes',
    ),
    (
        "x in (a_,b_)",
        None,
        _REQUIREMENT
        + f'[values[0][x]: Invalid value: "a_": {_VALUE_RULE}, '
        + f'values[1][x]: Invalid value: "b_": {_VALUE_RULE}]',
    ),
    ("_x", None, _REQUIREMENT + f'<nil>: Invalid value: "_x": name part {_NAME_RULE}'),
    ("/x", None, _REQUIREMENT + '<nil>: Invalid value: "/x": prefix part must be non-empty'),
    (
        "x/",
        None,
        _REQUIREMENT
        + f'<nil>: Invalid value: "x/": name part must be non-empty; name part {_NAME_RULE}',
    ),
    (
        "Example.com/x=y",
        None,
        _REQUIREMENT + f'<nil>: Invalid value: "Example.com/x": prefix part {_SUBDOMAIN_RULE}',
    ),
    (
        "a/b/c",
        None,
        _REQUIREMENT
        + f'<nil>: Invalid value: "a/b/c": a valid label key {_NAME_RULE} with an optional '
        "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ),
    (
        "k" * 64,
        None,
        _REQUIREMENT
        + f'<nil>: Invalid value: "{"k" * 64}": name part must be no more than 63 bytes',
    ),
]

FIELD_CASES = [
    ("", "", None),
    ("metadata.name=x", "metadata.name=x", None),
    ("metadata.name==x", "metadata.name=x", None),
    ("metadata.name!=x", "metadata.name!=x", None),
    ("metadata.namespace=b,metadata.name=a", "metadata.name=a,metadata.namespace=b", None),
    ("a=b,c!=d", "a=b,c!=d", None),
    ("a=b\\,c", "a=b\\,c", None),
    ("a=b\\=c", "a=b\\=c", None),
    ("a=b\\\\c", "a=b\\\\c", None),
    ("=b", "=b", None),
    ("a=", "a=", None),
    (",a=b,", "a=b", None),
    ("a=b,,c=d", "a=b,c=d", None),
    ("spec.nodeName=,status.phase=Running", "spec.nodeName=,status.phase=Running", None),
    ("a==", "a=", None),
    ("a!=", "a!=", None),
    ("a=\\,", "a=\\,", None),
    (" a = b ", " a = b ", None),
    ("=", "", None),
    ("!=", "", None),
    ("a=b,!=", "a=b", None),
    ("a", None, "invalid selector: 'a'; can't understand 'a'"),
    ("a=b,c", None, "invalid selector: 'a=b,c'; can't understand 'c'"),
    ("a=b=c", None, "invalid field selector: unescaped character in value: 61"),
    ("a==b=c", None, "invalid field selector: unescaped character in value: 61"),
    ("a!=b=c", None, "invalid field selector: unescaped character in value: 61"),
    ("a=b\\x", None, "invalid field selector: invalid escape sequence: \\x"),
    ("a=b\\", None, "invalid field selector: invalid escape sequence: \\"),
]


class LabelSelectorParsingTests(SynchronousTestCase):
    """
    L{parse_label_selector} accepts and rejects what C{labels.Parse} does.
    """

    def test_cases(self) -> None:
        """
        Every case gives apimachinery's canonical string or its error
        message, as a 400 BadRequest.
        """
        for text, canonical, message in LABEL_CASES:
            if message is None:
                self.assertEqual(str(parse_label_selector(text)), canonical, text)
            else:
                error = self.assertRaises(APIError, parse_label_selector, text)
                self.assertEqual(
                    (error.code, error.reason, error.message), (400, "BadRequest", message), text
                )

    def test_bad_request_status(self) -> None:
        """
        A parse error is the Status the apiserver sends for a bad query
        parameter: BadRequest without details.
        """
        error = self.assertRaises(APIError, parse_label_selector, "a b")
        self.assertEqual(
            error.to_status(),
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"unable to parse requirement: found 'b', expected: {_OPERATORS}",
                "reason": "BadRequest",
                "code": 400,
            },
        )

    def test_empty(self) -> None:
        """
        Only a selector without requirements is empty.
        """
        self.assertTrue(parse_label_selector("").empty)
        self.assertTrue(parse_label_selector("  ").empty)
        self.assertFalse(parse_label_selector("a").empty)

    def test_cached(self) -> None:
        """
        The same text gives the same (immutable) selector object.
        """
        self.assertIs(parse_label_selector("app=web"), parse_label_selector("app=web"))

    def test_requirement_values_sorted(self) -> None:
        """
        The parser hands the values over sorted and without duplicates.
        """
        (requirement,) = parse_label_selector("x in (c,a,c,b)").requirements
        self.assertEqual(requirement, Requirement("x", Operator.IN, ("a", "b", "c")))


class LabelSelectorMatchingTests(SynchronousTestCase):
    """
    L{LabelSelector.matches} follows C{Requirement.Matches}.
    """

    def assertSelects(self, text: str, labels: dict, expected: bool) -> None:
        self.assertEqual(parse_label_selector(text).matches(labels), expected, (text, labels))

    def test_equality(self) -> None:
        self.assertSelects("app=web", {"app": "web"}, True)
        self.assertSelects("app==web", {"app": "web"}, True)
        self.assertSelects("app=web", {"app": "db"}, False)
        self.assertSelects("app=web", {}, False)

    def test_inequality_matches_missing_key(self) -> None:
        self.assertSelects("app!=web", {}, True)
        self.assertSelects("app!=web", {"app": "db"}, True)
        self.assertSelects("app!=web", {"app": "web"}, False)

    def test_empty_value(self) -> None:
        """
        C{key=} needs the key with an empty value.
        """
        self.assertSelects("app=", {"app": ""}, True)
        self.assertSelects("app=", {}, False)

    def test_sets(self) -> None:
        self.assertSelects("env in (prod,qa)", {"env": "qa"}, True)
        self.assertSelects("env in (prod,qa)", {"env": "dev"}, False)
        self.assertSelects("env in (prod,qa)", {}, False)
        self.assertSelects("env notin (prod,qa)", {}, True)
        self.assertSelects("env notin (prod,qa)", {"env": "prod"}, False)
        self.assertSelects("env in ()", {"env": ""}, True)

    def test_existence(self) -> None:
        self.assertSelects("app", {"app": ""}, True)
        self.assertSelects("app", {}, False)
        self.assertSelects("!app", {}, True)
        self.assertSelects("!app", {"app": "x"}, False)

    def test_numeric(self) -> None:
        """
        C{>} and C{<} compare integers; a label that is not one never
        matches.
        """
        self.assertSelects("n>5", {"n": "6"}, True)
        self.assertSelects("n>5", {"n": "5"}, False)
        self.assertSelects("n<5", {"n": "-7"}, True)
        self.assertSelects("n<5", {"n": "x"}, False)
        self.assertSelects("n<5", {"n": "1_0"}, False)
        self.assertSelects("n<5", {}, False)

    def test_and(self) -> None:
        self.assertSelects("a=1,b", {"a": "1", "b": "2"}, True)
        self.assertSelects("a=1,b", {"a": "1"}, False)

    def test_no_labels(self) -> None:
        """
        An object without labels is matched as one with none.
        """
        self.assertTrue(parse_label_selector("!a").matches(None))
        self.assertFalse(parse_label_selector("a").matches(None))

    def test_requires_exact_match(self) -> None:
        selector = parse_label_selector("a=1,b in (2),c in (3,4),d!=5")
        self.assertEqual(selector.requires_exact_match("a"), "1")
        self.assertEqual(selector.requires_exact_match("b"), "2")
        self.assertIsNone(selector.requires_exact_match("c"))
        self.assertIsNone(selector.requires_exact_match("d"))
        self.assertIsNone(selector.requires_exact_match("e"))


class LabelSelectorObjectTests(SynchronousTestCase):
    """
    L{label_selector_from_object} and L{label_selector_from_set}.
    """

    def test_missing_selects_nothing(self) -> None:
        """
        No selector object selects nothing, and is not empty.
        """
        selector = label_selector_from_object(None)
        self.assertIs(selector, NOTHING)
        self.assertFalse(selector.matches({}))
        self.assertFalse(selector.empty)

    def test_empty_selects_everything(self) -> None:
        selector = label_selector_from_object({})
        self.assertIs(selector, EVERYTHING)
        self.assertTrue(selector.matches({"a": "b"}))
        self.assertIs(
            label_selector_from_object({"matchLabels": {}, "matchExpressions": []}), EVERYTHING
        )

    def test_match_labels_and_expressions(self) -> None:
        selector = label_selector_from_object(
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                    {"key": "legacy", "operator": "DoesNotExist"},
                    {"key": "env", "operator": "NotIn", "values": ["dev"]},
                    {"key": "team", "operator": "Exists"},
                ],
            }
        )
        self.assertEqual(
            str(selector), "app=web,env notin (dev),!legacy,team,tier in (edge,front)"
        )
        self.assertTrue(selector.matches({"app": "web", "tier": "edge", "team": "a"}))
        self.assertFalse(
            selector.matches({"app": "web", "tier": "edge", "team": "a", "legacy": ""})
        )
        self.assertFalse(selector.matches({"app": "web", "tier": "back", "team": "a"}))

    def test_bad_operator(self) -> None:
        error = self.assertRaises(
            APIError,
            label_selector_from_object,
            {"matchExpressions": [{"key": "a", "operator": "Bad"}]},
        )
        self.assertEqual(error.message, '"Bad" is not a valid label selector operator')

    def test_invalid_requirements(self) -> None:
        """
        Requirements are validated as C{NewRequirement} does, with its paths.
        """
        error = self.assertRaises(
            APIError,
            label_selector_from_object,
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
        )
        self.assertEqual(
            error.message,
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty",
        )
        error = self.assertRaises(
            APIError,
            label_selector_from_object,
            {"matchExpressions": [{"key": "Bad_", "operator": "Exists", "values": ["x"]}]},
        )
        self.assertEqual(
            error.message,
            f'[key: Invalid value: "Bad_": name part {_NAME_RULE}, values: Invalid value: '
            '["x"]: values set must be empty for exists and does not exist]',
        )

    def test_wrong_types(self) -> None:
        """
        A selector object with non-string values is refused, not crashed on.
        """
        for selector in (
            {"matchLabels": {"a": 1}},
            {"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]},
        ):
            error = self.assertRaises(APIError, label_selector_from_object, selector)
            self.assertEqual(error.code, 400)

    def test_new_requirement(self) -> None:
        self.assertEqual(
            new_requirement("a", Operator.GREATER_THAN, ["3"]),
            Requirement("a", Operator.GREATER_THAN, ("3",)),
        )
        error = self.assertRaises(APIError, new_requirement, "a", "~", ["x"])
        self.assertEqual(
            error.message,
            'operator: Unsupported value: "~": supported values: "in", "notin", "=", "==", '
            '"!=", "gt", "lt", "exists", "!"',
        )

    def test_from_set(self) -> None:
        """
        A set (a Service's selector) requires every label, unvalidated.
        """
        selector = label_selector_from_set({"b": "2", "a": "1"})
        self.assertEqual(str(selector), "a=1,b=2")
        self.assertTrue(selector.matches({"a": "1", "b": "2", "c": "3"}))
        self.assertFalse(selector.matches({"a": "1"}))
        self.assertIs(label_selector_from_set({}), EVERYTHING)

    def test_equality(self) -> None:
        self.assertEqual(LabelSelector([Requirement("a", "exists")]), parse_label_selector("a"))
        self.assertNotEqual(NOTHING, EVERYTHING)


class FieldSelectorTests(SynchronousTestCase):
    """
    L{parse_field_selector} accepts and rejects what C{fields.ParseSelector}
    does; L{FieldSelector.matches} looks fields up by their dotted path.
    """

    def test_cases(self) -> None:
        for text, canonical, message in FIELD_CASES:
            if message is None:
                self.assertEqual(str(parse_field_selector(text)), canonical, text)
            else:
                error = self.assertRaises(APIError, parse_field_selector, text)
                self.assertEqual((error.code, error.message), (400, message), text)

    def test_escaped_values(self) -> None:
        """
        Escapes are removed from values, and put back by C{str}.
        """
        (requirement,) = parse_field_selector("a=x\\,y\\=z\\\\").requirements
        self.assertEqual(requirement.value, "x,y=z\\")
        self.assertEqual(str(parse_field_selector("a=x\\,y\\=z\\\\")), "a=x\\,y\\=z\\\\")

    def test_matches(self) -> None:
        secret = {
            "metadata": {"name": "stv-aggregation", "namespace": "cattle-system"},
            "type": "Opaque",
        }
        self.assertTrue(
            parse_field_selector(
                "metadata.namespace=cattle-system,metadata.name=stv-aggregation"
            ).matches(secret)
        )
        self.assertFalse(parse_field_selector("metadata.name=other").matches(secret))
        self.assertTrue(parse_field_selector("metadata.namespace!=default").matches(secret))
        self.assertTrue(parse_field_selector("type=Opaque").matches(secret))

    def test_missing_field_is_empty(self) -> None:
        """
        A field the object lacks compares as the empty string, as an unset
        C{spec.nodeName} does for the apiserver.
        """
        pod = {"metadata": {"name": "p"}, "spec": {}}
        self.assertTrue(parse_field_selector("spec.nodeName=").matches(pod))
        self.assertFalse(parse_field_selector("spec.nodeName!=").matches(pod))
        self.assertTrue(parse_field_selector("metadata.namespace=").matches(pod))

    def test_field_value(self) -> None:
        node = {"spec": {"unschedulable": True, "replicas": 3, "taints": [1]}, "kind": "Node"}
        self.assertEqual(field_value(node, "spec.unschedulable"), "true")
        self.assertEqual(field_value(node, "spec.replicas"), "3")
        self.assertEqual(field_value(node, "kind"), "Node")
        self.assertEqual(field_value(node, "spec.taints"), "")
        self.assertEqual(field_value(node, "kind.deeper"), "")

    def test_requires_exact_match(self) -> None:
        selector = parse_field_selector("metadata.name=a,metadata.namespace!=b")
        self.assertEqual(selector.requires_exact_match("metadata.name"), "a")
        self.assertIsNone(selector.requires_exact_match("metadata.namespace"))
        self.assertEqual(selector.fields, ("metadata.name", "metadata.namespace"))

    def test_check_supported(self) -> None:
        """
        A field the kind does not index is refused as C{ConvertFieldLabel}
        refuses it.
        """
        selector = parse_field_selector("metadata.name=a,spec.foo=b")
        selector.check_supported(["metadata.name", "spec.foo"])
        error = self.assertRaises(APIError, selector.check_supported, ["metadata.name"])
        self.assertEqual((error.code, error.message), (400, "field label not supported: spec.foo"))

    def test_from_set(self) -> None:
        selector = field_selector_from_set({"metadata.name": "a"})
        self.assertEqual(str(selector), "metadata.name=a")
        self.assertTrue(field_selector_from_set(None).empty)

    def test_empty_and_cached(self) -> None:
        self.assertTrue(parse_field_selector("").empty)
        self.assertIsInstance(parse_field_selector("a=b"), FieldSelector)
        self.assertIs(parse_field_selector("a=b"), parse_field_selector("a=b"))


class ValidationTests(SynchronousTestCase):
    """
    The name and label rules, with apimachinery's messages.
    """

    def test_dns_label(self) -> None:
        self.assertEqual(dns1123_label_errors("my-name"), [])
        self.assertEqual(dns1123_label_errors("a.b"), ["must not contain dots"])
        self.assertEqual(
            dns1123_label_errors("-a"),
            [
                "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                "characters or '-', and must start and end with an alphanumeric character "
                "(e.g. 'my-name',  or '123-abc', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ],
        )
        self.assertEqual(dns1123_label_errors("a" * 64), ["must be no more than 63 bytes"])

    def test_dns_subdomain(self) -> None:
        self.assertEqual(dns1123_subdomain_errors("a.b-c.d"), [])
        self.assertEqual(dns1123_subdomain_errors("A"), [_SUBDOMAIN_RULE])
        self.assertEqual(
            dns1123_subdomain_errors("a" * 254), ["must be no more than 253 bytes"]
        )

    def test_label_key(self) -> None:
        self.assertEqual(label_key_errors("kubernetes.io/metadata.name"), [])
        self.assertEqual(label_key_errors("My_Key.1"), [])
        self.assertEqual(label_key_errors("a:b"), [f"name part {_NAME_RULE}"])

    def test_label_value(self) -> None:
        self.assertEqual(label_value_errors(""), [])
        self.assertEqual(label_value_errors("v1.2_3-x"), [])
        # The limit counts UTF-8 bytes, as Go's len() does.
        self.assertEqual(
            label_value_errors("é" * 32), ["must be no more than 63 bytes", _VALUE_RULE]
        )
