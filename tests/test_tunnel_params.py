"""
Tests for L{scaleagent.tunnel.params}: the params header, byte for byte as
Go's encoding/json and encoding/base64 produce it.

The expected values were produced by a Go 1.26 program marshalling
C{map[string]interface{}{"cluster": map[string]interface{}{...}}} with
C{json.Marshal} and encoding it with C{base64.StdEncoding}, as the agent does.
"""

from __future__ import annotations

import base64

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.tunnel.params import InvalidTunnelParams, TunnelParams, go_json_string

CA_B64 = "TFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2c9PQ=="
TOKEN = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"

# From Go: json.Marshal + base64.StdEncoding.EncodeToString.
GO_PLAIN_JSON = (
    '{"cluster":{"address":"10.43.0.1:443","caCert":"'
    + CA_B64
    + '","token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}}'
)
GO_PLAIN_HEADER = (
    "eyJjbHVzdGVyIjp7ImFkZHJlc3MiOiIxMC40My4wLjE6NDQzIiwiY2FDZXJ0IjoiVEZNd2RFeFRNVU5T"
    "VldSS1ZHbENSRkpXU2xWVFZWcEtVVEJHVlZKVE1IUk1VekIwUTJjOVBRPT0iLCJ0b2tlbiI6ImV5SmhiR2Np"
    "T2lKU1V6STFOaUo5LmUzMC5jMmxuIn19"
)

# Every character Go escapes, plus some it does not (DEL, é, /).
TRICKY_TOKEN = "a<b>&c\u2028\u2029\"\\\n\t\x01\x7f\u00e9\b\f\r\x1f/"
GO_TRICKY_JSON = (
    '{"cluster":{"address":"[fd00::1]:6443","caCert":"QQ==","token":"'
    "a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\\"\\\\\\n\\t\\u0001\x7f\u00e9\\b\\f\\r\\u001f/"
    '"}}'
)
GO_TRICKY_HEADER = (
    "eyJjbHVzdGVyIjp7ImFkZHJlc3MiOiJbZmQwMDo6MV06NjQ0MyIsImNhQ2VydCI6IlFRPT0iLCJ0b2tlbiI6"
    "ImFcdTAwM2NiXHUwMDNlXHUwMDI2Y1x1MjAyOFx1MjAyOVwiXFxcblx0XHUwMDAxf8OpXGJcZlxyXHUwMDFm"
    "LyJ9fQ=="
)


class HeaderValueTests(SynchronousTestCase):
    def test_plain_params_match_go(self) -> None:
        params = TunnelParams("10.43.0.1:443", TOKEN, CA_B64)
        self.assertEqual(params.json(), GO_PLAIN_JSON)
        self.assertEqual(params.header_value(), GO_PLAIN_HEADER)

    def test_escaping_matches_go(self) -> None:
        params = TunnelParams("[fd00::1]:6443", TRICKY_TOKEN, "QQ==")
        self.assertEqual(params.json(), GO_TRICKY_JSON)
        self.assertEqual(params.header_value(), GO_TRICKY_HEADER)

    def test_header_is_padded_standard_base64(self) -> None:
        # "QQ==" keeps the padded length odd; "?>" in the JSON forces "/"
        # and "+" style characters of the standard alphabet.
        params = TunnelParams("h:1", "t?>", "QQ==")
        value = params.header_value()
        self.assertEqual(len(value) % 4, 0)
        self.assertEqual(base64.b64decode(value, validate=True).decode(), params.json())

    def test_identical_every_time(self) -> None:
        """
        Rancher restarts a cluster's controllers when the params change, so
        two equal params objects must produce the same bytes.
        """
        first = TunnelParams("10.43.0.1:443", TOKEN, CA_B64).header_value()
        second = TunnelParams("10.43.0.1:443", TOKEN, CA_B64).header_value()
        self.assertEqual(first, second)

    def test_from_pem(self) -> None:
        pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        params = TunnelParams.from_pem("10.43.0.1:443", TOKEN, pem)
        self.assertEqual(base64.b64decode(params.ca_cert_b64), pem)

    def test_go_json_string_non_ascii_is_raw(self) -> None:
        self.assertEqual(go_json_string("é☃"), '"é☃"')


class ValidationTests(SynchronousTestCase):
    def test_empty_fields_rejected(self) -> None:
        for args in (("", TOKEN, CA_B64), ("a:1", "", CA_B64), ("a:1", TOKEN, ""), ("a:1", "  ", CA_B64)):
            with self.assertRaises(InvalidTunnelParams):
                TunnelParams(*args)

    def test_non_text_rejected(self) -> None:
        with self.assertRaises(InvalidTunnelParams):
            TunnelParams("a:1", b"token", CA_B64)  # type: ignore[arg-type]

    def test_lone_surrogate_rejected(self) -> None:
        with self.assertRaises(InvalidTunnelParams):
            TunnelParams("a:1", "tok\udc80", CA_B64)

    def test_ca_must_be_base64(self) -> None:
        with self.assertRaises(InvalidTunnelParams):
            TunnelParams("a:1", TOKEN, "-----BEGIN CERTIFICATE-----")

    def test_token_not_in_repr(self) -> None:
        params = TunnelParams("10.43.0.1:443", TOKEN, CA_B64)
        self.assertNotIn(TOKEN, repr(params))
        self.assertIn("10.43.0.1:443", repr(params))
