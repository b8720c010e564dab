"""
Tests for L{scaleagent.kube.protobuf} and its generated field tables.

Hand-made bytes check the wire format and encoding/json's rules one at a
time; the vectors of the Go stand-in's C{protovectors} command (request
bodies captured from client-go's typed clients, with the JSON apimachinery
derives from them) check whole objects.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from scaleagent.kube import _protofields
from scaleagent.kube.errors import APIError
from scaleagent.kube.protobuf import (
    PROTOBUF_MAGIC,
    decode_object,
    go_duration,
    is_decodable,
)

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "tests" / "standin"


# --- building protobuf by hand ------------------------------------------------


def varint(value: int) -> bytes:
    """
    Encode an unsigned varint; negative values as Go writes int32/int64
    fields, in ten bytes of two's complement.
    """
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def field_varint(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def field_bytes(number: int, value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tag(number, 2) + varint(len(value)) + value


def map_entry(number: int, key: bytes | str, value: Optional[bytes | str]) -> bytes:
    entry = field_bytes(1, key)
    if value is not None:
        entry += field_bytes(2, value)
    return field_bytes(number, entry)


def envelope(api_version: str, kind: str, raw: bytes, extra: bytes = b"") -> bytes:
    type_meta = b""
    if api_version:
        type_meta += field_bytes(1, api_version)
    if kind:
        type_meta += field_bytes(2, kind)
    return PROTOBUF_MAGIC + field_bytes(1, type_meta) + field_bytes(2, raw) + extra


def metadata(name: str) -> bytes:
    # ObjectMeta.name is field 1; metadata is field 1 of every object.
    return field_bytes(1, field_bytes(1, name))


# --- the stand-in -------------------------------------------------------------

_standin_binary: Optional[Path] = None
_standin_error: Optional[str] = None


def standin_binary() -> Path:
    """
    Build the Go stand-in once per test run (it takes about a minute cold)
    and return its path; skip the calling test if Go is not installed.
    """
    global _standin_binary, _standin_error
    if shutil.which("go") is None:
        raise SkipTest("the go command is not installed, so the stand-in cannot be built")
    if _standin_error is not None:
        raise AssertionError(_standin_error)
    if _standin_binary is None:
        directory = Path(tempfile.mkdtemp(prefix="scaleagent-standin-"))
        atexit.register(shutil.rmtree, directory, True)
        binary = directory / "standin"
        completed = subprocess.run(
            ["go", "build", "-o", str(binary), "."],
            cwd=STANDIN,
            env=dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # A cold build (module downloads included) takes minutes at most.
            timeout=900,
        )
        if completed.returncode != 0:
            _standin_error = "go build failed:\n" + completed.stdout.decode(errors="replace")
            raise AssertionError(_standin_error)
        _standin_binary = binary
    return _standin_binary


def run_standin(*arguments: str) -> list[dict]:
    completed = subprocess.run(
        [str(standin_binary()), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=300,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"standin {' '.join(arguments)} failed: {completed.stderr.decode(errors='replace')}"
        )
    return [json.loads(line) for line in completed.stdout.splitlines()]


_vectors: Optional[list[dict]] = None


def protobuf_vectors() -> list[dict]:
    global _vectors
    if _vectors is None:
        _vectors = run_standin("protovectors")
    return _vectors


# --- tests --------------------------------------------------------------------


class StandinVectorTests(SynchronousTestCase):
    """
    Bodies client-go really sends decode into the JSON apimachinery makes of
    them, member order included.
    """

    def test_every_vector(self) -> None:
        vectors = protobuf_vectors()
        self.assertGreater(len(vectors), 20)
        failures = []
        for vector in vectors:
            body = base64.b64decode(vector["protobuf"])
            try:
                decoded = decode_object(body)
            except APIError as error:
                failures.append(f"{vector['name']}: {error.message}")
                continue
            # json.dumps keeps member order, which encoding/json fixes to the
            # Go field order (and sorted map keys).
            if json.dumps(decoded) != json.dumps(vector["json"]):
                failures.append(
                    f"{vector['name']}:\n  decoded  {json.dumps(decoded)}\n"
                    f"  expected {json.dumps(vector['json'])}"
                )
        self.assertEqual(failures, [])

    def test_rancher_writes_are_covered(self) -> None:
        """
        The vectors include every kind Rancher writes with its typed client
        (docs: rancher-server-side §9.4, §9.7), sent as protobuf.
        """
        kinds = {(vector["apiVersion"], vector["kind"]) for vector in protobuf_vectors()}
        for expected in [
            ("v1", "Secret"),
            ("v1", "ServiceAccount"),
            ("authentication.k8s.io/v1", "TokenRequest"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("batch/v1", "Job"),
            ("v1", "DeleteOptions"),
            ("rbac.authorization.k8s.io/v1", "DeleteOptions"),
        ]:
            self.assertIn(expected, kinds)

    def test_token_request(self) -> None:
        """
        The TokenRequest Rancher sends for impersonated service accounts
        keeps its pointer fields and the C{uid} whose proto name is C{uID}.
        """
        (vector,) = [v for v in protobuf_vectors() if v["kind"] == "TokenRequest"]
        decoded = decode_object(base64.b64decode(vector["protobuf"]))
        self.assertEqual(decoded["spec"]["expirationSeconds"], 600)
        self.assertEqual(
            decoded["spec"]["boundObjectRef"],
            {
                "kind": "Secret",
                "apiVersion": "v1",
                "name": "bound",
                "uid": "9a8b7c6d-0000-4000-8000-000000000002",
            },
        )
        self.assertEqual(decoded["status"], {"token": "", "expirationTimestamp": None})

    def test_durations(self) -> None:
        """
        L{go_duration} formats as Go's C{time.Duration.String}.
        """
        lines = run_standin("protovectors", "-durations")
        self.assertGreater(len(lines), 10)
        for line in lines:
            self.assertEqual(go_duration(line["nanoseconds"]), line["string"])


class GeneratedTablesTests(SynchronousTestCase):
    def test_check(self) -> None:
        """
        The committed tables are what the generator makes of the pinned
        modules.
        """
        if shutil.which("go") is None:
            raise SkipTest("the go command is not installed, so the modules cannot be located")
        completed = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "gen_protofields.py"), "--check"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
        self.assertEqual(completed.returncode, 0, completed.stdout.decode(errors="replace"))

    def test_modules(self) -> None:
        """
        The tables name the module versions the stand-in pins.
        """
        go_mod = (STANDIN / "go.mod").read_text()
        for module, version in _protofields.MODULES.items():
            self.assertIn(f"\t{module} {version}\n", go_mod)

    def test_kinds(self) -> None:
        self.assertEqual(_protofields.KINDS[("", "v1", "Secret")], "core/v1.Secret")
        self.assertEqual(_protofields.KINDS[("batch", "v1", "Job")], "batch/v1.Job")
        self.assertEqual(
            _protofields.KINDS[("authentication.k8s.io", "v1", "TokenRequest")],
            "authentication/v1.TokenRequest",
        )
        self.assertEqual(
            _protofields.KINDS[("rbac.authorization.k8s.io", "v1", "DeleteOptions")],
            "meta/v1.DeleteOptions",
        )
        self.assertEqual(_protofields.UNVERSIONED_KINDS["Status"], "meta/v1.Status")

    def test_references_resolve(self) -> None:
        """
        Every message a field refers to is in the tables.
        """
        for name, (form, fields) in _protofields.MESSAGES.items():
            for number, json_name, type_name, flags in fields:
                if type_name.startswith("map<"):
                    type_name = type_name[4:-1].split(",")[1]
                if "." in type_name:
                    self.assertIn(type_name, _protofields.MESSAGES, f"{name}.{json_name}")

    def test_json_names_from_go_tags(self) -> None:
        """
        Where the proto name differs from the JSON name, the Go tag wins.
        """
        _, fields = _protofields.MESSAGES["authentication/v1.BoundObjectReference"]
        self.assertIn((4, "uid", "string", "o"), fields)


class EnvelopeTests(SynchronousTestCase):
    def assertBadRequest(self, body: bytes, message: str, **defaults: str) -> APIError:
        error = self.assertRaises(APIError, decode_object, body, **defaults)
        self.assertEqual((error.code, error.reason), (400, "BadRequest"))
        self.assertEqual(error.message, message)
        return error

    def test_minimal(self) -> None:
        self.assertEqual(
            decode_object(envelope("v1", "ConfigMap", metadata("settings"))),
            {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "settings"}},
        )

    def test_group_kind(self) -> None:
        decoded = decode_object(envelope("rbac.authorization.k8s.io/v1", "Role", b""))
        self.assertEqual(
            decoded,
            {
                "kind": "Role",
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {},
                "rules": None,
            },
        )

    def test_memoryview(self) -> None:
        body = envelope("v1", "ConfigMap", metadata("settings"))
        self.assertEqual(decode_object(memoryview(body)), decode_object(body))

    def test_content_fields_ignored(self) -> None:
        """
        contentEncoding and contentType, and unknown envelope fields, are
        ignored as by the apiserver's serializer.
        """
        extra = field_bytes(3, "") + field_bytes(4, "") + field_varint(9, 1)
        self.assertEqual(
            decode_object(envelope("v1", "ConfigMap", metadata("a"), extra)),
            decode_object(envelope("v1", "ConfigMap", metadata("a"))),
        )

    def test_empty(self) -> None:
        self.assertBadRequest(
            b"",
            "the object provided is unrecognized (must be of type ConfigMap): empty data (<empty>)",
            default_kind="ConfigMap",
        )

    def test_magic_only(self) -> None:
        self.assertBadRequest(
            PROTOBUF_MAGIC,
            "the object provided is unrecognized (must be of type ConfigMap): empty body "
            "(6b387300)",
            default_kind="ConfigMap",
        )

    def test_not_protobuf(self) -> None:
        self.assertBadRequest(
            b'{"kind":"Secret"}',
            "the object provided is unrecognized (must be of type Secret): provided data does "
            'not appear to be a protobuf message, expected prefix [107 56 115 0] ({"kind":"Secret"})',
            default_kind="Secret",
        )

    def test_missing_kind(self) -> None:
        self.assertBadRequest(
            envelope("v1", "", b""),
            # No kind to expect either (the apiserver always has one).
            "the object provided is unrecognized (must be of type ): "
            "Object 'Kind' is missing in "
            '\'runtime.TypeMeta{APIVersion:"v1", Kind:""}\' (6b3873000a040a0276311200)',
        )

    def test_defaults(self) -> None:
        """
        The request's kind and group version fill in an envelope without
        them.
        """
        decoded = decode_object(
            envelope("", "", metadata("x")),
            default_api_version="batch/v1",
            default_kind="Job",
        )
        self.assertEqual((decoded["apiVersion"], decoded["kind"]), ("batch/v1", "Job"))
        self.assertEqual(decoded["metadata"], {"name": "x"})

    def test_unknown_kind(self) -> None:
        self.assertBadRequest(
            envelope("example.com/v1", "Widget", b""),
            'Widget in version "v1" cannot be handled as a Widget: no kind "Widget" is '
            'registered for version "example.com/v1" in scheme '
            '"pkg/api/legacyscheme/scheme.go:30"',
        )

    def test_unversioned_kind(self) -> None:
        """
        Status decodes in any group version, as the scheme's unversioned
        kinds do.
        """
        decoded = decode_object(envelope("apps/v1", "Status", field_bytes(2, "Failure")))
        self.assertEqual(decoded["status"], "Failure")
        self.assertTrue(is_decodable("apps/v1", "Status"))
        self.assertTrue(is_decodable("v1", "Secret"))
        self.assertFalse(is_decodable("v1", "Job"))

    def test_error_names_the_target_kind(self) -> None:
        self.assertBadRequest(
            envelope("v1", "Secret", b"\x0a\x05ab"),
            'Secret in version "v1" cannot be handled as a Secret: unexpected EOF',
        )
        self.assertBadRequest(
            envelope("v1", "Secret", b"\x0a\x05ab"),
            'Secret in version "v1" cannot be handled as a ConfigMap: unexpected EOF',
            default_kind="ConfigMap",
        )


class WireFormatTests(SynchronousTestCase):
    """
    Varints, lengths, packing, unknown fields and malformed input.
    """

    def decode(self, kind: str, raw: bytes, api_version: str = "v1") -> dict:
        return decode_object(envelope(api_version, kind, raw))

    def reason(self, kind: str, raw: bytes, api_version: str = "v1") -> str:
        error = self.assertRaises(APIError, self.decode, kind, raw, api_version)
        self.assertEqual(error.code, 400)
        return error.message.split(": ", 1)[1]

    def pod_spec(self, raw_spec: bytes) -> dict:
        # Pod.spec is field 2.
        return self.decode("Pod", field_bytes(2, raw_spec))["spec"]

    def test_multi_byte_varints(self) -> None:
        """
        int32 and int64 values of every size, negative ones in ten bytes.
        """
        # PodSpec: activeDeadlineSeconds (int64) = 5, priority (int32) = 25.
        for seconds in [0, 1, 127, 128, 300, 2**31, 2**53 + 1, 2**63 - 1, -1, -(2**63)]:
            spec = self.pod_spec(field_varint(5, seconds))
            self.assertEqual(spec["activeDeadlineSeconds"], seconds)
        for priority in [0, 1, 2**31 - 1, -1, -(2**31)]:
            self.assertEqual(self.pod_spec(field_varint(25, priority))["priority"], priority)

    def test_int32_keeps_low_bits(self) -> None:
        """
        Go accumulates an int32 field in 32 bits: higher bits are dropped.
        """
        self.assertEqual(self.pod_spec(field_varint(25, 2**32 + 7))["priority"], 7)

    def test_long_lengths(self) -> None:
        name = "n" * 300
        self.assertEqual(self.decode("ConfigMap", metadata(name))["metadata"]["name"], name)

    def test_packed_and_unpacked(self) -> None:
        """
        Repeated scalars are accepted unpacked (as Go writes them) and packed,
        and a mix of both appends.
        """
        # PodSecurityContext.supplementalGroups = 4; PodSpec.securityContext = 14.
        unpacked = field_varint(4, 1) + field_varint(4, 300000)
        packed = field_bytes(4, varint(1) + varint(300000))
        for groups in [unpacked, packed]:
            spec = self.pod_spec(field_bytes(14, groups))
            self.assertEqual(spec["securityContext"]["supplementalGroups"], [1, 300000])
        mixed = packed + field_varint(4, 5)
        spec = self.pod_spec(field_bytes(14, mixed))
        self.assertEqual(spec["securityContext"]["supplementalGroups"], [1, 300000, 5])

    def test_empty_packed_is_unset(self) -> None:
        spec = self.pod_spec(field_bytes(14, field_bytes(4, b"")))
        self.assertEqual(spec["securityContext"], {})

    def test_unknown_fields_skipped(self) -> None:
        """
        Fields the tables do not know, of every wire type, are skipped.
        """
        known = metadata("a") + map_entry(2, "x", "y") + map_entry(3, "b", b"\x00")
        unknown = (
            field_varint(90, 2**40)
            + tag(91, 1) + b"\x00" * 8
            + field_bytes(92, b"\xff" * 3)
            + tag(93, 5) + b"\x00" * 4
            + tag(94, 3) + field_varint(1, 1) + tag(95, 3) + tag(95, 4) + tag(94, 4)
        )
        self.assertEqual(
            self.decode("ConfigMap", unknown + known + unknown), self.decode("ConfigMap", known)
        )

    def test_truncated(self) -> None:
        """
        Every truncation of a body either decodes or is a clean 400.
        """
        spec = field_bytes(14, field_varint(4, 300000)) + field_varint(5, 2**40)
        body = envelope("v1", "Pod", metadata("p") + field_bytes(2, spec))
        for length in range(len(body)):
            try:
                decode_object(body[:length])
            except APIError as error:
                self.assertEqual(error.code, 400)

    def test_truncated_messages(self) -> None:
        self.assertEqual(self.reason("ConfigMap", b"\x0a\x05abc"), "unexpected EOF")
        self.assertEqual(self.reason("ConfigMap", b"\x0a"), "unexpected EOF")
        self.assertEqual(self.reason("ConfigMap", b"\x0a\x80"), "unexpected EOF")
        self.assertEqual(self.reason("Pod", field_bytes(2, b"\x58")), "unexpected EOF")

    def test_random_corruption(self) -> None:
        """
        Corrupted bodies never raise anything but L{APIError}.
        """
        vector = envelope(
            "v1",
            "Secret",
            metadata("s") + map_entry(2, "token", b"\x00\x01") + field_bytes(3, "Opaque"),
        )
        generator = random.Random(1234)
        for _ in range(2000):
            body = bytearray(vector)
            for _ in range(generator.randint(1, 4)):
                position = generator.randrange(len(PROTOBUF_MAGIC), len(body))
                body[position] = generator.randrange(256)
            try:
                decode_object(bytes(body))
            except APIError as error:
                self.assertEqual(error.code, 400)

    def test_integer_overflow(self) -> None:
        self.assertEqual(
            self.reason("Pod", field_bytes(2, tag(5, 0) + b"\xff" * 10 + b"\x01")),
            "proto: integer overflow",
        )

    def test_negative_length(self) -> None:
        self.assertEqual(
            self.reason("ConfigMap", tag(1, 2) + varint(2**63)),
            "proto: negative length found during unmarshaling",
        )

    def test_wrong_wire_type(self) -> None:
        self.assertEqual(
            self.reason("ConfigMap", field_bytes(1, field_varint(1, 5))),
            "proto: wrong wireType = 0 for field name",
        )

    def test_illegal_tags(self) -> None:
        self.assertEqual(
            self.reason("ConfigMap", field_varint(0, 1)),
            "proto: ConfigMap: illegal tag 0 (wire type 0)",
        )
        self.assertEqual(
            self.reason("ConfigMap", tag(1, 4)),
            "proto: ConfigMap: wiretype end group for non-group",
        )
        self.assertEqual(
            self.reason("ConfigMap", tag(70, 7)),
            "proto: illegal wireType 7",
        )

    def test_repeated_message_field_merges(self) -> None:
        """
        A single message field sent twice is merged, as proto specifies.
        """
        raw = field_bytes(1, field_bytes(1, "name")) + field_bytes(1, field_bytes(3, "ns"))
        self.assertEqual(
            self.decode("ConfigMap", raw)["metadata"], {"name": "name", "namespace": "ns"}
        )

    def test_last_scalar_wins(self) -> None:
        raw = metadata("first") + metadata("second")
        # Two metadata messages merge; within them the later name wins.
        self.assertEqual(self.decode("ConfigMap", raw)["metadata"]["name"], "second")

    def test_invalid_utf8(self) -> None:
        """
        Invalid UTF-8 becomes one U+FFFD per byte, as encoding/json writes.
        """
        for raw, text in [
            (b"a\xffb", "a\ufffdb"),
            (b"\xe2\x82", "\ufffd\ufffd"),
            (b"\xe2\x82\xac\xe2\x82A", "\u20ac\ufffd\ufffdA"),
            (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),
        ]:
            decoded = self.decode("ConfigMap", field_bytes(1, field_bytes(1, raw)))
            self.assertEqual(decoded["metadata"]["name"], text)
            data = self.decode("ConfigMap", map_entry(2, raw, raw))["data"]
            self.assertEqual(data, {text: text})


class JSONFormTests(SynchronousTestCase):
    """
    encoding/json's view of the decoded Go object.
    """

    def decode(self, kind: str, raw: bytes, api_version: str = "v1") -> dict:
        return decode_object(envelope(api_version, kind, raw))

    def test_pointer_false_is_present(self) -> None:
        """
        A pointer set to false or zero shows; an unset one is omitted.
        """
        # ServiceAccount.automountServiceAccountToken = 4.
        service_account = self.decode("ServiceAccount", field_varint(4, 0))
        self.assertIs(service_account["automountServiceAccountToken"], False)
        self.assertNotIn("automountServiceAccountToken", self.decode("ServiceAccount", b""))
        # TokenRequestSpec.expirationSeconds = 4, TokenRequest.spec = 2.
        token_request = self.decode(
            "TokenRequest", field_bytes(2, field_varint(4, 0)), "authentication.k8s.io/v1"
        )
        self.assertEqual(token_request["spec"]["expirationSeconds"], 0)

    def test_pointer_message_present_when_empty(self) -> None:
        # TokenRequestSpec.boundObjectRef = 3.
        token_request = self.decode(
            "TokenRequest", field_bytes(2, field_bytes(3, b"")), "authentication.k8s.io/v1"
        )
        # audiences and expirationSeconds have no omitempty: unset, they are null.
        self.assertEqual(
            token_request["spec"],
            {"audiences": None, "expirationSeconds": None, "boundObjectRef": {}},
        )

    def test_zero_values_without_omitempty(self) -> None:
        """
        Non-pointer fields without omitempty show their zero value; nil
        slices show null.
        """
        # Pod.spec = 2, PodSpec.containers = 2, Container.ports = 6,
        # ContainerPort.protocol = 4.
        port = field_bytes(4, "TCP")
        container = field_bytes(6, port)
        spec = self.decode("Pod", field_bytes(2, field_bytes(2, container)))["spec"]
        self.assertEqual(
            spec["containers"],
            [{"name": "", "ports": [{"containerPort": 0, "protocol": "TCP"}], "resources": {}}],
        )

    def test_omitempty_scalars(self) -> None:
        # ObjectMeta.namespace (omitempty) sent empty is omitted.
        self.assertEqual(
            self.decode("ConfigMap", field_bytes(1, field_bytes(3, "")))["metadata"], {}
        )

    def test_bytes_base64(self) -> None:
        raw = (
            map_entry(2, "token", b"\x00\x01\xfe\xff")
            + map_entry(2, "empty", b"")
            + map_entry(2, "missing", None)
        )
        self.assertEqual(
            self.decode("Secret", raw)["data"],
            {"token": "AAH+/w==", "empty": "", "missing": ""},
        )

    def test_string_map(self) -> None:
        raw = map_entry(4, "b", "2") + map_entry(4, "a", "1") + map_entry(4, "a", "3")
        self.assertEqual(self.decode("Secret", raw)["stringData"], {"b": "2", "a": "3"})

    def test_time(self) -> None:
        """
        metav1.Time keeps whole seconds; an empty value is the zero time,
        which creationTimestamp omits (omitzero) and others show as null.
        """
        # ObjectMeta.creationTimestamp = 8, deletionTimestamp = 9.
        timestamp = field_varint(1, 1704164645) + field_varint(2, 999_999_999)
        meta = self.decode("ConfigMap", field_bytes(1, field_bytes(8, timestamp)))["metadata"]
        self.assertEqual(meta, {"creationTimestamp": "2024-01-02T03:04:05Z"})
        meta = self.decode("ConfigMap", field_bytes(1, field_bytes(8, b"")))["metadata"]
        self.assertEqual(meta, {})
        meta = self.decode("ConfigMap", field_bytes(1, field_bytes(9, b"")))["metadata"]
        self.assertEqual(meta, {"deletionTimestamp": None})
        epoch = self.decode("ConfigMap", field_bytes(1, field_bytes(9, field_varint(1, 0))))
        self.assertEqual(epoch["metadata"], {"deletionTimestamp": "1970-01-01T00:00:00Z"})
        before = field_varint(1, -86400)
        old = self.decode("ConfigMap", field_bytes(1, field_bytes(9, before)))
        self.assertEqual(old["metadata"], {"deletionTimestamp": "1969-12-31T00:00:00Z"})

    def test_micro_time(self) -> None:
        # coordination/v1 Lease.spec = 2, LeaseSpec.renewTime = 4.
        def renew_time(seconds: int, nanos: int) -> Optional[str]:
            micro = field_varint(1, seconds) + field_varint(2, nanos)
            lease = self.decode(
                "Lease", field_bytes(2, field_bytes(4, micro)), "coordination.k8s.io/v1"
            )
            return lease["spec"]["renewTime"]

        self.assertEqual(renew_time(1704164645, 123456789), "2024-01-02T03:04:05.123456Z")
        self.assertEqual(renew_time(1704164645, 0), "2024-01-02T03:04:05.000000Z")
        # Nanos outside a second carry into the seconds, as in time.Unix.
        self.assertEqual(renew_time(1704164645, 1_500_000_000), "2024-01-02T03:04:06.500000Z")
        self.assertEqual(renew_time(1704164645, -1_500), "2024-01-02T03:04:04.999999Z")

    def test_quantity(self) -> None:
        # Node.status = 3, NodeStatus.capacity = 1 (map<string, Quantity>).
        def capacity(quantity: Optional[bytes]) -> dict:
            entry = field_bytes(1, "cpu")
            if quantity is not None:
                entry += field_bytes(2, quantity)
            node = self.decode("Node", field_bytes(3, field_bytes(1, entry)))
            return node["status"]["capacity"]["cpu"]

        self.assertEqual(capacity(field_bytes(1, "1500m")), "1500m")
        self.assertEqual(capacity(field_bytes(1, "1e3")), "1e3")
        self.assertEqual(capacity(b""), "0")
        self.assertEqual(capacity(None), "0")
        for bad, reason in [
            ("", "quantities must match the regular expression"),
            ("12x", "quantities must match the regular expression"),
            ("1Ki2", "unable to parse quantity's suffix"),
            ("1e", "unable to parse quantity's suffix"),
        ]:
            error = self.assertRaises(APIError, capacity, field_bytes(1, bad))
            self.assertIn(reason, error.message)

    def test_int_or_string(self) -> None:
        # Deployment.spec = 2, DeploymentSpec.strategy = 4,
        # DeploymentStrategy.rollingUpdate = 2, RollingUpdateDeployment.maxSurge = 2.
        def max_surge(value: bytes) -> object:
            strategy = field_bytes(2, field_bytes(2, value))
            spec = field_bytes(2, field_bytes(4, strategy))
            deployment = self.decode("Deployment", spec, "apps/v1")
            return deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]

        self.assertEqual(max_surge(field_varint(1, 1) + field_bytes(3, "25%")), "25%")
        self.assertEqual(max_surge(field_varint(1, 0) + field_varint(2, 3)), 3)
        self.assertEqual(max_surge(b""), 0)
        error = self.assertRaises(APIError, max_surge, field_varint(1, 2))
        self.assertIn("impossible IntOrString.Type", error.message)

    def test_raw_extension(self) -> None:
        # ControllerRevision.data = 2.
        def data(raw: Optional[bytes]) -> object:
            extension = b"" if raw is None else field_bytes(1, raw)
            return self.decode("ControllerRevision", field_bytes(2, extension), "apps/v1")["data"]

        self.assertEqual(data(b'{"a": [1, null]}'), {"a": [1, None]})
        self.assertIsNone(data(None))
        for bad in [b"", b"\xd9\xd9\xf7\xa0", b"{nope"]:
            self.assertRaises(APIError, data, bad)

    def test_fields_v1(self) -> None:
        # ObjectMeta.managedFields = 17, ManagedFieldsEntry.fieldsV1 = 7.
        entry = field_bytes(1, "kubectl") + field_bytes(7, field_bytes(1, b'{"f:data":{}}'))
        meta = self.decode("ConfigMap", field_bytes(1, field_bytes(17, entry)))["metadata"]
        self.assertEqual(
            meta["managedFields"], [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]
        )

    def test_wrapped_slices(self) -> None:
        """
        ExtraValue is a named slice that protobuf wraps in a message: JSON
        shows the bare array, [] for an entry without items.
        """
        # SubjectAccessReview.spec = 2, SubjectAccessReviewSpec.extra = 5.
        extra = field_bytes(5, field_bytes(1, "a") + field_bytes(2, field_bytes(1, "x")))
        extra += field_bytes(5, field_bytes(1, "b") + field_bytes(2, b""))
        extra += field_bytes(5, field_bytes(1, "c"))
        review = self.decode(
            "SubjectAccessReview", field_bytes(2, extra), "authorization.k8s.io/v1"
        )
        self.assertEqual(review["spec"]["extra"], {"a": ["x"], "b": [], "c": []})

    def test_verbs(self) -> None:
        # APIResourceList.resources = 2, APIResource.verbs = 4 (no omitempty).
        resources = field_bytes(2, field_bytes(1, "pods") + field_bytes(4, b""))
        resources += field_bytes(2, field_bytes(1, "nodes"))
        listing = self.decode("APIResourceList", resources)
        self.assertEqual([r["verbs"] for r in listing["resources"]], [[], None])

    def test_inline_structs(self) -> None:
        """
        Embedded structs (VolumeSource in Volume) promote their members.
        """
        # PodSpec.volumes = 1; Volume.name = 1, volumeSource = 2;
        # VolumeSource.emptyDir = 2.
        volume = field_bytes(1, "scratch") + field_bytes(2, field_bytes(2, b""))
        spec = self.decode("Pod", field_bytes(2, field_bytes(1, volume)))["spec"]
        self.assertEqual(spec["volumes"], [{"name": "scratch", "emptyDir": {}}])

    def test_go_duration(self) -> None:
        self.assertEqual(go_duration(0), "0s")
        self.assertEqual(go_duration(1500), "1.5\u00b5s")
        self.assertEqual(go_duration(3_600_000_000_000), "1h0m0s")
        self.assertEqual(go_duration(-90_500_000_000), "-1m30.5s")
