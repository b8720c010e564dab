"""
Tests for L{scaleagent.kube.patch}.

Most expectations are vectors in C{tests/fixtures/patch/}, produced by
running the libraries kube-apiserver v1.35 uses (apimachinery v0.35.6's
strategicpatch, gopkg.in/evanphx/json-patch.v4 v4.13.0) on the same inputs
with the apiserver's options and error mapping: what the vectors say is what
a real apiserver does, list order included.  Every vector is its own test
method, named after it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube.errors import APIError
from scaleagent.kube.patch import (
    BUILTIN_PATCH_TYPES,
    CUSTOM_PATCH_TYPES,
    MAX_JSON_PATCH_OPERATIONS,
    STRATEGIC_MERGE_PATCH,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    check_patch_type,
    go_format,
    patch_types,
)
from scaleagent.kube.schema import SchemaIndex, unknown_fields

FIXTURES = Path(__file__).parent / "fixtures" / "patch"

# The minor the vectors' Go library version belongs to.
INDEX = SchemaIndex.load(35)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def vectors(name: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / f"{name}.json").read_text())["cases"]


def method_name(prefix: str, case_name: str) -> str:
    return "test_" + prefix + "_" + re.sub(r"\W+", "_", case_name.lower()).strip("_")


def add_vector_tests(
    namespace: dict[str, Any], prefix: str, cases: list[dict[str, Any]], check: Callable[..., None]
) -> None:
    """
    Give a test class one method per vector.
    """
    for case in cases:
        name = method_name(prefix, case["name"])
        assert name not in namespace, name

        def test(self: SynchronousTestCase, case: dict[str, Any] = case) -> None:
            check(self, case)

        test.__name__ = name
        test.__doc__ = case["name"]
        namespace[name] = test


def status_of(error: APIError) -> dict[str, Any]:
    return {"code": error.code, "reason": error.reason, "message": error.message}


def definition_of(case: dict[str, Any]):
    group, _, version = case["apiVersion"].rpartition("/")
    definition = INDEX.definition_for_kind(group, version, case["kind"])
    assert definition is not None, case["kind"]
    return definition


def assert_same_json(test: SynchronousTestCase, actual: Any, expected: Any) -> None:
    """
    Equal as JSON documents: list order counts, key order does not, and
    1, 1.0 and true differ.
    """
    test.assertEqual(
        json.dumps(actual, sort_keys=True), json.dumps(expected, sort_keys=True)
    )


def check_strategic_vector(test: SynchronousTestCase, case: dict[str, Any]) -> None:
    definition = definition_of(case)
    original = copy.deepcopy(case["original"])
    patch = copy.deepcopy(case["patch"])
    if "error" in case:
        error = test.assertRaises(
            APIError,
            apply_strategic_merge_patch,
            original,
            patch,
            definition.patch_schema(),
        )
        test.assertEqual(status_of(error), case["error"])
    else:
        result = apply_strategic_merge_patch(original, patch, definition.patch_schema())
        assert_same_json(test, result, case["expected"])
        test.assertEqual(sorted(unknown_fields(definition, result)), case["unknownFields"])
    # The inputs are not touched.
    test.assertEqual(original, case["original"])
    test.assertEqual(patch, case["patch"])


class StrategicMergeVectorTests(SynchronousTestCase):
    """
    Hand-written cases: directives, merge keys, retainKeys, primitive lists,
    nested lists, deletions, $setElementOrder and the errors.
    """

    add_vector_tests(locals(), "smp", vectors("strategic_merge"), check_strategic_vector)


class StrategicMergeRandomVectorTests(SynchronousTestCase):
    """
    Random patches of Deployments mixing every list directive, where the
    order of the result is the hardest part to get right.
    """

    add_vector_tests(
        locals(), "random", vectors("strategic_merge_random"), check_strategic_vector
    )


def check_three_way_vector(test: SynchronousTestCase, case: dict[str, Any]) -> None:
    definition = definition_of(case)
    result = apply_strategic_merge_patch(case["current"], case["patch"], definition.patch_schema())
    assert_same_json(test, result, case["expected"])


class KubectlApplyTests(SynchronousTestCase):
    """
    The patches kubectl apply sends, applied to the object a server holds.
    """

    add_vector_tests(locals(), "apply", vectors("three_way"), check_three_way_vector)

    def setUp(self) -> None:
        self.case = vectors("three_way")[0]
        self.meta = INDEX.definition_for_kind("apps", "v1", "Deployment").patch_schema()
        self.result = apply_strategic_merge_patch(self.case["current"], self.case["patch"], self.meta)

    def container(self, obj: dict[str, Any]) -> dict[str, Any]:
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        return container

    def test_rancher_redeploy_uses_merge_directives(self) -> None:
        """
        Rancher's redeploy is a real strategic merge patch: order lists for
        the merged env and volumes, and retainKeys for the volume.
        """
        template = self.case["patch"]["spec"]["template"]["spec"]
        self.assertIn("$setElementOrder/containers", template)
        self.assertIn("$setElementOrder/env", template["containers"][0])
        self.assertEqual(template["volumes"][0]["$retainKeys"], ["name", "secret"])

    def test_rancher_redeploy_environment(self) -> None:
        """
        The new CATTLE_FEATURES variable comes first, as in the manifest; no
        variable is duplicated; the credentials name is the new one.
        """
        environment = self.container(self.result)["env"]
        names = [variable["name"] for variable in environment]
        self.assertEqual(names[0], "CATTLE_FEATURES")
        self.assertEqual(len(names), len(set(names)))
        manifest_names = [
            variable["name"] for variable in self.container(self.case["manifest"])["env"]
        ]
        self.assertEqual(names, manifest_names)
        credentials = {variable["name"]: variable.get("value") for variable in environment}
        self.assertEqual(
            credentials["CATTLE_CREDENTIAL_NAME"], "cattle-credentials-cb43af441f"
        )

    def test_rancher_redeploy_volume(self) -> None:
        """
        The credentials volume points at the new Secret and keeps the mode.
        """
        (volume,) = self.result["spec"]["template"]["spec"]["volumes"]
        self.assertEqual(
            volume,
            {
                "name": "cattle-credentials",
                "secret": {"defaultMode": 320, "secretName": "cattle-credentials-cb43af441f"},
            },
        )

    def test_rancher_redeploy_keeps_server_fields(self) -> None:
        """
        What the server defaulted and what the manifest never said survive.
        """
        self.assertEqual(self.result["metadata"]["uid"], self.case["current"]["metadata"]["uid"])
        self.assertEqual(self.result["spec"]["revisionHistoryLimit"], 10)
        self.assertEqual(self.container(self.result)["terminationMessagePolicy"], "File")
        self.assertEqual(self.result["status"], self.case["current"]["status"])

    def test_rancher_redeploy_records_manifest(self) -> None:
        """
        The last-applied annotation now holds the new manifest.
        """
        recorded = json.loads(self.result["metadata"]["annotations"][LAST_APPLIED])
        self.assertEqual(recorded, self.case["manifest"])

    def test_second_apply_sends_nothing(self) -> None:
        """
        Applying the same manifest again makes kubectl compute an empty
        patch, which changes nothing.
        """
        again = vectors("three_way")[2]
        self.assertEqual(again["patch"], {})
        self.assertEqual(
            apply_strategic_merge_patch(self.result, again["patch"], self.meta), self.result
        )

    def test_patch_applied_twice_is_stable(self) -> None:
        twice = apply_strategic_merge_patch(self.result, self.case["patch"], self.meta)
        assert_same_json(self, twice, self.result)


class StrategicMergeTests(SynchronousTestCase):
    """
    Behaviour not covered by the vectors.
    """

    def setUp(self) -> None:
        self.meta = INDEX.definition_for_kind("", "v1", "ConfigMap").patch_schema()

    def test_patch_not_an_object(self) -> None:
        """
        A patch body that is not a JSON object is a 400, as decoding it into
        a map fails.
        """
        error = self.assertRaises(
            APIError, apply_strategic_merge_patch, {"data": {}}, ["x"], self.meta
        )
        self.assertEqual(error.code, 400)
        self.assertEqual(
            error.message,
            "json: cannot unmarshal array into Go value of type map[string]interface {}",
        )

    def test_input_not_modified(self) -> None:
        original = {"metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}}
        patch = {"metadata": {"labels": {"a": None}}, "data": {"$patch": "replace", "x": "y"}}
        before = copy.deepcopy((original, patch))
        result = apply_strategic_merge_patch(original, patch, self.meta)
        self.assertEqual((original, patch), before)
        self.assertEqual(result, {"metadata": {"name": "c", "labels": {}}, "data": {"x": "y"}})

    def test_invalid_422_has_generic_message(self) -> None:
        """
        Lists of lists are a 422 whose text, like the apiserver's, does not
        say what was wrong.
        """
        pods = INDEX.definition_for_kind("", "v1", "Pod").patch_schema()
        error = self.assertRaises(
            APIError,
            apply_strategic_merge_patch,
            {"spec": {"containers": [["a"]]}},
            {"spec": {"containers": [["b"]]}},
            pods,
        )
        self.assertEqual(error.code, 422)
        self.assertEqual(error.reason, "Invalid")
        self.assertEqual(
            error.message, "the server rejected our request due to an error in our request"
        )


def check_json_patch_vector(test: SynchronousTestCase, case: dict[str, Any]) -> None:
    document = copy.deepcopy(case["doc"])
    if "error" in case:
        error = test.assertRaises(APIError, apply_json_patch, document, case["patch"])
        test.assertEqual(status_of(error), case["error"])
    else:
        assert_same_json(test, apply_json_patch(document, case["patch"]), case["expected"])
    test.assertEqual(document, case["doc"])


class JSONPatchTests(SynchronousTestCase):
    add_vector_tests(locals(), "json_patch", vectors("json_patch"), check_json_patch_vector)

    def test_too_many_operations(self) -> None:
        operations = [{"op": "test", "path": "/a", "value": 1}] * (MAX_JSON_PATCH_OPERATIONS + 1)
        error = self.assertRaises(APIError, apply_json_patch, {"a": 1}, operations)
        self.assertEqual(error.code, 413)
        self.assertEqual(
            error.message,
            "Request entity too large: The allowed maximum operations in a JSON patch "
            "is 10000, got 10001",
        )

    def test_failure_detail_kept_for_logs(self) -> None:
        """
        The answer hides why an operation failed; the exception still says.
        """
        error = self.assertRaises(
            APIError, apply_json_patch, {"a": 1}, [{"op": "test", "path": "/a", "value": 2}]
        )
        self.assertEqual(error.details.to_dict(), {})
        self.assertIn("testing value /a failed", str(error.__cause__))

    def test_values_are_copied(self) -> None:
        """
        A value added by the patch is not shared with the patch document.
        """
        value = {"k": ["v"]}
        result = apply_json_patch({}, [{"op": "add", "path": "/x", "value": value}])
        result["x"]["k"].append("w")
        self.assertEqual(value, {"k": ["v"]})


def check_merge_patch_vector(test: SynchronousTestCase, case: dict[str, Any]) -> None:
    document = copy.deepcopy(case["doc"])
    if "error" in case:
        error = test.assertRaises(APIError, apply_merge_patch, document, case["patch"])
        test.assertEqual(status_of(error), case["error"])
    else:
        assert_same_json(test, apply_merge_patch(document, case["patch"]), case["expected"])
    test.assertEqual(document, case["doc"])


class MergePatchTests(SynchronousTestCase):
    add_vector_tests(locals(), "merge_patch", vectors("merge_patch"), check_merge_patch_vector)


class GoFormatTests(SynchronousTestCase):
    def test_values(self) -> None:
        """
        Maps print sorted, lists space-separated, floats in Go's shortest
        form with an exponent from 1e+06 on.
        """
        self.assertEqual(
            go_format({"b": [1, "x", None], "a": {"c": True}, "d": 1.5, "e": 1e6, "f": 2.0}),
            "map[a:map[c:true] b:[1 x <nil>] d:1.5 e:1e+06 f:2]",
        )
        self.assertEqual(go_format(0.0001), "0.0001")
        self.assertEqual(go_format(0.00001), "1e-05")
        self.assertEqual(go_format(-123456.5), "-123456.5")


class PatchTypeTests(SynchronousTestCase):
    def test_builtin_types(self) -> None:
        self.assertEqual(patch_types(custom=False), BUILTIN_PATCH_TYPES)
        self.assertIn(STRATEGIC_MERGE_PATCH, BUILTIN_PATCH_TYPES)
        self.assertEqual(
            check_patch_type("application/strategic-merge-patch+json; charset=utf-8", False),
            STRATEGIC_MERGE_PATCH,
        )

    def test_custom_resources_refuse_strategic_merge(self) -> None:
        """
        Custom resources have no strategic merge patch: 415 with the
        apiserver's message listing what they accept.
        """
        self.assertNotIn(STRATEGIC_MERGE_PATCH, CUSTOM_PATCH_TYPES)
        error = self.assertRaises(APIError, check_patch_type, STRATEGIC_MERGE_PATCH, True)
        self.assertEqual(error.code, 415)
        self.assertEqual(error.reason, "UnsupportedMediaType")
        self.assertEqual(
            error.message,
            "the body of the request was in an unknown format - accepted media types "
            "include: application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml",
        )

    def test_unknown_type(self) -> None:
        error = self.assertRaises(APIError, check_patch_type, "application/json", False)
        self.assertEqual(error.code, 415)
