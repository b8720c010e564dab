# -*- test-case-name: tests.test_tunnel_params -*-
"""
The C{X-API-Tunnel-Params} header value, byte for byte as the Go agent sends it.

The real agent builds C{{"cluster":{"address":…,"caCert":…,"token":…}}} as
nested Go maps and hands it to C{encoding/json}, which sorts map keys,
writes no whitespace and escapes C{<}, C{>}, C{&}, U+2028 and U+2029 as
C{\\uXXXX}; the result is encoded with standard base64 (with padding).

Rancher rewrites the cluster's token secret and restarts every controller of
the cluster whenever the address, CA or token it receives differ from what it
stored, so the value must be identical on every reconnect and across
restarts: it depends on nothing but the three strings.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

_HEX = "0123456789abcdef"

# What encoding/json writes for the characters it escapes (Go 1.22+, which
# every Rancher release this project targets is built with). Control
# characters without a short form become \u00XX with lowercase hex.
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    # HTML-safe escaping, on by default in json.Marshal.
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    # Valid JSON but not valid JavaScript; Go escapes them.
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _escape(character: str) -> str:
    short = _SHORT_ESCAPES.get(character)
    if short is not None:
        return short
    code = ord(character)
    if code < 0x20:
        return "\\u00" + _HEX[code >> 4] + _HEX[code & 0xF]
    return character


def go_json_string(value: str) -> str:
    """
    Encode a string as Go's C{encoding/json} does with HTML escaping on.

    @param value: text without lone surrogates (Go strings are UTF-8).
    @return: the JSON string literal, quotes included.
    """
    return '"' + "".join(_escape(character) for character in value) + '"'


class InvalidTunnelParams(ValueError):
    """
    The params would be refused by Rancher (C{400 invalid input, … empty})
    or could not be sent as Go would send them.
    """


@dataclass(frozen=True)
class TunnelParams:
    """
    What the main tunnel tells Rancher about the cluster's API server.

    @ivar address: C{host:port} that Rancher will dial through the tunnel
        (the real agent sends C{KUBERNETES_SERVICE_HOST:PORT}).
    @ivar token: the bearer token Rancher will use against that API server.
        Secret: never shown in C{repr}.
    @ivar ca_cert_b64: standard base64 of the API server's CA in PEM.
    """

    address: str
    token: str = field(repr=False)
    ca_cert_b64: str

    def __post_init__(self) -> None:
        for name in ("address", "token", "ca_cert_b64"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise InvalidTunnelParams(f"{name} must be text, not {type(value).__name__}")
            if not value.strip():
                # Rancher answers "400 invalid input, <field> empty".
                raise InvalidTunnelParams(f"{name} is empty")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidTunnelParams(f"{name} is not valid Unicode text") from None
        try:
            base64.b64decode(self.ca_cert_b64.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            # Rancher stores the value as given and only decodes it when it
            # builds its client for the cluster, where it would fail late.
            raise InvalidTunnelParams("ca_cert_b64 is not standard base64") from None

    @classmethod
    def from_pem(cls, address: str, token: str, ca_cert_pem: bytes) -> "TunnelParams":
        """
        Build params from the CA in PEM, as the agent does with
        C{kube-root-ca.crt}.

        @param address: C{host:port} of the API server.
        @param token: its bearer token.
        @param ca_cert_pem: the CA certificate(s), PEM bytes.
        @return: the params.
        """
        return cls(address, token, base64.b64encode(ca_cert_pem).decode("ascii"))

    def json(self) -> str:
        """
        @return: the params as Go's C{json.Marshal} writes them.
        """
        return (
            '{"cluster":{"address":'
            + go_json_string(self.address)
            + ',"caCert":'
            + go_json_string(self.ca_cert_b64)
            + ',"token":'
            + go_json_string(self.token)
            + "}}"
        )

    def header_value(self) -> str:
        """
        @return: the C{X-API-Tunnel-Params} header value: standard base64,
            with padding, of L{json}.
        """
        return base64.b64encode(self.json().encode("utf-8")).decode("ascii")
