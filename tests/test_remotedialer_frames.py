"""
Tests for L{scaleagent.remotedialer.frames}: the byte layout of every
message type, against the hex examples of the protocol notes and hand-made
edge cases. (Vectors produced by the Go library itself are checked in
C{tests.test_remotedialer_vectors}.)
"""

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.remotedialer import frames


class VarintTests(SynchronousTestCase):
    def test_zigzag_values(self) -> None:
        """
        Signed values are zig-zag mapped before LEB128, as Go's PutVarint.
        """
        self.assertEqual(frames.encode_varint(0), b"\x00")
        self.assertEqual(frames.encode_varint(-1), b"\x01")
        self.assertEqual(frames.encode_varint(1), b"\x02")
        self.assertEqual(frames.encode_varint(2), b"\x04")
        self.assertEqual(frames.encode_varint(15000), bytes.fromhex("b0ea01"))
        self.assertEqual(
            frames.encode_varint(5577006791947779410),
            bytes.fromhex("a4f5e7ffa088c1e59a01"),
        )

    def test_round_trip_extremes(self) -> None:
        for value in [0, 1, -1, 63, 64, -64, -65, 2**31, -(2**63), 2**63 - 1]:
            encoded = frames.encode_varint(value)
            self.assertLessEqual(len(encoded), 10)
            self.assertEqual(frames.decode_varint(encoded, 0), (value, len(encoded)))

    def test_out_of_range(self) -> None:
        self.assertRaises(ValueError, frames.encode_varint, 2**63)

    def test_truncated(self) -> None:
        self.assertRaises(ValueError, frames.decode_varint, b"\x80\x80", 0)

    def test_overlong(self) -> None:
        """Eleven bytes, or a tenth byte above 1, overflow 64 bits as in Go."""
        self.assertRaises(ValueError, frames.decode_varint, b"\xff" * 9 + b"\x02", 0)
        self.assertRaises(ValueError, frames.decode_varint, b"\x80" * 10 + b"\x00", 0)


class EncodeTests(SynchronousTestCase):
    """
    The byte examples of the protocol notes (agent-protocol §3.4).
    """

    def test_data(self) -> None:
        self.assertEqual(
            frames.encode(frames.Data(2, b"GET /ping HTTP/1.1\r\n"), 7),
            bytes.fromhex("0e0402b0ea01") + b"GET /ping HTTP/1.1\r\n",
        )

    def test_connect(self) -> None:
        self.assertEqual(
            frames.encode(frames.Connect(2, "tcp", "10.43.0.1:443"), 5),
            bytes.fromhex("0a0404b0ea01") + b"tcp/10.43.0.1:443",
        )

    def test_error_eof(self) -> None:
        self.assertEqual(frames.encode(frames.Error(2, "EOF"), 9), bytes.fromhex("120406454f46"))

    def test_add_remove_client(self) -> None:
        self.assertEqual(
            frames.encode(frames.AddClient("c-abcde/12345"), 11),
            bytes.fromhex("160008") + b"c-abcde/12345",
        )
        self.assertEqual(
            frames.encode(frames.RemoveClient("c-abcde/12345"), 12),
            bytes.fromhex("18000a") + b"c-abcde/12345",
        )

    def test_pause_resume(self) -> None:
        self.assertEqual(frames.encode(frames.Pause(2), 13), bytes.fromhex("1a040c"))
        self.assertEqual(frames.encode(frames.Resume(2), 14), bytes.fromhex("1c040e"))

    def test_sync_connections(self) -> None:
        self.assertEqual(
            frames.encode(frames.SyncConnections((2, 3)), 15),
            bytes.fromhex("1e0010" "0200000000000000" "0300000000000000"),
        )
        self.assertEqual(frames.encode(frames.SyncConnections(()), 16), bytes.fromhex("200010"))

    def test_message_id_from_record(self) -> None:
        """Without an explicit id the record's own C{message_id} is written."""
        self.assertEqual(frames.encode(frames.Pause(2, message_id=13)), bytes.fromhex("1a040c"))


class DecodeTests(SynchronousTestCase):
    def test_round_trip_every_type(self) -> None:
        messages = [
            frames.Data(2, b"", 1),
            frames.Data(3, bytes(range(256)) * 10, 2),
            frames.Connect(4, "tcp", "10.43.0.1:443", 3),
            frames.Error(5, "EOF", 4),
            frames.Error(6, "dial tcp 10.43.0.1:443: connect: connection refused", 5),
            frames.AddClient("c-abcde/12345", 6),
            frames.RemoveClient("c-abcde/12345", 7),
            frames.Pause(8, 8),
            frames.Resume(9, 9),
            frames.SyncConnections((2, 3, 2**62), 10),
            frames.Unknown(11, 42, b"future", 11),
        ]
        for message in messages:
            self.assertEqual(frames.decode(frames.encode(message)), message)

    def test_connect_splits_at_first_slash(self) -> None:
        message = frames.decode(frames.encode(frames.Connect(2, "unix", "/var/run/docker.sock")))
        self.assertEqual((message.proto, message.address), ("unix", "/var/run/docker.sock"))

    def test_connect_without_slash_names_its_stream(self) -> None:
        frame = bytes.fromhex("0a0804b0ea01") + b"no-slash"
        error = self.assertRaises(frames.FrameError, frames.decode, frame)
        self.assertEqual(error.conn_id, 4)

    def test_connect_payload_limit(self) -> None:
        """Only the first 266 bytes of a Connect payload are read, as in Go v0.5+."""
        address = "h" * 300
        message = frames.decode(frames.encode(frames.Connect(2, "tcp", address)))
        self.assertEqual(len("tcp/" + message.address), frames.CONNECT_PAYLOAD_LIMIT)

    def test_error_text_limit(self) -> None:
        message = frames.decode(frames.encode(frames.Error(2, "x" * 500)))
        self.assertEqual(len(message.text), frames.SHORT_PAYLOAD_LIMIT)

    def test_sync_connections_bad_length(self) -> None:
        frame = bytes.fromhex("1e0010") + b"\x01\x02\x03"
        error = self.assertRaises(frames.FrameError, frames.decode, frame)
        self.assertEqual(error.conn_id, 0)

    def test_truncated_header_names_no_stream(self) -> None:
        for frame in [b"", b"\x80", b"\x02", b"\x02\x80"]:
            error = self.assertRaises(frames.FrameError, frames.decode, frame)
            self.assertIsNone(error.conn_id, frame)

    def test_truncated_after_conn_id(self) -> None:
        """Once the connection id is known, the error carries it."""
        error = self.assertRaises(frames.FrameError, frames.decode, b"\x02\x04\x02")
        self.assertEqual(error.conn_id, 2)

    def test_error_is_eof(self) -> None:
        self.assertTrue(frames.Error(2, "EOF").is_eof)
        self.assertFalse(frames.Error(2, "EOF!").is_eof)

    def test_negative_sync_ids(self) -> None:
        """An id with the top bit set decodes to a negative int64, as in Go."""
        frame = bytes.fromhex("1e0010") + b"\xff" * 8
        self.assertEqual(frames.decode(frame), frames.SyncConnections((-1,), 15))
